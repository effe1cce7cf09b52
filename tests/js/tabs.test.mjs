// The tab-sharing helpers of src/http/assets/tabs.js: which clients share a
// stream. The sharing itself runs in Chromium (tests/api/browser/tab_sharing.rs),
// and with stand-ins for the browser's parts in tab_sharing.test.mjs.

import { test } from "node:test";
import assert from "node:assert/strict";

import { shareName, canShareAcrossTabs, saysWhoseStream } from "../../src/http/assets/tabs.js";

test("clients of one URL, filters and token share; another token, filter or URL does not", () => {
  const url = "https://app.test/sse/events";
  const alice = shareName(url, { eventTypes: ["commit"], accessToken: "token-alice" });
  assert.equal(alice, shareName(url, { eventTypes: ["commit"], accessToken: "token-alice" }));
  assert.notEqual(alice, shareName(url, { eventTypes: ["commit"], accessToken: "token-bob" }));
  assert.notEqual(alice, shareName(url, { eventTypes: ["progress"], accessToken: "token-alice" }));
  assert.notEqual(alice, shareName(url, { eventTypes: ["commit"], projectId: "p1", accessToken: "token-alice" }));
  assert.notEqual(alice, shareName(`${url}?x=1`, { eventTypes: ["commit"], accessToken: "token-alice" }));
  assert.ok(!alice.includes("token-alice"), "the token itself is not in the name");
});

test("a client that sends the cookie shares only with one that does too", () => {
  const url = "https://broker.test/tasks/t1/events";
  const withCookie = shareName(url, { shareKey: "alice", withCredentials: true });
  assert.equal(withCookie, shareName(url, { shareKey: "alice", withCredentials: true }));
  assert.notEqual(withCookie, shareName(url, { shareKey: "alice" }));
  assert.equal(shareName(url, { withCredentials: false }), shareName(url, {}));
});

test("a shareKey is part of the name, hashed", () => {
  const url = "https://app.test/sse/events";
  const alice = shareName(url, { shareKey: "alice@example.com" });
  assert.equal(alice, shareName(url, { shareKey: "alice@example.com" }));
  assert.notEqual(alice, shareName(url, { shareKey: "bob@example.com" }));
  assert.notEqual(alice, shareName(url, {}));
  assert.equal(shareName(url, { shareKey: "" }), shareName(url, {}), "an empty key is no key");
  assert.ok(!alice.includes("alice@example.com"));
});

test("a client on tickets alone may share only with a shareKey; a cookie client may (the contract's default)", () => {
  const getTicket = () => "ticket";
  assert.equal(saysWhoseStream({}), true, "the cookie is the browser's");
  assert.equal(saysWhoseStream({ accessToken: "token" }), true);
  assert.equal(saysWhoseStream({ getTicket }), false);
  assert.equal(saysWhoseStream({ getTicket, accessToken: "token" }), true);
  assert.equal(saysWhoseStream({ getTicket, shareKey: "alice" }), true);
  assert.equal(saysWhoseStream({ shareKey: "alice" }), true);
  assert.equal(saysWhoseStream({ getTicket, shareKey: "" }), false, "an empty key is no key");
});

test("without Web Locks (Node has none) tabs do not share", () => {
  assert.equal(canShareAcrossTabs(), typeof navigator !== "undefined" && navigator.locks != null);
});
