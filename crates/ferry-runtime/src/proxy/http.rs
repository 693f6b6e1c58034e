//! The general HTTP reverse proxy, on hyper: HTTP/1.1 and h2c in, pooled HTTP/1.1
//! out, bodies streamed, `Upgrade` passed through.
//!
//! HTTP/1.x connections start on the fast path ([`super::h1`]), which hands over
//! here (with the bytes it read) the ones it does not serve: HTTP/2 prior
//! knowledge, `Upgrade` requests and `CONNECT`.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::uri::PathAndQuery;
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;

use super::backends::Target;
use super::metrics::NO_VERSION;
use super::pool::{self, Pool, PooledBody};
use super::{ServiceId, Shared};
use crate::config::ConnectionLimits;

/// Body of responses to clients: the endpoint's, streamed, or the proxy's own.
type ProxyBody = Either<PooledBody, Full<Bytes>>;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// The HTTP side of one proxy: its server settings and its connection pool.
pub(super) struct HttpProxy {
    server: auto::Builder<TokioExecutor>,
    pool: Arc<Pool>,
    /// `NS/NAME`, for error bodies.
    service: String,
    no_endpoints: Bytes,
}

impl HttpProxy {
    /// Must run inside a tokio runtime (the pool starts its sweeper).
    pub(super) fn new(service: &ServiceId, limits: &ConnectionLimits) -> Self {
        let mut server = auto::Builder::new(TokioExecutor::new());
        // Only connections the fast path hands over come here (`Upgrade`,
        // `CONNECT`, h2c), so hyper's per-request header timer costs the hot path
        // nothing. It runs from when hyper waits for a head, so it bounds idle
        // keep-alive connections too. HTTP/2 needs a timer for its keep-alive pings.
        server
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout);
        server.http2().timer(TokioTimer::new());
        let name = format!("{}/{}", service.namespace, service.name);
        Self {
            server,
            pool: Pool::new(),
            no_endpoints: Bytes::from(format!("no ready endpoints for service {name}\n")),
            service: name,
        }
    }
}

/// Serves one client connection (HTTP/1.1 or h2c, told apart by hyper's preface
/// check) until it closes or the proxy stops. `stream` is a TCP connection, or
/// one the fast path has read from (see `h1::Rewind`).
pub(super) async fn serve_connection<Io>(
    stream: Io,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Rendered once per connection, cloned (a reference count) per request.
    let client_ip = HeaderValue::try_from(peer.ip().to_string()).ok();
    let for_requests = shared.clone();
    let service = hyper::service::service_fn(move |req| {
        let shared = for_requests.clone();
        let client_ip = client_ip.clone();
        async move { Ok::<_, Infallible>(proxy(&shared, req, client_ip).await) }
    });
    let conn = shared
        .http
        .server
        .serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(err) = res {
                tracing::trace!(service = %shared.service, %peer, error = %err, "client connection ended");
            }
        }
        _ = super::until_stopped(&mut stopped) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Proxies one request: choose an endpoint, forward, count.
async fn proxy(
    shared: &Shared,
    mut req: Request<Incoming>,
    client_ip: Option<HeaderValue>,
) -> Response<ProxyBody> {
    let start = Instant::now();
    let Some(mut target) = shared.backends.pick() else {
        shared.metrics.request(NO_VERSION, 503, start.elapsed());
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            shared.http.no_endpoints.clone(),
        );
    };
    let pool = &shared.http.pool;
    let upgrade = is_upgrade(&req);

    // The connection is had before the request is touched, so a refused connect
    // (nothing sent) can be retried on another endpoint — for idempotent methods.
    let link = match link(pool, target.addr, upgrade).await {
        Ok(link) => link,
        Err(err) => {
            let other = if err.is_connect() && is_idempotent(req.method()) {
                shared.backends.pick_other(target.addr)
            } else {
                None
            };
            let Some(other) = other else {
                return bad_gateway(shared, &target, &err, start);
            };
            tracing::debug!(service = %shared.service, endpoint = %target.addr, pod = %target.pod, error = %chain(&err), "connect failed; retrying on another endpoint");
            target = other;
            match link(pool, target.addr, upgrade).await {
                Ok(link) => link,
                Err(err) => return bad_gateway(shared, &target, &err, start),
            }
        }
    };

    let client_upgraded = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let mut headers = parts.headers;
    prepare_request_headers(&mut headers, &parts.uri, parts.version, client_ip, upgrade);
    let path = parts
        .uri
        .into_parts()
        .path_and_query
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    // Endpoints are spoken to in HTTP/1.1 (the default version), origin-form.
    let mut out = Request::new(body);
    *out.method_mut() = parts.method;
    *out.uri_mut() = Uri::from(path);
    *out.headers_mut() = headers;

    match link {
        Link::Pooled(mut conn, reused) => {
            let mut resp = match conn.send(out).await {
                Ok(resp) => resp,
                // A reused connection the endpoint closed while idle gave the
                // request back unsent: send it on a new connection.
                Err((_, Some(out))) if reused => {
                    let sent = match pool::connect(target.addr).await {
                        Ok(fresh) => {
                            conn = fresh;
                            conn.send(out).await.map_err(|(err, _)| err)
                        }
                        Err(err) => Err(err),
                    };
                    match sent {
                        Ok(resp) => resp,
                        Err(err) => return bad_gateway(shared, &target, &err, start),
                    }
                }
                Err((err, _)) => return bad_gateway(shared, &target, &err, start),
            };
            shared
                .metrics
                .request(&target.version, resp.status().as_u16(), start.elapsed());
            strip_hop_by_hop(resp.headers_mut(), false);
            resp.map(|body| Either::Left(PooledBody::new(body, Some((conn, pool.clone())))))
        }
        Link::Upgradable(mut tx) => {
            let mut resp = match tx.send_request(out).await {
                Ok(resp) => resp,
                Err(source) => {
                    let err = pool::Error::Http {
                        addr: target.addr,
                        source,
                    };
                    return bad_gateway(shared, &target, &err, start);
                }
            };
            shared
                .metrics
                .request(&target.version, resp.status().as_u16(), start.elapsed());
            if let Some(client_upgraded) = client_upgraded
                && resp.status() == StatusCode::SWITCHING_PROTOCOLS
            {
                let endpoint_upgraded = hyper::upgrade::on(&mut resp);
                tokio::spawn(async move {
                    let (Ok(client), Ok(endpoint)) =
                        tokio::join!(client_upgraded, endpoint_upgraded)
                    else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(
                        &mut TokioIo::new(client),
                        &mut TokioIo::new(endpoint),
                    )
                    .await;
                });
            } else {
                strip_hop_by_hop(resp.headers_mut(), false);
            }
            resp.map(|body| Either::Left(PooledBody::new(body, None)))
        }
    }
}

/// The connection a request goes out on.
#[expect(
    clippy::large_enum_variant,
    reason = "one per request, on its stack; boxing would allocate per request"
)]
enum Link {
    /// A pooled keep-alive connection, driven by the request's task; the flag says
    /// whether it was reused.
    Pooled(pool::Conn, bool),
    /// A connection of its own, for a request that may switch protocols.
    Upgradable(hyper::client::conn::http1::SendRequest<Incoming>),
}

async fn link(pool: &Pool, addr: SocketAddr, upgrade: bool) -> Result<Link, pool::Error> {
    if upgrade {
        Ok(Link::Upgradable(pool::connect_upgradable(addr).await?))
    } else {
        let (conn, reused) = pool.get(addr).await?;
        Ok(Link::Pooled(conn, reused))
    }
}

fn bad_gateway(
    shared: &Shared,
    target: &Target,
    err: &dyn StdError,
    start: Instant,
) -> Response<ProxyBody> {
    shared
        .metrics
        .request(&target.version, 502, start.elapsed());
    let reason = chain(err);
    tracing::debug!(service = %shared.service, endpoint = %target.addr, pod = %target.pod, error = %reason, "endpoint failed");
    let body = format!(
        "bad gateway: service {}: endpoint {} (pod {}, version {}) failed: {reason}\n",
        shared.http.service, target.addr, target.pod, target.version,
    );
    plain(StatusCode::BAD_GATEWAY, Bytes::from(body))
}

fn plain(status: StatusCode, body: Bytes) -> Response<ProxyBody> {
    let mut resp = Response::new(Either::Right(Full::new(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// An HTTP/1.1 `Connection: upgrade` request (WebSocket and the like).
fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && connection_has(req.headers(), "upgrade")
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1): those named in `Connection` and the
/// standard ones. With `keep_upgrade`, `Connection: upgrade` and `Upgrade` stay.
fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::try_from(t.trim()).ok())
            .filter(|n| !(keep_upgrade && *n == header::UPGRADE))
            .collect();
        for name in named {
            headers.remove(name);
        }
        headers.remove(header::CONNECTION);
        if keep_upgrade {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
    }
    headers.remove(&KEEP_ALIVE);
    headers.remove(&PROXY_CONNECTION);
    headers.remove(header::PROXY_AUTHENTICATE);
    headers.remove(header::PROXY_AUTHORIZATION);
    headers.remove(header::TRAILER);
    headers.remove(header::TRANSFER_ENCODING);
    if !keep_upgrade {
        headers.remove(header::UPGRADE);
    }
    // `TE: trailers` is end-to-end in practice (gRPC); any other TE value is not.
    if headers.get(header::TE).is_some_and(|v| v != "trailers") {
        headers.remove(header::TE);
    }
}

fn prepare_request_headers(
    headers: &mut HeaderMap,
    uri: &Uri,
    version: Version,
    client_ip: Option<HeaderValue>,
    upgrade: bool,
) {
    strip_hop_by_hop(headers, upgrade);
    // HTTP/2 carries the host in `:authority`; HTTP/1.1 endpoints want `Host`.
    if !headers.contains_key(header::HOST)
        && let Some(authority) = uri.authority()
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        headers.insert(header::HOST, host);
    }
    if let Some(ip) = client_ip {
        let forwarded = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(prior) => {
                HeaderValue::try_from(format!("{prior}, {}", ip.to_str().unwrap_or_default())).ok()
            }
            None => Some(ip),
        };
        if let Some(forwarded) = forwarded {
            headers.insert(&X_FORWARDED_FOR, forwarded);
        }
    }
    headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    let via = match version {
        Version::HTTP_2 => "2 ferry",
        Version::HTTP_10 => "1.0 ferry",
        _ => "1.1 ferry",
    };
    headers.append(header::VIA, HeaderValue::from_static(via));
}

/// An error with its causes, `a: b: c`, for messages.
pub(super) fn chain(err: &dyn StdError) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_and_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(names, vec!["te", "x-kept"]);
    }

    #[test]
    fn adds_forwarding_headers_and_host_from_authority() {
        let mut h = HeaderMap::new();
        h.insert(&X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        let uri: Uri = "http://web.example:8080/x".parse().unwrap();
        prepare_request_headers(
            &mut h,
            &uri,
            Version::HTTP_2,
            Some(HeaderValue::from_static("127.0.0.1")),
            false,
        );
        assert_eq!(h[header::HOST], "web.example:8080");
        assert_eq!(h[&X_FORWARDED_FOR], "10.0.0.1, 127.0.0.1");
        assert_eq!(h[&X_FORWARDED_PROTO], "http");
        assert_eq!(h[header::VIA], "2 ferry");
    }
}
