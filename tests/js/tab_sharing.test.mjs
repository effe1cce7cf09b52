// Tab sharing (src/http/assets/tabs.js) as client.js uses it, with the
// browser's BroadcastChannel and Web Locks replaced by stand-ins
// (fake_tabs.mjs): each "tab" is a client of this process. The same
// sharing runs in Chromium in tests/api/browser/tab_sharing.rs.

import { test } from "node:test";
import assert from "node:assert/strict";

import { SseClient, State } from "../../src/http/assets/client.js";
import { FakeEventSource } from "./fake_event_source.mjs";
import { FakeBroadcastChannel, installTabs, settle } from "./fake_tabs.mjs";

/**
 * Shared tabs for one test: `tab(options)` makes a tab's client of
 * `url` that records what reaches it in `tab.seen`. Timers are mocked;
 * Math.random is 1, so each backoff is its full step.
 */
function tabs(t, url = "/sse/events") {
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
    const client = new SseClient(url, {
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
