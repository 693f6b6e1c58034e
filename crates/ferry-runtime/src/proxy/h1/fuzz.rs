//! Property targets for the fast path's parsers, which read bytes straight from
//! clients and endpoints: request heads, response heads and chunked bodies.
//!
//! Inputs are well-formed heads mutated (bytes flipped, cut, spliced, fields
//! repeated) and arbitrary bytes. Beyond "never panics", each target pins what a
//! proxy must never do: forward a head the next hop would read differently (two
//! framings, a field split by a stray CR/LF), or find a different end of a body
//! depending on how the bytes happened to arrive. `PROPTEST_CASES` sets the budget.

use proptest::prelude::*;
use proptest::test_runner::Config;

use super::chunked::{Chunked, Progress};
use super::head::{self, Body, Forwarding, Reject};

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

const FWD: Forwarding<'static> = Forwarding {
    client_ip: b"127.0.0.1",
    default_host: b"127.0.0.1:8080",
};

/// Request heads of the shapes clients send, the seed corpus.
const REQUESTS: &[&str] = &[
    "GET / HTTP/1.1\r\nHost: shop\r\n\r\n",
    "GET /a?b=c HTTP/1.0\r\n\r\n",
    "POST /orders HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\nContent-Type: application/json\r\n\r\nhello",
    "PUT /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    "GET http://shop:8080/p HTTP/1.1\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n",
    "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    "HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "CONNECT shop:443 HTTP/1.1\r\nHost: shop:443\r\n\r\n",
    "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "OPTIONS * HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
];

/// Response heads of the shapes endpoints send.
const RESPONSES: &[&str] = &[
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\n\r\n",
    "HTTP/1.0 200 OK\r\n\r\nbody to eof",
    "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n",
    "HTTP/1.1 502 Bad Gateway\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nContent-Length: 3\r\n\r\nbad",
];

/// Bytes that move an HTTP/1 parser into its rarer states.
const TOKENS: &[&str] = &[
    "\r\n",
    "\n",
    "\r",
    ": ",
    ":",
    " ",
    "\t",
    "\0",
    "Content-Length: ",
    "Transfer-Encoding: ",
    "chunked",
    "gzip, chunked",
    "chunked, gzip",
    "Connection: ",
    "close",
    "Upgrade",
    "Host: ",
    "HTTP/1.1",
    "HTTP/1.0",
    "HTTP/2.0",
    "18446744073709551616",
    "-1",
    "+5",
    "0x10",
    " 5",
    "\u{ff}",
    "\r\n\r\n",
    "X-Forwarded-For: ",
    "Via: ",
    "Keep-Alive: ",
];

#[derive(Clone, Debug)]
enum Edit {
    Flip(usize, u8),
    Truncate(usize),
    Duplicate(usize, usize),
    Insert(usize, &'static str),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(i, b)| Edit::Flip(i, b)),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), 0usize..64).prop_map(|(i, n)| Edit::Duplicate(i, n)),
        (any::<usize>(), prop::sample::select(TOKENS)).prop_map(|(i, t)| Edit::Insert(i, t)),
    ]
}

fn mutate(seed: &str, edits: &[Edit]) -> Vec<u8> {
    let mut b = seed.as_bytes().to_vec();
    for e in edits {
        let at = |i: usize, len: usize| i % (len + 1);
        match *e {
            Edit::Flip(i, x) if !b.is_empty() => {
                let i = i % b.len();
                b[i] ^= x;
            }
            Edit::Flip(..) => {}
            Edit::Truncate(i) => b.truncate(at(i, b.len())),
            Edit::Duplicate(i, n) => {
                let i = at(i, b.len());
                let piece = b[i..(i + n).min(b.len())].to_vec();
                b.splice(i..i, piece);
            }
            Edit::Insert(i, t) => {
                let i = at(i, b.len());
                b.splice(i..i, t.bytes());
            }
        }
    }
    b
}

/// A seed of `seeds`, mutated; or arbitrary bytes.
fn input(seeds: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => (prop::sample::select(seeds), prop::collection::vec(edit(), 0..6))
            .prop_map(|(s, e)| mutate(s, &e)),
        1 => prop::collection::vec(any::<u8>(), 0..300),
    ]
}

/// The values of every field named `name` (any case) in a head.
fn fields<'a>(head: &'a [httparse::Header<'a>], name: &str) -> Vec<&'a [u8]> {
    head.iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
        .collect()
}

proptest! {
    #![proptest_config(config())]

    /// A request head is forwarded only as one the endpoint reads exactly as the
    /// proxy did: complete, one framing, no field the proxy meant to drop; and a
    /// head that parses whole is "incomplete", never an error, while it arrives.
    #[test]
    fn fuzz_request_head(buf in input(REQUESTS)) {
        let mut out = Vec::new();
        let r = head::request(&buf, &mut out, &FWD);
        let Ok(Some(req)) = r else { return Ok(()) };
        prop_assert!(req.head_len <= buf.len());

        let mut hs = [httparse::EMPTY_HEADER; 160];
        let mut again = httparse::Request::new(&mut hs);
        let status = again.parse(&out);
        prop_assert!(
            matches!(status, Ok(httparse::Status::Complete(n)) if n == out.len()),
            "forwarded head does not parse whole: {status:?}\n{}",
            String::from_utf8_lossy(&out)
        );
        prop_assert_eq!(again.version, Some(1));
        let cl = fields(again.headers, "content-length");
        let te = fields(again.headers, "transfer-encoding");
        prop_assert!(cl.is_empty() || te.is_empty(), "two framings forwarded: {}", String::from_utf8_lossy(&out));
        match req.body {
            Body::Chunked => prop_assert!(cl.is_empty() && !te.is_empty()),
            Body::Length(n) => {
                // Forwarded as written (`05` is 5): the endpoint must read the same length.
                let read = |v: &[u8]| std::str::from_utf8(v.trim_ascii()).ok()?.parse::<u64>().ok();
                prop_assert!(cl.iter().all(|v| read(v) == Some(n)), "{:?}", cl);
            }
            Body::None => prop_assert!(te.is_empty()),
            Body::ToEof => prop_assert!(false, "a request body to EOF"),
        }
        prop_assert_eq!(fields(again.headers, "host").len().min(1), 1, "no Host forwarded");
        prop_assert!(fields(again.headers, "keep-alive").is_empty());
        prop_assert!(fields(again.headers, "upgrade").is_empty() || req.minor == 0);
        prop_assert_eq!(fields(again.headers, "x-forwarded-for").len(), 1);

        for cut in 0..req.head_len {
            let mut o = Vec::new();
            let p = head::request(&buf[..cut], &mut o, &FWD);
            prop_assert!(
                matches!(p, Ok(None) | Err(Reject::Fallback)),
                "prefix of {cut} bytes gave {p:?}"
            );
        }
    }

    /// The same for response heads, answering every kind of request.
    #[test]
    fn fuzz_response_head(buf in input(RESPONSES), req_seed in prop::sample::select(REQUESTS)) {
        let mut scratch = Vec::new();
        let Ok(Some(req)) = head::request(req_seed.as_bytes(), &mut scratch, &FWD) else {
            return Ok(());
        };
        let mut out = Vec::new();
        let Ok(Some(resp)) = head::response(&buf, &mut out, &req) else { return Ok(()) };
        prop_assert!(resp.head_len <= buf.len());
        let mut hs = [httparse::EMPTY_HEADER; 160];
        let mut again = httparse::Response::new(&mut hs);
        let status = again.parse(&out);
        prop_assert!(
            matches!(status, Ok(httparse::Status::Complete(n)) if n == out.len()),
            "forwarded head does not parse whole: {status:?}\n{}",
            String::from_utf8_lossy(&out)
        );
        prop_assert_eq!(again.code, Some(resp.status));
        let cl = fields(again.headers, "content-length");
        let te = fields(again.headers, "transfer-encoding");
        prop_assert!(cl.is_empty() || te.is_empty(), "two framings forwarded: {}", String::from_utf8_lossy(&out));
        if resp.dechunk {
            prop_assert!(te.is_empty(), "a dechunked body still says chunked");
        }
        if resp.body == Body::ToEof {
            prop_assert!(!resp.client_keep_alive);
        }
        for cut in 0..resp.head_len {
            let mut o = Vec::new();
            let p = head::response(&buf[..cut], &mut o, &req);
            prop_assert!(matches!(p, Ok(None)), "prefix of {cut} bytes gave {p:?}");
        }
    }

    /// A well-formed chunked body, arriving in any pieces, ends exactly where it
    /// ends and yields exactly its payload.
    #[test]
    fn fuzz_chunked_well_formed(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..200), 0..8),
        upper in any::<bool>(),
        zeros in 0usize..4,
        ext in prop::sample::select(&["", ";a=b", "; name=\"q\"", "\t;x"][..]),
        trailers in prop::sample::select(&["", "X-T: 1\r\n", "A: b\r\nC: d\r\n"][..]),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        after in prop::collection::vec(any::<u8>(), 0..16),
    ) {
        let mut body = Vec::new();
        for c in &chunks {
            let size = if upper { format!("{:X}", c.len()) } else { format!("{:x}", c.len()) };
            body.extend_from_slice(format!("{}{size}{ext}\r\n", "0".repeat(zeros)).as_bytes());
            body.extend_from_slice(c);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("0{ext}\r\n{trailers}\r\n").as_bytes());
        let end = body.len();
        body.extend_from_slice(&after);

        let (outcome, payload) = scan_in_pieces(&body, &cuts);
        prop_assert_eq!(outcome, Ok(Some(end)));
        prop_assert_eq!(payload, chunks.concat());
    }

    /// Any bytes: the outcome (end, payload, or refusal) does not depend on how
    /// the bytes were split into reads.
    #[test]
    fn fuzz_chunked_split_invariant(
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            prop::collection::vec(prop::sample::select(CHUNK_TOKENS), 0..40)
                .prop_map(|t| t.concat().into_bytes()),
        ],
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let whole = scan_in_pieces(&body, &[]);
        let pieces = scan_in_pieces(&body, &cuts);
        prop_assert_eq!(&whole, &pieces);
        if let (Ok(Some(end)), _) = &whole {
            prop_assert!(*end <= body.len());
        }
    }
}

const CHUNK_TOKENS: &[&str] = &[
    "0",
    "1",
    "a",
    "F",
    "fffffffffffffff",
    "ffffffffffffffff",
    "\r\n",
    "\r",
    "\n",
    ";",
    " ",
    "x",
    "ab",
    "\r\n\r\n",
    "X: y\r\n",
];

/// Scans `body` fed in pieces cut at `cuts`: where the body ended (`Ok(None)`: not
/// yet), or `Err` at the malformed piece; and the payload seen.
fn scan_in_pieces(body: &[u8], cuts: &[usize]) -> (Result<Option<usize>, ()>, Vec<u8>) {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
    points.push(0);
    points.push(body.len());
    points.sort_unstable();
    points.dedup();
    let mut scanner = Chunked::new();
    let mut payload = Vec::new();
    for w in points.windows(2) {
        let piece = &body[w[0]..w[1]];
        let r = scanner.scan(piece, |range| {
            assert!(range.end <= piece.len(), "payload range outside the read");
            payload.extend_from_slice(&piece[range]);
        });
        match r {
            Ok(Progress::More) => {}
            Ok(Progress::Done(n)) => {
                assert!(n <= piece.len());
                return (Ok(Some(w[0] + n)), payload);
            }
            Err(_) => return (Err(()), payload),
        }
    }
    (Ok(None), payload)
}
