//! The API token: made once per `FERRY_HOME` (`FERRY_HOME/token`, mode 0600, 32
//! random bytes in hex) and required as `Authorization: Bearer <token>` on every call
//! but `/healthz` and `/api/webhook` when the daemon listens beyond loopback. On
//! loopback anyone who can reach the port can already read `FERRY_HOME`, so no token
//! is asked for there.

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq as _;

use crate::error::{ApiError, Error};

/// Paths open without a token: liveness, and the webhook (which has its own secret).
const OPEN_PATHS: [&str; 2] = ["/healthz", "/api/webhook"];

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
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(io("reading", Path::new("/dev/urandom")))?;
    let token = hex::encode(bytes);
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

/// Who may call the API.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// The token asked for; `None` lets every call through (a loopback daemon).
    required: Option<Arc<str>>,
}

impl Policy {
    /// Every call allowed.
    pub fn open() -> Self {
        Self::default()
    }

    /// `token` required on every call but the open paths.
    pub fn token(token: impl Into<Arc<str>>) -> Self {
        Self {
            required: Some(token.into()),
        }
    }

    /// Whether a token is asked for.
    pub fn requires_token(&self) -> bool {
        self.required.is_some()
    }

    /// Whether a request to `path` with `headers` may go on.
    pub fn allows(&self, path: &str, headers: &HeaderMap) -> bool {
        let Some(want) = &self.required else {
            return true;
        };
        if OPEN_PATHS.contains(&path) {
            return true;
        }
        let Some(given) = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
        else {
            return false;
        };
        bool::from(given.trim().as_bytes().ct_eq(want.as_bytes()))
    }
}

/// The middleware: 401 (JSON, nothing done) unless [`Policy::allows`] the request.
pub async fn require(State(policy): State<Policy>, req: Request, next: Next) -> Response {
    if policy.allows(req.uri().path(), req.headers()) {
        return next.run(req).await;
    }
    ApiError {
        code: StatusCode::UNAUTHORIZED,
        message: "this daemon listens beyond loopback and needs 'Authorization: Bearer <token>'; \
                  the token is in FERRY_HOME/token on the daemon's host (the CLI reads it, or set FERRY_TOKEN)"
            .into(),
    }
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

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
    fn a_policy_wants_the_exact_token_except_on_open_paths() {
        let p = Policy::token("abc");
        let mut h = HeaderMap::new();
        assert!(!p.allows("/api/v1/apps", &h));
        assert!(p.allows("/healthz", &h));
        assert!(p.allows("/api/webhook", &h));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abd"));
        assert!(!p.allows("/api/v1/apps", &h));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert!(p.allows("/api/v1/apps", &h));
        assert!(Policy::open().allows("/api/v1/apps", &HeaderMap::new()));
    }
}
