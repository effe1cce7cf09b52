// A UI message stream's body read as the `ai` package reads one: each
// event parsed against the package's own part schema (`uiMessageChunkSchema`),
// a part it would refuse thrown. Shared by the scripts beside it.

import { parseJsonEventStream, uiMessageChunkSchema } from 'ai';

/** The parts of the UI message stream `body` (a ReadableStream of bytes). */
export function uiChunks(body) {
  return parseJsonEventStream({ stream: body, schema: uiMessageChunkSchema }).pipeThrough(
    new TransformStream({
      transform(parsed, controller) {
        if (!parsed.success) throw parsed.error;
        controller.enqueue(parsed.value);
      },
    }),
  );
}
