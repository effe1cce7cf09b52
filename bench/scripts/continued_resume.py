"""How long a chat's resume takes to rebuild a continued message.

A message written by N finished tasks (the first, then N-1 created with its
id as `message_id`), each with K bytes of text, and a running task that
continues it; then RUNS times, one at a time, `GET /chats/{chat}/stream`
until the running task's text arrives (after the rebuilt prefix). N=0: a
running task of a message of its own (a plain resume).

    python3 bench/scripts/continued_resume.py PORT N K RUNS

Against a broker with auth off (`--insecure-no-auth`); see
docs/performance.md (twenty-ninth sitting).
"""
import http.client, json, sys, time
PORT = int(sys.argv[1]); N = int(sys.argv[2]); K = int(sys.argv[3]); RUNS = int(sys.argv[4])
def call(method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", PORT); c.request(method, path, body=json.dumps(body) if body is not None else None, headers={"content-type": "application/json"})
    r = c.getresponse(); data = r.read(); c.close(); return r.status, data
chat = f"c{N}x{K}"
text = ("x" * (K - 1)) + " "
first = f"{chat}-0"
assert call("POST", "/tasks", {"task_id": first, "chat_id": chat})[0] == 201
call("POST", f"/tasks/{first}/text", {"delta": text}); call("POST", f"/tasks/{first}/complete", {})
for n in range(1, N):
    t = f"{chat}-{n}"
    assert call("POST", "/tasks", {"task_id": t, "chat_id": chat, "message_id": first})[0] == 201
    call("POST", f"/tasks/{t}/text", {"delta": text}); call("POST", f"/tasks/{t}/complete", {})
latest = f"{chat}-latest"
body = {"task_id": latest, "chat_id": chat}
if N > 0: body["message_id"] = first
assert call("POST", "/tasks", body)[0] == 201
call("POST", f"/tasks/{latest}/text", {"delta": "LATEST"})
times = []
for _ in range(RUNS):
    c = http.client.HTTPConnection("127.0.0.1", PORT)
    t0 = time.perf_counter(); c.request("GET", f"/chats/{chat}/stream"); r = c.getresponse()
    buf = b""
    while b"LATEST" not in buf:
        chunk = r.read1(65536)
        if not chunk: raise SystemExit("ended early")
        buf += chunk
    times.append((time.perf_counter() - t0) * 1000); c.close()
times.sort()
print(f"earlier tasks {N}, text {K} B each: prefix {len(buf)} B, median {times[len(times)//2]:.2f} ms, p90 {times[int(len(times)*0.9)]:.2f} ms over {RUNS}")
