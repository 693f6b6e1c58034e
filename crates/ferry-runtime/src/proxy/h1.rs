//! The HTTP/1 fast path: a hand-written HTTP/1.1 reverse proxy for the common
//! case, where hyper's general server and client cost most of a request's CPU.
//!
//! One task serves one client connection, one request at a time (pipelined
//! requests wait in the buffer for their turn): it reads the request head into a
//! reusable buffer, parses it with `httparse`, rewrites it for the endpoint in one
//! buffer ([`head`]), sends it with the body over a pooled keep-alive TCP
//! connection ([`upstream`]), and relays the response head and body the same way.
//! Bodies are copied as they come, with their framing (`Content-Length`, or
//! chunked, walked by [`chunked`] only to find the end), so nothing is re-encoded.
//!
//! What this path does not serve goes to the general hyper path
//! ([`super::http`]) with the bytes read so far: HTTP/2 (h2c prior knowledge),
//! `Upgrade` requests (WebSocket) and `CONNECT`.

mod chunked;
#[cfg(test)]
mod fuzz;
mod head;
mod upstream;

use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use self::chunked::{Chunked, Progress};
use self::head::Body;
use super::backends::Target;
use super::metrics::{NO_VERSION, ServiceMetrics, VersionSeries};
use super::{ServiceId, Shared};

/// Initial size of a connection's two read buffers: enough for common heads and
/// small bodies, and little for an idle keep-alive connection to hold.
const BUF_SIZE: usize = 4 * 1024;
/// Largest a read buffer grows to while copying a body that keeps filling it.
/// (For a head it grows to [`head::MAX_HEAD`].)
const BODY_BUF: usize = 64 * 1024;
/// When closing a connection that may still have unread request bytes, how long
/// to read and discard them so that the kernel sends FIN rather than a reset that
/// could destroy the response in flight (nginx's lingering close).
const LINGER: Duration = Duration::from_secs(1);

/// The fast path's share of one proxy: its endpoint connections and what it says
/// on its own.
pub(super) struct FastPath {
    pool: Arc<upstream::Pool>,
    /// `NS/NAME`, for error bodies.
    service: String,
    no_endpoints: String,
    /// `Host` for requests without one: the listener's address.
    default_host: Vec<u8>,
}

impl FastPath {
    /// Must run inside a tokio runtime (the pool starts its sweeper).
    pub(super) fn new(service: &ServiceId, local_addr: SocketAddr) -> Self {
        let name = format!("{}/{}", service.namespace, service.name);
        Self {
            pool: upstream::Pool::new(),
            no_endpoints: format!("no ready endpoints for service {name}\n"),
            service: name,
            default_host: local_addr.to_string().into_bytes(),
        }
    }
}

/// Why an exchange with an endpoint failed, for the 502 body.
#[derive(Debug, thiserror::Error)]
enum Error {
    /// The TCP connect failed or timed out: nothing was sent.
    #[error("connect to {addr}")]
    Connect {
        /// The endpoint.
        addr: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
    /// The endpoint closed the connection before answering.
    #[error("{addr} closed the connection before answering")]
    Closed {
        /// The endpoint.
        addr: SocketAddr,
    },
    /// Reading or writing failed.
    #[error("exchange with {addr}")]
    Io {
        /// The endpoint.
        addr: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
    /// The endpoint's answer was not valid HTTP/1.
    #[error("{addr} answered with an invalid response: {reason}")]
    Invalid {
        /// The endpoint.
        addr: SocketAddr,
        /// What was wrong.
        reason: &'static str,
    },
}

/// How an exchange with an endpoint went wrong.
enum Failure {
    /// Nothing came back before the connection closed or failed: on a reused
    /// connection the endpoint had probably closed it while idle, so a request
    /// still at hand may be sent again.
    Unanswered(Error),
    /// The endpoint failed before the response head reached the client: 502.
    Endpoint(Error),
    /// Too late for an error response (the head is out) or the client is gone:
    /// the client connection is closed.
    Abort,
}

/// Whether a client connection serves another request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    KeepAlive,
    Close,
    /// Close, but only after reading what the client still sends: a request body
    /// was left unread.
    Linger,
}

/// Counts answers in the Service's metrics, keeping the series of the version
/// last counted on this connection: that spares a lock shared by every
/// connection and a hash lookup per request.
#[derive(Default)]
struct Meter {
    last: Option<(Arc<str>, Arc<VersionSeries>)>,
}

impl Meter {
    fn count(&mut self, metrics: &ServiceMetrics, version: &Arc<str>, status: u16, since: Instant) {
        let elapsed = since.elapsed();
        match &self.last {
            // Targets of one routing table share their version's `Arc`.
            Some((v, series)) if Arc::ptr_eq(v, version) => series.request(status, elapsed),
            _ => {
                let series = metrics.version(version);
                series.request(status, elapsed);
                self.last = Some((version.clone(), series));
            }
        }
    }
}

/// One client connection and its buffers, reused for every request on it.
struct Conn {
    client: TcpStream,
    /// Bytes from the client not yet handled (the head being read, a body being
    /// copied, pipelined requests).
    cbuf: Buf,
    /// Bytes from the endpoint not yet relayed.
    ubuf: Buf,
    /// The request head (and a body read with it) for the endpoint.
    fwd: Vec<u8>,
    /// The response head for the client, and scratch for de-chunking.
    out: Vec<u8>,
    client_ip: Vec<u8>,
    meter: Meter,
}

/// Serves one client connection through the fast path, handing it to the hyper
/// path if it turns out to need that, until it closes or the proxy stops.
pub(super) async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    stopped: watch::Receiver<bool>,
) {
    let mut conn = Conn {
        client: stream,
        cbuf: Buf::new(BUF_SIZE),
        ubuf: Buf::new(BUF_SIZE),
        fwd: Vec::with_capacity(1024),
        out: Vec::with_capacity(1024),
        client_ip: peer.ip().to_string().into_bytes(),
        meter: Meter::default(),
    };
    let mut waiting = Waiting::new(stopped.clone(), shared.header_timeout);
    let mut first = true;
    loop {
        let req = match read_request(&mut conn, &shared, &mut waiting, first).await {
            Next::Request(req) => req,
            Next::Close => return,
            Next::Fallback => {
                let io = Rewind {
                    prefix: conn.cbuf.filled().to_vec(),
                    pos: 0,
                    inner: conn.client,
                };
                return super::http::serve_connection(io, peer, shared, stopped).await;
            }
        };
        first = false;
        let start = Instant::now();
        match proxy(&mut conn, &shared, &req, start).await {
            Flow::KeepAlive => {}
            // Pipelined requests after a `Connection: close` one would be unread.
            Flow::Close if conn.cbuf.is_empty() => return,
            Flow::Close | Flow::Linger => return linger_close(conn.client).await,
        }
    }
}

enum Next {
    Request(head::Request),
    Close,
    Fallback,
}

/// Reads the next request head (it may already be buffered: pipelining) and
/// rewrites it into `conn.fwd`; answers 400 and 431 itself.
///
/// A client too slow is closed: the `first` request's head must be whole within
/// the header timeout of the accept; a later one's first byte must come within
/// the idle timeout, and the head within the header timeout of that.
async fn read_request(
    conn: &mut Conn,
    shared: &Shared,
    waiting: &mut Waiting,
    first: bool,
) -> Next {
    let fp = &shared.h1;
    let fwd = head::Forwarding {
        client_ip: &conn.client_ip,
        default_host: &fp.default_host,
    };
    // (deadline, whether it is the idle one, to be replaced once bytes come)
    let mut deadline: Option<(Instant, bool)> = None;
    loop {
        if !conn.cbuf.is_empty() {
            match head::request(conn.cbuf.filled(), &mut conn.fwd, &fwd) {
                Ok(Some(req)) => return Next::Request(req),
                Ok(None) => {}
                Err(head::Reject::Fallback) => return Next::Fallback,
                Err(head::Reject::TooLarge) => {
                    let _ = error_response(
                        &mut conn.client,
                        &mut conn.out,
                        "431 Request Header Fields Too Large",
                        "request head too large\n",
                        Flow::Close,
                    )
                    .await;
                    linger(&mut conn.client).await;
                    return Next::Close;
                }
                Err(head::Reject::Invalid(reason)) => {
                    let body = format!("bad request: {reason}\n");
                    let _ = error_response(
                        &mut conn.client,
                        &mut conn.out,
                        "400 Bad Request",
                        &body,
                        Flow::Close,
                    )
                    .await;
                    linger(&mut conn.client).await;
                    return Next::Close;
                }
            }
        }
        // One clock read per head that is not already here (and one more for a
        // head that comes in pieces after an idle wait); the timer itself is only
        // re-armed when it fires (see `Waiting`).
        let (until, idle) = *deadline.get_or_insert_with(|| {
            let idle = !first && conn.cbuf.is_empty();
            let wait = if idle {
                shared.idle_timeout
            } else {
                shared.header_timeout
            };
            (Instant::now() + wait, idle)
        });
        match waiting.read(&mut conn.client, &mut conn.cbuf, until).await {
            // The next request has begun: from now its head has the header timeout.
            Waited::Read if idle => deadline = None,
            Waited::Read => {}
            // EOF, an error, the deadline or the proxy stopping: a client between
            // requests (or one too slow to send a head) is simply closed.
            Waited::Closed | Waited::TimedOut | Waited::Stopped => return Next::Close,
        }
    }
}

/// Proxies one request whose head is rewritten in `conn.fwd`: choose an endpoint,
/// forward, relay the answer, count.
async fn proxy(conn: &mut Conn, shared: &Shared, req: &head::Request, start: Instant) -> Flow {
    let fp = &shared.h1;
    // Usually the whole body (or none) came with the head: then the request goes
    // out in one write and can be sent again if a pooled connection was stale.
    let whole = buffered_body(req, &conn.cbuf.filled()[req.head_len..]);
    let keep_after_error = match whole {
        Some(_) if req.keep_alive => Flow::KeepAlive,
        Some(_) => Flow::Close,
        None => Flow::Linger,
    };
    match whole {
        Some(len) => {
            let body = &conn.cbuf.filled()[req.head_len..req.head_len + len];
            conn.fwd.extend_from_slice(body);
            conn.cbuf.consume(req.head_len + len);
        }
        None => conn.cbuf.consume(req.head_len),
    }

    let Some(mut target) = shared.backends.pick() else {
        shared.metrics.request(NO_VERSION, 503, start.elapsed());
        return error_response(
            &mut conn.client,
            &mut conn.out,
            "503 Service Unavailable",
            &fp.no_endpoints,
            keep_after_error,
        )
        .await;
    };

    let mut retried = false;
    let mut fresh = false;
    loop {
        let pooled = if fresh {
            None
        } else {
            fp.pool.take(target.addr)
        };
        let reused = pooled.is_some();
        let mut endpoint = match pooled {
            Some(stream) => stream,
            None => match upstream::connect(target.addr).await {
                Ok(stream) => stream,
                Err(source) => {
                    let err = Error::Connect {
                        addr: target.addr,
                        source,
                    };
                    // Nothing was sent: another endpoint may take an idempotent
                    // request (the body, if streamed, is still unread).
                    if !retried
                        && req.idempotent
                        && let Some(other) = shared.backends.pick_other(target.addr)
                    {
                        tracing::debug!(service = %shared.service, endpoint = %target.addr, pod = %target.pod, error = %super::http::chain(&err), "connect failed; retrying on another endpoint");
                        retried = true;
                        target = other;
                        continue;
                    }
                    return bad_gateway(conn, shared, &target, &err, start, keep_after_error).await;
                }
            },
        };
        match exchange(
            conn,
            shared,
            req,
            &target,
            &mut endpoint,
            whole.is_some(),
            start,
        )
        .await
        {
            Ok(done) => {
                if done.reusable {
                    fp.pool.put(target.addr, endpoint);
                }
                return done.flow;
            }
            Err(Failure::Unanswered(err))
                if reused && !retried && req.idempotent && whole.is_some() =>
            {
                // A pooled connection the endpoint closed as the request went out.
                tracing::debug!(service = %shared.service, endpoint = %target.addr, pod = %target.pod, error = %super::http::chain(&err), "pooled connection closed; retrying");
                retried = true;
                fresh = true;
                if let Some(other) = shared.backends.pick_other(target.addr) {
                    target = other;
                }
            }
            Err(Failure::Unanswered(err) | Failure::Endpoint(err)) => {
                // With a streamed body, part of it may still be on its way: the
                // connection's framing is lost (`Linger`).
                return bad_gateway(conn, shared, &target, &err, start, keep_after_error).await;
            }
            Err(Failure::Abort) => return Flow::Close,
        }
    }
}

/// How an exchange ended well.
struct Done {
    /// The endpoint connection can serve another request.
    reusable: bool,
    flow: Flow,
}

/// Sends the request (head in `conn.fwd`, then the rest of the body from the
/// client unless `whole`) and relays the response.
async fn exchange(
    conn: &mut Conn,
    shared: &Shared,
    req: &head::Request,
    target: &Target,
    endpoint: &mut TcpStream,
    whole: bool,
    start: Instant,
) -> Result<Done, Failure> {
    let addr = target.addr;
    let (mut er, mut ew) = endpoint.split();
    let (mut cr, mut cw) = conn.client.split();
    conn.ubuf.clear();
    let meter = &mut conn.meter;
    let count = |status| meter.count(&shared.metrics, &target.version, status, start);
    let relay = relay_response(
        &mut er,
        &mut cw,
        &mut conn.ubuf,
        &mut conn.out,
        req,
        addr,
        count,
    );
    if whole {
        if let Err(source) = ew.write_all(&conn.fwd).await {
            return Err(Failure::Unanswered(Error::Io { addr, source }));
        }
        let relayed = relay.await?;
        return Ok(Done {
            reusable: relayed.reusable,
            flow: relayed.flow,
        });
    }

    // The body streams in while the response may already stream out (an echo, or
    // a `100 Continue` the client waits for before it sends the body).
    let body = copy_body(
        &mut cr,
        &mut ew,
        &mut conn.cbuf,
        req.body,
        false,
        &mut conn.fwd,
    );
    let mut body = pin!(body);
    let mut relay = pin!(relay);
    let mut body_result: Option<Result<(), CopyError>> = None;
    let relayed = poll_fn(|cx| {
        if body_result.is_none()
            && let Poll::Ready(r) = body.as_mut().poll(cx)
        {
            if let Err(CopyError::Read | CopyError::Malformed) = r {
                // The client went away or sent a broken body mid-request.
                return Poll::Ready(Err(Failure::Abort));
            }
            // Ok, or the endpoint stopped reading: its answer tells which.
            body_result = Some(r);
        }
        relay.as_mut().poll(cx)
    })
    .await?;
    // An endpoint may answer before it has read the whole body (413, say): then
    // the rest of it is still on the client connection, and both must close.
    let body_done = matches!(body_result, Some(Ok(())));
    Ok(Done {
        reusable: relayed.reusable && body_done,
        flow: if body_done {
            relayed.flow
        } else {
            Flow::Linger
        },
    })
}

/// A response relayed to the client.
struct Relayed {
    reusable: bool,
    flow: Flow,
}

/// Reads the endpoint's response head (relaying interim 1xx ones), `count`s its
/// status, and copies head and body to the client.
async fn relay_response<R, W>(
    er: &mut R,
    cw: &mut W,
    ubuf: &mut Buf,
    out: &mut Vec<u8>,
    req: &head::Request,
    addr: SocketAddr,
    count: impl FnOnce(u16),
) -> Result<Relayed, Failure>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut answered = false;
    loop {
        let resp = loop {
            if !ubuf.is_empty() {
                match head::response(ubuf.filled(), out, req) {
                    Ok(Some(resp)) => break resp,
                    Ok(None) => {}
                    Err(reason) => return Err(Failure::Endpoint(Error::Invalid { addr, reason })),
                }
            }
            match er.read(ubuf.spare(head::MAX_HEAD)).await {
                Ok(0) if !answered => return Err(Failure::Unanswered(Error::Closed { addr })),
                Ok(0) => return Err(Failure::Endpoint(Error::Closed { addr })),
                Ok(n) => {
                    ubuf.advance(n);
                    answered = true;
                }
                Err(source) if !answered => {
                    return Err(Failure::Unanswered(Error::Io { addr, source }));
                }
                Err(source) => return Err(Failure::Endpoint(Error::Io { addr, source })),
            }
        };
        ubuf.consume(resp.head_len);
        if resp.status < 200 {
            if resp.status == 101 {
                // Only `Upgrade` requests may switch, and those take the hyper path.
                return Err(Failure::Endpoint(Error::Invalid {
                    addr,
                    reason: "101 Switching Protocols to a request without Upgrade",
                }));
            }
            // Interim (`100 Continue`, `103 Early Hints`): passed on to HTTP/1.1
            // clients (HTTP/1.0 ones cannot take them), then the real answer.
            if req.minor == 1 {
                cw.write_all(out).await.map_err(|_| Failure::Abort)?;
            }
            continue;
        }
        count(resp.status);
        copy_body(er, cw, ubuf, resp.body, resp.dechunk, out)
            .await
            .map_err(|_| Failure::Abort)?;
        return Ok(Relayed {
            // Bytes past the body: the endpoint is confused; do not reuse.
            reusable: resp.reusable && ubuf.is_empty(),
            flow: if resp.client_keep_alive {
                Flow::KeepAlive
            } else {
                Flow::Close
            },
        });
    }
}

/// How many bytes of `buf` (what followed the head) make the whole request body,
/// if it is all there.
fn buffered_body(req: &head::Request, buf: &[u8]) -> Option<usize> {
    match req.body {
        Body::None => Some(0),
        Body::Length(n) => usize::try_from(n).ok().filter(|n| *n <= buf.len()),
        Body::Chunked => match Chunked::new().scan(buf, |_| {}) {
            Ok(Progress::Done(n)) => Some(n),
            // A malformed body fails as it streams, where the endpoint sees it.
            Ok(Progress::More) | Err(_) => None,
        },
        Body::ToEof => None,
    }
}

/// Why copying a body stopped.
enum CopyError {
    /// Reading from the sender failed, or it closed before the body's end.
    Read,
    /// Writing to the receiver failed.
    Write,
    /// The chunked framing was broken.
    Malformed,
}

/// Copies one body framed as `kind` from `r` to `w`: first what `buf` holds,
/// then as it arrives. Bytes past the body stay in `buf`.
///
/// `out` holds a head still to be written, or is empty: the head goes out with
/// the first body bytes in one write. With `dechunk`, a chunked body loses its
/// framing (for an HTTP/1.0 client); `out` is then scratch for the payload.
async fn copy_body<R, W>(
    r: &mut R,
    w: &mut W,
    buf: &mut Buf,
    kind: Body,
    dechunk: bool,
    out: &mut Vec<u8>,
) -> Result<(), CopyError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut left = match kind {
        Body::Length(n) => n,
        _ => 0,
    };
    let mut chunked = Chunked::new();
    loop {
        let avail = buf.filled();
        let (take, done) = match kind {
            Body::None => (0, true),
            Body::Length(_) => {
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(avail.len());
                left -= take as u64;
                (take, left == 0)
            }
            Body::Chunked => {
                let progress = chunked.scan(avail, |range| {
                    if dechunk {
                        out.extend_from_slice(&avail[range]);
                    }
                });
                match progress.map_err(|_| CopyError::Malformed)? {
                    Progress::Done(n) => (n, true),
                    Progress::More => (avail.len(), false),
                }
            }
            Body::ToEof => (avail.len(), false),
        };
        if dechunk || take == 0 {
            // `out` is all there is to write: a head, and the payload if de-chunked.
        } else {
            out.extend_from_slice(&avail[..take]);
        }
        if !out.is_empty() {
            w.write_all(out).await.map_err(|_| CopyError::Write)?;
            out.clear();
        }
        buf.consume(take);
        if done {
            return Ok(());
        }
        // `buf` is empty here: all it held went out above.
        let spare = buf.spare(BODY_BUF);
        let room = spare.len();
        match r.read(spare).await {
            Ok(0) if kind == Body::ToEof => return Ok(()),
            Ok(0) | Err(_) => return Err(CopyError::Read),
            Ok(n) => {
                buf.advance(n);
                if n == room {
                    // A bulk transfer: fewer, larger reads and writes.
                    buf.grow(BODY_BUF);
                }
            }
        }
    }
}

async fn bad_gateway(
    conn: &mut Conn,
    shared: &Shared,
    target: &Target,
    err: &Error,
    start: Instant,
    flow: Flow,
) -> Flow {
    conn.meter
        .count(&shared.metrics, &target.version, 502, start);
    let reason = super::http::chain(err);
    tracing::debug!(service = %shared.service, endpoint = %target.addr, pod = %target.pod, error = %reason, "endpoint failed");
    let body = format!(
        "bad gateway: service {}: endpoint {} (pod {}, version {}) failed: {reason}\n",
        shared.h1.service, target.addr, target.pod, target.version,
    );
    error_response(
        &mut conn.client,
        &mut conn.out,
        "502 Bad Gateway",
        &body,
        flow,
    )
    .await
}

/// Writes a plain-text response of the proxy's own; returns how the connection
/// goes on (closed if the write failed).
async fn error_response(
    client: &mut TcpStream,
    out: &mut Vec<u8>,
    status: &str,
    body: &str,
    flow: Flow,
) -> Flow {
    use std::io::Write as _;
    out.clear();
    let _ = write!(
        out,
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n{}\r\n{body}",
        body.len(),
        if flow == Flow::KeepAlive {
            ""
        } else {
            "connection: close\r\n"
        },
    );
    match client.write_all(out).await {
        Ok(()) => flow,
        Err(_) => Flow::Close,
    }
}

/// Closes a connection after reading and discarding what the client still sends,
/// for at most [`LINGER`] (and 1 MiB): closing with unread bytes makes the kernel
/// reset the connection, which can destroy the response the client has not read.
async fn linger_close(mut stream: TcpStream) {
    linger(&mut stream).await;
}

async fn linger(stream: &mut TcpStream) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    let mut budget = 1usize << 20;
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(n @ 1..) = stream.read(&mut sink).await {
            budget = budget.saturating_sub(n);
            if budget == 0 {
                break;
            }
        }
    })
    .await;
}

/// What waiting for request bytes ended with.
enum Waited {
    /// Bytes were added to the buffer.
    Read,
    /// EOF or an error.
    Closed,
    TimedOut,
    Stopped,
}

/// A client connection's wait for the next request bytes: the header-read timer
/// and the proxy's stop signal, both made once per connection.
///
/// Neither costs much per request. The timer is armed lazily: it keeps its old
/// deadline and, when that passes, is moved to the current head's deadline if
/// that is later (it is moved at once only to an earlier one, when a head comes
/// in pieces after an idle wait); arming it per request would insert into and remove from
/// tokio's timer wheel every time. The stop signal's future is polled once, which
/// registers the task to be woken; after that an atomic load tells whether it
/// came.
struct Waiting {
    timer: Pin<Box<Sleep>>,
    stop: Pin<Box<dyn Future<Output = ()> + Send>>,
    stop_registered: bool,
    stopped: watch::Receiver<bool>,
}

impl Waiting {
    fn new(stopped: watch::Receiver<bool>, header_timeout: Duration) -> Self {
        let mut registered = stopped.clone();
        Self {
            timer: Box::pin(tokio::time::sleep(header_timeout)),
            stop: Box::pin(async move { super::until_stopped(&mut registered).await }),
            stop_registered: false,
            stopped,
        }
    }

    fn is_stopped(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.stop_registered {
            self.stop_registered = true;
            return self.stop.as_mut().poll(cx).is_ready();
        }
        // Only `true` is ever sent; an error means the handle is gone.
        !matches!(self.stopped.has_changed(), Ok(false))
    }

    /// Reads from `stream` into `buf` unless `deadline` passes or the proxy stops
    /// first.
    async fn read(&mut self, stream: &mut TcpStream, buf: &mut Buf, deadline: Instant) -> Waited {
        let spare = buf.spare(head::MAX_HEAD);
        if spare.is_empty() {
            // Cannot happen: a full buffer is a head too large, refused before.
            return Waited::Closed;
        }
        // An earlier deadline than the armed one (a head's after an idle wait's):
        // re-arm now, or the slow head would live until the idle deadline.
        if deadline < self.timer.deadline() {
            self.timer.as_mut().reset(deadline);
        }
        let polled = poll_fn(|cx| {
            let mut rb = ReadBuf::new(spare);
            match Pin::new(&mut *stream).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                    return Poll::Ready(Err(Waited::Closed));
                }
                Poll::Ready(Ok(())) => return Poll::Ready(Ok(rb.filled().len())),
                Poll::Ready(Err(_)) => return Poll::Ready(Err(Waited::Closed)),
                Poll::Pending => {}
            }
            if self.is_stopped(cx) {
                return Poll::Ready(Err(Waited::Stopped));
            }
            while self.timer.as_mut().poll(cx).is_ready() {
                if Instant::now() >= deadline {
                    return Poll::Ready(Err(Waited::TimedOut));
                }
                self.timer.as_mut().reset(deadline);
            }
            Poll::Pending
        })
        .await;
        match polled {
            Ok(n) => {
                buf.advance(n);
                Waited::Read
            }
            Err(w) => w,
        }
    }
}

/// A byte buffer read into at its end and consumed from its start.
struct Buf {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl Buf {
    fn new(size: usize) -> Self {
        Self {
            data: vec![0; size],
            start: 0,
            end: 0,
        }
    }

    fn filled(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.end);
        if self.start == self.end {
            self.clear();
        }
    }

    fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Room to read into after the filled part: moves that part to the front
    /// when the end is reached, and grows the buffer up to `max` when it is
    /// full. Empty only when `max` bytes are filled.
    fn spare(&mut self, max: usize) -> &mut [u8] {
        if self.end == self.data.len() {
            if self.start > 0 {
                self.data.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                self.grow(max);
            }
        }
        &mut self.data[self.end..]
    }

    /// Doubles the buffer, up to `max`.
    fn grow(&mut self, max: usize) {
        if self.data.len() < max {
            let size = (self.data.len() * 2).min(max);
            self.data.resize(size, 0);
        }
    }

    /// Marks `n` bytes after the filled part (just read into [`Buf::spare`]) as
    /// filled.
    fn advance(&mut self, n: usize) {
        self.end += n;
        debug_assert!(self.end <= self.data.len());
    }
}

/// A client connection handed to the hyper path with the bytes the fast path
/// already read from it, which are read again first.
pub(super) struct Rewind {
    prefix: Vec<u8>,
    pos: usize,
    inner: TcpStream,
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pos < this.prefix.len() {
            let n = (this.prefix.len() - this.pos).min(buf.remaining());
            buf.put_slice(&this.prefix[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.prefix.len() {
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buf_compacts_and_grows_up_to_its_limit() {
        let mut b = Buf::new(4);
        b.spare(8)[..4].copy_from_slice(b"abcd");
        b.advance(4);
        b.consume(1);
        // Full at the end with room at the front: compacted, not grown.
        assert_eq!(b.spare(8).len(), 1);
        assert_eq!(b.filled(), b"bcd");
        b.advance(1);
        // Full from the front: grown to the limit, then no more.
        assert_eq!(b.spare(8).len(), 4);
        b.advance(4);
        assert!(b.spare(8).is_empty());
        b.consume(8);
        assert!(b.is_empty());
    }
}
