// sse-broker browser client: an EventSource wrapper that survives network
// drops. ES module, no dependencies.
//
//   import { SseClient, TaskStream } from "/client.js";
//   const client = new SseClient("/sse/events", {
//     eventTypes: ["progress_update", "commit"],
//     onConnect: ({ connection_id }) => console.log("connected", connection_id),
//   });
//   client.on("commit", (data, event) => console.log(event.lastEventId, data));
//   client.connect();
//
// Reconnection: the broker's `Last-Event-ID` resume replays every event missed
// while offline, so a reconnect never loses or repeats an event. The client
// reconnects with exponential backoff and jitter, gives up after
// `maxReconnectAttempts`, and treats a stream that stays silent for
// `heartbeatTimeout` (the broker sends `heartbeat` every 15 s) as dead even
// when the browser has not noticed.
//
// Errors: a task's end arrives as `event: error`, the name EventSource also
// uses for a network error. Only the latter is a lost connection. The
// broker's reaches `on("error")` handlers; a TaskStream then closes for good
// and calls `onError` with a TaskError.
//
// Tabs: the tabs of one browser share one stream per URL (./tabs.js); opt
// out with `shareAcrossTabs: false`. The requests beside the stream are in
// ./stream_requests.js, the path check (`diagnoseConnection`) in
// ./diagnose.js; this module re-exports what a page imports.

import { SharedStream, canShareAcrossTabs, saysWhoseStream, shareName } from "./tabs.js";
import {
  StreamRefusedError,
  askWhyRefused,
  fetchTicket,
  filteredStreamUrl,
  isPassingTicketFailure,
  pageBase,
  readStoredEvents,
  renewStreamToken,
  subscribedFilter,
} from "./stream_requests.js";

export { diagnoseConnection } from "./diagnose.js";
export { StreamRefusedError, fetchTicket };

/** Connection states, in `onStateChange` and `client.state`. */
export const State = Object.freeze({
  IDLE: "idle",
  CONNECTING: "connecting",
  CONNECTED: "connected",
  RECONNECTING: "reconnecting",
  OFFLINE: "offline",
  CLOSED: "closed",
});

/**
 * The delay before reconnect attempt `attempt` (0-based): exponential from
 * `reconnectDelay`, capped at `maxReconnectDelay`, with "equal jitter" (half
 * fixed, half random) so a crowd of clients does not reconnect in lockstep.
 */
export function backoffDelay(attempt, { reconnectDelay = 1000, maxReconnectDelay = 30000 } = {}, random = Math.random) {
  const exponential = Math.min(maxReconnectDelay, reconnectDelay * 2 ** Math.max(0, attempt));
  return Math.round(exponential / 2 + random() * (exponential / 2));
}

/** How long a leader tab whose stream ended keeps it from the others (see `TabMembership.leave`), ms. */
const ENDED_HANDOFF_GRACE = 500;

/** Tries of a token renewal the broker answered 503 (it could not reach the stream's instance). */
const RENEWAL_ATTEMPTS = 5;

/**
 * The error a leader tab gave up with, as its followers get it over the
 * channel (plain data): its message, and its cause's name, status, code and
 * message, so a follower's error says as much as the leader's.
 */
function describeFailure(error) {
  const cause = error.cause;
  return {
    message: error.message,
    cause: cause ? { name: cause.name, status: cause.status, code: cause.code, message: cause.message } : null,
  };
}

/** A follower's copy of the leader's give-up error (see `describeFailure`; a bare message from an older tab). */
function sharedFailure(failure) {
  if (typeof failure === "string") return new Error(failure);
  const { cause } = failure;
  let rebuilt;
  if (cause && cause.name === "StreamRefusedError") rebuilt = new StreamRefusedError(cause.status, cause.code, cause.message);
  else if (cause) rebuilt = Object.assign(new Error(cause.message), { name: cause.name });
  return new Error(failure.message, rebuilt ? { cause: rebuilt } : undefined);
}

/** The types the `on…` options take (onProgress, onText, …). */
const CALLBACK_EVENTS = [
  "progress",
  "progress_update",
  "text",
  "reasoning",
  "text_end",
  "reasoning_end",
  "tool_call",
  "tool_result",
  "tool_approval",
  "source",
  "file",
  "data_part",
  "custom_part",
  "steering_message",
  "step_end",
  "message_metadata",
];

const BROKER_EVENTS = [
  "connected",
  "heartbeat",
  "shutdown",
  "replay_truncated",
  "replay_reset",
  "subscription_updated",
  "token_expiring",
  "token_expired",
];

/**
 * True for an event the broker sent, false for one `EventSource` raised
 * itself. The broker's `event: error` (a task failed or was cancelled) is
 * dispatched under the same name as the network error, and so also reaches
 * `onerror`; likewise a publishable type named `open` or `message` meets
 * `EventSource`'s own. A server event is a `MessageEvent` and always has
 * string `data`; `EventSource`'s own `error` and `open` are plain `Event`s.
 */
/** A task's stream, also behind a proxy's path prefix. */
const TASK_STREAM_PATH = /\/tasks\/[^/]+\/events$/;

/** Whether event id `id` comes before `current` (both decimal strings). */
function isBehind(id, current) {
  return current !== null && current !== "" && Number(id) < Number(current);
}

export function isServerEvent(event) {
  return event != null && typeof event.data === "string";
}

/**
 * What `onError` receives when the broker reports a task's end as
 * `event: error` (failed, cancelled, orphaned): `message` is the broker's
 * `error` text, `data` the parsed payload.
 */
export class TaskError extends Error {
  constructor(data) {
    const cancelled = Boolean(data && data.cancelled);
    super(cancelled ? "cancelled" : String((data && data.error) || "task failed"));
    this.name = "TaskError";
    this.data = data;
    this.cancelled = cancelled;
    // `undefined`, never `null`, without data: as the typings declare.
    this.taskId = data ? data.task_id : undefined;
    this.status = data ? data.status : undefined;
  }
}

export class SseClient {
  /**
   * @param {string} url  stream URL, e.g. "/sse/events" or "/tasks/ID/events"
   * @param {object} options
   * @param {string[]} [options.eventTypes]  event types to receive (default all)
   * @param {string} [options.projectId]
   * @param {function} [options.getTicket]  () => ticket (or a promise of one), called before every
   *   (re)connect: the stream opens with `?ticket=` instead of a token in its URL (see
   *   `fetchTicket`); a failure counts as a lost connection and is retried with backoff
   * @param {function} [options.getToken]  () => token (or a promise of one): on `token_expiring`
   *   the client posts it to `/sse/connections/{id}/token` and the stream lives on without a
   *   reconnect; with `getTicket`, an expired stream reconnects instead of failing, and so does
   *   one opened with `accessToken`, which then opens with a token from `getToken` (as does a
   *   reconnect the broker refused with 401: the token expired while the network was down)
   * @param {function} [options.fetch]  injectable for tests (default `globalThis.fetch`)
   * @param {string} [options.accessToken]  sent as `access_token` (EventSource cannot set headers);
   *   prefer the HttpOnly `sse_token` cookie where you can
   * @param {number} [options.reconnectDelay=1000]  first backoff step, ms
   * @param {number} [options.maxReconnectDelay=30000]
   * @param {number} [options.maxReconnectAttempts=Infinity]  consecutive failures before giving up
   * @param {number} [options.heartbeatTimeout=45000]  silence after which the stream is presumed dead
   * @param {boolean} [options.withCredentials=false]  send cookies cross-origin
   * @param {string[]} [options.closeOn]  event types after which the client closes (e.g. a task's end)
   * @param {function} [options.onConnect]  ({connection_id, event_types, project_id})
   * @param {function} [options.onDisconnect]  ({reason, willReconnect, delay})
   * @param {function} [options.onError]  (error, data, event): a lost stream given up on, an expired
   *   token, or, on a stream that `closeOn` "error" (a `TaskStream`), the task's end as a `TaskError`
   *   (with the parsed `data` also as the second argument)
   * @param {function} [options.onProgress]  (data, event) for `progress` and `progress_update`
   * @param {function} [options.onText]  (delta, data, event) for `text`: a piece of the answer
   * @param {function} [options.onReasoning]  (delta, data, event) for `reasoning`: a piece of the
   *   model's thinking, apart from the answer
   * @param {function} [options.onTextEnd]  (data, event) for `text_end`: the answer's text so far is
   *   a part of its own (a paragraph its producer wrote apart); the next `text` begins another.
   *   `data.citations`, when there, are the sources the part's text cites (`source`, as a `source`
   *   event's data, and `start_index`, `end_index`, `cited_text` where its provider says them)
   * @param {function} [options.onReasoningEnd]  (data, event) for `reasoning_end`: the same for the
   *   reasoning
   * @param {function} [options.onToolCall]  (data, event) for `tool_call`: the model asked for a tool
   *   (`data.tool_call_id`, `tool_name`, `input`)
   * @param {function} [options.onToolResult]  (data, event) for `tool_result`: a tool's answer
   *   (`data.tool_call_id`, and `output`, `error` or `denied`)
   * @param {function} [options.onToolApproval]  (data, event) for `tool_approval`: a call waits for a
   *   person's approval (`data.tool_call_id`, `approval_id`)
   * @param {function} [options.onSource]  (data, event) for `source`: a source the answer cites
   *   (`data.source_id`, `url`, or `media_type` and `filename` of a document; `title`)
   * @param {function} [options.onFile]  (data, event) for `file`: a file the model made (`data.url`,
   *   often a `data:` URL, and `media_type`; `reasoning: true` when made in its reasoning)
   * @param {function} [options.onDataPart]  (data, event) for `data_part`: an app's own data part
   *   (`data.name`, `data`, `id` when a later one replaces it, `transient` when it is not kept)
   * @param {function} [options.onCustomPart]  (data, event) for `custom_part`: content of a kind only
   *   the model's provider knows (`data.kind`, and `provider_metadata`)
   * @param {function} [options.onSteeringMessage]  (data, event) for `steering_message`: a person's
   *   message delivered into the running agent (`data.id`, `parts`: `{type: "text", text}` or
   *   `{type: "file", media_type, url, filename?}`)
   * @param {function} [options.onStepEnd]  (data, event) for `step_end`: one step of an agent's
   *   answer (one model call) ended, more follows (`data.result`: why it stopped, its usage)
   * @param {function} [options.onMessageMetadata]  (data, event) for `message_metadata`: what the
   *   app said of the answer's message (`data.metadata`, an object to merge into what came before;
   *   a resume's catch-up sends what was missed merged into one, or more where a value changed kind)
   * @param {function} [options.onStateChange]  (state, previous)
   * @param {boolean} [options.shareAcrossTabs=true]  one stream per URL, filters and accessToken for all
   *   tabs of this browser (Web Locks and BroadcastChannel; without them, or with an injected
   *   EventSource, one per tab); with `getTicket` and no `accessToken`, only with a `shareKey`
   * @param {string} [options.shareKey]  whose stream this is (a user or session id): tabs share
   *   only with the same key; what lets `getTicket` clients share, and keeps two users' tabs
   *   apart on the cookie
   * @param {function} [options.EventSource]  injectable for tests
   */
  constructor(url, options = {}) {
    this.url = url;
    this.options = {
      reconnectDelay: 1000,
      maxReconnectDelay: 30000,
      maxReconnectAttempts: Infinity,
      heartbeatTimeout: 45000,
      withCredentials: false,
      closeOn: [],
      ...options,
    };
    this.handlers = new Map();
    this.source = null;
    this.listenedTypes = new Set();
    this.attempts = 0;
    this.lastEventId = null;
    this.connectionId = null;
    this.reconnectTimer = null;
    this.watchdogTimer = null;
    /** The ticket fetch under way, if any: a newer one or close() voids it. */
    this.opening = null;
    /** This tab's share of the stream (a `SharedStream`), when tabs share it. */
    this.tabs = null;
    /** A follower that left a leader which stopped answering: its own stream until close(). */
    this.ownStream = false;
    /** The filter of the last `subscription_updated` (see `subscribedFilter`): reconnects keep it. */
    this.subscribed = null;
    /** The broker refused `accessToken` (401, or `token_expired`): the next open asks `getToken`. */
    this.tokenRefused = false;
    /** The token in use came from `getToken` after a refusal, and no stream has opened with it yet. */
    this.freshTokenUntried = false;
    this._state = State.IDLE;
    this.EventSourceImpl = this.options.EventSource || globalThis.EventSource;
  }

  get state() {
    return this._state;
  }

  /** Registers a handler for one event type: handler(data, event). */
  on(type, handler) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(handler);
    if (this.source) this._listen(this.source, type);
    return () => this.handlers.get(type).delete(handler);
  }

  /** Opens the stream; a `closed` or `offline` client starts again, with its attempts over. */
  connect() {
    const gaveUp = this._state === State.OFFLINE;
    if (gaveUp || this._state === State.CLOSED) this.attempts = 0;
    if (!this._sharesAcrossTabs()) this._open();
    else if (!this.tabs) this._joinTabs();
    else if (gaveUp && this.tabs.leader) this._open();
    else if (gaveUp) {
      // The leader gave up on the stream, for every tab: ask it to start again.
      this._setState(State.CONNECTING);
      this.tabs.restart();
    }
    return this;
  }

  /** Closes the stream for good (no reconnect); a leader tab hands the stream on. */
  close() {
    this._close(0);
  }

  _close(handoffGrace) {
    this._teardown();
    this._setState(State.CLOSED);
    if (this.tabs) this.tabs.leave(handoffGrace);
    this.tabs = null;
    this.ownStream = false;
  }

  _sharesAcrossTabs() {
    const { shareAcrossTabs, EventSource } = this.options;
    return (
      shareAcrossTabs !== false &&
      !EventSource &&
      !this.ownStream &&
      saysWhoseStream(this.options) &&
      canShareAcrossTabs()
    );
  }

  /** Waits for the stream's lock: the holder opens it, the others follow it. */
  _joinTabs() {
    this._setState(State.CONNECTING);
    this.tabs = new SharedStream(shareName(new URL(this.url, pageBase()).href, this.options), {
      // A task's stream replays the task from its start to a first
      // connect, so a later tab needs the leader's account of it; any
      // other stream starts live (a `closeOn` does not change that).
      ends: TASK_STREAM_PATH.test(new URL(this.url, pageBase()).pathname),
      lastEventId: () => this.lastEventId,
      state: () => this._state,
      heartbeatTimeout: () => this.options.heartbeatTimeout,
      brokerEvents: BROKER_EVENTS,
      dispatch: (type, event) => this._dispatch(type, event),
      open: () => this._open(),
      mirrorState: (state) => {
        if (state !== State.CLOSED) this._setState(state);
      },
      // The leader's stream is this tab's too: its loss is reported here as well.
      lost: (info, failure) => {
        if (this.options.onDisconnect) this.options.onDisconnect(info);
        if (failure) this._fail(sharedFailure(failure));
      },
      restart: () => {
        if (this._state === State.OFFLINE) this.connect();
      },
      leaderSilent: () => this._leaveSilentLeader(),
      catchUpFailed: () => this._leaveForOwnStream(),
      readHistory: (after, onEvent, wanted) =>
        readStoredEvents(this._filteredUrl(), after, this.options, onEvent, wanted),
    });
  }

  /**
   * The leader's tab stopped answering (frozen in the background, it still
   * holds the lock): this tab stops following it, for good, and opens its
   * own stream after its own last id, so nothing is lost or repeated; the
   * old leader's later posts no longer reach it. Not while given up: that
   * waits for connect().
   */
  _leaveSilentLeader() {
    if (!this._isFollower() || this._state === State.OFFLINE) return;
    this._leaveTabs();
    this._lost("heartbeat_timeout");
  }

  /**
   * A rejoining follower could not read the events it missed (a client
   * with `getTicket` only has no credentials for /sse/history): it opens
   * its own stream after its own last id, which the broker replays from
   * there, rather than follow with a gap. Its own until close().
   */
  _leaveForOwnStream() {
    if (!this._isFollower()) return;
    this._leaveTabs();
    this._open();
  }

  /** Stops following the shared stream: this tab's own stream until close(), with all its attempts. */
  _leaveTabs() {
    this.tabs.leave(0);
    this.tabs = null;
    this.ownStream = true;
    this.attempts = 0;
  }

  _isFollower() {
    return this.tabs !== null && !this.tabs.leader;
  }

  _filteredUrl() {
    return filteredStreamUrl(this.url, this.options, this.subscribed);
  }

  _streamUrl(ticket) {
    const url = this._filteredUrl();
    const { accessToken } = this.options;
    // A single-use ticket keeps the long-lived token out of the URL.
    if (ticket) url.searchParams.set("ticket", ticket);
    else if (accessToken) url.searchParams.set("access_token", accessToken);
    // A new EventSource does not send Last-Event-ID by itself: pass it on.
    if (this.lastEventId !== null) url.searchParams.set("last_event_id", this.lastEventId);
    return url.toString();
  }

  /** `reconnecting`: a reconnect's attempt, which stays `reconnecting` until `connected`. */
  _open(reconnecting = false) {
    this._teardown();
    this._setState(reconnecting || this.attempts > 0 ? State.RECONNECTING : State.CONNECTING);
    if (!this.options.getTicket) {
      if (this.tokenRefused && this._renewsAccessToken()) this._openWithFreshToken();
      else this._openWith(null);
      return;
    }
    // Each (re)connect spends a fresh ticket: a used one gets 401.
    const opening = (this.opening = {});
    Promise.resolve()
      .then(() => (this.opening === opening ? this.options.getTicket() : null))
      .then(
        (ticket) => {
          if (this.opening === opening && this._state !== State.CLOSED) this._openWith(ticket);
        },
        (failure) => {
          if (this.opening !== opening || this._state === State.CLOSED) return;
          if (isPassingTicketFailure(failure, this.options)) return this._lost("ticket", undefined, failure);
          // No retry gets a ticket (no `subscribe` scope): as a refused stream.
          this._endRefused(failure);
        },
      );
  }

  /** A stream opened with `accessToken` can get a fresh one from `getToken`. */
  _renewsAccessToken() {
    return Boolean(this.options.accessToken && this.options.getToken);
  }

  /** Opens with a token from `getToken` (the one it had was refused); a failure is a lost connection. */
  _openWithFreshToken() {
    const opening = (this.opening = {});
    Promise.resolve()
      .then(() => (this.opening === opening ? this.options.getToken() : null))
      .then(
        (token) => {
          if (this.opening !== opening || this._state === State.CLOSED) return;
          if (typeof token === "string" && token) this.options.accessToken = token;
          // Asked once per refusal: a refusal of what it gave counts as a
          // failed attempt, so a `getToken` that cannot help is given up on.
          this.tokenRefused = false;
          this.freshTokenUntried = true;
          this._openWith(null);
        },
        () => {
          if (this.opening === opening && this._state !== State.CLOSED) this._lost("token");
        },
      );
  }

  _openWith(ticket) {
    this.opening = null;
    const source = new this.EventSourceImpl(this._streamUrl(ticket), { withCredentials: this.options.withCredentials });
    this.source = source;
    this.listenedTypes = new Set();
    this.streamOpened = false;
    /** The last event's `lastEventId` on this EventSource, which starts with "": see `_carriesOwnId`. */
    this.sourceLastId = "";
    source.onerror = (event) => {
      // A server `event: error` also lands here; _dispatch delivers it.
      if (isServerEvent(event)) return;
      // EventSource gives up by itself (CLOSED) only on an answer that is
      // not a stream; before `connected`, that is the broker's refusal.
      if (!this.streamOpened && source.readyState === 2) this._askWhyRefused();
      else this._lost("network");
    };
    // "message" and "error" go through _listen only, never also through
    // onmessage/onerror, so a handler never runs twice for one event.
    for (const type of [...BROKER_EVENTS, "message", "error"]) this._listen(source, type);
    // EventSource only surfaces named events someone listens to: listen to
    // every type this client asked for, so each one advances the resume id.
    const { eventTypes, closeOn } = this.options;
    const wanted = [...CALLBACK_EVENTS, ...(eventTypes || []), ...closeOn, ...this.handlers.keys()];
    for (const type of wanted) this._listen(source, type);
    this._armWatchdog();
  }

  _listen(source, type) {
    if (this.listenedTypes.has(type)) return;
    this.listenedTypes.add(type);
    source.addEventListener(type, (event) => this._dispatch(type, event));
  }

  _dispatch(type, event) {
    if (!isServerEvent(event)) return;
    if (event.target && event.target !== this.source) return;
    const ownId = this._carriesOwnId(event);
    if (this.tabs) this.tabs.dispatched(type, event, ownId);
    // A follower watches the leader instead (SharedStream), not the stream.
    if (!this._isFollower()) this._armWatchdog();
    // Only a frame's own id moves the resume point, and never back: an
    // id-less frame (live-only, a snapshot, a heartbeat) carries the id
    // before it, which a follower may get after newer stored events.
    const movesBack = type !== "replay_reset" && isBehind(event.lastEventId, this.lastEventId);
    if (ownId && event.lastEventId && !movesBack) {
      this.lastEventId = event.lastEventId;
    }
    let data = event.data;
    try {
      data = JSON.parse(event.data);
    } catch {
      // Not JSON: hand over the raw string.
    }
    const { onConnect, onProgress, onText, onReasoning, onToolCall, onToolResult, onToolApproval, onStepEnd } =
      this.options;
    const { onSource, onFile, onDataPart, onCustomPart, onSteeringMessage } = this.options;
    const { onTextEnd, onReasoningEnd, onMessageMetadata } = this.options;
    switch (type) {
      case "connected":
        this.streamOpened = true;
        this.attempts = 0;
        this.freshTokenUntried = false;
        this.connectionId = data && data.connection_id;
        this._listenToSubscribed(data);
        this._setState(State.CONNECTED);
        if (onConnect) onConnect(data);
        break;
      case "subscription_updated":
        // A filter changed with POST /sse/subscribe: a reconnect (and a
        // tab's catch-up) must ask for it, not for the one first given.
        this.subscribed = subscribedFilter(data, this.subscribed);
        this._listenToSubscribed(data);
        break;
      case "shutdown":
        // The broker is restarting: reconnect (to another instance) once
        // its hint has passed. Not a failed attempt: a restart that takes
        // a few seconds must not use up the attempts.
        this.attempts = 0;
        this._lost("shutdown", data && Number(data.reconnect_after_ms));
        this.attempts = 0;
        break;
      case "token_expiring":
        this._renewToken();
        break;
      case "token_expired":
        // Reconnecting is allowed (not `autoReconnect: false`, i.e. no
        // attempts at all), and there is a way to a fresh token.
        if (this.options.maxReconnectAttempts > 0 && (this.options.getTicket || this._renewsAccessToken())) {
          // A fresh ticket carries the app's fresh token, or the app gives
          // one (its renewal did not reach the broker in time): reconnect now.
          this.tokenRefused = !this.options.getTicket;
          this.attempts = 0;
          this._lost("token_expired");
          break;
        }
        // Closed first, so an onError handler may reconnect with a new token.
        this.close();
        if (this.options.onDisconnect) {
          this.options.onDisconnect({ reason: "token_expired", willReconnect: false, delay: null });
        }
        this._fail(new Error("token expired"));
        break;
      case "progress":
      case "progress_update":
        if (onProgress) onProgress(data, event);
        break;
      case "text":
        if (onText) onText(textOf(data), data, event);
        break;
      case "reasoning":
        if (onReasoning) onReasoning(textOf(data), data, event);
        break;
      case "text_end":
        if (onTextEnd) onTextEnd(data, event);
        break;
      case "reasoning_end":
        if (onReasoningEnd) onReasoningEnd(data, event);
        break;
      case "tool_call":
        if (onToolCall) onToolCall(data, event);
        break;
      case "tool_result":
        if (onToolResult) onToolResult(data, event);
        break;
      case "tool_approval":
        if (onToolApproval) onToolApproval(data, event);
        break;
      case "source":
        if (onSource) onSource(data, event);
        break;
      case "file":
        if (onFile) onFile(data, event);
        break;
      case "data_part":
        if (onDataPart) onDataPart(data, event);
        break;
      case "custom_part":
        if (onCustomPart) onCustomPart(data, event);
        break;
      case "steering_message":
        if (onSteeringMessage) onSteeringMessage(data, event);
        break;
      case "step_end":
        if (onStepEnd) onStepEnd(data, event);
        break;
      case "message_metadata":
        if (onMessageMetadata) onMessageMetadata(data, event);
        break;
      default:
        break;
    }
    const handlers = this.handlers.get(type);
    if (handlers) for (const handler of handlers) handler(data, event);
    if (this.options.closeOn.includes(type)) {
      // The end went to the other tabs just now: they read it before one
      // of them could take the stream up again.
      this._close(ENDED_HANDOFF_GRACE);
      // Only where `error` ends the stream is it this client's error; on a
      // general stream it is one more event about some task.
      if (type === "error") this._fail(new TaskError(data), data, event);
    }
  }

  /**
   * Whether the event came with its own `id:` line. EventSource gives one
   * without the id before it on this stream ("" on a new one), and a
   * frame's own id always differs from that (the broker's ids only grow).
   * An event from another tab (no target) says so itself.
   */
  _carriesOwnId(event) {
    if (!event.target) return event.ownId !== false;
    const own = event.lastEventId !== this.sourceLastId;
    this.sourceLastId = event.lastEventId;
    return own;
  }

  /**
   * A leader tab listens to every type its stream carries (the broker lists
   * them in `connected` and `subscription_updated`), not only to the types
   * its own handlers want: the other tabs' clients may want others.
   */
  _listenToSubscribed(data) {
    if (!this.source || !data || !Array.isArray(data.event_types)) return;
    for (const type of data.event_types) {
      if (typeof type === "string" && type) this._listen(this.source, type);
    }
  }

  _armWatchdog() {
    clearTimeout(this.watchdogTimer);
    const timeout = this.options.heartbeatTimeout;
    if (timeout > 0 && Number.isFinite(timeout)) {
      this.watchdogTimer = setTimeout(() => this._lost("heartbeat_timeout"), timeout);
    }
  }

  /** `cause`: what failed, when known (a refused ticket request), named if the client gives up. */
  _lost(reason, notBefore, cause) {
    // A follower's stream is the leader's: only the leader reconnects.
    if (this._state === State.CLOSED || this._isFollower()) return;
    this._teardown();
    if (this.attempts >= this.options.maxReconnectAttempts) {
      this._setState(State.OFFLINE);
      const why = cause && cause.message ? `: ${cause.message}` : "";
      // With reconnecting off there was nothing to give up on: say what happened.
      const what =
        this.options.maxReconnectAttempts > 0
          ? `gave up after ${this.attempts} reconnect attempts`
          : `the stream was lost (${reason}) and reconnecting is off`;
      const error = new Error(`${what}${why}`, cause ? { cause } : undefined);
      this._disconnected({ reason, willReconnect: false, delay: null }, error);
      this._fail(error);
      return;
    }
    const hinted = Number.isFinite(notBefore) && notBefore > 0 ? notBefore : 0;
    const delay = Math.max(hinted, backoffDelay(this.attempts, this.options));
    this.attempts += 1;
    this._setState(State.RECONNECTING);
    this._disconnected({ reason, willReconnect: true, delay });
    this.reconnectTimer = setTimeout(() => this._open(true), delay);
  }

  /** A lost stream, for onDisconnect; a leader tells its followers first (a callback may close it). */
  _disconnected(info, failure) {
    if (this.tabs && this.tabs.leader) this.tabs.publishLoss(info, failure ? describeFailure(failure) : null);
    if (this.options.onDisconnect) this.options.onDisconnect(info);
  }

  /**
   * Opens the same stream with `fetch`, only to read the refusal's status
   * and error body: a refusal that will not pass (a bad id, an unknown
   * task, a forbidden project) ends the client with a StreamRefusedError
   * instead of reconnect attempts; one that may pass (429, 503, 401 with a
   * way to a fresh token) is retried, after its Retry-After.
   */
  _askWhyRefused() {
    this._teardown();
    if (!(this.options.fetch || globalThis.fetch)) return this._lost("network");
    const asking = (this.opening = {});
    const current = () => this.opening === asking && this._state !== State.CLOSED;
    askWhyRefused((ticket) => this._streamUrl(ticket), this.options, current)
      .then((verdict) => {
        if (!verdict || !current()) return;
        if (verdict.opens) return this._lost("network");
        if (verdict.ended) return this.close(); // nothing (more) to stream
        if (!verdict.status) {
          if (verdict.unauthorized && this._renewsAccessToken()) {
            // A token that expired while the stream was away: ask for a new
            // one. The broker answered, so this is no failed attempt, unless
            // the token refused was already a fresh one.
            if (!this.freshTokenUntried) this.attempts = 0;
            this.tokenRefused = true;
          }
          return this._lost("refused", verdict.retryAfterMs, verdict.refusal);
        }
        this._endRefused(new StreamRefusedError(verdict.status, verdict.code, verdict.message));
      })
      .catch((error) => {
        // Not even an answer: the network, or a page origin the broker's CORS does not list.
        if (current()) this._lost("network", undefined, error);
      });
  }

  /** A refusal no retry passes: the client ends, saying why. */
  _endRefused(error) {
    this.close();
    if (this.options.onDisconnect) this.options.onDisconnect({ reason: "refused", willReconnect: false, delay: null });
    this._fail(error);
  }

  _fail(error, data, event) {
    if (this.options.onError) this.options.onError(error, data, event);
  }

  /**
   * Sends the app's fresh token for this stream; on failure the stream ends at its expiry. A 503 (the
   * broker could not reach the instance holding the stream: Redis down) is tried again after its
   * Retry-After, a few times, while the same stream is open.
   */
  _renewToken(attempt = 1) {
    const id = this.connectionId;
    if (!this.options.getToken || !(this.options.fetch || globalThis.fetch) || !id || this._isFollower()) return;
    renewStreamToken(this.url, id, this.options)
      .then((token) => {
        // A later reconnect (without tickets) must carry the fresh token,
        // not the one the stream was opened with.
        if (this.options.accessToken && typeof token === "string") this.options.accessToken = token;
      })
      .catch((error) => {
        // Else nothing to do: the stream ends at its token's expiry with token_expired.
        if (error?.status === 503 && attempt < RENEWAL_ATTEMPTS) {
          this.renewalTimer = setTimeout(() => {
            this.renewalTimer = null;
            if (this.connectionId === id) this._renewToken(attempt + 1);
          }, error.retryAfter * 1000);
        }
      });
  }

  /**
   * While `offline` (reconnecting given up on), the browser coming back
   * online starts the client again, its attempts over: a dashboard left open
   * through a network outage comes back by itself. Not with reconnecting off.
   */
  _watchOnline(offline) {
    const target = globalThis;
    if (typeof target.addEventListener !== "function") return;
    if (offline && !this.onlineListener && this.options.maxReconnectAttempts > 0) {
      this.onlineListener = () => {
        if (this._state === State.OFFLINE) this.connect();
      };
      target.addEventListener("online", this.onlineListener);
    } else if (!offline && this.onlineListener) {
      target.removeEventListener("online", this.onlineListener);
      this.onlineListener = null;
    }
  }

  _teardown() {
    this.opening = null;
    clearTimeout(this.renewalTimer);
    this.renewalTimer = null;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.watchdogTimer);
    this.reconnectTimer = null;
    this.watchdogTimer = null;
    if (this.source) {
      this.source.onerror = null;
      this.source.close();
      this.source = null;
    }
  }

  _setState(state) {
    const previous = this._state;
    if (previous === state) return;
    this._state = state;
    this._watchOnline(state === State.OFFLINE);
    if (this.tabs && this.tabs.leader) this.tabs.publishState(state);
    if (this.options.onStateChange) this.options.onStateChange(state, previous);
  }
}

/**
 * A task's stream (`/tasks/{id}/events`): progress, text and the end of the
 * task. Closes itself, without reconnecting, after `complete` or `error`;
 * the `error` also reaches `onError` as a `TaskError`. A page opened or
 * reloaded mid-generation receives the whole text so far (a tab that
 * follows another tab's stream gets it from that tab).
 */
export class TaskStream extends SseClient {
  /**
   * @param {string} taskId
   * @param {object} [options]  SseClient's, and `baseUrl`: the broker's origin (and path prefix)
   *   when it is not the page's, as the React hooks take it
   */
  constructor(taskId, options = {}) {
    const { baseUrl, ...rest } = options;
    const path = `/tasks/${encodeURIComponent(taskId)}/events`;
    const url = baseUrl ? `${String(baseUrl).replace(/\/+$/, "")}${path}` : path;
    super(url, { closeOn: ["complete", "error"], ...rest });
    this.taskId = taskId;
  }
}

/** A `text` or `reasoning` event's piece of text: always a string. */
function textOf(data) {
  return data && typeof data.delta === "string" ? data.delta : "";
}
