// The TypeScript declarations served at /client.d.ts and /react.d.ts
// (src/http/assets/*.d.ts), checked with the real compiler:
//
// - types/usage.ts, an application's use of both modules with the misuses
//   the declarations must refuse, compiles with `tsc --noEmit --strict`;
// - the declarations name exactly the values the modules export, the
//   methods and fields they declare exist on real instances, and the
//   hooks' declared results have exactly the keys the hooks return.

import { test, afterEach } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

import { FakeEventSource } from "./fake_event_source.mjs";
import { loadReact } from "./jsdom_env.mjs";

const require = createRequire(import.meta.url);
const ts = require("typescript");
const assets = (name) => fileURLToPath(new URL(`../../src/http/assets/${name}`, import.meta.url));

const { hooks, testing } = await loadReact();
const clientModule = await import("../../src/http/assets/client.js");
afterEach(() => testing.cleanup());

test("an application's use of the declarations compiles with tsc --noEmit --strict", () => {
  const tsc = require.resolve("typescript/bin/tsc");
  const project = fileURLToPath(new URL("./types/tsconfig.json", import.meta.url));
  const run = spawnSync(process.execPath, [tsc, "-p", project, "--noEmit", "--strict", "--pretty", "false"], {
    encoding: "utf8",
  });
  assert.equal(run.status, 0, `tsc failed:\n${run.stdout}${run.stderr}`);
});

/** The program over both declaration files, and each file's module symbol. */
function declarations() {
  const files = [assets("client.d.ts"), assets("react.d.ts")];
  const program = ts.createProgram(files, { strict: true, noEmit: true, module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler, types: [] });
  const checker = program.getTypeChecker();
  const module = (file) => checker.getSymbolAtLocation(program.getSourceFile(file));
  return { checker, client: module(files[0]), react: module(files[1]) };
}

/** Names of the exports that are values (not types alone). */
function valueExports(checker, moduleSymbol) {
  return checker
    .getExportsOfModule(moduleSymbol)
    .filter((symbol) => {
      const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
      return (target.flags & ts.SymbolFlags.Value) !== 0;
    })
    .map((symbol) => symbol.name)
    .sort();
}

/** The property names of an exported interface or class instance type. */
function declaredProperties(checker, moduleSymbol, name) {
  const symbol = checker.getExportsOfModule(moduleSymbol).find((s) => s.name === name);
  assert.ok(symbol, `${name} is declared`);
  const type = checker.getDeclaredTypeOfSymbol(symbol);
  return type.getProperties().map((p) => p.name).sort();
}

/** The same, less the optional ones (which an instance may well lack). */
function requiredProperties(checker, moduleSymbol, name) {
  const symbol = checker.getExportsOfModule(moduleSymbol).find((s) => s.name === name);
  const type = checker.getDeclaredTypeOfSymbol(symbol);
  return type
    .getProperties()
    .filter((p) => (p.flags & ts.SymbolFlags.Optional) === 0)
    .map((p) => p.name);
}

/** An exported constant object whose declared properties are literal types, as a value. */
function declaredConstant(checker, moduleSymbol, name) {
  const symbol = checker.getExportsOfModule(moduleSymbol).find((s) => s.name === name);
  assert.ok(symbol, `${name} is declared`);
  const type = checker.getTypeOfSymbolAtLocation(symbol, symbol.valueDeclaration);
  return Object.fromEntries(
    type.getProperties().map((p) => [p.name, JSON.parse(checker.typeToString(checker.getTypeOfSymbolAtLocation(p, p.valueDeclaration)))]),
  );
}

test("the declarations declare exactly the values /client.js and /react.js export", () => {
  const { checker, client, react } = declarations();
  assert.deepEqual(valueExports(checker, client), Object.keys(clientModule).sort());
  assert.deepEqual(valueExports(checker, react), Object.keys(hooks).sort());
});

test("what the classes declare exists on real instances, and the option defaults match", () => {
  const { checker, client, react } = declarations();
  const instances = {
    SseClient: new clientModule.SseClient("http://broker.test/sse/events", { EventSource: FakeEventSource }),
    TaskStream: new clientModule.TaskStream("gen-1", { EventSource: FakeEventSource }),
    TaskError: new clientModule.TaskError({ status: "failed", error: "boom" }),
  };
  for (const [name, instance] of Object.entries(instances)) {
    for (const property of requiredProperties(checker, client, name)) {
      assert.ok(property in instance, `${name}.${property} is declared but does not exist`);
    }
  }
  assert.deepEqual(declaredConstant(checker, client, "State"), { ...clientModule.State });
  assert.deepEqual(declaredConstant(checker, react, "DEFAULT_OPTIONS"), { ...hooks.DEFAULT_OPTIONS });
});

test("the hooks return exactly the keys their declared results name", () => {
  const { checker, react } = declarations();
  FakeEventSource.opened = [];
  const task = testing.renderHook(() => hooks.useTaskStream("gen-1", { EventSource: FakeEventSource }));
  const events = testing.renderHook(() => hooks.useEventStream({}, { EventSource: FakeEventSource }));
  assert.deepEqual(Object.keys(task.result.current).sort(), declaredProperties(checker, react, "TaskStreamResult"));
  assert.deepEqual(Object.keys(events.result.current).sort(), declaredProperties(checker, react, "EventStreamResult"));
});
