//! The `Transfer-Encoding: chunked` framing (RFC 9112 §7.1), walked as the bytes
//! pass through the proxy.
//!
//! The fast path forwards chunked bodies as they are, framing and all; it only has
//! to know where a body ends, so the scanner keeps a few bytes of state and never
//! buffers. For an HTTP/1.0 client, which cannot read chunks, it also reports where
//! the payload lies, so the framing can be left out.

use std::ops::Range;

/// Where the walk is in the framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// In the hex chunk size, `digits` read so far.
    Size { digits: u8 },
    /// In chunk extensions (ignored), up to the CR ending the size line.
    Ext,
    /// The CR of the size line was read; LF is next.
    SizeLf,
    /// In chunk data; `Chunked::left` bytes of it remain.
    Data,
    /// After the data: its CR is next.
    DataCr,
    /// After the data's CR: LF is next.
    DataLf,
    /// At the start of a trailer line, or of the empty line ending the body.
    TrailerStart,
    /// Inside a trailer field line, up to its CR.
    Trailer,
    /// A trailer line's CR was read; LF is next.
    TrailerLf,
    /// The final empty line's CR was read; its LF ends the body.
    EndLf,
    /// The body has ended.
    Done,
}

/// The chunked framing was malformed: the body's end cannot be known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body")]
pub(crate) struct BadChunk;

/// What [`Chunked::scan`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// The whole buffer belongs to the body, and the body goes on.
    More,
    /// The body ends after this many bytes of the buffer.
    Done(usize),
}

/// A scanner of one chunked body.
#[derive(Debug, Clone)]
pub(crate) struct Chunked {
    state: State,
    /// Size of the chunk being read, or what is left of its data.
    left: u64,
}

impl Chunked {
    /// At the start of a body.
    pub(crate) fn new() -> Self {
        Self {
            state: State::Size { digits: 0 },
            left: 0,
        }
    }

    /// Walks the next bytes of the body, calling `data` with the range of every
    /// piece of payload in `buf` (in order; framing and trailers excluded).
    pub(crate) fn scan(
        &mut self,
        buf: &[u8],
        mut data: impl FnMut(Range<usize>),
    ) -> Result<Progress, BadChunk> {
        let mut i = 0;
        while i < buf.len() {
            if self.state == State::Data {
                // Skip the payload in one step: the common case, and the long one.
                let n = usize::try_from(self.left)
                    .unwrap_or(usize::MAX)
                    .min(buf.len() - i);
                data(i..i + n);
                i += n;
                self.left -= n as u64;
                if self.left == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let b = buf[i];
            i += 1;
            self.state = match (self.state, b) {
                (State::Size { digits }, _) if b.is_ascii_hexdigit() => {
                    // 16 hex digits fill a u64; more would be a body nobody sends.
                    if digits >= 15 {
                        return Err(BadChunk);
                    }
                    self.left = self.left * 16 + u64::from(hex(b));
                    State::Size { digits: digits + 1 }
                }
                (State::Size { digits }, b';' | b' ' | b'\t') if digits > 0 => State::Ext,
                (State::Size { digits }, b'\r') if digits > 0 => State::SizeLf,
                (State::Ext, b'\r') => State::SizeLf,
                (State::Ext, _) => State::Ext,
                (State::SizeLf, b'\n') if self.left == 0 => State::TrailerStart,
                (State::SizeLf, b'\n') => State::Data,
                (State::DataCr, b'\r') => State::DataLf,
                (State::DataLf, b'\n') => State::Size { digits: 0 },
                (State::TrailerStart, b'\r') => State::EndLf,
                (State::Trailer, b'\r') => State::TrailerLf,
                (State::TrailerStart | State::Trailer, _) => State::Trailer,
                (State::TrailerLf, b'\n') => State::TrailerStart,
                (State::EndLf, b'\n') => {
                    self.state = State::Done;
                    return Ok(Progress::Done(i));
                }
                _ => return Err(BadChunk),
            };
        }
        Ok(Progress::More)
    }
}

fn hex(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scans `body` fed in pieces of `step` bytes; (payload, bytes consumed).
    fn scan_in_steps(body: &[u8], step: usize) -> Result<(Vec<u8>, Option<usize>), BadChunk> {
        let mut c = Chunked::new();
        let mut payload = Vec::new();
        let mut offset = 0;
        for piece in body.chunks(step) {
            let progress = c.scan(piece, |r| payload.extend_from_slice(&piece[r]))?;
            if let Progress::Done(n) = progress {
                return Ok((payload, Some(offset + n)));
            }
            offset += piece.len();
        }
        Ok((payload, None))
    }

    #[test]
    fn finds_the_end_and_the_payload_whatever_the_pieces() {
        let body = b"5\r\nhello\r\n1a;name=value\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-trailer: 1\r\n\r\nGET / HTTP/1.1";
        let end = body.len() - b"GET / HTTP/1.1".len();
        for step in [1, 2, 3, 7, body.len()] {
            let (payload, done) = scan_in_steps(body, step).unwrap();
            assert_eq!(payload, b"helloabcdefghijklmnopqrstuvwxyz", "step {step}");
            assert_eq!(done, Some(end), "step {step}");
        }
    }

    #[test]
    fn an_empty_body_is_one_zero_chunk() {
        assert_eq!(scan_in_steps(b"0\r\n\r\n", 1).unwrap(), (vec![], Some(5)));
        let (_, done) = scan_in_steps(b"0\r\n", 10).unwrap();
        assert_eq!(done, None, "the final CRLF is still to come");
    }

    #[test]
    fn rejects_malformed_framing() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"5\r\nhelloX\r\n",
            b"5\nhello\r\n",
            b"ffffffffffffffff\r\n",
            b"0\r\n\rx",
        ] {
            assert_eq!(scan_in_steps(bad, 1), Err(BadChunk), "{bad:?}");
        }
    }
}
