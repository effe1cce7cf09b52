// A chat turn that continues an assistant message, run with the `ai`
// package's own Chat (the class `useChat` wraps): the user asks, the model
// (a mock) says it will look and calls a tool. With TURN=approve (the
// default) the tool needs approval: the person approves
// (`addToolApprovalResponse`), the chat sends again on its own
// (`sendAutomaticallyWhen`), the app's `streamText` runs the tool and the
// model answers. TURN=deny: the person denies it, and the app's stream
// answers it `tool-output-denied`. TURN=page: the page runs the tool
// itself (`onToolCall`, `addToolOutput`) and the chat sends its output.
// The SDK continues the assistant message it has: the second stream
// carries that message's id (and, after an approval, first the call's
// output).
//
//   node continued_turn.mjs sdk
//       The chat's transport answers with the app's own stream, as a
//       Next.js route returning `toUIMessageStreamResponse()` would.
//   node continued_turn.mjs broker BROKER CHAT_ID
//       The transport does what docs/guides/ai-sdk.md's route does: a task
//       per request (`chat_id`; `message_id` and the page's tool outputs,
//       `tool_results`, when the request continues an assistant message),
//       the app's stream uploaded to it, the answer read from the broker's
//       `/tasks/{id}/ui-message-stream`.
//
// Prints one JSON line: {messages, status, error, bodies, tasks}: the
// chat's messages at the end, the app's UI message stream of each turn
// (what it uploads), and (broker) the task of each turn.

import {
  AbstractChat,
  convertToModelMessages,
  jsonSchema,
  getToolName,
  isToolUIPart,
  lastAssistantMessageIsCompleteWithApprovalResponses,
  lastAssistantMessageIsCompleteWithToolCalls,
  stepCountIs,
  streamText,
  tool,
} from 'ai';
import { MockLanguageModelV3, convertArrayToReadableStream } from 'ai/test';

import { PlainState, usage } from './chat_kit.mjs';
import { uiChunks } from './ui_chunks.mjs';

const [mode, broker, chatId] = process.argv.slice(2);
if (!['sdk', 'broker'].includes(mode) || (mode === 'broker' && (!broker || !chatId))) {
  console.error('usage: continued_turn.mjs sdk | broker BROKER CHAT_ID');
  process.exit(2);
}


// Call 1 says it will look and calls the tool, which needs approval; call 2
// (after the approval, the tool's output in its prompt) answers.
const calls = [
  [
    { type: 'stream-start', warnings: [] },
    { type: 'text-start', id: 't1' },
    { type: 'text-delta', id: 't1', delta: 'Let me ' },
    { type: 'text-delta', id: 't1', delta: 'check.' },
    { type: 'text-end', id: 't1' },
    { type: 'tool-call', toolCallId: 'call-1', toolName: 'weather', input: '{"city":"Oslo"}' },
    { type: 'finish', finishReason: { unified: 'tool-calls', raw: 'tool_calls' }, usage: usage(20, 9) },
  ],
  [
    { type: 'stream-start', warnings: [] },
    { type: 'text-start', id: 't2' },
    { type: 'text-delta', id: 't2', delta: 'It is ' },
    { type: 'text-delta', id: 't2', delta: '-3 °C in Oslo.' },
    { type: 'text-end', id: 't2' },
    { type: 'finish', finishReason: { unified: 'stop', raw: 'stop' }, usage: usage(35, 7) },
  ],
];
let call = 0;
const model = new MockLanguageModelV3({
  doStream: async () => ({ stream: convertArrayToReadableStream(calls[call++]) }),
});

const turn = process.env.TURN ?? 'approve';
if (!['approve', 'deny', 'page'].includes(turn)) throw new Error(`TURN=${turn}`);
const weather = async ({ city }) => ({ city, celsius: -3 });
const inputSchema = jsonSchema({ type: 'object', properties: { city: { type: 'string' } }, required: ['city'] });
const tools = {
  weather:
    turn === 'page'
      ? tool({ description: 'The weather in a city, as the page sees it', inputSchema })
      : tool({ description: 'The weather in a city', inputSchema, needsApproval: true, execute: weather }),
};
/** The tools the page runs itself: their outputs are in the message only. */
const PAGE_TOOLS = new Set(turn === 'page' ? ['weather'] : []);

const bodies = [];
const tasks = [];

/** The app's route: the model's answer to `messages` as a UI message stream body. */
async function appStream(messages) {
  const result = streamText({
    model,
    messages: await convertToModelMessages(messages),
    tools,
    stopWhen: stepCountIs(5),
  });
  const body = await result.toUIMessageStreamResponse({ originalMessages: messages }).text();
  bodies.push(body);
  return body;
}

async function brokerFetch(path, init = {}) {
  const response = await fetch(`${broker}${path}`, init);
  if (!response.ok) throw new Error(`${path}: the broker answered ${response.status} ${await response.text()}`);
  return response;
}

/** The guide's route against the broker: a task, the upload, the broker's stream. */
async function brokerStream(messages) {
  const last = messages.at(-1);
  const continued = last?.role === 'assistant' ? last : undefined;
  // The page's outputs in the message's last step, as the guide's route
  // sends them.
  const parts = continued?.parts ?? [];
  const answered = parts
    .slice(parts.findLastIndex((part) => part.type === 'step-start'))
    .filter(
      (part) =>
        isToolUIPart(part) &&
        PAGE_TOOLS.has(getToolName(part)) &&
        (part.state === 'output-available' || part.state === 'output-error'),
    );
  const task = await brokerFetch('/tasks', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      chat_id: chatId,
      task_type: 'chat',
      message_id: continued?.id,
      tool_results: answered.map((part) =>
        part.state === 'output-error'
          ? { id: part.toolCallId, error: part.errorText }
          : { id: part.toolCallId, output: part.output },
      ),
    }),
  }).then((r) => r.json());
  tasks.push(task);
  const body = await appStream(messages);
  await brokerFetch(`/tasks/${task.task_id}/stream`, {
    method: 'POST',
    headers: { 'content-type': 'text/event-stream' },
    body,
  });
  const response = await brokerFetch(`/tasks/${task.task_id}/ui-message-stream?ai_sdk=7`);
  return response.body;
}

class Transport {
  async sendMessages({ messages }) {
    const body =
      mode === 'sdk' ? new Response(await appStream(messages)).body : await brokerStream(messages);
    return uiChunks(body);
  }
  async reconnectToStream() {
    return null;
  }
}

class Chat extends AbstractChat {}

/** Resolves once the chat is ready again, its automatic sends included. */
async function settle(chat) {
  for (let waited = 0; waited < 200; waited++) {
    await new Promise((resolve) => setTimeout(resolve, 25));
    if (chat.status === 'ready' || chat.status === 'error') return;
  }
  throw new Error(`the chat is still ${chat.status}`);
}

try {
  const state = new PlainState();
  const chat = new Chat({
    id: chatId ?? 'chat-approval',
    transport: new Transport(),
    state,
    sendAutomaticallyWhen:
      turn === 'page'
        ? lastAssistantMessageIsCompleteWithToolCalls
        : lastAssistantMessageIsCompleteWithApprovalResponses,
    // Not awaited: the chat waits for the call's handler before it takes
    // the output.
    onToolCall: ({ toolCall }) => {
      if (turn !== 'page' || toolCall.toolName !== 'weather') return;
      weather(toolCall.input).then((output) =>
        chat.addToolOutput({ tool: 'weather', toolCallId: toolCall.toolCallId, output }),
      );
    },
  });
  await chat.sendMessage({ text: 'What is the weather in Oslo?' });
  await settle(chat);
  if (turn !== 'page') {
    const waiting = state.messages.at(-1)?.parts.find((part) => part.state === 'approval-requested');
    if (!waiting) throw new Error(`no approval asked: ${JSON.stringify(state.messages)}`);
    await chat.addToolApprovalResponse({ id: waiting.approval.id, approved: turn === 'approve' });
    await settle(chat);
  }
  process.stdout.write(
    `${JSON.stringify({
      messages: state.messages,
      status: chat.status,
      error: chat.error?.message ?? null,
      bodies,
      tasks,
    })}\n`,
  );
} catch (error) {
  console.error(error?.stack ?? String(error));
  process.exit(1);
}
