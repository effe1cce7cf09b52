// A stream's filter, in src/http/assets/client.js and stream_requests.js:
// the one a `POST /sse/subscribe` set (the broker reports it in
// `subscription_updated`) outlives a reconnect, and a catch-up from
// /sse/history asks for exactly the stream's filter.

import { test } from "node:test";
import assert from "node:assert/strict";

import { SseClient } from "../../src/http/assets/client.js";
import { filteredStreamUrl, readStoredEvents } from "../../src/http/assets/stream_requests.js";
import { FakeEventSource } from "./fake_event_source.mjs";

function client(url, options = {}) {
  FakeEventSource.opened = [];
  return new SseClient(url, { EventSource: FakeEventSource, reconnectDelay: 10, ...options });
}

/** Drops the stream; the query of the one that replaces it, once connected. */
function reconnectQuery(t) {
  const before = FakeEventSource.opened.length;
  FakeEventSource.latest().fail();
  t.mock.timers.tick(10);
  assert.equal(FakeEventSource.opened.length, before + 1);
  FakeEventSource.latest().emit("connected", { connection_id: "c" });
  return new URL(FakeEventSource.latest().url).searchParams;
}

test("after `subscription_updated` a reconnect asks for the new filter, and resumes in it", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const c = client("http://broker.test/sse/events", { eventTypes: ["commit"], projectId: "p1" });
  c.connect();
  const source = FakeEventSource.latest();
  source.emit("connected", { connection_id: "c1", event_types: ["commit"], project_id: "p1" });
  source.emit("subscription_updated", { connection_id: "c1", event_types: ["commit", "risk_alert"], project_id: "p2" });
  source.emit("risk_alert", {}, "7");
  const query = reconnectQuery(t);
  assert.equal(query.get("event_types"), "commit,risk_alert");
  assert.equal(query.get("project_id"), "p2");
  assert.equal(query.get("last_event_id"), "7");
  c.close();
});

test("a subscription to no project drops the project, the stream URL's own one too; a later update keeps what it does not name", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const c = client("http://broker.test/sse/events?project_id=p1&event_types=commit");
  c.connect();
  FakeEventSource.latest().emit("subscription_updated", { connection_id: "c1", event_types: ["commit"], project_id: null });
  let query = reconnectQuery(t);
  assert.equal(query.get("project_id"), null);
  assert.equal(query.get("event_types"), "commit");
  FakeEventSource.latest().emit("subscription_updated", { event_types: ["commit", "deploy_done"] });
  query = reconnectQuery(t);
  assert.equal(query.get("event_types"), "commit,deploy_done");
  assert.equal(query.get("project_id"), null);
  c.close();
});

test("a history catch-up carries the stream's filter from its URL and options, and none of its credentials", async () => {
  const asked = [];
  const fetch = async (url) => {
    asked.push(new URL(url));
    return { ok: true, json: async () => ({ events: [{ id: 5, event_type: "commit", data: { n: 1 } }], next_after: null }) };
  };
  const stream = filteredStreamUrl("http://broker.test/prefix/sse/events?user_id=u1&access_token=secret&event_types=commit", {
    projectId: "p1",
  });
  const got = [];
  await readStoredEvents(stream, "4", { fetch }, (message) => got.push(message.lastEventId), () => true);
  assert.equal(asked.length, 1);
  const url = asked[0];
  assert.equal(url.pathname, "/prefix/sse/history");
  assert.deepEqual(Object.fromEntries(url.searchParams), {
    event_types: "commit",
    project_id: "p1",
    user_id: "u1",
    after: "4",
    limit: "1000",
  });
  assert.deepEqual(got, ["5"]);
});
