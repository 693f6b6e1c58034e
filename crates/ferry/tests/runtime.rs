//! `ferry serve` and the kubectl-like commands end to end: a real daemon process per
//! test, real workload processes built with `ferry image build`, real HTTP through
//! Service and pod host ports.
//!
//! Tests that start daemons run one at a time (they hand out host ports from the same
//! range), and every daemon is brought `down` when its test ends so no process leaks.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod util;

use util::{ferry_bin, serial};

/// A tiny HTTP server: `/` answers JSON with its VERSION and pid, `/health` "ok".
const SERVER_PY: &str = r#"
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            body = b"ok"
        else:
            body = json.dumps({"version": os.environ.get("VERSION", ""), "pid": os.getpid()}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass

port = int(os.environ["PORT"])
print("serving version %s on port %d" % (os.environ.get("VERSION", ""), port), flush=True)
HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"#;

/// A daemon on a FERRY_HOME of its own.
struct Daemon {
    home: tempfile::TempDir,
    child: Option<Child>,
    log: PathBuf,
    url: String,
}

impl Daemon {
    fn start() -> Daemon {
        let home = tempfile::tempdir().unwrap();
        let log = home.path().join("serve.log");
        let mut d = Daemon {
            home,
            child: None,
            log,
            url: String::new(),
        };
        d.spawn();
        d
    }

    fn home(&self) -> &Path {
        self.home.path()
    }

    /// Starts `ferry serve --addr 127.0.0.1:0` on this home and waits until it answers.
    fn spawn(&mut self) {
        let child = util::spawn_serve(self.home(), &["--addr", "127.0.0.1:0"], &self.log);
        let pid = child.id();
        self.child = Some(child);
        let info = self.eventually("daemon.json of the new daemon", 20, || {
            let text = std::fs::read_to_string(self.home().join("daemon.json")).ok()?;
            let v: Value = serde_json::from_str(&text).ok()?;
            (v["pid"].as_u64() == Some(u64::from(pid))).then_some(v)
        });
        self.url = format!("http://{}", info["addr"].as_str().unwrap());
        let addr = info["addr"].as_str().unwrap().to_string();
        self.eventually("/healthz", 20, || {
            http_get(&addr, "/healthz").filter(|(s, _)| *s == 200)
        });
    }

    fn addr(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// A call to the daemon's API with its token (a YAML body, which JSON is too).
    fn api(&self, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
        let token = std::fs::read_to_string(self.home().join("token")).unwrap();
        let headers = format!(
            "Authorization: Bearer {}\r\nContent-Type: application/yaml\r\n",
            token.trim()
        );
        request(self.addr(), method, path, body, &headers)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(ferry_bin());
        cmd.args(args)
            .env("FERRY_HOME", self.home())
            .env_remove("FERRY_SERVER")
            .stdin(Stdio::null());
        cmd
    }

    fn ferry(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.ferry(args);
        assert!(
            out.status.success(),
            "ferry {args:?} failed ({:?}):\n{}{}\n--- daemon log ---\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_tail()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Polls `f` until it gives a value, for at most `secs` seconds.
    fn eventually<T>(&self, what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {secs}s waiting for {what}\n--- daemon log ---\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Rows of `ferry get pods [-l SEL]`: name, ready, status, restarts.
    fn pods(&self, selector: &str) -> Vec<[String; 4]> {
        let mut args = vec!["get", "pods"];
        if !selector.is_empty() {
            args.extend(["-l", selector]);
        }
        let out = self.ok(&args);
        out.lines()
            .skip(1)
            .map(|l| {
                let c: Vec<&str> = l.split_whitespace().collect();
                [
                    c[0].to_string(),
                    c[1].to_string(),
                    c[2].to_string(),
                    c[3].to_string(),
                ]
            })
            .collect()
    }

    /// Waits until exactly `n` pods match and all are `1/1 Running`; returns their names.
    fn running(&self, selector: &str, n: usize) -> Vec<String> {
        self.eventually(&format!("{n} pods {selector} 1/1 Running"), 30, || {
            let pods = self.pods(selector);
            (pods.len() == n && pods.iter().all(|p| p[1] == "1/1" && p[2] == "Running"))
                .then(|| pods.into_iter().map(|p| p[0].clone()).collect())
        })
    }

    fn apply(&self, yaml: &str) -> String {
        let file = self.home().join(format!("manifest-{}.yaml", unique()));
        std::fs::write(&file, yaml).unwrap();
        self.ok(&["apply", "-f", file.to_str().unwrap()])
    }

    fn build_image(&self, tag: &str) {
        let ctx = tempfile::tempdir().unwrap();
        std::fs::write(ctx.path().join("server.py"), SERVER_PY).unwrap();
        self.ok(&[
            "image",
            "build",
            ctx.path().to_str().unwrap(),
            "--tag",
            tag,
            "--cmd",
            "python3",
            "--cmd",
            "server.py",
        ]);
    }

    /// The host port of a Service's port.
    fn service_port(&self, name: &str, port: u16) -> String {
        self.eventually("the service's host port", 20, || {
            let svc = self.json(&["get", "svc", name]);
            let ann = svc
                .pointer("/metadata/annotations/ferry.dev~1host-ports")?
                .as_str()?
                .to_string();
            let m: Value = serde_json::from_str(&ann).ok()?;
            m.get(port.to_string())
                .and_then(Value::as_u64)
                .map(|p| format!("127.0.0.1:{p}"))
        })
    }

    /// `127.0.0.1:PORT` of each pod's 8080, by pod name.
    fn pod_addrs(&self, selector: &str) -> Vec<(String, String)> {
        let list = self.json(&["get", "pods", "-l", selector]);
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let ann = p
                    .pointer("/metadata/annotations/ferry.dev~1host-ports")
                    .and_then(Value::as_str)
                    .unwrap();
                let m: Value = serde_json::from_str(ann).unwrap();
                let port = m["8080"].as_u64().unwrap();
                (
                    p["metadata"]["name"].as_str().unwrap().to_string(),
                    format!("127.0.0.1:{port}"),
                )
            })
            .collect()
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            )
            .unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM, expecting a clean exit.
    fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            )
            .unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            while c.try_wait().unwrap().is_none() {
                assert!(
                    Instant::now() < deadline,
                    "the daemon did not exit on SIGTERM\n{}",
                    self.log_tail()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            assert!(
                c.wait().unwrap().success(),
                "SIGTERM should exit 0\n{}",
                self.log_tail()
            );
        }
    }

    /// `ferry down`, waiting for the daemon process to exit.
    fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let out = self.ferry(&["down"]);
            assert!(
                out.status.success(),
                "ferry down: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let deadline = Instant::now() + Duration::from_secs(20);
            while c.try_wait().unwrap().is_none() {
                assert!(
                    Instant::now() < deadline,
                    "the daemon did not exit after ferry down\n{}",
                    self.log_tail()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            assert!(
                c.wait().unwrap().success(),
                "the daemon exited with failure\n{}",
                self.log_tail()
            );
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // Stop the workloads so no test process outlives the test.
            let _ = self.command(&["down"]).output();
            let deadline = Instant::now() + Duration::from_secs(20);
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A plain HTTP/1.1 GET; `None` when the connection fails.
fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    http(addr, "GET", path, "")
}

/// A plain HTTP/1.1 request; `None` when the connection fails.
fn http(addr: &str, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    request(addr, method, path, body, "")
}

/// An HTTP/1.1 request with `headers` (each line ending in CRLF).
fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: &str,
    headers: &str,
) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

fn get_json(addr: &str) -> Option<Value> {
    let (status, body) = http_get(addr, "/")?;
    if status != 200 {
        return None;
    }
    serde_json::from_str(&body).ok()
}

fn web(name: &str, replicas: u32, image: &str, version: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: web
        image: {image}
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
  name: {name}
spec:
  selector: {{app: {name}}}
  ports:
  - port: 80
    targetPort: 8080
"#
    )
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Pids of Python processes running `server.py` from this FERRY_HOME's unpacked images.
fn server_pids(home: &Path) -> Vec<u32> {
    util::workload_pids(home, "server.py", true)
}

#[test]
fn every_client_command_says_when_the_daemon_is_not_running() {
    let home = tempfile::tempdir().unwrap();
    for args in [
        &["get", "pods"][..],
        &["apply", "-f", "-"],
        &["down"],
        &["logs", "web"],
    ] {
        let out = Command::new(ferry_bin())
            .args(args)
            .env("FERRY_HOME", home.path())
            .env("FERRY_SERVER", "http://127.0.0.1:9")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = stderr(&out);
        if args[0] == "apply" {
            // Nothing to apply is caught before the daemon is asked.
            assert_eq!(out.status.code(), Some(2), "{err}");
            continue;
        }
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("cannot reach the ferry daemon at http://127.0.0.1:9")
                && err.contains("start it with 'ferry serve'"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn deploy_serve_scale_restart_conflict_and_delete() {
    let _serial = serial();
    let d = Daemon::start();

    // One daemon per home.
    let second = d.ferry(&["serve", "--addr", "127.0.0.1:0"]);
    assert_eq!(second.status.code(), Some(2));
    assert!(
        stderr(&second).contains("already running"),
        "{}",
        stderr(&second)
    );

    d.build_image("web:v1");
    let applied = d.apply(&web("web", 2, "web:v1", "v1"));
    assert_eq!(
        applied,
        "deployment.apps/web created\nservice/web created\n"
    );
    assert_eq!(
        d.apply(&web("web", 2, "web:v1", "v1")),
        "deployment.apps/web unchanged\nservice/web unchanged\n"
    );

    let pods = d.running("app=web", 2);
    let table = d.ok(&["get", "pods"]);
    assert!(table.starts_with("NAME"), "{table}");
    for h in ["READY", "STATUS", "RESTARTS", "AGE"] {
        assert!(table.lines().next().unwrap().contains(h), "{table}");
    }
    let deploy = d.ok(&["get", "deploy"]);
    assert!(
        deploy
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()[..4]
            == ["web", "2/2", "2", "2"],
        "{deploy}"
    );

    // `-o json` of a list is a Kubernetes List.
    let list = d.json(&["get", "pods"]);
    assert_eq!(list["kind"], "List");
    assert_eq!(list["apiVersion"], "v1");
    assert_eq!(list["items"].as_array().unwrap().len(), 2);

    // Through the Service's host port, as PORT(S) shows it.
    let svc = d.service_port("web", 80);
    let port = svc.rsplit(':').next().unwrap();
    assert!(d.ok(&["get", "svc"]).contains(&format!("80:{port}/TCP")));
    let answer = d.eventually("an answer through the service", 20, || get_json(&svc));
    assert_eq!(answer["version"], "v1");

    // Logs: by pod and by deployment.
    let logs = d.ok(&["logs", &pods[0]]);
    assert!(logs.contains("serving version v1 on port"), "{logs}");
    assert!(
        d.ok(&["logs", "deploy/web", "--tail", "1"])
            .contains("serving version v1")
    );

    // `get -w` streams changes.
    let mut watch = d
        .command(&["get", "deploy", "web", "-w", "-o", "json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = BufReader::new(watch.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    assert_eq!(
        d.ok(&["scale", "deploy/web", "--replicas", "3"]),
        "deployment.apps/web scaled\n"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("a watch line with 3 replicas");
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["spec"]["replicas"] == 3 {
            break;
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    d.running("app=web", 3);

    // The scale owns .spec.replicas now: another count in the manifest is a conflict.
    let file = d.home().join("web4.yaml");
    std::fs::write(&file, web("web", 4, "web:v1", "v1")).unwrap();
    let conflict = d.ferry(&["apply", "-f", file.to_str().unwrap()]);
    assert_eq!(conflict.status.code(), Some(1), "{}", stderr(&conflict));
    assert!(
        stderr(&conflict).contains(".spec.replicas") && stderr(&conflict).contains("ferry-scale"),
        "{}",
        stderr(&conflict)
    );
    assert_eq!(
        d.json(&["get", "deploy", "web"])["spec"]["replicas"],
        3,
        "a conflict changes nothing"
    );
    let forced = d.ok(&["apply", "-f", file.to_str().unwrap(), "--force-conflicts"]);
    assert!(
        forced.contains("deployment.apps/web configured"),
        "{forced}"
    );
    let before = d.running("app=web", 4);

    // A followed log streams until its pod goes away (the restart below replaces it).
    let mut follow = d
        .command(&["logs", "-f", &before[0]])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(follow.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("serving version v1"), "{first}");

    // Restart replaces every pod.
    assert_eq!(
        d.ok(&["rollout", "restart", "deploy/web"]),
        "deployment.apps/web restarted\n"
    );
    let status = d.ok(&["rollout", "status", "deploy/web", "--timeout", "60s"]);
    assert!(
        status.contains("deployment \"web\" successfully rolled out"),
        "{status}"
    );
    let after = d.running("app=web", 4);
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "{before:?} → {after:?}"
    );
    let history = d.ok(&["rollout", "history", "deploy/web"]);
    assert!(
        history.contains("REVISION") && history.lines().count() >= 4,
        "{history}"
    );
    assert!(
        d.ok(&["describe", "deploy", "web"])
            .contains("kubectl.kubernetes.io/restartedAt")
    );
    let ended = d.eventually("logs -f to end with its pod", 30, || {
        follow.try_wait().unwrap()
    });
    assert!(ended.success());

    // Traffic weights by version (pod-template hash).
    let hash = d.json(&["get", "pods"])["items"][0]["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap()
        .to_string();
    let traffic = d.ok(&["traffic", "get", "svc/web"]);
    assert!(
        traffic.contains("none (every ready endpoint)") && traffic.contains(&hash),
        "{traffic}"
    );
    let set = d.ok(&["traffic", "set", "svc/web", &format!("{hash}=100")]);
    assert!(
        set.lines()
            .any(|l| l.starts_with(&hash) && l.contains("100")),
        "{set}"
    );
    assert_eq!(
        d.json(&["traffic", "get", "svc/web"])["weights"][&hash],
        100
    );
    d.eventually("the service answers with weights set", 20, || {
        get_json(&svc)
    });
    assert!(d.ok(&["traffic", "clear", "svc/web"]).contains("none"));
    // Undo goes back to the template before the restart.
    assert_eq!(
        d.ok(&["rollout", "undo", "deploy/web"]),
        "deployment.apps/web rolled back\n"
    );
    d.ok(&["rollout", "status", "deploy/web", "--timeout", "60s"]);
    let undone = d.json(&["get", "deploy", "web"]);
    assert!(
        undone
            .pointer("/spec/template/metadata/annotations/kubectl.kubernetes.io~1restartedAt")
            .is_none(),
        "{undone}"
    );
    let nowhere = d.ferry(&["rollout", "undo", "deploy/web", "--to-revision", "99"]);
    assert_eq!(nowhere.status.code(), Some(1));
    assert!(
        stderr(&nowhere).contains("unable to find specified revision 99"),
        "{}",
        stderr(&nowhere)
    );
    let described = d.ok(&["describe", "svc", "web"]);
    assert!(
        described.contains(&format!("127.0.0.1:{port}")) && described.contains("Endpoints:"),
        "{described}"
    );

    // Delete cascades to ReplicaSets, pods and their processes.
    let deleted = d.ok(&["delete", "-f", file.to_str().unwrap()]);
    assert_eq!(
        deleted,
        "deployments.apps \"web\" deleted\nservices \"web\" deleted\n"
    );
    d.eventually("pods and processes gone", 30, || {
        (d.json(&["get", "pods"])["items"]
            .as_array()
            .unwrap()
            .is_empty()
            && server_pids(d.home()).is_empty())
        .then_some(())
    });
    assert!(
        d.json(&["get", "rs"])["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let missing = d.ferry(&["get", "deploy", "web"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("deployments.apps \"web\" not found"),
        "{}",
        stderr(&missing)
    );
    let mut d = d;
    d.down();
}

#[test]
fn a_bad_image_rollout_keeps_old_pods_serving_and_fixing_the_tag_recovers() {
    let _serial = serial();
    let mut d = Daemon::start();
    d.build_image("web:v1");
    d.build_image("web:v2");
    d.apply(&web("web", 2, "web:v1", "v1"));
    let old = d.running("app=web", 2);
    let svc = d.service_port("web", 80);
    d.eventually("the service answers", 20, || get_json(&svc));

    d.apply(&web("web", 2, "web:nope", "v1"));
    let bad = d.eventually("a new pod in ImagePullBackOff", 30, || {
        d.pods("app=web")
            .into_iter()
            .find(|p| p[2] == "ImagePullBackOff")
            .map(|p| p[0].clone())
    });
    assert!(!old.contains(&bad));

    // The old pods keep serving through the Service while the rollout is stuck.
    let mut failures = Vec::new();
    for n in 0..60 {
        match get_json(&svc) {
            Some(v) if v["version"] == "v1" => {}
            other => failures.push((n, other)),
        }
    }
    assert!(
        failures.is_empty(),
        "requests failed during the bad rollout: {failures:?}"
    );
    let running: Vec<String> = d
        .pods("app=web")
        .into_iter()
        .filter(|p| p[2] == "Running")
        .map(|p| p[0].clone())
        .collect();
    assert_eq!(running.len(), 2, "both old pods still run");

    // The pod flips between ErrImagePull and ImagePullBackOff as the kubelet retries.
    let describe = d.eventually("describe deploy showing ImagePullBackOff", 15, || {
        let text = d.ok(&["describe", "deploy", "web"]);
        text.contains("Back-off pulling image \"web:nope\"")
            .then_some(text)
    });
    let health = describe
        .lines()
        .find(|l| l.starts_with("Health:"))
        .unwrap_or_default();
    assert!(
        health.contains("Degraded — ImagePullBackOff: Back-off pulling image \"web:nope\""),
        "{describe}"
    );
    let pod = d.ok(&["describe", "pod", &bad]);
    assert!(
        pod.contains("ImagePullBackOff") || pod.contains("ErrImagePull"),
        "{pod}"
    );
    let stuck = d.ferry(&["rollout", "status", "deploy/web", "--timeout", "1s"]);
    assert_eq!(stuck.status.code(), Some(1), "{}", stdout(&stuck));
    assert!(
        stdout(&stuck).contains("Waiting for deployment \"web\" rollout to finish"),
        "{}",
        stdout(&stuck)
    );

    // Fixing the tag recovers.
    d.apply(&web("web", 2, "web:v2", "v2"));
    let status = d.ok(&["rollout", "status", "deploy/web", "--timeout", "60s"]);
    assert!(
        status.ends_with("deployment \"web\" successfully rolled out\n"),
        "{status}"
    );
    let now = d.running("app=web", 2);
    assert!(now.iter().all(|p| !old.contains(p) && *p != bad), "{now:?}");
    d.eventually("v2 answers through the service", 20, || {
        get_json(&svc).filter(|v| v["version"] == "v2")
    });
    d.down();
    assert!(server_pids(d.home()).is_empty());
}

#[test]
fn a_missing_secret_key_is_a_config_error_until_the_secret_has_it() {
    let _serial = serial();
    let mut d = Daemon::start();
    d.build_image("web:v1");
    let manifest = |data: &str| {
        format!(
            r#"apiVersion: v1
kind: Secret
metadata: {{name: db}}
stringData: {data}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: api}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: api}}}}
  template:
    metadata: {{labels: {{app: api}}}}
    spec:
      containers:
      - name: api
        image: web:v1
        ports: [{{containerPort: 8080}}]
        env:
        - name: DB_PASSWORD
          valueFrom: {{secretKeyRef: {{name: db, key: password}}}}
"#
        )
    };
    d.apply(&manifest("{user: app}"));
    let pod = d.eventually("CreateContainerConfigError", 30, || {
        d.pods("app=api")
            .into_iter()
            .find(|p| p[2] == "CreateContainerConfigError")
            .map(|p| p[0].clone())
    });
    let describe = d.ok(&["describe", "pod", &pod]);
    assert!(
        describe.contains("couldn't find key password in Secret default/db"),
        "{describe}"
    );
    assert!(
        describe.contains("<set to the key 'password' in secret 'db'>"),
        "{describe}"
    );

    d.apply(&manifest("{user: app, password: s3cret}"));
    let running = d.running("app=api", 1);
    assert_eq!(running, vec![pod.clone()], "the same pod recovers");
    let rows = d.pods("app=api");
    assert_eq!(rows[0][3], "0", "no restart: {rows:?}");

    // SIGTERM stops the daemon, not the workloads.
    let pids = d.eventually("one server process", 10, || {
        Some(server_pids(d.home())).filter(|p| p.len() == 1)
    });
    d.terminate();
    assert!(
        std::fs::read_to_string(&d.log)
            .unwrap()
            .contains("workloads keep running"),
        "{}",
        d.log_tail()
    );
    assert_eq!(server_pids(d.home()), pids);
    d.spawn();
    d.running("app=api", 1);
    assert_eq!(server_pids(d.home()), pids);
    d.down();
}

#[test]
fn a_crash_on_start_loops_with_its_exit_code_and_previous_logs() {
    let _serial = serial();
    let mut d = Daemon::start();
    d.build_image("web:v1");
    d.apply(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: crash}
spec:
  replicas: 1
  selector: {matchLabels: {app: crash}}
  template:
    metadata: {labels: {app: crash}}
    spec:
      containers:
      - name: app
        image: web:v1
        command: ["sh", "-c", "echo crashing on purpose; exit 3"]
"#,
    );
    let pod = d.eventually("CrashLoopBackOff", 30, || {
        d.pods("app=crash")
            .into_iter()
            .find(|p| p[2] == "CrashLoopBackOff")
            .map(|p| p[0].clone())
    });
    let describe = d.eventually("describe with the last state", 10, || {
        let text = d.ok(&["describe", "pod", &pod]);
        text.contains("Last State:").then_some(text)
    });
    let last = describe.split("Last State:").nth(1).unwrap();
    assert!(last.trim_start().starts_with("Terminated"), "{describe}");
    assert!(
        last.lines()
            .any(|l| l.trim().starts_with("Exit Code:") && l.trim().ends_with(" 3")),
        "{describe}"
    );
    assert!(describe.contains("CrashLoopBackOff"), "{describe}");
    let previous = d.ok(&["logs", &pod, "--previous"]);
    assert!(previous.contains("crashing on purpose"), "{previous}");
    let events = d.ok(&["events", "--for", &format!("pod/{pod}")]);
    assert!(
        events.starts_with("LAST SEEN") && events.contains("BackOff"),
        "{events}"
    );
    let health = d.ok(&["describe", "deploy", "crash"]);
    assert!(
        health.contains("Degraded") && health.contains("CrashLoopBackOff"),
        "{health}"
    );
    d.down();
}

#[test]
fn a_killed_daemon_leaves_pods_serving_and_the_next_one_readopts_them() {
    let _serial = serial();
    let mut d = Daemon::start();
    d.build_image("web:v1");
    d.apply(&web("web", 2, "web:v1", "v1"));
    d.running("app=web", 2);
    let addrs = d.pod_addrs("app=web");
    let pids: Vec<(String, u64)> = addrs
        .iter()
        .map(|(name, addr)| {
            let v = d.eventually("the pod answers on its host port", 20, || get_json(addr));
            (name.clone(), v["pid"].as_u64().unwrap())
        })
        .collect();
    let mut expected: Vec<u32> = pids.iter().map(|(_, p)| *p as u32).collect();
    expected.sort();
    assert_eq!(server_pids(d.home()), expected);

    d.kill9();
    assert!(
        http_get(d.addr(), "/healthz").is_none(),
        "the daemon is gone"
    );
    for ((_, addr), (_, pid)) in addrs.iter().zip(&pids) {
        let v = get_json(addr).expect("the pod still answers without a daemon");
        assert_eq!(v["pid"].as_u64(), Some(*pid));
    }

    d.spawn();
    let rows = d.pods("app=web");
    assert_eq!(rows.len(), 2, "{rows:?}");
    for r in &rows {
        assert!(pids.iter().any(|(n, _)| *n == r[0]), "same pods: {rows:?}");
        assert_eq!(r[3], "0", "restart counts unchanged: {rows:?}");
    }
    d.running("app=web", 2);
    assert_eq!(
        server_pids(d.home()),
        expected,
        "re-adopted, not started twice"
    );
    for ((_, addr), (_, pid)) in addrs.iter().zip(&pids) {
        assert_eq!(get_json(addr).unwrap()["pid"].as_u64(), Some(*pid));
    }

    // A pod process killed behind the daemon's back is restarted.
    let (victim, addr) = addrs[0].clone();
    let victim_pid = pids[0].1;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim_pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let new_pid = d.eventually("the killed pod answers again", 30, || {
        get_json(&addr)
            .and_then(|v| v["pid"].as_u64())
            .filter(|p| *p != victim_pid)
    });
    let row = d.eventually("the restart counted", 10, || {
        d.pods("app=web")
            .into_iter()
            .find(|r| r[0] == victim && r[3].starts_with('1'))
    });
    assert_eq!(row[2], "Running");
    assert_eq!(server_pids(d.home()).len(), 2);

    // Metrics carry the daemon's gauges.
    let (status, metrics) = d.api("GET", "/metrics", "").unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains("ferry_pods_running 2"), "{metrics}");

    d.down();
    assert!(
        server_pids(d.home()).is_empty(),
        "ferry down stops every process"
    );
    assert!(
        std::fs::metadata(format!("/proc/{new_pid}")).is_err() || server_pids(d.home()).is_empty()
    );
    assert!(!d.home().join("daemon.json").exists());
}

#[test]
fn the_api_answers_kubernetes_lists_and_json_errors_and_applies_all_or_nothing() {
    let _serial = serial();
    let mut d = Daemon::start();
    let error = |method: &str, path: &str, body: &str| {
        let (code, text) = d.api(method, path, body).unwrap();
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{method} {path}: not JSON: {text}"));
        assert_eq!(v["code"], code, "{v}");
        (code, v["error"].as_str().unwrap().to_string())
    };
    let (code, msg) = error("GET", "/api/v1/namespaces/default/po/nope", "");
    assert_eq!((code, msg.as_str()), (404, "pods \"nope\" not found"));
    let (code, msg) = error("GET", "/api/v1/gizmos", "");
    assert_eq!(code, 404);
    assert!(
        msg.contains("doesn't have a resource type \"gizmos\""),
        "{msg}"
    );
    let (code, msg) = error("POST", "/api/v1/apply", "kind: [unclosed");
    assert_eq!(code, 400, "{msg}");

    let cm = |name: &str, value: &str| {
        format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}},"data":{{"k":"{value}"}}}}"#
        )
    };
    let (code, text) = d
        .api("POST", "/api/v1/apply?fieldManager=other", &cm("x", "1"))
        .unwrap();
    assert_eq!(code, 200, "{text}");
    let list = format!(
        r#"{{"apiVersion":"v1","kind":"List","items":[{},{}]}}"#,
        cm("y", "1"),
        cm("x", "2")
    );
    let (code, msg) = error("POST", "/api/v1/apply", &list);
    assert_eq!(code, 409, "{msg}");
    assert!(msg.contains(".data.k") && msg.contains("other"), "{msg}");
    assert_eq!(
        error("GET", "/api/v1/namespaces/default/cm/y", "").0,
        404,
        "nothing applied before the conflict was found"
    );
    let (code, text) = d.api("POST", "/api/v1/apply?force=true", &list).unwrap();
    assert_eq!(code, 200, "{text}");
    let actions: Vec<String> = serde_json::from_str::<Value>(&text).unwrap()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(actions, ["created", "configured"]);

    let (code, text) = d
        .api("GET", "/api/v1/configmaps?labelSelector=missing", "")
        .unwrap();
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (v["kind"].as_str(), v["items"].as_array().map(Vec::len)),
        (Some("List"), Some(0))
    );
    let (code, text) = d
        .api("GET", "/api/v1/namespaces/default/configmaps", "")
        .unwrap();
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let (code, metrics) = d.api("GET", "/metrics", "").unwrap();
    assert_eq!(code, 200);
    assert!(
        metrics.contains("ferry_objects{kind=\"ConfigMap\"} 2"),
        "{metrics}"
    );
    d.down();
}
