// TypeScript declarations of /react.js, the sse-broker React hooks. Served
// at /react.d.ts, beside /client.d.ts which it imports. Independent of
// @types/react: the hooks take and return plain values.

import type {
  ConnectedData,
  ConnectionState,
  DataPartData,
  DisconnectInfo,
  EventData,
  EventSourceConstructor,
  StepEndData,
  StreamRefusedError,
  TaskError,
  TaskErrorData,
  TaskSnapshot,
  TaskStatus,
} from "./client.js";

export type {
  ConnectedData,
  ConnectionState,
  DataPartData,
  DisconnectInfo,
  FileData,
  FinishReason,
  GenerationResult,
  SourceData,
  StepEndData,
  TaskErrorData,
  TaskSnapshot,
  TaskStatus,
} from "./client.js";

/** The option defaults (CONTRACT §7). */
export declare const DEFAULT_OPTIONS: {
  readonly autoReconnect: true;
  readonly maxReconnectAttempts: 3;
  readonly reconnectDelay: 2000;
  readonly maxEvents: 100;
};

export interface StreamOptions {
  /** Reconnect after a network error (default true). */
  autoReconnect?: boolean;
  /** Consecutive failed reconnects before going `offline` (default 3). */
  maxReconnectAttempts?: number;
  /** First backoff step, ms (default 2000); it doubles per attempt, with jitter. */
  reconnectDelay?: number;
  /** Backoff cap, ms (default 30000). */
  maxReconnectDelay?: number;
  /** Silence after which the stream is presumed dead, ms (default 45000). */
  heartbeatTimeout?: number;
  /** The broker's origin when it is not the page's, e.g. "https://broker.example.com". */
  baseUrl?: string;
  /** Send cookies (the `sse_token` cookie) cross-origin. */
  withCredentials?: boolean;
  /** Sent as `access_token`; prefer the HttpOnly `sse_token` cookie. */
  accessToken?: string;
  /** A fresh single-use stream ticket before each (re)connect (see `/client.js`'s `fetchTicket`). */
  getTicket?: () => string | Promise<string>;
  /** A fresh token on `token_expiring`: the stream is renewed without a reconnect. */
  getToken?: () => string | Promise<string>;
  /** `false`: one stream per tab instead of one per URL for all tabs (default `true`). */
  shareAcrossTabs?: boolean;
  /** Whose stream this is (a user or session id): tabs share only with the same key; with `getTicket` and no `accessToken`, tabs share only with one; on the cookie, it keeps two users' tabs apart. */
  shareKey?: string;
  /** Each `progress` event's data (a task); on a general stream `progress_update` too. */
  onProgress?: (data: TaskSnapshot) => void;
  /**
   * A task's end (a TaskError: failed or cancelled; task streams only), the
   * stream refused (a StreamRefusedError: an unknown task, a forbidden
   * project), or the connection given up on or its token expired (an Error).
   */
  onError?: (error: Error | TaskError | StreamRefusedError, data?: TaskErrorData) => void;
  onConnect?: (data: ConnectedData) => void;
  /** A lost stream (not a closed one): why, and whether it reconnects. */
  onDisconnect?: (info: DisconnectInfo) => void;
  /** An EventSource stand-in (tests). */
  EventSource?: EventSourceConstructor;
  /** A fetch stand-in (tests): how the client asks why a stream was refused, and renews tokens. */
  fetch?: typeof fetch;
}

export interface StreamControls {
  /** The connection's state: `idle` before any stream, `closed` after the end or disconnect(). */
  connectionState: ConnectionState;
  /** True while the stream is open and the broker has sent `connected`. */
  isConnected: boolean;
  /**
   * Connects again now, from the last event id seen (no text or event is
   * lost or doubled), with a fresh count of attempts. A no-op once a task
   * has ended.
   */
  reconnect: () => void;
  /** Closes the stream, keeping what was received; reconnect() resumes (a refreshed token does not). */
  disconnect: () => void;
}

/** A tool call of a generation, as `useTaskStream` keeps it. */
export interface ToolCall {
  id: string;
  name: string;
  /** The tool's input as the model wrote it. */
  input: unknown;
  /**
   * `called` until the tool's answer comes: `done` (with `output`) or `failed` (with `error`; also a
   * call whose input was refused). A preliminary answer sets `output` while the call stays `called`.
   * A call waiting for a person is `approval-requested` until its answer, or `denied`.
   */
  state: "called" | "approval-requested" | "done" | "failed" | "denied";
  /** While `approval-requested`: the approval's id, for the app's own approve/deny request. */
  approvalId?: string;
  output?: unknown;
  error?: string;
  /** The tool's title, as the app named it (the AI SDK's `tool({ title })`). */
  title?: string;
  /** What the app says of the tool (the AI SDK's `toolMetadata`; an answer's replaces the call's). */
  toolMetadata?: Record<string, unknown>;
}

export interface TaskStreamResult extends StreamControls {
  /** The text so far: the `text` deltas appended in order. */
  text: string;
  /**
   * The same text in its parts, as the AI SDK's chat shows them: a new part after each `text_end`
   * (paragraphs an AI SDK app streamed apart), tool call or answer, step's end, or reasoning.
   * `textParts.join("")` is `text`.
   */
  textParts: string[];
  /** The model's reasoning so far (its thinking): the `reasoning` deltas appended in order; "" for a model that streams none. */
  reasoning: string;
  /** The tools the model asked for, in the order it asked, each with its answer once it came. */
  toolCalls: ToolCall[];
  /** The sources the answer cites, in the order they came (one per `source_id`). */
  sources: AnswerSource[];
  /** The sources each text part cites, and where, in the order they came (an AI SDK 7 text part's `citations`). */
  citations: AnswerCitation[];
  /** The files the model made, in the order they came. */
  files: AnswerFile[];
  /** The files the model made in its reasoning (AI SDK 7 `reasoning-file` parts), in the order they came. */
  reasoningFiles: AnswerFile[];
  /** Content of kinds only the model's provider knows (AI SDK 7 `custom` parts), in the order they came. */
  customParts: AnswerCustomPart[];
  /** The messages a person said into the running agent (AI SDK 7 steering), in the order they came. */
  steeringMessages: AnswerSteeringMessage[];
  /** The app's own data parts, in the order they began; a later one of the same name and id replaced its data. Transient ones are not kept (see `onData`). */
  dataParts: AnswerDataPart[];
  /**
   * The steps of the answer that ended so far (an agent's model calls, each a `step_end` event), in
   * order: each its result (why it stopped, the tokens it took) or null when its producer said none.
   */
  steps: StepEndData["result"][];
  /**
   * What the app said of the answer's message (the AI SDK's `messageMetadata`), merged as the SDK
   * merges it; null until it says something.
   */
  messageMetadata: Record<string, unknown> | null;
  /** 0–100: the latest `progress`, 100 once completed. */
  progress: number;
  /** The task's status; null before the broker has told it. */
  status: TaskStatus | null;
  stage: string | null;
  message: string | null;
  /** The latest `progress` event's data (the whole task). */
  task: TaskSnapshot | null;
  /** The `complete` event's `result` (a `GenerationResult` for a task completed by a model provider's stream). */
  result: unknown;
  /** The task's end (TaskError), the stream refused (StreamRefusedError), or the connection's failure (Error); null otherwise. */
  error: Error | TaskError | StreamRefusedError | null;
}

/** A source the answer cites, as `useTaskStream` keeps it. */
export interface AnswerSource {
  id: string;
  /** A web page's URL; absent for a document. */
  url?: string;
  title?: string;
  /** A document's media type; absent for a web page. */
  mediaType?: string;
  filename?: string;
}

/** A source a text part cites. */
export interface AnswerCitation {
  /** The index in `textParts` of the part whose text cites it. */
  textPart: number;
  source: AnswerSource;
  startIndex?: number;
  endIndex?: number;
  citedText?: string;
}

/** A person's message delivered into the running agent. */
export interface AnswerSteeringMessage {
  id: string;
  parts: Array<
    | { type: "text"; text: string; providerMetadata?: Record<string, Record<string, unknown>> }
    | { type: "file"; mediaType: string; url: string; filename?: string; providerMetadata?: Record<string, Record<string, unknown>> }
  >;
}

/** Content of a kind only the model's provider knows. */
export interface AnswerCustomPart {
  /** `<provider>.<kind>`, e.g. `openai.compaction`. */
  kind: string;
  providerMetadata?: Record<string, Record<string, unknown>>;
}

/** A file the model made. */
export interface AnswerFile {
  url: string;
  mediaType: string;
}

/** An app's own data part (the AI SDK's `data-<name>`). */
export interface AnswerDataPart {
  name: string;
  id?: string;
  data: unknown;
}

export interface TaskStreamOptions extends StreamOptions {
  /** Each data part as it comes, transient ones included (which `dataParts` does not keep). */
  onData?: (part: DataPartData) => void;
  /** Each `message_metadata` event's metadata as it comes (before the merge). */
  onMessageMetadata?: (metadata: Record<string, unknown>) => void;
}

/** Follows the task `taskId` (`/tasks/{taskId}/events`); a falsy id opens nothing. */
export declare function useTaskStream(taskId: string | null | undefined, options?: TaskStreamOptions): TaskStreamResult;

/** The query of `GET /sse/events`. */
export interface EventStreamQuery {
  /** An array, or a comma-separated string; default all types. */
  event_types?: string | string[];
  project_id?: string;
  last_event_id?: string | number;
  [param: string]: string | number | boolean | string[] | null | undefined;
}

export interface ReceivedEvent<T = EventData> {
  type: string;
  data: T;
  /** The stream's last event id when it arrived (a `persist: false` event has none of its own). */
  lastEventId: string | null;
}

export interface EventStreamOptions extends StreamOptions {
  /** How many of the latest events `events` keeps (default 100). */
  maxEvents?: number;
}

export interface EventStreamResult extends StreamControls {
  /** The latest `maxEvents` events, oldest first (not the stream's own frames such as heartbeats). */
  events: ReceivedEvent[];
  lastEvent: ReceivedEvent | null;
  /** The `text` deltas received, appended. */
  text: string;
  /** The latest `progress` or `progress_update` event's `progress`; null before one. */
  progress: number | null;
  /** The latest `status` carried by an event's data; null before one. */
  status: string | null;
  /** The connection given up on or its token expired; a task's `error` event is an event here. */
  error: Error | null;
}

/** Follows `GET /sse/events` with `query`; null opens nothing. */
export declare function useEventStream(query: EventStreamQuery | null | undefined, options?: EventStreamOptions): EventStreamResult;
