//! A small smart-HTTP Git server for tests: each request runs `git http-backend` as a
//! CGI program; optional HTTP basic auth.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;

/// A running server; stops accepting when dropped.
pub struct GitHttpServer {
    port: u16,
    stop: Arc<AtomicBool>,
    /// Requests refused with 401.
    pub unauthorized: Arc<AtomicUsize>,
    /// Every `Authorization` header received, in order.
    pub authorizations: Arc<Mutex<Vec<String>>>,
}

impl GitHttpServer {
    /// Serve the repositories under `root`; with `auth`, every request needs that user
    /// and password.
    pub fn start(root: &Path, auth: Option<(&str, &str)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let unauthorized = Arc::new(AtomicUsize::new(0));
        let authorizations = Arc::new(Mutex::new(Vec::new()));
        let expected = auth.map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        let root = root.to_path_buf();
        let (stop2, unauth2, auths2) = (stop.clone(), unauthorized.clone(), authorizations.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (root, expected, unauth, auths) = (
                    root.clone(),
                    expected.clone(),
                    unauth2.clone(),
                    auths2.clone(),
                );
                std::thread::spawn(move || {
                    let _ = serve(conn, &root, expected.as_deref(), &unauth, &auths);
                });
            }
        });
        GitHttpServer {
            port,
            stop,
            unauthorized,
            authorizations,
        }
    }

    /// `http://127.0.0.1:PORT/<repo>`
    pub fn url(&self, repo: &str) -> String {
        format!("http://127.0.0.1:{}/{repo}", self.port)
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(
    conn: TcpStream,
    root: &PathBuf,
    expected_auth: Option<&str>,
    unauthorized: &AtomicUsize,
    authorizations: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    let (method, target, headers) = read_head(&mut reader)?;
    if let Some((_, v)) = headers.iter().find(|(k, _)| k == "authorization") {
        authorizations.lock().unwrap().push(v.clone());
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if let Some(exp) = expected_auth
        && header("authorization").as_deref() != Some(exp)
    {
        unauthorized.fetch_add(1, Ordering::SeqCst);
        out.write_all(
            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return Ok(());
    }
    if header("expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue")) {
        out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            if n == 0 {
                let mut trailer = String::new();
                reader.read_line(&mut trailer)?;
                break;
            }
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(len) = header("content-length").and_then(|l| l.parse::<usize>().ok()) {
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut cmd = Command::new("git");
    cmd.arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(ct) = header("content-type") {
        cmd.env("CONTENT_TYPE", ct);
    }
    if let Some(enc) = header("content-encoding") {
        cmd.env("HTTP_CONTENT_ENCODING", enc);
    }
    if let Some(p) = header("git-protocol") {
        cmd.env("GIT_PROTOCOL", p);
    }
    if expected_auth.is_some() {
        // An authenticated user may push (http-backend enables receive-pack then).
        cmd.env("REMOTE_USER", "tester");
    }
    let mut child = cmd.spawn()?;
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let mut cgi = Vec::new();
    child.stdout.take().expect("stdout").read_to_end(&mut cgi)?;
    let _ = writer.join();
    child.wait()?;
    let split = cgi
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| cgi.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let (head, payload) = match split {
        Some((i, n)) => (
            String::from_utf8_lossy(&cgi[..i]).into_owned(),
            &cgi[i + n..],
        ),
        None => (String::new(), &cgi[..]),
    };
    let mut status = "200 OK".to_string();
    let mut resp_headers = String::new();
    for h in head.lines() {
        if let Some(s) = h.strip_prefix("Status:") {
            status = s.trim().to_string();
        } else if !h.trim().is_empty() {
            resp_headers.push_str(h.trim_end());
            resp_headers.push_str("\r\n");
        }
    }
    write!(
        out,
        "HTTP/1.1 {status}\r\n{resp_headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        payload.len()
    )?;
    out.write_all(payload)?;
    out.flush()
}

/// Method, target and headers (names lowercased) of one request.
type Head = (String, String, Vec<(String, String)>);

/// Request line and headers (names lowercased).
fn read_head(reader: &mut BufReader<TcpStream>) -> std::io::Result<Head> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("GET").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    Ok((method, target, headers))
}

/// A server that answers every request with `302 Found` to the same path and query
/// on `to` (`http://127.0.0.1:PORT`), as a moved or hostile repository host does;
/// with `auth`, it first asks for credentials (401) until it gets them, so that the
/// client holds them when it is redirected. Records the `Authorization` headers it
/// receives.
pub struct Redirector {
    port: u16,
    stop: Arc<AtomicBool>,
    /// Every `Authorization` header received, in order.
    pub authorizations: Arc<Mutex<Vec<String>>>,
}

impl Redirector {
    pub fn start(to: &str, auth: Option<(&str, &str)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let authorizations = Arc::new(Mutex::new(Vec::new()));
        let expected = auth.map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        let to = to.trim_end_matches('/').to_string();
        let (stop2, auths2) = (stop.clone(), authorizations.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (to, auths, expected) = (to.clone(), auths2.clone(), expected.clone());
                std::thread::spawn(move || -> std::io::Result<()> {
                    let mut reader = BufReader::new(conn.try_clone()?);
                    let mut out = conn;
                    let (_, target, headers) = read_head(&mut reader)?;
                    let auth = headers
                        .iter()
                        .find(|(k, _)| k == "authorization")
                        .map(|(_, v)| v.clone());
                    if let Some(a) = &auth {
                        auths.lock().unwrap().push(a.clone());
                    }
                    if expected.is_some() && auth != expected {
                        out.write_all(
                            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        )?;
                        return Ok(());
                    }
                    write!(
                        out,
                        "HTTP/1.1 302 Found\r\nLocation: {to}{target}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )?;
                    out.flush()
                });
            }
        });
        Redirector {
            port,
            stop,
            authorizations,
        }
    }

    /// `http://127.0.0.1:PORT/<repo>`
    pub fn url(&self, repo: &str) -> String {
        format!("http://127.0.0.1:{}/{repo}", self.port)
    }
}

impl Drop for Redirector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}
