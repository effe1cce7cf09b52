"""Uploads that hold long unfinished lines: what the broker's memory does.

Creates N tasks on a broker started with auth off (loopback), opens one
generation upload (`POST /tasks/{id}/stream`, NDJSON, chunked) per task and
sends each a line of SIZE bytes that never ends, then reports how many were
answered 503 (`upload_memory_full`). Read the broker's RSS meanwhile
(`grep VmRSS /proc/PID/status`) with and without `--upload-memory-mib`.

    python3 bench/scripts/held_lines.py PORT N SIZE
"""

import json
import socket
import sys
import threading
import time
import urllib.error
import urllib.request

port, count, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
base = f"http://127.0.0.1:{port}"
CHUNK = b"a" * 65536


def create(task_id):
    request = urllib.request.Request(
        base + "/tasks",
        data=json.dumps({"task_id": task_id}).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        urllib.request.urlopen(request)
    except urllib.error.HTTPError as error:
        if error.code != 409:
            raise


def upload(index, sockets):
    connection = socket.create_connection(("127.0.0.1", port))
    connection.sendall(
        f"POST /tasks/held-{index}/stream HTTP/1.1\r\nHost: bench\r\n"
        "Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    )
    start = b'{"delta": "'
    connection.sendall(b"%x\r\n%s\r\n" % (len(start), start))
    sent = 0
    try:
        while sent < size:
            connection.sendall(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))
            sent += len(CHUNK)
    except OSError:
        pass  # answered (503) and closed while sending
    sockets.append(connection)


for i in range(count):
    create(f"held-{i}")
sockets = []
threads = [threading.Thread(target=upload, args=(i, sockets)) for i in range(count)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
time.sleep(2)
refused = 0
for connection in sockets:
    connection.settimeout(0.05)
    try:
        refused += connection.recv(200).startswith(b"HTTP/1.1 503")
    except OSError:
        pass
print(f"uploads {count}, each holding {size} bytes of one line; answered 503: {refused}")
input("holding the uploads open; read the broker's RSS now, then press Enter ")
