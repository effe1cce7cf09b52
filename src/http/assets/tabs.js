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
 * the same URL, filters and credentials (two users' tabs never share, and
 * a client that sends the cookie never leads one that does not: its stream
 * would end the other's at the next hand-over).
 */
export function shareName(url, { eventTypes, projectId, accessToken, shareKey, withCredentials } = {}) {
  const filters = [
    (eventTypes || []).join(","),
    projectId || "",
    accessToken ? hash(accessToken) : "",
    shareKey ? hash(String(shareKey)) : "",
    withCredentials ? "cookie" : "",
  ];
  return `sse-broker:${url}|${filters.join("|")}`;
}

/**
 * Whether a client may share its stream with the other tabs. One opened
 * with tickets alone may not unless a `shareKey` says whose it is: a ticket
 * names no one the name could hold, and tabs of two users (an account
 * switcher, a token kept per tab) would join one stream opened with the
 * first tab's ticket. A token is in the name. A cookie is the browser's,
 * so cookie clients share as the contract has it; an application where
 * another user can sign in while a tab stays open gives a `shareKey`. An
 * empty key is no key (`user?.id ?? ""` before the user is known).
 */
export function saysWhoseStream({ getTicket, accessToken, shareKey } = {}) {
  return !getTicket || Boolean(accessToken) || Boolean(shareKey);
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

/**
 * How long a new tab on a stream that ends waits for the leader's replay,
 * ms, before it opens a stream of its own. A leader answers within
 * milliseconds unless its page is busy (a long task on its main thread);
 * without a leader, the lock comes to this tab at once (and with it its
 * own stream). Going on without the replay would show the text from the
 * middle, and a replay arriving later could not be merged.
 */
const LEADER_REPLAY_WAIT = 5000;

/**
 * How long a follower that heard nothing for `heartbeatTimeout` waits for
 * the leader's answer to its ping, ms. A live leader answers at once, even
 * from a background tab (messages are not throttled as timers are); only a
 * frozen or hung one misses it.
 */
const LEADER_PROBE_WAIT = 5000;

/**
 * How many frames a leader of a stream that ends keeps for a later tab
 * before it rolls the text up (see `SharedStream._keep`).
 */
const SEEN_LIMIT = 1000;

/**
 * Two frames of text (or of reasoning) in a row as one, covering both (the
 * first one's `after`, the second one's id); null for any other pair.
 */
function rollUp(first, second) {
  const rolls = (m) => (m.type === "text" || m.type === "reasoning") && m.ownId !== false && m.lastEventId;
  if (first.type !== second.type || !rolls(first) || !rolls(second)) return null;
  let a;
  let b;
  try {
    a = JSON.parse(first.data);
    b = JSON.parse(second.data);
  } catch {
    return null;
  }
  if (!a || !b || typeof a.delta !== "string" || typeof b.delta !== "string") return null;
  const data = JSON.stringify({ ...b, delta: a.delta + b.delta });
  return { ...second, data, after: first.after };
}

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
 * `onDisconnect`'s, `failure` the error it gave up with as plain data,
 * its message and its cause's, or null), `restart()` (a tab joins or asks: start again if given up),
 * `leaderSilent()` (the leader did not answer: leave it),
 * `readHistory(after, onEvent, wanted)` (stored events, or null where
 * there is none to read; see `readStoredEvents`) and `catchUpFailed()`
 * (that read failed: leave, for a stream of its own).
 */
/**
 * A kept `subscription_updated` frame as it holds for the current
 * connection: the filter a POST /sse/subscribe set lives on across the
 * leader's reconnects, but its `connection_id` named the connection of the
 * time. A late joiner must learn the live one.
 */
function onConnection(subscription, greeting) {
  if (!greeting) return subscription;
  try {
    const { connection_id: current } = JSON.parse(greeting.data);
    const data = JSON.parse(subscription.data);
    if (!current || data.connection_id === current) return subscription;
    return { ...subscription, data: JSON.stringify({ ...data, connection_id: current }) };
  } catch {
    return subscription;
  }
}

export class SharedStream {
  constructor(name, host) {
    this.host = host;
    const lastEventId = host.lastEventId();
    // On a stream that ends, every event this tab has dispatched, so that
    // as the leader it can give a tab joining later the stream so far:
    // that tab's own first connect would have replayed it.
    this.seen = host.ends ? [] : null;
    this.seenLimit = SEEN_LIMIT;
    // A client that saw events before (closed, now connecting again) and
    // ends up following another tab would miss what came in between: it
    // reads that from the stored history while it holds the leader's
    // events back. As the leader it resumes its own stream instead.
    // A tab on a stream that ends waits for the leader's account of it so
    // far (its `replay`), holding the leader's live events meanwhile: a
    // new tab, and one that saw part of it before, which takes it up where
    // it left off (or, where a rolled-up text cannot be cut there, starts
    // over after a `replay_reset`).
    this.catchUp =
      host.ends || lastEventId !== null
        ? { buffer: [], fromLeader: host.ends, rejoining: host.ends && lastEventId !== null }
        : null;
    this.left = false;
    /** A leader answered this tab (a follower's catch-up that failed waits for it: see `_catchUpFailed`). */
    this.leaderHeard = false;
    /** The last `connected` frame dispatched: a tab joining later gets it from the leader. */
    this.greeting = null;
    /**
     * The last `subscription_updated` dispatched: a POST /sse/subscribe
     * changed the stream of every tab, and a tab joining later must reopen
     * it with that filter should it lead.
     */
    this.subscription = null;
    /** The id of the last stream event (not the broker's own) this tab dispatched: see `dispatched`. */
    this.position = lastEventId;
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
      // A leader that does not answer (a page busy that long, an older
      // client.js): a stream of this tab's own, so nothing is missed.
      setTimeout(() => {
        if (this.catchUp !== catchUp || this.left || this.leader) return;
        catchUp.failed = true;
        this.host.catchUpFailed();
      }, LEADER_REPLAY_WAIT);
    } else if (catchUp) this._readHistory(catchUp);
  }

  get leader() {
    return this.membership.leader;
  }

  /**
   * What this client dispatched: the leader passes it on; kept for a later
   * tab. `ownId`: the frame had its own `id:` line. One without (a
   * `persist: false` event, a task's `progress` snapshot) still shows the id
   * before it, as EventSource keeps it: a follower must not take it for one
   * it has already seen. `after`: this tab's position before the frame, so
   * a rejoining tab can tell whether the frame (a rolled-up text) also
   * covers events it already has.
   */
  dispatched(type, event, ownId = true) {
    const message = { kind: "event", type, data: event.data, lastEventId: event.lastEventId, ownId, after: this.position };
    if (this.membership.leader) this.membership.publish(message);
    if (type === "connected") this.greeting = message;
    else if (type === "subscription_updated") this.subscription = message;
    if (type === "replay_reset") this.position = null;
    else if (ownId && event.lastEventId && !this.host.brokerEvents.includes(type)) this.position = event.lastEventId;
    // A late joiner needs the stream's frames, not every (dead) connection's
    // greeting nor the heartbeats: those would only grow the list.
    if (this.seen && type !== "connected" && type !== "heartbeat") this._keep(message);
  }

  /**
   * Keeps a frame for a later tab, bounded: past `SEEN_LIMIT` frames each
   * run of text (or reasoning) deltas is rolled up into one, as the broker
   * rolls up a task's text for a new viewer, and only the latest id-less
   * `progress` snapshot stays (each replaces the one before).
   */
  _keep(message) {
    const seen = this.seen;
    seen.push(message);
    if (seen.length <= this.seenLimit) return;
    let latestSnapshot = null;
    for (const m of seen) if (m.type === "progress" && m.ownId === false) latestSnapshot = m;
    const kept = [];
    for (const m of seen) {
      if (m.type === "progress" && m.ownId === false && m !== latestSnapshot) continue;
      const previous = kept[kept.length - 1];
      const rolled = previous && rollUp(previous, m);
      if (rolled) kept[kept.length - 1] = rolled;
      else kept.push(m);
    }
    this.seen = kept;
    // What does not roll up (tool calls, stored progress) stays: rolling
    // up again only once as many more came, not at every frame.
    this.seenLimit = Math.max(SEEN_LIMIT, kept.length * 2);
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
    if (!["hello", "ping", "restart"].includes(message.kind)) {
      this._armWatchdog();
      this.leaderHeard = true;
      if (this.catchUp && this.catchUp.failed) this._catchUpFailed(this.catchUp);
    }
    if (!this.left) this._receive(message);
  }

  /**
   * Dispatches the stored events after this client's last id, then the
   * leader's events held meanwhile (each id once). A read that fails (no
   * credentials for /sse/history: a client with `getTicket` only) would
   * leave a gap: see `_catchUpFailed`.
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
    reading.then(
      () => {
        if (wanted()) this._endCatchUp();
      },
      () => {
        if (wanted()) this._catchUpFailed(catchUp);
      },
    );
  }

  /**
   * The history this follower missed could not be read: it opens its own
   * stream after its last id instead, which the broker replays from there,
   * so nothing is lost. Only once a leader has answered: a tab that gets
   * the lock meanwhile resumes its stream as the leader, and shares it.
   */
  _catchUpFailed(catchUp) {
    catchUp.failed = true;
    if (this.left || this.leader || this.catchUp !== catchUp || !this.leaderHeard) return;
    this.host.catchUpFailed();
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
      // The current connection's greeting only, first: an older one names a dead connection.
      const greeting = this.greeting && host.state() === "connected" ? this.greeting : null;
      if (this.seen) {
        const events = greeting ? [greeting, ...this.seen] : this.seen;
        membership.publish({ kind: "replay", to: message.from, events });
      } else if (greeting || this.subscription) {
        // With where the stream is now: a newcomer that has seen nothing
        // resumes from there if it has to open a stream itself.
        const lastEventId = host.lastEventId();
        membership.publish({
          kind: "greeting",
          to: message.from,
          event: greeting,
          subscription: this.subscription && onConnection(this.subscription, greeting),
          lastEventId,
        });
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
      if (message.to !== membership.id || membership.leader) return;
      // The frame's own id is where the stream started, behind this tab.
      const lastEventId = host.lastEventId() === null ? message.lastEventId || "" : "";
      if (message.event) host.dispatch("connected", { type: "connected", data: message.event.data, lastEventId });
      // The filter a POST /sse/subscribe gave the stream before this tab
      // came: should this tab lead, it reopens the stream with it.
      const { subscription } = message;
      if (subscription) {
        host.dispatch("subscription_updated", { type: "subscription_updated", data: subscription.data, lastEventId: "" });
      }
      return;
    }
    if (message.kind === "replay") {
      const catchUp = this.catchUp;
      if (message.to !== membership.id || !catchUp || !catchUp.fromLeader) return;
      const events = message.events || [];
      const from = catchUp.rejoining ? this._resumeAt(events) : 0;
      // The new connection's greeting first, as the broker sends it: a
      // rejoining tab has the frames before where it left off, not it.
      events.filter((event) => event.type === "connected").forEach((event) => this._receive(event, true));
      if (from === null) {
        // A rolled-up text covers both what this tab has and what it
        // missed, and cannot be cut where it left off. As the broker's own
        // reset: `id: 0`, then everything again.
        const data = JSON.stringify({ last_event_id: Number(host.lastEventId()), latest_id: null, rejoined: true });
        host.dispatch("replay_reset", { type: "replay_reset", data, lastEventId: "0" });
      }
      events.forEach((event, index) => {
        if (index >= (from || 0) && event.type !== "connected") this._receive(event, true);
      });
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
    const ownId = message.ownId !== false;
    const seen = host.lastEventId();
    // A new leader may replay what the old one already posted. A frame
    // without its own id (a live-only event, a `progress` snapshot) only
    // shows the id before it: it is never one this tab has seen.
    const stored = ownId && !host.brokerEvents.includes(type);
    if (stored && lastEventId && seen !== null && Number(lastEventId) <= Number(seen)) return;
    host.dispatch(type, { type, data, lastEventId, ownId });
  }

  /**
   * Where a rejoining tab takes up a leader's replay: the index after the
   * last frame it already has, or null when the first frame it lacks also
   * covers some it has (a rolled-up text: its `after` is before this tab's
   * last id), or comes from a leader that does not say.
   */
  _resumeAt(events) {
    const last = Number(this.host.lastEventId());
    let from = 0;
    for (let index = 0; index < events.length; index += 1) {
      const event = events[index];
      if (event.ownId === false || !event.lastEventId || this.host.brokerEvents.includes(event.type)) continue;
      if (Number(event.lastEventId) <= last) {
        from = index + 1;
        continue;
      }
      const after = event.after == null ? null : Number(event.after);
      return after !== null && after >= last ? from : null;
    }
    return from;
  }
}
