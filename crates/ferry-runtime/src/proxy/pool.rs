//! Keep-alive HTTP/1.1 connections to endpoints.
//!
//! Written for the proxy's hot path instead of hyper-util's general client:
//!
//! - A connection is had *before* the request is built, so a refused connect can be
//!   retried elsewhere without consuming the request.
//! - A connection is driven by the task of the request using it (as an nginx worker
//!   handles both sides of an exchange in one event handler), not by a task of its
//!   own: no wake-up crosses tasks or threads on the way to the endpoint and back.
//!   That halves the proxy's scheduling work per request.
//! - It goes back to the pool when the response body has been read to its end;
//!   idle connections are not polled, and one the endpoint closed meanwhile is
//!   noticed and dropped when it is next taken.

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long connecting to an endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an idle connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Most idle connections kept per endpoint.
const MAX_IDLE_PER_ENDPOINT: usize = 512;

type Io = TokioIo<TcpStream>;

/// Why an exchange with an endpoint failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum Error {
    /// The TCP connect failed or timed out: nothing was sent.
    #[error("connect to {addr}: {source}")]
    Connect {
        /// The endpoint.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The HTTP/1 exchange failed.
    #[error("HTTP/1 exchange with {addr}: {source}")]
    Http {
        /// The endpoint.
        addr: SocketAddr,
        /// What hyper said.
        source: hyper::Error,
    },
    /// The endpoint closed the connection before it answered.
    #[error("{addr} closed the connection before answering")]
    Closed {
        /// The endpoint.
        addr: SocketAddr,
    },
}

impl Error {
    /// Whether nothing reached the endpoint (a retry elsewhere is safe).
    pub(super) fn is_connect(&self) -> bool {
        matches!(self, Error::Connect { .. })
    }
}

/// One HTTP/1.1 connection: its request handle and the state machine that drives
/// it, polled by whoever uses the connection.
pub(super) struct Conn {
    tx: http1::SendRequest<Incoming>,
    /// `None` once the connection has ended.
    driver: Option<http1::Connection<Io, Incoming>>,
    addr: SocketAddr,
}

impl Conn {
    /// Makes progress on the connection; false once it has ended.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(driver) = &mut self.driver
            && Pin::new(driver).poll(cx).is_ready()
        {
            self.driver = None;
        }
        self.driver.is_some()
    }

    /// Waits until the connection can take a request; false if it has ended.
    async fn ready(&mut self) -> bool {
        poll_fn(|cx| {
            if !self.drive(cx) {
                return Poll::Ready(false);
            }
            self.tx.poll_ready(cx).map(|r| r.is_ok())
        })
        .await
    }

    /// Sends `req` and waits for the response head, driving the connection. On a
    /// connection that turns out closed before the request was written, the
    /// request is given back.
    pub(super) async fn send(
        &mut self,
        req: Request<Incoming>,
    ) -> Result<Response<Incoming>, (Error, Option<Request<Incoming>>)> {
        let addr = self.addr;
        let mut response = pin!(self.tx.try_send_request(req));
        let result = poll_fn(|cx| {
            if let Poll::Ready(r) = response.as_mut().poll(cx) {
                return Poll::Ready(Some(r));
            }
            if self.drive(cx) {
                // Driving may have completed the response.
                return response.as_mut().poll(cx).map(Some);
            }
            // The connection ended; its dispatcher answers the request with an
            // error when dropped, so this is ready now.
            match response.as_mut().poll(cx) {
                Poll::Ready(r) => Poll::Ready(Some(r)),
                Poll::Pending => Poll::Ready(None),
            }
        })
        .await;
        match result {
            Some(Ok(resp)) => Ok(resp),
            Some(Err(mut err)) => {
                let req = err.take_message();
                Err((
                    Error::Http {
                        addr,
                        source: err.into_error(),
                    },
                    req,
                ))
            }
            None => Err((Error::Closed { addr }, None)),
        }
    }
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// Idle connections by endpoint address.
#[derive(Default)]
pub(super) struct Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<Idle>>>,
}

impl Pool {
    /// An empty pool, and a task that drops expired idle connections every few
    /// seconds until the pool is gone.
    pub(super) fn new() -> Arc<Self> {
        let pool = Arc::new(Self::default());
        tokio::spawn(sweep(Arc::downgrade(&pool)));
        pool
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Vec<Idle>>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A ready connection to `addr`: the most recently used idle one, else a new
    /// one. The flag says whether it was reused (and so may yet turn out closed).
    pub(super) async fn get(&self, addr: SocketAddr) -> Result<(Conn, bool), Error> {
        loop {
            let idle = {
                let mut map = self.lock();
                map.get_mut(&addr).and_then(|list| {
                    while let Some(idle) = list.pop() {
                        if idle.since.elapsed() < IDLE_TIMEOUT {
                            return Some(idle.conn);
                        }
                    }
                    None
                })
            };
            let Some(mut conn) = idle else { break };
            // Usually ready at once; false means the endpoint closed it.
            if conn.ready().await {
                return Ok((conn, true));
            }
        }
        Ok((connect(addr).await?, false))
    }

    /// Returns a connection whose exchange is complete.
    fn put(&self, conn: Conn) {
        if conn.driver.is_none() || conn.tx.is_closed() {
            return;
        }
        let mut map = self.lock();
        let list = map.entry(conn.addr).or_default();
        if list.len() < MAX_IDLE_PER_ENDPOINT {
            list.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    fn sweep(&self) {
        let mut map = self.lock();
        map.retain(|_, list| {
            list.retain(|i| i.since.elapsed() < IDLE_TIMEOUT);
            !list.is_empty()
        });
    }
}

async fn sweep(pool: Weak<Pool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tick.tick().await;
        match pool.upgrade() {
            Some(pool) => pool.sweep(),
            None => return,
        }
    }
}

async fn tcp(addr: SocketAddr) -> Result<Io, Error> {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(source)) => return Err(Error::Connect { addr, source }),
        Err(_) => {
            return Err(Error::Connect {
                addr,
                source: std::io::ErrorKind::TimedOut.into(),
            });
        }
    };
    let _ = stream.set_nodelay(true);
    Ok(TokioIo::new(stream))
}

/// A new pooled HTTP/1.1 connection to `addr`.
pub(super) async fn connect(addr: SocketAddr) -> Result<Conn, Error> {
    let (tx, driver) = http1::handshake(tcp(addr).await?)
        .await
        .map_err(|source| Error::Http { addr, source })?;
    Ok(Conn {
        tx,
        driver: Some(driver),
        addr,
    })
}

/// A new connection to `addr` for one request that may switch protocols
/// (`Upgrade`), driven by its own task and never pooled.
pub(super) async fn connect_upgradable(
    addr: SocketAddr,
) -> Result<http1::SendRequest<Incoming>, Error> {
    let (tx, driver) = http1::handshake(tcp(addr).await?)
        .await
        .map_err(|source| Error::Http { addr, source })?;
    tokio::spawn(async move {
        if let Err(err) = driver.with_upgrades().await {
            tracing::trace!(endpoint = %addr, error = %err, "endpoint connection ended");
        }
    });
    Ok(tx)
}

/// An endpoint's response body, streamed to the client. Polling it drives the
/// endpoint connection; read to its end, the connection goes back to the pool.
pub(super) struct PooledBody {
    inner: Incoming,
    done: bool,
    conn: Option<(Conn, Arc<Pool>)>,
}

impl PooledBody {
    /// `conn`: the connection the body arrives on and the pool to return it to,
    /// or `None` when it is driven elsewhere.
    pub(super) fn new(inner: Incoming, conn: Option<(Conn, Arc<Pool>)>) -> Self {
        Self {
            inner,
            done: false,
            conn,
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        if let Some((conn, _)) = &mut this.conn {
            conn.drive(cx);
        }
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            this.done = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // Dropped before its end (the client went away, or an error): the
        // connection is mid-response and cannot be reused.
        if self.is_end_stream()
            && let Some((conn, pool)) = self.conn.take()
        {
            pool.put(conn);
        }
    }
}
