//! Who may call the API, wherever the daemon listens.
//!
//! The daemon runs workloads as the user who started it (as root when that is root),
//! so its API is as good as a shell of that user. Loopback is no boundary: every other
//! user of the host can connect to `127.0.0.1`, and so can a web page in a browser —
//! by a cross-site form or `fetch` (CSRF), or through a name of its own that it
//! re-points at `127.0.0.1` (DNS rebinding). Hence four rules, checked in this order
//! on every request:
//!
//! 1. **Host** (DNS rebinding): a daemon bound to loopback answers only requests whose
//!    `Host` is its bound address, `localhost`, `127.0.0.1` or `[::1]` (any port, so
//!    an SSH port forward still works); anything else is 403. A daemon bound to
//!    another or the unspecified address takes any `Host`: it is meant to be reached
//!    by other names, and the token is then the guard.
//! 2. **Origin** (CSRF): a request that carries `Origin` must come from the daemon's
//!    own origin (`http://` or `https://` and the request's own `Host`); others are 403.
//! 3. **Token**: `Authorization: Bearer <token>` (the scheme in any case, RFC 7235),
//!    compared in constant time; 401 without it. The token is made once per
//!    `FERRY_HOME` (`FERRY_HOME/token`, mode 0600, 32 random bytes in hex), so only
//!    the daemon's user (and root) can read it; the CLI sends it by itself.
//! 4. **Content type** (CSRF without a preflight): `POST`, `PUT`, `PATCH` and `DELETE`
//!    take only JSON or YAML bodies (`application/json`, `application/*+json`,
//!    `application/yaml`, `application/*+yaml`, …); a type a browser may send
//!    cross-site without asking first (`text/plain`, `application/x-www-form-urlencoded`,
//!    `multipart/form-data`), any other type, or none with a body, is 415.
//!
//! Two paths are exempt from the token: `GET /healthz` (liveness probes) and
//! `POST /api/webhook`, which is exempt from all four — it checks its own HMAC secret,
//! an unsigned push only triggers a refresh, and GitHub's deliveries may arrive through
//! a tunnel under another `Host` and as a form.

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN, TRANSFER_ENCODING,
};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq as _;

use crate::error::{ApiError, Error};

/// Open without a token: liveness probes.
const HEALTHZ: &str = "/healthz";

/// Open without a token and exempt from the Host, Origin and content-type rules: the
/// push webhook, guarded by its own HMAC secret.
const WEBHOOK: &str = "/api/webhook";

/// `FERRY_HOME/token`.
pub fn token_path(home: &Path) -> PathBuf {
    home.join("token")
}

/// The token in `FERRY_HOME/token`, if there is a non-empty one.
pub fn read_token(home: &Path) -> Option<String> {
    let text = std::fs::read_to_string(token_path(home)).ok()?;
    let token = text.trim();
    (!token.is_empty()).then(|| token.to_string())
}

/// `n` random bytes from the kernel, in hex.
pub fn random_hex(n: usize) -> std::io::Result<String> {
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes))?;
    Ok(hex::encode(bytes))
}

/// The token of `home`, made (and written readable by its owner only) when there is
/// none yet. An existing token file is kept, its mode tightened to 0600.
pub fn load_or_create(home: &Path) -> Result<String, Error> {
    let path = token_path(home);
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { what, path, source }
    };
    if let Some(token) = read_token(home) {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(io("restricting", &path))?;
        return Ok(token);
    }
    let token = random_hex(32).map_err(io("reading", Path::new("/dev/urandom")))?;
    let tmp = home.join(".token.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::File::options()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io("writing", &tmp))?;
    f.write_all(format!("{token}\n").as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io("writing", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io("writing", &path))?;
    Ok(token)
}

/// Whether `addr` is reachable from this host only: 127.0.0.0/8, `::1` (or an
/// IPv4-mapped loopback address).
pub fn is_loopback(addr: &SocketAddr) -> bool {
    match addr.ip() {
        IpAddr::V4(ip) => ip.is_loopback(),
        IpAddr::V6(ip) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Why a request was turned away: the status and a message saying what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// 401, 403 or 415.
    pub code: StatusCode,
    /// The message.
    pub message: String,
}

impl Refusal {
    fn new(code: StatusCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// What a guarded daemon checks.
#[derive(Debug)]
struct Guard {
    token: Arc<str>,
    /// The bound address; `Host` is checked only when it is a loopback one.
    bound: SocketAddr,
}

/// Who may call the API.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// `None` lets every request through (an API built in-process for a test).
    guard: Option<Arc<Guard>>,
}

impl Policy {
    /// Every request allowed: for an API built in-process, never for a daemon.
    pub fn open() -> Self {
        Self::default()
    }

    /// A daemon's policy: the Host, Origin, token and content-type rules of this
    /// module, for the API bound at `bound`.
    pub fn daemon(token: impl Into<Arc<str>>, bound: SocketAddr) -> Self {
        Self {
            guard: Some(Arc::new(Guard {
                token: token.into(),
                bound,
            })),
        }
    }

    /// Whether a token is asked for.
    pub fn requires_token(&self) -> bool {
        self.guard.is_some()
    }

    /// Whether a request may go on, or why not.
    pub fn check(&self, method: &Method, path: &str, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(guard) = &self.guard else {
            return Ok(());
        };
        if path == WEBHOOK {
            return Ok(());
        }
        let host = headers.get(HOST).map(|h| h.to_str().unwrap_or("\u{fffd}"));
        if let Some(host) = host
            && is_loopback(&guard.bound)
            && !loopback_host(host, &guard.bound)
        {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                format!(
                    "Host {host:?} is not this daemon's: it listens on {bound} (loopback) and answers \
                     only requests for {bound}, localhost, 127.0.0.1 or [::1] — a page that re-points \
                     its own name at this host (DNS rebinding) is refused; call http://{bound}/",
                    bound = guard.bound
                ),
            ));
        }
        if let Some(origin) = headers.get(ORIGIN) {
            let origin = origin.to_str().unwrap_or("\u{fffd}");
            if !same_origin(origin, host) {
                return Err(Refusal::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "requests from the origin {origin:?} are refused: this API takes calls only \
                         from its own origin (http://{}), never from another site's pages",
                        host.unwrap_or("HOST:PORT")
                    ),
                ));
            }
        }
        if path != HEALTHZ && !bearer_matches(headers, &guard.token) {
            return Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                "this API needs 'Authorization: Bearer <token>'; the token is in FERRY_HOME/token on \
                 the daemon's host (readable by the daemon's user only). The ferry CLI sends it by \
                 itself (FERRY_TOKEN when set, else FERRY_HOME/token); with curl: \
                 curl -H \"Authorization: Bearer $(cat \"$FERRY_HOME/token\")\" …",
            ));
        }
        if matches!(
            *method,
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        ) {
            content_type_allowed(headers)?;
        }
        Ok(())
    }
}

/// Whether `host` (a `Host` header) names a daemon bound to the loopback address
/// `bound`: the address itself, `localhost`, `127.0.0.1` or `[::1]`, with any port.
fn loopback_host(host: &str, bound: &SocketAddr) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        // `[::1]` alone has colons but no port after its bracket.
        Some((name, port)) if !port.contains(']') => (name, Some(port)),
        _ => (host, None),
    };
    if port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    let bound_name = match bound.ip() {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    ["localhost", "127.0.0.1", "[::1]", bound_name.as_str()]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n))
}

/// Whether `origin` is the request's own: `http://HOST` or `https://HOST` (behind a
/// TLS proxy), where HOST is the request's `Host`.
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host else {
        return false;
    };
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    authority.is_some_and(|a| a.eq_ignore_ascii_case(host))
}

/// Whether `Authorization` carries `Bearer <want>` (the scheme in any case).
fn bearer_matches(headers: &HeaderMap, want: &str) -> bool {
    let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some((scheme, given)) = value.trim_start().split_once([' ', '\t']) else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer")
        && bool::from(given.trim().as_bytes().ct_eq(want.as_bytes()))
}

/// The content-type rule for a mutating request.
fn content_type_allowed(headers: &HeaderMap) -> Result<(), Refusal> {
    const ACCEPTED: &str = "send JSON or YAML: Content-Type application/json, application/yaml, \
                            or an application/*+json or application/*+yaml type";
    let Some(ct) = headers.get(CONTENT_TYPE) else {
        let has_body = headers.contains_key(TRANSFER_ENCODING)
            || headers
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim() != "0");
        return if has_body {
            Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("a request body without a Content-Type is refused; {ACCEPTED}"),
            ))
        } else {
            Ok(())
        };
    };
    let raw = ct.to_str().unwrap_or("\u{fffd}");
    let essence = raw
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if matches!(
        essence.as_str(),
        "text/plain" | "application/x-www-form-urlencoded" | "multipart/form-data"
    ) {
        return Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Type {raw:?} is refused: any web page can send it here without the \
                 browser asking first; {ACCEPTED}"
            ),
        ));
    }
    if json_or_yaml(&essence) {
        Ok(())
    } else {
        Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type {raw:?} is not taken; {ACCEPTED}"),
        ))
    }
}

/// JSON and YAML media types (lower case, no parameters), including structured
/// suffixes such as kubectl's `application/merge-patch+json` and
/// `application/apply-patch+yaml`.
fn json_or_yaml(essence: &str) -> bool {
    let Some((kind, sub)) = essence.split_once('/') else {
        return false;
    };
    match kind {
        "application" => {
            matches!(sub, "json" | "yaml" | "x-yaml")
                || sub.ends_with("+json")
                || sub.ends_with("+yaml")
        }
        "text" => matches!(sub, "yaml" | "x-yaml"),
        _ => false,
    }
}

/// The middleware: the request goes on when [`Policy::check`] allows it; otherwise
/// the refusal as a JSON error, and nothing is done.
pub async fn require(State(policy): State<Policy>, req: Request, next: Next) -> Response {
    match policy.check(req.method(), req.uri().path(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(r) => ApiError {
            code: r.code,
            message: r.message,
        }
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const PORT: u16 = 7171;

    fn loopback() -> Policy {
        Policy::daemon("abc", SocketAddr::from(([127, 0, 0, 1], PORT)))
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn code(p: &Policy, method: Method, path: &str, h: &HeaderMap) -> u16 {
        p.check(&method, path, h)
            .map_or_else(|r| r.code.as_u16(), |()| 200)
    }

    const OK: (&str, &str) = ("authorization", "Bearer abc");

    #[test]
    fn only_loopback_addresses_are_loopback() {
        for (a, want) in [
            ("127.0.0.1:1", true),
            ("127.3.2.1:1", true),
            ("[::1]:1", true),
            ("[::ffff:127.0.0.1]:1", true),
            ("0.0.0.0:1", false),
            ("[::]:1", false),
            ("10.0.0.1:1", false),
        ] {
            assert_eq!(is_loopback(&a.parse().unwrap()), want, "{a}");
        }
    }

    #[test]
    fn the_token_is_private_hex_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let t = load_or_create(dir.path()).unwrap();
        assert_eq!(t.len(), 64);
        assert!(t.chars().all(|c| c.is_ascii_hexdigit()));
        let mode = std::fs::metadata(token_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_create(dir.path()).unwrap(), t);
        assert_eq!(read_token(dir.path()).as_deref(), Some(t.as_str()));
    }

    #[test]
    fn loopback_without_a_token_is_401_and_only_healthz_and_the_webhook_are_open() {
        let p = loopback();
        let none = headers(&[("host", "127.0.0.1:7171")]);
        assert_eq!(code(&p, Method::GET, "/api/v1/apps", &none), 401);
        assert_eq!(code(&p, Method::GET, "/metrics", &none), 401);
        assert_eq!(code(&p, Method::POST, "/api/v1/down", &none), 401);
        assert_eq!(code(&p, Method::GET, "/no/such/route", &none), 401);
        assert_eq!(code(&p, Method::GET, "/healthz", &none), 200);
        assert_eq!(code(&p, Method::POST, "/api/webhook", &none), 200);
        let msg = p
            .check(&Method::GET, "/api/v1/apps", &none)
            .unwrap_err()
            .message;
        assert!(
            msg.contains("FERRY_HOME/token") && msg.contains("FERRY_TOKEN"),
            "{msg}"
        );
        assert!(!msg.contains("loopback"), "{msg}");
        let wrong = headers(&[("host", "127.0.0.1:7171"), ("authorization", "Bearer abd")]);
        assert_eq!(code(&p, Method::GET, "/api/v1/apps", &wrong), 401);
        let basic = headers(&[("host", "127.0.0.1:7171"), ("authorization", "Basic abc")]);
        assert_eq!(code(&p, Method::GET, "/api/v1/apps", &basic), 401);
        let right = headers(&[("host", "127.0.0.1:7171"), OK]);
        assert_eq!(code(&p, Method::GET, "/api/v1/apps", &right), 200);
        assert!(
            Policy::open()
                .check(&Method::POST, "/api/v1/down", &HeaderMap::new())
                .is_ok()
        );
    }

    #[test]
    fn the_bearer_scheme_is_matched_in_any_case() {
        let p = loopback();
        for auth in ["Bearer abc", "bearer abc", "BEARER abc", "bEaReR   abc "] {
            let h = headers(&[("host", "localhost:7171"), ("authorization", auth)]);
            assert_eq!(code(&p, Method::GET, "/api/v1/apps", &h), 200, "{auth}");
        }
        let h = headers(&[("host", "localhost:7171"), ("authorization", "Bearerabc")]);
        assert_eq!(code(&p, Method::GET, "/api/v1/apps", &h), 401);
    }

    #[test]
    fn dns_rebinding_a_foreign_host_is_refused_on_loopback_even_with_the_token() {
        let p = loopback();
        for host in [
            "127.0.0.1:7171",
            "127.0.0.1",
            "localhost:7171",
            "LOCALHOST:9000",
            "localhost",
            "[::1]:7171",
            "[::1]",
        ] {
            let mut h = headers(&[OK]);
            h.insert(HOST, HeaderValue::from_str(host).unwrap());
            assert_eq!(code(&p, Method::GET, "/api/v1/apps", &h), 200, "{host}");
        }
        for host in [
            "evil.example:7171",
            "evil.example",
            "127.0.0.1.evil.example:7171",
            "localhost.evil.example",
            "127.0.0.2:7171",
            "localhost:x",
            "[::2]:7171",
        ] {
            let mut h = headers(&[OK]);
            h.insert(HOST, HeaderValue::from_str(host).unwrap());
            assert_eq!(code(&p, Method::GET, "/api/v1/apps", &h), 403, "{host}");
            assert_eq!(code(&p, Method::GET, "/healthz", &h), 403, "{host}");
        }
        // The bound address itself, when it is another loopback address.
        let other = Policy::daemon("abc", "127.0.0.2:7171".parse().unwrap());
        let h = headers(&[("host", "127.0.0.2:7171"), OK]);
        assert_eq!(code(&other, Method::GET, "/api/v1/apps", &h), 200);
        let v6 = Policy::daemon("abc", "[::1]:7171".parse().unwrap());
        let h = headers(&[("host", "[::1]:7171"), OK]);
        assert_eq!(code(&v6, Method::GET, "/api/v1/apps", &h), 200);
    }

    #[test]
    fn beyond_loopback_any_host_is_taken_and_the_token_guards() {
        for bound in ["0.0.0.0:7171", "[::]:7171", "10.1.2.3:7171"] {
            let p = Policy::daemon("abc", bound.parse().unwrap());
            let h = headers(&[("host", "ferry.internal.example:7171"), OK]);
            assert_eq!(code(&p, Method::GET, "/api/v1/apps", &h), 200, "{bound}");
            let h = headers(&[("host", "ferry.internal.example:7171")]);
            assert_eq!(code(&p, Method::GET, "/api/v1/apps", &h), 401, "{bound}");
        }
    }

    #[test]
    fn csrf_a_foreign_origin_is_refused_and_the_own_one_is_taken() {
        let p = loopback();
        for origin in [
            "http://evil.example",
            "http://evil.example:7171",
            "null",
            "http://localhost:7171.evil.example",
        ] {
            let mut h = headers(&[("host", "127.0.0.1:7171"), OK]);
            h.insert(ORIGIN, HeaderValue::from_str(origin).unwrap());
            assert_eq!(code(&p, Method::GET, "/api/v1/apps", &h), 403, "{origin}");
        }
        for origin in ["http://127.0.0.1:7171", "https://127.0.0.1:7171"] {
            let mut h = headers(&[("host", "127.0.0.1:7171"), OK]);
            h.insert(ORIGIN, HeaderValue::from_str(origin).unwrap());
            assert_eq!(code(&p, Method::GET, "/api/v1/apps", &h), 200, "{origin}");
        }
    }

    #[test]
    fn csrf_the_probes_browser_style_apply_is_refused() {
        let p = loopback();
        let h = headers(&[
            ("host", "evil.example:7171"),
            ("origin", "http://evil.example"),
            ("content-type", "text/plain"),
            ("content-length", "120"),
        ]);
        assert_eq!(code(&p, Method::POST, "/api/v1/apply", &h), 403);
    }

    #[test]
    fn csrf_mutations_take_only_json_or_yaml_bodies() {
        let p = loopback();
        let with = |ct: Option<&'static str>, len: &'static str| {
            let mut h = headers(&[("host", "127.0.0.1:7171"), OK, ("content-length", len)]);
            if let Some(ct) = ct {
                h.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
            }
            h
        };
        for ct in [
            "text/plain",
            "text/plain; charset=utf-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "TEXT/PLAIN",
            "application/octet-stream",
        ] {
            for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
                assert_eq!(
                    code(&p, m.clone(), "/api/v1/apply", &with(Some(ct), "2")),
                    415,
                    "{m} {ct}"
                );
            }
            // Even without a body: a form with nothing in it still posts.
            assert_eq!(
                code(&p, Method::POST, "/api/v1/down", &with(Some(ct), "0")),
                415,
                "{ct}"
            );
        }
        for ct in [
            "application/json",
            "application/json; charset=utf-8",
            "application/yaml",
            "application/x-yaml",
            "text/yaml",
            "application/merge-patch+json",
            "application/json-patch+json",
            "application/apply-patch+yaml",
            "application/vnd.example+json",
        ] {
            assert_eq!(
                code(&p, Method::POST, "/api/v1/apply", &with(Some(ct), "2")),
                200,
                "{ct}"
            );
        }
        assert_eq!(
            code(&p, Method::POST, "/api/v1/apply", &with(None, "2")),
            415
        );
        let mut chunked = with(None, "0");
        chunked.remove(CONTENT_LENGTH);
        chunked.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        assert_eq!(code(&p, Method::POST, "/api/v1/apply", &chunked), 415);
        // No body, no type: a bare DELETE or POST is fine.
        assert_eq!(
            code(&p, Method::DELETE, "/api/v1/namespaces/x", &with(None, "0")),
            200
        );
        let mut bare = with(None, "0");
        bare.remove(CONTENT_LENGTH);
        assert_eq!(code(&p, Method::POST, "/api/v1/down", &bare), 200);
        // Reads are not held to it.
        assert_eq!(
            code(
                &p,
                Method::GET,
                "/api/v1/apps",
                &with(Some("text/plain"), "0")
            ),
            200
        );
        // GitHub's form deliveries still reach the webhook.
        let form = headers(&[
            ("host", "hooks.example"),
            ("content-type", "application/x-www-form-urlencoded"),
            ("content-length", "9"),
        ]);
        assert_eq!(code(&p, Method::POST, "/api/webhook", &form), 200);
    }
}
