// Unit tests of the browser client (src/http/assets/client.js) under Node's
// test runner: `node --test tests/js/`. EventSource is replaced by a fake the
// tests drive, and timers are mocked, so backoff and heartbeat timing are
// checked exactly and instantly.

import { test, mock } from "node:test";
import assert from "node:assert/strict";

import { SseClient, TaskStream, State, backoffDelay } from "../../src/http/assets/client.js";
import { FakeEventSource } from "./fake_event_source.mjs";

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

test("onReasoning receives the model's thinking, apart from onText's answer", () => {
  const texts = [];
  const thoughts = [];
  const c = client({ onText: (delta) => texts.push(delta), onReasoning: (delta, data) => thoughts.push([delta, data.task_id]) });
  c.connect();
  const source = FakeEventSource.latest();
  source.emit("reasoning", { task_id: "t", delta: "Let me think." }, "1");
  source.emit("text", { task_id: "t", delta: "Four." }, "2");
  assert.deepEqual(thoughts, [["Let me think.", "t"]]);
  assert.deepEqual(texts, ["Four."]);
  assert.equal(c.lastEventId, "2", "a reasoning event advances the resume id too");
  c.close();
});

test("onTextEnd and onReasoningEnd say where a part of text ends, and advance the resume id", () => {
  const seen = [];
  const c = client({
    onText: (delta) => seen.push(["text", delta]),
    onTextEnd: (data) => seen.push(["text_end", data.task_id]),
    onReasoningEnd: (data) => seen.push(["reasoning_end", data.task_id]),
  });
  c.connect();
  const source = FakeEventSource.latest();
  source.emit("reasoning_end", { task_id: "t" }, "1");
  source.emit("text", { task_id: "t", delta: "One." }, "2");
  source.emit("text_end", { task_id: "t" }, "3");
  source.emit("text", { task_id: "t", delta: "Two." }, "4");
  assert.deepEqual(seen, [["reasoning_end", "t"], ["text", "One."], ["text_end", "t"], ["text", "Two."]]);
  assert.equal(c.lastEventId, "4");
  c.close();
});

test("onToolCall and onToolResult receive the tool events' data, and advance the resume id", () => {
  const seen = [];
  const c = client({
    onToolCall: (data) => seen.push(["call", data.tool_call_id, data.tool_name, data.input]),
    onToolResult: (data) => seen.push(["result", data.tool_call_id, data.output ?? data.error]),
    onToolApproval: (data) => seen.push(["approval", data.tool_call_id, data.approval_id]),
    onStepEnd: (data) => seen.push(["step", data.result && data.result.finish_reason]),
  });
  c.connect();
  const source = FakeEventSource.latest();
  source.emit("tool_call", { task_id: "t", tool_call_id: "c1", tool_name: "weather", input: { city: "Oslo" } }, "3");
  source.emit("tool_result", { task_id: "t", tool_call_id: "c1", output: { celsius: -3 } }, "4");
  source.emit("tool_result", { task_id: "t", tool_call_id: "c2", error: "down" }, "5");
  source.emit("tool_approval", { task_id: "t", tool_call_id: "c3", approval_id: "ap1" }, "6");
  source.emit("step_end", { task_id: "t", result: { finish_reason: "tool-calls" } }, "7");
  assert.deepEqual(seen, [
    ["call", "c1", "weather", { city: "Oslo" }],
    ["result", "c1", { celsius: -3 }],
    ["result", "c2", "down"],
    ["approval", "c3", "ap1"],
    ["step", "tool-calls"],
  ]);
  assert.equal(c.lastEventId, "7");
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

test("a task stream on another origin opens there, with its baseUrl", () => {
  FakeEventSource.opened = [];
  const stream = new TaskStream("gen 1", { EventSource: FakeEventSource, baseUrl: "https://sse.example.com/broker/" });
  stream.connect();
  assert.match(FakeEventSource.latest().url, /^https:\/\/sse\.example\.com\/broker\/tasks\/gen%201\/events/);
  stream.close();
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

test("with getTicket every (re)connect spends a fresh ticket and no token goes in the URL", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  let issued = 0;
  const c = client({
    accessToken: "long-lived-token",
    eventTypes: ["commit"],
    reconnectDelay: 100,
    maxReconnectDelay: 100,
    getTicket: async () => `ticket-${++issued}`,
  });
  c.connect();
  await new Promise((resolve) => setImmediate(resolve));
  const first = new URL(FakeEventSource.latest().url);
  assert.equal(first.searchParams.get("ticket"), "ticket-1");
  assert.equal(first.searchParams.get("access_token"), null, "the token stays out of the URL");
  FakeEventSource.latest().emit("connected", { connection_id: "c1" });
  FakeEventSource.latest().emit("commit", { n: 1 }, "7");
  FakeEventSource.latest().fail();
  t.mock.timers.tick(100);
  await new Promise((resolve) => setImmediate(resolve));
  const second = new URL(FakeEventSource.latest().url);
  assert.equal(FakeEventSource.opened.length, 2);
  assert.equal(second.searchParams.get("ticket"), "ticket-2", "a used ticket is never sent again");
  assert.equal(second.searchParams.get("last_event_id"), "7");
  c.close();
});

test("a failed ticket fetch is a lost connection, retried with backoff; close() voids a fetch under way", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const disconnects = [];
  let calls = 0;
  const c = client({
    reconnectDelay: 100,
    maxReconnectDelay: 100,
    onDisconnect: (info) => disconnects.push(info.reason),
    getTicket: async () => {
      calls += 1;
      if (calls === 1) throw new Error("401");
      return "ticket-ok";
    },
  });
  c.connect();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(FakeEventSource.opened.length, 0, "no stream without a ticket");
  assert.deepEqual(disconnects, ["ticket"]);
  t.mock.timers.tick(100);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(new URL(FakeEventSource.latest().url).searchParams.get("ticket"), "ticket-ok");
  c.close();

  let release;
  const slow = client({ getTicket: () => new Promise((resolve) => (release = resolve)) });
  slow.connect();
  await new Promise((resolve) => setImmediate(resolve));
  slow.close();
  release("late-ticket");
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(FakeEventSource.opened.length, 0, "a closed client opens nothing");
});

test("fetchTicket posts with the token in a header and answers the ticket", async () => {
  const { fetchTicket } = await import("../../src/http/assets/client.js");
  const seen = [];
  const fakeFetch = async (url, init) => {
    seen.push({ url, init });
    return { ok: true, status: 201, json: async () => ({ ticket: "t-1", expires_at: 0 }) };
  };
  assert.equal(await fetchTicket("/sse/tickets", () => "tok", fakeFetch), "t-1");
  assert.equal(seen[0].init.method, "POST");
  assert.equal(seen[0].init.headers.Authorization, "Bearer tok");
  const refused = async () => ({ ok: false, status: 401, json: async () => ({}) });
  await assert.rejects(fetchTicket("/sse/tickets", "tok", refused), /401/);
});

/** A `fetch` refusing every ticket request with `status` and the broker's error body. */
function refusingTickets(status, code, message) {
  const asked = [];
  const fetch = async (url) => {
    asked.push(url);
    return { ok: false, status, json: async () => ({ error: { code, message } }) };
  };
  return { fetch, asked };
}

test("a ticket request refused with 401 is retried, and giving up names it: not only 'gave up after N attempts'", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { fetchTicket } = await import("../../src/http/assets/client.js");
  const broker = refusingTickets(401, "unauthorized", "the token has expired");
  const errors = [];
  const disconnects = [];
  const c = client({
    reconnectDelay: 100,
    maxReconnectDelay: 100,
    maxReconnectAttempts: 2,
    getTicket: () => fetchTicket("/sse/tickets", "expired-token", broker.fetch),
    onError: (error) => errors.push(error),
    onDisconnect: (info) => disconnects.push([info.reason, info.willReconnect]),
  });
  c.connect();
  for (let i = 0; i < 3; i += 1) {
    await new Promise((resolve) => setImmediate(resolve));
    t.mock.timers.tick(100);
  }
  await new Promise((resolve) => setImmediate(resolve));

  assert.equal(broker.asked.length, 3, "the first try and two retries");
  assert.deepEqual(disconnects, [["ticket", true], ["ticket", true], ["ticket", false]]);
  assert.equal(c.state, State.OFFLINE);
  assert.equal(errors.length, 1);
  assert.match(errors[0].message, /gave up after 2 reconnect attempts: the ticket request answered 401: the token has expired/);
  assert.equal(errors[0].cause.status, 401);
  assert.equal(errors[0].cause.code, "unauthorized");
});

test("a ticket request refused with 403 ends the client at once with the refusal", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { fetchTicket, StreamRefusedError } = await import("../../src/http/assets/client.js");
  const broker = refusingTickets(403, "forbidden", "this endpoint needs the `subscribe` scope");
  const errors = [];
  const disconnects = [];
  const c = client({
    getTicket: () => fetchTicket("/sse/tickets", "publish-only", broker.fetch),
    onError: (error) => errors.push(error),
    onDisconnect: (info) => disconnects.push([info.reason, info.willReconnect]),
  });
  c.connect();
  await new Promise((resolve) => setImmediate(resolve));
  t.mock.timers.tick(60_000);
  await new Promise((resolve) => setImmediate(resolve));

  assert.equal(broker.asked.length, 1, "no retry can pass");
  assert.equal(c.state, State.CLOSED);
  assert.deepEqual(disconnects, [["refused", false]]);
  assert.ok(errors[0] instanceof StreamRefusedError, String(errors[0]));
  assert.equal(errors[0].status, 403);
  assert.match(errors[0].message, /subscribe/);
});

test("on token_expiring the client posts the app's fresh token for its stream, under the broker's path prefix", async () => {
  const posted = [];
  const c = new SseClient("https://app.test/broker/sse/events", {
    EventSource: FakeEventSource,
    getToken: async () => "fresh-token",
    fetch: async (url, init) => {
      posted.push({ url, init });
      return { ok: true, status: 204 };
    },
  });
  FakeEventSource.opened = [];
  c.connect();
  FakeEventSource.latest().emit("connected", { connection_id: "c-9" });
  FakeEventSource.latest().emit("token_expiring", { expires_at: 1900000000 });
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(posted.length, 1);
  assert.equal(posted[0].url, "https://app.test/broker/sse/connections/c-9/token");
  assert.equal(posted[0].init.method, "POST");
  assert.equal(posted[0].init.headers.Authorization, "Bearer fresh-token");
  assert.equal(FakeEventSource.opened.length, 1, "no reconnect");
  assert.equal(c.state, State.CONNECTED);
  c.close();
});

test("a renewal answered 503 (the stream's instance out of reach) is tried again after Retry-After, a few times", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const answers = [503, 503, 204];
  const posted = [];
  const c = client({
    getToken: async () => "fresh-token",
    fetch: async (url) => {
      posted.push(url);
      const status = answers.shift() ?? 503;
      return { ok: status === 204, status, headers: new Headers({ "Retry-After": "2" }) };
    },
  });
  c.connect();
  FakeEventSource.latest().emit("connected", { connection_id: "c-7" });
  FakeEventSource.latest().emit("token_expiring", { expires_at: 1900000000 });
  const settle = async () => {
    for (let i = 0; i < 5; i += 1) await new Promise((resolve) => setImmediate(resolve));
  };
  await settle();
  assert.equal(posted.length, 1);
  t.mock.timers.tick(1999);
  await settle();
  assert.equal(posted.length, 1, "not before Retry-After");
  t.mock.timers.tick(1);
  await settle();
  assert.equal(posted.length, 2);
  t.mock.timers.tick(2000);
  await settle();
  assert.equal(posted.length, 3, "renewed on the third");
  t.mock.timers.tick(10000);
  await settle();
  assert.equal(posted.length, 3, "nothing after it is renewed");
  // A 403 (another subject's token) is not tried again.
  answers.push(403);
  FakeEventSource.latest().emit("token_expiring", { expires_at: 1900000000 });
  await settle();
  t.mock.timers.tick(10000);
  await settle();
  assert.equal(posted.length, 4);
  c.close();
});

test("with getTicket an expired token reconnects with a fresh ticket instead of failing", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const errors = [];
  let issued = 0;
  const c = client({
    reconnectDelay: 100,
    maxReconnectDelay: 100,
    onError: (e) => errors.push(e.message),
    getTicket: async () => `ticket-${++issued}`,
  });
  c.connect();
  await new Promise((resolve) => setImmediate(resolve));
  FakeEventSource.latest().emit("connected", { connection_id: "c1" });
  FakeEventSource.latest().emit("token_expired", { reason: "token_expired" });
  t.mock.timers.tick(100);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(errors, []);
  assert.equal(FakeEventSource.opened.length, 2);
  assert.equal(new URL(FakeEventSource.latest().url).searchParams.get("ticket"), "ticket-2");
  c.close();
});

test("the stream listens to every type the broker says it carries, so each advances the resume id (and a leader tab passes it on)", () => {
  const c = client();
  c.connect();
  const source = FakeEventSource.latest();
  source.emit("connected", { connection_id: "c1", event_types: ["commit", "file_change"] });
  source.emit("file_change", { path: "a.rs" }, "7");
  assert.equal(c.lastEventId, "7", "a type no handler of this tab wants still counts");
  source.emit("subscription_updated", { event_types: ["deploy_done"] });
  source.emit("deploy_done", {}, "9");
  assert.equal(c.lastEventId, "9");
  c.close();
});

test("after `shutdown` the client waits for the broker's hint, and that wait is not a failed attempt", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  t.mock.method(Math, "random", () => 1);
  const c = client({ reconnectDelay: 100, maxReconnectDelay: 100, maxReconnectAttempts: 1 });
  c.connect();
  FakeEventSource.latest().emit("connected", { connection_id: "c1" });
  FakeEventSource.latest().emit("shutdown", { reason: "server_shutdown", reconnect_after_ms: 1000 });
  t.mock.timers.tick(999);
  assert.equal(FakeEventSource.opened.length, 1, "not before the hint");
  t.mock.timers.tick(1);
  assert.equal(FakeEventSource.opened.length, 2);
  // The broker is still starting: that failure is the first attempt, not the second.
  FakeEventSource.latest().fail();
  assert.notEqual(c.state, State.OFFLINE);
  t.mock.timers.tick(100);
  assert.equal(FakeEventSource.opened.length, 3);
  c.close();
});

test("a token renewed on `token_expiring` is the one a later reconnect carries", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const c = client({
    accessToken: "first-token",
    reconnectDelay: 100,
    maxReconnectDelay: 100,
    getToken: async () => "fresh-token",
    fetch: async () => ({ ok: true, status: 204 }),
  });
  c.connect();
  assert.equal(new URL(FakeEventSource.latest().url).searchParams.get("access_token"), "first-token");
  FakeEventSource.latest().emit("connected", { connection_id: "c1" });
  FakeEventSource.latest().emit("token_expiring", { expires_at: 1900000000 });
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
  FakeEventSource.latest().fail();
  t.mock.timers.tick(100);
  assert.equal(FakeEventSource.opened.length, 2);
  assert.equal(new URL(FakeEventSource.latest().url).searchParams.get("access_token"), "fresh-token");
  c.close();
});


/** A fetch stand-in answering `status` with a JSON error body; records what it was asked. */
function refusingFetch(status, body, headers = {}) {
  const asked = [];
  const fetch = async (url, init) => {
    asked.push({ url, init });
    return {
      ok: status >= 200 && status < 300,
      status,
      headers: { get: (name) => headers[name] ?? null },
      json: async () => body,
    };
  };
  return { fetch, asked };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

test("a stream the broker refuses for good ends with its status and code, not with reconnect attempts", async () => {
  const errors = [];
  const states = [];
  const { fetch, asked } = refusingFetch(404, { error: { code: "task_not_found", message: "no task gen-1" } });
  FakeEventSource.opened = [];
  const c = new TaskStream("gen-1", {
    EventSource: FakeEventSource,
    fetch,
    onError: (e) => errors.push(e),
    onStateChange: (s) => states.push(s),
  });
  c.connect();
  FakeEventSource.latest().refuse();
  await settle();
  assert.equal(asked.length, 1, "asked once why");
  assert.equal(new URL(asked[0].url, "http://localhost/").pathname, "/tasks/gen-1/events");
  assert.equal(asked[0].init.headers.Accept, "text/event-stream");
  assert.equal(errors.length, 1);
  assert.equal(errors[0].name, "StreamRefusedError");
  assert.equal(errors[0].status, 404);
  assert.equal(errors[0].code, "task_not_found");
  assert.equal(errors[0].message, "no task gen-1");
  assert.equal(c.state, State.CLOSED);
  assert.equal(FakeEventSource.opened.length, 1, "never reconnected");
});

test("a refusal that may pass (503) is retried after its Retry-After, not before", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const errors = [];
  const { fetch } = refusingFetch(503, { error: { code: "too_many_connections", message: "full" } }, { "Retry-After": "5" });
  const c = client({ fetch, reconnectDelay: 100, onError: (e) => errors.push(e) });
  c.connect();
  FakeEventSource.latest().refuse();
  await settle();
  assert.equal(c.state, State.RECONNECTING);
  t.mock.timers.tick(4999);
  assert.equal(FakeEventSource.opened.length, 1, "not before Retry-After");
  t.mock.timers.tick(1);
  assert.equal(FakeEventSource.opened.length, 2);
  assert.deepEqual(errors, []);
  c.close();
});

test("giving up on refusals that may pass names the broker's last words, not only the attempts", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const errors = [];
  const body = { error: { code: "rate_limited", message: "this user has too many open streams; retry in 1 s" } };
  const { fetch } = refusingFetch(429, body, { "Retry-After": "1" });
  const c = client({ fetch, reconnectDelay: 100, maxReconnectAttempts: 2, onError: (e) => errors.push(e) });
  c.connect();
  for (let round = 0; round < 4 && c.state !== State.OFFLINE; round += 1) {
    FakeEventSource.latest().refuse();
    await settle();
    t.mock.timers.tick(1000);
  }
  assert.equal(c.state, State.OFFLINE);
  assert.equal(errors.length, 1);
  assert.match(errors[0].message, /^gave up after 2 reconnect attempts: this user has too many open streams; retry in 1 s$/);
  assert.equal(errors[0].cause.name, "StreamRefusedError");
  assert.deepEqual([errors[0].cause.status, errors[0].cause.code], [429, "rate_limited"]);
});

test("giving up when the question itself fails (the network, a CORS refusal) names the failure", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const errors = [];
  const fetch = async () => {
    throw new TypeError("Failed to fetch");
  };
  const c = client({ fetch, reconnectDelay: 100, maxReconnectAttempts: 1, onError: (e) => errors.push(e) });
  c.connect();
  for (let round = 0; round < 3 && c.state !== State.OFFLINE; round += 1) {
    FakeEventSource.latest().refuse();
    await settle();
    t.mock.timers.tick(200);
  }
  assert.equal(c.state, State.OFFLINE);
  assert.match(errors[0].message, /^gave up after 1 reconnect attempts: Failed to fetch$/);
});

test("a refusal the question no longer meets (the stream opens now) reconnects, and the question's stream is aborted", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  let aborted = false;
  const fetch = async (_url, init) => {
    init.signal.addEventListener("abort", () => {
      aborted = true;
    });
    return { ok: true, status: 200, headers: { get: () => null }, json: async () => null };
  };
  const c = client({ fetch, reconnectDelay: 100, maxReconnectDelay: 100 });
  c.connect();
  FakeEventSource.latest().refuse();
  await settle();
  assert.equal(aborted, true);
  t.mock.timers.tick(100);
  assert.equal(FakeEventSource.opened.length, 2);
  c.close();
});

test("a 401 with getTicket is asked about with a fresh ticket and retried; without a way to a new token it ends the client", async () => {
  let issued = 0;
  const withTicket = refusingFetch(401, { error: { code: "unauthorized", message: "expired" } });
  const c = client({ fetch: withTicket.fetch, getTicket: async () => `ticket-${++issued}` });
  c.connect();
  await settle();
  FakeEventSource.latest().refuse();
  await settle();
  await settle();
  assert.equal(new URL(withTicket.asked[0].url).searchParams.get("ticket"), "ticket-2", "not the spent ticket");
  assert.equal(c.state, State.RECONNECTING);
  c.close();

  const errors = [];
  const plain = refusingFetch(401, { error: { code: "unauthorized", message: "bad token" } });
  const d = client({ fetch: plain.fetch, accessToken: "stale", onError: (e) => errors.push(e) });
  d.connect();
  FakeEventSource.latest().refuse();
  await settle();
  assert.equal(errors[0].code, "unauthorized");
  assert.equal(d.state, State.CLOSED);
});

/** A client opened with an expired `accessToken`, whose reconnects the broker refuses with 401. */
function expiredTokenClient(getToken, options = {}) {
  const errors = [];
  const { fetch } = refusingFetch(401, { error: { code: "unauthorized", message: "token expired" } });
  const c = client({
    fetch,
    accessToken: "expired-token",
    getToken: async () => getToken(),
    reconnectDelay: 100,
    maxReconnectDelay: 100,
    onError: (e) => errors.push(e),
    ...options,
  });
  return { c, errors };
}

test("a 401 on a reconnect with accessToken and getToken opens again with a fresh token, not the expired one", async (t) => {
  // The token expired while the network was down: no `token_expiring`
  // reached the client, so only the refusal tells it.
  t.mock.timers.enable({ apis: ["setTimeout"] });
  let issued = 0;
  const { c, errors } = expiredTokenClient(() => `fresh-${++issued}`);
  c.connect();
  FakeEventSource.latest().emit("connected", { connection_id: "c1" });
  FakeEventSource.latest().fail();
  t.mock.timers.tick(100);
  FakeEventSource.latest().refuse();
  await settle();
  t.mock.timers.tick(100);
  await settle();
  await settle();
  assert.equal(FakeEventSource.opened.length, 3);
  assert.equal(new URL(FakeEventSource.latest().url).searchParams.get("access_token"), "fresh-1");
  FakeEventSource.latest().emit("connected", { connection_id: "c2" });
  assert.equal(c.state, State.CONNECTED);
  assert.deepEqual(errors, []);
  // Later drops reuse the fresh token without asking again.
  FakeEventSource.latest().fail();
  t.mock.timers.tick(100);
  assert.equal(new URL(FakeEventSource.latest().url).searchParams.get("access_token"), "fresh-1");
  assert.equal(issued, 1);
  c.close();
});

test("a 401 on the last reconnect attempt still asks getToken; a getToken that cannot help is given up on", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  let issued = 0;
  const { c, errors } = expiredTokenClient(() => (++issued, "still-expired"), { maxReconnectAttempts: 2 });
  c.connect();
  FakeEventSource.latest().emit("connected", { connection_id: "c1" });
  // The network is down for two attempts: the last one left meets the 401.
  FakeEventSource.latest().fail();
  t.mock.timers.tick(100);
  FakeEventSource.latest().fail();
  t.mock.timers.tick(100);
  FakeEventSource.latest().refuse();
  await settle();
  assert.notEqual(c.state, State.OFFLINE, "a stale token is no failed attempt");
  t.mock.timers.tick(100);
  await settle();
  await settle();
  assert.equal(issued, 1, "getToken asked");
  assert.equal(new URL(FakeEventSource.latest().url).searchParams.get("access_token"), "still-expired");
  // What getToken gave is refused too, again and again: counted, then given up.
  for (let round = 0; round < 4 && c.state !== State.OFFLINE; round += 1) {
    FakeEventSource.latest().refuse();
    await settle();
    t.mock.timers.tick(100);
    await settle();
    await settle();
  }
  assert.equal(c.state, State.OFFLINE);
  assert.match(errors.at(-1).message, /gave up after 2 reconnect attempts/);
  assert.ok(issued <= 3, `getToken asked ${issued} times`);
});

test("with autoReconnect off (no attempts), `token_expired` ends the client with a token-expired error, a lost stream for onDisconnect", () => {
  const seen = [];
  const c = client({
    accessToken: "old-token",
    getToken: async () => "new-token",
    maxReconnectAttempts: 0,
    onError: (e) => seen.push(["error", e.message]),
    onDisconnect: (info) => seen.push(["disconnect", info]),
  });
  c.connect();
  FakeEventSource.latest().emit("connected", { connection_id: "c1" });
  FakeEventSource.latest().emit("token_expired", { reason: "token_expired" });
  assert.deepEqual(seen, [
    ["disconnect", { reason: "token_expired", willReconnect: false, delay: null }],
    ["error", "token expired"],
  ]);
  assert.equal(c.state, State.CLOSED);
});

test("with accessToken and getToken, `token_expired` reconnects with a fresh token instead of failing", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const errors = [];
  const c = client({
    accessToken: "old-token",
    getToken: async () => "new-token",
    reconnectDelay: 100,
    maxReconnectDelay: 100,
    onError: (e) => errors.push(e.message),
  });
  c.connect();
  FakeEventSource.latest().emit("connected", { connection_id: "c1" });
  FakeEventSource.latest().emit("token_expired", { reason: "token_expired" });
  t.mock.timers.tick(100);
  await settle();
  await settle();
  assert.deepEqual(errors, []);
  assert.equal(FakeEventSource.opened.length, 2);
  assert.equal(new URL(FakeEventSource.latest().url).searchParams.get("access_token"), "new-token");
  c.close();
});

test("a network error (EventSource still connecting) is a lost connection, not a question", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { fetch, asked } = refusingFetch(404, {});
  const c = client({ fetch, reconnectDelay: 100, maxReconnectDelay: 100 });
  c.connect();
  FakeEventSource.latest().fail();
  await settle();
  assert.equal(asked.length, 0);
  assert.equal(c.state, State.RECONNECTING);
  c.close();
});
