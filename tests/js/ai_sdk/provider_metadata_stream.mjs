// An answer whose model provider says things of its parts that the chat's
// next model call needs back (`providerMetadata`), written by the `ai`
// package's own streamText over a mock model: a thought whose signature
// comes in a delta of its own (Anthropic's extended thinking), a redacted
// thought that holds no text, only its data, a paragraph whose start and
// end name its item (OpenAI's Responses API), a second paragraph with
// nothing said of it, and a tool call with its thought signature
// (Gemini). Prints, as one JSON line, the UI message stream the SDK writes
// (what an app pipes into the broker) and the message the SDK assembles
// from it: {"body": "...", "message": {...}}. Read by
// tests/api/ui_message_stream/text_parts.rs.
//
//   node provider_metadata_stream.mjs

import { readUIMessageStream, streamText, tool } from 'ai';
import { MockLanguageModelV3, convertArrayToReadableStream } from 'ai/test';
import { z } from 'zod';

import { usage } from './chat_kit.mjs';
import { uiChunks } from './ui_chunks.mjs';

const model = new MockLanguageModelV3({
  doStream: async () => ({
    stream: convertArrayToReadableStream([
      { type: 'stream-start', warnings: [] },
      { type: 'reasoning-start', id: 'r1' },
      { type: 'reasoning-delta', id: 'r1', delta: 'The user wants Oslo.' },
      { type: 'reasoning-delta', id: 'r1', delta: '', providerMetadata: { anthropic: { signature: 'SIG-1' } } },
      { type: 'reasoning-end', id: 'r1' },
      { type: 'reasoning-start', id: 'r2', providerMetadata: { anthropic: { redactedData: 'REDACTED-2' } } },
      { type: 'reasoning-end', id: 'r2' },
      { type: 'text-start', id: 't1', providerMetadata: { openai: { itemId: 'msg_1' } } },
      { type: 'text-delta', id: 't1', delta: 'Oslo is ' },
      { type: 'text-delta', id: 't1', delta: 'cold.' },
      { type: 'text-end', id: 't1', providerMetadata: { openai: { itemId: 'msg_1', phase: 'final' } } },
      { type: 'text-start', id: 't2' },
      { type: 'text-delta', id: 't2', delta: 'Let me check the forecast.' },
      { type: 'text-end', id: 't2' },
      {
        type: 'tool-call',
        toolCallId: 'call-1',
        toolName: 'forecast',
        input: '{"city":"Oslo"}',
        providerMetadata: { google: { thoughtSignature: 'TS-1' } },
      },
      { type: 'finish', finishReason: { unified: 'tool-calls', raw: 'tool_use' }, usage: usage(12, 8) },
    ]),
  }),
});

const result = streamText({
  model,
  prompt: 'How cold is Oslo?',
  // The page runs it: the answer stops at the call.
  tools: { forecast: tool({ inputSchema: z.object({ city: z.string() }) }) },
});
const body = await result.toUIMessageStreamResponse().text();

let message = null;
for await (const snapshot of readUIMessageStream({ stream: uiChunks(new Response(body).body) })) {
  message = snapshot;
}
process.stdout.write(`${JSON.stringify({ body, message })}\n`);
