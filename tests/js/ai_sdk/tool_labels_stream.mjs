// An answer whose tools the app labels (`tool({ title, metadata })`, which
// the `ai` package puts on the stream's tool parts as `title` and
// `toolMetadata`): one the app's server runs, one that fails, written by
// the package's own streamText over a mock model. Prints, as one JSON
// line, the UI message stream the SDK writes (what an app pipes into the
// broker) and the message the SDK assembles from it:
// {"body": "...", "message": {...}}. Read by
// tests/api/ui_message_stream/ai_sdk_tools.rs.
//
//   node tool_labels_stream.mjs

import { jsonSchema, readUIMessageStream, stepCountIs, streamText, tool } from 'ai';
import { MockLanguageModelV3, convertArrayToReadableStream } from 'ai/test';

import { usage } from './chat_kit.mjs';
import { uiChunks } from './ui_chunks.mjs';

const steps = [
  [
    { type: 'stream-start', warnings: [] },
    { type: 'tool-call', toolCallId: 'call-1', toolName: 'weather', input: '{"city":"Oslo"}' },
    { type: 'tool-call', toolCallId: 'call-2', toolName: 'forecast', input: '{"city":"Oslo"}' },
    { type: 'finish', finishReason: { unified: 'tool-calls', raw: 'tool_calls' }, usage: usage(20, 9) },
  ],
  [
    { type: 'stream-start', warnings: [] },
    { type: 'text-start', id: 't1' },
    { type: 'text-delta', id: 't1', delta: 'It is -3 °C in Oslo.' },
    { type: 'text-end', id: 't1' },
    { type: 'finish', finishReason: { unified: 'stop', raw: 'stop' }, usage: usage(35, 7) },
  ],
];
let call = 0;
const model = new MockLanguageModelV3({
  doStream: async () => ({ stream: convertArrayToReadableStream(steps[call++]) }),
});
const city = jsonSchema({ type: 'object', properties: { city: { type: 'string' } }, required: ['city'] });

const result = streamText({
  model,
  prompt: 'What is the weather in Oslo?',
  tools: {
    weather: tool({
      title: 'Current weather',
      metadata: { icon: 'sun', source: { name: 'MET' } },
      inputSchema: city,
      execute: async ({ city }) => ({ city, celsius: -3 }),
    }),
    forecast: tool({
      title: 'Ten-day forecast',
      metadata: { icon: 'calendar' },
      inputSchema: city,
      execute: async () => {
        throw new Error('the forecast service is down');
      },
    }),
  },
  stopWhen: stepCountIs(5),
});
const body = await result.toUIMessageStreamResponse().text();

let message = null;
for await (const snapshot of readUIMessageStream({ stream: uiChunks(new Response(body).body) })) {
  message = snapshot;
}
process.stdout.write(`${JSON.stringify({ body, message })}\n`);
