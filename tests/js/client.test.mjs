// Unit tests of the browser client (src/http/assets/client.js) under Node's
// test runner: `node --test tests/js/`. EventSource is replaced by a fake the
// tests drive, and timers are mocked, so backoff and heartbeat timing are
// checked exactly and instantly.

import { test, mock } from "node:test";
import assert from "node:assert/strict";

import { SseClient, TaskStream, State, backoffDelay } from "../../src/http/assets/client.js";

/**
 * A stand-in for EventSource that records what the client opened. It is an
 * EventTarget and dispatches as a browser does: a server event is a
 * MessageEvent named after its `event:` line, so a server `event: error`
 * reaches `onerror` as well as the "error" listeners; a network error is a
 * plain Event named "error"; `onerror`/`onmessage`/`onopen` are listeners
 * registered where first set, as HTML event handler attributes are.
 */
class FakeEventSource extends EventTarget {
  static opened = [];

  #handlers = new Map();

  constructor(url, init) {
    super();
    this.url = url;
    this.init = init;
    this.closed = false;
    FakeEventSource.opened.push(this);
  }

  get onerror() {
    return this.#handler("error");
  }

  set onerror(handler) {
    this.#setHandler("error", handler);
  }

  get onmessage() {
    return this.#handler("message");
  }

  set onmessage(handler) {
    this.#setHandler("message", handler);
  }

  get onopen() {
    return this.#handler("open");
  }

  set onopen(handler) {
    this.#setHandler("open", handler);
  }

  #handler(type) {
    return this.#handlers.has(type) ? this.#handlers.get(type).handler : null;
  }

  #setHandler(type, handler) {
    const slot = this.#handlers.get(type);
    if (handler === null && slot) {
      this.removeEventListener(type, slot.listener);
      this.#handlers.delete(type);
    } else if (slot) {
      slot.handler = handler;
    } else if (handler !== null) {
      const entry = { handler, listener: (event) => entry.handler.call(this, event) };
      this.#handlers.set(type, entry);
      this.addEventListener(type, entry.listener);
    }
  }

  close() {
    this.closed = true;
  }

  /** Delivers an event as the broker would. */
  emit(type, data, lastEventId = "") {
    if (this.closed) return;
    this.dispatchEvent(new MessageEvent(type, { data: JSON.stringify(data), lastEventId }));
  }

  /** The connection fails, as EventSource reports it: a plain "error" Event. */
  fail() {
    if (this.closed) return;
    this.dispatchEvent(new Event("error"));
  }

  /** The connection opens, as EventSource reports it: a plain "open" Event. */
  open() {
    this.dispatchEvent(new Event("open"));
  }

  static latest() {
    return FakeEventSource.opened[FakeEventSource.opened.length - 1];
  }
}

function client(options = {}) {
  FakeEventSource.opened = [];
  return new SseClient("http://broker.test/sse/events", { EventSource: FakeEventSource, ...options });
}

test("backoff doubles from the first delay, is capped, and jitters within the upper half", () => {
  const options = { reconnectDelay: 1000, maxReconnectDelay: 8000 };
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5].map((attempt) => backoffDelay(attempt, options, () => 1)),
    [1000, 2000, 4000, 8000, 8000, 8000],
  );
  assert.deepEqual(
    [0, 1, 2].map((attempt) => backoffDelay(attempt, options, () => 0)),
    [500, 1000, 2000],
  );
});

test("a dropped stream reconnects after the backoff and resumes after the last id", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const states = [];
  const c = client({ eventTypes: ["commit"], reconnectDelay: 1000, onStateChange: (s) => states.push(s) });
  c.connect();
  const first = FakeEventSource.latest();
  first.emit("connected", { connection_id: "c1" });
  first.emit("commit", { n: 1 }, "41");
  first.emit("commit", { n: 2 }, "42");
  first.fail();
  assert.equal(c.state, State.RECONNECTING);
  assert.equal(FakeEventSource.opened.length, 1, "no reconnect before the delay");
  t.mock.timers.tick(1000);
  assert.equal(FakeEventSource.opened.length, 2);
  const url = new URL(FakeEventSource.latest().url);
  assert.equal(url.searchParams.get("last_event_id"), "42");
  assert.ok(first.closed, "the dead source is closed");
  FakeEventSource.latest().emit("connected", { connection_id: "c2" });
  assert.equal(c.state, State.CONNECTED);
  assert.deepEqual(states, [State.CONNECTING, State.CONNECTED, State.RECONNECTING, State.CONNECTED]);
  c.close();
});

test("after maxReconnectAttempts failures the client goes offline and reports it", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const errors = [];
  const disconnects = [];
  const c = client({
    reconnectDelay: 100,
    maxReconnectDelay: 100,
    maxReconnectAttempts: 2,
    onError: (e) => errors.push(e.message),
    onDisconnect: (d) => disconnects.push(d.willReconnect),
  });
  c.connect();
  FakeEventSource.latest().fail();
  t.mock.timers.tick(100);
  FakeEventSource.latest().fail();
  t.mock.timers.tick(100);
  FakeEventSource.latest().fail();
  assert.equal(c.state, State.OFFLINE);
  assert.equal(FakeEventSource.opened.length, 3, "the first connect plus two attempts");
  assert.deepEqual(disconnects, [true, true, false]);
  assert.match(errors[0], /gave up after 2/);
  t.mock.timers.tick(10_000);
  assert.equal(FakeEventSource.opened.length, 3, "no attempt after giving up");
});

test("a successful connect resets the attempt count", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const delays = [];
  const c = client({ reconnectDelay: 100, maxReconnectDelay: 10_000, onDisconnect: (d) => delays.push(d.delay) });
  c.connect();
  FakeEventSource.latest().fail();
  t.mock.timers.tick(10_000);
  FakeEventSource.latest().fail();
  t.mock.timers.tick(10_000);
  FakeEventSource.latest().emit("connected", { connection_id: "c" });
  FakeEventSource.latest().fail();
  // Jitter keeps each delay within [half, full] of its step: 100, 200, then 100 again.
  assert.ok(delays[0] >= 50 && delays[0] <= 100, `${delays}`);
  assert.ok(delays[1] >= 100 && delays[1] <= 200, `${delays}`);
  assert.ok(delays[2] >= 50 && delays[2] <= 100, `${delays}`);
  c.close();
});

test("a stream silent for heartbeatTimeout is presumed dead and replaced", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const reasons = [];
  const c = client({ heartbeatTimeout: 45_000, reconnectDelay: 10, onDisconnect: (d) => reasons.push(d.reason) });
  c.connect();
  FakeEventSource.latest().emit("connected", { connection_id: "c" });
  t.mock.timers.tick(30_000);
  FakeEventSource.latest().emit("heartbeat", { ts: 1 });
  t.mock.timers.tick(30_000);
  assert.deepEqual(reasons, [], "a heartbeat re-arms the watchdog");
  t.mock.timers.tick(15_001);
  assert.deepEqual(reasons, ["heartbeat_timeout"]);
  t.mock.timers.tick(10);
  assert.equal(FakeEventSource.opened.length, 2);
  c.close();
});

test("typed handlers, onText and onProgress receive parsed data", () => {
  const texts = [];
  const progress = [];
  const commits = [];
  const c = client({ onText: (delta) => texts.push(delta), onProgress: (p) => progress.push(p.progress) });
  c.on("commit", (data) => commits.push(data.n));
  c.connect();
  const source = FakeEventSource.latest();
  source.emit("text", { delta: "Hel" }, "1");
  source.emit("text", { delta: "lo" }, "2");
  source.emit("progress", { progress: 40 }, "3");
  source.emit("commit", { n: 7 }, "4");
  assert.deepEqual(texts, ["Hel", "lo"]);
  assert.deepEqual(progress, [40]);
  assert.deepEqual(commits, [7]);
  assert.equal(c.lastEventId, "4");
  c.close();
});

test("filters and the token go into the stream URL", () => {
  const c = client({ eventTypes: ["commit", "risk_alert"], projectId: "p1", accessToken: "tok" });
  c.connect();
  const url = new URL(FakeEventSource.latest().url);
  assert.equal(url.searchParams.get("event_types"), "commit,risk_alert");
  assert.equal(url.searchParams.get("project_id"), "p1");
  assert.equal(url.searchParams.get("access_token"), "tok");
  c.close();
});

test("a task stream closes itself after its task completes, without reconnecting", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  FakeEventSource.opened = [];
  const stream = new TaskStream("gen-1", { EventSource: FakeEventSource, reconnectDelay: 10 });
  stream.connect();
  assert.match(FakeEventSource.latest().url, /\/tasks\/gen-1\/events/);
  FakeEventSource.latest().emit("complete", { result: { tokens: 3 } }, "9");
  assert.equal(stream.state, State.CLOSED);
  assert.ok(FakeEventSource.latest().closed);
  t.mock.timers.tick(60_000);
  assert.equal(FakeEventSource.opened.length, 1);
});

// The broker's `event: error` (a task failed, was cancelled or orphaned) and
// EventSource's own network error share the name "error": in a browser the
// server's event also fires `onerror`. These tests tell the two apart.

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

test("close() stops every timer: no reconnect after an explicit close", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const c = client({ reconnectDelay: 10 });
  c.connect();
  FakeEventSource.latest().fail();
  c.close();
  t.mock.timers.tick(60_000);
  assert.equal(FakeEventSource.opened.length, 1);
  assert.equal(c.state, State.CLOSED);
});

// Keep `mock` referenced for runners that tree-shake unused imports.
void mock;
