// The browser around the React tests: a jsdom window whose globals
// (document, window, navigator, HTMLElement, …) are installed before
// react-dom loads (it decides at load time whether there is a DOM), plus
// the resolution hook that lets /react.js import "react". Node's own
// EventTarget, MessageEvent and timers stay, so FakeEventSource and
// mocked timers behave as in the client's tests.
//
//   const { hooks, testing } = await loadReact();

import { register } from "node:module";
import { JSDOM } from "jsdom";

let loaded = null;

function installDom() {
  // A page URL: the client resolves stream URLs against `location`.
  const dom = new JSDOM("<!doctype html><html><body></body></html>", { url: "http://broker.test/" });
  const { window } = dom;
  for (const name of Object.getOwnPropertyNames(window)) {
    if (name in globalThis) continue;
    Object.defineProperty(globalThis, name, {
      configurable: true,
      get: () => window[name],
    });
  }
  // React warns about updates outside act() only where this is set.
  globalThis.IS_REACT_ACT_ENVIRONMENT = true;
}

/** The hooks module and @testing-library/react, loaded once per test file. */
export function loadReact() {
  if (!loaded) {
    register("./resolve_from_tests.mjs", import.meta.url);
    installDom();
    loaded = Promise.all([
      import("../../src/http/assets/react.js"),
      import("@testing-library/react"),
      import("react"),
    ]).then(([hooks, testing, react]) => ({ hooks, testing, React: react.default }));
  }
  return loaded;
}
