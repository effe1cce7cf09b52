// sse-broker browser client: the requests a stream's client makes beside
// its EventSource (imported by /client.js): a ticket before a connect, the
// stored history a rejoining tab missed, why a stream was refused, and a
// fresh token for a live stream. Each takes the client's options
// (`fetch`, `accessToken`, `getToken`, `withCredentials`, filters).

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
 * `accessToken` may be a function, called each time (a renewed token).
 */
export async function fetchTicket(url, accessToken, fetchImpl = globalThis.fetch) {
  const token = typeof accessToken === "function" ? await accessToken() : accessToken;
  const response = await fetchImpl(url, { method: "POST", headers: { Authorization: `Bearer ${token}` } });
  if (!response.ok) throw new Error(`the ticket request answered ${response.status}`);
  const body = await response.json();
  return body.ticket;
}

/**
 * Reads the stored events after `after` that a general stream
 * (`…/sse/events`) with these filters carries, from `/sse/history`, a page
 * at a time, each as `onEvent({kind: "event", type, data, lastEventId})`,
 * while `wanted()` holds. Null where there is no history to read: a task's
 * stream, or no `fetch`.
 */
export function readStoredEvents(streamUrl, after, options, onEvent, wanted) {
  const fetchImpl = options.fetch || globalThis.fetch;
  const stream = new URL(streamUrl, pageBase());
  if (!fetchImpl || !stream.pathname.endsWith("/sse/events")) return null;
  const { eventTypes, projectId, accessToken, getToken } = options;
  const page = (from) => {
    const url = new URL(stream.pathname.replace(/\/sse\/events$/, "/sse/history"), stream);
    url.searchParams.set("after", from);
    url.searchParams.set("limit", "1000");
    if (eventTypes && eventTypes.length) url.searchParams.set("event_types", eventTypes.join(","));
    if (projectId) url.searchParams.set("project_id", projectId);
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
        if (isPassing(status, options)) {
          const retryAfter = Number(response.headers && response.headers.get("Retry-After"));
          return { retryAfterMs: retryAfter > 0 ? retryAfter * 1000 : undefined, unauthorized: status === 401 };
        }
        const body = await response.json().catch(() => null);
        const error = (body && body.error) || {};
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
        if (!response.ok) throw new Error(`token renewal answered ${response.status}`);
        return token;
      }),
    );
}
