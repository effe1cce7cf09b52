// Runs a two-step agent with the `ai` package's own streamText (a mock
// model that first calls a tool, then answers with the tool's output), and
// prints, as one JSON line, the UI message stream the SDK writes for it
// (`toUIMessageStreamResponse()`'s body, what an app pipes into the broker)
// and the message the SDK itself assembles from that stream
// (`readUIMessageStream`): {"body": "...", "message": {...}}. The Rust
// integration tests (tests/api/agent_steps.rs) upload the body and compare
// what a viewer of the broker assembles with this message.
//
//   node agent_stream.mjs

import { jsonSchema, readUIMessageStream, stepCountIs, streamText, tool } from 'ai';
import { MockLanguageModelV3, convertArrayToReadableStream } from 'ai/test';

import { usage } from './chat_kit.mjs';
import { uiChunks } from './ui_chunks.mjs';


// Step 1 reasons, says it will look, and calls the tool; step 2 answers.
const steps = [
  [
    { type: 'stream-start', warnings: [] },
    { type: 'reasoning-start', id: 'r1' },
    { type: 'reasoning-delta', id: 'r1', delta: 'The user wants the weather.' },
    { type: 'reasoning-end', id: 'r1' },
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
  doStream: async () => ({ stream: convertArrayToReadableStream(steps[call++]) }),
});

const result = streamText({
  model,
  prompt: 'What is the weather in Oslo?',
  tools: {
    weather: tool({
      description: 'The weather in a city',
      inputSchema: jsonSchema({ type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }),
      execute: async ({ city }) => ({ city, celsius: -3 }),
    }),
  },
  stopWhen: stepCountIs(5),
});

const body = await result.toUIMessageStreamResponse({ sendReasoning: true }).text();
let message = null;
for await (const snapshot of readUIMessageStream({ stream: uiChunks(new Response(body).body) })) {
  message = snapshot;
}
process.stdout.write(`${JSON.stringify({ body, message })}\n`);
