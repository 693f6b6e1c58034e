//! A tiny scripted HTTP server for tests that need a registry to misbehave (redirect,
//! point uploads elsewhere): every request is answered by a closure, and every
//! request's method, path and `Authorization` header are recorded. Standard library
//! only.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// One request as the server saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// `GET`, `HEAD`, `PUT`, …
    pub method: String,
    /// Path and query.
    pub target: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
}

/// The closure answering requests: given the server's own port and the request,
/// the full response head (status line and headers, no blank line) and a body.
pub type Script = dyn Fn(u16, &Seen) -> (String, String) + Send + Sync;

/// A running scripted server; stops accepting when dropped.
pub struct Scripted {
    port: u16,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Scripted {
    pub fn start(script: impl Fn(u16, &Seen) -> (String, String) + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("local addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let (stop2, seen2) = (stop.clone(), seen.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (script, seen) = (script.clone(), seen2.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, port, &*script, &seen);
                });
            }
        });
        Scripted { port, stop, seen }
    }

    /// `127.0.0.1:PORT`, as written in image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    /// The `Authorization` headers seen so far.
    pub fn authorizations(&self) -> Vec<String> {
        self.seen()
            .into_iter()
            .filter_map(|s| s.authorization)
            .collect()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(
    conn: TcpStream,
    port: u16,
    script: &Script,
    seen: &Mutex<Vec<Seen>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    // Keep-alive: answer requests on this connection until the client closes it.
    for _ in 0..1000 {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("GET").to_string();
        let target = parts.next().unwrap_or("/").to_string();
        let mut authorization = None;
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let k = k.trim().to_ascii_lowercase();
                if k == "authorization" {
                    authorization = Some(v.trim().to_string());
                } else if k == "content-length" {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        // Drain the body so that the client is not cut off mid-upload.
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let req = Seen {
            method,
            target,
            authorization,
        };
        seen.lock().expect("lock").push(req.clone());
        let (head, body) = script(port, &req);
        let body = if req.method == "HEAD" {
            String::new()
        } else {
            body
        };
        write!(
            out,
            "{head}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        out.flush()?;
    }
    Ok(())
}
