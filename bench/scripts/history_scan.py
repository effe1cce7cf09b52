"""A quiet tenant's history next to a busy one: how long a page takes.

Starts BROKER (pinned to core 0) on 127.0.0.1:PORT with a JWT secret and
the store DATABASE_URL (a fresh SQLite file or PostgreSQL database), stores
one event of project pB, then 300,000 of project pA (750 publishes of 400),
and times `GET /sse/history?after=1&limit=N` for N = 1, 10, 100, 1000 as
`bob`, whose token grants pB only (nothing to find after id 1).

    python3 bench/scripts/history_scan.py BROKER PORT DATABASE_URL
"""

import json
import signal
import subprocess
import sys
import time
import urllib.request

binary, port, database_url = sys.argv[1], int(sys.argv[2]), sys.argv[3]
secret = "history-scan-" + "x" * 32
broker = subprocess.Popen(
    ["taskset", "-c", "0", binary, "--bind", f"127.0.0.1:{port}", "--workers", "1",
     "--database-url", database_url, "--jwt-secret", secret],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def token(sub, scope, project):
    return subprocess.check_output(
        [binary, "token", "--jwt-secret", secret, "--sub", sub, "--scope", scope,
         "--ttl", "3600", "--project", project]).decode().strip()


def call(path, bearer, body=None):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"},
        method="GET" if body is None else "POST")
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read())


try:
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    call("/sse/publish", token("pub-b", "publish", "pB"),
         {"event_type": "commit", "project_id": "pB", "data": {}})
    busy = token("pub-a", "publish", "pA")
    batch = [{"event_type": "commit", "project_id": "pA", "data": {"n": n}} for n in range(400)]
    for _ in range(750):
        call("/sse/publish", busy, batch)
    bob = token("bob", "subscribe", "pB")
    for limit in (1, 10, 100, 1000):
        started = time.time()
        page = call(f"/sse/history?after=1&limit={limit}", bob)
        print(f"limit={limit}: {len(page['events'])} events in {time.time() - started:.3f} s")
finally:
    broker.send_signal(signal.SIGTERM)
    broker.wait()
