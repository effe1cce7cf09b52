// A module resolution hook for the React tests (registered by
// jsdom_env.mjs): /react.js imports "react" as a bare specifier, as a page
// with an import map or an application's bundler provides it. Node would
// look for it in node_modules above src/http/assets/, where there is none;
// resolve bare specifiers imported from there as if imported from tests/js/,
// so the hooks get the one React that react-dom and @testing-library/react
// use (two copies of React break hooks).

const ASSETS = new URL("../../src/http/assets/", import.meta.url).href;
const TESTS = new URL("./package.json", import.meta.url).href;

export async function resolve(specifier, context, nextResolve) {
  const bare = !/^(\.|\/|[a-z]+:)/i.test(specifier);
  if (bare && context.parentURL && context.parentURL.startsWith(ASSETS)) {
    return nextResolve(specifier, { ...context, parentURL: TESTS });
  }
  return nextResolve(specifier, context);
}
