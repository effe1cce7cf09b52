// Reads a broker's AI SDK UI message stream with the `ai` package's own
// code, as a chat UI would, and prints what the package made of it: one
// JSON line per message snapshot ({"snapshot": message}) while it streams,
// then one last line ({"final": ...}). Driven by the Rust integration tests
// (tests/api/ui_message_stream/ai_sdk.rs), which compare it byte for byte
// with what the producer uploaded.
//
//   node ui_stream_reader.mjs task      BROKER TASK_ID
//       GET BROKER/tasks/TASK_ID/ui-message-stream, parsed by
//       parseJsonEventStream against uiMessageChunkSchema (every part is
//       validated), assembled by readUIMessageStream.
//       final: {message, errors, data}: `data` the data parts the reader
//       got, transient ones included (what a chat's `onData` sees)
//   node ui_stream_reader.mjs reconnect BROKER CHAT_ID
//       DefaultChatTransport.reconnectToStream({chatId}) with
//       prepareReconnectToStreamRequest pointed at BROKER/chats/{id}/stream;
//       null (a 204) or a stream assembled by readUIMessageStream.
//       final: {stream: null} or {message, errors}
//   node ui_stream_reader.mjs resume    BROKER CHAT_ID
//       What useChat({resume: true}) does on mount: a Chat (AbstractChat,
//       the class useChat wraps) over that transport, chat.resumeStream().
//       final: {messages, status, error, finish}
//
// A fourth argument (`ai_sdk=7`) is added to the broker's URL as its query.
//
// Exits 1 with the reason on stderr when the package throws.

import { AbstractChat, DefaultChatTransport, readUIMessageStream } from 'ai';

import { PlainState } from './chat_kit.mjs';
import { uiChunks } from './ui_chunks.mjs';

const [mode, broker, id, query] = process.argv.slice(2);
const search = query ? `?${query}` : '';
if (!['task', 'reconnect', 'resume'].includes(mode) || !broker || !id) {
  console.error('usage: ui_stream_reader.mjs task|reconnect|resume BROKER ID');
  process.exit(2);
}

const print = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);

/** The transport a chat page would build, pointed at the broker. */
function transport() {
  return new DefaultChatTransport({
    api: `${broker}/api/chat`,
    prepareReconnectToStreamRequest: ({ id: chatId }) => ({
      api: `${broker}/chats/${encodeURIComponent(chatId)}/stream${search}`,
    }),
  });
}

/** Reads UI message chunks into one message, printing each snapshot. */
async function assemble(chunks) {
  const errors = [];
  const data = [];
  let message = null;
  const noted = chunks.pipeThrough(
    new TransformStream({
      transform(chunk, controller) {
        if (chunk.type.startsWith('data-') && chunk.type !== 'data-progress') data.push(chunk);
        controller.enqueue(chunk);
      },
    }),
  );
  for await (const snapshot of readUIMessageStream({
    stream: noted,
    onError: (error) => errors.push(error.message),
  })) {
    message = snapshot;
    print({ snapshot });
  }
  return { message, errors, data };
}

async function readTask() {
  const response = await fetch(`${broker}/tasks/${encodeURIComponent(id)}/ui-message-stream${search}`);
  if (!response.ok) throw new Error(`the broker answered ${response.status}`);
  const header = response.headers.get('x-vercel-ai-ui-message-stream');
  if (header !== 'v1') throw new Error(`x-vercel-ai-ui-message-stream is ${header}`);
  return assemble(uiChunks(response.body));
}

async function reconnect() {
  const stream = await transport().reconnectToStream({ chatId: id });
  if (stream === null) return { stream: null };
  return assemble(stream);
}


class Chat extends AbstractChat {}

async function resume() {
  const state = new PlainState((message) => print({ snapshot: message }));
  let finish = null;
  const chat = new Chat({
    id,
    transport: transport(),
    state,
    onFinish: ({ isAbort, isDisconnect, isError, finishReason }) => {
      finish = { isAbort, isDisconnect, isError, finishReason: finishReason ?? null };
    },
  });
  await chat.resumeStream();
  return {
    messages: state.messages,
    status: chat.status,
    error: chat.error?.message ?? null,
    finish,
  };
}

try {
  const read = { task: readTask, reconnect, resume }[mode];
  print({ final: await read() });
} catch (error) {
  console.error(error?.stack ?? String(error));
  process.exit(1);
}
