// An answer whose app says things of the message (`messageMetadata`, as
// the AI SDK's docs show it: when it began and with which model on
// `start`, the tokens it took on `finish`), written by the `ai` package's
// own streamText over a mock model. The callback answers for every part,
// as an app's often does: the start's metadata comes again with each
// token, and each step's end says the step's tokens so far. Prints, as
// one JSON line, the UI message stream the SDK writes (what an app pipes
// into the broker) and the message the SDK assembles from it:
// {"body": "...", "message": {...}}. Read by
// tests/api/ui_message_stream/message_metadata.rs.
//
//   node message_metadata_stream.mjs

import { readUIMessageStream, streamText } from 'ai';
import { MockLanguageModelV3, convertArrayToReadableStream } from 'ai/test';

import { usage } from './chat_kit.mjs';
import { uiChunks } from './ui_chunks.mjs';

const tokens = ['Oslo ', 'is ', 'cold ', 'in ', 'winter.'];
const model = new MockLanguageModelV3({
  doStream: async () => ({
    stream: convertArrayToReadableStream([
      { type: 'stream-start', warnings: [] },
      { type: 'text-start', id: 't1' },
      ...tokens.map((delta) => ({ type: 'text-delta', id: 't1', delta })),
      { type: 'text-end', id: 't1' },
      { type: 'finish', finishReason: { unified: 'stop', raw: 'stop' }, usage: usage(12, 5) },
    ]),
  }),
});

const startedAt = 1_765_000_000_000;
const result = streamText({ model, prompt: 'How cold is Oslo?' });
const body = await result
  .toUIMessageStreamResponse({
    messageMetadata: ({ part }) => {
      switch (part.type) {
        case 'start':
          return { createdAt: startedAt, model: 'mock-1', usage: { inputTokens: null } };
        case 'finish-step':
          return { usage: { inputTokens: part.usage.inputTokens } };
        case 'finish':
          return { usage: { outputTokens: part.totalUsage.outputTokens }, done: true };
        default:
          return { createdAt: startedAt };
      }
    },
  })
  .text();

let message = null;
for await (const snapshot of readUIMessageStream({ stream: uiChunks(new Response(body).body) })) {
  message = snapshot;
}
process.stdout.write(`${JSON.stringify({ body, message })}\n`);
