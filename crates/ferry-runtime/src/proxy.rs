//! The Service proxy: the data plane in front of a Service port's ready endpoints.
//!
//! Every Service port of the embedded runtime gets a host listener and a [`serve`]
//! loop. The controller that watches pods keeps the port's [`Backends`] current
//! (endpoints and optional per-version weights); the proxy reads that table on each
//! request or connection, so updates take effect without a restart.
//!
//! - HTTP/1.1 and HTTP/2 (h2c prior knowledge) on the same listener, reverse-proxied
//!   over pooled keep-alive HTTP/1.1 connections to the endpoints, bodies streamed both
//!   ways, `Upgrade` (WebSocket) passed through. HTTP/1.x takes a hand-written fast
//!   path (`h1`); HTTP/2, `Upgrade` and `CONNECT` take the general one on hyper
//!   (`http`).
//! - TCP passthrough for everything else; [`Protocol::Auto`] sniffs the first bytes.
//! - Slow and idle clients are closed after the header and idle timeouts of
//!   [`ConnectionLimits`], and a listener holds at most its cap of connections (in
//!   all, and per remote IP): past it, new connections are closed at once while
//!   established ones go on being served.
//! - Every request is counted in [`Metrics`] by namespace, service, version
//!   (pod-template hash) and status class, with a latency histogram.

mod backends;
mod h1;
mod http;
pub mod limit;
mod metrics;
mod pool;
mod sniff;
mod tcp;

pub use backends::{Backends, Endpoint, Target};
pub use metrics::Metrics;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::ConnectionLimits;
use limit::{AcceptLog, Limiter, Permit};

/// How long [`Protocol::Auto`] waits for a client's first bytes before it decides
/// the protocol is one where the server speaks first, and passes TCP through.
pub const SNIFF_TIMEOUT: Duration = Duration::from_millis(100);

/// Which Service port a proxy serves; names the `namespace` and `service` labels of
/// its metrics and appears in its error bodies.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServiceId {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// The Service port (`spec.ports[].port`) this proxy stands for.
    pub port: u16,
}

impl ServiceId {
    /// A Service port by namespace, name and port.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>, port: u16) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            port,
        }
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.namespace, self.name, self.port)
    }
}

/// What a Service port speaks, which decides how the proxy treats a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Protocol {
    /// HTTP/1.1 or HTTP/2 with prior knowledge: reverse-proxied per request.
    Http,
    /// Anything: each connection is copied both ways to one chosen endpoint.
    Tcp,
    /// Sniff the first bytes: an HTTP/1 method or the HTTP/2 preface means HTTP,
    /// anything else, or nothing within [`SNIFF_TIMEOUT`], means TCP passthrough.
    #[default]
    Auto,
}

/// A running proxy. Dropping it, or [`ProxyHandle::shutdown`], stops accepting,
/// closes idle connections and lets requests in flight finish.
#[derive(Debug)]
pub struct ProxyHandle {
    /// The address the proxy listens on.
    pub local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    accept: Option<JoinHandle<()>>,
}

impl ProxyHandle {
    /// Stops the proxy and waits until its listener is closed (so the port can be
    /// bound again when this returns).
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.accept.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.accept.take() {
            task.abort();
        }
    }
}

/// What every connection of one proxy shares.
struct Shared {
    service: ServiceId,
    backends: Arc<Backends>,
    metrics: Arc<metrics::ServiceMetrics>,
    /// HTTP/1.x: the hand-written fast path.
    h1: h1::FastPath,
    /// HTTP/2, `Upgrade` and `CONNECT`: hyper.
    http: http::HttpProxy,
    /// Header and idle timeouts.
    header_timeout: Duration,
    idle_timeout: Duration,
}

/// Starts proxying `listener` (one Service port) to the ready endpoints in
/// `backends`, counting into `metrics`, with the default [`ConnectionLimits`] of a
/// Service. Returns at once; the proxy runs on the current tokio runtime until the
/// returned handle is dropped or shut down.
pub async fn serve(
    listener: TcpListener,
    service: ServiceId,
    protocol: Protocol,
    backends: Arc<Backends>,
    metrics: Arc<Metrics>,
) -> ProxyHandle {
    serve_limited(
        listener,
        service,
        protocol,
        backends,
        metrics,
        &ConnectionLimits::services(),
    )
    .await
}

/// [`serve`] with the given timeouts and connection caps.
pub async fn serve_limited(
    listener: TcpListener,
    service: ServiceId,
    protocol: Protocol,
    backends: Arc<Backends>,
    metrics: Arc<Metrics>,
    limits: &ConnectionLimits,
) -> ProxyHandle {
    let local_addr = listener
        .local_addr()
        .expect("a bound TCP listener has a local address");
    let service_metrics = metrics.service(&service.namespace, &service.name);
    let shared = Arc::new(Shared {
        h1: h1::FastPath::new(&service, local_addr),
        http: http::HttpProxy::new(&service, limits),
        service,
        backends,
        metrics: service_metrics,
        header_timeout: limits.header_timeout,
        idle_timeout: limits.idle_timeout,
    });
    let limiter = Limiter::new(limits.max_connections, limits.max_connections_per_ip);
    let (stop, stopped) = watch::channel(false);
    let accept = tokio::spawn(accept_loop(listener, protocol, shared, limiter, stopped));
    ProxyHandle {
        local_addr,
        stop,
        accept: Some(accept),
    }
}

/// Resolves once the proxy is told to stop (or its handle is gone).
async fn until_stopped(stopped: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: drop it here.
    let _ = stopped.wait_for(|s| *s).await.is_ok();
}

async fn accept_loop(
    listener: TcpListener,
    protocol: Protocol,
    shared: Arc<Shared>,
    limiter: Arc<Limiter>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut log = AcceptLog::default();
    let name = format!("service {}", shared.service);
    loop {
        let accepted = tokio::select! {
            biased;
            _ = until_stopped(&mut stopped) => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(err) => {
                // Out of file descriptors and the like: back off instead of spinning.
                if let Some(wait) = log.failed(&name, &err) {
                    tokio::select! {
                        _ = until_stopped(&mut stopped) => break,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                continue;
            }
        };
        let permit = match limiter.admit(peer.ip()) {
            Ok(permit) => permit,
            Err(why) => {
                // Closed at once: the client learns now, and established
                // connections keep their descriptors and their service.
                log.refused(&name, why, &limiter);
                drop(stream);
                continue;
            }
        };
        log.admitted(&name);
        let _ = stream.set_nodelay(true);
        tokio::spawn(handle_connection(
            stream,
            peer,
            protocol,
            shared.clone(),
            stopped.clone(),
            permit,
        ));
    }
}

async fn handle_connection(
    stream: TcpStream,
    peer: SocketAddr,
    protocol: Protocol,
    shared: Arc<Shared>,
    stopped: watch::Receiver<bool>,
    // Held until the connection ends (an upgraded one's copy task outlives it).
    _permit: Permit,
) {
    let protocol = match protocol {
        Protocol::Auto => match sniff::sniff(&stream, SNIFF_TIMEOUT).await {
            sniff::Sniffed::Http => Protocol::Http,
            sniff::Sniffed::Other => Protocol::Tcp,
        },
        p => p,
    };
    match protocol {
        Protocol::Tcp => tcp::passthrough(stream, &shared, stopped).await,
        _ => h1::serve_connection(stream, peer, shared, stopped).await,
    }
}
