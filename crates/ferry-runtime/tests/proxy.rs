//! The Service proxy against real backends, a real HTTP client and a real
//! Prometheus, all on 127.0.0.1.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use ferry_runtime::config::ConnectionLimits;
use ferry_runtime::proxy::{self, Backends, Endpoint, Metrics, Protocol, ProxyHandle, ServiceId};
use http_body_util::{Either, Full};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// A real HTTP/1.1 backend that answers with its name and version.
///
/// - `/status/NNN` answers with status NNN,
/// - `/echo` streams the request body back,
/// - `/collect` reads the whole request body, then sends it back,
/// - `/chunked` streams three 64 KiB chunks of unannounced length (so chunked),
/// - `/headers` lists the request headers, one `name: value` a line,
/// - an `Upgrade: echo` request is switched and echoes raw bytes,
/// - anything else: `NAME VERSION`.
struct Backend {
    addr: SocketAddr,
    task: JoinHandle<()>,
    /// Connections accepted so far.
    accepted: Arc<AtomicUsize>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type BackendBody = Either<Full<Bytes>, Either<Incoming, Chunks>>;

async fn backend_reply(
    name: &'static str,
    version: &'static str,
    mut req: Request<Incoming>,
) -> Response<BackendBody> {
    let path = req.uri().path().to_string();
    let reply = |status: u16, body: String| {
        Response::builder()
            .status(status)
            .header("x-backend", name)
            .body(Either::Left(Full::new(Bytes::from(body))))
            .unwrap()
    };
    if req.headers().get("upgrade").is_some_and(|v| v == "echo") {
        let upgraded = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(io) = upgraded.await {
                let (mut r, mut w) = tokio::io::split(TokioIo::new(io));
                let _ = tokio::io::copy(&mut r, &mut w).await;
            }
        });
        return Response::builder()
            .status(101)
            .header("connection", "upgrade")
            .header("upgrade", "echo")
            .body(Either::Left(Full::new(Bytes::new())))
            .unwrap();
    }
    if let Some(code) = path.strip_prefix("/status/") {
        return reply(code.parse().unwrap(), format!("{name} {version}"));
    }
    match path.as_str() {
        "/echo" => Response::builder()
            .header("x-backend", name)
            .body(Either::Right(Either::Left(req.into_body())))
            .unwrap(),
        "/collect" => {
            use http_body_util::BodyExt;
            let body = req.into_body().collect().await.unwrap().to_bytes();
            Response::builder()
                .header("x-backend", name)
                .body(Either::Left(Full::new(body)))
                .unwrap()
        }
        "/chunked" => Response::builder()
            .header("x-backend", name)
            .body(Either::Right(Either::Right(Chunks { next: 0, count: 3 })))
            .unwrap(),
        "/headers" => {
            let mut out = String::new();
            for (k, v) in req.headers() {
                out.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or("?")));
            }
            reply(200, out)
        }
        _ => reply(200, format!("{name} {version}")),
    }
}

async fn backend(name: &'static str, version: &'static str) -> Backend {
    backend_with(name, version, true).await
}

/// A backend; without `keep_alive` it closes every connection after one response.
async fn backend_with(name: &'static str, version: &'static str, keep_alive: bool) -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| async move {
                    Ok::<_, Infallible>(backend_reply(name, version, req).await)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(keep_alive)
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    Backend {
        addr,
        task,
        accepted,
    }
}

/// A raw TCP server: sends `banner` on accept (if any), then echoes.
async fn tcp_echo(banner: Option<&'static [u8]>) -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                if let Some(banner) = banner {
                    let _ = stream.write_all(banner).await;
                }
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    Backend {
        addr,
        task,
        accepted: Arc::default(),
    }
}

/// An address where nothing listens (connects are refused).
async fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

fn ep(b: &Backend, version: &str) -> Endpoint {
    Endpoint::ready(b.addr, version, format!("pod-{}", b.addr.port()))
}

struct Proxy {
    handle: ProxyHandle,
    backends: Arc<Backends>,
    metrics: Arc<Metrics>,
}

impl Proxy {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.handle.local_addr)
    }
}

async fn start_proxy(protocol: Protocol, endpoints: Vec<Endpoint>) -> Proxy {
    let backends = Backends::new();
    backends.set_endpoints(endpoints);
    let metrics = Metrics::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = proxy::serve(
        listener,
        ServiceId::new("shop", "web", 80),
        protocol,
        backends.clone(),
        metrics.clone(),
    )
    .await;
    Proxy {
        handle,
        backends,
        metrics,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// GETs `url` and returns (status, `x-backend` header, body).
async fn get(c: &reqwest::Client, url: &str) -> (u16, String, String) {
    let resp = c.get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    let who = resp
        .headers()
        .get("x-backend")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, who, resp.text().await.unwrap())
}

async fn who_answers(c: &reqwest::Client, p: &Proxy, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        let (status, who, _) = get(c, &p.url("/")).await;
        assert_eq!(status, 200);
        out.push(who);
    }
    out
}

fn tally(names: &[String]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for n in names {
        *out.entry(n.clone()).or_default() += 1;
    }
    out
}

fn weights(pairs: &[(&str, u32)]) -> Option<BTreeMap<String, u32>> {
    Some(pairs.iter().map(|(v, w)| (v.to_string(), *w)).collect())
}

/// The value of the sample `name{labels}` in a rendering, if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .map(|v| v.parse().unwrap())
}

fn requests_series(version: &str, code: &str) -> String {
    format!(
        r#"ferry_service_requests_total{{namespace="shop",service="web",version="{version}",code="{code}"}}"#
    )
}

// ---------------------------------------------------------------------------
// Balancing
// ---------------------------------------------------------------------------

#[tokio::test]
async fn round_robin_over_ready_endpoints_and_not_ready_get_nothing() {
    let (a, b, c) = (
        backend("a", "v1").await,
        backend("b", "v1").await,
        backend("c", "v1").await,
    );
    let mut not_ready = ep(&b, "v1");
    not_ready.ready = false;
    let p = start_proxy(Protocol::Http, vec![ep(&a, "v1"), not_ready, ep(&c, "v1")]).await;
    let got = who_answers(&client(), &p, 6).await;
    assert_eq!(got, ["a", "c", "a", "c", "a", "c"]);
}

#[tokio::test]
async fn weights_80_20_split_1000_requests_exactly() {
    let (a1, a2, b) = (
        backend("a1", "v1").await,
        backend("a2", "v1").await,
        backend("b", "v2").await,
    );
    let p = start_proxy(
        Protocol::Http,
        vec![ep(&a1, "v1"), ep(&a2, "v1"), ep(&b, "v2")],
    )
    .await;
    p.backends.set_weights(weights(&[("v1", 80), ("v2", 20)]));
    let got = tally(&who_answers(&client(), &p, 1000).await);
    assert_eq!(
        got,
        [("a1".into(), 400), ("a2".into(), 400), ("b".into(), 200)].into()
    );
    let text = p.metrics.render();
    assert_eq!(
        sample(&text, &requests_series("v1", "2xx")),
        Some(800.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, &requests_series("v2", "2xx")),
        Some(200.0),
        "{text}"
    );
}

#[tokio::test]
async fn weight_zero_gets_nothing_and_unready_versions_share_is_redistributed() {
    let (a, b) = (backend("a", "v1").await, backend("b", "v2").await);
    let p = start_proxy(Protocol::Http, vec![ep(&a, "v1"), ep(&b, "v2")]).await;
    let c = client();

    p.backends.set_weights(weights(&[("v1", 100), ("v2", 0)]));
    assert_eq!(
        tally(&who_answers(&c, &p, 50).await),
        [("a".into(), 50)].into()
    );

    // v1 has weight but no ready endpoint: everything goes to v2, nothing is refused.
    let mut a_down = ep(&a, "v1");
    a_down.ready = false;
    p.backends.set_endpoints(vec![a_down, ep(&b, "v2")]);
    p.backends.set_weights(weights(&[("v1", 90), ("v2", 10)]));
    assert_eq!(
        tally(&who_answers(&c, &p, 20).await),
        [("b".into(), 20)].into()
    );
}

#[tokio::test]
async fn endpoint_and_weight_updates_take_effect_without_restart() {
    let (a, b) = (backend("a", "v1").await, backend("b", "v2").await);
    let p = start_proxy(Protocol::Http, vec![ep(&a, "v1")]).await;
    let c = client();
    assert_eq!(who_answers(&c, &p, 3).await, ["a", "a", "a"]);

    p.backends.set_endpoints(vec![ep(&b, "v2")]);
    assert_eq!(who_answers(&c, &p, 3).await, ["b", "b", "b"]);

    p.backends.set_endpoints(vec![ep(&a, "v1"), ep(&b, "v2")]);
    p.backends.set_weights(weights(&[("v1", 1), ("v2", 3)]));
    assert_eq!(
        tally(&who_answers(&c, &p, 40).await),
        [("a".into(), 10), ("b".into(), 30)].into()
    );

    p.backends.set_weights(None);
    assert_eq!(who_answers(&c, &p, 4).await, ["a", "b", "a", "b"]);
    assert_eq!(p.backends.endpoints().len(), 2);
    assert_eq!(p.backends.weights(), None);
}

// ---------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------

#[tokio::test]
async fn no_ready_endpoint_is_503_naming_the_service() {
    let a = backend("a", "v1").await;
    let mut down = ep(&a, "v1");
    down.ready = false;
    let p = start_proxy(Protocol::Http, vec![down]).await;
    let (status, _, body) = get(&client(), &p.url("/")).await;
    assert_eq!(status, 503);
    assert_eq!(body.trim(), "no ready endpoints for service shop/web");
    let text = p.metrics.render();
    assert_eq!(
        sample(&text, &requests_series("none", "5xx")),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test]
async fn connect_error_retries_get_elsewhere_and_gives_502_for_post() {
    let live = backend("live", "v1").await;
    let dead = dead_addr().await;
    let p = start_proxy(
        Protocol::Http,
        vec![Endpoint::ready(dead, "v1", "pod-dead"), ep(&live, "v1")],
    )
    .await;
    let c = client();

    // Round-robin sends the first request to the dead endpoint: a POST with a body
    // is not retried.
    let resp = c.post(p.url("/")).body("payload").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 502);
    let body = resp.text().await.unwrap();
    assert!(
        body.contains("service shop/web") && body.contains("pod-dead"),
        "{body}"
    );

    // GETs that land on the dead endpoint are retried on the live one.
    for _ in 0..6 {
        let (status, who, _) = get(&c, &p.url("/")).await;
        assert_eq!((status, who.as_str()), (200, "live"));
    }

    // With no other endpoint a GET gets 502 too.
    p.backends
        .set_endpoints(vec![Endpoint::ready(dead, "v1", "pod-dead")]);
    let (status, _, body) = get(&c, &p.url("/")).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("bad gateway: service shop/web"), "{body}");
    let text = p.metrics.render();
    assert_eq!(
        sample(&text, &requests_series("v1", "5xx")),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, &requests_series("v1", "2xx")),
        Some(6.0),
        "{text}"
    );
}

// ---------------------------------------------------------------------------
// HTTP features
// ---------------------------------------------------------------------------

#[tokio::test]
async fn http2_prior_knowledge_is_proxied_to_http1_endpoints() {
    let a = backend("a", "v1").await;
    let p = start_proxy(Protocol::Auto, vec![ep(&a, "v1")]).await;
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = h2.get(p.url("/headers")).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status().as_u16(), 200);
    let headers = resp.text().await.unwrap();
    // The client's :authority arrives as Host; the proxy says who forwarded.
    assert!(
        headers.contains(&format!("host: {}", p.handle.local_addr)),
        "{headers}"
    );
    assert!(headers.contains("via: 2 ferry"), "{headers}");
    assert!(headers.contains("x-forwarded-for: 127.0.0.1"), "{headers}");

    // HTTP/1.1 on the same listener.
    let (status, who, _) = get(&client(), &p.url("/")).await;
    assert_eq!((status, who.as_str()), (200, "a"));
}

#[tokio::test]
async fn forwards_host_and_forwarding_headers_and_drops_hop_by_hop() {
    let a = backend("a", "v1").await;
    let p = start_proxy(Protocol::Http, vec![ep(&a, "v1")]).await;
    let resp = client()
        .get(p.url("/headers"))
        .header("host", "shop.example")
        .header("connection", "x-private")
        .header("x-private", "secret")
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    let headers = resp.text().await.unwrap();
    assert!(headers.contains("host: shop.example\n"), "{headers}");
    assert!(
        headers.contains("x-forwarded-for: 203.0.113.9, 127.0.0.1\n"),
        "{headers}"
    );
    assert!(headers.contains("x-forwarded-proto: http\n"), "{headers}");
    assert!(headers.contains("via: 1.1 ferry\n"), "{headers}");
    assert!(!headers.contains("x-private"), "{headers}");
}

#[tokio::test]
async fn streams_a_5mb_request_body_both_ways() {
    let a = backend("a", "v1").await;
    let p = start_proxy(Protocol::Http, vec![ep(&a, "v1")]).await;
    // 80 chunks of 64 KiB, produced as the body is sent (never one buffer).
    let resp = client()
        .post(p.url("/echo"))
        .body(reqwest::Body::wrap(Chunks { next: 0, count: 80 }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.len(), 80 * CHUNK);
    for (i, c) in body.chunks(CHUNK).enumerate() {
        assert!(
            c.iter().all(|b| *b == (i % 251) as u8),
            "chunk {i} corrupted"
        );
    }
}

const CHUNK: usize = 64 * 1024;

/// A request body of `count` 64 KiB chunks, chunk `i` filled with `i % 251`, made
/// one at a time as the body is polled.
struct Chunks {
    next: usize,
    count: usize,
}

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.next == self.count {
            return std::task::Poll::Ready(None);
        }
        let chunk = Bytes::from(vec![(self.next % 251) as u8; CHUNK]);
        self.next += 1;
        std::task::Poll::Ready(Some(Ok(Frame::data(chunk))))
    }
}

#[tokio::test]
async fn upgrade_is_passed_through() {
    let a = backend("a", "v1").await;
    let p = start_proxy(Protocol::Http, vec![ep(&a, "v1")]).await;
    let mut s = TcpStream::connect(p.handle.local_addr).await.unwrap();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        .await
        .unwrap();
    let head = read_until(&mut s, b"\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let msg = b"ping over the upgraded connection";
    s.write_all(msg).await.unwrap();
    let mut buf = vec![0; msg.len()];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, msg);
}

async fn read_until(s: &mut TcpStream, end: &[u8]) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while !out.ends_with(end) {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert!(
            n == 1,
            "connection closed after {:?}",
            String::from_utf8_lossy(&out)
        );
        out.push(byte[0]);
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn reuses_keep_alive_connections_to_endpoints() {
    let a = backend("a", "v1").await;
    let p = start_proxy(Protocol::Http, vec![ep(&a, "v1")]).await;
    let c = client();
    for _ in 0..20 {
        assert_eq!(get(&c, &p.url("/")).await.0, 200);
    }
    // Responses without a body (HEAD) hand the connection back too.
    for _ in 0..5 {
        let status = c.head(p.url("/")).send().await.unwrap().status();
        assert_eq!(status.as_u16(), 200);
    }
    assert_eq!(
        a.accepted.load(Ordering::SeqCst),
        1,
        "one pooled connection serves sequential requests"
    );
}

#[tokio::test]
async fn endpoint_closing_its_connections_is_not_an_error() {
    let a = backend_with("a", "v1", false).await;
    let p = start_proxy(Protocol::Http, vec![ep(&a, "v1")]).await;
    let c = client();
    for _ in 0..10 {
        let (status, who, _) = get(&c, &p.url("/")).await;
        assert_eq!((status, who.as_str()), (200, "a"));
    }
    assert_eq!(a.accepted.load(Ordering::SeqCst), 10);
}

// ---------------------------------------------------------------------------
// HTTP/1 framing, with a raw client
// ---------------------------------------------------------------------------

/// A response as read off the wire by [`read_response`].
#[derive(Debug)]
struct RawResponse {
    status: u16,
    /// Names lower-cased, in order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

type Raw = BufReader<TcpStream>;

async fn raw_connect(p: &Proxy) -> Raw {
    BufReader::new(TcpStream::connect(p.handle.local_addr).await.unwrap())
}

/// Reads one response off `s`, delimited as RFC 9112 §6.3 says (`head`: it
/// answers a HEAD request). Fails the test after 5 s.
async fn read_response(s: &mut Raw, head: bool) -> RawResponse {
    tokio::time::timeout(Duration::from_secs(5), async {
        let mut line = String::new();
        s.read_line(&mut line).await.unwrap();
        assert!(line.starts_with("HTTP/1.1 "), "status line {line:?}");
        let status = line[9..12].parse().unwrap();
        let mut headers = Vec::new();
        loop {
            line.clear();
            s.read_line(&mut line).await.unwrap();
            if line == "\r\n" {
                break;
            }
            let (name, value) = line.split_once(':').expect("a header field");
            headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
        let mut resp = RawResponse {
            status,
            headers,
            body: Vec::new(),
        };
        if head || status < 200 || status == 204 || status == 304 {
            return resp;
        }
        if resp.header("transfer-encoding") == Some("chunked") {
            loop {
                line.clear();
                s.read_line(&mut line).await.unwrap();
                let size = usize::from_str_radix(line.trim_end(), 16).unwrap();
                if size == 0 {
                    line.clear();
                    s.read_line(&mut line).await.unwrap();
                    assert_eq!(line, "\r\n", "no trailers expected");
                    break;
                }
                let mut chunk = vec![0; size + 2];
                s.read_exact(&mut chunk).await.unwrap();
                assert!(chunk.ends_with(b"\r\n"));
                resp.body.extend_from_slice(&chunk[..size]);
            }
        } else if let Some(len) = resp.header("content-length") {
            resp.body = vec![0; len.parse().unwrap()];
            s.read_exact(&mut resp.body).await.unwrap();
        } else {
            s.read_to_end(&mut resp.body).await.unwrap();
        }
        resp
    })
    .await
    .expect("a response within 5 s")
}

/// Asserts the proxy closes `s` (EOF, no more bytes) within 5 s.
async fn assert_closed(s: &mut Raw) {
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
        .await
        .expect("the proxy closes the connection within 5 s")
        .unwrap();
    assert!(
        rest.is_empty(),
        "bytes after the response: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

/// A raw HTTP/1 endpoint: reads each request head (no bodies) and writes
/// `response` as it is; closes after one when `close`.
async fn raw_backend(response: &'static [u8], close: bool) -> Backend {
    raw_backend_answering(response, if close { 1 } else { usize::MAX }, false).await
}

/// A raw HTTP/1 endpoint answering `answers` requests per connection with
/// `response`; then it closes, after reading one more request head when
/// `read_one_more` (as if it closed an idle connection just as a request came).
async fn raw_backend_answering(
    response: &'static [u8],
    answers: usize,
    read_one_more: bool,
) -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut s = BufReader::new(stream);
                let mut line = String::new();
                for answered in 0.. {
                    if answered == answers && !read_one_more {
                        return;
                    }
                    // One request head: up to its empty line.
                    loop {
                        line.clear();
                        if s.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    if answered == answers || s.write_all(response).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Backend {
        addr,
        task,
        accepted,
    }
}

#[tokio::test]
async fn chunked_request_and_response_bodies_pass_through_and_keep_the_connection() {
    let a = backend("a", "v1").await;
    let p = start_proxy(Protocol::Http, vec![ep(&a, "v1")]).await;
    let mut s = raw_connect(&p).await;
    // Chunk extensions and a trailer, split over several writes.
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    s.write_all(b"7\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\n")
        .await
        .unwrap();
    let resp = read_response(&mut s, false).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
    assert_eq!(resp.text(), "hello, world");

    // The body's end was found: the next request on the connection is served.
    s.write_all(b"GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let resp = read_response(&mut s, false).await;
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
    assert_eq!(resp.body.len(), 3 * CHUNK);
    for (i, c) in resp.body.chunks(CHUNK).enumerate() {
        assert!(c.iter().all(|b| *b == i as u8), "chunk {i} corrupted");
    }
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut s, false).await.text(), "a v1");
    assert_eq!(a.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn http10_clients_close_by_default_and_get_chunked_bodies_unchunked() {
    let a = backend("a", "v1").await;
    let p = start_proxy(Protocol::Http, vec![ep(&a, "v1")]).await;

    let mut s = raw_connect(&p).await;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let resp = read_response(&mut s, false).await;
    assert_eq!((resp.status, resp.text().as_str()), (200, "a v1"));
    assert_eq!(resp.header("connection"), Some("close"));
    assert_closed(&mut s).await;

    // Keep-alive when asked; no Host: the listener's address stands in.
    let mut s = raw_connect(&p).await;
    s.write_all(b"GET /headers HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await
        .unwrap();
    let resp = read_response(&mut s, false).await;
    assert_eq!(resp.header("connection"), Some("keep-alive"));
    let seen = resp.text();
    assert!(seen.contains("via: 1.0 ferry\n"), "{seen}");
    assert!(
        seen.contains(&format!("host: {}\n", p.handle.local_addr)),
        "{seen}"
    );
    // A chunked answer cannot reach an HTTP/1.0 client as such: the payload is
    // sent bare and the connection's end ends it.
    s.write_all(b"GET /chunked HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await
        .unwrap();
    let resp = read_response(&mut s, false).await;
    assert_eq!(resp.header("transfer-encoding"), None);
    assert_eq!(resp.header("connection"), Some("close"));
    assert_eq!(resp.body.len(), 3 * CHUNK);
    for (i, c) in resp.body.chunks(CHUNK).enumerate() {
        assert!(c.iter().all(|b| *b == i as u8), "chunk {i} corrupted");
    }
}

#[tokio::test]
async fn connection_close_is_honoured_after_the_response() {
    let a = backend("a", "v1").await;
    let p = start_proxy(Protocol::Http, vec![ep(&a, "v1")]).await;
    let mut s = raw_connect(&p).await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let resp = read_response(&mut s, false).await;
    assert_eq!((resp.status, resp.text().as_str()), (200, "a v1"));
    assert_eq!(resp.header("connection"), Some("close"));
    assert_closed(&mut s).await;
    // The endpoint connection is unaffected: the next client reuses it.
    let (status, _, _) = get(&client(), &p.url("/")).await;
    assert_eq!(status, 200);
    assert_eq!(a.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_response_without_length_is_read_to_its_end_and_closes_both_sides() {
    let raw = raw_backend(
        b"HTTP/1.1 200 OK\r\nx-backend: raw\r\n\r\nuntil the end",
        true,
    )
    .await;
    let p = start_proxy(Protocol::Http, vec![ep(&raw, "v1")]).await;
    for _ in 0..2 {
        let mut s = raw_connect(&p).await;
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let resp = read_response(&mut s, false).await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("connection"), Some("close"));
        assert_eq!(resp.text(), "until the end");
    }
    assert_eq!(raw.accepted.load(Ordering::SeqCst), 2, "never pooled");
}

#[tokio::test]
async fn head_204_and_304_responses_have_no_body_and_keep_the_connection() {
    let a = backend("a", "v1").await;
    let p = start_proxy(Protocol::Http, vec![ep(&a, "v1")]).await;
    let mut s = raw_connect(&p).await;

    s.write_all(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let resp = read_response(&mut s, true).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-length"), Some("4"), "{resp:?}");

    for status in [204, 304] {
        s.write_all(format!("GET /status/{status} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        assert_eq!(read_response(&mut s, false).await.status, status);
    }
    // Had a body been expected after any of them, this would be misread.
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut s, false).await.text(), "a v1");
    assert_eq!(a.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_request_head_over_64_kib_is_431() {
    let a = backend("a", "v1").await;
    let p = start_proxy(Protocol::Http, vec![ep(&a, "v1")]).await;
    let mut s = raw_connect(&p).await;
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    s.write_all(big.as_bytes()).await.unwrap();
    let resp = read_response(&mut s, false).await;
    assert_eq!(resp.status, 431);
    assert_eq!(resp.header("connection"), Some("close"));
    assert_closed(&mut s).await;
    assert_eq!(a.accepted.load(Ordering::SeqCst), 0, "nothing forwarded");

    // Just under the limit is fine.
    let mut s = raw_connect(&p).await;
    let fits = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(60 * 1024)
    );
    s.write_all(fits.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut s, false).await.status, 200);
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let a = backend("a", "v1").await;
    let p = start_proxy(Protocol::Http, vec![ep(&a, "v1")]).await;
    let mut s = raw_connect(&p).await;
    s.write_all(
        b"GET /status/201 HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody\
          HEAD / HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /status/202 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    assert_eq!(read_response(&mut s, false).await.status, 201);
    let echo = read_response(&mut s, false).await;
    assert_eq!((echo.status, echo.text().as_str()), (200, "body"));
    let head = read_response(&mut s, true).await;
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(read_response(&mut s, false).await.status, 202);
    assert_closed(&mut s).await;
}

#[tokio::test]
async fn expect_100_continue_is_passed_through() {
    let a = backend("a", "v1").await;
    let p = start_proxy(Protocol::Http, vec![ep(&a, "v1")]).await;
    let mut s = raw_connect(&p).await;
    s.write_all(
        b"POST /collect HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    // The endpoint asks for the body (hyper does when it is first read); only
    // then is it sent.
    let interim = read_response(&mut s, false).await;
    assert_eq!(interim.status, 100);
    s.write_all(b"payload").await.unwrap();
    let resp = read_response(&mut s, false).await;
    assert_eq!((resp.status, resp.text().as_str()), (200, "payload"));
}

#[tokio::test]
async fn endpoint_closing_idle_connections_silently_is_not_an_error() {
    // Announces no `Connection: close`, yet closes after each response: the
    // pooled connection is found closed when next taken (or retried).
    let raw = raw_backend(
        b"HTTP/1.1 200 OK\r\nx-backend: raw\r\ncontent-length: 2\r\n\r\nok",
        true,
    )
    .await;
    let p = start_proxy(Protocol::Http, vec![ep(&raw, "v1")]).await;
    let c = client();
    for _ in 0..10 {
        let (status, who, body) = get(&c, &p.url("/")).await;
        assert_eq!((status, who.as_str(), body.as_str()), (200, "raw", "ok"));
    }
    assert_eq!(raw.accepted.load(Ordering::SeqCst), 10);
}

#[tokio::test]
async fn a_pooled_connection_closed_unanswered_is_retried_for_idempotent_requests_only() {
    // Each connection answers one request, then takes the next and closes
    // without a word: what a reused keep-alive connection meets when the endpoint
    // closes it just as the request goes out.
    let flaky = raw_backend_answering(
        b"HTTP/1.1 200 OK\r\nx-backend: flaky\r\ncontent-length: 2\r\n\r\nok",
        1,
        true,
    )
    .await;
    let p = start_proxy(Protocol::Http, vec![ep(&flaky, "v1")]).await;
    let c = client();
    assert_eq!(get(&c, &p.url("/")).await.0, 200);
    // Goes out on the pooled connection, unanswered: sent again on a new one.
    let (status, who, body) = get(&c, &p.url("/")).await;
    assert_eq!((status, who.as_str(), body.as_str()), (200, "flaky", "ok"));
    assert_eq!(flaky.accepted.load(Ordering::SeqCst), 2);

    // A POST may have been acted on: never sent twice.
    let resp = c.post(p.url("/")).body("once").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 502);
    let body = resp.text().await.unwrap();
    assert!(
        body.contains("bad gateway: service shop/web")
            && body.contains(&format!("pod-{}", flaky.addr.port())),
        "{body}"
    );
    assert_eq!(flaky.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_malformed_response_is_502_naming_the_endpoint() {
    let raw = raw_backend(b"HTTP/1.1 200 OK\r\ncontent-length: nope\r\n\r\n", false).await;
    let p = start_proxy(Protocol::Http, vec![ep(&raw, "v1")]).await;
    let (status, _, body) = get(&client(), &p.url("/")).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("bad gateway: service shop/web")
            && body.contains(&format!("pod-{}", raw.addr.port()))
            && body.contains("invalid response"),
        "{body}"
    );
}

// ---------------------------------------------------------------------------
// TCP
// ---------------------------------------------------------------------------

#[tokio::test]
async fn tcp_passthrough_when_the_client_speaks_first() {
    for protocol in [Protocol::Tcp, Protocol::Auto] {
        let echo = tcp_echo(None).await;
        let p = start_proxy(protocol, vec![ep(&echo, "v1")]).await;
        let mut s = TcpStream::connect(p.handle.local_addr).await.unwrap();
        // Redis-like, not HTTP.
        s.write_all(b"*1\r\n$4\r\nPING\r\n").await.unwrap();
        let mut buf = [0u8; 14];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf, b"*1\r\n$4\r\nPING\r\n", "{protocol:?}");
        let text = p.metrics.render();
        let series =
            r#"ferry_service_connections_total{namespace="shop",service="web",version="v1"}"#;
        assert_eq!(sample(&text, series), Some(1.0), "{protocol:?}: {text}");
    }
}

#[tokio::test]
async fn tcp_passthrough_when_the_server_speaks_first() {
    let smtp = tcp_echo(Some(b"220 ready\r\n")).await;
    let p = start_proxy(Protocol::Auto, vec![ep(&smtp, "v1")]).await;
    let start = Instant::now();
    let mut s = TcpStream::connect(p.handle.local_addr).await.unwrap();
    // The client waits for the banner and sends nothing (for well over 100 ms if
    // the proxy waited for it).
    let mut banner = [0u8; 11];
    tokio::time::timeout(Duration::from_millis(1500), s.read_exact(&mut banner))
        .await
        .expect("banner within 1.5 s")
        .unwrap();
    assert_eq!(&banner, b"220 ready\r\n");
    assert!(start.elapsed() >= proxy::SNIFF_TIMEOUT);
    s.write_all(b"EHLO me\r\n").await.unwrap();
    let mut echo = [0u8; 9];
    s.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"EHLO me\r\n");
}

#[tokio::test]
async fn shutdown_closes_the_listener() {
    let a = backend("a", "v1").await;
    let p = start_proxy(Protocol::Http, vec![ep(&a, "v1")]).await;
    let addr = p.handle.local_addr;
    assert_eq!(get(&client(), &p.url("/")).await.0, 200);
    p.handle.shutdown().await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}

#[tokio::test]
async fn shutdown_closes_idle_keep_alive_connections() {
    let a = backend("a", "v1").await;
    let p = start_proxy(Protocol::Http, vec![ep(&a, "v1")]).await;
    let mut s = raw_connect(&p).await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut s, false).await.status, 200);
    p.handle.shutdown().await;
    assert_closed(&mut s).await;
}

// ---------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------

#[tokio::test]
async fn metrics_count_every_request_by_version_and_status_class() {
    let (a, b) = (backend("a", "v1").await, backend("b", "v2").await);
    let p = start_proxy(Protocol::Http, vec![ep(&a, "v1"), ep(&b, "v2")]).await;
    let c = client();
    // Round-robin alternates v1, v2: each path is asked twice in a row, so each
    // version sees it once.
    let plan: &[(&str, usize)] = &[
        ("/", 7),
        ("/status/302", 2),
        ("/status/404", 3),
        ("/status/500", 4),
    ];
    for (path, n) in plan {
        for _ in 0..2 * n {
            c.get(p.url(path)).send().await.unwrap();
        }
    }
    let text = p.metrics.render();
    for v in ["v1", "v2"] {
        for (code, n) in [("2xx", 7.0), ("3xx", 2.0), ("4xx", 3.0), ("5xx", 4.0)] {
            assert_eq!(
                sample(&text, &requests_series(v, code)),
                Some(n),
                "{v} {code}:\n{text}"
            );
        }
        let count = format!(
            r#"ferry_service_request_duration_seconds_count{{namespace="shop",service="web",version="{v}"}}"#
        );
        assert_eq!(sample(&text, &count), Some(16.0), "{text}");
        let inf = format!(
            r#"ferry_service_request_duration_seconds_bucket{{namespace="shop",service="web",version="{v}",le="+Inf"}}"#
        );
        assert_eq!(sample(&text, &inf), Some(16.0), "{text}");
    }
    for family in [
        "ferry_service_requests_total counter",
        "ferry_service_request_duration_seconds histogram",
        "ferry_service_connections_total counter",
    ] {
        assert!(text.contains(&format!("# TYPE {family}\n")), "{text}");
    }
}

/// Serves `Metrics::render()` over HTTP for a scraper.
async fn metrics_server(metrics: Arc<Metrics>) -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req: Request<Incoming>| {
                    let body = metrics.render();
                    async move {
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("content-type", Metrics::CONTENT_TYPE)
                                .body(Full::new(Bytes::from(body)))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Backend {
        addr,
        task,
        accepted: Arc::default(),
    }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Kills and reaps the child on drop, so a failing test leaves no Prometheus.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_metrics_and_computes_the_success_rate() {
    let prometheus = find_on_path("prometheus").expect(
        "`prometheus` is not installed: this test runs Debian's Prometheus against the proxy's \
         metrics; install it with `apt-get install -y prometheus` (CI's .ci/run must install it)",
    );
    let a = backend("a", "v1").await;
    let p = start_proxy(Protocol::Http, vec![ep(&a, "v1")]).await;
    let exporter = metrics_server(p.metrics.clone()).await;

    let dir = tempfile::tempdir().unwrap();
    let web = dead_addr().await; // a free port for Prometheus' own API
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  \
             - job_name: ferry\n    static_configs:\n      - targets: ['{}']\n",
            exporter.addr
        ),
    )
    .unwrap();
    let log_path = dir.path().join("prometheus.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let _prom = KillOnDrop(
        std::process::Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );

    // Traffic: batches of 20 requests, one of them a 500 (95 % success), until told
    // to stop or 60 s pass.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (stop, url_ok, url_err) = (stop.clone(), p.url("/"), p.url("/status/500"));
        tokio::spawn(async move {
            let c = client();
            let until = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                for i in 0..20 {
                    let url = if i == 19 { &url_err } else { &url_ok };
                    c.get(url).send().await.unwrap().bytes().await.unwrap();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let query = r#"sum(rate(ferry_service_requests_total{code="2xx",version="v1"}[30s])) / sum(rate(ferry_service_requests_total{version="v1"}[30s]))"#;
    let url = format!("http://{web}/api/v1/query?query={}", percent_encode(query));
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut last = String::from("no answer yet");
    let rate = loop {
        assert!(
            Instant::now() < deadline,
            "Prometheus gave no success rate near 0.95 within 40 s; last answer: {last}\nlog:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok(resp) = c.get(&url).send().await else {
            continue;
        };
        let Ok(body) = resp.text().await else {
            continue;
        };
        last = body.clone();
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&body) else {
            continue;
        };
        let value = json["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok());
        if let Some(v) = value
            && (v - 0.95).abs() < 0.02
        {
            break v;
        }
    };
    stop.store(true, Ordering::Relaxed);
    traffic.await.unwrap();
    assert!((rate - 0.95).abs() < 0.02, "{rate}");
}

// ---------------------------------------------------------------------------
// Slow clients and connection caps
// ---------------------------------------------------------------------------

async fn start_proxy_limited(
    protocol: Protocol,
    endpoints: Vec<Endpoint>,
    limits: &ConnectionLimits,
) -> Proxy {
    let backends = Backends::new();
    backends.set_endpoints(endpoints);
    let metrics = Metrics::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = proxy::serve_limited(
        listener,
        ServiceId::new("shop", "web", 80),
        protocol,
        backends.clone(),
        metrics.clone(),
        limits,
    )
    .await;
    Proxy {
        handle,
        backends,
        metrics,
    }
}

fn limits(header_ms: u64, idle_ms: u64, max: usize) -> ConnectionLimits {
    ConnectionLimits {
        header_timeout: Duration::from_millis(header_ms),
        idle_timeout: Duration::from_millis(idle_ms),
        max_connections: max,
        max_connections_per_ip: max,
    }
}

/// How many slow clients a flood test opens: 3,000, or fewer where the open-files
/// limit (which counts both ends of each connection here) is lower.
fn flood_size() -> usize {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
    let soft = getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(s, _)| s);
    // Other tests of this binary run alongside: leave them plenty.
    usize::try_from(soft.saturating_sub(4096) / 4)
        .unwrap_or(usize::MAX)
        .min(3000)
}

/// Opens `n` connections to `addr` that each send `bytes` and then nothing.
async fn slow_clients(addr: SocketAddr, n: usize, bytes: &'static [u8]) -> Vec<TcpStream> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(bytes).await.unwrap();
        out.push(s);
    }
    out
}

/// Whether the other end closed `s` (EOF or reset) without sending a byte, within
/// 30 s.
async fn closed_silently(s: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    match tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut rest)).await {
        Ok(Ok(_)) | Ok(Err(_)) => rest.is_empty(),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_slow_header_flood_keeps_the_service_answering() {
    let a = backend("a", "v1").await;
    let p = start_proxy_limited(
        Protocol::Auto,
        vec![ep(&a, "v1")],
        &limits(1000, 60_000, 10_000),
    )
    .await;
    let n = flood_size();
    let mut slow = slow_clients(
        p.handle.local_addr,
        n,
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ",
    )
    .await;
    // While they are held, a fresh client is answered.
    let (status, who, _) = get(&client(), &p.url("/")).await;
    assert_eq!((status, who.as_str()), (200, "a"));
    // And every slow one is closed after the header timeout, never answered.
    for (i, s) in slow.iter_mut().enumerate() {
        assert!(
            closed_silently(s).await,
            "slow client {i} of {n} was not closed (or was answered)"
        );
    }
    assert_eq!(get(&client(), &p.url("/")).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_connection_cap_keeps_established_keep_alive_clients_served() {
    let a = backend("a", "v1").await;
    // Slow clients are not timed out here: only the cap is at work.
    let p = start_proxy_limited(
        Protocol::Http,
        vec![ep(&a, "v1")],
        &limits(600_000, 600_000, 50),
    )
    .await;
    let mut established = raw_connect(&p).await;
    established
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut established, false).await.status, 200);

    // 100 slow clients: 49 fill the cap, the rest are closed at once.
    let mut slow = slow_clients(p.handle.local_addr, 100, b"GET / HTTP/1.1\r\nHost:").await;
    let mut refused = 0;
    for s in slow.iter_mut().skip(49) {
        refused += usize::from(closed_silently(s).await);
    }
    assert_eq!(refused, 51, "connections past the cap are closed at once");
    let mut fresh = TcpStream::connect(p.handle.local_addr).await.unwrap();
    let _ = fresh.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(
        closed_silently(&mut fresh).await,
        "a fresh client past the cap is closed"
    );

    // The established client is served as before, on the same connection.
    for _ in 0..3 {
        established
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let resp = read_response(&mut established, false).await;
        assert_eq!((resp.status, resp.text()), (200, "a v1".to_string()));
    }

    // Once the slow clients go, fresh ones are served again.
    drop(slow);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = raw_connect(&p).await;
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut line = String::new();
        let _ = s.read_line(&mut line).await;
        if line.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "fresh clients still refused 10 s after the slow ones left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn idle_keep_alive_and_slow_later_heads_are_closed_but_a_slow_body_is_not() {
    let a = backend("a", "v1").await;
    let p = start_proxy_limited(Protocol::Http, vec![ep(&a, "v1")], &limits(300, 300, 100)).await;
    // Idle after one answer: closed after the idle timeout.
    let mut idle = raw_connect(&p).await;
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut idle, false).await.status, 200);
    assert_closed(&mut idle).await;
    // A second head sent in pieces slower than the header timeout: closed.
    let mut slow = raw_connect(&p).await;
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut slow, false).await.status, 200);
    assert_closed(&mut slow).await;
    // A request body slower than both timeouts is not cut: the head was whole.
    let mut body = raw_connect(&p).await;
    body.write_all(b"POST /collect HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    body.write_all(b"cd").await.unwrap();
    let resp = read_response(&mut body, false).await;
    assert_eq!((resp.status, resp.text()), (200, "abcd".to_string()));
}
