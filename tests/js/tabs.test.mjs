// The tab-sharing helpers of src/http/assets/tabs.js: which clients share a
// stream. The sharing itself runs in Chromium (tests/api/browser/tab_sharing.rs),
// and with stand-ins for the browser's parts in tab_sharing.test.mjs.

import { test } from "node:test";
import assert from "node:assert/strict";

import { shareName, canShareAcrossTabs } from "../../src/http/assets/tabs.js";

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

test("without Web Locks (Node has none) tabs do not share", () => {
  assert.equal(canShareAcrossTabs(), typeof navigator !== "undefined" && navigator.locks != null);
});
