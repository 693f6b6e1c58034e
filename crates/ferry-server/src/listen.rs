//! The API's accept loop: HTTP/1.1 through hyper, with the limits that keep slow
//! clients from taking the daemon down — a header timeout, a keep-alive idle
//! timeout, and caps on connections in all and per remote IP — and the
//! open-files limit raised at start.
//!
//! A flood of connections that never finish their request heads once took every
//! file descriptor of the daemon: `/healthz` and the Services (whose proxies live
//! in the same process) stopped answering. Now such clients are closed after the
//! header timeout, at most the cap are held at once, connections past it are
//! closed at once without touching established ones, and running out of
//! descriptors anyway (`EMFILE`) is logged once per burst and backed off.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use futures_util::task::AtomicWaker;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use ferry_runtime::config::ConnectionLimits;
use ferry_runtime::proxy::limit::{AcceptLog, Limiter, Permit};

/// Largest request head (and read buffer) a connection may hold: far above any
/// real client's, and it bounds what each slow client costs in memory.
const MAX_BUF: usize = 64 * 1024;

/// Raises the soft open-files limit (`RLIMIT_NOFILE`) to the hard one, so that
/// connection caps derived from it are as high as the system allows; logs the
/// figures once. The hard limit is never touched.
pub fn raise_fd_limit() {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    // An unlimited hard limit is still bounded by the kernel's `nr_open`.
    let target = if hard == nix::sys::resource::RLIM_INFINITY {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20)
    } else {
        hard
    };
    if soft >= target {
        tracing::info!("open-files limit: {soft} (the hard limit)");
        return;
    }
    match setrlimit(Resource::RLIMIT_NOFILE, target, hard) {
        Ok(()) => {
            tracing::info!("open-files limit raised from {soft} to {target} (the hard limit)")
        }
        Err(err) => tracing::warn!(
            "open-files limit stays at {soft}: raising it to the hard limit {target} failed: {err}"
        ),
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then stops
/// accepting, lets every connection finish its response (idle ones close at
/// once) and returns when all are closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let name = format!("API on {}", listener.local_addr()?);
    let limiter = Limiter::new(limits.max_connections, limits.max_connections_per_ip);
    tracing::info!(
        "{name}: at most {} connections ({} per remote IP), header timeout {:?}, idle timeout {:?}",
        limits.max_connections,
        limits.max_connections_per_ip,
        limits.header_timeout,
        limits.idle_timeout
    );
    let service = TowerToHyperService::new(router);
    let mut log = AcceptLog::default();
    // Every connection task holds a receiver; `closed` resolves when all are gone.
    let (all_closed, open) = watch::channel(());
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(err) => {
                if let Some(wait) = log.failed(&name, &err) {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                continue;
            }
        };
        let permit = match limiter.admit(peer.ip()) {
            Ok(permit) => permit,
            Err(why) => {
                // Closed at once: established connections keep being served.
                log.refused(&name, why, &limiter);
                drop(stream);
                continue;
            }
        };
        log.admitted(&name);
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            stream,
            peer,
            service.clone(),
            Timeouts::of(&limits),
            shutdown.clone(),
            (open.clone(), permit),
        ));
    }
    drop(listener);
    drop(open);
    all_closed.closed().await;
    Ok(())
}

#[derive(Clone, Copy, Debug)]
struct Timeouts {
    header: Duration,
    idle: Duration,
}

impl Timeouts {
    fn of(limits: &ConnectionLimits) -> Self {
        Self {
            header: limits.header_timeout,
            idle: limits.idle_timeout,
        }
    }
}

/// Serves one connection until it closes, times out, or the daemon stops.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    service: TowerToHyperService<Router>,
    timeouts: Timeouts,
    shutdown: CancellationToken,
    // Dropped when the connection ends.
    _held: (watch::Receiver<()>, Permit),
) {
    let phase = Arc::new(Phase::default());
    let io = Guarded::new(stream, phase.clone(), timeouts);
    let requests = {
        let phase = phase.clone();
        hyper::service::service_fn(move |mut req: Request<Incoming>| {
            // As `into_make_service_with_connect_info` would: handlers may ask
            // for the peer.
            req.extensions_mut().insert(ConnectInfo(peer));
            let busy = Busy::new(phase.clone());
            let response = hyper::service::Service::call(&service, req);
            async move {
                let resp = response.await?;
                if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                    // The connection becomes the handler's stream: no more
                    // request heads, so no more timeouts.
                    busy.phase.upgraded.store(true, Ordering::Release);
                }
                Ok::<_, Infallible>(resp.map(|body| Tracked { body, _busy: busy }))
            }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .max_buf_size(MAX_BUF)
        .serve_connection(TokioIo::new(io), requests)
        .with_upgrades();
    tokio::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        _ = shutdown.cancelled() => {
            // Idle connections close now; a response in flight finishes (streams
            // end on the same token).
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(err) = ended {
        tracing::trace!(%peer, error = %err, "API connection ended");
    }
}

/// What a connection's requests tell its reads: whether a response is being
/// made or sent (then no timeout applies), and whether it switched protocols.
#[derive(Default)]
struct Phase {
    /// Requests whose response is not yet fully sent.
    busy: AtomicUsize,
    upgraded: AtomicBool,
    /// The reading task, woken when `busy` drops to 0 so that it arms the idle
    /// timeout.
    reader: AtomicWaker,
}

/// One request in flight, from the call of the handler until its response body
/// is sent (or dropped).
struct Busy {
    phase: Arc<Phase>,
}

impl Busy {
    fn new(phase: Arc<Phase>) -> Self {
        phase.busy.fetch_add(1, Ordering::AcqRel);
        Self { phase }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if self.phase.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.phase.reader.wake();
        }
    }
}

/// A response body that keeps its request counted as in flight until it is
/// sent: a watch or a followed log is never cut by the idle timeout.
struct Tracked {
    body: axum::body::Body,
    _busy: Busy,
}

impl Body for Tracked {
    type Data = <axum::body::Body as Body>::Data;
    type Error = <axum::body::Body as Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Where a connection is between requests, as its reads see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// A request head is being read: the header deadline runs.
    Head,
    /// A request is being served: no deadline.
    Busy,
    /// Waiting for the next request's first byte: the idle deadline runs.
    Idle,
}

/// A client connection whose reads fail with `TimedOut` once the header or idle
/// deadline passes; hyper then closes it.
struct Guarded {
    io: TcpStream,
    phase: Arc<Phase>,
    state: State,
    deadline: Pin<Box<Sleep>>,
    timeouts: Timeouts,
}

impl Guarded {
    fn new(io: TcpStream, phase: Arc<Phase>, timeouts: Timeouts) -> Self {
        Self {
            io,
            phase,
            // The first request's head is due within the header timeout of the
            // accept, whether or not any byte of it came.
            state: State::Head,
            deadline: Box::pin(tokio::time::sleep(timeouts.header)),
            timeouts,
        }
    }

    fn arm(&mut self, state: State, timeout: Duration) {
        self.state = state;
        self.deadline.as_mut().reset(Instant::now() + timeout);
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                // The first bytes of a new request: its head is due within the
                // header timeout. (Bytes of a request body leave `Busy` as is.)
                if buf.filled().len() > before
                    && this.state != State::Head
                    && this.phase.busy.load(Ordering::Acquire) == 0
                {
                    let header = this.timeouts.header;
                    this.arm(State::Head, header);
                }
                return Poll::Ready(Ok(()));
            }
            Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
            Poll::Pending => {}
        }
        if this.phase.upgraded.load(Ordering::Acquire) {
            return Poll::Pending;
        }
        // Registered before `busy` is looked at, so a response ending in between
        // still wakes this task to arm the idle timeout.
        this.phase.reader.register(cx.waker());
        if this.phase.busy.load(Ordering::Acquire) > 0 {
            this.state = State::Busy;
            return Poll::Pending;
        }
        if this.state == State::Busy {
            let idle = this.timeouts.idle;
            this.arm(State::Idle, idle);
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            let what = match this.state {
                State::Idle => "idle keep-alive connection",
                _ => "client too slow to send a request head",
            };
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)));
        }
        Poll::Pending
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    async fn start(
        limits: ConnectionLimits,
    ) -> (
        SocketAddr,
        CancellationToken,
        tokio::task::JoinHandle<io::Result<()>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new()
            .route("/healthz", axum::routing::get(|| async { "ok" }))
            .route(
                "/stream",
                axum::routing::get(|| async {
                    // One chunk now, one after a pause longer than every timeout.
                    let chunks = futures_util::stream::unfold(0, |n| async move {
                        match n {
                            0 => Some((Ok::<_, Infallible>("first\n"), 1)),
                            1 => {
                                tokio::time::sleep(Duration::from_millis(600)).await;
                                Some((Ok("second\n"), 2))
                            }
                            _ => None,
                        }
                    });
                    axum::body::Body::from_stream(chunks)
                }),
            );
        let shutdown = CancellationToken::new();
        let served = tokio::spawn(serve(listener, router, limits, shutdown.clone()));
        (addr, shutdown, served)
    }

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: Duration::from_millis(200),
            idle_timeout: Duration::from_millis(300),
            max_connections: 100,
            max_connections_per_ip: 10,
        }
    }

    /// Reads until EOF (true) or `within` passes (false).
    fn closed_within(s: &mut std::net::TcpStream, within: Duration) -> bool {
        s.set_read_timeout(Some(within)).unwrap();
        let mut sink = Vec::new();
        s.read_to_end(&mut sink).is_ok()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_streamed_response_outlives_the_idle_and_header_timeouts() {
        let (addr, shutdown, served) = start(limits()).await;
        let body = tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n")
                .unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !String::from_utf8_lossy(&got).contains("second") {
                let n = s.read(&mut buf).unwrap();
                assert!(
                    n > 0,
                    "closed mid-stream: {}",
                    String::from_utf8_lossy(&got)
                );
                got.extend_from_slice(&buf[..n]);
            }
            // Then idle: closed after the idle timeout.
            assert!(closed_within(&mut s, Duration::from_secs(5)));
            String::from_utf8_lossy(&got).into_owned()
        })
        .await
        .unwrap();
        assert!(body.contains("first") && body.contains("second"), "{body}");
        shutdown.cancel();
        served.await.unwrap().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_partial_head_is_closed_after_the_header_timeout_and_keep_alive_goes_on() {
        let (addr, shutdown, served) = start(limits()).await;
        tokio::task::spawn_blocking(move || {
            let mut slow = std::net::TcpStream::connect(addr).unwrap();
            slow.write_all(b"GET /healthz HTTP/1.1\r\nhost:").unwrap();
            assert!(closed_within(&mut slow, Duration::from_secs(5)));
            // A keep-alive client answers twice on one connection.
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            for _ in 0..2 {
                s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
                    .unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut got = Vec::new();
                let mut buf = [0u8; 1024];
                while !got.ends_with(b"\r\n\r\nok") {
                    let n = s.read(&mut buf).unwrap();
                    assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
                    got.extend_from_slice(&buf[..n]);
                }
                assert!(got.starts_with(b"HTTP/1.1 200"));
            }
        })
        .await
        .unwrap();
        shutdown.cancel();
        served.await.unwrap().unwrap();
    }
}
