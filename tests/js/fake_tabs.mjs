// Stand-ins for what tab sharing needs from a browser, BroadcastChannel and
// Web Locks (not a test file: `node --test` runs only `*.test.mjs` here).
// The "tabs" of a test are clients in one process, each with its own
// channel and lock request, as each tab of a browser has. Delivery and
// grants come in later tasks (setImmediate), as a browser's do, so a test
// awaits `settle()` after each step; mocked `setTimeout`s do not delay it.

export class FakeBroadcastChannel {
  static channels = new Set();

  constructor(name) {
    this.name = name;
    this.onmessage = null;
    this.closed = false;
    /** A frozen tab runs nothing: it neither posts nor receives. */
    this.frozen = false;
    FakeBroadcastChannel.channels.add(this);
  }

  postMessage(data) {
    if (this.closed) throw new DOMException("BroadcastChannel is closed", "InvalidStateError");
    if (this.frozen) return;
    const copy = structuredClone(data);
    for (const other of FakeBroadcastChannel.channels) {
      if (other !== this && other.name === this.name) setImmediate(() => other.#deliver(copy));
    }
  }

  #deliver(data) {
    if (!this.closed && !this.frozen && this.onmessage) this.onmessage({ data });
  }

  close() {
    this.closed = true;
    FakeBroadcastChannel.channels.delete(this);
  }
}

/** `navigator.locks`: exclusive locks, granted in the order asked; an abort drops a request not yet granted. */
export class FakeLocks {
  #held = new Set();
  #waiting = new Map();

  request(name, options, callback) {
    const { signal } = options;
    return new Promise((resolve, reject) => {
      if (signal && signal.aborted) return reject(new DOMException("aborted", "AbortError"));
      const waiter = { callback, resolve, reject };
      if (signal) {
        signal.addEventListener("abort", () => {
          const queue = this.#waiting.get(name) || [];
          if (!queue.includes(waiter)) return;
          queue.splice(queue.indexOf(waiter), 1);
          reject(new DOMException("aborted", "AbortError"));
        });
      }
      if (!this.#waiting.has(name)) this.#waiting.set(name, []);
      this.#waiting.get(name).push(waiter);
      this.#grant(name);
    });
  }

  #grant(name) {
    const queue = this.#waiting.get(name) || [];
    if (this.#held.has(name) || queue.length === 0) return;
    const waiter = queue.shift();
    this.#held.add(name);
    setImmediate(() => {
      Promise.resolve()
        .then(() => waiter.callback({ name, mode: "exclusive" }))
        .then(waiter.resolve, waiter.reject)
        .finally(() => {
          this.#held.delete(name);
          this.#grant(name);
        });
    });
  }
}

/** Installs the stand-ins as the globals client.js and tabs.js look for; returns a function that removes them. */
export function installTabs() {
  const saved = Object.getOwnPropertyDescriptors(globalThis);
  const set = (name, value) => Object.defineProperty(globalThis, name, { configurable: true, writable: true, value });
  set("BroadcastChannel", FakeBroadcastChannel);
  set("navigator", { locks: new FakeLocks() });
  return () => {
    for (const name of ["BroadcastChannel", "navigator"]) {
      if (saved[name]) Object.defineProperty(globalThis, name, saved[name]);
      else delete globalThis[name];
    }
    FakeBroadcastChannel.channels.clear();
  };
}

/** Lets every message and lock grant under way arrive (each may post more). */
export async function settle() {
  for (let round = 0; round < 20; round += 1) await new Promise((resolve) => setImmediate(resolve));
}
