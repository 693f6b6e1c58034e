//! Request and response heads of the HTTP/1 fast path: parsed with `httparse`,
//! checked, and rewritten for the other side in one buffer.
//!
//! No I/O and no allocation beyond the output buffer's growth, so these are the
//! parts that unit tests pin exactly.

use std::mem::MaybeUninit;

/// Largest request or response head accepted, in bytes.
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// Most header fields in one head.
const MAX_HEADERS: usize = 128;

/// How a message's body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Body {
    /// No body.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`, forwarded framing and all.
    Chunked,
    /// Until the sender closes the connection (responses only).
    ToEof,
}

/// Why a request head cannot go through the fast path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reject {
    /// Larger than [`MAX_HEAD`], or too many fields: 431.
    TooLarge,
    /// Not HTTP/1 or not valid: 400 with this reason.
    Invalid(&'static str),
    /// Valid, but for the general path: `Upgrade`, `CONNECT`, or not HTTP/1.
    Fallback,
}

/// What the proxy needs to know about a request it has rewritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Request {
    /// Length of the head in the client's buffer (its body follows).
    pub(crate) head_len: usize,
    /// How the request body is delimited.
    pub(crate) body: Body,
    /// The client's minor HTTP version (0 or 1).
    pub(crate) minor: u8,
    /// Whether the client lets the connection stay open after this exchange.
    pub(crate) keep_alive: bool,
    /// `HEAD`: the response has no body whatever its headers say.
    pub(crate) head_method: bool,
    /// Safe to send twice (RFC 9110 §9.2.2), so a retry is allowed.
    pub(crate) idempotent: bool,
}

/// What the proxy needs to know about a response it has rewritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Response {
    /// Length of the head in the endpoint's buffer.
    pub(crate) head_len: usize,
    /// The status code.
    pub(crate) status: u16,
    /// How the response body is delimited.
    pub(crate) body: Body,
    /// Whether the endpoint keeps the connection open after the body.
    pub(crate) reusable: bool,
    /// Whether the client connection stays open after the body.
    pub(crate) client_keep_alive: bool,
    /// A chunked body for an HTTP/1.0 client: its framing must be taken off.
    pub(crate) dechunk: bool,
}

/// Per-connection facts a request rewrite needs, rendered once.
pub(crate) struct Forwarding<'a> {
    /// The client's IP address, for `X-Forwarded-For`.
    pub(crate) client_ip: &'a [u8],
    /// `Host` for a request that has none (an HTTP/1.0 client): the address the
    /// client connected to.
    pub(crate) default_host: &'a [u8],
}

/// Parses the request head at the start of `buf`; when complete, writes the
/// head to send to the endpoint (HTTP/1.1, origin-form) to `out`.
///
/// `Ok(None)`: the head is not complete yet (and is not yet too large).
pub(crate) fn request(
    buf: &[u8],
    out: &mut Vec<u8>,
    fwd: &Forwarding<'_>,
) -> Result<Option<Request>, Reject> {
    // Uninitialised: zeroing 128 fields would cost more than parsing a small head.
    let mut fields = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(buf, &mut fields) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Err(Reject::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Reject::TooLarge),
        // `PRI * HTTP/2.0` and anything else that is not HTTP/1.x.
        Err(httparse::Error::Version) => return Err(Reject::Fallback),
        Err(_) => return Err(Reject::Invalid("malformed request head")),
    };
    if head_len > MAX_HEAD {
        return Err(Reject::TooLarge);
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(Reject::Invalid("malformed request line"));
    };
    if method == "CONNECT" {
        return Err(Reject::Fallback);
    }
    let fields = &*req.headers;

    // First pass: the facts that decide how the rest is written.
    let mut keep_alive = minor == 1;
    let mut connection = false;
    let mut upgrade_token = false;
    let mut upgrade_field = false;
    let mut has_host = false;
    let mut length: Option<u64> = None;
    let mut chunked: Option<bool> = None;
    for f in fields {
        let name = f.name.as_bytes();
        if eq(name, b"connection") {
            connection = true;
            for token in tokens(f.value) {
                if eq(token, b"close") {
                    keep_alive = false;
                } else if eq(token, b"keep-alive") {
                    keep_alive = keep_alive || minor == 0;
                } else if eq(token, b"upgrade") {
                    upgrade_token = true;
                }
            }
        } else if eq(name, b"upgrade") {
            upgrade_field = true;
        } else if eq(name, b"host") {
            has_host = true;
        } else if eq(name, b"content-length") {
            let n = content_length(f.value).ok_or(Reject::Invalid("invalid Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(Reject::Invalid("conflicting Content-Length"));
            }
            length = Some(n);
        } else if eq(name, b"transfer-encoding") {
            // The last field's last coding is the one that frames the body.
            chunked = Some(tokens(f.value).last().is_some_and(|t| eq(t, b"chunked")));
        }
    }
    if minor == 1 && upgrade_field && upgrade_token {
        return Err(Reject::Fallback);
    }
    let body = match (chunked, length) {
        (Some(true), _) => Body::Chunked,
        // RFC 9112 §6.3: a request whose length cannot be known is refused.
        (Some(false), _) => return Err(Reject::Invalid("unsupported Transfer-Encoding")),
        (None, Some(0)) | (None, None) => Body::None,
        (None, Some(n)) => Body::Length(n),
    };
    if chunked.is_some() && length.is_some() {
        // Both framings: a smuggling attempt or a broken client. The chunked one
        // wins (its Content-Length is dropped below) and the connection closes
        // afterwards (RFC 9112 §6.1).
        keep_alive = false;
    }

    // Second pass: the head for the endpoint.
    out.clear();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    let authority = match target.as_bytes() {
        t if t.starts_with(b"/") || t == b"*" => {
            out.extend_from_slice(t);
            None
        }
        t => {
            // Absolute-form (`http://host/path`): endpoints get origin-form.
            let Some(rest) = t
                .iter()
                .position(|b| *b == b':')
                .and_then(|i| t[i..].strip_prefix(b"://"))
            else {
                return Err(Reject::Invalid("invalid request target"));
            };
            let end = rest
                .iter()
                .position(|b| matches!(b, b'/' | b'?'))
                .unwrap_or(rest.len());
            if !rest[end..].starts_with(b"/") {
                out.push(b'/');
            }
            out.extend_from_slice(&rest[end..]);
            Some(&rest[..end])
        }
    };
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !has_host {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(authority.unwrap_or(fwd.default_host));
        out.extend_from_slice(b"\r\n");
    }
    let mut forwarded_for = false;
    for f in fields {
        let name = f.name.as_bytes();
        if is_hop_by_hop(name, f.value)
            || (connection && named_in_connection(fields, name))
            || (chunked.is_some() && eq(name, b"content-length"))
            || eq(name, b"x-forwarded-for")
            || eq(name, b"x-forwarded-proto")
        {
            continue;
        }
        push_field(out, name, f.value);
    }
    // Earlier proxies' addresses first, then the client's (one field).
    out.extend_from_slice(b"x-forwarded-for: ");
    for f in fields {
        if eq(f.name.as_bytes(), b"x-forwarded-for") {
            if forwarded_for {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(f.value);
            forwarded_for = true;
        }
    }
    if forwarded_for {
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(fwd.client_ip);
    out.extend_from_slice(b"\r\nx-forwarded-proto: http\r\nvia: ");
    out.extend_from_slice(if minor == 0 {
        b"1.0 ferry"
    } else {
        b"1.1 ferry"
    });
    out.extend_from_slice(b"\r\n\r\n");

    Ok(Some(Request {
        head_len,
        body,
        minor,
        keep_alive,
        head_method: method == "HEAD",
        idempotent: matches!(
            method,
            "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
        ),
    }))
}

/// Parses the response head at the start of `buf` (from an endpoint, answering
/// `req`); when complete, writes the head to send to the client to `out`.
///
/// `Ok(None)`: not complete yet. `Err`: not a valid HTTP/1 response head.
pub(crate) fn response(
    buf: &[u8],
    out: &mut Vec<u8>,
    req: &Request,
) -> Result<Option<Response>, &'static str> {
    let mut fields = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let head_len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut fields,
    ) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Err("response head too large");
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err("too many response header fields"),
        Err(_) => return Err("malformed response head"),
    };
    if head_len > MAX_HEAD {
        return Err("response head too large");
    }
    let (Some(status), Some(minor)) = (resp.code, resp.version) else {
        return Err("malformed status line");
    };
    let reason = resp.reason.unwrap_or("");
    let fields = &*resp.headers;

    let mut reusable = minor == 1;
    let mut connection = false;
    let mut length: Option<u64> = None;
    let mut chunked: Option<bool> = None;
    for f in fields {
        let name = f.name.as_bytes();
        if eq(name, b"connection") {
            connection = true;
            for token in tokens(f.value) {
                if eq(token, b"close") {
                    reusable = false;
                } else if eq(token, b"keep-alive") {
                    reusable = reusable || minor == 0;
                }
            }
        } else if eq(name, b"content-length") {
            let n = content_length(f.value).ok_or("invalid Content-Length in response")?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting Content-Length in response");
            }
            length = Some(n);
        } else if eq(name, b"transfer-encoding") {
            chunked = Some(tokens(f.value).last().is_some_and(|t| eq(t, b"chunked")));
        }
    }
    let interim = (100..200).contains(&status);
    let body = if interim || status == 204 || status == 304 || req.head_method {
        Body::None
    } else {
        match (chunked, length) {
            (Some(true), _) => Body::Chunked,
            (Some(false), _) | (None, None) => Body::ToEof,
            (None, Some(n)) => Body::Length(n),
        }
    };
    if body == Body::ToEof || chunked.is_some() && length.is_some() {
        reusable = false;
    }
    let dechunk = body == Body::Chunked && req.minor == 0;
    // A body that ends when the connection does must end the client's too.
    let client_keep_alive = req.keep_alive && body != Body::ToEof && !dechunk;

    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa3(status).as_slice());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    for f in fields {
        let name = f.name.as_bytes();
        if is_hop_by_hop(name, f.value)
            || (connection && named_in_connection(fields, name))
            || (chunked.is_some() && eq(name, b"content-length"))
            || (dechunk && (eq(name, b"transfer-encoding") || eq(name, b"trailer")))
        {
            continue;
        }
        push_field(out, name, f.value);
    }
    if !interim {
        if !client_keep_alive {
            out.extend_from_slice(b"connection: close\r\n");
        } else if req.minor == 0 {
            out.extend_from_slice(b"connection: keep-alive\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    Ok(Some(Response {
        head_len,
        status,
        body,
        reusable,
        client_keep_alive,
        dechunk,
    }))
}

/// Hop-by-hop fields (RFC 9110 §7.6.1) that never cross the proxy. `TE` is kept
/// only as `TE: trailers`, which is end-to-end in practice (gRPC);
/// `Transfer-Encoding` is kept since the framing is forwarded as it is.
fn is_hop_by_hop(name: &[u8], value: &[u8]) -> bool {
    match name.len() {
        2 => eq(name, b"te") && !eq(value, b"trailers"),
        7 => eq(name, b"upgrade"),
        10 => eq(name, b"connection") || eq(name, b"keep-alive"),
        16 => eq(name, b"proxy-connection"),
        18 => eq(name, b"proxy-authenticate"),
        19 => eq(name, b"proxy-authorization"),
        _ => false,
    }
}

/// Whether `name` is listed in a `Connection` field (and so hop-by-hop).
fn named_in_connection(fields: &[httparse::Header<'_>], name: &[u8]) -> bool {
    fields
        .iter()
        .filter(|f| eq(f.name.as_bytes(), b"connection"))
        .any(|f| tokens(f.value).any(|t| eq(t, name)))
}

fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The comma-separated tokens of a field value, trimmed.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|b| *b == b',').map(<[u8]>::trim_ascii)
}

fn eq(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// A `Content-Length` value: digits, or a list of equal ones (RFC 9110 §8.6).
fn content_length(value: &[u8]) -> Option<u64> {
    let mut found = None;
    for token in tokens(value) {
        if token.is_empty() || token.len() > 19 || !token.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = token.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        if found.is_some_and(|f| f != n) {
            return None;
        }
        found = Some(n);
    }
    found
}

/// A status code as its three digits (httparse guarantees 100–999).
fn itoa3(status: u16) -> [u8; 3] {
    [
        b'0' + (status / 100 % 10) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const FWD: Forwarding<'static> = Forwarding {
        client_ip: b"127.0.0.1",
        default_host: b"127.0.0.1:8080",
    };

    fn rewrite(head: &str) -> (Result<Option<Request>, Reject>, String) {
        let mut out = Vec::new();
        let r = request(head.as_bytes(), &mut out, &FWD);
        (r, String::from_utf8(out).unwrap())
    }

    fn get(head: &str) -> Request {
        let mut out = Vec::new();
        request(head.as_bytes(), &mut out, &FWD).unwrap().unwrap()
    }

    #[test]
    fn request_drops_hop_by_hop_and_adds_forwarding_fields() {
        let head = "GET /a?b HTTP/1.1\r\nHost: shop\r\nConnection: keep-alive, X-Secret\r\n\
             X-Secret: 1\r\nKeep-Alive: timeout=5\r\nTE: gzip\r\nX-Forwarded-For: 10.0.0.1\r\n\
             X-Forwarded-Proto: https\r\nX-Kept: yes\r\n\r\n";
        let (r, out) = rewrite(&format!("{head}BODY"));
        let r = r.unwrap().unwrap();
        assert_eq!(
            out,
            "GET /a?b HTTP/1.1\r\nHost: shop\r\nX-Kept: yes\r\n\
             x-forwarded-for: 10.0.0.1, 127.0.0.1\r\nx-forwarded-proto: http\r\n\
             via: 1.1 ferry\r\n\r\n"
        );
        assert_eq!(r.head_len, head.len());
        assert!(r.keep_alive && r.idempotent && !r.head_method);
        assert_eq!(r.body, Body::None);
    }

    #[test]
    fn request_framing_and_keep_alive() {
        let r = get("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n");
        assert_eq!(
            (r.body, r.keep_alive, r.idempotent),
            (Body::Length(12), true, false)
        );
        let r = get("PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(r.body, Body::Chunked);
        let r = get("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert!(!r.keep_alive);
        let r = get("GET / HTTP/1.0\r\n\r\n");
        assert!(!r.keep_alive);
        let r = get("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(r.keep_alive);
        assert_eq!(r.minor, 0);
    }

    #[test]
    fn request_with_both_framings_is_chunked_and_closes() {
        let (r, out) = rewrite(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        let r = r.unwrap().unwrap();
        assert_eq!((r.body, r.keep_alive), (Body::Chunked, false));
        assert!(
            !out.to_ascii_lowercase().contains("content-length"),
            "{out}"
        );
        assert!(out.contains("Transfer-Encoding: chunked\r\n"), "{out}");
    }

    #[test]
    fn request_rejections() {
        let reject = |h: &str| rewrite(h).0.unwrap_err();
        assert_eq!(reject("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Reject::Fallback);
        assert_eq!(
            reject("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n"),
            Reject::Fallback
        );
        assert_eq!(
            reject(
                "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
            ),
            Reject::Fallback
        );
        assert!(matches!(
            reject("POST / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n"),
            Reject::Invalid(_)
        ));
        assert!(matches!(
            reject("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Reject::Invalid(_)
        ));
        assert!(matches!(
            reject("GET / HTTP/1.1\r\nbad header\r\n\r\n"),
            Reject::Invalid(_)
        ));
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(reject(&big), Reject::TooLarge);
        let partial_big = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD));
        assert_eq!(reject(&partial_big), Reject::TooLarge);
        assert_eq!(rewrite("GET / HTTP/1.1\r\nHost: a\r\n").0, Ok(None));
    }

    #[test]
    fn absolute_form_becomes_origin_form_with_host() {
        let (_, out) = rewrite("GET http://web.example:8080?q=1 HTTP/1.1\r\n\r\n");
        assert!(
            out.starts_with("GET /?q=1 HTTP/1.1\r\nhost: web.example:8080\r\n"),
            "{out}"
        );
        let (_, out) = rewrite("GET / HTTP/1.0\r\n\r\n");
        assert!(
            out.starts_with("GET / HTTP/1.1\r\nhost: 127.0.0.1:8080\r\n"),
            "{out}"
        );
        assert!(out.contains("via: 1.0 ferry\r\n"), "{out}");
    }

    fn answer(req: &Request, head: &str) -> (Response, String) {
        let mut out = Vec::new();
        let r = response(head.as_bytes(), &mut out, req).unwrap().unwrap();
        (r, String::from_utf8(out).unwrap())
    }

    #[test]
    fn response_framing() {
        let req = get("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let (r, out) = answer(
            &req,
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n",
        );
        assert_eq!(out, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(
            (r.body, r.reusable, r.client_keep_alive),
            (Body::Length(5), true, true)
        );

        let (r, out) = answer(
            &req,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        assert_eq!((r.body, r.dechunk), (Body::Chunked, false));
        assert!(out.contains("Transfer-Encoding: chunked\r\n"));

        let (r, out) = answer(&req, "HTTP/1.0 200 OK\r\n\r\n");
        assert_eq!(
            (r.body, r.reusable, r.client_keep_alive),
            (Body::ToEof, false, false)
        );
        assert!(out.ends_with("connection: close\r\n\r\n"), "{out}");

        for status in ["204 No Content", "304 Not Modified", "100 Continue"] {
            let (r, _) = answer(
                &req,
                &format!("HTTP/1.1 {status}\r\nContent-Length: 9\r\n\r\n"),
            );
            assert_eq!(r.body, Body::None, "{status}");
        }
        let head = get("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
        let (r, _) = answer(&head, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n");
        assert_eq!((r.body, r.reusable), (Body::None, true));

        let (r, _) = answer(
            &req,
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
        );
        assert_eq!((r.reusable, r.client_keep_alive), (false, true));
    }

    #[test]
    fn chunked_response_to_http10_client_is_dechunked_and_closes() {
        let req = get("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let (r, out) = answer(
            &req,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n",
        );
        assert!(r.dechunk && !r.client_keep_alive);
        assert_eq!(out, "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n");
        let (r, out) = answer(&req, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert!(r.client_keep_alive);
        assert!(out.ends_with("connection: keep-alive\r\n\r\n"), "{out}");
    }

    #[test]
    fn content_length_values() {
        assert_eq!(content_length(b"42"), Some(42));
        assert_eq!(content_length(b"7, 7"), Some(7));
        assert_eq!(content_length(b"7, 8"), None);
        assert_eq!(content_length(b"-1"), None);
        assert_eq!(content_length(b""), None);
        assert_eq!(content_length(b"99999999999999999999"), None);
    }
}
