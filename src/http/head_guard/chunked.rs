//! Where a chunked request body ends, so the guard knows where the next head
//! starts. The states and what each accepts are actix-http's own
//! (`h1/chunked.rs`), so the two never disagree about a body they both read;
//! the data itself is passed on untouched.

/// Progress through one chunked body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkScan {
    state: State,
    size: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum State {
    #[default]
    SizeFirst,
    SizeRest,
    SizeLws,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    Trailer,
    TrailerLf,
    EndCr,
    EndLf,
}

/// What the bytes fed so far amount to.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunks {
    /// Every byte belongs to the body; it goes on.
    More,
    /// The body ends after the first `n` bytes.
    Done(usize),
    /// Not a chunked body actix-http accepts: it will fail the request and
    /// close the connection, so the guard stops looking.
    Broken,
}

fn hex(byte: u8) -> Option<u64> {
    match byte {
        b'0'..=b'9' => Some(u64::from(byte - b'0')),
        b'a'..=b'f' => Some(u64::from(byte - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(byte - b'A' + 10)),
        _ => None,
    }
}

impl ChunkScan {
    pub fn feed(&mut self, bytes: &[u8]) -> Chunks {
        use State::*;
        let mut at = 0;
        while at < bytes.len() {
            if self.state == Data {
                // Skip the chunk's data in one step.
                let take = self.size.min((bytes.len() - at) as u64);
                self.size -= take;
                at += take as usize;
                if self.size == 0 {
                    self.state = DataCr;
                }
                continue;
            }
            let byte = bytes[at];
            at += 1;
            self.state = match (self.state, byte) {
                (SizeFirst, b) => match hex(b) {
                    Some(digit) => {
                        self.size = digit;
                        SizeRest
                    }
                    None => return Chunks::Broken,
                },
                (SizeRest, b) if hex(b).is_some() => {
                    let digit = hex(b).unwrap_or_default();
                    match self.size.checked_mul(16) {
                        Some(size) => self.size = size + digit,
                        None => return Chunks::Broken,
                    }
                    SizeRest
                }
                (SizeRest | SizeLws, b'\t' | b' ') => SizeLws,
                (SizeRest | SizeLws, b';') => Extension,
                (SizeRest | SizeLws | Extension, b'\r') => SizeLf,
                (Extension, 0x00..=0x08 | 0x0a..=0x1f | 0x7f) => return Chunks::Broken,
                (Extension, _) => Extension,
                (SizeLf, b'\n') if self.size > 0 => Data,
                (SizeLf, b'\n') => EndCr,
                (DataCr, b'\r') => DataLf,
                (DataLf, b'\n') => SizeFirst,
                (Trailer, b'\r') => TrailerLf,
                (Trailer, _) => Trailer,
                (TrailerLf, b'\n') => EndCr,
                (EndCr, b'\r') => EndLf,
                (EndCr, _) => Trailer,
                (EndLf, b'\n') => {
                    *self = Self::default();
                    return Chunks::Done(at);
                }
                _ => return Chunks::Broken,
            };
        }
        Chunks::More
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_ends_after_its_last_chunk_however_it_is_cut() {
        let body = b"5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\nGET";
        let end = body.len() - 3;
        assert_eq!(ChunkScan::default().feed(body), Chunks::Done(end));
        let mut scan = ChunkScan::default();
        for (i, byte) in body.iter().enumerate() {
            match scan.feed(std::slice::from_ref(byte)) {
                Chunks::More => assert!(i + 1 < end, "not done at {i}"),
                Chunks::Done(1) => {
                    assert_eq!(i + 1, end);
                    return;
                }
                other => panic!("{other:?} at {i}"),
            }
        }
        panic!("never done");
    }

    #[test]
    fn trailers_are_part_of_the_body() {
        let body = b"0\r\nX-Sum: 1\r\n\r\n";
        assert_eq!(ChunkScan::default().feed(body), Chunks::Done(body.len()));
    }

    #[test]
    fn what_actix_http_refuses_is_broken() {
        for body in [
            &b"x\r\n"[..],
            b"5\nhello",
            b"5\r\nhelloX",
            b"ffffffffffffffffff\r\n",
        ] {
            assert_eq!(ChunkScan::default().feed(body), Chunks::Broken, "{body:?}");
        }
    }
}
