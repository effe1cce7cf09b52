// What the scripts beside it share to drive the `ai` package's own chat
// code: a chat state as useChat keeps it, and a mock model's token usage.

/**
 * A chat state as plain arrays: what useChat keeps in React state.
 * `onMessage` sees each message as it is added or replaced.
 */
export class PlainState {
  status = 'ready';
  error = undefined;
  messages = [];
  constructor(onMessage = () => {}) {
    this.onMessage = onMessage;
  }
  pushMessage = (message) => {
    this.messages = [...this.messages, message];
    this.onMessage(message);
  };
  popMessage = () => {
    this.messages = this.messages.slice(0, -1);
  };
  replaceMessage = (index, message) => {
    this.messages = this.messages.with(index, message);
    this.onMessage(message);
  };
  snapshot = (thing) => structuredClone(thing);
}

/** A mock model call's usage, as `LanguageModelV3` reports it. */
export const usage = (input, output) => ({
  inputTokens: { total: input, noCache: input, cacheRead: undefined, cacheWrite: undefined },
  outputTokens: { total: output, text: output, reasoning: undefined },
});
