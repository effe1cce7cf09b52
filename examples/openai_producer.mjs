#!/usr/bin/env node
// An OpenAI-backed producer: one model call per task, its streamed response
// body piped unchanged into the broker's upload (`POST /tasks/{id}/stream`,
// `text/event-stream`), which reads the Chat Completions chunks itself.
// Node 18 or newer, no packages.
//
//   OPENAI_API_KEY=sk-… node examples/openai_producer.mjs "Write a haiku about queues"
//
// Environment: BROKER_URL (http://127.0.0.1:8080), SSE_BROKER_TOKEN (a token
// with the publish scope, when the broker has authentication on),
// OPENAI_API_KEY, OPENAI_BASE_URL (https://api.openai.com/v1, or any server
// speaking the same API), OPENAI_MODEL (gpt-4o-mini), CHAT_ID (optional).
//
// Prints `BROKER_URL/?task=ID` (the demo page follows the task there), then
// the broker's answer. Exit status: 0 done, 3 cancelled by a user, 1 failed.

const broker = (process.env.BROKER_URL ?? "http://127.0.0.1:8080").replace(/\/$/, "");
const openai = (process.env.OPENAI_BASE_URL ?? "https://api.openai.com/v1").replace(/\/$/, "");
const prompt = process.argv.slice(2).join(" ") || "Say hello in five words.";
const auth = process.env.SSE_BROKER_TOKEN
  ? { authorization: `Bearer ${process.env.SSE_BROKER_TOKEN}` }
  : {};

async function brokerJson(path, body) {
  const response = await fetch(`${broker}${path}`, {
    method: "POST",
    headers: { ...auth, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  if (!response.ok) throw new Error(`${path}: ${response.status} ${JSON.stringify(answer)}`);
  return answer;
}

const task = await brokerJson("/tasks", {
  task_type: "chat",
  stage: "thinking",
  ...(process.env.CHAT_ID ? { chat_id: process.env.CHAT_ID } : {}),
});
console.log(`${broker}/?task=${task.task_id}`);

// Aborted when the broker says the task was cancelled: the provider stops
// generating, and billing, there.
const model = new AbortController();
let upstream;
try {
  upstream = await fetch(`${openai}/chat/completions`, {
    method: "POST",
    signal: model.signal,
    headers: {
      authorization: `Bearer ${process.env.OPENAI_API_KEY ?? ""}`,
      "content-type": "application/json",
    },
    body: JSON.stringify({
      model: process.env.OPENAI_MODEL ?? "gpt-4o-mini",
      stream: true,
      // The token counts, in a last chunk: the broker keeps them in the
      // task's result, which its answer below hands back.
      stream_options: { include_usage: true },
      messages: [{ role: "user", content: prompt }],
    }),
  });
} catch (error) {
  upstream = { ok: false, status: 0, text: async () => String(error.cause ?? error) };
}
if (!upstream.ok) {
  const detail = (await upstream.text()).slice(0, 500);
  await failTask(`the model provider answered ${upstream.status}: ${detail}`);
  console.error(`model call failed: ${upstream.status}`);
  process.exit(1);
}

const piped = modelBody(upstream.body, model.signal);
let answer;
try {
  answer = await fetch(`${broker}/tasks/${task.task_id}/stream`, {
    method: "POST",
    duplex: "half",
    headers: { ...auth, "content-type": "text/event-stream" },
    body: piped.stream,
  });
} catch (error) {
  model.abort();
  if (piped.broken) {
    // What arrived before the break is applied (the viewers have it).
    const why = String(piped.broken.cause?.message ?? piped.broken.message ?? piped.broken);
    await failTask(`the model's stream broke off: ${why}`);
    console.error(`the model's stream broke off: ${why}`);
    process.exit(1);
  }
  // The broker closed the upload before reading all of it: ask it why.
  const state = await (await fetch(`${broker}/tasks/${task.task_id}`, { headers: auth })).json();
  console.log(JSON.stringify({ task: state, upload_error: String(error.cause ?? error) }));
  process.exit(state.status === "cancelled" ? 3 : 1);
}
const body = await answer.json();
console.log(JSON.stringify(body));
// A 200 tells what the stream did to the task: a provider's error event
// mid-answer failed it.
if (answer.ok) process.exit(body.task?.status === "failed" ? 1 : 0);
model.abort();
// Refused (a line the broker could not take, 422; a line too long, 413):
// what came before it is applied, and the task would run on until the
// orphan timeout; end it now, with the broker's words.
if (body.error?.code !== "task_cancelled") {
  await failTask(`the broker refused the model's stream: ${body.error?.message ?? answer.status}`);
}
process.exitCode = body.error?.code === "task_cancelled" ? 3 : 1;

// The model's body as the upload's. Once the model call is aborted (a
// cancel) it ends rather than fails: Node's fetch throws an uncaught
// AbortError, which ends the process, when a request body it is still
// sending fails after the answer. A model stream that breaks off by itself
// (the provider or a proxy cut it) fails the upload instead, and `broken`
// keeps why, to fail the task with.
function modelBody(body, signal) {
  const reader = body.getReader();
  const piped = { broken: null };
  piped.stream = new ReadableStream({
    async pull(controller) {
      try {
        const { value, done } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (error) {
        if (signal.aborted) return controller.close();
        piped.broken = error;
        controller.error(error);
      }
    },
    cancel: (reason) => reader.cancel(reason),
  });
  return piped;
}

// Ends the task as failed (the viewers learn at once; otherwise the orphan
// timeout would end it), unless it ended meanwhile.
async function failTask(why) {
  try {
    await brokerJson(`/tasks/${task.task_id}/fail`, { error: why });
  } catch (error) {
    console.error(String(error.message ?? error));
  }
}
