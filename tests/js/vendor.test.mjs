// The React bundles the broker serves (src/http/assets/vendor/) are what
// tests/js/tools/vendor_react.mjs builds from the versions pinned in
// tests/js/package-lock.json, the ones the React tests run against: a
// version bump without a rebuild, or a hand edit, fails here. Rebuild with
// `node tests/js/tools/vendor_react.mjs`.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";

import { buildReact, VENDOR_DIR } from "./tools/vendor_react.mjs";

test("the committed React bundles are the build of the pinned packages", async () => {
  const built = await buildReact();
  assert.deepEqual(readdirSync(VENDOR_DIR).sort(), Object.keys(built).sort(), "the vendor folder holds exactly the build");
  for (const [name, contents] of Object.entries(built)) {
    assert.ok(readFileSync(join(VENDOR_DIR, name), "utf8") === contents, `${name} differs from its build: run node tests/js/tools/vendor_react.mjs`);
  }
});

test("the bundles share one React: both entries import the same chunk and nothing else", () => {
  for (const entry of ["react.js", "react-dom-client.js"]) {
    const source = readFileSync(join(VENDOR_DIR, entry), "utf8");
    const imports = [...source.matchAll(/\bfrom\s*"([^"]+)"/g)].map((match) => match[1]);
    assert.deepEqual(imports, ["./react-shared.js"], `${entry} imports`);
    assert.doesNotMatch(source, /\brequire\(/, `${entry} has no require() left for a browser to choke on`);
  }
});
