//! One request head: collected until complete, held to the broker's size
//! limits while it arrives, then checked against the rules actix-http
//! enforces, so that a head passed on is one actix-http accepts.

use actix_web::http::{Method, Uri};

use super::{Framing, chunked::ChunkScan};

/// The longest path (before `?`) of a request target. No route is longer
/// than a few hundred bytes; 8 KiB is the usual server and proxy line limit.
pub const MAX_PATH_BYTES: usize = 8 * 1024;
/// The longest query string: room for an `access_token` (a JWT with a long
/// `projects` claim) and a full `event_types` list, with margin.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;
/// The header section (every line after the request line). Browsers stay
/// far below (cookies are capped at 4 KiB each); nginx's default is 32 KiB.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Header fields per request: actix-http's own ceiling, which it refuses
/// with an empty 431.
pub const MAX_HEADER_FIELDS: usize = 96;
/// The method and version around the target, and blank lines a client may
/// send between requests.
const LINE_SLACK: usize = 256;

// actix-http refuses, with an empty body, a target the `http` crate's `Uri`
// cannot hold (65,534 bytes) and a head that overflows its 128 KiB read
// buffer. The guard's limits must refuse first.
const _: () = assert!(MAX_PATH_BYTES + MAX_QUERY_BYTES < 65_534);
const _: () = assert!(MAX_PATH_BYTES + MAX_QUERY_BYTES + MAX_HEADER_BYTES + LINE_SLACK < 131_072);

/// Why the guard refused a head. The app answers each with its catalogue
/// error (`crate::error`); `token` carries it inside the synthetic request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The query string is over [`MAX_QUERY_BYTES`].
    QueryTooLong,
    /// The path is over [`MAX_PATH_BYTES`].
    PathTooLong,
    /// The header section is over [`MAX_HEADER_BYTES`].
    HeadersTooLarge,
    /// More than [`MAX_HEADER_FIELDS`] header fields.
    TooManyHeaders,
    /// The first head did not arrive in time.
    HeadTimeout,
    /// Not a valid HTTP/1.x head.
    Malformed(Malformed),
}

/// What is wrong with a malformed head, in the terms of the rule it breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    RequestLine,
    Target,
    HeaderLine,
    MissingHost,
    DuplicateHost,
    ContentLength,
    TransferEncoding,
    LengthAndEncoding,
    PostWithoutLength,
}

impl Refusal {
    const ALL: [Self; 14] = [
        Self::QueryTooLong,
        Self::PathTooLong,
        Self::HeadersTooLarge,
        Self::TooManyHeaders,
        Self::HeadTimeout,
        Self::Malformed(Malformed::RequestLine),
        Self::Malformed(Malformed::Target),
        Self::Malformed(Malformed::HeaderLine),
        Self::Malformed(Malformed::MissingHost),
        Self::Malformed(Malformed::DuplicateHost),
        Self::Malformed(Malformed::ContentLength),
        Self::Malformed(Malformed::TransferEncoding),
        Self::Malformed(Malformed::LengthAndEncoding),
        Self::Malformed(Malformed::PostWithoutLength),
    ];

    /// A stable name, carried from the guard to the app.
    pub fn token(self) -> &'static str {
        match self {
            Self::QueryTooLong => "query_too_long",
            Self::PathTooLong => "path_too_long",
            Self::HeadersTooLarge => "headers_too_large",
            Self::TooManyHeaders => "too_many_headers",
            Self::HeadTimeout => "head_timeout",
            Self::Malformed(Malformed::RequestLine) => "request_line",
            Self::Malformed(Malformed::Target) => "target",
            Self::Malformed(Malformed::HeaderLine) => "header_line",
            Self::Malformed(Malformed::MissingHost) => "missing_host",
            Self::Malformed(Malformed::DuplicateHost) => "duplicate_host",
            Self::Malformed(Malformed::ContentLength) => "content_length",
            Self::Malformed(Malformed::TransferEncoding) => "transfer_encoding",
            Self::Malformed(Malformed::LengthAndEncoding) => "length_and_encoding",
            Self::Malformed(Malformed::PostWithoutLength) => "post_without_length",
        }
    }

    pub fn from_token(token: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.token() == token)
    }
}

/// Progress through a head that is still arriving. Offsets are from the
/// head's first byte; each byte is looked at once, however the head is cut
/// into reads.
#[derive(Debug, Default)]
pub struct HeadScan {
    scanned: usize,
    /// Where the current line starts.
    line_start: usize,
    /// The end of the request line (past its `\n`), once seen.
    request_line_end: Option<usize>,
    /// In the request line: where the target starts and where its `?` is.
    target_start: Option<usize>,
    query_start: Option<usize>,
    target_end: Option<usize>,
    header_lines: usize,
}

/// What a scan found so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    /// More bytes are needed.
    Incomplete,
    /// The head is the first `len` bytes.
    Complete(usize),
    Refused(Refusal),
}

impl HeadScan {
    /// Looks at the bytes of `head` not seen yet.
    pub fn feed(&mut self, head: &[u8]) -> Scan {
        while self.scanned < head.len() {
            let at = self.scanned;
            let byte = head[at];
            self.scanned += 1;
            if self.request_line_end.is_none() {
                self.scan_request_line(at, byte);
            }
            if byte != b'\n' {
                continue;
            }
            let line = &head[self.line_start..at];
            let blank = line.is_empty() || line == b"\r";
            self.line_start = at + 1;
            match self.request_line_end {
                // Blank lines before a request are allowed (RFC 9112 §2.2).
                None if blank => self.target_start = None,
                None => self.request_line_end = Some(at + 1),
                Some(_) if blank => {
                    // The last read may have carried the head past a limit.
                    return match self.check_sizes(at + 1) {
                        Scan::Incomplete => Scan::Complete(at + 1),
                        refused => refused,
                    };
                }
                Some(_) => {
                    self.header_lines += 1;
                    if self.header_lines > MAX_HEADER_FIELDS {
                        return Scan::Refused(Refusal::TooManyHeaders);
                    }
                }
            }
        }
        self.check_sizes(head.len())
    }

    fn scan_request_line(&mut self, at: usize, byte: u8) {
        match (self.target_start, byte) {
            (None, b' ') if at > self.line_start => self.target_start = Some(at + 1),
            (Some(_), b'?') if self.query_start.is_none() && self.target_end.is_none() => {
                self.query_start = Some(at + 1);
            }
            (Some(_), b' ' | b'\r' | b'\n') if self.target_end.is_none() => {
                self.target_end = Some(at);
            }
            _ => {}
        }
    }

    /// The limits, checked on what has arrived (so an endless head is
    /// refused once it passes them, not when it ends).
    fn check_sizes(&self, received: usize) -> Scan {
        if let Some(start) = self.target_start {
            let target_end = self.target_end.unwrap_or(received);
            let path_end = self.query_start.map_or(target_end, |q| q - 1);
            if path_end - start > MAX_PATH_BYTES {
                return Scan::Refused(Refusal::PathTooLong);
            }
            if let Some(query) = self.query_start
                && target_end - query > MAX_QUERY_BYTES
            {
                return Scan::Refused(Refusal::QueryTooLong);
            }
        }
        match self.request_line_end {
            None if received > MAX_PATH_BYTES + MAX_QUERY_BYTES + LINE_SLACK => {
                Scan::Refused(Refusal::Malformed(Malformed::RequestLine))
            }
            Some(end) if received - end > MAX_HEADER_BYTES => {
                Scan::Refused(Refusal::HeadersTooLarge)
            }
            _ => Scan::Incomplete,
        }
    }
}

/// Checks a complete head the way actix-http's decoder does, and says how
/// the body after it is framed.
pub fn check(head: &[u8]) -> Result<Framing, Refusal> {
    use Malformed as M;
    let malformed = |what| Err(Refusal::Malformed(what));
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADER_FIELDS];
    let mut request = httparse::Request::new(&mut fields);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return malformed(M::RequestLine),
        Err(httparse::Error::TooManyHeaders) => return Err(Refusal::TooManyHeaders),
        Err(httparse::Error::Token | httparse::Error::Version | httparse::Error::Status) => {
            return malformed(M::RequestLine);
        }
        Err(_) => return malformed(M::HeaderLine),
    }
    let (Some(method), Some(target), Some(version)) =
        (request.method, request.path, request.version)
    else {
        return malformed(M::RequestLine);
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return malformed(M::RequestLine);
    };
    if Uri::try_from(target).is_err() {
        return malformed(M::Target);
    }
    let http11 = version == 1;
    let (mut host, mut length, mut encoding, mut chunked, mut websocket) =
        (false, None, false, false, false);
    for field in request.headers.iter() {
        let value = std::str::from_utf8(field.value).map(str::trim);
        if field.name.eq_ignore_ascii_case("host") {
            if host {
                return malformed(M::DuplicateHost);
            }
            host = true;
        } else if field.name.eq_ignore_ascii_case("content-length") {
            let parsed = value
                .ok()
                .filter(|v| !v.starts_with('+'))
                .and_then(|v| v.parse::<u64>().ok());
            match (length, parsed) {
                (None, Some(parsed)) => length = Some(parsed),
                _ => return malformed(M::ContentLength),
            }
        } else if field.name.eq_ignore_ascii_case("transfer-encoding") {
            match value {
                _ if encoding || !http11 => return malformed(M::TransferEncoding),
                Ok(v) if v.eq_ignore_ascii_case("chunked") => chunked = true,
                Ok(v) if v.eq_ignore_ascii_case("identity") => {}
                _ => return malformed(M::TransferEncoding),
            }
            encoding = true;
        } else if field.name.eq_ignore_ascii_case("upgrade") {
            websocket |= value.is_ok_and(|v| v.eq_ignore_ascii_case("websocket"));
        }
    }
    if http11 && !host {
        return malformed(M::MissingHost);
    }
    if encoding && !chunked {
        return malformed(M::TransferEncoding);
    }
    if encoding && length.is_some() {
        return malformed(M::LengthAndEncoding);
    }
    if !http11 && method == Method::POST && length.is_none() {
        return malformed(M::PostWithoutLength);
    }
    Ok(if chunked {
        Framing::Chunked(ChunkScan::default())
    } else if websocket || (method == Method::CONNECT && length.is_none()) {
        // The rest of the connection is actix-http's to read.
        Framing::PassThrough
    } else {
        match length {
            Some(remaining) if remaining > 0 => Framing::Body { remaining },
            _ => Framing::Head,
        }
    })
}

/// The method and path of a refused head, when they can be read and are
/// safe to repeat in the synthetic request (for the logs).
pub fn method_and_path(head: &[u8]) -> (&'static str, Option<&str>) {
    let line = head
        .split(|b| *b == b'\n')
        .find(|l| !l.is_empty() && *l != b"\r");
    let mut parts = line.unwrap_or_default().split(|b| *b == b' ');
    let method = match parts.next().unwrap_or_default() {
        b"GET" => "GET",
        b"HEAD" => "HEAD",
        b"POST" => "POST",
        b"PUT" => "PUT",
        b"PATCH" => "PATCH",
        b"DELETE" => "DELETE",
        b"OPTIONS" => "OPTIONS",
        _ => "GET",
    };
    let path = parts
        .next()
        .map(|target| target.split(|b| *b == b'?').next().unwrap_or_default())
        .filter(|path| path.len() <= 1024 && path.first() == Some(&b'/'))
        .and_then(|path| std::str::from_utf8(path).ok())
        .filter(|path| path.parse::<Uri>().is_ok());
    (method, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_whole(head: &[u8]) -> Scan {
        HeadScan::default().feed(head)
    }

    fn scan_bytewise(head: &[u8]) -> Scan {
        let mut scan = HeadScan::default();
        for end in 1..=head.len() {
            match scan.feed(&head[..end]) {
                Scan::Incomplete => {}
                done => return done,
            }
        }
        Scan::Incomplete
    }

    #[test]
    fn a_head_is_complete_at_its_blank_line_however_it_arrives() {
        let head = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nbody";
        assert_eq!(scan_whole(head), Scan::Complete(head.len() - 4));
        assert_eq!(scan_bytewise(head), Scan::Complete(head.len() - 4));
        let bare = b"\r\nGET / HTTP/1.1\nHost: x\n\n";
        assert_eq!(scan_bytewise(bare), Scan::Complete(bare.len()));
    }

    #[test]
    fn an_overlong_query_or_path_is_refused_before_it_ends() {
        let mut query = b"GET /sse/events?x=".to_vec();
        query.extend(std::iter::repeat_n(b'a', MAX_QUERY_BYTES + 1));
        assert_eq!(scan_whole(&query), Scan::Refused(Refusal::QueryTooLong));
        let mut path = b"GET /".to_vec();
        path.extend(std::iter::repeat_n(b'a', MAX_PATH_BYTES + 1));
        assert_eq!(scan_whole(&path), Scan::Refused(Refusal::PathTooLong));
        let mut fits = b"GET /?".to_vec();
        fits.extend(std::iter::repeat_n(b'a', MAX_QUERY_BYTES - 1));
        fits.extend(b" HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(scan_bytewise(&fits), Scan::Complete(fits.len()));
    }

    #[test]
    fn a_large_header_section_or_too_many_fields_is_refused() {
        let mut big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEADER_BYTES));
        assert_eq!(scan_whole(&big), Scan::Refused(Refusal::HeadersTooLarge));
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADER_FIELDS {
            many.extend(format!("X-{i}: 1\r\n").bytes());
        }
        assert_eq!(scan_whole(&many), Scan::Refused(Refusal::TooManyHeaders));
    }

    #[test]
    fn the_checks_follow_actix_http() {
        use Malformed as M;
        let cases: [(&[u8], Result<Framing, Refusal>); 11] = [
            (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", Ok(Framing::Head)),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n",
                Ok(Framing::Body { remaining: 5 }),
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
                Ok(Framing::Head),
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                Ok(Framing::Chunked(ChunkScan::default())),
            ),
            (b"GET / HTTP/1.1\r\n\r\n", Err(Refusal::Malformed(M::MissingHost))),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                Err(Refusal::Malformed(M::DuplicateHost)),
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n",
                Err(Refusal::Malformed(M::ContentLength)),
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
                Err(Refusal::Malformed(M::TransferEncoding)),
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                Err(Refusal::Malformed(M::LengthAndEncoding)),
            ),
            (b"POST / HTTP/1.0\r\n\r\n", Err(Refusal::Malformed(M::PostWithoutLength))),
            (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", Err(Refusal::Malformed(M::RequestLine))),
        ];
        for (head, expected) in cases {
            assert_eq!(check(head), expected, "{}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn every_refusal_survives_its_token() {
        for refusal in Refusal::ALL {
            assert_eq!(Refusal::from_token(refusal.token()), Some(refusal));
        }
        assert_eq!(Refusal::from_token("nope"), None);
    }

    #[test]
    fn a_refused_head_keeps_a_safe_method_and_path_for_the_logs() {
        assert_eq!(
            method_and_path(b"POST /sse/publish?x=1 HTTP/1.1\r\n"),
            ("POST", Some("/sse/publish"))
        );
        assert_eq!(
            method_and_path(b"BREW /pot HTTP/1.1"),
            ("GET", Some("/pot"))
        );
        assert_eq!(method_and_path(b"GET *"), ("GET", None));
    }
}
