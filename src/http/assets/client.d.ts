// TypeScript declarations of /client.js, the sse-broker browser client.
// Served at /client.d.ts; tests/js/types.test.mjs compiles a usage file
// against them with `tsc --strict` and checks that they declare exactly the
// values the module exports.

/** Connection states, in `onStateChange` and `client.state`. */
export declare const State: {
  readonly IDLE: "idle";
  readonly CONNECTING: "connecting";
  readonly CONNECTED: "connected";
  readonly RECONNECTING: "reconnecting";
  readonly OFFLINE: "offline";
  readonly CLOSED: "closed";
};
export type ConnectionState = (typeof State)[keyof typeof State];

/** The delay before reconnect attempt `attempt` (0-based), ms: exponential, capped, with equal jitter. */
export declare function backoffDelay(
  attempt: number,
  options?: { reconnectDelay?: number; maxReconnectDelay?: number },
  random?: () => number,
): number;

/** What `diagnoseConnection` found on the way between page and broker. */
export interface ConnectionDiagnosis {
  /** Probes arrived spread out as sent, uncompressed, and the summary came. */
  ok: boolean;
  /** The probes arrived in one lump: a proxy or CDN buffers the stream. */
  buffered: boolean;
  /** The stream arrived compressed (Content-Encoding other than identity). */
  compressed: boolean;
  probes: number;
  spreadMs: number;
  expectedSpreadMs: number;
  firstProbeMs: number | null;
  /** `browser`: the page's next-hop protocol (`h2`, `http/1.1`); `broker`: what the broker saw. */
  protocol: { browser: string | null; broker: string | null };
  /** Forwarding headers the broker saw (`via`, `x-forwarded-for`, …). */
  hops: string[];
  problems: string[];
  warnings: string[];
}

/** Runs `GET /sse/diagnose` and tells whether something on the way buffers, compresses or downgrades the stream. */
export declare function diagnoseConnection(
  url?: string,
  options?: { fetch?: typeof fetch; headers?: Record<string, string> },
): Promise<ConnectionDiagnosis>;

/** `POST`s to the broker's `/sse/tickets` with the token in a header; resolves to the ticket. */
export declare function fetchTicket(
  url: string,
  accessToken: string | (() => string | Promise<string>),
  fetchImpl?: typeof fetch,
): Promise<string>;

/** True for an event the broker sent (a MessageEvent with string `data`), false for EventSource's own. */
export declare function isServerEvent(event: Event | null | undefined): event is MessageEvent<string>;

/** A task's lifecycle status, as the broker reports it. */
export type TaskStatus = "pending" | "running" | "completed" | "failed" | "cancelled";

/** The data of a task's `event: error`: it failed, or was cancelled. */
export interface TaskErrorData {
  task_id?: string;
  status?: "failed" | "cancelled";
  error?: string | null;
  cancelled?: boolean;
  [key: string]: unknown;
}

/** What `onError` receives when the broker reports a task's end as `event: error`. */
export declare class TaskError extends Error {
  constructor(data: TaskErrorData | null | undefined);
  readonly name: "TaskError";
  /** The parsed payload of the `error` event. */
  data: TaskErrorData | null | undefined;
  cancelled: boolean;
  taskId: string | undefined;
  status: "failed" | "cancelled" | undefined;
}

/**
 * What `onError` receives when the broker refuses to open the stream (an
 * HTTP error answer, which `EventSource` cannot read: the client asks with
 * `fetch`). A refusal that may pass (401 with `getTicket`/`getToken`, 408,
 * 429, 5xx) is retried instead; this one ends the client.
 */
export declare class StreamRefusedError extends Error {
  constructor(status: number, code?: string | null, message?: string);
  readonly name: "StreamRefusedError";
  /** The HTTP status: 400, 401, 403, 404, 422, … */
  status: number;
  /** The broker's error code: `task_not_found`, `forbidden`, `invalid_last_event_id`, … */
  code: string | null;
}

/** The data of the `connected` frame that opens every stream. */
export interface ConnectedData {
  connection_id: string;
  event_types: string[];
  project_id: string | null;
  [key: string]: unknown;
}

/** Why a stream was lost, and what happens next. */
export interface DisconnectInfo {
  /**
   * `network`: the connection dropped or could not be made;
   * `heartbeat_timeout`: nothing arrived for `heartbeatTimeout` (on a tab
   * that follows another tab's stream: nor did that tab answer, so this
   * one opens its own stream);
   * `shutdown`: the broker is restarting; `ticket`: `getTicket` failed;
   * `token`: `getToken` failed, when a refused `accessToken` asked it for
   * a new one; `token_expired`: with `getTicket`, a fresh ticket is
   * fetched (with `accessToken` and `getToken`, a fresh token);
   * `refused`: the broker refused the stream (retried when the refusal may
   * pass, else `willReconnect` is false and `onError` gets a
   * StreamRefusedError).
   */
  reason: "network" | "heartbeat_timeout" | "shutdown" | "ticket" | "token" | "token_expired" | "refused";
  willReconnect: boolean;
  /** The wait before the next attempt, ms; null when giving up. */
  delay: number | null;
}

/** Why a generated answer stopped, in the AI SDK's words. */
export type FinishReason = "stop" | "length" | "content-filter" | "tool-calls" | "error" | "interrupted" | "other";

/**
 * The `result` of a task completed by a model provider's stream piped into
 * `POST /tasks/{id}/stream`: why the answer stopped and the tokens it took,
 * each key when the provider said it. Any other task's result is whatever
 * JSON its producer wrote: narrow `result` to this where you know.
 */
export interface GenerationResult {
  finish_reason?: FinishReason;
  /** The provider's own word: `max_tokens`, `MAX_TOKENS`, `end_turn`, … */
  provider_finish_reason?: string;
  usage?: { input_tokens?: number; output_tokens?: number; total_tokens?: number };
  [key: string]: unknown;
}

/** A task as the broker sends it in `progress` events (and answers `GET /tasks/{id}`). */
export interface TaskSnapshot {
  task_id?: string;
  status?: TaskStatus;
  progress?: number;
  stage?: string | null;
  message?: string | null;
  result?: unknown;
  error?: string | null;
  [key: string]: unknown;
}

/** Parsed event data: JSON, or the raw string when it is not JSON. */
export type EventData = any;

/** A `tool_call` event's data: the model asked for a tool to be run. */
export interface ToolCallData {
  task_id: string;
  tool_call_id: string;
  tool_name: string;
  /** The tool's input as the model wrote it (JSON; the text itself when it is not JSON). */
  input: unknown;
  /** Why the input was refused (it did not match the tool's schema): the call is never run. */
  input_error?: string;
  /** Run by the model provider itself (a web search): not for the app to run. */
  provider_executed?: true;
  /** A tool outside the app's static tool set (an MCP tool). */
  dynamic?: true;
  /** What the model's provider said of it (an AI SDK upload's `providerMetadata`), as it said it. */
  provider_metadata?: Record<string, Record<string, unknown>>;
  /** The tool's title, as the app named it (the AI SDK's `tool({ title })`). */
  title?: string;
  /** What the app says of the tool (the AI SDK's `tool({ metadata })`, `toolMetadata`). */
  tool_metadata?: Record<string, unknown>;
}

/** A `tool_result` event's data: a tool's answer, its `output` or, when it failed, its `error`. */
export interface ToolResultData {
  task_id: string;
  tool_call_id: string;
  output?: unknown;
  error?: string;
  /** An answer the tool will replace (a streaming tool's progress). */
  preliminary?: true;
  /** The person asked refused the call: it was never run. */
  denied?: true;
  /** What the model's provider said of it (an AI SDK upload's `providerMetadata`), as it said it. */
  provider_metadata?: Record<string, Record<string, unknown>>;
  /** What the app says of the tool (the AI SDK's `toolMetadata`). */
  tool_metadata?: Record<string, unknown>;
}

/** A `tool_approval` event's data: a call waits for a person to approve it. */
export interface ToolApprovalData {
  task_id: string;
  tool_call_id: string;
  approval_id: string;
}

/** A `source` event's data: a source the answer cites, a web page (`url`) or a document (`media_type`). */
export interface SourceData {
  task_id: string;
  source_id: string;
  url?: string;
  title?: string;
  media_type?: string;
  filename?: string;
  /** What the model's provider said of it (an AI SDK upload's `providerMetadata`), as it said it. */
  provider_metadata?: Record<string, Record<string, unknown>>;
}

/** A `file` event's data: a file the model made, by URL (often a `data:` URL). */
export interface FileData {
  task_id: string;
  url: string;
  media_type: string;
  /** The model made it in its reasoning (an AI SDK 7 `reasoning-file`), not as part of the answer. */
  reasoning?: true;
  /** What the model's provider said of it (an AI SDK upload's `providerMetadata`), as it said it. */
  provider_metadata?: Record<string, Record<string, unknown>>;
}

/** A `custom_part` event's data: content of a kind only the model's provider knows (an AI SDK 7 `custom` part). */
export interface CustomPartData {
  task_id: string;
  /** `<provider>.<kind>`, e.g. `openai.compaction`. */
  kind: string;
  provider_metadata?: Record<string, Record<string, unknown>>;
}

/** A `steering_message` event's data: a person's message delivered into the running agent (AI SDK 7's steering). */
export interface SteeringMessageData {
  task_id: string;
  id: string;
  parts: Array<
    | { type: "text"; text: string; provider_metadata?: Record<string, Record<string, unknown>> }
    | {
        type: "file";
        media_type: string;
        url: string;
        filename?: string;
        provider_reference?: Record<string, string>;
        provider_metadata?: Record<string, Record<string, unknown>>;
      }
  >;
}

/** A source a text part cites, and where (on a `text_end` event's `citations`). */
export interface CitationData {
  /** As a `source` event's data, without its `task_id`. */
  source: Omit<SourceData, "task_id">;
  /** The cited characters of the part's text, as its provider counts them. */
  start_index?: number;
  end_index?: number;
  /** The passage of the source the text quotes. */
  cited_text?: string;
}

/**
 * A `data_part` event's data: an app's own part (the AI SDK's `data-<name>`). A later part of the same
 * `name` and `id` replaces it; a `transient` one is news for the moment, not kept in the answer.
 */
export interface DataPartData {
  task_id: string;
  name: string;
  id?: string;
  data: unknown;
  transient?: true;
}

/**
 * A `message_metadata` event's data: what the app said of the answer's message (the AI SDK's
 * `messageMetadata`), to merge into what it said before as the SDK does: objects deeply, anything
 * else replaced. A resume's catch-up sends what was missed merged into one (with no id; into more only where a
 * value changed kind), to merge in order.
 */
export interface MessageMetadataData {
  task_id: string;
  metadata: Record<string, unknown>;
}

/** A `step_end` event's data: one step of an agent's answer (one model call) ended; more follows. */
export interface StepEndData {
  task_id: string;
  /** Why the step stopped and the tokens it took, when its producer said them. */
  result: {
    finish_reason?: FinishReason;
    provider_finish_reason?: string;
    usage?: { input_tokens?: number; output_tokens?: number; [key: string]: unknown };
    [key: string]: unknown;
  } | null;
}

/**
 * A `replay_reset` event's data (`client.on("replay_reset", …)`): what the
 * client had is to be replaced, as the stream starts over from `id: 0` and
 * a task's whole text comes again. From the broker when it no longer knows
 * the resume point (its store was replaced); from another tab
 * (`rejoined: true`, `latest_id: null`) when a task stream's client
 * connects again and its last id falls inside text that tab got rolled up.
 */
export interface ReplayResetData {
  /** The resume point the client had. */
  last_event_id: number;
  /** The store's newest id, from the broker; null from another tab. */
  latest_id: number | null;
  /** Present when another tab sharing the stream sent it. */
  rejoined?: true;
}

/** A minimal EventSource constructor, to inject a stand-in. */
export interface EventSourceConstructor {
  new (url: string, init?: { withCredentials?: boolean }): EventSource;
}

export interface SseClientOptions {
  /** Event types to receive (sent as `event_types`); default all. */
  eventTypes?: string[];
  /** Sent as `project_id`. */
  projectId?: string;
  /** Sent as `access_token` (EventSource cannot set headers); prefer the HttpOnly `sse_token` cookie. */
  accessToken?: string;
  /**
   * Called before every (re)connect; the stream opens with `?ticket=` (a
   * single-use stream ticket) instead of a token in its URL. A rejection
   * counts as a lost connection, retried with backoff. See `fetchTicket`.
   */
  getTicket?: () => string | Promise<string>;
  /**
   * Called on `token_expiring`: the fresh token is posted to
   * `/sse/connections/{id}/token` and the stream lives on without a
   * reconnect. With `getTicket`, an expired stream reconnects instead of
   * failing; so does one opened with `accessToken`, with a token from
   * `getToken`, which a reconnect the broker refused with 401 (the token
   * expired while the network was down) also opens with.
   */
  getToken?: () => string | Promise<string>;
  /** Injectable for tests; default `globalThis.fetch`. */
  fetch?: typeof fetch;
  /**
   * One stream per URL for all tabs of this browser (default `true`): the
   * tab holding a Web Lock opens it and passes its events to the others over
   * a BroadcastChannel; when it closes, another tab resumes the stream.
   * Tabs share only with the same URL, filters, `accessToken` and
   * `shareKey` (a token minted per page load means a stream per tab). A
   * ticket does not say whose stream it opens, so a client with
   * `getTicket` and no `accessToken` shares only with a `shareKey`. The
   * `sse_token` cookie is the browser's: where another user can sign in
   * while a tab stays open, give a `shareKey` (the user's id), or a tab
   * opened then follows the first user's stream. The other tabs get
   * `onConnect`, `connectionId`, `onDisconnect` and `onError` too; one
   * that hears nothing from the holding tab for `heartbeatTimeout`, and no
   * answer to a ping (a frozen tab keeps the lock), opens its own stream.
   * Without Web Locks or BroadcastChannel (or with an injected
   * `EventSource`), one stream per tab. On a task's stream a tab joining
   * later gets the stream so far from the tab holding it, and one that
   * connects again takes it up where it left off (or, where that falls
   * inside text the holding tab got rolled up, gets `replay_reset`, see
   * `ReplayResetData`, and the whole text again). A `POST /sse/subscribe`
   * on the shared connection changes the stream of every tab sharing it. A
   * closed client that connects again reads what it missed from
   * `/sse/history`; with `getTicket` and no token (or when that read
   * fails) it opens a stream of its own after its last id instead.
   */
  shareAcrossTabs?: boolean;
  /**
   * Whose stream this is (a user or session id, not a secret): tabs share
   * a stream only with the same key. What lets clients on `getTicket`
   * alone share one, and keeps two users' tabs apart on the `sse_token`
   * cookie; give each signed-in user their own. An empty string is no key.
   */
  shareKey?: string;
  /** First backoff step, ms (default 1000). */
  reconnectDelay?: number;
  /** Backoff cap, ms (default 30000). */
  maxReconnectDelay?: number;
  /** Consecutive failures before going `offline` (default Infinity). */
  maxReconnectAttempts?: number;
  /** Silence after which the stream is presumed dead, ms (default 45000). */
  heartbeatTimeout?: number;
  /** Send cookies cross-origin (default false). */
  withCredentials?: boolean;
  /** Event types after which the client closes for good (e.g. a task's end). */
  closeOn?: string[];
  /** Each `connected` frame; a tab joining a shared stream later gets the current one. */
  onConnect?: (data: ConnectedData) => void;
  /** Each lost stream (a shared one: in every tab). */
  onDisconnect?: (info: DisconnectInfo) => void;
  /**
   * A lost stream given up on, an expired token, a stream the broker
   * refused (a StreamRefusedError with its status and code), or, where
   * `closeOn` has "error" (a TaskStream), the task's end as a TaskError with
   * its data.
   */
  onError?: (error: Error | TaskError | StreamRefusedError, data?: TaskErrorData, event?: MessageEvent<string>) => void;
  /** `progress` (a task) and `progress_update` events. */
  onProgress?: (data: TaskSnapshot, event: MessageEvent<string>) => void;
  /** `text` events (the answer): `delta` is their `data.delta`. */
  onText?: (delta: string, data: { delta?: string; task_id?: string; [key: string]: unknown }, event: MessageEvent<string>) => void;
  /** `reasoning` events (the model's thinking, apart from the answer): `delta` is their `data.delta`. */
  onReasoning?: (delta: string, data: { delta?: string; task_id?: string; [key: string]: unknown }, event: MessageEvent<string>) => void;
  /**
   * `text_end` events: the answer's text so far is a part of its own; the next `text` begins another.
   * `provider_metadata`: what the model's provider said of the part (an AI SDK upload's `providerMetadata`);
   * `citations`: the sources the part's text cites (an AI SDK 7 `text-end`'s `citations`).
   */
  onTextEnd?: (
    data: { task_id?: string; provider_metadata?: Record<string, Record<string, unknown>>; citations?: CitationData[]; [key: string]: unknown },
    event: MessageEvent<string>,
  ) => void;
  /** `reasoning_end` events: the same for the model's reasoning (a thought with no text may have one, for its `provider_metadata`). */
  onReasoningEnd?: (data: { task_id?: string; provider_metadata?: Record<string, Record<string, unknown>>; [key: string]: unknown }, event: MessageEvent<string>) => void;
  /** `tool_call` events: the model asked for the tool `tool_name` to be run with `input`. */
  onToolCall?: (data: ToolCallData, event: MessageEvent<string>) => void;
  /** `tool_result` events: a tool's answer to the call `tool_call_id`, its `output` or its `error`. */
  onToolResult?: (data: ToolResultData, event: MessageEvent<string>) => void;
  /** `tool_approval` events: the call `tool_call_id` waits for a person's approval. */
  onToolApproval?: (data: ToolApprovalData, event: MessageEvent<string>) => void;
  /** `source` events: a source the answer cites. */
  onSource?: (data: SourceData, event: MessageEvent<string>) => void;
  /** `file` events: a file the model made. */
  onFile?: (data: FileData, event: MessageEvent<string>) => void;
  /** `data_part` events: an app's own data part. */
  onDataPart?: (data: DataPartData, event: MessageEvent<string>) => void;
  /** `custom_part` events: content of a kind only the model's provider knows. */
  onCustomPart?: (data: CustomPartData, event: MessageEvent<string>) => void;
  /** `steering_message` events: a person's message delivered into the running agent. */
  onSteeringMessage?: (data: SteeringMessageData, event: MessageEvent<string>) => void;
  /** `step_end` events: one step of an agent's answer ended (`data.result`: why, and its usage). */
  onStepEnd?: (data: StepEndData, event: MessageEvent<string>) => void;
  /** `message_metadata` events: what the app said of the answer's message (`data.metadata`). */
  onMessageMetadata?: (data: MessageMetadataData, event: MessageEvent<string>) => void;
  onStateChange?: (state: ConnectionState, previous: ConnectionState) => void;
  /** An EventSource stand-in (tests). */
  EventSource?: EventSourceConstructor;
}

/** An EventSource wrapper that survives network drops and resumes after the last id. */
export declare class SseClient {
  constructor(url: string, options?: SseClientOptions);
  readonly url: string;
  readonly options: SseClientOptions & Required<
    Pick<
      SseClientOptions,
      "reconnectDelay" | "maxReconnectDelay" | "maxReconnectAttempts" | "heartbeatTimeout" | "withCredentials" | "closeOn"
    >
  >;
  readonly state: ConnectionState;
  /** The last event id seen: where a reconnect resumes. */
  lastEventId: string | null;
  /** The broker's id of the current stream, from its `connected` frame (in every tab sharing it). */
  connectionId: string | null;
  /** Registers a handler for one event type; returns the function that removes it. */
  on<T = EventData>(type: string, handler: (data: T, event: MessageEvent<string>) => void): () => boolean;
  /**
   * Opens the stream; a `closed` or `offline` client starts again, its
   * attempts over, and resumes from `lastEventId`. On a tab that follows
   * another tab's stream given up on, that tab starts it again.
   */
  connect(): this;
  /** Closes the stream for good (no reconnect). */
  close(): void;
}

/**
 * A task's stream (`/tasks/{id}/events`): closes itself, without
 * reconnecting, after `complete` or `error`.
 */
export interface TaskStreamOptions extends SseClientOptions {
  /** The broker's origin (and path prefix) when it is not the page's, e.g. `https://sse.example.com`. */
  baseUrl?: string;
}

export declare class TaskStream extends SseClient {
  constructor(taskId: string, options?: TaskStreamOptions);
  readonly taskId: string;
}
