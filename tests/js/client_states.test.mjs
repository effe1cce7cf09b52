// The states of src/http/assets/client.js's SseClient on their own stream
// (shareAcrossTabs off: an injected EventSource): what `connect()` does
// once the client gave up, and that a reconnect stays `reconnecting`
// until `connected`, as docs/guides/integration.md's States section draws.

import { test } from "node:test";
import assert from "node:assert/strict";

import { SseClient, State } from "../../src/http/assets/client.js";
import { FakeEventSource } from "./fake_event_source.mjs";

function client(options = {}) {
  FakeEventSource.opened = [];
  return new SseClient("http://broker.test/sse/events", { EventSource: FakeEventSource, ...options });
}

/** Fails the stream and each attempt until the client gives up (Math.random is 1: full steps). */
function giveUp(t, c) {
  for (let attempt = 0; attempt < c.options.maxReconnectAttempts; attempt += 1) {
    FakeEventSource.latest().fail();
    t.mock.timers.tick(c.options.reconnectDelay * 2 ** attempt);
  }
  FakeEventSource.latest().fail();
  assert.equal(c.state, State.OFFLINE);
}

test("connect() on an offline client starts again with every attempt, resuming from its last id", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  t.mock.method(Math, "random", () => 1);
  const errors = [];
  const c = client({ eventTypes: ["commit"], maxReconnectAttempts: 2, reconnectDelay: 500, onError: (e) => errors.push(e.message) });
  c.connect();
  FakeEventSource.latest().emit("connected", { connection_id: "c1" });
  FakeEventSource.latest().emit("commit", { n: 1 }, "41");
  giveUp(t, c);
  assert.deepEqual(errors, ["gave up after 2 reconnect attempts"]);

  c.connect();
  assert.equal(c.state, State.CONNECTING);
  assert.equal(FakeEventSource.opened.length, 4);
  assert.equal(new URL(FakeEventSource.latest().url).searchParams.get("last_event_id"), "41");
  // The broker is still away: a new set of attempts, not one more.
  FakeEventSource.latest().fail();
  assert.equal(c.state, State.RECONNECTING);
  t.mock.timers.tick(500);
  FakeEventSource.latest().fail();
  assert.equal(c.state, State.RECONNECTING);
  t.mock.timers.tick(1000);
  FakeEventSource.latest().emit("connected", { connection_id: "c2" });
  assert.equal(c.state, State.CONNECTED);
  assert.equal(errors.length, 1);
  c.close();
});

test("a reconnect stays `reconnecting` through its waits and attempts until `connected`, after `shutdown` too", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  t.mock.method(Math, "random", () => 1);
  const states = [];
  const c = client({ reconnectDelay: 100, onStateChange: (state) => states.push(state) });
  c.connect();
  FakeEventSource.latest().emit("connected", { connection_id: "c1" });
  FakeEventSource.latest().emit("shutdown", { reason: "server_shutdown", reconnect_after_ms: 1000 });
  t.mock.timers.tick(1000);
  assert.equal(FakeEventSource.opened.length, 2);
  FakeEventSource.latest().fail();
  t.mock.timers.tick(100);
  FakeEventSource.latest().fail();
  t.mock.timers.tick(200);
  FakeEventSource.latest().emit("connected", { connection_id: "c2" });
  assert.deepEqual(states, [State.CONNECTING, State.CONNECTED, State.RECONNECTING, State.CONNECTED]);
  c.close();
});

test("connect() on a closed client starts as `connecting`, its attempts over", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const c = client({ maxReconnectAttempts: 1, reconnectDelay: 100 });
  c.connect();
  FakeEventSource.latest().fail();
  c.close();
  c.connect();
  assert.equal(c.state, State.CONNECTING);
  FakeEventSource.latest().fail();
  assert.equal(c.state, State.RECONNECTING);
  c.close();
});

test("an offline client starts again when the browser comes back online; a closed one, or one with reconnecting off, does not", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  t.mock.method(Math, "random", () => 1);
  // The browser's window: an EventTarget that fires `online`.
  const window = new EventTarget();
  globalThis.addEventListener = window.addEventListener.bind(window);
  globalThis.removeEventListener = window.removeEventListener.bind(window);
  t.after(() => {
    delete globalThis.addEventListener;
    delete globalThis.removeEventListener;
  });
  const online = () => window.dispatchEvent(new Event("online"));

  const c = client({ eventTypes: ["commit"], maxReconnectAttempts: 1, reconnectDelay: 500 });
  c.connect();
  FakeEventSource.latest().emit("connected", { connection_id: "c1" });
  FakeEventSource.latest().emit("commit", { n: 1 }, "7");
  giveUp(t, c);
  online();
  assert.equal(c.state, State.CONNECTING, "started again");
  assert.equal(new URL(FakeEventSource.latest().url).searchParams.get("last_event_id"), "7");
  const opened = FakeEventSource.opened.length;
  online();
  assert.equal(FakeEventSource.opened.length, opened, "an online event while connecting opens nothing more");

  giveUp(t, c);
  c.close();
  online();
  assert.equal(c.state, State.CLOSED, "closed stays closed");

  const off = client({ maxReconnectAttempts: 0 });
  off.connect();
  FakeEventSource.latest().emit("connected", { connection_id: "c2" });
  FakeEventSource.latest().fail();
  assert.equal(off.state, State.OFFLINE);
  online();
  assert.equal(off.state, State.OFFLINE, "reconnecting off: nothing starts it but connect()");
});
