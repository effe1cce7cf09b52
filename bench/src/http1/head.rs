//! Response heads, and reading a whole (bounded) body after one.

use anyhow::{Context, Result, bail};
use bytes::{Buf, BytesMut};
use tokio::{io::AsyncReadExt, net::TcpStream};

use super::{
    READ_RESERVE,
    body::{BodyFraming, ChunkedDecoder},
};

/// A response head larger than this is refused.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The parts of a response head the bench uses.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: u16,
    pub content_type: Option<String>,
    pub framing: BodyFraming,
    pub keep_alive: bool,
}

/// Parses a complete response head at the start of `buf`, returning it
/// with its length; `None` while the head is still incomplete.
fn parse_response_head(buf: &[u8]) -> Result<Option<(ResponseHead, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response
        .parse(buf)
        .context("malformed HTTP response head")?
    {
        httparse::Status::Complete(head_len) => head_len,
        httparse::Status::Partial => return Ok(None),
    };
    let status = response.code.context("response without a status code")?;
    let mut content_type = None;
    let mut chunked = false;
    let mut content_length = None;
    // HTTP/1.0 closes unless told otherwise; HTTP/1.1 keeps alive.
    let mut close = response.version == Some(0);
    for header in response.headers.iter() {
        let value = String::from_utf8_lossy(header.value);
        let has_token = |token: &str| {
            value
                .split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(token))
        };
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = has_token("chunked");
        } else if header.name.eq_ignore_ascii_case("content-length") {
            let length = value
                .trim()
                .parse::<u64>()
                .with_context(|| format!("bad Content-Length {value:?}"))?;
            content_length = Some(length);
        } else if header.name.eq_ignore_ascii_case("connection") {
            if has_token("close") {
                close = true;
            } else if has_token("keep-alive") {
                close = false;
            }
        } else if header.name.eq_ignore_ascii_case("content-type") {
            content_type = Some(value.into_owned());
        }
    }
    let framing = if chunked {
        BodyFraming::Chunked(ChunkedDecoder::default())
    } else if let Some(remaining) = content_length {
        BodyFraming::Length { remaining }
    } else if status == 204 || status == 304 {
        BodyFraming::Length { remaining: 0 }
    } else {
        BodyFraming::UntilClose
    };
    let keep_alive = !close && !matches!(framing, BodyFraming::UntilClose);
    Ok(Some((
        ResponseHead {
            status,
            content_type,
            framing,
            keep_alive,
        },
        head_len,
    )))
}

/// Reads until a whole response head is in `buf`, and removes it; body
/// bytes that came with it stay in `buf`.
pub async fn read_response_head(
    socket: &mut TcpStream,
    buf: &mut BytesMut,
) -> Result<ResponseHead> {
    loop {
        if let Some((head, head_len)) = parse_response_head(buf)? {
            buf.advance(head_len);
            return Ok(head);
        }
        if buf.len() > MAX_HEAD_BYTES {
            bail!("the response head is larger than {MAX_HEAD_BYTES} bytes");
        }
        buf.reserve(READ_RESERVE);
        if socket
            .read_buf(buf)
            .await
            .context("reading the response head")?
            == 0
        {
            bail!("the broker closed the connection before answering");
        }
    }
}

/// Reads a whole (bounded) response body.
pub async fn read_body(
    socket: &mut TcpStream,
    buf: &mut BytesMut,
    framing: &mut BodyFraming,
    limit: usize,
) -> Result<BytesMut> {
    let mut body = BytesMut::new();
    loop {
        if framing.decode(buf, &mut body)? {
            return Ok(body);
        }
        if body.len() > limit {
            bail!("the response body is larger than {limit} bytes");
        }
        buf.reserve(READ_RESERVE);
        if socket
            .read_buf(buf)
            .await
            .context("reading the response body")?
            == 0
        {
            if matches!(framing, BodyFraming::UntilClose) {
                return Ok(body);
            }
            bail!("the broker closed the connection in the middle of a response body");
        }
    }
}
