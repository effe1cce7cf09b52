// One stream per URL for all the tabs of a browser (imported by
// /client.js). Each tab's client asks for a Web Lock named after its
// stream; the tab that holds it (the leader) opens the real EventSource and
// posts every event to a BroadcastChannel of the same name; the others
// (followers) take their events from the channel. When the leader goes
// (tab closed, client closed) the browser hands the lock to a waiting tab,
// which opens the stream after the last id it saw: the broker replays the
// rest, and every tab drops an event id it has already seen, so no tab
// misses an event or sees one twice.

/** Whether this browser can share (Web Locks and BroadcastChannel). */
export function canShareAcrossTabs() {
  return (
    typeof BroadcastChannel !== "undefined" &&
    typeof navigator !== "undefined" &&
    navigator.locks != null &&
    typeof navigator.locks.request === "function"
  );
}

/** A short, stable hash: a token goes into the name, not the token itself. */
function hash(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i += 1) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(36);
}

/**
 * The name of the lock and channel shared by the clients of one stream:
 * the same URL, filters and credentials (two users' tabs never share).
 */
export function shareName(url, { eventTypes, projectId, accessToken } = {}) {
  const filters = [(eventTypes || []).join(","), projectId || "", accessToken ? hash(accessToken) : ""];
  return `sse-broker:${url}|${filters.join("|")}`;
}

/**
 * One tab's membership: `onLeader()` runs when this tab holds the stream
 * (open the EventSource then), `onMessage(message)` for what the other
 * tabs post (a newcomer's `{kind: "hello"}`, the leader's events and state). `publish(message)` posts to the other tabs; `leave(grace)` releases
 * everything (a leader's lock passes to a waiting tab, `grace` ms later).
 */
export class TabMembership {
  constructor(name, { onLeader, onMessage }) {
    this.leader = false;
    /** Names this tab in a hello, so an answer meant for it alone can say so. */
    this.id = Math.random().toString(36).slice(2);
    this.channel = new BroadcastChannel(name);
    this.channel.onmessage = (event) => onMessage(event.data);
    // A leader, if there is one, answers with its state (and, on a task's
    // stream, what it has seen so far).
    this.channel.postMessage({ kind: "hello", from: this.id });
    this.abort = new AbortController();
    this.release = null;
    navigator.locks
      .request(name, { signal: this.abort.signal }, () => {
        if (this.abort.signal.aborted) return undefined;
        this.leader = true;
        // Held until leave(): the lock is released with this promise, or by
        // the browser when the tab goes away.
        const held = new Promise((resolve) => {
          this.release = resolve;
        });
        onLeader();
        return held;
      })
      .catch(() => {
        // AbortError: left before becoming the leader.
      });
  }

  publish(message) {
    if (this.leader) this.channel.postMessage(message);
  }

  /**
   * `grace`: how long a leader keeps the lock after leaving. A leader whose
   * stream ended (a task's end) posted that end just before: the waiting
   * tabs read it before one of them could take the lock and open the
   * stream again (the browser orders the lock's grant and the channel's
   * messages independently).
   */
  leave(grace = 0) {
    this.abort.abort();
    const release = this.release;
    this.release = null;
    this.leader = false;
    this.channel.close();
    if (release && grace > 0) setTimeout(release, grace);
    else if (release) release();
  }
}
