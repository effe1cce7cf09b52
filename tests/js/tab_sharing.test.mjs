// Tab sharing (src/http/assets/tabs.js) as client.js uses it, with the
// browser's BroadcastChannel and Web Locks replaced by stand-ins
// (fake_tabs.mjs): each "tab" is a client of this process. The same
// sharing runs in Chromium in tests/api/browser/tab_sharing.rs.

import { test } from "node:test";
import assert from "node:assert/strict";

import { SseClient, State, TaskStream } from "../../src/http/assets/client.js";
import { FakeEventSource } from "./fake_event_source.mjs";
import { FakeBroadcastChannel, installTabs, settle } from "./fake_tabs.mjs";

/**
 * Shared tabs for one test: `tab(options)` makes a tab's client of
 * `url` (a task's id for a `TaskStream`) that records what reaches it in `tab.seen`. Timers are mocked;
 * Math.random is 1, so each backoff is its full step.
 */
function tabs(t, url = "/sse/events", Client = SseClient) {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  t.mock.method(Math, "random", () => 1);
  const restore = installTabs();
  globalThis.EventSource = FakeEventSource;
  FakeEventSource.opened = [];
  const clients = [];
  t.after(() => {
    for (const client of clients) client.close();
    delete globalThis.EventSource;
    restore();
  });
  return (options = {}) => {
    const seen = { commits: [], connects: [], disconnects: [], errors: [], states: [] };
    const client = new Client(url, {
      // No history unless a test gives some: never the network.
      fetch: historyServer([]).fetch,
      onConnect: (data) => seen.connects.push(data.connection_id),
      onDisconnect: (info) => seen.disconnects.push([info.reason, info.willReconnect]),
      onError: (error) => seen.errors.push(error.message),
      onStateChange: (state) => seen.states.push(state),
      ...options,
    });
    client.on("commit", (data, event) => seen.commits.push(Number(event.lastEventId)));
    client.seen = seen;
    clients.push(client);
    return client;
  };
}

/** The channel of a tab's share: freezing it freezes the tab, as far as the others can tell. */
function channelOf(client) {
  return client.tabs.membership.channel;
}

/** A `fetch` answering `/sse/history` from `events`, filtered by its query as the broker filters. */
function historyServer(events) {
  const asked = [];
  const fetch = async (url) => {
    const query = new URL(url).searchParams;
    asked.push(query);
    const types = query.get("event_types") ? query.get("event_types").split(",") : null;
    const project = query.get("project_id");
    const after = Number(query.get("after"));
    const matching = events.filter(
      (e) => e.id > after && (!types || types.includes(e.event_type)) && (!project || e.project_id === project),
    );
    return { ok: true, json: async () => ({ events: matching, next_after: null }) };
  };
  return { fetch, asked };
}

/** Starts `leader` (it takes the lock), then `followers`; the leader's stream is connected. */
async function share(leader, ...followers) {
  leader.connect();
  await settle();
  assert.ok(leader.tabs.leader, "the first tab leads");
  const source = FakeEventSource.latest();
  source.emit("connected", { connection_id: "c1", event_types: ["commit"] }, "10");
  for (const follower of followers) {
    follower.connect();
    await settle();
    assert.ok(!follower.tabs.leader);
  }
  return source;
}

test("tabs share one stream: one EventSource, every event in every tab", async (t) => {
  const tab = tabs(t);
  const a = tab();
  const b = tab();
  const source = await share(a, b);
  source.emit("commit", { n: 1 }, "11");
  await settle();
  assert.equal(FakeEventSource.opened.length, 1);
  assert.deepEqual(a.seen.commits, [11]);
  assert.deepEqual(b.seen.commits, [11]);
  assert.equal(b.state, State.CONNECTED);
});

test("clients with getTicket and no token open a stream each: a ticket does not say whose stream it is", async (t) => {
  // Two users signed in side by side (a token kept per tab), each fetching
  // tickets with their own token: sharing would show bob alice's events.
  const tab = tabs(t);
  const alice = tab({ getTicket: () => "ticket-alice", shareKey: undefined });
  const bob = tab({ getTicket: () => "ticket-bob", shareKey: "" });
  alice.connect();
  bob.connect();
  await settle();
  const urls = FakeEventSource.opened.map((source) => source.url);
  assert.equal(urls.length, 2, `one stream each: ${urls}`);
  assert.ok(urls.some((url) => url.includes("ticket=ticket-alice")));
  assert.ok(urls.some((url) => url.includes("ticket=ticket-bob")));
  FakeEventSource.opened.find((source) => source.url.includes("ticket-alice")).emit("commit", { n: 1 }, "11");
  await settle();
  assert.deepEqual(alice.seen.commits, [11]);
  assert.deepEqual(bob.seen.commits, [], "nothing of alice's stream reaches bob");
});

test("clients with getTicket share when they name the same shareKey, and not across keys", async (t) => {
  const tab = tabs(t);
  const alice = tab({ getTicket: () => "ticket-alice-1", shareKey: "alice" });
  const aliceAgain = tab({ getTicket: () => "ticket-alice-2", shareKey: "alice" });
  const bob = tab({ getTicket: () => "ticket-bob", shareKey: "bob" });
  const source = await share(alice, aliceAgain);
  bob.connect();
  await settle();
  assert.equal(FakeEventSource.opened.length, 2, "alice's tabs share; bob has his own");
  assert.ok(bob.tabs.leader, "bob leads a share of his own");
  source.emit("commit", { n: 1 }, "11");
  await settle();
  assert.deepEqual(alice.seen.commits, [11]);
  assert.deepEqual(aliceAgain.seen.commits, [11]);
  assert.deepEqual(bob.seen.commits, []);
});

test("a follower joining late gets onConnect and connectionId from the leader's `connected` frame, and its position", async (t) => {
  const tab = tabs(t);
  const a = tab();
  const b = tab();
  const source = await share(a);
  source.emit("commit", { n: 1 }, "11");
  b.connect();
  await settle();
  assert.deepEqual(b.seen.connects, ["c1"]);
  assert.equal(b.connectionId, "c1");
  assert.equal(b.state, State.CONNECTED);
  assert.equal(b.lastEventId, "11", "where the stream is, not where it started");
  assert.deepEqual(a.seen.connects, ["c1"], "the leader's own onConnect ran once");
});

test("a follower gets onDisconnect for each stream the leader loses, and onError when it gives up; connect() on either tab starts again", async (t) => {
  const tab = tabs(t);
  const options = { maxReconnectAttempts: 2, reconnectDelay: 500 };
  const a = tab(options);
  const b = tab(options);
  await share(a, b);
  // The broker goes away: the first drop and two failed attempts.
  FakeEventSource.latest().fail();
  t.mock.timers.tick(500);
  FakeEventSource.latest().fail();
  t.mock.timers.tick(1000);
  FakeEventSource.latest().fail();
  await settle();
  for (const client of [a, b]) {
    assert.equal(client.state, State.OFFLINE);
    assert.deepEqual(client.seen.disconnects, [
      ["network", true],
      ["network", true],
      ["network", false],
    ]);
    assert.deepEqual(client.seen.errors, ["gave up after 2 reconnect attempts"]);
  }
  assert.equal(FakeEventSource.opened.length, 3);

  // The broker is back: the follower's connect() has the leader start again.
  b.connect();
  assert.equal(b.state, State.CONNECTING);
  await settle();
  assert.equal(FakeEventSource.opened.length, 4, "the leader opens the stream again");
  assert.equal(a.state, State.CONNECTING);
  assert.equal(new URL(FakeEventSource.latest().url).searchParams.get("last_event_id"), "10");
  FakeEventSource.latest().emit("connected", { connection_id: "c2" });
  await settle();
  assert.equal(b.state, State.CONNECTED);
  assert.equal(b.connectionId, "c2");

  // And again, from the leader's tab: its attempts start over too.
  FakeEventSource.latest().fail();
  t.mock.timers.tick(500);
  FakeEventSource.latest().fail();
  t.mock.timers.tick(1000);
  FakeEventSource.latest().fail();
  assert.equal(a.state, State.OFFLINE);
  a.connect();
  assert.equal(a.state, State.CONNECTING);
  assert.equal(FakeEventSource.opened.length, 7);
  FakeEventSource.latest().fail();
  assert.equal(a.state, State.RECONNECTING, "a whole set of attempts, not one");
});

test("a tab joining a stream the leader gave up on has it start again (a React hook's reconnect() closes and connects)", async (t) => {
  const tab = tabs(t);
  const options = { maxReconnectAttempts: 0 };
  const a = tab(options);
  const b = tab(options);
  await share(a, b);
  FakeEventSource.latest().fail();
  await settle();
  assert.equal(b.state, State.OFFLINE);
  b.close();
  b.connect();
  await settle();
  assert.equal(FakeEventSource.opened.length, 2);
  FakeEventSource.latest().emit("connected", { connection_id: "c2" });
  await settle();
  assert.equal(a.state, State.CONNECTED);
  assert.equal(b.state, State.CONNECTED);
  assert.deepEqual(b.seen.connects, ["c1", "c2"]);
});

test("a follower leaves a frozen leader: it opens its own stream after its own last id, and ignores what the old leader posts later", async (t) => {
  const tab = tabs(t);
  // Frozen, the leader's own timers do not run either: its watchdog never fires.
  const a = tab({ heartbeatTimeout: Infinity });
  const b = tab();
  const source = await share(a, b);
  source.emit("commit", { n: 1 }, "11");
  await settle();
  channelOf(a).frozen = true;
  t.mock.timers.tick(45_000);
  await settle();
  assert.equal(b.state, State.CONNECTED, "a ping first");
  t.mock.timers.tick(5_000);
  await settle();
  assert.deepEqual(b.seen.disconnects, [["heartbeat_timeout", true]]);
  assert.equal(b.state, State.RECONNECTING);
  t.mock.timers.tick(1_000);
  assert.equal(FakeEventSource.opened.length, 2);
  const own = FakeEventSource.latest();
  assert.equal(new URL(own.url).searchParams.get("last_event_id"), "11");
  own.emit("connected", { connection_id: "c2" });
  own.emit("commit", { n: 2 }, "12");

  // The old leader thaws, passes on what its stream had meanwhile, and
  // finds its stream dead.
  channelOf(a).frozen = false;
  source.emit("commit", { n: 2 }, "12");
  source.emit("commit", { n: 3 }, "13");
  source.fail();
  await settle();
  own.emit("commit", { n: 3 }, "13");
  assert.deepEqual(b.seen.commits, [11, 12, 13]);
  assert.equal(b.connectionId, "c2");
  assert.equal(b.state, State.CONNECTED);
  assert.deepEqual(b.seen.disconnects, [["heartbeat_timeout", true]], "the old leader's loss is not this tab's");
  assert.equal(a.state, State.RECONNECTING);
});

test("a follower keeps following a live leader through a silence longer than heartbeatTimeout", async (t) => {
  const tab = tabs(t);
  const options = { reconnectDelay: 60_000, maxReconnectDelay: 60_000 };
  const a = tab(options);
  const b = tab(options);
  await share(a, b);
  // The broker is down: the leader waits a minute before its next attempt, silent.
  FakeEventSource.latest().fail();
  await settle();
  for (let i = 0; i < 4; i += 1) {
    t.mock.timers.tick(15_000);
    await settle();
  }
  assert.ok(b.tabs && !b.tabs.leader, "still a follower");
  assert.equal(FakeEventSource.opened.length, 2, "the leader's attempt only");
  assert.equal(b.state, State.RECONNECTING);
});

test("a follower that catches up from /sse/history reads exactly the stream URL's filter", async (t) => {
  const tab = tabs(t, "/sse/events?project_id=p1&event_types=commit");
  const history = historyServer([
    { id: 12, event_type: "commit", project_id: "p2", data: {} },
    { id: 13, event_type: "risk_alert", project_id: "p1", data: {} },
    { id: 14, event_type: "commit", project_id: "p1", data: {} },
  ]);
  const a = tab({ fetch: history.fetch });
  const b = tab({ fetch: history.fetch });
  const risks = [];
  b.on("risk_alert", (data, event) => risks.push(event.lastEventId));
  const source = await share(a, b);
  source.emit("commit", { n: 1 }, "11");
  await settle();
  b.close();
  b.connect();
  await settle();
  assert.equal(history.asked.length, 1);
  assert.equal(history.asked[0].get("project_id"), "p1");
  assert.equal(history.asked[0].get("event_types"), "commit");
  assert.deepEqual(b.seen.commits, [11, 14]);
  assert.deepEqual(risks, []);
});

test("after `subscription_updated` a follower's catch-up reads the new filter", async (t) => {
  const tab = tabs(t);
  const history = historyServer([
    { id: 12, event_type: "risk_alert", project_id: "p1", data: {} },
    { id: 13, event_type: "commit", project_id: "p2", data: {} },
  ]);
  const a = tab({ eventTypes: ["commit"], fetch: history.fetch });
  const b = tab({ eventTypes: ["commit"], fetch: history.fetch });
  const risks = [];
  b.on("risk_alert", (data, event) => risks.push(event.lastEventId));
  const source = await share(a, b);
  source.emit("subscription_updated", { connection_id: "c1", event_types: ["commit", "risk_alert"], project_id: "p1" });
  source.emit("commit", { n: 1 }, "11");
  await settle();
  b.close();
  b.connect();
  await settle();
  assert.equal(history.asked[0].get("event_types"), "commit,risk_alert");
  assert.equal(history.asked[0].get("project_id"), "p1");
  assert.deepEqual(risks, ["12"]);
  assert.deepEqual(b.seen.commits, [11]);
});

test("a closed tab's client leaves the share: nothing reaches it, and its channel is closed", async (t) => {
  const tab = tabs(t);
  const a = tab();
  const b = tab();
  const source = await share(a, b);
  const channel = channelOf(b);
  b.close();
  source.emit("commit", { n: 1 }, "11");
  await settle();
  assert.deepEqual(b.seen.commits, []);
  assert.ok(channel.closed);
  assert.ok(!FakeBroadcastChannel.channels.has(channel));
});

/** A task's text as one tab's `onText` put it together, and every `replay_reset` it saw. */
function answerOf(options = {}) {
  const answer = { text: "", resets: [], progress: [] };
  return {
    answer,
    options: {
      onText: (delta) => {
        answer.text += delta;
      },
      onProgress: (data) => answer.progress.push(data.percent),
      ...options,
    },
  };
}

test("a follower gets the leader's live-only events (no `id:` line: they show the id before them)", async (t) => {
  const tab = tabs(t);
  const a = tab();
  const b = tab();
  const notes = { a: [], b: [] };
  a.on("note", (data) => notes.a.push(data.n));
  b.on("note", (data) => notes.b.push(data.n));
  const source = await share(a, b);
  source.emit("commit", { n: 1 }, "11");
  // `persist: false`: EventSource gives each the last id it saw, 11.
  for (const n of [1, 2, 3]) source.emit("note", { n }, "11");
  source.emit("commit", { n: 2 }, "12");
  source.emit("note", { n: 4 }, "12");
  await settle();
  assert.deepEqual(notes.a, [1, 2, 3, 4]);
  assert.deepEqual(notes.b, [1, 2, 3, 4]);
  assert.deepEqual(b.seen.commits, [11, 12]);
});

test("a rejoining follower's catch-up neither doubles the stored events nor drops the live-only ones", async (t) => {
  const tab = tabs(t);
  const history = historyServer([{ id: 12, event_type: "commit", data: {} }]);
  const a = tab({ fetch: history.fetch });
  const b = tab({ fetch: history.fetch });
  const notes = [];
  // The leader's stream carries the type only when someone asks for it.
  a.on("note", () => {});
  b.on("note", (data) => notes.push(data.n));
  const source = await share(a, b);
  source.emit("commit", { n: 1 }, "11");
  await settle();
  b.close();
  b.connect();
  // Held back while b reads the history: the stored 12 comes from both, the note only from the leader.
  source.emit("commit", { n: 2 }, "12");
  source.emit("note", { n: 1 }, "12");
  await settle();
  assert.deepEqual(b.seen.commits, [11, 12]);
  assert.deepEqual(notes, [1]);
});

test("a task's followers get the `progress` snapshot after the leader's reconnect (no `id:` line, it shows the text's)", async (t) => {
  const tab = tabs(t, "t1", TaskStream);
  const one = answerOf();
  const two = answerOf();
  const a = tab(one.options);
  const b = tab(two.options);
  const source = await share(a, b);
  source.emit("text", { delta: "Hel" }, "20");
  source.emit("progress", { percent: 10 }, "20");
  await settle();
  source.fail();
  t.mock.timers.tick(1000);
  const again = FakeEventSource.latest();
  assert.notEqual(again, source);
  assert.equal(new URL(again.url).searchParams.get("last_event_id"), "20");
  again.emit("connected", { connection_id: "c2" });
  // The broker's first round: the missed text rolled up, then the state.
  again.emit("text", { delta: "lo" }, "22");
  again.emit("progress", { percent: 50 }, "22");
  await settle();
  for (const { answer } of [one, two]) {
    assert.equal(answer.text, "Hello");
    assert.deepEqual(answer.progress, [10, 50]);
  }
});

test("a task follower's close() then connect() takes the text up where it left off, without repeating it", async (t) => {
  const tab = tabs(t, "t1", TaskStream);
  const one = answerOf();
  const two = answerOf();
  const a = tab(one.options);
  const b = tab(two.options);
  const resets = [];
  b.on("replay_reset", (data) => resets.push(data));
  const source = await share(a, b);
  source.emit("text", { delta: "The " }, "30");
  source.emit("text", { delta: "answer " }, "31");
  await settle();
  b.close();
  source.emit("text", { delta: "is " }, "32");
  source.emit("progress", { percent: 60 }, "32");
  source.emit("text", { delta: "42" }, "33");
  b.connect();
  await settle();
  assert.deepEqual(resets, []);
  assert.equal(two.answer.text, "The answer is 42");
  assert.equal(one.answer.text, "The answer is 42");
  assert.deepEqual(two.answer.progress, [60]);
  assert.equal(b.state, State.CONNECTED);
  assert.equal(b.lastEventId, "33");
  source.emit("text", { delta: "." }, "34");
  await settle();
  assert.equal(two.answer.text, "The answer is 42.");
});

/**
 * Task tab `b` alone on its own stream (connection c1) gets `texts` (each
 * `[delta, id]`), then closes; a new tab of `tab` leads from the start, its
 * connection c2 rolling all of it up to id 32 as `rolledUp`: b's last id
 * falls inside that one event.
 */
async function leaveInsideRolledUpText(tab, b, texts, rolledUp) {
  b.connect();
  await settle();
  const own = FakeEventSource.latest();
  own.emit("connected", { connection_id: "c1" });
  for (const [delta, id] of texts) own.emit("text", { delta }, id);
  b.close();
  await settle();
  const a = tab();
  a.connect();
  await settle();
  const source = FakeEventSource.latest();
  source.emit("connected", { connection_id: "c2" });
  source.emit("text", { delta: rolledUp }, "32");
}

test("a task follower whose last id falls inside the leader's rolled-up text starts over after a `replay_reset`", async (t) => {
  const tab = tabs(t, "t1", TaskStream);
  const two = answerOf();
  const b = tab(two.options);
  b.on("replay_reset", () => {
    two.answer.text = "";
  });
  // b alone, then closed at 31; a new tab leads from the start, where the
  // broker rolls up 30 to 32 into one.
  await leaveInsideRolledUpText(tab, b, [["The ", "30"], ["answer ", "31"]], "The answer is ");
  await settle();
  b.connect();
  await settle();
  assert.ok(!b.tabs.leader);
  assert.equal(two.answer.text, "The answer is ");
});

test("a task follower starting over gets the new connection's `connected` before the `replay_reset`, as the broker sends them", async (t) => {
  const tab = tabs(t, "t1", TaskStream);
  const order = [];
  const b = tab({ onConnect: (data) => order.push(`connected ${data.connection_id}`) });
  b.on("replay_reset", () => order.push("replay_reset"));
  b.on("text", (data) => order.push(`text ${data.delta}`));
  await leaveInsideRolledUpText(tab, b, [["The ", "30"]], "The answer");
  order.length = 0;

  b.connect();
  await settle();

  assert.ok(!b.tabs.leader);
  assert.deepEqual(order, ["connected c2", "replay_reset", "text The answer"]);
});

test("a late joiner of a task's stream gets the current connection's onConnect once, and the leader keeps no heartbeats", async (t) => {
  const tab = tabs(t, "t1", TaskStream);
  const one = answerOf();
  const two = answerOf();
  const a = tab(one.options);
  const b = tab(two.options);
  const source = await share(a);
  source.emit("text", { delta: "a" }, "40");
  for (let i = 0; i < 5; i += 1) source.emit("heartbeat", {});
  source.fail();
  t.mock.timers.tick(1000);
  const again = FakeEventSource.latest();
  again.emit("connected", { connection_id: "c2" });
  again.emit("text", { delta: "b" }, "41");
  again.emit("heartbeat", {});
  assert.deepEqual(
    a.tabs.seen.map((m) => m.type),
    ["text", "text"],
  );
  b.connect();
  await settle();
  assert.deepEqual(b.seen.connects, ["c2"]);
  assert.equal(b.connectionId, "c2");
  assert.equal(two.answer.text, "ab");
});

test("a task leader's frames for late joiners stay bounded: long text rolls up, and a late joiner still gets all of it", async (t) => {
  const tab = tabs(t, "t1", TaskStream);
  const two = answerOf();
  const a = tab();
  const b = tab(two.options);
  const source = await share(a);
  let text = "";
  for (let i = 1; i <= 2500; i += 1) {
    source.emit("text", { task_id: "t1", delta: `${i} ` }, String(i));
    source.emit("progress", { percent: i / 25 }, String(i));
    text += `${i} `;
  }
  assert.ok(a.tabs.seen.length <= 1000, `kept ${a.tabs.seen.length} frames`);
  b.connect();
  await settle();
  assert.equal(two.answer.text, text);
  assert.equal(two.answer.progress.at(-1), 100);
  assert.equal(b.lastEventId, "2500");
});

test("a tab joining after POST /sse/subscribe changed the shared stream reopens it with that filter when it leads", async (t) => {
  const tab = tabs(t);
  const a = tab({ eventTypes: ["commit"] });
  const b = tab({ eventTypes: ["commit"] });
  const source = await share(a);
  source.emit("subscription_updated", { connection_id: "c1", event_types: ["commit", "risk_alert"], project_id: "p1" });
  source.emit("commit", { n: 1 }, "11");
  b.connect();
  await settle();
  assert.ok(!b.tabs.leader);
  assert.deepEqual(b.seen.connects, ["c1"]);
  a.close();
  await settle();
  assert.ok(b.tabs.leader);
  const query = new URL(FakeEventSource.latest().url).searchParams;
  assert.equal(query.get("event_types"), "commit,risk_alert");
  assert.equal(query.get("project_id"), "p1");
  assert.equal(query.get("last_event_id"), "11");
});

test("a tab joining after the leader reconnected learns the subscription's filter on the live connection, not the dead one", async (t) => {
  const tab = tabs(t);
  const a = tab({ eventTypes: ["commit"] });
  const updates = [];
  const b = tab({ eventTypes: ["commit"] });
  b.on("subscription_updated", (data) => updates.push(data));
  const source = await share(a);
  source.emit("subscription_updated", { connection_id: "c1", event_types: ["commit", "risk_alert"], project_id: "p1" });
  source.fail();
  t.mock.timers.tick(1000);
  const again = FakeEventSource.latest();
  again.emit("connected", { connection_id: "c2", event_types: ["commit", "risk_alert"] }, "11");

  b.connect();
  await settle();

  assert.ok(!b.tabs.leader);
  assert.deepEqual(b.seen.connects, ["c2"]);
  assert.deepEqual(updates, [{ connection_id: "c2", event_types: ["commit", "risk_alert"], project_id: "p1" }]);
});

test("a rejoining follower with getTicket only opens its own stream after its last id instead of a history read it cannot make", async (t) => {
  const tab = tabs(t);
  const history = historyServer([{ id: 12, event_type: "commit", data: {} }]);
  const options = { fetch: history.fetch, getTicket: async () => "tk", shareKey: "alice" };
  const a = tab(options);
  const b = tab(options);
  await settle();
  const source = await share(a, b);
  source.emit("commit", { n: 1 }, "11");
  await settle();
  b.close();
  source.emit("commit", { n: 2 }, "12");
  b.connect();
  await settle();
  assert.equal(history.asked.length, 0, "no request that would be refused");
  assert.equal(b.tabs, null);
  const own = FakeEventSource.latest();
  assert.notEqual(own, source);
  const query = new URL(own.url).searchParams;
  assert.equal(query.get("ticket"), "tk");
  assert.equal(query.get("last_event_id"), "11");
  own.emit("connected", { connection_id: "c2" });
  own.emit("commit", { n: 2 }, "12");
  source.emit("commit", { n: 3 }, "13");
  own.emit("commit", { n: 3 }, "13");
  await settle();
  assert.deepEqual(b.seen.commits, [11, 12, 13]);
  assert.deepEqual(b.seen.errors, []);
  assert.equal(b.state, State.CONNECTED);
});

test("a rejoining follower whose history read fails opens its own stream after its last id: no gap", async (t) => {
  const tab = tabs(t);
  const refused = async () => ({ ok: false, status: 401, json: async () => ({}) });
  const a = tab({ fetch: refused, getToken: async () => "token" });
  const b = tab({ fetch: refused, getToken: async () => "token" });
  const source = await share(a, b);
  source.emit("commit", { n: 1 }, "11");
  await settle();
  b.close();
  source.emit("commit", { n: 2 }, "12");
  b.connect();
  await settle();
  const own = FakeEventSource.latest();
  assert.notEqual(own, source);
  assert.equal(new URL(own.url).searchParams.get("last_event_id"), "11");
  own.emit("connected", { connection_id: "c2" });
  own.emit("commit", { n: 2 }, "12");
  assert.deepEqual(b.seen.commits, [11, 12]);
});

test("a lone rejoining tab with getTicket only leads and shares, rather than leave for a stream of its own", async (t) => {
  const tab = tabs(t);
  const options = { getTicket: async () => "tk", shareKey: "alice" };
  const b = tab(options);
  b.connect();
  await settle();
  FakeEventSource.latest().emit("connected", { connection_id: "c1" });
  FakeEventSource.latest().emit("commit", { n: 1 }, "11");
  b.close();
  b.connect();
  await settle();
  assert.ok(b.tabs && b.tabs.leader);
  assert.equal(new URL(FakeEventSource.latest().url).searchParams.get("last_event_id"), "11");
});

test("a live-only frame held back during a follower's catch-up does not move its resume point back: no stored event twice", async (t) => {
  const tab = tabs(t);
  const stored = [12, 13, 14, 15].map((id) => ({ id, event_type: "commit", data: {} }));
  const history = historyServer(stored);
  const a = tab({ fetch: history.fetch });
  const b = tab({ fetch: history.fetch });
  a.on("note", () => {});
  b.on("note", () => {});
  const source = await share(a, b);
  source.emit("commit", { n: 1 }, "11");
  await settle();
  b.close();
  source.emit("commit", {}, "12");
  source.emit("commit", {}, "13");
  await settle();
  b.connect();
  // Held back while b reads the history (which has 12 to 15): a note
  // showing the id before it (13), then 14 and 15 again.
  source.emit("note", { n: 1 }, "13");
  source.emit("commit", {}, "14");
  source.emit("commit", {}, "15");
  await settle();
  assert.deepEqual(b.seen.commits, [11, 12, 13, 14, 15]);
  assert.equal(b.lastEventId, "15");
});

test("a late joiner of a task whose leader does not answer in time opens its own stream from the start: the whole text, not its middle", async (t) => {
  const tab = tabs(t, "t1", TaskStream);
  const one = answerOf();
  const two = answerOf();
  const a = tab({ ...one.options, heartbeatTimeout: Infinity });
  const b = tab(two.options);
  const source = await share(a);
  source.emit("text", { delta: "a" }, "40");
  await settle();
  // The leader's page is busy: it neither answers nor passes anything on.
  channelOf(a).frozen = true;
  b.connect();
  await settle();
  source.emit("text", { delta: "b" }, "41");
  t.mock.timers.tick(5_000);
  await settle();
  t.mock.timers.tick(1_000);
  await settle();
  const own = FakeEventSource.latest();
  assert.notEqual(own, source, "a stream of its own");
  assert.equal(new URL(own.url).searchParams.get("last_event_id"), null, "from the start");
  own.emit("connected", { connection_id: "c2" });
  own.emit("text", { delta: "ab" }, "41");
  await settle();
  assert.equal(two.answer.text, "ab");
});

test("a general stream with closeOn starts live in a later tab, as its own first connect would: no old events, none kept", async (t) => {
  const tab = tabs(t);
  const a = tab({ closeOn: ["risk_alert"] });
  const b = tab({ closeOn: ["risk_alert"] });
  const source = await share(a);
  for (let id = 11; id <= 13; id += 1) source.emit("commit", {}, String(id));
  await settle();
  assert.equal(a.tabs.seen, null, "nothing kept for later tabs");
  b.connect();
  await settle();
  source.emit("commit", {}, "14");
  await settle();
  assert.deepEqual(b.seen.commits, [14]);
});

test("a follower's give-up error says what the leader's says, its cause included (the broker's refusal, status and code)", async (t) => {
  const tab = tabs(t);
  const history = historyServer([]).fetch;
  const body = { error: { code: "too_many_streams", message: "this user has too many open streams; retry in 1 s" } };
  const fetch = async (url, init) =>
    url.includes("/sse/history")
      ? history(url, init)
      : { ok: false, status: 429, headers: { get: (name) => (name === "Retry-After" ? "1" : null) }, json: async () => body };
  const errors = [];
  const options = { maxReconnectAttempts: 1, reconnectDelay: 500, fetch };
  const a = tab(options);
  const b = tab({ ...options, onError: (error) => errors.push(error) });
  await share(a, b);
  for (let round = 0; round < 4 && a.state !== State.OFFLINE; round += 1) {
    FakeEventSource.latest().refuse();
    await settle();
    t.mock.timers.tick(1000);
    await settle();
  }
  assert.equal(a.state, State.OFFLINE);
  assert.equal(errors.length, 1, "the follower heard the leader give up");
  assert.match(errors[0].message, /^gave up after 1 reconnect attempts: this user has too many open streams/);
  assert.equal(errors[0].cause.name, "StreamRefusedError");
  assert.deepEqual([errors[0].cause.status, errors[0].cause.code], [429, "too_many_streams"]);
});
