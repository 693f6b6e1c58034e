//! Keep-alive connections to endpoints for the HTTP/1 fast path: plain TCP
//! streams, since the fast path speaks HTTP itself.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long connecting to an endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an idle connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Most idle connections kept per endpoint.
const MAX_IDLE_PER_ENDPOINT: usize = 512;

struct Idle {
    stream: TcpStream,
    since: Instant,
}

/// Idle connections by endpoint address.
#[derive(Default)]
pub(crate) struct Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<Idle>>>,
}

impl Pool {
    /// An empty pool, and a task that drops expired idle connections every few
    /// seconds until the pool is gone. Must run inside a tokio runtime.
    pub(crate) fn new() -> Arc<Self> {
        let pool = Arc::new(Self::default());
        tokio::spawn(sweep(Arc::downgrade(&pool)));
        pool
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Vec<Idle>>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently used idle connection to `addr` that still looks open.
    ///
    /// An endpoint that closed an idle connection has sent a FIN, which the
    /// reactor has usually seen by now: a non-blocking read tells, without a
    /// system call when nothing arrived. One that closes just as the request goes
    /// out is the caller's to retry.
    pub(crate) fn take(&self, addr: SocketAddr) -> Option<TcpStream> {
        let mut map = self.lock();
        let list = map.get_mut(&addr)?;
        while let Some(idle) = list.pop() {
            if is_open(&idle.stream) {
                return Some(idle.stream);
            }
        }
        None
    }

    /// Keeps `stream`, whose last exchange is complete, for the next request to
    /// `addr`.
    pub(crate) fn put(&self, addr: SocketAddr, stream: TcpStream) {
        let since = Instant::now();
        let mut map = self.lock();
        let list = map.entry(addr).or_default();
        if list.len() < MAX_IDLE_PER_ENDPOINT {
            list.push(Idle { stream, since });
        }
    }

    fn sweep(&self) {
        let mut map = self.lock();
        map.retain(|_, list| {
            list.retain(|i| i.since.elapsed() < IDLE_TIMEOUT && is_open(&i.stream));
            !list.is_empty()
        });
    }
}

/// Whether an idle connection is still open: nothing to read, not even EOF.
fn is_open(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
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

/// A new connection to `addr`, with Nagle off (heads and bodies are written
/// whole; waiting to coalesce only adds latency).
pub(crate) async fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}
