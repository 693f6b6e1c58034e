//! Telling HTTP from other protocols by a connection's first bytes, without
//! consuming them.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

/// What a connection's first bytes say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sniffed {
    /// An HTTP/1 request line or the HTTP/2 preface (`PRI * HTTP/2.0`).
    Http,
    /// Anything else, or nothing before the timeout (the server speaks first).
    Other,
}

/// Request-line starts that mean HTTP; `PRI ` opens the HTTP/2 preface.
const STARTS: &[&[u8]] = &[
    b"GET ",
    b"POST ",
    b"PUT ",
    b"HEAD ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
    b"PRI ",
];

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Is(Sniffed),
    NeedMore,
}

fn classify(buf: &[u8]) -> Verdict {
    let mut prefix = false;
    for start in STARTS {
        let n = buf.len().min(start.len());
        if buf[..n] == start[..n] {
            if buf.len() >= start.len() {
                return Verdict::Is(Sniffed::Http);
            }
            prefix = true;
        }
    }
    if prefix || buf.is_empty() {
        Verdict::NeedMore
    } else {
        Verdict::Is(Sniffed::Other)
    }
}

/// Peeks at `stream` until its first bytes decide, or `timeout` passes.
pub(crate) async fn sniff(stream: &TcpStream, timeout: Duration) -> Sniffed {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 8];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(n)) => n,
            // Timed out: a protocol where the server speaks first. An error: let the
            // passthrough meet it.
            Ok(Err(_)) | Err(_) => return Sniffed::Other,
        };
        if n == 0 {
            return Sniffed::Other;
        }
        match classify(&buf[..n]) {
            Verdict::Is(s) => return s,
            // A prefix of a method: more bytes are on their way. peek returns at
            // once while any byte is buffered, so wait a little between looks.
            Verdict::NeedMore if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Verdict::NeedMore => return Sniffed::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_first_bytes() {
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Verdict::Is(Sniffed::Http));
        assert_eq!(classify(b"PRI * HTTP/2.0\r\n"), Verdict::Is(Sniffed::Http));
        assert_eq!(classify(b"DELETE /x"), Verdict::Is(Sniffed::Http));
        assert_eq!(classify(b"PO"), Verdict::NeedMore);
        assert_eq!(classify(b"P"), Verdict::NeedMore);
        assert_eq!(classify(b"GETX"), Verdict::Is(Sniffed::Other));
        assert_eq!(classify(b"\x16\x03\x01"), Verdict::Is(Sniffed::Other));
        assert_eq!(classify(b"*1\r\n$4\r\nPING"), Verdict::Is(Sniffed::Other));
        assert_eq!(classify(b"hello"), Verdict::Is(Sniffed::Other));
    }
}
