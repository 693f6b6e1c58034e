//! The CLI's HTTP client to the daemon (`ferry serve`), and what the kubectl-like
//! commands share: where the daemon is, namespaces, `KIND/NAME` arguments, ages.
//!
//! Where the daemon is: `--server URL` > `FERRY_SERVER` > the daemon recorded in
//! `FERRY_HOME/daemon.json`. There is no default address: without the first two the
//! CLI talks only to this `FERRY_HOME`'s own daemon, and says so when none runs, so it
//! never reaches (or stops) the daemon of another home or user that happens to listen
//! where this one used to.
//!
//! The API token (every call needs it) is `FERRY_TOKEN`, else `FERRY_HOME/token` — the
//! latter sent only to this host's daemon, never to a `--server` elsewhere.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use clap::Args;
use ferry_server::DaemonInfo;
use serde_json::Value;

use crate::home;
use crate::output::EXIT_FINDING;

/// `--server`, shared by every command that talks to the daemon.
#[derive(Args, Debug, Clone, Default)]
pub struct ServerArgs {
    /// The daemon's URL (default: FERRY_SERVER, else the daemon recorded in FERRY_HOME/daemon.json).
    #[arg(long, env = "FERRY_SERVER", value_name = "URL")]
    pub server: Option<String>,
}

/// `-n` / `-A`, shared by commands that look at namespaced objects.
#[derive(Args, Debug, Clone, Default)]
pub struct NamespaceArgs {
    /// Namespace (default: `default`).
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    pub namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
}

impl NamespaceArgs {
    /// The namespace to use when one is needed.
    pub fn ns(&self) -> &str {
        self.namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or("default")
    }
}

/// An error the daemon answered with (`{"error": …, "code": N}`): the command ran
/// and the daemon refused; exit code 1.
#[derive(Debug)]
pub struct ApiFailure {
    /// HTTP status.
    pub code: u16,
    /// The daemon's message.
    pub message: String,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiFailure {}

/// Maps an [`ApiFailure`] to exit code 1 (message on stderr); other errors stay errors (exit 2).
pub fn exit_code(result: anyhow::Result<u8>) -> anyhow::Result<u8> {
    match result {
        Err(e) => match e.downcast_ref::<ApiFailure>() {
            Some(f) => {
                eprintln!("error: {}", f.message);
                Ok(EXIT_FINDING)
            }
            None => Err(e),
        },
        ok => ok,
    }
}

/// A connection to the daemon, with its own small async runtime.
pub struct Client {
    base: String,
    token: Option<String>,
    /// Where the token came from, for a refusal's message.
    token_source: String,
    home: PathBuf,
    /// What `daemon.json` records, when the daemon was found there (no `--server`).
    recorded: Option<DaemonInfo>,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

/// `url` with a scheme and without a trailing `/`.
fn normalise(url: &str) -> String {
    let with_scheme = if url.starts_with("http://") || url.starts_with("https://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    with_scheme.trim_end_matches('/').to_string()
}

/// The daemon `daemon.json` of `home` records, if that daemon's process still runs;
/// otherwise the error every command shows (exit 2).
pub fn running_daemon(home: &Path) -> anyhow::Result<DaemonInfo> {
    let Some(info) = ferry_server::daemon::read_info(home) else {
        anyhow::bail!(
            "no daemon is running for FERRY_HOME {}; start one with 'ferry serve' (or name one with --server/FERRY_SERVER)",
            home.display()
        );
    };
    if !process_exists(info.pid) {
        anyhow::bail!(
            "no daemon is running for FERRY_HOME {} (its daemon.json names pid {}, which has exited); start one with 'ferry serve'",
            home.display(),
            info.pid
        );
    }
    Ok(info)
}

/// Whether a process `pid` exists (perhaps another user's).
fn process_exists(pid: u32) -> bool {
    use nix::errno::Errno;
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    // 0 and negative numbers name process groups, not a daemon.
    raw > 0
        && match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
            Ok(()) | Err(Errno::EPERM) => true,
            Err(_) => false,
        }
}

/// A daemon bound to every address (`0.0.0.0:P`, `[::]:P`) is reached on loopback.
fn connectable(addr: &str) -> String {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(a) if a.ip().is_unspecified() => {
            let ip: std::net::IpAddr = if a.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            };
            std::net::SocketAddr::new(ip, a.port()).to_string()
        }
        _ => addr.to_string(),
    }
}

/// The API token to send and where it came from: `FERRY_TOKEN`, else
/// `FERRY_HOME/token` when the daemon is this host's (no `--server`, or one on
/// loopback) so the token never leaves the host.
pub fn token_for(flag: Option<&str>) -> (Option<String>, String) {
    if let Ok(t) = std::env::var("FERRY_TOKEN")
        && !t.trim().is_empty()
    {
        return (Some(t.trim().to_string()), "FERRY_TOKEN".into());
    }
    let local = match flag.filter(|s| !s.is_empty()) {
        None => true,
        Some(url) => {
            let rest = url.split_once("://").map_or(url, |(_, r)| r);
            let authority = rest.split('/').next().unwrap_or_default();
            let host = authority
                .rsplit_once(':')
                .map_or(authority, |(h, _)| h)
                .trim_matches(['[', ']']);
            host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    };
    let path = ferry_server::auth::token_path(&home::ferry_home());
    if !local {
        return (
            None,
            "no token (FERRY_HOME/token is never sent to another host; set FERRY_TOKEN)".into(),
        );
    }
    match ferry_server::auth::read_token(&home::ferry_home()) {
        Some(t) => (Some(t), path.display().to_string()),
        None => (
            None,
            format!("no token ({} is missing; set FERRY_TOKEN)", path.display()),
        ),
    }
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Client {
    /// A client for the daemon `server` names, else this `FERRY_HOME`'s (see the module
    /// doc); an error (exit 2) when neither is there.
    pub fn new(server: &ServerArgs) -> anyhow::Result<Self> {
        let home = home::ferry_home();
        let flag = server.server.as_deref().filter(|s| !s.is_empty());
        let (base, recorded) = match flag {
            Some(url) => (normalise(url), None),
            None => {
                let info = running_daemon(&home)?;
                (normalise(&connectable(&info.addr)), Some(info))
            }
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .context("building the HTTP client")?;
        let (token, token_source) = token_for(flag);
        Ok(Self {
            base,
            token,
            token_source,
            home,
            recorded,
            http,
            rt,
        })
    }

    /// The daemon's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// What `daemon.json` records about the daemon, when it was found there.
    pub fn recorded(&self) -> Option<&DaemonInfo> {
        self.recorded.as_ref()
    }

    /// `FERRY_HOME`.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Who should be serving, for a message about a daemon that does not answer.
    fn whose(&self) -> String {
        match &self.recorded {
            Some(info) => format!(
                "is 'ferry serve' running for FERRY_HOME {}? (its daemon.json names pid {}); start it with 'ferry serve'",
                self.home.display(),
                info.pid
            ),
            None => "is 'ferry serve' running there? start it with 'ferry serve'".into(),
        }
    }

    /// A transport error in words, without hyper's and reqwest's chain: the daemon
    /// could not be reached, or went away during the call.
    fn lost(&self, e: &reqwest::Error) -> anyhow::Error {
        let mut io_kind = None;
        let mut cause: Option<&dyn std::error::Error> = Some(e);
        while let Some(c) = cause {
            if let Some(io) = c.downcast_ref::<std::io::Error>() {
                io_kind = Some(io.kind());
            }
            cause = c.source();
        }
        use std::io::ErrorKind as K;
        let how = match io_kind {
            Some(K::ConnectionRefused) => "connection refused",
            Some(K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof) => {
                "the connection was cut"
            }
            _ if e.is_timeout() => "no answer in time",
            _ if e.is_connect() => "cannot connect",
            _ => "the connection was cut",
        };
        if e.is_connect() {
            anyhow::anyhow!(
                "cannot reach the ferry daemon at {} ({how}): {}",
                self.base,
                self.whose()
            )
        } else {
            anyhow::anyhow!(
                "the ferry daemon at {} went away during the call ({how}): {}",
                self.base,
                self.whose()
            )
        }
    }

    async fn send_async(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(String, &str)>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some((b, ct)) = body {
            req = req.header("content-type", ct).body(b);
        }
        let resp = req.send().await.map_err(|e| self.lost(&e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let code = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| self.lost(&e))?;
        let mut message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| format!("the daemon answered {code}: {}", text.trim()));
        if code == 401 {
            message.push_str(&format!(
                " (the daemon at {} refused what this CLI sent: {})",
                self.base, self.token_source
            ));
        }
        Err(ApiFailure { code, message }.into())
    }

    /// Sends a request and reads the JSON answer.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(String, &str)>,
    ) -> anyhow::Result<Value> {
        self.rt.block_on(async {
            let resp = self.send_async(method, path, body).await?;
            let text = resp.text().await.map_err(|e| self.lost(&e))?;
            serde_json::from_str(&text)
                .with_context(|| format!("the daemon's answer to {path} is not JSON"))
        })
    }

    /// `GET path` as JSON.
    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.request(reqwest::Method::GET, path, None)
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.request(
            reqwest::Method::POST,
            path,
            Some((body.to_string(), "application/json")),
        )
    }

    /// `PUT path` with a JSON body.
    pub fn put(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.request(
            reqwest::Method::PUT,
            path,
            Some((body.to_string(), "application/json")),
        )
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.request(reqwest::Method::DELETE, path, None)
    }

    /// Streams `GET path`, handing each chunk to `f` until the daemon ends the stream
    /// or `f` returns `false`.
    pub fn stream(
        &self,
        path: &str,
        mut f: impl FnMut(&[u8]) -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        self.rt.block_on(async {
            let mut resp = self.send_async(reqwest::Method::GET, path, None).await?;
            while let Some(chunk) = resp.chunk().await.map_err(|e| self.lost(&e))? {
                if !f(&chunk)? {
                    break;
                }
            }
            Ok(())
        })
    }

    /// Streams newline-delimited JSON from `GET path`, one value at a time.
    pub fn stream_lines(
        &self,
        path: &str,
        mut f: impl FnMut(Value) -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let mut buf: Vec<u8> = Vec::new();
        self.stream(path, |chunk| {
            buf.extend_from_slice(chunk);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let v: Value = serde_json::from_slice(&line)
                    .context("the daemon sent a line that is not JSON")?;
                if !f(v)? {
                    return Ok(false);
                }
            }
            Ok(true)
        })
    }

    /// Whether the daemon answers `/healthz`.
    pub fn alive(&self) -> bool {
        self.rt.block_on(async {
            self.http
                .get(format!("{}/healthz", self.base))
                .send()
                .await
                .is_ok()
        })
    }
}

/// The URL path of one object: `/api/v1/namespaces/NS/KIND/NAME`. Each part stays one
/// path segment: a `/` in it goes as `%2F` (else `../x` would climb the URL), so an
/// object an older daemon stored with such a name can still be reached and deleted.
pub fn object_path(ns: &str, kind: &str, name: &str) -> String {
    let seg = |s: &str| enc(s).replace('/', "%2F");
    format!("/api/v1/namespaces/{}/{}/{}", seg(ns), seg(kind), seg(name))
}

/// Splits `KIND/NAME`, or takes `arg` as a name of `default_kind`.
pub fn target(arg: &str, default_kind: Option<&str>) -> anyhow::Result<(String, String)> {
    match arg.split_once('/') {
        Some((k, n)) if !k.is_empty() && !n.is_empty() => Ok((k.to_string(), n.to_string())),
        Some(_) => anyhow::bail!("{arg:?}: give KIND/NAME, e.g. deploy/web"),
        None => match default_kind {
            Some(k) => Ok((k.to_string(), arg.to_string())),
            None => anyhow::bail!("{arg:?}: give KIND/NAME, e.g. deploy/web"),
        },
    }
}

/// kubectl's name for an object: `deployment.apps/web`.
pub fn resource_name(obj: &Value) -> String {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let api = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (group, _) = ferry_core::object::split_api_version(api);
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    ferry_server::kinds::resource_name(kind, group, name)
}

/// kubectl's human age of a duration: `45s`, `3m12s`, `2h5m`, `3d4h`, `400d`.
pub fn human_age(d: Duration) -> String {
    let s = d.as_secs();
    let (m, h, days) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        format!("{m}m{}s", s % 60)
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        format!("{h}h{}m", m % 60)
    } else if h < 48 {
        format!("{h}h")
    } else if h < 192 {
        format!("{days}d{}h", h % 24)
    } else if days < 730 {
        format!("{days}d")
    } else {
        format!("{}y{}d", days / 365, days % 365)
    }
}

/// The age of an RFC 3339 timestamp, or `<unknown>`.
pub fn age_of(ts: Option<&str>) -> String {
    ts.and_then(|t| humantime::parse_rfc3339_weak(t).ok())
        .map(|t| human_age(SystemTime::now().duration_since(t).unwrap_or_default()))
        .unwrap_or_else(|| "<unknown>".into())
}

/// A string at a JSON pointer, or empty.
pub fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// An integer at a JSON pointer, or 0.
pub fn i(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(human_age(Duration::from_secs(5)), "5s");
        assert_eq!(human_age(Duration::from_secs(119)), "119s");
        assert_eq!(human_age(Duration::from_secs(192)), "3m12s");
        assert_eq!(human_age(Duration::from_secs(3600)), "60m");
        assert_eq!(human_age(Duration::from_secs(4 * 3600 + 120)), "4h2m");
        assert_eq!(human_age(Duration::from_secs(3 * 86400 + 3600)), "3d1h");
    }

    #[test]
    fn targets_split_kind_and_name() {
        assert_eq!(
            target("deploy/web", None).unwrap(),
            ("deploy".into(), "web".into())
        );
        assert_eq!(
            target("web", Some("pod")).unwrap(),
            ("pod".into(), "web".into())
        );
        assert!(target("web", None).is_err());
        assert!(target("deploy/", None).is_err());
    }

    #[test]
    fn a_home_without_a_running_daemon_is_named_and_never_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().display().to_string();
        let err = running_daemon(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(&format!("no daemon is running for FERRY_HOME {home};"))
                && err.contains("'ferry serve'"),
            "{err}"
        );
        // A daemon.json left by a daemon killed with SIGKILL: its pid is gone.
        std::fs::write(
            dir.path().join("daemon.json"),
            r#"{"addr": "127.0.0.1:7171", "pid": 2147483647}"#,
        )
        .unwrap();
        let err = running_daemon(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(&format!("no daemon is running for FERRY_HOME {home}"))
                && err.contains("pid 2147483647"),
            "{err}"
        );
        assert!(process_exists(std::process::id()));
        assert!(!process_exists(0), "0 names a process group, not a daemon");
    }

    #[test]
    fn schemes_are_added_and_unspecified_addresses_reached_on_loopback() {
        assert_eq!(normalise("127.0.0.1:9"), "http://127.0.0.1:9");
        assert_eq!(normalise("http://h:1/"), "http://h:1");
        assert_eq!(connectable("0.0.0.0:7171"), "127.0.0.1:7171");
        assert_eq!(connectable("[::]:7171"), "[::1]:7171");
        assert_eq!(connectable("10.1.2.3:7171"), "10.1.2.3:7171");
    }
}
