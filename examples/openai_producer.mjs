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
  // The viewers learn at once; otherwise the orphan timeout would end it.
  const detail = (await upstream.text()).slice(0, 500);
  await brokerJson(`/tasks/${task.task_id}/fail`, {
    error: `the model provider answered ${upstream.status}: ${detail}`,
  });
  console.error(`model call failed: ${upstream.status}`);
  process.exit(1);
}

let answer;
try {
  answer = await fetch(`${broker}/tasks/${task.task_id}/stream`, {
    method: "POST",
    duplex: "half",
    headers: { ...auth, "content-type": "text/event-stream" },
    body: endsOnAbort(upstream.body),
  });
} catch (error) {
  // The broker closed the upload before reading all of it: ask it why.
  model.abort();
  const state = await (await fetch(`${broker}/tasks/${task.task_id}`, { headers: auth })).json();
  console.log(JSON.stringify({ task: state, upload_error: String(error.cause ?? error) }));
  process.exit(state.status === "cancelled" ? 3 : 1);
}
const body = await answer.json();
console.log(JSON.stringify(body));
if (answer.ok) process.exit(0);
model.abort();
process.exitCode = body.error?.code === "task_cancelled" ? 3 : 1;

// The model's body as the upload's, ending (not failing) once the model call
// is aborted: Node's fetch throws an uncaught AbortError, which ends the
// process, when a request body it is still sending fails after the answer.
function endsOnAbort(body) {
  const reader = body.getReader();
  return new ReadableStream({
    async pull(controller) {
      try {
        const { value, done } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch {
        controller.close();
      }
    },
    cancel: (reason) => reader.cancel(reason),
  });
}
