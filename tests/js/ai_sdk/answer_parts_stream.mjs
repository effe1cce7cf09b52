// An AI SDK app's answer with what a chat UI renders beside the text: the
// app's own data parts (`createUIMessageStream`'s writer: a transient
// status, a card's data written twice under one id), then the `ai`
// package's own streamText (a mock model) citing a web page and a
// document (`sendSources`) and making an image, around its text. Prints,
// as one JSON line, the UI message stream the SDK writes
// (`createUIMessageStreamResponse()`'s body, what an app pipes into the
// broker), the message the SDK itself assembles from it
// (`readUIMessageStream`) and the data parts `onData` saw:
// {"body": "...", "message": {...}, "data": [...]}. The Rust integration
// tests (tests/api/ui_message_stream/answer_parts.rs) upload the body and
// compare what a reader of the broker assembles with this message.
//
//   node answer_parts_stream.mjs

import { createUIMessageStream, createUIMessageStreamResponse, readUIMessageStream, streamText } from 'ai';
import { MockLanguageModelV3, convertArrayToReadableStream } from 'ai/test';

import { usage } from './chat_kit.mjs';
import { uiChunks } from './ui_chunks.mjs';

const model = new MockLanguageModelV3({
  doStream: async () => ({
    stream: convertArrayToReadableStream([
      { type: 'stream-start', warnings: [] },
      { type: 'source', sourceType: 'url', id: 'src-1', url: 'https://met.no/oslo', title: 'MET Norway' },
      { type: 'text-start', id: 't1' },
      { type: 'text-delta', id: 't1', delta: 'Oslo is ' },
      { type: 'source', sourceType: 'document', id: 'src-2', mediaType: 'application/pdf', title: 'Winter report', filename: 'winter.pdf' },
      { type: 'text-delta', id: 't1', delta: 'cold: -3 °C.' },
      { type: 'text-end', id: 't1' },
      { type: 'file', mediaType: 'image/png', data: 'iVBORw0KGgo=' },
      { type: 'finish', finishReason: { unified: 'stop', raw: 'stop' }, usage: usage(12, 8) },
    ]),
  }),
});

const stream = createUIMessageStream({
  execute: ({ writer }) => {
    writer.write({ type: 'data-status', data: { text: 'Searching the forecasts…' }, transient: true });
    writer.write({ type: 'data-weather', id: 'w1', data: { city: 'Oslo', state: 'loading' } });
    writer.write({ type: 'data-weather', id: 'w1', data: { city: 'Oslo', state: 'done', celsius: -3 } });
    writer.write({ type: 'data-note', data: 'unnamed parts are each their own' });
    const result = streamText({ model, prompt: 'How cold is Oslo?' });
    writer.merge(result.toUIMessageStream({ sendSources: true }));
  },
});
const body = await createUIMessageStreamResponse({ stream }).text();

// The message `useChat` holds: its chat keeps the parts written before
// `start` (as the app wrote them, ahead of the merged streamText), where
// `readUIMessageStream` would start a new message at `start`'s id; so the
// id is left out of `start` here.
let message = null;
const data = [];
for await (const snapshot of readUIMessageStream({
  stream: uiChunks(new Response(body).body).pipeThrough(
    new TransformStream({
      transform(chunk, controller) {
        if (chunk.type.startsWith('data-')) data.push(chunk);
        if (chunk.type === 'start') {
          const { messageId, ...kept } = chunk;
          controller.enqueue(kept);
        } else {
          controller.enqueue(chunk);
        }
      },
    }),
  ),
})) {
  message = snapshot;
}
process.stdout.write(`${JSON.stringify({ body, message, data })}\n`);
