// One stream per URL for all the tabs of a browser (imported by
// /client.js). Each tab's client asks for a Web Lock named after its
// stream; the tab that holds it (the leader) opens the real EventSource and
// posts every event to a BroadcastChannel of the same name; the others
// (followers) take their events from the channel. When the leader goes
// (tab closed, client closed) the browser hands the lock to a waiting tab,
// which opens the stream after the last id it saw: the broker replays the
// rest, and every tab drops an event id it has already seen, so no tab
// misses an event or sees one twice. A follower that hears nothing from the
// leader for `heartbeatTimeout` asks it; a leader that does not answer (a
// frozen tab still holds the lock) is left behind: the follower opens its
// own stream.

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
 * tabs post (a newcomer's `{kind: "hello"}`, the leader's events and
 * state). `publish(message)` posts to the other tabs as the leader,
 * `ask(message)` as any tab; `leave(grace)` releases everything (a
 * leader's lock passes to a waiting tab, `grace` ms later).
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
    this.ask({ kind: "hello" });
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

  /** A question to the leader, signed so that its answer can be meant for this tab alone. */
  ask(message) {
    this.channel.postMessage({ ...message, from: this.id });
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

/** How long a new tab on a stream that ends waits for the leader's replay, ms. */
const LEADER_REPLAY_WAIT = 1000;

/**
 * How long a follower that heard nothing for `heartbeatTimeout` waits for
 * the leader's answer to its ping, ms. A live leader answers at once, even
 * from a background tab (messages are not throttled as timers are); only a
 * frozen or hung one misses it.
 */
const LEADER_PROBE_WAIT = 5000;

/**
 * One client's share of a stream that tabs share: its `TabMembership` and
 * what the tabs tell each other. The leader posts every event it
 * dispatches (heartbeats too), its state and each loss of its stream, and
 * answers a newcomer's hello (with the current `connected` frame) and a
 * follower's ping; a follower dispatches the leader's events, each id
 * once, mirrors its state, reports its losses as its own, and watches that
 * the leader is there.
 *
 * `host` is the client: `ends` (its stream ends, as a task's does),
 * `lastEventId()`, `state()`, `heartbeatTimeout()`, `brokerEvents` (types
 * without a resume id), `dispatch(type, event)`, `open()` (this tab leads
 * now: open the EventSource), `mirrorState(state)` (the leader's, on a
 * follower), `lost(info, failure)` (the leader lost the stream: `info` as
 * `onDisconnect`'s, `failure` the message of the error it gave up with, or
 * null), `restart()` (a tab joins or asks: start again if given up),
 * `leaderSilent()` (the leader did not answer: leave it), and
 * `readHistory(after, onEvent, wanted)` (stored events, or null where
 * there is none to read; see `readStoredEvents`).
 */
export class SharedStream {
  constructor(name, host) {
    this.host = host;
    const lastEventId = host.lastEventId();
    // On a stream that ends, every event this tab has dispatched, so that
    // as the leader it can give a tab joining later the stream so far:
    // that tab's own first connect would have replayed it.
    this.seen = host.ends ? [] : null;
    // A client that saw events before (closed, now connecting again) and
    // ends up following another tab would miss what came in between: it
    // reads that from the stored history while it holds the leader's
    // events back. As the leader it resumes its own stream instead.
    // A tab on a stream that ends waits for the leader's account of it so
    // far (its `replay`), holding the leader's live events meanwhile: a
    // new tab, and one that saw part of it before, whose account then
    // starts over (`replay_reset`: the rolled-up text cannot be cut where
    // this tab left off).
    this.catchUp =
      host.ends || lastEventId !== null
        ? { buffer: [], fromLeader: host.ends, rejoining: host.ends && lastEventId !== null }
        : null;
    this.left = false;
    /** The last `connected` frame dispatched: a tab joining later gets it from the leader. */
    this.greeting = null;
    this.watchdog = null;
    this.membership = new TabMembership(name, {
      onLeader: () => {
        this._stopWatchdog();
        this._endCatchUp();
        host.open();
      },
      onMessage: (message) => this._fromChannel(message),
    });
    this._armWatchdog();
    const catchUp = this.catchUp;
    if (catchUp && catchUp.fromLeader) {
      // No leader to answer (or an older client.js): go on without it.
      setTimeout(() => {
        if (this.catchUp === catchUp) this._endCatchUp();
      }, LEADER_REPLAY_WAIT);
    } else if (catchUp) this._readHistory(catchUp);
  }

  get leader() {
    return this.membership.leader;
  }

  /** What this client dispatched: the leader passes it on; kept for a later tab. */
  dispatched(type, event) {
    const message = { kind: "event", type, data: event.data, lastEventId: event.lastEventId };
    if (this.membership.leader) this.membership.publish(message);
    if (this.seen) this.seen.push(message);
    if (type === "connected") this.greeting = message;
  }

  /** The leader's state, for its followers. */
  publishState(state) {
    this.membership.publish({ kind: "state", state });
  }

  /** The leader lost its stream (and gave up, with `failure`): its followers lost it too. */
  publishLoss(info, failure = null) {
    this.membership.publish({ kind: "lost", info, failure });
  }

  /** A follower's connect() on a stream the leader gave up on: the leader starts again. */
  restart() {
    this.membership.ask({ kind: "restart" });
    this._armWatchdog();
  }

  /** Leaves for good; a leader's stream passes to a waiting tab `grace` ms later. */
  leave(grace) {
    this.left = true;
    this.catchUp = null;
    this.seen = null;
    this._stopWatchdog();
    this.membership.leave(grace);
  }

  /**
   * A follower's watch on the leader: silence for `heartbeatTimeout` (the
   * leader passes on every heartbeat, so a live stream is never that
   * silent) asks the leader with a ping; no answer means the leader's tab
   * is frozen or hung, and still holds the lock.
   */
  _armWatchdog() {
    this._stopWatchdog();
    const timeout = this.host.heartbeatTimeout();
    if (this.left || this.leader || !(timeout > 0 && Number.isFinite(timeout))) return;
    this.watchdog = setTimeout(() => {
      this.membership.ask({ kind: "ping" });
      this.watchdog = setTimeout(() => {
        this.watchdog = null;
        if (!this.left && !this.leader) this.host.leaderSilent();
      }, LEADER_PROBE_WAIT);
    }, timeout);
  }

  _stopWatchdog() {
    clearTimeout(this.watchdog);
    this.watchdog = null;
  }

  /** A message from the channel: anything the leader posts shows it is there. */
  _fromChannel(message) {
    if (this.left || !message) return;
    if (!["hello", "ping", "restart"].includes(message.kind)) this._armWatchdog();
    this._receive(message);
  }

  /**
   * Dispatches the stored events after this client's last id, then the
   * leader's events held meanwhile (each id once). On failure the gap
   * stays, as it would have.
   */
  _readHistory(catchUp) {
    const wanted = () => this.catchUp === catchUp;
    const reading = this.host.readHistory(
      this.host.lastEventId(),
      (message) => this._receive(message, true),
      wanted,
    );
    if (!reading) {
      this._endCatchUp();
      return;
    }
    reading
      .catch(() => {
        // The gap stays: the leader's events go on from here.
      })
      .then(() => {
        if (wanted()) this._endCatchUp();
      });
  }

  /** Ends a catch-up: the leader's events held meanwhile go out, each id once. */
  _endCatchUp() {
    const catchUp = this.catchUp;
    this.catchUp = null;
    if (!catchUp) return;
    for (const message of catchUp.buffer) this._receive(message);
  }

  /**
   * What the other tabs posted: a newcomer's hello (the leader answers with
   * its state, and on a stream that ends with what it has seen, on another
   * with the `connected` frame of its stream), a follower's ping (the
   * leader answers with its state) or request to start again, a replay or
   * greeting meant for this tab, and the leader's events, state and losses.
   */
  _receive(message, fromHistory = false) {
    if (!message || this.left) return;
    const { host, membership } = this;
    if (this.catchUp && !fromHistory && message.kind === "event") {
      this.catchUp.buffer.push(message);
      return;
    }
    if (message.kind === "hello") {
      if (!membership.leader) return;
      // A tab's connect() is a wish for the stream: one given up on starts again.
      host.restart();
      this.publishState(host.state());
      if (this.seen) membership.publish({ kind: "replay", to: message.from, events: this.seen });
      else if (this.greeting && host.state() === "connected") {
        // With where the stream is now: a newcomer that has seen nothing
        // resumes from there if it has to open a stream itself.
        const lastEventId = host.lastEventId();
        membership.publish({ kind: "greeting", to: message.from, event: this.greeting, lastEventId });
      }
      return;
    }
    if (message.kind === "ping" || message.kind === "restart") {
      if (!membership.leader) return;
      if (message.kind === "restart") host.restart();
      // Also after a restart that was not needed: the asker set its own state.
      this.publishState(host.state());
      return;
    }
    if (message.kind === "greeting") {
      if (message.to !== membership.id || membership.leader || !message.event) return;
      // The frame's own id is where the stream started, behind this tab.
      const lastEventId = host.lastEventId() === null ? message.lastEventId || "" : "";
      host.dispatch("connected", { type: "connected", data: message.event.data, lastEventId });
      return;
    }
    if (message.kind === "replay") {
      const catchUp = this.catchUp;
      if (message.to !== membership.id || !catchUp || !catchUp.fromLeader) return;
      if (catchUp.rejoining) {
        // As the broker's own reset: `id: 0`, then everything again.
        const data = JSON.stringify({ last_event_id: Number(host.lastEventId()), latest_id: null, rejoined: true });
        host.dispatch("replay_reset", { type: "replay_reset", data, lastEventId: "0" });
      }
      for (const event of message.events || []) this._receive(event, true);
      if (this.catchUp === catchUp) this._endCatchUp();
      return;
    }
    if (membership.leader) return;
    if (message.kind === "state") {
      host.mirrorState(message.state);
      return;
    }
    if (message.kind === "lost") {
      host.lost(message.info, message.failure);
      return;
    }
    const { type, data, lastEventId } = message;
    const seen = host.lastEventId();
    // A new leader may replay what the old one already posted.
    if (!host.brokerEvents.includes(type) && lastEventId && seen !== null && Number(lastEventId) <= Number(seen)) return;
    host.dispatch(type, { type, data, lastEventId });
  }
}
