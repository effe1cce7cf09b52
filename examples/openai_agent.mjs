#!/usr/bin/env node
// An OpenAI-backed agent: one task per answer, one step per model call.
// Each call's streamed response is piped unchanged into the broker as one
// step of the task's answer (`POST /tasks/{id}/stream?ends=step`), while
// the agent reads the same stream (a tee) for the tools the model asks for.
// It runs them, sends their answers to the broker (NDJSON `tool_result`
// lines, kept in place for the viewers) and to the model, and calls the
// model again, until it answers without asking for a tool; then it
// completes the task. Viewers see one message: the text, the tool cards,
// the next step's text. Node 18 or newer, no packages.
//
//   OPENAI_API_KEY=sk-… node examples/openai_agent.mjs "What is the weather in Oslo?"
//
// Environment: as examples/openai_producer.mjs (BROKER_URL,
// SSE_BROKER_TOKEN, OPENAI_API_KEY, OPENAI_BASE_URL, OPENAI_MODEL, CHAT_ID).
//
// Prints `BROKER_URL/?task=ID`, then the completed task. Exit status: 0
// done, 3 cancelled by a user, 1 failed.

const broker = (process.env.BROKER_URL ?? "http://127.0.0.1:8080").replace(/\/$/, "");
const openai = (process.env.OPENAI_BASE_URL ?? "https://api.openai.com/v1").replace(/\/$/, "");
const prompt = process.argv.slice(2).join(" ") || "What is the weather in Oslo?";
const auth = process.env.SSE_BROKER_TOKEN
  ? { authorization: `Bearer ${process.env.SSE_BROKER_TOKEN}` }
  : {};
const MAX_STEPS = 5;

// The agent's tools: what the model is told, and what runs them (a stand-in
// here; a real agent calls a weather service).
const TOOLS = [
  {
    type: "function",
    function: {
      name: "weather",
      description: "The current weather in a city",
      parameters: {
        type: "object",
        properties: { city: { type: "string" } },
        required: ["city"],
      },
    },
  },
];
const RUN = {
  weather: async ({ city }) => ({ city, celsius: -3, sky: "snow" }),
};

async function brokerPost(path, body, contentType = "application/json") {
  const response = await fetch(`${broker}${path}`, {
    method: "POST",
    headers: { ...auth, "content-type": contentType },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const answer = await response.json();
  return { ok: response.ok, status: response.status, answer };
}

async function brokerJson(path, body) {
  const { ok, status, answer } = await brokerPost(path, body);
  if (!ok) throw new Error(`${path}: ${status} ${JSON.stringify(answer)}`);
  return answer;
}

/** What one Chat Completions stream said: its text, its tool calls put back
 * together from their fragments, and why it stopped. */
async function readCompletion(stream) {
  const said = { content: "", calls: [], finishReason: null };
  const decoder = new TextDecoder();
  let buffered = "";
  const take = (event) => {
    const data = event
      .split(/\r?\n/)
      .filter((line) => line.startsWith("data:"))
      .map((line) => line.slice(5).trimStart())
      .join("\n");
    if (!data || data === "[DONE]") return;
    const choice = JSON.parse(data).choices?.[0];
    if (!choice) return;
    said.content += choice.delta?.content ?? "";
    for (const fragment of choice.delta?.tool_calls ?? []) {
      const call = (said.calls[fragment.index] ??= { id: "", name: "", arguments: "" });
      call.id ||= fragment.id ?? "";
      call.name ||= fragment.function?.name ?? "";
      call.arguments += fragment.function?.arguments ?? "";
    }
    said.finishReason = choice.finish_reason ?? said.finishReason;
  };
  for await (const chunk of stream) {
    buffered += decoder.decode(chunk, { stream: true });
    const events = buffered.split(/\r?\n\r?\n/);
    buffered = events.pop();
    events.forEach(take);
  }
  take(buffered);
  return said;
}

const task = await brokerJson("/tasks", {
  task_type: "agent",
  stage: "thinking",
  ...(process.env.CHAT_ID ? { chat_id: process.env.CHAT_ID } : {}),
});
console.log(`${broker}/?task=${task.task_id}`);

const messages = [{ role: "user", content: prompt }];
for (let step = 1; step <= MAX_STEPS; step += 1) {
  // Aborted when the broker says the task was cancelled: the provider
  // stops generating, and billing, there.
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
        stream_options: { include_usage: true },
        messages,
        tools: TOOLS,
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

  // The broker and this agent read the same stream: the broker ends one
  // step at its [DONE], and the task runs on.
  const [toBroker, toAgent] = upstream.body.tee();
  // The agent's reading ends with the step's stream; on a cancel it is
  // abandoned (the model call is aborted under it).
  const reading = readCompletion(toAgent);
  reading.catch(() => {});
  const piped = modelBody(toBroker, model.signal);
  let uploaded;
  try {
    // Answered when the step's stream ends, or at once (409) on a cancel.
    uploaded = await fetch(`${broker}/tasks/${task.task_id}/stream?ends=step`, {
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
  const upload = await uploaded.json();
  if (!uploaded.ok) {
    model.abort();
    console.log(JSON.stringify(upload));
    if (upload.error?.code === "task_cancelled") process.exit(3);
    // Refused (a line the broker could not take, 422; a line too long,
    // 413): what came before it is applied, and the task would run on
    // until the orphan timeout; end it now, with the broker's words.
    await failTask(`the broker refused the model's stream: ${upload.error?.message ?? uploaded.status}`);
    process.exit(1);
  }
  const said = await reading;

  const calls = said.calls.filter(Boolean);
  if (calls.length === 0) {
    // The answer is whole: the last step's end says why it stopped and its
    // tokens; the completion says why the answer stopped.
    const done = await brokerJson(`/tasks/${task.task_id}/complete`, {
      result: { finish_reason: said.finishReason === "length" ? "length" : "stop", steps: step },
    });
    console.log(JSON.stringify(done));
    process.exit(0);
  }

  // Run the tools the model asked for; their answers go to the viewers (in
  // place, after the step that called them) and to the model's next call.
  messages.push({
    role: "assistant",
    content: said.content || null,
    tool_calls: calls.map((call) => ({
      id: call.id,
      type: "function",
      function: { name: call.name, arguments: call.arguments },
    })),
  });
  const answers = await Promise.all(
    calls.map(async (call) => {
      try {
        const tool = RUN[call.name];
        if (!tool) throw new Error(`no tool named ${call.name}`);
        return { id: call.id, output: await tool(JSON.parse(call.arguments || "{}")) };
      } catch (error) {
        return { id: call.id, error: String(error.message ?? error) };
      }
    }),
  );
  const lines = answers.map((answer) => `${JSON.stringify({ tool_result: answer })}\n`).join("");
  const reported = await brokerPost(`/tasks/${task.task_id}/stream`, lines, "application/x-ndjson");
  if (!reported.ok) {
    console.log(JSON.stringify(reported.answer));
    process.exit(reported.answer.error?.code === "task_cancelled" ? 3 : 1);
  }
  for (const answer of answers) {
    messages.push({
      role: "tool",
      tool_call_id: answer.id,
      content: JSON.stringify(answer.output ?? { error: answer.error }),
    });
  }
}
await brokerJson(`/tasks/${task.task_id}/fail`, { error: `no answer after ${MAX_STEPS} model calls` });
console.error(`no answer after ${MAX_STEPS} model calls`);
process.exit(1);

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
