// sse-broker browser client: the requests a stream's client makes beside
// its EventSource (imported by /client.js): a ticket before a connect, the
// stored history a rejoining tab missed, why a stream was refused (and the
// StreamRefusedError that says so), and a fresh token for a live stream;
// and the stream's filter, which the stream and the history share. Each
// takes the client's options (`fetch`, `accessToken`, `getToken`,
// `withCredentials`, filters).

/** The page's address, against which relative stream URLs resolve. */
export function pageBase() {
  return typeof location !== "undefined" ? location.href : "http://localhost/";
}

function credentials(options) {
  return options.withCredentials ? "include" : "same-origin";
}

/**
 * Asks the broker for a stream ticket (`POST /sse/tickets`), the token sent
 * in a header: `getTicket: () => fetchTicket("/sse/tickets", token)`.
 * `accessToken` may be a function, called each time (a renewed token). A
 * refusal rejects with a StreamRefusedError carrying the broker's status
 * and reason (`the ticket request answered 401: the token has expired`),
 * which the client reports when it gives up, or at once when no retry can
 * pass (403: no `subscribe` scope).
 */
export async function fetchTicket(url, accessToken, fetchImpl = globalThis.fetch) {
  const token = typeof accessToken === "function" ? await accessToken() : accessToken;
  const response = await fetchImpl(url, { method: "POST", headers: { Authorization: `Bearer ${token}` } });
  if (!response.ok) {
    const body = await Promise.resolve()
      .then(() => response.json())
      .catch(() => null);
    const { code, message } = (body && body.error) || {};
    const said = `the ticket request answered ${response.status}${message ? `: ${message}` : ""}`;
    throw new StreamRefusedError(response.status, code, said);
  }
  const body = await response.json();
  return body.ticket;
}

/**
 * The query parameters of a stream's filter that `/sse/history` takes too
 * (the broker's `StreamQuery` and `HistoryQuery`).
 */
const FILTER_PARAMS = ["event_types", "project_id", "user_id"];

/**
 * A stream's URL with its filter and nothing else (no credentials, no
 * resume id): the URL's own query, then the options' `eventTypes` and
 * `projectId`, then `subscribed`, the filter the broker last reported in
 * `subscription_updated` (see `subscribedFilter`): a `POST /sse/subscribe`
 * changed the stream's filter, and a reconnect must keep it.
 */
export function filteredStreamUrl(streamUrl, { eventTypes, projectId }, subscribed) {
  const url = new URL(streamUrl, pageBase());
  if (eventTypes && eventTypes.length) url.searchParams.set("event_types", eventTypes.join(","));
  if (projectId) url.searchParams.set("project_id", projectId);
  for (const [name, value] of Object.entries(subscribed || {})) {
    if (value) url.searchParams.set(name, value);
    else url.searchParams.delete(name);
  }
  return url;
}

/**
 * The filter a `subscription_updated` frame reports (`{connection_id,
 * event_types, project_id}`), merged over `previous`, as query parameters:
 * a null value drops the parameter (no project, or every type).
 */
export function subscribedFilter(data, previous) {
  if (!data || typeof data !== "object") return previous;
  const filter = { ...previous };
  if (Array.isArray(data.event_types)) {
    filter.event_types = data.event_types.filter((type) => typeof type === "string" && type).join(",") || null;
  }
  if ("project_id" in data) {
    filter.project_id = typeof data.project_id === "string" && data.project_id ? data.project_id : null;
  }
  return filter;
}

/**
 * Reads the stored events after `after` that a general stream
 * (`…/sse/events`, its filter in its query: see `filteredStreamUrl`)
 * carries, from `/sse/history`, a page at a time, each as
 * `onEvent({kind: "event", type, data, lastEventId})`, while `wanted()`
 * holds. Null where there is no history to read: a task's stream, or no
 * `fetch`. Rejects, without asking, a client with `getTicket` and no token:
 * /sse/history takes no ticket, and a page that needs tickets is taken to
 * have no cookie (the caller's fallback, a stream of its own, loses
 * nothing either way).
 */
export function readStoredEvents(streamUrl, after, options, onEvent, wanted) {
  const fetchImpl = options.fetch || globalThis.fetch;
  const stream = new URL(streamUrl, pageBase());
  if (!fetchImpl || !stream.pathname.endsWith("/sse/events")) return null;
  const { accessToken, getToken, getTicket } = options;
  if (getTicket && !accessToken && !getToken) {
    return Promise.reject(new Error("no credentials for /sse/history: only getTicket"));
  }
  const page = (from) => {
    const url = new URL(stream.pathname.replace(/\/sse\/events$/, "/sse/history"), stream);
    // Exactly the stream's filter: another type or project is not this stream's.
    for (const name of FILTER_PARAMS) {
      if (stream.searchParams.has(name)) url.searchParams.set(name, stream.searchParams.get(name));
    }
    url.searchParams.set("after", from);
    url.searchParams.set("limit", "1000");
    return Promise.resolve(getToken ? getToken() : accessToken).then((token) =>
      fetchImpl(url.toString(), {
        headers: token ? { Authorization: `Bearer ${token}` } : {},
        credentials: credentials(options),
      }).then((response) => {
        if (!response.ok) throw new Error(`history answered ${response.status}`);
        return response.json();
      }),
    );
  };
  const next = (from) =>
    page(from).then((body) => {
      if (!wanted()) return undefined;
      for (const event of body.events || []) {
        onEvent({ kind: "event", type: event.event_type, data: JSON.stringify(event.data), lastEventId: String(event.id) });
      }
      return body.next_after != null ? next(body.next_after) : undefined;
    });
  return next(after);
}

/**
 * The broker refused to open the stream: an HTTP error answer, which
 * `EventSource` cannot read, so the client asks again with `fetch` to learn
 * it. `status` is the HTTP status, `code` the broker's error code
 * (`task_not_found`, `forbidden`, `invalid_last_event_id`, …).
 */
export class StreamRefusedError extends Error {
  constructor(status, code, message) {
    super(message || `the broker refused the stream (HTTP ${status})`);
    this.name = "StreamRefusedError";
    this.status = status;
    this.code = code || null;
  }
}

/**
 * A `getTicket` failure a later call may not meet: a refusal that may pass
 * as a stream's may (401: the app's token function may give a fresh token;
 * 408, 429, 5xx), or a failure without a status (the network, the app's
 * own code): retried like a lost connection.
 */
export function isPassingTicketFailure(error, options) {
  return !(error instanceof StreamRefusedError) || isPassing(error.status, options);
}

/** Refusals that a later attempt may not meet: retried like a lost connection. */
function isPassing(status, options) {
  if (status === 401) return Boolean(options.getTicket || options.getToken);
  return status === 408 || status === 429 || status >= 500;
}

/**
 * Opens a refused stream's URL again with `fetch`, only to read what
 * `EventSource` cannot: the refusal's status and error body. Resolves to a
 * verdict: `{opens: true}` (whatever refused it has passed), `{ended:
 * true}` (204: nothing more to stream), `{retryAfterMs, unauthorized}` (a
 * refusal that may pass: 429, 503, 401 with a way to a fresh token), or `{status, code,
 * message}` (one that will not: a bad id, an unknown task, a forbidden
 * project); null when `current()` no longer holds.
 */
export function askWhyRefused(streamUrlFor, options, current) {
  const fetchImpl = options.fetch || globalThis.fetch;
  const abort = typeof AbortController === "function" ? new AbortController() : null;
  return (
    Promise.resolve()
      // A refused stream may have spent its ticket: the question needs one.
      .then(() => (options.getTicket ? options.getTicket() : null))
      .then((ticket) => {
        if (!current()) return null;
        const init = { headers: { Accept: "text/event-stream" }, credentials: credentials(options), signal: abort && abort.signal };
        return fetchImpl(streamUrlFor(ticket), init);
      })
      .then(async (response) => {
        if (!response || !current()) return null;
        const { status } = response;
        if (status === 200) {
          if (abort) abort.abort();
          return { opens: true };
        }
        if (status === 204) return { ended: true };
        const body = await response.json().catch(() => null);
        const error = (body && body.error) || {};
        if (isPassing(status, options)) {
          const retryAfter = Number(response.headers && response.headers.get("Retry-After"));
          return {
            retryAfterMs: retryAfter > 0 ? retryAfter * 1000 : undefined,
            unauthorized: status === 401,
            // Named should the client give up: "too many streams" is not the network.
            refusal: new StreamRefusedError(status, error.code, error.message),
          };
        }
        return { status, code: error.code, message: error.message };
      })
  );
}

/**
 * Sends the app's fresh token for a live stream
 * (`POST /sse/connections/{id}/token`); resolves to the token sent.
 */
export function renewStreamToken(streamUrl, connectionId, options) {
  const fetchImpl = options.fetch || globalThis.fetch;
  const stream = new URL(streamUrl, pageBase());
  // The broker may sit under a path prefix: keep what comes before /sse/ or /tasks/.
  const cut = stream.pathname.search(/\/(sse|tasks)\//);
  const prefix = cut >= 0 ? stream.pathname.slice(0, cut) : "";
  const url = new URL(`${prefix}/sse/connections/${encodeURIComponent(connectionId)}/token`, stream);
  return Promise.resolve()
    .then(() => options.getToken())
    .then((token) =>
      fetchImpl(url.toString(), {
        method: "POST",
        headers: { Authorization: `Bearer ${token}` },
        credentials: credentials(options),
      }).then((response) => {
        if (!response.ok) {
          const error = new Error(`token renewal answered ${response.status}`);
          error.status = response.status;
          const retryAfter = Number(response.headers?.get?.("Retry-After"));
          error.retryAfter = Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : 1;
          throw error;
        }
        return token;
      }),
    );
}
