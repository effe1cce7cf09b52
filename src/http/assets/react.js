// sse-broker React hooks: follow a task's generation, or a general stream,
// from a component. ES module; React is the caller's own import ("react"),
// so the hooks run on the application's copy of React.
//
//   import { useTaskStream } from "/react.js";
//   function Answer({ taskId }) {
//     const { text, reasoning, progress, status, error, isConnected } = useTaskStream(taskId);
//     …
//   }
//
// Both hooks are built on /client.js's SseClient, which owns everything
// about the connection: reconnecting with backoff and resuming after the
// last event id (so the broker replays exactly the missed events, text
// included, and a reconnect never doubles text), the heartbeat watchdog,
// and telling the broker's `event: error` (a task's end) from EventSource's
// network error. The hooks only turn its callbacks into React state.

import { useCallback, useEffect, useLayoutEffect, useRef, useState } from "react";
import { SseClient, TaskError } from "./client.js";

/** The option defaults (CONTRACT §7). */
export const DEFAULT_OPTIONS = Object.freeze({
  autoReconnect: true,
  maxReconnectAttempts: 3,
  reconnectDelay: 2000,
  maxEvents: 100,
});

function streamUrl(baseUrl, path) {
  return baseUrl ? `${String(baseUrl).replace(/\/+$/, "")}${path}` : path;
}

/**
 * The SseClient options the hook options ask for. Keys left unset stay
 * absent: SseClient spreads its options over its defaults, and an
 * `undefined` would replace a default.
 */
function reconnectOptions(options) {
  const chosen = {
    reconnectDelay: options.reconnectDelay ?? DEFAULT_OPTIONS.reconnectDelay,
    // No automatic reconnect is SseClient giving up at the first loss.
    maxReconnectAttempts:
      options.autoReconnect === false ? 0 : options.maxReconnectAttempts ?? DEFAULT_OPTIONS.maxReconnectAttempts,
    maxReconnectDelay: options.maxReconnectDelay,
    heartbeatTimeout: options.heartbeatTimeout,
  };
  for (const key of Object.keys(chosen)) if (chosen[key] === undefined) delete chosen[key];
  return chosen;
}

function connectionOptions(options) {
  const chosen = {
    accessToken: options.accessToken,
    withCredentials: options.withCredentials,
    EventSource: options.EventSource,
  };
  for (const key of Object.keys(chosen)) if (chosen[key] === undefined) delete chosen[key];
  return chosen;
}

/**
 * Holds one SseClient for `url` (none while `url` is null) for as long as
 * the component is mounted with that url and those connection options.
 * `callbacks` are the SseClient callbacks, each called with the caller's
 * latest options first, and only while the client is current (a replaced
 * or unmounted client's late callbacks are dropped); `setup(client, guard)`
 * registers the hook's event handlers, wrapped the same way by `guard`.
 * Reading the options at call time means new callbacks on every render
 * neither reconnect nor leave a stale one called.
 */
function useSseClient(url, options, { closeOn, eventTypes, projectId, callbacks, setup }) {
  const latest = useRef(options);
  const clientRef = useRef(null);
  // Where the last client got to. A stream reopened for the same url, types
  // and project (a refreshed `accessToken`, new credentials) resumes after
  // it: starting over would replay what is already shown (a task's text
  // twice) or, on a general stream, skip what came during the switch. A
  // stream that reached its end (`closeOn`) is not reopened at all.
  const reached = useRef(null);
  // disconnect() was called: a stream reopened for the same url, types and
  // project (a refreshed token) stays closed until reconnect().
  const held = useRef(false);
  useLayoutEffect(() => {
    latest.current = options;
    // Reconnect settings apply to the running client from its next loss on.
    if (clientRef.current) Object.assign(clientRef.current.options, reconnectOptions(options));
  });
  const { accessToken, withCredentials, EventSource, shareAcrossTabs, shareKey } = options;
  const typesKey = eventTypes ? eventTypes.join(",") : "";

  useEffect(() => {
    if (url == null) return undefined;
    const stream = `${url}|${typesKey}|${projectId || ""}`;
    const before = reached.current && reached.current.stream === stream ? reached.current : null;
    if (before && before.ended) return undefined;
    // Another task or query is not the stream the user closed.
    if (!before) held.current = false;
    let current = true;
    let ended = false;
    const guard =
      (callback) =>
      (...args) => {
        if (current) callback(latest.current, ...args);
      };
    const client = new SseClient(url, {
      ...reconnectOptions(latest.current),
      ...connectionOptions({ accessToken, withCredentials, EventSource }),
      // Called through the latest render's options: a new function each
      // render must not reopen the stream.
      ...(latest.current.getTicket ? { getTicket: () => latest.current.getTicket() } : {}),
      ...(latest.current.getToken ? { getToken: () => latest.current.getToken() } : {}),
      ...(latest.current.fetch ? { fetch: (...args) => latest.current.fetch(...args) } : {}),
      ...(shareAcrossTabs === false ? { shareAcrossTabs: false } : {}),
      ...(shareKey ? { shareKey } : {}),
      closeOn,
      ...(typesKey ? { eventTypes: typesKey.split(",") } : {}),
      ...(projectId ? { projectId } : {}),
      ...Object.fromEntries(Object.entries(callbacks).map(([name, callback]) => [name, guard(callback)])),
    });
    if (before) client.lastEventId = before.lastEventId;
    for (const type of closeOn) client.on(type, () => (ended = true));
    setup(client, guard);
    clientRef.current = client;
    if (!held.current) client.connect();
    return () => {
      current = false;
      reached.current = { stream, lastEventId: client.lastEventId, ended };
      client.close();
      if (clientRef.current === client) clientRef.current = null;
    };
    // The callbacks and setup read the latest options through `latest`; the
    // stream is rebuilt only when where or how it connects changes.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [url, typesKey, projectId, accessToken, withCredentials, EventSource, shareAcrossTabs, shareKey]);

  const reconnect = useCallback(() => {
    held.current = false;
    const client = clientRef.current;
    if (!client) return;
    client.close();
    // A closed client starts over its attempts and resumes after its last id.
    client.connect();
  }, []);
  const disconnect = useCallback(() => {
    held.current = true;
    if (clientRef.current) clientRef.current.close();
  }, []);
  return { clientRef, reconnect, disconnect };
}

/**
 * `s` once the stream is in `connectionState`: connected again, it is rid of
 * a connection error (given up, token expired); a task's error stays.
 */
function connected(s, connectionState) {
  return connectionState === "connected" && s.error && !(s.error instanceof TaskError) ? { ...s, error: null } : s;
}

const ENDED = new Set(["completed", "failed", "cancelled"]);

/**
 * The status a `progress` event may set. An ended status waits for the
 * event that ends the stream (`complete`, `error`): a (re)connect to an
 * ended task may send the task's state before the text it missed, and a
 * page that shows "completed" must already have the whole text.
 */
function liveStatus(reported, previous) {
  if (reported == null) return previous;
  if (ENDED.has(reported)) return previous ?? "running";
  return reported;
}

/**
 * `calls` with the call `data` (a `tool_call`'s): added, or, for an id already called, replaced. A call
 * whose input was refused (`input_error`) is failed at once.
 */
function withCall(calls, data) {
  const refused = typeof data.input_error === "string";
  const call = refused
    ? { id: data.tool_call_id, name: data.tool_name, input: data.input, state: "failed", error: data.input_error }
    : { id: data.tool_call_id, name: data.tool_name, input: data.input, state: "called" };
  if (typeof data.title === "string") call.title = data.title;
  if (isPlainObject(data.tool_metadata)) call.toolMetadata = data.tool_metadata;
  const at = calls.findIndex((known) => known.id === call.id);
  return at < 0 ? [...calls, call] : calls.map((known, i) => (i === at ? call : known));
}

/**
 * `calls` with the tool's answer `data` (a `tool_result`'s) on its call; an answer to no call is left
 * out. A preliminary answer (a streaming tool's progress) shows as the output of a call still running.
 */
function withResult(calls, data) {
  return calls.map((call) => {
    if (call.id !== data.tool_call_id) return call;
    const { output, error, ...rest } = call;
    const { approvalId, ...answered } = rest;
    // As the AI SDK: the answer's toolMetadata, else the call's.
    if (isPlainObject(data.tool_metadata)) answered.toolMetadata = data.tool_metadata;
    if (data.denied === true) return { ...answered, state: "denied" };
    if (typeof data.error === "string") return { ...answered, state: "failed", error: data.error };
    return { ...answered, state: data.preliminary === true ? "called" : "done", output: data.output };
  });
}

/** `sources` with the source `data` (a `source` event's): added, or, for an id already cited, replaced. */
function withSource(sources, data) {
  const source = { id: data.source_id };
  for (const [ours, theirs] of [["url", "url"], ["title", "title"], ["media_type", "mediaType"], ["filename", "filename"]]) {
    if (typeof data[ours] === "string") source[theirs] = data[ours];
  }
  const at = sources.findIndex((known) => known.id === source.id);
  return at < 0 ? [...sources, source] : sources.map((known, i) => (i === at ? source : known));
}

/**
 * `parts` with the data part `data` (a `data_part` event's), as the AI SDK keeps them: one of the
 * same name and id replaces the data in place; one without id is added; a transient one is not kept.
 */
function withDataPart(parts, data) {
  if (data.transient === true) return parts;
  const part = { name: data.name, data: data.data };
  if (typeof data.id === "string") part.id = data.id;
  const at = part.id === undefined ? -1 : parts.findIndex((known) => known.name === part.name && known.id === part.id);
  return at < 0 ? [...parts, part] : parts.map((known, i) => (i === at ? part : known));
}

/** Whether the model asked for the call `id`. */
function hasCall(calls, id) {
  return calls.some((call) => call.id === id);
}

/** `calls` with the call `data` names (a `tool_approval`'s) waiting for a person's approval. */
function withApproval(calls, data) {
  return calls.map((call) =>
    call.id === data.tool_call_id ? { ...call, state: "approval-requested", approvalId: data.approval_id } : call,
  );
}

/** A steering message's part as the AI SDK names its fields. */
function steeringPieceOf(piece) {
  const part = { type: piece.type };
  for (const [ours, theirs] of [["text", "text"], ["media_type", "mediaType"], ["url", "url"], ["filename", "filename"]]) {
    if (typeof piece[ours] === "string") part[theirs] = piece[ours];
  }
  if (isPlainObject(piece.provider_metadata)) part.providerMetadata = piece.provider_metadata;
  return part;
}

/** A citation as a `text_end` event says it, as the AI SDK names its fields; `textPart` its part's index. */
function citationOf(data, textPart) {
  const citation = { textPart, source: withSource([], data.source || {})[0] };
  for (const [ours, theirs] of [["start_index", "startIndex"], ["end_index", "endIndex"], ["cited_text", "citedText"]]) {
    if (data[ours] !== undefined) citation[theirs] = data[ours];
  }
  return citation;
}

/**
 * The state after a `text_end` (`end` its data): the open part ends, with the sources it cites
 * (a part that holds no text yet begins, empty, for them, as in the AI SDK's message).
 */
function withTextEnd(state, end) {
  // Citations said, even none, keep the part: the AI SDK's message keeps `citations: []`.
  if (!end || !Array.isArray(end.citations)) return { ...state, textPartEnded: true };
  const cited = end.citations.filter(isPlainObject);
  const textParts = state.textParts.length && !state.textPartEnded ? state.textParts : [...state.textParts, ""];
  const at = textParts.length - 1;
  return { ...state, textParts, textPartEnded: true, citations: [...state.citations, ...cited.map((c) => citationOf(c, at))] };
}

/** The text's parts after `delta`: appended to the last, or a new one after a part's end. */
function withText(state, delta) {
  const parts = state.textParts;
  if (!parts.length || state.textPartEnded) return [...parts, delta];
  return [...parts.slice(0, -1), parts[parts.length - 1] + delta];
}

function isPlainObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/**
 * `over` merged into `base` as the AI SDK merges a message's metadata
 * (`mergeObjects`): objects deeply, anything else (arrays too) replaced.
 */
function mergeMetadata(base, over) {
  const merged = { ...base };
  for (const [key, value] of Object.entries(over)) {
    if (key === "__proto__" || key === "constructor" || key === "prototype") continue;
    merged[key] = isPlainObject(value) && isPlainObject(base[key]) ? mergeMetadata(base[key], value) : value;
  }
  return merged;
}

/** A task's answer before anything of it came (or after a `replay_reset`). */
function noAnswer() {
  return {
    text: "",
    textParts: [],
    // A `text_end` came: the next text begins a part of its own.
    textPartEnded: false,
    reasoning: "",
    toolCalls: [],
    sources: [],
    // The sources each text part cites, where (`textPart`: its index in `textParts`).
    citations: [],
    files: [],
    // Files the model made in its reasoning, and content only its provider knows.
    reasoningFiles: [],
    customParts: [],
    // What a person said into the running agent (steering messages), in order.
    steeringMessages: [],
    dataParts: [],
    steps: [],
    // What the app said of the message, merged (null until it says something).
    messageMetadata: null,
  };
}

function initialTask(key) {
  return {
    key,
    ...noAnswer(),
    progress: 0,
    status: null,
    stage: null,
    message: null,
    task: null,
    result: null,
    error: null,
    connectionState: "idle",
  };
}

/**
 * Follows the task `taskId` on `/tasks/{taskId}/events`: its text (the
 * deltas appended in order; on a (re)connect the broker sends what was
 * missed), the model's reasoning the same way (`reasoning`, apart from the
 * answer), progress, status and the connection. The stream ends, without
 * reconnecting, at the task's `complete` or `error` (failed or cancelled);
 * `error` then holds a TaskError. A network error is not a task error: the
 * stream reconnects (`autoReconnect`) with backoff, resuming after the last
 * event id, and after `maxReconnectAttempts` failures in a row it goes
 * `offline` and `error` holds that connection error. A falsy `taskId`
 * opens nothing; a new one starts over; unmounting closes the stream.
 */
export function useTaskStream(taskId, options = {}) {
  const key = taskId ? `${options.baseUrl || ""}|${taskId}` : null;
  const [state, setState] = useState(() => initialTask(key));
  const ended = useRef(false);
  // Each update starts from a fresh state when the task changed, so a new
  // task never shows the previous one's text, even for one render.
  const update = useCallback((change) => setState((s) => change(s.key === key ? s : initialTask(key))), [key]);

  const url = taskId ? streamUrl(options.baseUrl, `/tasks/${encodeURIComponent(taskId)}/events`) : null;
  const { reconnect: reconnectStream, disconnect } = useSseClient(url, options, {
    closeOn: ["complete", "error"],
    callbacks: {
      onStateChange: (_, connectionState) => update((s) => ({ ...connected(s, connectionState), connectionState })),
      onConnect: (opts, data) => opts.onConnect && opts.onConnect(data),
      onDisconnect: (opts, info) => opts.onDisconnect && opts.onDisconnect(info),
      onProgress: (opts, task) => {
        if (task && typeof task === "object") {
          update((s) => ({
            ...s,
            task,
            progress: typeof task.progress === "number" ? task.progress : s.progress,
            status: liveStatus(task.status, s.status),
            stage: task.stage ?? null,
            message: task.message ?? null,
          }));
        }
        if (opts.onProgress) opts.onProgress(task);
      },
      onText: (_, delta) => {
        if (typeof delta === "string" && delta) {
          update((s) => ({ ...s, text: s.text + delta, textParts: withText(s, delta), textPartEnded: false }));
        }
      },
      onTextEnd: (_, end) => update((s) => withTextEnd(s, end)),
      // What ends the open part of text where the UI message stream ends
      // it (thinking, a tool event, a step's end), so `textParts` are the
      // parts `useChat` shows.
      onReasoning: (_, delta) => {
        if (typeof delta === "string" && delta) {
          update((s) => ({ ...s, reasoning: s.reasoning + delta, textPartEnded: true }));
        }
      },
      onToolCall: (_, call) => {
        if (call && typeof call.tool_call_id === "string") {
          update((s) => ({ ...s, toolCalls: withCall(s.toolCalls, call), textPartEnded: true }));
        }
      },
      // An answer or approval for a call never made is no part of the
      // message (the UI message stream leaves it out): nothing ends.
      onToolApproval: (_, approval) => {
        if (approval && typeof approval.tool_call_id === "string") {
          update((s) => ({
            ...s,
            toolCalls: withApproval(s.toolCalls, approval),
            textPartEnded: s.textPartEnded || hasCall(s.toolCalls, approval.tool_call_id),
          }));
        }
      },
      onToolResult: (_, answer) => {
        if (answer && typeof answer.tool_call_id === "string") {
          update((s) => ({
            ...s,
            toolCalls: withResult(s.toolCalls, answer),
            textPartEnded: s.textPartEnded || hasCall(s.toolCalls, answer.tool_call_id),
          }));
        }
      },
      onSource: (_, source) => {
        if (source && typeof source.source_id === "string") update((s) => ({ ...s, sources: withSource(s.sources, source) }));
      },
      onFile: (_, file) => {
        if (!file || typeof file.url !== "string") return;
        const made = { url: file.url, mediaType: file.media_type };
        if (file.reasoning === true) update((s) => ({ ...s, reasoningFiles: [...s.reasoningFiles, made] }));
        else update((s) => ({ ...s, files: [...s.files, made] }));
      },
      onSteeringMessage: (_, steering) => {
        if (!steering || typeof steering.id !== "string" || !Array.isArray(steering.parts)) return;
        const message = { id: steering.id, parts: steering.parts.filter(isPlainObject).map(steeringPieceOf) };
        update((s) => ({ ...s, steeringMessages: [...s.steeringMessages, message] }));
      },
      onCustomPart: (_, custom) => {
        if (!custom || typeof custom.kind !== "string") return;
        const part = { kind: custom.kind };
        if (isPlainObject(custom.provider_metadata)) part.providerMetadata = custom.provider_metadata;
        update((s) => ({ ...s, customParts: [...s.customParts, part] }));
      },
      onDataPart: (opts, part) => {
        if (!part || typeof part.name !== "string") return;
        update((s) => ({ ...s, dataParts: withDataPart(s.dataParts, part) }));
        if (opts.onData) opts.onData(part);
      },
      onStepEnd: (_, step) => {
        const result = step && typeof step === "object" ? step.result ?? null : null;
        update((s) => ({ ...s, steps: [...s.steps, result], textPartEnded: true }));
      },
      onMessageMetadata: (opts, said) => {
        const metadata = said && said.metadata;
        if (!isPlainObject(metadata)) return;
        // The first is taken whole, as the AI SDK takes it.
        update((s) => ({ ...s, messageMetadata: s.messageMetadata ? mergeMetadata(s.messageMetadata, metadata) : { ...metadata } }));
        if (opts.onMessageMetadata) opts.onMessageMetadata(metadata);
      },
      // The task's end (a TaskError), or the connection given up on or its
      // token expired (an Error): SseClient reports no other.
      onError: (opts, error, data) => {
        if (error instanceof TaskError) {
          ended.current = true;
          update((s) => ({ ...s, error, status: error.status || (error.cancelled ? "cancelled" : "failed") }));
        } else {
          update((s) => ({ ...s, error }));
        }
        if (opts.onError) opts.onError(error, data);
      },
    },
    setup: (client, guard) => {
      ended.current = false;
      // The broker no longer knew the resume point (its store was replaced):
      // the task's whole text comes again, so what was shown goes.
      client.on(
        "replay_reset",
        guard(() =>
          update((s) => ({ ...s, ...noAnswer() })),
        ),
      );
      client.on(
        "complete",
        guard((_, data) => {
          ended.current = true;
          const result = data && typeof data === "object" ? data.result ?? null : null;
          update((s) => ({ ...s, status: "completed", progress: 100, result }));
        }),
      );
    },
  });

  const reconnect = useCallback(() => {
    // After `complete` or `error` nothing more will come: a new stream would
    // only be answered 204 and retried.
    if (!ended.current) reconnectStream();
  }, [reconnectStream]);

  const current = state.key === key ? state : initialTask(key);
  return {
    text: current.text,
    textParts: current.textParts,
    reasoning: current.reasoning,
    toolCalls: current.toolCalls,
    sources: current.sources,
    citations: current.citations,
    files: current.files,
    reasoningFiles: current.reasoningFiles,
    customParts: current.customParts,
    steeringMessages: current.steeringMessages,
    dataParts: current.dataParts,
    steps: current.steps,
    messageMetadata: current.messageMetadata,
    progress: current.progress,
    status: current.status,
    stage: current.stage,
    message: current.message,
    task: current.task,
    result: current.result,
    error: current.error,
    connectionState: current.connectionState,
    isConnected: current.connectionState === "connected",
    reconnect,
    disconnect,
  };
}

function initialEvents(key) {
  return {
    key,
    events: [],
    lastEvent: null,
    text: "",
    progress: null,
    status: null,
    error: null,
    connectionState: "idle",
  };
}

/** `value` as a list of event types: an array, or a comma-separated string. */
function typeList(value) {
  if (value == null || value === "") return undefined;
  const list = (Array.isArray(value) ? value : String(value).split(",")).map((type) => String(type).trim()).filter(Boolean);
  return list.length ? list : undefined;
}

/**
 * Follows `GET /sse/events` with the query `query` (`event_types`, an array
 * or a comma-separated string, `project_id`, any other parameter of the
 * stream); `null` opens nothing. Returns the events received (the last
 * `maxEvents`, oldest first, each `{ type, data, lastEventId }`) and the
 * last one; `progress`, `status` and `text` follow the `progress`,
 * `progress_update`, `text`, `complete` and `error` events among them, of
 * whichever tasks the filter lets through. A task's `error` event is one more
 * event here, not this stream's error: `error` is only a connection given up
 * on or an expired token. Reconnects like useTaskStream, without end.
 */
export function useEventStream(query, options = {}) {
  const params = new URLSearchParams();
  let eventTypes;
  let projectId;
  if (query) {
    for (const name of Object.keys(query).sort()) {
      const value = query[name];
      if (value == null) continue;
      // SseClient sends these two itself, and must know the types to listen to them.
      if (name === "event_types") eventTypes = typeList(value);
      else if (name === "project_id") projectId = String(value);
      else params.set(name, Array.isArray(value) ? value.join(",") : String(value));
    }
  }
  const search = params.toString();
  const url = query ? streamUrl(options.baseUrl, `/sse/events${search ? `?${search}` : ""}`) : null;
  const key = url === null ? null : `${url}|${eventTypes ? eventTypes.join(",") : ""}|${projectId || ""}`;
  const [state, setState] = useState(() => initialEvents(key));
  const update = useCallback((change) => setState((s) => change(s.key === key ? s : initialEvents(key))), [key]);

  const { reconnect, disconnect } = useSseClient(url, options, {
    closeOn: [],
    eventTypes,
    projectId,
    callbacks: {
      onStateChange: (_, connectionState) => update((s) => ({ ...connected(s, connectionState), connectionState })),
      onConnect: (opts, data) => opts.onConnect && opts.onConnect(data),
      onDisconnect: (opts, info) => opts.onDisconnect && opts.onDisconnect(info),
      onProgress: (opts, data) => opts.onProgress && opts.onProgress(data),
      onError: (opts, error, data) => {
        update((s) => ({ ...s, error }));
        if (opts.onError) opts.onError(error, data);
      },
    },
    setup: (client, guard) => {
      const record = (type) =>
        guard((opts, data, event) => {
          const entry = { type, data, lastEventId: event.lastEventId || null };
          const max = opts.maxEvents ?? DEFAULT_OPTIONS.maxEvents;
          update((s) => {
            const next = { ...s, events: [...s.events, entry].slice(-Math.max(1, max)), lastEvent: entry };
            if (data && typeof data === "object") {
              if ((type === "progress" || type === "progress_update") && typeof data.progress === "number") {
                next.progress = data.progress;
              }
              if (type === "text" && typeof data.delta === "string") next.text = s.text + data.delta;
              if (typeof data.status === "string") next.status = data.status;
            }
            return next;
          });
        });
      const listening = new Set();
      // EventSource surfaces only the named events listened to, and the
      // broker names every event by its type: listen to each type the
      // stream carries, which its `connected` frame lists (all of them
      // when the query names none).
      const listen = (types) => {
        for (const type of types || []) {
          if (listening.has(type)) continue;
          listening.add(type);
          client.on(type, record(type));
        }
      };
      listen(eventTypes);
      const follow = (data) => listen(data && data.event_types);
      client.on("connected", follow);
      client.on("subscription_updated", follow);
    },
  });


  const current = state.key === key ? state : initialEvents(key);
  return {
    events: current.events,
    lastEvent: current.lastEvent,
    text: current.text,
    progress: current.progress,
    status: current.status,
    error: current.error,
    connectionState: current.connectionState,
    isConnected: current.connectionState === "connected",
    reconnect,
    disconnect,
  };
}
