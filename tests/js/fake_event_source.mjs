// The EventSource stand-in of the client's unit tests (not a test file:
// `node --test` runs only `*.test.mjs` here).

/**
 * A stand-in for EventSource that records what the client opened. It is an
 * EventTarget and dispatches as a browser does: a server event is a
 * MessageEvent named after its `event:` line, so a server `event: error`
 * reaches `onerror` as well as the "error" listeners; a network error is a
 * plain Event named "error"; `onerror`/`onmessage`/`onopen` are listeners
 * registered where first set, as HTML event handler attributes are.
 */
export class FakeEventSource extends EventTarget {
  static opened = [];

  #handlers = new Map();

  constructor(url, init) {
    super();
    this.url = url;
    this.init = init;
    this.closed = false;
    /** As EventSource's: 0 connecting, 1 open, 2 closed (given up by itself). */
    this.readyState = 0;
    FakeEventSource.opened.push(this);
  }

  get onerror() {
    return this.#handler("error");
  }

  set onerror(handler) {
    this.#setHandler("error", handler);
  }

  get onmessage() {
    return this.#handler("message");
  }

  set onmessage(handler) {
    this.#setHandler("message", handler);
  }

  get onopen() {
    return this.#handler("open");
  }

  set onopen(handler) {
    this.#setHandler("open", handler);
  }

  #handler(type) {
    return this.#handlers.has(type) ? this.#handlers.get(type).handler : null;
  }

  #setHandler(type, handler) {
    const slot = this.#handlers.get(type);
    if (handler === null && slot) {
      this.removeEventListener(type, slot.listener);
      this.#handlers.delete(type);
    } else if (slot) {
      slot.handler = handler;
    } else if (handler !== null) {
      const entry = { handler, listener: (event) => entry.handler.call(this, event) };
      this.#handlers.set(type, entry);
      this.addEventListener(type, entry.listener);
    }
  }

  close() {
    this.closed = true;
  }

  /** Delivers an event as the broker would. */
  emit(type, data, lastEventId = "") {
    if (this.closed) return;
    this.dispatchEvent(new MessageEvent(type, { data: JSON.stringify(data), lastEventId }));
  }

  /** The connection fails, as EventSource reports it: a plain "error" Event. */
  fail() {
    if (this.closed) return;
    this.dispatchEvent(new Event("error"));
  }

  /** The connection opens, as EventSource reports it: a plain "open" Event. */
  open() {
    this.readyState = 1;
    this.dispatchEvent(new Event("open"));
  }

  /**
   * The broker answered with an HTTP error instead of a stream: EventSource
   * gives up by itself (CLOSED) and raises a plain "error" Event, with no
   * way to read the status.
   */
  refuse() {
    if (this.closed) return;
    this.readyState = 2;
    this.dispatchEvent(new Event("error"));
  }

  static latest() {
    return FakeEventSource.opened[FakeEventSource.opened.length - 1];
  }
}
