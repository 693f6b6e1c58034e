//! Test harness: a real OCI registry (Debian's `docker-registry`, the CNCF
//! distribution registry) on a free 127.0.0.1 port, killed on drop; and a small
//! bearer-token front for it. Standard library only, so that both the ferry-oci and
//! the ferry test binaries can include it with `#[path]`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Where the registry binary is (`FERRY_TEST_REGISTRY_BIN` overrides).
fn registry_bin() -> PathBuf {
    let bin = std::env::var_os("FERRY_TEST_REGISTRY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/docker-registry"));
    assert!(
        bin.is_file(),
        "{} not found: these tests need a real OCI registry; install it with `apt-get install docker-registry` \
         (or set FERRY_TEST_REGISTRY_BIN)",
        bin.display()
    );
    bin
}

/// Fails the test with an install hint if a tool the test needs is missing.
pub fn require_tool(name: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{name}` not found on PATH: install it with `apt-get install {package}`"
    );
}

/// One request the registry logged: method, path, status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    /// HTTP method.
    pub method: String,
    /// Request URI.
    pub uri: String,
    /// Response status.
    pub status: u16,
}

/// A running `docker-registry serve`.
pub struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    access_log: PathBuf,
    sentinel: AtomicUsize,
}

impl Registry {
    /// Starts a registry without auth.
    pub fn start() -> Registry {
        Self::start_with(None)
    }

    /// Starts a registry with basic auth from an htpasswd line (`user:$2y$…`).
    pub fn start_with_htpasswd(line: &str) -> Registry {
        Self::start_with(Some(line))
    }

    fn start_with(htpasswd: Option<&str>) -> Registry {
        let bin = registry_bin();
        let mut last_err = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("temp dir");
            let port = free_port();
            let mut config = format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            );
            if let Some(line) = htpasswd {
                let p = dir.path().join("htpasswd");
                std::fs::write(&p, format!("{line}\n")).expect("write htpasswd");
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: ferry-test\n    path: {}\n",
                    p.display()
                ));
            }
            let cfg = dir.path().join("config.yml");
            std::fs::write(&cfg, config).expect("write config");
            let access_log = dir.path().join("access.log");
            let stderr_log = dir.path().join("registry.log");
            let child = Command::new(&bin)
                .arg("serve")
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&access_log).expect("log file"))
                .stderr(std::fs::File::create(&stderr_log).expect("log file"))
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let mut reg = Registry {
                child,
                port,
                dir,
                access_log,
                sentinel: AtomicUsize::new(0),
            };
            match reg.wait_ready() {
                Ok(()) => return reg,
                Err(e) => {
                    last_err = format!(
                        "{e}\n{}",
                        std::fs::read_to_string(&stderr_log).unwrap_or_default()
                    )
                }
            }
        }
        panic!("docker-registry did not start: {last_err}");
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("docker-registry exited with {status}"));
            }
            if let Ok((200 | 401, _, _)) = http(&self.host(), "GET", "/v2/", &[]) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("docker-registry not ready within 20 s".to_string())
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The registry's data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Every request logged so far, in order. A sentinel request is made and waited
    /// for first, so that everything the caller did before is in the log.
    pub fn requests(&self) -> Vec<Logged> {
        let n = self.sentinel.fetch_add(1, Ordering::SeqCst);
        let marker = format!("/v2/?ferry-sentinel={n}");
        let _ = http(&self.host(), "GET", &marker, &[]);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&self.access_log).unwrap_or_default();
            if text.contains(&marker) || Instant::now() > deadline {
                return text
                    .lines()
                    .filter_map(parse_access_line)
                    .filter(|l| !l.uri.contains("ferry-sentinel"))
                    .collect();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `127.0.0.1 - - [date] "PATCH /v2/x/blobs/uploads/… HTTP/1.1" 202 0 "" "ua"`
fn parse_access_line(line: &str) -> Option<Logged> {
    let start = line.find('"')?;
    let rest = &line[start + 1..];
    let end = rest.find('"')?;
    let mut req = rest[..end].split(' ');
    let method = req.next()?.to_string();
    let uri = req.next()?.to_string();
    let status = rest[end + 1..].split_whitespace().next()?.parse().ok()?;
    Some(Logged {
        method,
        uri,
        status,
    })
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Status, headers (lowercased names) and body of a response.
pub type HttpReply = (u16, Vec<(String, String)>, Vec<u8>);

/// A minimal HTTP/1.1 request: returns status, headers (lowercased names) and body.
pub fn http(
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<HttpReply> {
    http_with_body(host, method, path, headers, &[])
}

/// Like [`http`], with a request body.
pub fn http_with_body(
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpReply> {
    let mut s = TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let hdrs = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, hdrs, raw[split + 4..].to_vec()))
}

/// A bearer-token front for a registry: `/token` issues a token for the right basic
/// credentials; every other request needs `Authorization: Bearer <token>` (else 401
/// with a `Bearer realm=…` challenge) and is forwarded to the registry.
pub struct TokenProxy {
    port: u16,
    /// Token requests served (successful or not).
    pub token_requests: Arc<AtomicUsize>,
    /// Requests refused with 401.
    pub challenges: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

const TOKEN: &str = "ferry-test-token-7c1f";

impl TokenProxy {
    /// Starts the front for `upstream` (`host:port`), accepting `user`/`password`.
    pub fn start(upstream: &str, user: &str, password: &str) -> TokenProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let token_requests = Arc::new(AtomicUsize::new(0));
        let challenges = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let basic = format!(
            "Basic {}",
            base64_encode(format!("{user}:{password}").as_bytes())
        );
        let (upstream, tr, ch, st) = (
            upstream.to_string(),
            token_requests.clone(),
            challenges.clone(),
            stop.clone(),
        );
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (upstream, basic, tr, ch) =
                    (upstream.clone(), basic.clone(), tr.clone(), ch.clone());
                std::thread::spawn(move || {
                    let _ = serve_proxy(conn, port, &upstream, &basic, &tr, &ch);
                });
            }
        });
        TokenProxy {
            port,
            token_requests,
            challenges,
            stop,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for TokenProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.host());
    }
}

fn serve_proxy(
    client: TcpStream,
    port: u16,
    upstream: &str,
    basic: &str,
    token_requests: &AtomicUsize,
    challenges: &AtomicUsize,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let end = line == "\r\n";
        head.push(line);
        if end {
            break;
        }
    }
    let request_line = head.first().cloned().unwrap_or_default();
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    let header = |name: &str| {
        head.iter().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let auth = header("authorization").unwrap_or_default();
    let mut client = client;
    if path.starts_with("/token") {
        token_requests.fetch_add(1, Ordering::SeqCst);
        let resp = if auth == basic {
            let body = format!(r#"{{"token":"{TOKEN}","expires_in":300}}"#);
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        } else {
            "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_string()
        };
        client.write_all(resp.as_bytes())?;
        return client.shutdown(Shutdown::Both);
    }
    if auth != format!("Bearer {TOKEN}") {
        challenges.fetch_add(1, Ordering::SeqCst);
        let repo = path
            .strip_prefix("/v2/")
            .and_then(|p| p.split("/manifests/").next())
            .and_then(|p| p.split("/blobs/").next())
            .unwrap_or("");
        let resp = format!(
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"ferry-test\",scope=\"repository:{repo}:pull\"\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        );
        // Drain a request body so the client sees the answer, not a reset.
        if let Some(n) = header("content-length").and_then(|n| n.parse::<u64>().ok()) {
            let _ = std::io::copy(&mut (&mut reader).take(n), &mut std::io::sink());
        }
        client.write_all(resp.as_bytes())?;
        return client.shutdown(Shutdown::Both);
    }
    let mut up = TcpStream::connect(upstream)?;
    let mut out = String::new();
    for l in &head {
        let lower = l.to_ascii_lowercase();
        if lower.starts_with("connection:") || lower.starts_with("authorization:") || l == "\r\n" {
            continue;
        }
        out.push_str(l);
    }
    out.push_str("Connection: close\r\n\r\n");
    up.write_all(out.as_bytes())?;
    // Whatever the reader buffered past the head is body; then the rest of the body.
    let buffered = reader.buffer().to_vec();
    up.write_all(&buffered)?;
    let mut up_w = up.try_clone()?;
    let mut client_r = reader.into_inner();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_r, &mut up_w);
    });
    std::io::copy(&mut up, &mut client)?;
    let _ = client.shutdown(Shutdown::Both);
    let _ = up.shutdown(Shutdown::Both);
    Ok(())
}

fn base64_encode(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}
