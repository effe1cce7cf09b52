// sse-broker browser client: a check of the path between the page and the
// broker (imported and re-exported by /client.js). Proxies that buffer or
// compress text/event-stream are the usual reason a stream "works" but its
// events arrive late and in lumps; this tells the page so.

import { pageBase } from "./stream_requests.js";

/**
 * Checks the path between this page and the broker: `/sse/diagnose` sends
 * six probes 250 ms apart and a summary, and this watches when they arrive.
 * A proxy that buffers (nginx's `proxy_buffering on`, a CDN) or compresses
 * the stream delivers them in one lump. Resolves to `{ok, buffered,
 * compressed, probes, spreadMs, expectedSpreadMs, firstProbeMs, protocol:
 * {browser, broker}, hops, problems, warnings}`.
 */
export async function diagnoseConnection(url = "/sse/diagnose", { fetch: fetchImpl = globalThis.fetch, headers = {} } = {}) {
  const target = new URL(url, pageBase()).toString();
  const now = () => (typeof performance !== "undefined" ? performance.now() : Date.now());
  const started = now();
  const response = await fetchImpl(target, { headers: { Accept: "text/event-stream", ...headers }, cache: "no-store" });
  if (!response.ok) throw new Error(`the diagnosis answered ${response.status}`);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const arrivals = [];
  let buffer = "";
  let summary = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    const at = now();
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let type = "message";
      const data = [];
      for (const line of frame.split("\n")) {
        if (line.startsWith("event:")) type = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (type === "probe") arrivals.push(at);
      else if (type === "summary") summary = JSON.parse(data.join("\n"));
    }
  }
  const expected = summary ? summary.probes : 6;
  const expectedSpreadMs = (expected - 1) * (summary ? summary.interval_ms : 250);
  const spreadMs = arrivals.length > 1 ? arrivals[arrivals.length - 1] - arrivals[0] : 0;
  // Sent 1.25 s apart: arriving within half of that is a lump.
  const buffered = arrivals.length < 2 || spreadMs < expectedSpreadMs / 2;
  const encoding = response.headers.get("content-encoding");
  const compressed = Boolean(encoding && encoding !== "identity");
  const entries = typeof performance !== "undefined" && performance.getEntriesByName ? performance.getEntriesByName(target) : [];
  const entry = entries[entries.length - 1];
  const browserProtocol = (entry && entry.nextHopProtocol) || null;
  const problems = [];
  const warnings = [];
  if (buffered) {
    problems.push("something between the browser and the broker buffers the stream: events arrive in one lump (nginx: proxy_buffering off on the stream locations)");
  }
  if (compressed) problems.push(`the stream is compressed on the way (${encoding}): leave text/event-stream out of gzip`);
  if (!summary) problems.push("the diagnosis was cut short: its summary never came");
  if (browserProtocol === "http/1.1") {
    warnings.push("the browser reaches the broker over HTTP/1.1: at most six streams per origin (serve HTTP/2 over TLS)");
  }
  return {
    ok: !buffered && !compressed && Boolean(summary),
    buffered,
    compressed,
    probes: arrivals.length,
    spreadMs: Math.round(spreadMs),
    expectedSpreadMs,
    firstProbeMs: arrivals.length ? Math.round(arrivals[0] - started) : null,
    protocol: { browser: browserProtocol, broker: summary ? summary.protocol : null },
    hops: summary ? summary.hops : [],
    problems,
    warnings,
  };
}
