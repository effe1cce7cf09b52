// The broker's `event: error` (a task failed, was cancelled or orphaned) and
// EventSource's own network error share the name "error"; in a browser the
// server's event also fires `onerror`. These tests tell the two apart, with
// a fake that dispatches as a browser does: `node --test tests/js/`.

import { test } from "node:test";
import assert from "node:assert/strict";

import { SseClient, TaskStream, TaskError, State } from "../../src/http/assets/client.js";
import { FakeEventSource } from "./fake_event_source.mjs";

function client(options = {}) {
  FakeEventSource.opened = [];
  return new SseClient("http://broker.test/sse/events", { EventSource: FakeEventSource, ...options });
}

test("a task stream's `error` event reaches its handler and onError, then closes without reconnecting", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  FakeEventSource.opened = [];
  const handled = [];
  const errors = [];
  const disconnects = [];
  const stream = new TaskStream("gen-2", {
    EventSource: FakeEventSource,
    reconnectDelay: 10,
    onError: (error, data) => errors.push({ error, data }),
    onDisconnect: (d) => disconnects.push(d),
  });
  stream.on("error", (data) => handled.push(data));
  stream.connect();
  const source = FakeEventSource.latest();
  source.emit("connected", { connection_id: "c1" });
  source.emit("text", { delta: "Hel" }, "5");
  const cancelled = { task_id: "gen-2", status: "cancelled", error: "cancelled", cancelled: true };
  source.emit("error", cancelled, "6");

  assert.deepEqual(handled, [cancelled], "the task's error handler gets the parsed data");
  assert.equal(errors.length, 1, "onError is called once");
  assert.ok(errors[0].error instanceof Error);
  assert.equal(errors[0].error.message, "cancelled");
  assert.equal(errors[0].error.cancelled, true);
  assert.deepEqual(errors[0].error.data, cancelled);
  assert.deepEqual(errors[0].data, cancelled);
  assert.equal(stream.state, State.CLOSED);
  assert.ok(source.closed, "the EventSource is closed");
  assert.equal(stream.lastEventId, "6");
  assert.deepEqual(disconnects, [], "not a lost connection");
  t.mock.timers.tick(60_000);
  assert.equal(FakeEventSource.opened.length, 1, "no reconnect after the task's end");
});

test("a failed task's error message reaches onError", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  FakeEventSource.opened = [];
  const errors = [];
  const stream = new TaskStream("gen-3", { EventSource: FakeEventSource, onError: (error) => errors.push(error) });
  stream.connect();
  FakeEventSource.latest().emit("error", { task_id: "gen-3", status: "failed", error: "model overloaded" }, "2");
  assert.equal(errors.length, 1);
  assert.equal(errors[0].message, "model overloaded");
  assert.equal(errors[0].cancelled, false);
  assert.equal(stream.state, State.CLOSED);
  stream.close();
});

test("a network error on a task stream is a lost connection: no error handler, and a reconnect", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  FakeEventSource.opened = [];
  const handled = [];
  const errors = [];
  const reasons = [];
  const stream = new TaskStream("gen-4", {
    EventSource: FakeEventSource,
    reconnectDelay: 10,
    onError: (error) => errors.push(error),
    onDisconnect: (d) => reasons.push(d.reason),
  });
  stream.on("error", (data) => handled.push(data));
  stream.connect();
  FakeEventSource.latest().emit("connected", { connection_id: "c1" });
  FakeEventSource.latest().emit("text", { delta: "Hel" }, "7");
  FakeEventSource.latest().fail();
  assert.deepEqual(handled, [], "a network error is not the task's error");
  assert.deepEqual(errors, []);
  assert.deepEqual(reasons, ["network"]);
  assert.equal(stream.state, State.RECONNECTING);
  t.mock.timers.tick(10);
  assert.equal(FakeEventSource.opened.length, 2);
  assert.equal(new URL(FakeEventSource.latest().url).searchParams.get("last_event_id"), "7");
  stream.close();
});

test("a general stream keeps going after some task's `error` event: no reconnect, no stop", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const errors = [];
  const failures = [];
  const commits = [];
  const states = [];
  const c = client({
    reconnectDelay: 10,
    onError: (error) => failures.push(error),
    onStateChange: (state) => states.push(state),
  });
  c.on("error", (data) => errors.push(data));
  c.on("commit", (data) => commits.push(data.sha));
  c.connect();
  const source = FakeEventSource.latest();
  source.emit("connected", { connection_id: "c1" });
  source.emit("error", { task_id: "t1", status: "failed", error: "boom" }, "10");
  source.emit("commit", { sha: "a1" }, "11");
  // Past any reconnect delay, short of the heartbeat timeout.
  t.mock.timers.tick(10_000);
  source.emit("commit", { sha: "b2" }, "12");

  assert.deepEqual(errors, [{ task_id: "t1", status: "failed", error: "boom" }]);
  assert.deepEqual(commits, ["a1", "b2"], "later events still arrive");
  assert.deepEqual(failures, [], "some task's error is not this client's error");
  assert.equal(c.state, State.CONNECTED);
  assert.deepEqual(states, [State.CONNECTING, State.CONNECTED]);
  assert.equal(FakeEventSource.opened.length, 1, "no reconnect");
  assert.ok(!source.closed);
  assert.equal(c.lastEventId, "12");
  c.close();
});

test("a general stream with no error handler is not stopped by a task's `error` event either", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const commits = [];
  const c = client({ reconnectDelay: 10 });
  c.connect();
  const source = FakeEventSource.latest();
  source.emit("connected", { connection_id: "c1" });
  source.emit("error", { task_id: "t1", status: "cancelled", error: "cancelled", cancelled: true }, "3");
  c.on("commit", (data) => commits.push(data.sha));
  source.emit("commit", { sha: "c3" }, "4");
  t.mock.timers.tick(1_000);
  assert.deepEqual(commits, ["c3"]);
  assert.equal(c.state, State.CONNECTED);
  assert.equal(FakeEventSource.opened.length, 1);
  c.close();
});

test("types named like EventSource's own events (`message`, `open`) reach handlers once, and only from the broker", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const messages = [];
  const opens = [];
  const c = client();
  c.on("message", (data) => messages.push(data));
  c.on("open", (data) => opens.push(data));
  c.connect();
  const source = FakeEventSource.latest();
  source.open();
  source.emit("connected", { connection_id: "c1" });
  source.emit("message", { n: 1 }, "1");
  source.emit("open", { n: 2 }, "2");
  assert.deepEqual(messages, [{ n: 1 }], "a `message` event is delivered once");
  assert.deepEqual(opens, [{ n: 2 }], "EventSource's own `open` is not a broker event");
  c.close();
});

test("a TaskError without data has no task id or status (undefined, as the typings say), not null", () => {
  for (const data of [null, undefined]) {
    const error = new TaskError(data);
    assert.equal(error.message, "task failed");
    assert.equal(error.taskId, undefined);
    assert.equal(error.status, undefined);
    assert.equal(error.cancelled, false);
  }
  const cancelled = new TaskError({ task_id: "t1", status: "cancelled", cancelled: true });
  assert.deepEqual([cancelled.message, cancelled.taskId, cancelled.status], ["cancelled", "t1", "cancelled"]);
});
