// The React hooks of /react.js (src/http/assets/react.js), run by React
// itself: real `react`, `react-dom` and @testing-library/react under jsdom
// (`node --test tests/js/`, after `npm ci` in tests/js/). EventSource is
// the FakeEventSource the client's tests use, which dispatches as a browser
// does, and timers are mocked, so backoff timing is checked exactly.

import { test, afterEach } from "node:test";
import assert from "node:assert/strict";

import { FakeEventSource } from "./fake_event_source.mjs";
import { loadReact } from "./jsdom_env.mjs";

const { hooks, testing, React } = await loadReact();
const { useTaskStream, useEventStream } = hooks;
const { renderHook, act, cleanup } = testing;
const { TaskError } = await import("../../src/http/assets/client.js");

afterEach(() => cleanup());

/** Fake timers, and jitter pinned to its top so each backoff step is exact. */
function fakeTime(t) {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  t.mock.method(Math, "random", () => 1);
}

function renderTask(taskId, options = {}) {
  FakeEventSource.opened = [];
  return renderHook(({ id, opts }) => useTaskStream(id, { EventSource: FakeEventSource, ...opts }), {
    initialProps: { id: taskId, opts: options },
  });
}

/** Runs `action` (events from the fake, timer ticks, hook calls) inside act(). */
function send(action) {
  act(() => {
    action();
  });
}

const latest = () => FakeEventSource.latest();
const resumeId = (source) => new URL(source.url).searchParams.get("last_event_id");

test("useTaskStream appends the text deltas in order and follows the task's progress", (t) => {
  fakeTime(t);
  const progressSeen = [];
  const connects = [];
  const { result } = renderTask("gen-1", {
    onProgress: (task) => progressSeen.push(task.progress),
    onConnect: (data) => connects.push(data),
  });
  assert.equal(FakeEventSource.opened.length, 1);
  assert.equal(new URL(latest().url).pathname, "/tasks/gen-1/events");
  assert.equal(result.current.connectionState, "connecting");
  assert.equal(result.current.isConnected, false);

  assert.deepEqual(connects, [], "not connected before `connected`");
  send(() => latest().emit("connected", { connection_id: "c1", event_types: [], project_id: null }));
  assert.equal(result.current.isConnected, true);
  assert.equal(result.current.connectionState, "connected");
  assert.deepEqual(connects.map((data) => data.connection_id), ["c1"], "onConnect once, with the `connected` data");

  send(() => latest().emit("progress", { task_id: "gen-1", status: "running", progress: 10, stage: "thinking", message: "…" }, "1"));
  assert.equal(result.current.progress, 10);
  assert.equal(result.current.status, "running");
  assert.equal(result.current.stage, "thinking");
  assert.equal(result.current.task.task_id, "gen-1");

  send(() => latest().emit("text", { task_id: "gen-1", delta: "Hel" }, "2"));
  send(() => {
    // Two deltas in one batch of React updates: neither may be lost.
    latest().emit("text", { task_id: "gen-1", delta: "lo, " }, "3");
    latest().emit("text", { task_id: "gen-1", delta: "world" }, "4");
  });
  send(() => latest().emit("progress", { task_id: "gen-1", status: "running", progress: 60, stage: "writing" }, "5"));
  assert.equal(result.current.text, "Hello, world");
  assert.equal(result.current.progress, 60);
  assert.equal(result.current.stage, "writing");
  assert.deepEqual(progressSeen, [10, 60]);
  assert.equal(result.current.error, null);
});

test("useTaskStream keeps the model's reasoning apart from the answer, and a reconnect doubles neither", (t) => {
  fakeTime(t);
  const { result } = renderTask("gen-r", { reconnectDelay: 100 });
  send(() => latest().emit("connected", { connection_id: "c1" }));
  send(() => latest().emit("reasoning", { task_id: "gen-r", delta: "Two and " }, "2"));
  send(() => latest().emit("reasoning", { task_id: "gen-r", delta: "two." }, "3"));
  send(() => latest().emit("text", { task_id: "gen-r", delta: "Fo" }, "4"));
  assert.equal(result.current.reasoning, "Two and two.");
  assert.equal(result.current.text, "Fo");

  send(() => latest().fail());
  send(() => t.mock.timers.tick(100));
  assert.equal(FakeEventSource.opened.length, 2);
  assert.equal(resumeId(latest()), "4", "resumes after the last id, a reasoning id or a text id alike");
  // What the broker sends a resume after 4: the missed text, rolled up.
  send(() => latest().emit("connected", { connection_id: "c2" }));
  send(() => latest().emit("text", { task_id: "gen-r", delta: "ur." }, "6"));
  assert.equal(result.current.reasoning, "Two and two.");
  assert.equal(result.current.text, "Four.");
});

test("useTaskStream keeps the tool calls in order, each with its answer once it comes, and the steps' ends", () => {
  const { result } = renderTask("gen-t");
  send(() => latest().emit("connected", { connection_id: "c1" }));
  send(() => latest().emit("text", { task_id: "gen-t", delta: "Checking." }, "2"));
  const call = (id, name, input) => ({ task_id: "gen-t", tool_call_id: id, tool_name: name, input });
  send(() => latest().emit("tool_call", call("c1", "weather", { city: "Oslo" }), "3"));
  send(() => latest().emit("tool_call", call("c2", "forecast", {}), "4"));
  assert.deepEqual(result.current.toolCalls, [
    { id: "c1", name: "weather", input: { city: "Oslo" }, state: "called" },
    { id: "c2", name: "forecast", input: {}, state: "called" },
  ]);
  send(() => latest().emit("tool_result", { task_id: "gen-t", tool_call_id: "c2", error: "down" }, "5"));
  send(() => latest().emit("tool_result", { task_id: "gen-t", tool_call_id: "c1", output: { celsius: -3 } }, "6"));
  send(() => latest().emit("tool_result", { task_id: "gen-t", tool_call_id: "c9", output: 1 }, "7"));
  assert.deepEqual(result.current.toolCalls, [
    { id: "c1", name: "weather", input: { city: "Oslo" }, state: "done", output: { celsius: -3 } },
    { id: "c2", name: "forecast", input: {}, state: "failed", error: "down" },
  ]);
  assert.equal(result.current.text, "Checking.");
  // A streaming tool's progress, then its answer; a call whose input was refused.
  send(() => latest().emit("tool_call", call("c3", "crawl", {}), "8"));
  send(() => latest().emit("tool_result", { task_id: "gen-t", tool_call_id: "c3", output: { pages: 1 }, preliminary: true }, "9"));
  assert.deepEqual(result.current.toolCalls[2], { id: "c3", name: "crawl", input: {}, state: "called", output: { pages: 1 } });
  send(() => latest().emit("tool_result", { task_id: "gen-t", tool_call_id: "c3", output: { pages: 4 } }, "10"));
  assert.deepEqual(result.current.toolCalls[2], { id: "c3", name: "crawl", input: {}, state: "done", output: { pages: 4 } });
  send(() => latest().emit("tool_call", { ...call("c4", "weather", { city: 42 }), input_error: "city: not a string" }, "11"));
  assert.deepEqual(result.current.toolCalls[3], {
    id: "c4",
    name: "weather",
    input: { city: 42 },
    state: "failed",
    error: "city: not a string",
  });
  // A call waiting for a person's approval, then refused.
  send(() => latest().emit("tool_call", call("c5", "delete_file", { path: "/tmp/x" }), "12"));
  send(() => latest().emit("tool_approval", { task_id: "gen-t", tool_call_id: "c5", approval_id: "ap1" }, "13"));
  assert.equal(result.current.toolCalls[4].state, "approval-requested");
  assert.equal(result.current.toolCalls[4].approvalId, "ap1");
  send(() => latest().emit("tool_result", { task_id: "gen-t", tool_call_id: "c5", denied: true }, "14"));
  assert.deepEqual(result.current.toolCalls[4], { id: "c5", name: "delete_file", input: { path: "/tmp/x" }, state: "denied" });
  // An agent's steps: each end kept in order, with what its producer said.
  assert.deepEqual(result.current.steps, []);
  const usage = { input_tokens: 9, output_tokens: 4 };
  send(() => latest().emit("step_end", { task_id: "gen-t", result: { finish_reason: "tool-calls", usage } }, "15"));
  send(() => latest().emit("step_end", { task_id: "gen-t", result: null }, "16"));
  assert.deepEqual(result.current.steps, [{ finish_reason: "tool-calls", usage }, null]);
  // The store was replaced: everything comes again, nothing twice.
  send(() => latest().emit("replay_reset", {}));
  assert.deepEqual(result.current.toolCalls, []);
  assert.deepEqual(result.current.steps, []);
});

test("useTaskStream keeps what the app says of each tool: its title, and its toolMetadata, the answer's over the call's", () => {
  const { result } = renderTask("gen-l");
  send(() => latest().emit("connected", { connection_id: "c1" }));
  const call = { task_id: "gen-l", tool_call_id: "c1", tool_name: "weather", input: {} };
  send(() => latest().emit("tool_call", { ...call, title: "Current weather", tool_metadata: { icon: "sun" } }, "2"));
  assert.deepEqual(result.current.toolCalls, [
    { id: "c1", name: "weather", input: {}, state: "called", title: "Current weather", toolMetadata: { icon: "sun" } },
  ]);
  send(() => latest().emit("tool_result", { task_id: "gen-l", tool_call_id: "c1", output: 1, tool_metadata: { icon: "cloud" } }, "3"));
  assert.deepEqual(result.current.toolCalls, [
    { id: "c1", name: "weather", input: {}, state: "done", title: "Current weather", toolMetadata: { icon: "cloud" }, output: 1 },
  ]);
});

test("useTaskStream keeps an answer's sources, files and data parts as the AI SDK's message does; onData sees every data part", () => {
  const seen = [];
  const { result } = renderTask("gen-p", { onData: (part) => seen.push(part) });
  send(() => latest().emit("connected", { connection_id: "c1" }));
  const at = (data) => ({ task_id: "gen-p", ...data });
  send(() => latest().emit("data_part", at({ name: "status", data: "searching", transient: true }), "2"));
  send(() => latest().emit("data_part", at({ name: "weather", id: "w1", data: { state: "loading" } }), "3"));
  send(() => latest().emit("source", at({ source_id: "s1", url: "https://met.no", title: "MET" }), "4"));
  send(() => latest().emit("text", at({ delta: "Cold." }), "5"));
  send(() => latest().emit("source", at({ source_id: "s2", media_type: "application/pdf", title: "Q3", filename: "q3.pdf" }), "6"));
  send(() => latest().emit("file", at({ url: "data:image/png;base64,AA==", media_type: "image/png" }), "7"));
  send(() => latest().emit("data_part", at({ name: "weather", id: "w1", data: { state: "done", celsius: -3 } }), "8"));
  send(() => latest().emit("data_part", at({ name: "note", data: 1 }), "9"));
  send(() => latest().emit("data_part", at({ name: "note", data: 2 }), "10"));
  assert.deepEqual(result.current.sources, [
    { id: "s1", url: "https://met.no", title: "MET" },
    { id: "s2", mediaType: "application/pdf", title: "Q3", filename: "q3.pdf" },
  ]);
  assert.deepEqual(result.current.files, [{ url: "data:image/png;base64,AA==", mediaType: "image/png" }]);
  // One weather card updated in place; the transient status not kept; parts without id each their own.
  assert.deepEqual(result.current.dataParts, [
    { name: "weather", id: "w1", data: { state: "done", celsius: -3 } },
    { name: "note", data: 1 },
    { name: "note", data: 2 },
  ]);
  assert.deepEqual(
    seen.map((part) => [part.name, part.data]),
    [
      ["status", "searching"],
      ["weather", { state: "loading" }],
      ["weather", { state: "done", celsius: -3 }],
      ["note", 1],
      ["note", 2],
    ],
  );
  assert.equal(result.current.text, "Cold.");
  send(() => latest().emit("replay_reset", {}));
  assert.deepEqual([result.current.sources, result.current.files, result.current.dataParts], [[], [], []]);
});

test("useTaskStream keeps what AI SDK 7 adds: each text part's citations, reasoning files apart, custom parts, steering messages", () => {
  const { result } = renderTask("gen-c");
  send(() => latest().emit("connected", { connection_id: "c1" }));
  const at = (data) => ({ task_id: "gen-c", ...data });
  send(() => latest().emit("reasoning", at({ delta: "A chart helps." }), "2"));
  send(() => latest().emit("file", at({ url: "data:image/png;base64,AA==", media_type: "image/png", reasoning: true }), "3"));
  send(() => latest().emit("custom_part", at({ kind: "openai.compaction", provider_metadata: { openai: { itemId: "c1" } } }), "4"));
  const steered = { id: "u1", parts: [{ type: "text", text: "Shorter." }, { type: "file", media_type: "image/png", url: "u", filename: "m.png" }] };
  send(() => latest().emit("steering_message", at(steered), "4b"));
  send(() => latest().emit("text", at({ delta: "Cold." }), "5"));
  const cited = { source: { source_id: "s1", url: "https://met.no", title: "MET" }, start_index: 0, end_index: 5, cited_text: "-3" };
  send(() => latest().emit("text_end", at({ citations: [cited] }), "6"));
  send(() => latest().emit("text", at({ delta: "Stay in." }), "7"));
  // An end that cites after the part already ended: an empty part of its own, as in the SDK's message.
  send(() => latest().emit("reasoning", at({ delta: "Done." }), "8"));
  send(() => latest().emit("text_end", at({ citations: [{ source: { source_id: "s2", media_type: "application/pdf", title: "Q3" } }] }), "9"));
  assert.deepEqual(result.current.textParts, ["Cold.", "Stay in.", ""]);
  assert.deepEqual(result.current.citations, [
    { textPart: 0, source: { id: "s1", url: "https://met.no", title: "MET" }, startIndex: 0, endIndex: 5, citedText: "-3" },
    { textPart: 2, source: { id: "s2", mediaType: "application/pdf", title: "Q3" } },
  ]);
  assert.deepEqual(result.current.files, [], "a reasoning file is no file of the answer");
  assert.deepEqual(result.current.reasoningFiles, [{ url: "data:image/png;base64,AA==", mediaType: "image/png" }]);
  assert.deepEqual(result.current.customParts, [{ kind: "openai.compaction", providerMetadata: { openai: { itemId: "c1" } } }]);
  assert.deepEqual(result.current.steeringMessages, [
    { id: "u1", parts: [{ type: "text", text: "Shorter." }, { type: "file", mediaType: "image/png", url: "u", filename: "m.png" }] },
  ]);
  // An end that says citations, even none, keeps its part, as the SDK's message keeps `citations: []`.
  send(() => latest().emit("text", at({ delta: "Bye." }), "10"));
  send(() => latest().emit("text_end", at({ citations: [] }), "11"));
  send(() => latest().emit("text_end", at({ citations: [] }), "12"));
  send(() => latest().emit("text", at({ delta: "Last." }), "13"));
  send(() => latest().emit("text_end", at({ citations: [cited] }), "14"));
  assert.deepEqual(result.current.textParts, ["Cold.", "Stay in.", "", "Bye.", "", "Last."]);
  assert.equal(result.current.citations.at(-1).textPart, 5);
  send(() => latest().emit("replay_reset", {}));
  const { citations, reasoningFiles, customParts, steeringMessages } = result.current;
  assert.deepEqual([citations, reasoningFiles, customParts, steeringMessages], [[], [], [], []]);
});

test("useTaskStream merges the app's message metadata as the AI SDK does, across a reconnect's merged catch-up", (t) => {
  fakeTime(t);
  const seen = [];
  const { result } = renderTask("gen-m", { reconnectDelay: 100, onMessageMetadata: (metadata) => seen.push(metadata) });
  send(() => latest().emit("connected", { connection_id: "c1" }));
  assert.equal(result.current.messageMetadata, null);
  const said = (metadata, id) => latest().emit("message_metadata", { task_id: "gen-m", metadata }, id);
  send(() => said({ createdAt: 5, model: "m1", usage: { inputTokens: null }, tags: ["a", "b"] }, "2"));
  send(() => latest().emit("text", { task_id: "gen-m", delta: "Hi" }, "3"));
  send(() => said({ usage: { inputTokens: 12 }, tags: ["c"] }, "4"));
  assert.deepEqual(result.current.messageMetadata, {
    createdAt: 5,
    model: "m1",
    usage: { inputTokens: 12 },
    tags: ["c"],
  });
  // A reconnect's catch-up: what was missed, merged into one, with no id.
  send(() => latest().fail());
  send(() => t.mock.timers.tick(100));
  assert.equal(resumeId(latest()), "4");
  send(() => latest().emit("connected", { connection_id: "c2" }));
  send(() => latest().emit("message_metadata", { task_id: "gen-m", metadata: { usage: { outputTokens: 5 } } }));
  assert.deepEqual(result.current.messageMetadata.usage, { inputTokens: 12, outputTokens: 5 });
  assert.equal(result.current.text, "Hi");
  assert.deepEqual(seen.at(-1), { usage: { outputTokens: 5 } }, "onMessageMetadata gets each as it was said");
  assert.equal(seen.length, 3);
  send(() => latest().emit("replay_reset", {}));
  assert.equal(result.current.messageMetadata, null);
});

test("useTaskStream keeps the text in the parts its producer wrote apart, across a reconnect", (t) => {
  fakeTime(t);
  const { result } = renderTask("gen-parts", { reconnectDelay: 100 });
  send(() => latest().emit("connected", { connection_id: "c1" }));
  const at = (data) => ({ task_id: "gen-parts", ...data });
  send(() => latest().emit("text", at({ delta: "Oslo is " }), "2"));
  send(() => latest().emit("text", at({ delta: "cold." }), "3"));
  send(() => latest().emit("text_end", at({}), "4"));
  // The connection drops after the end: the resumed text begins a new part.
  send(() => latest().fail());
  send(() => t.mock.timers.tick(100));
  send(() => latest().emit("connected", { connection_id: "c2" }));
  send(() => latest().emit("text", at({ delta: "It snows." }), "5"));
  send(() => latest().emit("text_end", at({}), "6"));
  send(() => latest().emit("text", at({ delta: "Wear a hat." }), "7"));
  assert.deepEqual(result.current.textParts, ["Oslo is cold.", "It snows.", "Wear a hat."]);
  assert.equal(result.current.text, result.current.textParts.join(""));
  send(() => latest().emit("replay_reset", {}));
  assert.deepEqual([result.current.text, result.current.textParts], ["", []]);
});

test("useTaskStream's textParts part where the AI SDK's chat does: at a tool event, a step's end or thinking", () => {
  const { result } = renderTask("gen-agent");
  send(() => latest().emit("connected", { connection_id: "c1" }));
  const at = (data) => ({ task_id: "gen-agent", ...data });
  const text = (delta, id) => send(() => latest().emit("text", at({ delta }), id));
  text("Let me look.", "2");
  send(() => latest().emit("tool_call", at({ tool_call_id: "c1", tool_name: "search", input: {} }), "3"));
  text("Searching", "4");
  send(() => latest().emit("tool_result", at({ tool_call_id: "c1", output: 3 }), "5"));
  text("Found 3.", "6");
  send(() => latest().emit("step_end", at({ result: null }), "7"));
  text("So:", "8");
  send(() => latest().emit("reasoning", at({ delta: "Hm." }), "9"));
  text(" three.", "10");
  // An answer to a call never made ends nothing, as the UI message stream leaves it out.
  send(() => latest().emit("tool_result", at({ tool_call_id: "ghost", output: 1 }), "11"));
  text(" Done.", "12");
  assert.deepEqual(result.current.textParts, ["Let me look.", "Searching", "Found 3.", "So:", " three. Done."]);
  assert.equal(result.current.text, result.current.textParts.join(""));
});

test("`complete` ends the stream without reconnecting, and reconnect() stays a no-op", (t) => {
  fakeTime(t);
  const disconnects = [];
  const { result } = renderTask("gen-2", { onDisconnect: (info) => disconnects.push(info) });
  const source = latest();
  send(() => source.emit("connected", { connection_id: "c1" }));
  send(() => source.emit("text", { delta: "Done." }, "7"));
  send(() => source.emit("complete", { task_id: "gen-2", status: "completed", result: { tokens: 2 } }, "8"));

  assert.equal(result.current.status, "completed");
  assert.equal(result.current.progress, 100);
  assert.deepEqual(result.current.result, { tokens: 2 });
  assert.equal(result.current.text, "Done.");
  assert.ok(source.closed, "the EventSource is closed");
  assert.equal(result.current.connectionState, "closed");
  assert.equal(result.current.isConnected, false);
  send(() => t.mock.timers.tick(60_000));
  send(() => result.current.reconnect());
  assert.equal(FakeEventSource.opened.length, 1, "no new stream after the task's end");
  assert.deepEqual(disconnects, [], "the end of a task is not a lost connection");
});

test("a cancelled task's `error` reaches onError and `error`, ends the stream, and never reconnects", (t) => {
  fakeTime(t);
  const errors = [];
  const { result } = renderTask("gen-3", { onError: (error, data) => errors.push({ error, data }) });
  const source = latest();
  send(() => source.emit("connected", { connection_id: "c1" }));
  send(() => source.emit("progress", { status: "running", progress: 30 }, "1"));
  send(() => source.emit("text", { delta: "Partial" }, "2"));
  const cancelled = { task_id: "gen-3", status: "cancelled", error: "cancelled", cancelled: true };
  send(() => source.emit("error", cancelled, "3"));

  assert.equal(errors.length, 1, "onError is called once");
  assert.ok(errors[0].error instanceof TaskError);
  assert.equal(errors[0].error.cancelled, true);
  assert.deepEqual(errors[0].data, cancelled);
  assert.equal(result.current.error, errors[0].error);
  assert.equal(result.current.status, "cancelled");
  assert.equal(result.current.text, "Partial", "the partial text stays");
  assert.ok(source.closed);
  assert.equal(result.current.connectionState, "closed");
  send(() => t.mock.timers.tick(60_000));
  assert.equal(FakeEventSource.opened.length, 1, "no reconnect after the task's error");
});

test("a failed task's error message reaches `error` with the status `failed`", (t) => {
  fakeTime(t);
  const { result } = renderTask("gen-4");
  send(() => latest().emit("error", { task_id: "gen-4", status: "failed", error: "model overloaded" }, "2"));
  assert.equal(result.current.status, "failed");
  assert.equal(result.current.error.message, "model overloaded");
  assert.equal(result.current.error.name, "TaskError");
  assert.ok(latest().closed);
});

test("a task the broker does not know ends the hook with its StreamRefusedError, not with reconnect attempts", async () => {
  const asked = [];
  const fetch = async (url) => {
    asked.push(url);
    return {
      ok: false,
      status: 404,
      headers: { get: () => null },
      json: async () => ({ error: { code: "task_not_found", message: "no task gone-1" } }),
    };
  };
  const { result } = renderTask("gone-1", { fetch });
  await act(async () => {
    latest().refuse();
    await new Promise((resolve) => setImmediate(resolve));
  });
  assert.equal(asked.length, 1);
  assert.equal(result.current.error.name, "StreamRefusedError");
  assert.equal(result.current.error.code, "task_not_found");
  assert.equal(result.current.error.status, 404);
  assert.equal(result.current.isConnected, false);
  assert.equal(FakeEventSource.opened.length, 1, "no reconnect");
});

test("a network error reconnects with backoff, resuming after the last id, up to maxReconnectAttempts, then reports the stream lost", (t) => {
  fakeTime(t);
  const disconnects = [];
  const errors = [];
  const { result } = renderTask("gen-5", {
    onDisconnect: (info) => disconnects.push(info),
    onError: (error) => errors.push(error),
  });
  send(() => latest().emit("connected", { connection_id: "c1" }));
  send(() => latest().emit("progress", { status: "running", progress: 20 }, "4"));
  send(() => latest().emit("text", { delta: "Hel" }, "5"));
  send(() => latest().fail());

  assert.equal(result.current.connectionState, "reconnecting");
  assert.equal(result.current.isConnected, false);
  assert.deepEqual(errors, [], "a network error is not an error of the task");
  assert.equal(result.current.error, null);
  // The defaults: 3 attempts, 2000 ms doubling (jitter pinned to its top).
  send(() => t.mock.timers.tick(1999));
  assert.equal(FakeEventSource.opened.length, 1, "no reconnect before reconnectDelay");
  send(() => t.mock.timers.tick(1));
  assert.equal(FakeEventSource.opened.length, 2);
  assert.equal(resumeId(latest()), "5", "the reconnect resumes after the last id");
  send(() => latest().fail());
  send(() => t.mock.timers.tick(3999));
  assert.equal(FakeEventSource.opened.length, 2, "the second wait doubles");
  send(() => t.mock.timers.tick(1));
  assert.equal(FakeEventSource.opened.length, 3);
  send(() => latest().fail());
  send(() => t.mock.timers.tick(8000));
  assert.equal(FakeEventSource.opened.length, 4);
  send(() => latest().fail());

  assert.deepEqual(
    disconnects.map((d) => [d.reason, d.willReconnect, d.delay]),
    [
      ["network", true, 2000],
      ["network", true, 4000],
      ["network", true, 8000],
      ["network", false, null],
    ],
  );
  assert.equal(result.current.connectionState, "offline");
  assert.equal(result.current.isConnected, false);
  assert.equal(errors.length, 1, "giving up is reported once");
  assert.notEqual(errors[0].name, "TaskError");
  assert.equal(result.current.error, errors[0]);
  assert.equal(result.current.status, "running", "the task did not fail: only its stream");
  assert.equal(result.current.text, "Hel");
  send(() => t.mock.timers.tick(600_000));
  assert.equal(FakeEventSource.opened.length, 4, "no attempt after giving up");
});

test("text is never doubled across a reconnect: the broker's rolled-up `text` after the last id is appended to what was kept", (t) => {
  fakeTime(t);
  const connects = [];
  const { result } = renderTask("gen-6", { reconnectDelay: 100, onConnect: (data) => connects.push(data.connection_id) });
  send(() => latest().emit("connected", { connection_id: "c1" }));
  send(() => latest().emit("text", { delta: "Hello" }, "5"));
  send(() => latest().fail());
  send(() => t.mock.timers.tick(100));
  assert.equal(resumeId(latest()), "5");
  assert.equal(result.current.text, "Hello", "the text is kept while reconnecting");
  // What the broker sends a resume after 5: the missed text in one event.
  send(() => latest().emit("connected", { connection_id: "c2" }));
  send(() => latest().emit("text", { delta: ", world" }, "9"));
  send(() => latest().emit("progress", { status: "running", progress: 80 }));
  assert.equal(result.current.text, "Hello, world");
  assert.equal(result.current.isConnected, true);
  assert.deepEqual(connects, ["c1", "c2"], "onConnect again after the reconnect");
});

test("a `replay_reset` (the broker's store no longer knew the resume point) replaces the text with the whole text that follows", (t) => {
  fakeTime(t);
  const { result } = renderTask("gen-reset", { reconnectDelay: 100 });
  send(() => latest().emit("connected", { connection_id: "c1" }));
  send(() => latest().emit("text", { delta: "Hello" }, "905"));
  send(() => latest().fail());
  send(() => t.mock.timers.tick(100));
  assert.equal(resumeId(latest()), "905");
  // The broker's store was restored from a backup: it resumes the task from its start.
  send(() => latest().emit("connected", { connection_id: "c2" }));
  send(() => latest().emit("replay_reset", { last_event_id: 905, latest_id: 12 }, "0"));
  send(() => latest().emit("text", { delta: "Hello, world" }, "11"));
  assert.equal(result.current.text, "Hello, world", "not doubled");
  send(() => latest().fail());
  send(() => t.mock.timers.tick(100));
  assert.equal(resumeId(latest()), "11", "the next resume is from the new ids");
});

test("with autoReconnect false a network error ends the stream at once", (t) => {
  fakeTime(t);
  const disconnects = [];
  const { result } = renderTask("gen-7", { autoReconnect: false, onDisconnect: (info) => disconnects.push(info) });
  send(() => latest().emit("connected", { connection_id: "c1" }));
  send(() => latest().fail());
  send(() => t.mock.timers.tick(600_000));
  assert.equal(FakeEventSource.opened.length, 1);
  assert.equal(result.current.connectionState, "offline");
  assert.deepEqual(disconnects.map((d) => d.willReconnect), [false]);
});

test("reconnect() opens a new stream at once, resuming after the last id, keeping the text, with fresh attempts", (t) => {
  fakeTime(t);
  const { result } = renderTask("gen-8", { maxReconnectAttempts: 1, reconnectDelay: 100 });
  const first = latest();
  send(() => first.emit("connected", { connection_id: "c1" }));
  send(() => first.emit("text", { delta: "ab" }, "3"));
  send(() => result.current.reconnect());
  assert.ok(first.closed, "the old stream is closed");
  assert.equal(FakeEventSource.opened.length, 2);
  assert.equal(resumeId(latest()), "3");
  assert.equal(result.current.text, "ab");

  // Given up on (one attempt allowed), then brought back by hand.
  send(() => latest().fail());
  send(() => t.mock.timers.tick(100));
  send(() => latest().fail());
  assert.equal(result.current.connectionState, "offline");
  assert.equal(FakeEventSource.opened.length, 3);
  send(() => result.current.reconnect());
  assert.equal(FakeEventSource.opened.length, 4);
  assert.equal(result.current.connectionState, "connecting");
  send(() => latest().emit("connected", { connection_id: "c4" }));
  assert.equal(result.current.error, null, "connected again: the connection error is gone");
  send(() => latest().fail());
  assert.equal(result.current.connectionState, "reconnecting", "the attempts start over");
  send(() => t.mock.timers.tick(100));
  assert.equal(FakeEventSource.opened.length, 5);
});

test("disconnect() closes the stream and keeps the text; nothing reconnects until reconnect()", (t) => {
  fakeTime(t);
  const { result } = renderTask("gen-9", { reconnectDelay: 100 });
  const source = latest();
  send(() => source.emit("connected", { connection_id: "c1" }));
  send(() => source.emit("text", { delta: "kept" }, "12"));
  send(() => result.current.disconnect());
  assert.ok(source.closed);
  assert.equal(result.current.connectionState, "closed");
  assert.equal(result.current.isConnected, false);
  assert.equal(result.current.text, "kept");
  send(() => t.mock.timers.tick(600_000));
  assert.equal(FakeEventSource.opened.length, 1);
  send(() => result.current.reconnect());
  assert.equal(FakeEventSource.opened.length, 2);
  assert.equal(resumeId(latest()), "12");
});

test("unmounting closes the stream, and nothing reconnects afterwards", (t) => {
  fakeTime(t);
  const { result, unmount } = renderTask("gen-10", { reconnectDelay: 100 });
  const source = latest();
  send(() => source.emit("connected", { connection_id: "c1" }));
  send(() => source.fail());
  assert.equal(result.current.connectionState, "reconnecting");
  unmount();
  assert.ok(source.closed);
  send(() => t.mock.timers.tick(600_000));
  assert.equal(FakeEventSource.opened.length, 1, "the pending reconnect is cancelled");
});

test("a new taskId closes the old stream and starts the new task's text from nothing", (t) => {
  fakeTime(t);
  const { result, rerender } = renderTask("gen-a");
  const first = latest();
  send(() => first.emit("text", { delta: "old task" }, "3"));
  rerender({ id: "gen-b", opts: {} });
  assert.equal(result.current.text, "", "the new task does not show the old text");
  assert.ok(first.closed);
  assert.equal(FakeEventSource.opened.length, 2);
  assert.equal(new URL(latest().url).pathname, "/tasks/gen-b/events");
  assert.equal(resumeId(latest()), null, "a new task is read from its start");
  send(() => first.emit("text", { delta: "late" }, "4"));
  send(() => latest().emit("text", { delta: "new" }, "1"));
  assert.equal(result.current.text, "new");
  rerender({ id: null, opts: {} });
  assert.equal(result.current.connectionState, "idle");
  assert.equal(FakeEventSource.opened.length, 2, "no task, no stream");
});

test("new callbacks on every render neither reconnect nor leave a stale callback called", (t) => {
  fakeTime(t);
  const seen = [];
  const { rerender } = renderTask("gen-11", { onProgress: () => seen.push("first") });
  rerender({ id: "gen-11", opts: { onProgress: () => seen.push("second") } });
  send(() => latest().emit("progress", { status: "running", progress: 5 }, "1"));
  assert.equal(FakeEventSource.opened.length, 1);
  assert.deepEqual(seen, ["second"]);
});

test("baseUrl and accessToken shape the stream URL", (t) => {
  fakeTime(t);
  renderTask("gen 12", { baseUrl: "https://broker.example.com/", accessToken: "tok" });
  const url = new URL(latest().url);
  assert.equal(url.origin, "https://broker.example.com");
  assert.equal(url.pathname, "/tasks/gen%2012/events");
  assert.equal(url.searchParams.get("access_token"), "tok");
});

test("a new accessToken or withCredentials reopens the stream after the last id: the text is never doubled", (t) => {
  fakeTime(t);
  const { result, rerender } = renderTask("gen-15", { accessToken: "tok-a" });
  const first = latest();
  send(() => first.emit("connected", { connection_id: "c1" }));
  send(() => first.emit("text", { delta: "Hel" }, "2"));
  send(() => first.emit("text", { delta: "lo" }, "3"));

  rerender({ id: "gen-15", opts: { accessToken: "tok-b" } });
  assert.ok(first.closed, "the stream with the old token is closed");
  assert.equal(FakeEventSource.opened.length, 2);
  assert.equal(new URL(latest().url).searchParams.get("access_token"), "tok-b");
  assert.equal(resumeId(latest()), "3", "the new stream resumes after what is shown");
  // What the broker sends a resume after 3: only what came since.
  send(() => latest().emit("connected", { connection_id: "c2" }));
  send(() => latest().emit("text", { delta: ", world" }, "4"));
  assert.equal(result.current.text, "Hello, world");

  rerender({ id: "gen-15", opts: { accessToken: "tok-b", withCredentials: true } });
  assert.equal(FakeEventSource.opened.length, 3);
  assert.equal(resumeId(latest()), "4");
  send(() => latest().emit("complete", { task_id: "gen-15", status: "completed", result: null }, "5"));
  assert.equal(result.current.status, "completed");

  // Ended: a token refreshed afterwards opens nothing (the broker would
  // have nothing more to send), and what is shown stays.
  rerender({ id: "gen-15", opts: { accessToken: "tok-c", withCredentials: true } });
  assert.equal(FakeEventSource.opened.length, 3, "no stream after the task's end");
  assert.equal(result.current.text, "Hello, world");
  assert.equal(result.current.status, "completed");
});

test("after disconnect() a refreshed token opens nothing until reconnect(), which resumes with it; another task opens", (t) => {
  fakeTime(t);
  const { result, rerender } = renderTask("gen-16", { accessToken: "tok-a" });
  send(() => latest().emit("connected", { connection_id: "c1" }));
  send(() => latest().emit("text", { delta: "Hel" }, "2"));
  send(() => result.current.disconnect());
  assert.equal(result.current.connectionState, "closed");

  rerender({ id: "gen-16", opts: { accessToken: "tok-b" } });
  rerender({ id: "gen-16", opts: { accessToken: "tok-b", withCredentials: true } });
  assert.equal(FakeEventSource.opened.length, 1, "the stream the user closed stays closed");
  assert.equal(result.current.text, "Hel");

  send(() => result.current.reconnect());
  assert.equal(FakeEventSource.opened.length, 2);
  assert.equal(new URL(latest().url).searchParams.get("access_token"), "tok-b");
  assert.equal(resumeId(latest()), "2", "resumes after what is shown");
  send(() => latest().emit("connected", { connection_id: "c2" }));
  send(() => latest().emit("text", { delta: "lo" }, "3"));
  assert.equal(result.current.text, "Hello");

  // Closed again, then another task: a new subject, opened at once.
  send(() => result.current.disconnect());
  rerender({ id: "gen-17", opts: { accessToken: "tok-b", withCredentials: true } });
  assert.equal(FakeEventSource.opened.length, 3);
  assert.match(latest().url, /gen-17/);
});

test("useEventStream reopened with a new accessToken resumes after the last id", (t) => {
  fakeTime(t);
  const { result, rerender } = renderEvents({ event_types: ["commit"] }, { accessToken: "tok-a" });
  send(() => latest().emit("connected", { connection_id: "c1", event_types: ["commit"] }));
  send(() => latest().emit("commit", { sha: "a1" }, "8"));
  rerender({ q: { event_types: ["commit"] }, opts: { accessToken: "tok-b" } });
  assert.equal(FakeEventSource.opened.length, 2);
  assert.equal(resumeId(latest()), "8", "what is published during the switch is not skipped");
  send(() => latest().emit("commit", { sha: "b2" }, "9"));
  assert.deepEqual(result.current.events.map((e) => e.data.sha), ["a1", "b2"]);
  // Another query is another stream: read from now, not from the old id.
  rerender({ q: { event_types: ["deploy"] }, opts: { accessToken: "tok-b" } });
  assert.equal(resumeId(latest()), null);
});

function renderEvents(query, options = {}) {
  FakeEventSource.opened = [];
  return renderHook(({ q, opts }) => useEventStream(q, { EventSource: FakeEventSource, ...opts }), {
    initialProps: { q: query, opts: options },
  });
}

test("useEventStream asks for its query and lists the events received, bounded, with the last one", (t) => {
  fakeTime(t);
  const { result } = renderEvents({ event_types: ["commit", "progress_update"], project_id: "p1" }, { maxEvents: 2 });
  const url = new URL(latest().url);
  assert.equal(url.pathname, "/sse/events");
  assert.equal(url.searchParams.get("event_types"), "commit,progress_update");
  assert.equal(url.searchParams.get("project_id"), "p1");
  send(() => latest().emit("connected", { connection_id: "c1", event_types: ["commit", "progress_update"], project_id: "p1" }));
  assert.equal(result.current.isConnected, true);
  send(() => latest().emit("commit", { sha: "a1" }, "1"));
  send(() => latest().emit("heartbeat", { ts: 1 }));
  send(() => latest().emit("commit", { sha: "b2" }, "2"));
  send(() => latest().emit("progress_update", { progress: 40, status: "running" }, "3"));

  assert.deepEqual(
    result.current.events.map((e) => [e.type, e.lastEventId]),
    [
      ["commit", "2"],
      ["progress_update", "3"],
    ],
    "the last maxEvents events, without heartbeats",
  );
  assert.deepEqual(result.current.lastEvent, { type: "progress_update", data: { progress: 40, status: "running" }, lastEventId: "3" });
  assert.equal(result.current.progress, 40);
  assert.equal(result.current.status, "running");
});

test("useEventStream with no types listens to every type its `connected` frame lists", (t) => {
  fakeTime(t);
  const { result } = renderEvents({});
  assert.equal(new URL(latest().url).searchParams.get("event_types"), null);
  send(() => latest().emit("connected", { connection_id: "c1", event_types: ["risk_alert", "text"], project_id: null }));
  send(() => latest().emit("risk_alert", { level: "high" }, "1"));
  send(() => latest().emit("text", { delta: "to" }, "2"));
  send(() => latest().emit("text", { delta: "ken" }, "3"));
  assert.deepEqual(
    result.current.events.map((e) => e.type),
    ["risk_alert", "text", "text"],
  );
  assert.equal(result.current.text, "token");
});

test("on a general stream a task's `error` is one more event: no onError, no end, no reconnect", (t) => {
  fakeTime(t);
  const errors = [];
  const { result } = renderEvents({ event_types: "error,commit" }, { onError: (e) => errors.push(e) });
  const source = latest();
  send(() => source.emit("connected", { connection_id: "c1", event_types: ["error", "commit"] }));
  send(() => source.emit("error", { task_id: "t1", status: "failed", error: "boom" }, "1"));
  send(() => source.emit("commit", { sha: "c3" }, "2"));
  send(() => t.mock.timers.tick(10_000));
  assert.deepEqual(errors, []);
  assert.equal(result.current.error, null);
  assert.equal(result.current.status, "failed");
  assert.deepEqual(result.current.events.map((e) => e.type), ["error", "commit"]);
  assert.equal(result.current.isConnected, true);
  assert.equal(FakeEventSource.opened.length, 1);
  assert.ok(!source.closed);
});

test("useEventStream reconnects after a drop, resumes after the last id and keeps its events; an equal query does not reconnect", (t) => {
  fakeTime(t);
  const { result, rerender } = renderEvents({ event_types: ["commit"] }, { reconnectDelay: 100 });
  send(() => latest().emit("connected", { connection_id: "c1", event_types: ["commit"] }));
  send(() => latest().emit("commit", { sha: "a1" }, "8"));
  rerender({ q: { event_types: ["commit"] }, opts: { reconnectDelay: 100 } });
  assert.equal(FakeEventSource.opened.length, 1, "a new but equal query object keeps the stream");
  send(() => latest().fail());
  send(() => t.mock.timers.tick(100));
  assert.equal(FakeEventSource.opened.length, 2);
  assert.equal(resumeId(latest()), "8");
  send(() => latest().emit("connected", { connection_id: "c2", event_types: ["commit"] }));
  send(() => latest().emit("commit", { sha: "b2" }, "9"));
  assert.deepEqual(result.current.events.map((e) => e.data.sha), ["a1", "b2"]);
  rerender({ q: null, opts: {} });
  assert.ok(latest().closed, "a null query closes the stream");
  assert.equal(result.current.connectionState, "idle");
});

test("a `progress` event telling an ended status does not end the task before its `complete`: the text is whole when the status says so", (t) => {
  fakeTime(t);
  const { result } = renderTask("gen-13");
  // What a (re)connect to a finished task may send: its state first, then the text it missed.
  send(() => latest().emit("connected", { connection_id: "c1" }));
  send(() => latest().emit("progress", { status: "completed", progress: 100, stage: "done" }, "1"));
  assert.equal(result.current.status, "running", "not yet completed: the text is still to come");
  assert.equal(result.current.progress, 100);
  assert.ok(!latest().closed);
  send(() => latest().emit("text", { delta: "All of it." }, "2"));
  send(() => latest().emit("complete", { status: "completed", result: null }, "3"));
  assert.equal(result.current.status, "completed");
  assert.equal(result.current.text, "All of it.");
});

test("useEventStream's disconnect() closes and keeps the events; reconnect() resumes after the last id", (t) => {
  fakeTime(t);
  const { result } = renderEvents({ event_types: ["commit"] }, { reconnectDelay: 100 });
  const first = latest();
  send(() => first.emit("connected", { connection_id: "c1", event_types: ["commit"] }));
  send(() => first.emit("commit", { sha: "a1" }, "4"));
  send(() => result.current.disconnect());
  assert.ok(first.closed);
  assert.equal(result.current.connectionState, "closed");
  send(() => t.mock.timers.tick(600_000));
  assert.equal(FakeEventSource.opened.length, 1);
  send(() => result.current.reconnect());
  assert.equal(FakeEventSource.opened.length, 2);
  assert.equal(resumeId(latest()), "4");
  send(() => result.current.reconnect());
  assert.ok(FakeEventSource.opened[1].closed, "reconnect() replaces the open stream");
  assert.equal(FakeEventSource.opened.length, 3);
  assert.deepEqual(result.current.events.map((e) => e.data.sha), ["a1"]);
});

test("with autoReconnect off a lost stream says so, not that it gave up after 0 attempts", (t) => {
  fakeTime(t);
  const { result } = renderEvents({ event_types: ["commit"] }, { autoReconnect: false });
  send(() => latest().emit("connected", { connection_id: "c1", event_types: ["commit"] }));
  send(() => latest().fail());
  assert.equal(result.current.connectionState, "offline");
  assert.equal(FakeEventSource.opened.length, 1, "no reconnect");
  assert.match(result.current.error.message, /^the stream was lost \(\w+\) and reconnecting is off$/);
});

test("useEventStream gives up after maxReconnectAttempts, and reconnect() starts the attempts over", (t) => {
  fakeTime(t);
  const { result } = renderEvents({ event_types: ["commit"] }, { reconnectDelay: 100, maxReconnectAttempts: 1 });
  send(() => latest().fail());
  send(() => t.mock.timers.tick(100));
  send(() => latest().fail());
  assert.equal(result.current.connectionState, "offline");
  assert.match(result.current.error.message, /gave up after 1/);
  send(() => result.current.reconnect());
  assert.equal(FakeEventSource.opened.length, 3);
  send(() => latest().fail());
  assert.equal(result.current.connectionState, "reconnecting", "a fresh attempt count");
});

test("new reconnect settings apply to the open stream from its next loss", (t) => {
  fakeTime(t);
  const { result, rerender } = renderTask("gen-14", { reconnectDelay: 100 });
  send(() => latest().emit("connected", { connection_id: "c1" }));
  rerender({ id: "gen-14", opts: { autoReconnect: false } });
  assert.equal(FakeEventSource.opened.length, 1, "no reconnect for a new setting");
  send(() => latest().fail());
  assert.equal(result.current.connectionState, "offline");
});

test("under StrictMode (effects and state updaters run twice in development) one stream stays open and no text is doubled", (t) => {
  fakeTime(t);
  FakeEventSource.opened = [];
  const { result } = renderHook(() => useTaskStream("gen-15", { EventSource: FakeEventSource }), {
    wrapper: ({ children }) => React.createElement(React.StrictMode, null, children),
  });
  const open = FakeEventSource.opened.filter((source) => !source.closed);
  assert.equal(open.length, 1, "the first mount's stream is closed by the re-run effect");
  send(() => open[0].emit("connected", { connection_id: "c1" }));
  send(() => open[0].emit("text", { delta: "once " }, "1"));
  send(() => open[0].emit("text", { delta: "each" }, "2"));
  assert.equal(result.current.text, "once each");
  assert.equal(result.current.isConnected, true);
});

test("useTaskStream opens its stream with a ticket from getTicket, and re-renders do not reopen it", async () => {
  let issued = 0;
  const options = { getTicket: async () => `ticket-${++issued}` };
  const { rerender } = renderTask("gen-9", options);
  await act(async () => {
    await new Promise((resolve) => setImmediate(resolve));
  });
  assert.equal(FakeEventSource.opened.length, 1);
  assert.equal(new URL(latest().url).searchParams.get("ticket"), "ticket-1");
  rerender({ id: "gen-9", opts: { getTicket: async () => "another" } });
  await act(async () => {
    await new Promise((resolve) => setImmediate(resolve));
  });
  assert.equal(FakeEventSource.opened.length, 1, "a new getTicket function does not reopen the stream");
});
