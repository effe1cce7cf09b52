//! Endpoint URLs as the OTLP variables give them (`host:port`, with or
//! without a scheme): their port, and their form fit for a log line.

/// The authority of a URL-ish endpoint (`host:port`, userinfo dropped).
fn authority(endpoint: &str) -> &str {
    let rest = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
}

pub(super) fn port(endpoint: &str) -> Option<u16> {
    let authority = authority(endpoint);
    // After an IPv6 literal's `]`, or after the host.
    let after_host = authority.rsplit_once(']').map_or(authority, |(_, p)| p);
    after_host.rsplit_once(':')?.1.parse().ok()
}

/// `endpoint` with any userinfo and query hidden: both may hold credentials.
pub(super) fn masked(endpoint: &str) -> String {
    let (scheme, rest) = endpoint
        .split_once("://")
        .map_or(("", endpoint), |(s, r)| (s, r));
    let (before_query, query) = rest
        .split_once('?')
        .map_or((rest, None), |(b, q)| (b, Some(q)));
    let end = before_query.find('/').unwrap_or(before_query.len());
    let (authority, path) = before_query.split_at(end);
    let mut out = String::new();
    if !scheme.is_empty() {
        out.push_str(scheme);
        out.push_str("://");
    }
    if let Some((_, host)) = authority.rsplit_once('@') {
        out.push_str("***@");
        out.push_str(host);
    } else {
        out.push_str(authority);
    }
    out.push_str(path);
    if query.is_some() {
        out.push_str("?***");
    }
    out
}
