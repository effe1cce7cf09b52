// How an application uses /client.js and /react.js in TypeScript, written
// against the served declarations (src/http/assets/client.d.ts and
// react.d.ts). Never run: tests/js/types.test.mjs compiles it with
// `tsc --noEmit --strict`. Each `@ts-expect-error` is a misuse the
// declarations must refuse: if a declaration loosens (an `any`, a missing
// field), the directive goes unused and the compile fails.

import {
  SseClient,
  TaskStream,
  TaskError,
  StreamRefusedError,
  State,
  backoffDelay,
  isServerEvent,
  type ConnectionState,
  type DisconnectInfo,
  type TaskSnapshot,
  type FinishReason,
} from "../../../src/http/assets/client.js";
import {
  DEFAULT_OPTIONS,
  useEventStream,
  useTaskStream,
  type EventStreamResult,
  type GenerationResult,
  type ReceivedEvent,
  type TaskStatus,
  type TaskStreamResult,
} from "../../../src/http/assets/react.js";

/** True when A and B are the same type (not merely assignable). */
type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assertType<T extends true>(): T | void {}

// --- /client.js ---------------------------------------------------------

const client = new SseClient("/sse/events", {
  eventTypes: ["commit"],
  projectId: "p1",
  reconnectDelay: 500,
  maxReconnectAttempts: 5,
  onConnect: ({ connection_id, event_types }) => console.log(connection_id.toUpperCase(), event_types.length),
  onDisconnect: ({ reason, willReconnect, delay }: DisconnectInfo) => console.log(reason, willReconnect, delay ?? 0),
  onStateChange: (state, previous) => console.log(previous, "→", state),
  onProgress: (task) => console.log(task.progress, task.stage),
  onText: (delta) => console.log(delta.length),
  onToolCall: (call) => console.log(call.tool_call_id, call.tool_name, call.input),
  onToolResult: (answer) => console.log(answer.tool_call_id, answer.output ?? answer.error?.toUpperCase()),
  onToolApproval: (approval) => console.log(approval.tool_call_id, approval.approval_id.length),
  onTextEnd: (end) => console.log(end.task_id, end.citations?.map((c) => `${c.source.source_id} ${c.cited_text ?? ""} ${c.start_index ?? 0}`)),
  onFile: (file) => console.log(file.reasoning === true ? "thought" : "made", file.media_type),
  onCustomPart: (part) => console.log(part.kind.split(".")[0], part.provider_metadata),
  onSteeringMessage: (said) => console.log(said.id, said.parts.map((p) => (p.type === "text" ? p.text : `${p.media_type} ${p.url}`))),
  onReasoningEnd: (end) => console.log(end.task_id),
  onStepEnd: (step) => console.log(step.task_id, step.result?.finish_reason, step.result?.usage?.output_tokens),
  onError: (error, data) => console.log(error.message, data?.status),
});
const off: () => boolean = client.on<{ sha: string }>("commit", (data, event) => console.log(data.sha, event.lastEventId));
off();
const connected: SseClient = client.connect();
connected.close();
const state: ConnectionState = client.state;
assertType<Equals<ConnectionState, "idle" | "connecting" | "connected" | "reconnecting" | "offline" | "closed">>();
assertType<Equals<typeof State.OFFLINE, "offline">>();
const lastId: string | null = client.lastEventId;
const connectionId: string | null = client.connectionId;
const delay: number = backoffDelay(2, { reconnectDelay: 1000 }, () => 0.5);
const elsewhere = new TaskStream("gen-1", { baseUrl: "https://sse.example.com" });
console.log(elsewhere.taskId);
const stream = new TaskStream("gen-1", { onError: (error) => (error instanceof TaskError ? error.cancelled : false) });
const taskId: string = stream.taskId;
const failure = new TaskError({ status: "failed", error: "boom" });
const cancelled: boolean = failure.cancelled;
const failedStatus: "failed" | "cancelled" | undefined = failure.status;
declare const someEvent: Event;
if (isServerEvent(someEvent)) {
  const data: string = someEvent.data;
  console.log(data);
}
const snapshot: TaskSnapshot = { task_id: "gen-1", status: "running", progress: 5, stage: null };
console.log(state, lastId, connectionId, delay, taskId, cancelled, failedStatus, snapshot);

// @ts-expect-error a stream needs its URL
new SseClient();
// @ts-expect-error no such state
console.log(State.OPEN);
// @ts-expect-error eventTypes is a list
new SseClient("/sse/events", { eventTypes: "commit" });
// Tickets alone say nothing about whose stream it is: tabs share by key.
new SseClient("/sse/events", { getTicket: () => "ticket", shareKey: "user-42" });
// @ts-expect-error the key is a string (an id)
new SseClient("/sse/events", { getTicket: () => "ticket", shareKey: 42 });
new SseClient("/tasks/gen-1/events", {
  onProgress: (task) => {
    // @ts-expect-error the data of a progress event is a task: its progress is a number
    const wrongProgress: string | undefined = task.progress;
    console.log(wrongProgress);
  },
});

// --- /react.js ------------------------------------------------------------

export function Answer(taskId: string | null) {
  const generation: TaskStreamResult = useTaskStream(taskId, {
    autoReconnect: true,
    maxReconnectAttempts: 3,
    reconnectDelay: 2000,
    baseUrl: "https://broker.example.com",
    withCredentials: true,
    onProgress: (task) => console.log(task.progress ?? 0, task.status),
    onError: (error, data) => {
      if (error instanceof TaskError) console.log(error.cancelled, data?.error);
      else console.log("connection", error.message);
    },
    onConnect: ({ connection_id }) => console.log(connection_id),
    onDisconnect: ({ willReconnect }) => console.log(willReconnect),
  });
  const { text, progress, status, error, isConnected, reconnect, disconnect, connectionState, stage, result } = generation;
  const shown: string = text.trim();
  const thinking: string = generation.reasoning;
  const paragraphs: string[] = generation.textParts;
  const footnotes: string[] = generation.citations.map(
    (c) => `${paragraphs[c.textPart] ?? ""} [${c.source.url ?? c.source.title ?? c.source.id}] ${c.citedText ?? ""} ${c.startIndex ?? 0}-${c.endIndex ?? 0}`,
  );
  const sketches: string[] = generation.reasoningFiles.map((file) => `${file.mediaType} ${file.url}`);
  const providerKinds: string[] = generation.customParts.map((part) => `${part.kind} ${Object.keys(part.providerMetadata ?? {})}`);
  const steered: string[] = generation.steeringMessages.map(
    (m) => `${m.id}: ${m.parts.map((p) => (p.type === "text" ? p.text : `${p.mediaType} ${p.filename ?? ""}`)).join(" ")}`,
  );
  console.log(footnotes, sketches, providerKinds, steered);
  const tools: string[] = generation.toolCalls.map((call) =>
    call.state === "failed" ? `${call.name}: ${call.error ?? ""}` : `${call.name} ${call.state}`,
  );
  console.log(tools);
  const tokens: number = generation.steps.reduce((sum, step) => sum + (step?.usage?.output_tokens ?? 0), 0);
  const lastReason: FinishReason | undefined = generation.steps[0]?.finish_reason;
  console.log(tokens, lastReason);
  const bar: number = Math.round(progress);
  assertType<Equals<typeof status, TaskStatus | null>>();
  assertType<Equals<TaskStatus, "pending" | "running" | "completed" | "failed" | "cancelled">>();
  const failedMessage: string | undefined = error?.message;
  const busy: boolean = isConnected && (status === "running" || status === "pending");
  const again: void = reconnect();
  const stop: void = disconnect();
  const badge: ConnectionState = connectionState;
  const stageName: string | null = stage;
  console.log(shown, thinking, paragraphs, bar, failedMessage, busy, again, stop, badge, stageName, result);
  // A generation piped from a provider: why it stopped, what it cost.
  const ending = result as GenerationResult | null;
  const cutOff: boolean = ending?.finish_reason === "length";
  const billed: number | undefined = ending?.usage?.output_tokens;
  console.log(cutOff, billed);
  // @ts-expect-error a finish reason is in the AI SDK's words
  const providersWord: GenerationResult = { finish_reason: "max_tokens" };
  console.log(providersWord);

  // @ts-expect-error the text is a string
  const textAsNumber: number = generation.text;
  // @ts-expect-error a status is one of the task statuses
  const wrongStatus: typeof status = "done";
  // @ts-expect-error options are checked: autoReconnect is a boolean
  useTaskStream("gen-1", { autoReconnect: "yes" });
  // @ts-expect-error no such option
  useTaskStream("gen-1", { reconnectDelays: 100 });
  // @ts-expect-error the task id is a string
  useTaskStream(42);
  // @ts-expect-error onError may receive a plain Error (a lost connection), not always a TaskError
  useTaskStream("gen-1", { onError: (e: TaskError) => console.log(e.cancelled) });
  console.log(textAsNumber, wrongStatus);
  return shown;
}

export function Feed() {
  const feed: EventStreamResult = useEventStream(
    { event_types: ["commit", "risk_alert"], project_id: "p1" },
    { maxEvents: 50, autoReconnect: true, onError: (error) => console.log(error.message) },
  );
  const all = useEventStream({ event_types: "commit,risk_alert" });
  const none = useEventStream(null);
  const mine = useEventStream({}, { getTicket: async () => "ticket", shareKey: "user-42" });
  const events: ReceivedEvent[] = feed.events;
  const shas = events.filter((event) => event.type === "commit").map((event) => event.data.sha as string);
  const last: string | null = feed.lastEvent ? feed.lastEvent.lastEventId : null;
  const progress: number | null = feed.progress;
  const maxReconnectAttempts: 3 = DEFAULT_OPTIONS.maxReconnectAttempts;
  console.log(shas, last, progress, all.isConnected, none.connectionState, mine.isConnected, maxReconnectAttempts);

  // @ts-expect-error a general stream's progress may be absent
  const sure: number = feed.progress;
  // @ts-expect-error the query's types are strings
  useEventStream({ event_types: [1, 2] });
  console.log(sure);
}

// A refused stream: its status and the broker's code.
const refusing = new TaskStream("gen-2", {
  onError: (error) => {
    if (error instanceof StreamRefusedError) {
      const status: number = error.status;
      const code: string | null = error.code;
      console.log(status, code);
    }
  },
  onDisconnect: (info) => {
    if (info.reason === "refused" && !info.willReconnect) console.log("refused for good");
  },
});
refusing.connect();
// @ts-expect-error a refusal's status is a number, not a string
const badStatus: string = new StreamRefusedError(404, "task_not_found").status;
void badStatus;
