#!/usr/bin/env python3
"""A task producer for sse-broker, standard library only.

Creates a task, streams a text into it token by token while reporting
progress, and completes it. Stops cleanly when the task is cancelled: the
broker then answers the next write with 409 `task_cancelled`.

    python3 examples/task_producer.py --url http://127.0.0.1:8080
    SSE_BROKER_TOKEN=$(sse-broker token --sub producer --scope publish) python3 examples/task_producer.py

Watch it at http://127.0.0.1:8080/?task=ID or with
curl -N http://127.0.0.1:8080/tasks/ID/events
"""

import argparse
import json
import os
import re
import time
import urllib.error
import urllib.request

TEXT = (
    "Server-Sent Events keep one HTTP response open and let the server write events "
    "into it as they happen. A browser that loses its network reconnects with the id "
    "of the last event it saw, and the broker replays what it missed, so the answer "
    "arrives whole, in order, exactly once."
)


class Cancelled(Exception):
    """The task was cancelled: stop producing."""


class Broker:
    def __init__(self, url, token=None):
        self.url = url.rstrip("/")
        self.token = token

    def call(self, method, path, body=None):
        """Sends one JSON request and returns the JSON answer."""
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            answer = json.loads(error.read() or b"{}").get("error", {})
            if error.code == 409 and answer.get("code") == "task_cancelled":
                raise Cancelled() from None
            raise RuntimeError(f"{method} {path}: {error.code} {answer.get('message')}") from None


def produce(broker, task_id, delay):
    task = f"/tasks/{task_id}"
    broker.call("PATCH", task, {"progress": 5, "stage": "writing"})
    tokens = re.findall(r"\S+\s*", TEXT)  # words with their trailing space
    for index, token in enumerate(tokens, start=1):
        broker.call("POST", f"{task}/text", {"delta": token})
        if index % 10 == 0:
            broker.call("PATCH", task, {"progress": 5 + 90 * index / len(tokens)})
        time.sleep(delay)
    broker.call("POST", f"{task}/complete", {"result": {"tokens": len(tokens)}})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the broker's base URL")
    parser.add_argument("--token", default=os.environ.get("SSE_BROKER_TOKEN"),
                        help="a JWT with the publish scope (or SSE_BROKER_TOKEN)")
    parser.add_argument("--delay-ms", type=int, default=40, help="pause between tokens")
    args = parser.parse_args()

    broker = Broker(args.url, args.token)
    task_id = broker.call("POST", "/tasks", {"task_type": "example", "stage": "thinking"})["task_id"]
    print(f"task {task_id}: {broker.url}/?task={task_id}", flush=True)
    try:
        produce(broker, task_id, args.delay_ms / 1000)
        print(f"task {task_id}: completed")
    except Cancelled:
        print(f"task {task_id}: cancelled, stopping")
    except Exception as error:
        # Tell the watchers rather than leave them waiting for the orphan timeout.
        try:
            broker.call("POST", f"/tasks/{task_id}/fail", {"error": str(error)})
        except Exception:
            pass
        raise


if __name__ == "__main__":
    main()
