// An answer the `ai` package's own streamText writes in several parts of
// text and of reasoning (a mock model): two thoughts written apart, two
// paragraphs with a source cited between them, then a third paragraph
// right after the second. The SDK's message keeps each part apart. Prints,
// as one JSON line, the UI message stream the SDK writes
// (`toUIMessageStreamResponse()`'s body, what an app pipes into the
// broker) and the message the SDK itself assembles from it
// (`readUIMessageStream`): {"body": "...", "message": {...}}. The Rust
// integration tests (tests/api/ui_message_stream/text_parts.rs) upload the
// body and compare what a reader of the broker assembles with this message.
//
//   node text_parts_stream.mjs

import { readUIMessageStream, streamText } from 'ai';
import { MockLanguageModelV3, convertArrayToReadableStream } from 'ai/test';

import { usage } from './chat_kit.mjs';
import { uiChunks } from './ui_chunks.mjs';

const model = new MockLanguageModelV3({
  doStream: async () => ({
    stream: convertArrayToReadableStream([
      { type: 'stream-start', warnings: [] },
      { type: 'reasoning-start', id: 'r1' },
      { type: 'reasoning-delta', id: 'r1', delta: 'The user wants Oslo.' },
      { type: 'reasoning-end', id: 'r1' },
      { type: 'reasoning-start', id: 'r2' },
      { type: 'reasoning-delta', id: 'r2', delta: 'Check the forecast.' },
      { type: 'reasoning-end', id: 'r2' },
      { type: 'text-start', id: 't1' },
      { type: 'text-delta', id: 't1', delta: 'Oslo is ' },
      { type: 'text-delta', id: 't1', delta: 'cold.' },
      { type: 'text-end', id: 't1' },
      { type: 'source', sourceType: 'url', id: 'src-1', url: 'https://met.no/oslo', title: 'MET Norway' },
      { type: 'text-start', id: 't2' },
      { type: 'text-delta', id: 't2', delta: 'It snows' },
      { type: 'text-delta', id: 't2', delta: ' tonight.' },
      { type: 'text-end', id: 't2' },
      { type: 'text-start', id: 't3' },
      { type: 'text-delta', id: 't3', delta: 'Wear a hat.' },
      { type: 'text-end', id: 't3' },
      { type: 'finish', finishReason: { unified: 'stop', raw: 'stop' }, usage: usage(12, 8) },
    ]),
  }),
});

const result = streamText({ model, prompt: 'How cold is Oslo?' });
const body = await result.toUIMessageStreamResponse({ sendSources: true }).text();

let message = null;
for await (const snapshot of readUIMessageStream({ stream: uiChunks(new Response(body).body) })) {
  message = snapshot;
}
process.stdout.write(`${JSON.stringify({ body, message })}\n`);
