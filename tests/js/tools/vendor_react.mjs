// Builds the React the broker serves to its demo page (browsers here have
// no CDN, and the broker no internet at run time): ES module bundles of the
// `react` and `react-dom` npm packages pinned in tests/js/package-lock.json,
// the very versions the React tests run against.
//
//   npm ci --prefix tests/js && node tests/js/tools/vendor_react.mjs
//
// writes src/http/assets/vendor/{react.js,react-dom-client.js,react-shared.js}
// and LICENSE.react. The page maps the bare specifiers with an import map
// ("react" → /vendor/react.js, "react-dom/client" →
// /vendor/react-dom-client.js). Both entries import one shared chunk, so the
// page has a single copy of React: hooks break when react-dom talks to a
// second one. tests/js/vendor.test.mjs rebuilds in memory and fails when the
// committed files differ (a version bump without a rebuild, a hand edit).

import { createRequire } from "node:module";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const packageDir = join(dirname(fileURLToPath(import.meta.url)), "..");
const repository = join(packageDir, "..", "..");
export const VENDOR_DIR = join(repository, "src", "http", "assets", "vendor");

const require = createRequire(join(packageDir, "package.json"));

/** The entry modules: each re-exports one package's CommonJS exports by name. */
function entries() {
  const reexport = (specifier) => {
    // Named exports must be spelled out: esbuild cannot turn a CommonJS
    // module's exports into ES named exports on its own.
    const names = Object.keys(require(specifier)).filter((name) => name !== "default").sort();
    return `import module from ${JSON.stringify(specifier)};\nexport default module;\nexport const { ${names.join(", ")} } = module;\n`;
  };
  return { react: reexport("react"), "react-dom-client": reexport("react-dom/client") };
}

/** The bundles as `{ name: contents }`, built in memory. */
export async function buildReact() {
  const esbuild = await import(require.resolve("esbuild"));
  const version = require("react/package.json").version;
  const domVersion = require("react-dom/package.json").version;
  const sources = entries();
  const virtualEntries = {
    name: "vendor-entries",
    setup(build) {
      build.onResolve({ filter: /^vendor-entry:/ }, (args) => ({ path: args.path.slice("vendor-entry:".length), namespace: "vendor-entry" }));
      build.onLoad({ filter: /.*/, namespace: "vendor-entry" }, (args) => ({ contents: sources[args.path], resolveDir: packageDir, loader: "js" }));
    },
  };
  const result = await esbuild.build({
    entryPoints: Object.keys(sources).map((name) => ({ in: `vendor-entry:${name}`, out: name })),
    plugins: [virtualEntries],
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "browser",
    target: "es2020",
    // React's production builds: the development ones are larger and slower.
    define: { "process.env.NODE_ENV": '"production"' },
    minify: true,
    legalComments: "eof",
    chunkNames: "react-shared",
    banner: {
      js: `// react ${version}, react-dom ${domVersion} (MIT, see LICENSE.react), bundled by tests/js/tools/vendor_react.mjs: do not edit.`,
    },
    outdir: VENDOR_DIR,
    write: false,
    logLevel: "silent",
  });
  const files = {};
  for (const file of result.outputFiles) files[relative(VENDOR_DIR, file.path)] = file.text;
  files["LICENSE.react"] = readFileSync(join(dirname(require.resolve("react/package.json")), "LICENSE"), "utf8");
  return files;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const files = await buildReact();
  mkdirSync(VENDOR_DIR, { recursive: true });
  for (const [name, contents] of Object.entries(files)) {
    writeFileSync(join(VENDOR_DIR, name), contents);
    console.log(`${relative(repository, join(VENDOR_DIR, name))}: ${contents.length} bytes`);
  }
}
