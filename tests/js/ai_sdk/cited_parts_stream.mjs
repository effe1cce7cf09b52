// What `ai` 7 added to an answer's parts, written by the package's own
// streamText over a mock model: a person's message steers the run before
// its first step (`steering-message`: a text and an image), the model
// thinks and makes an image in its
// reasoning (`reasoning-file`), says content of a kind only its provider
// knows (`custom`, an OpenAI compaction item), and ends its text with the
// passages it cites (`citations` on `text-end`: a web page and a document,
// where the text cites each). Prints, as one JSON line, the UI message
// stream the SDK writes (what an app pipes into the broker) and the
// message the SDK assembles from it: {"body": "...", "message": {...}}.
// Read by tests/api/ui_message_stream/cited_parts.rs.
//
//   node cited_parts_stream.mjs

import { experimental_createSteering as createSteering, readUIMessageStream, streamText } from 'ai';
import { MockLanguageModelV4, convertArrayToReadableStream } from 'ai/test';

import { usage } from './chat_kit.mjs';
import { uiChunks } from './ui_chunks.mjs';

const model = new MockLanguageModelV4({
  doStream: async () => ({
    stream: convertArrayToReadableStream([
      { type: 'stream-start', warnings: [] },
      { type: 'reasoning-start', id: 'r1' },
      { type: 'reasoning-delta', id: 'r1', delta: 'A chart of the week would help.' },
      { type: 'reasoning-end', id: 'r1' },
      { type: 'reasoning-file', mediaType: 'image/png', data: { type: 'data', data: 'iVBORw0KGgo=' } },
      {
        type: 'custom',
        kind: 'openai.compaction',
        providerMetadata: { openai: { itemId: 'cmp_1', encryptedContent: 'gAAAA' } },
      },
      { type: 'text-start', id: 't1' },
      { type: 'text-delta', id: 't1', delta: 'Oslo is cold: ' },
      { type: 'text-delta', id: 't1', delta: '-3 °C, and colder by Friday.' },
      {
        type: 'text-end',
        id: 't1',
        citations: [
          {
            source: { type: 'source', sourceType: 'url', id: 'src-1', url: 'https://met.no/oslo', title: 'MET Norway' },
            startIndex: 0,
            endIndex: 20,
            citedText: 'Oslo: -3 °C',
          },
          {
            source: {
              type: 'source',
              sourceType: 'document',
              id: 'src-2',
              mediaType: 'application/pdf',
              title: 'Winter report',
              filename: 'winter.pdf',
              providerMetadata: { anthropic: { page: 4 } },
            },
            citedText: 'colder towards the weekend',
          },
        ],
      },
      { type: 'finish', finishReason: { unified: 'stop', raw: 'stop' }, usage: usage(12, 8) },
    ]),
  }),
});

const steering = createSteering();
steering.steer(
  {
    role: 'user',
    content: [
      { type: 'text', text: 'Answer in Celsius.' },
      { type: 'file', data: 'iVBORw0KGgo=', mediaType: 'image/png', filename: 'map.png' },
    ],
  },
  { id: 'steer-1' },
);
const result = streamText({ model, prompt: 'How cold is Oslo this week?', experimental_steering: steering });
const body = await result.toUIMessageStreamResponse().text();

let message = null;
for await (const snapshot of readUIMessageStream({ stream: uiChunks(new Response(body).body) })) {
  message = snapshot;
}
process.stdout.write(`${JSON.stringify({ body, message })}\n`);
