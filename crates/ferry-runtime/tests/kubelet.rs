//! The kubelet against real processes: a tiny Python HTTP server from an image built
//! into a temporary store, run with the host's `python3`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_core::{Object, ObjectKey};
use ferry_runtime::kubelet::Kubelet;
use ferry_runtime::{ApplyOptions, Cluster, Propagation, RuntimeConfig};
use ferry_store::{Db, ProcessRow};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[path = "../../ferry-oci/tests/util/registry.rs"]
mod registry;

const SERVER: &str = r#"
import http.server, json, os, signal, sys

def term(signum, frame):
    marker = os.environ.get("TERM_MARKER")
    if marker:
        with open(marker, "w") as f:
            f.write("SIGTERM")
    sys.exit(0)

signal.signal(signal.SIGTERM, term)

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/env":
            code, body = 200, json.dumps(dict(os.environ)).encode()
        elif self.path == "/healthz":
            code, body = (500 if os.environ.get("LIVE_FAIL") else 200), b"ok"
        elif self.path == "/ready":
            code, body = (503 if os.environ.get("NOT_READY") else 200), b"ready"
        else:
            code, body = 200, b"hello"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

print("listening on", os.environ["PORT"], flush=True)
http.server.HTTPServer((os.environ["HOST"], int(os.environ["PORT"])), H).serve_forever()
"#;

/// Each test gets its own slice of host ports, so parallel kubelets never collide —
/// also across processes (nextest runs each test in its own): a slice is held by an
/// exclusive lock on a file named after it, for the test's lifetime.
fn port_slot() -> (u16, std::fs::File) {
    for n in 0..90u16 {
        let path = std::env::temp_dir().join(format!("ferry-kubelet-test-ports-{n}.lock"));
        let file = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap();
        if file.try_lock().is_ok() {
            return (21000 + n * 100, file);
        }
    }
    panic!("no free port slice for a kubelet test");
}

const WAIT: Duration = Duration::from_secs(20);

/// One kubelet on a temporary `FERRY_HOME`, with the image `web:1` in its store.
struct Env {
    dir: TempDir,
    config: RuntimeConfig,
    cluster: Arc<Cluster>,
    kubelet: Option<Arc<Kubelet>>,
    run: Option<JoinHandle<()>>,
    shutdown: CancellationToken,
    marker: String,
    _slot: std::fs::File,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let (lo, slot) = port_slot();
        let mut config = RuntimeConfig::new(dir.path());
        config.backoff_base = Duration::from_millis(200);
        config.backoff_max = Duration::from_secs(1);
        config.port_range = (lo, lo + 99);
        config.insecure_registries = Vec::new();
        let ctx = dir.path().join("context");
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join("server.py"), SERVER).unwrap();
        let store = ferry_oci::Store::open(config.images_dir()).unwrap();
        ferry_oci::build(
            &store,
            &ferry_oci::BuildOptions {
                context: ctx,
                tag: "web:1".into(),
                dest: Some("/app".into()),
                workdir: Some("/app".into()),
                env: vec!["FROM_IMAGE=yes".into()],
                cmd: Some(vec!["python3".into(), "server.py".into()]),
                ..Default::default()
            },
        )
        .unwrap();
        let cluster = Arc::new(open_cluster(&config));
        let marker = uuid::Uuid::new_v4().to_string();
        Env {
            dir,
            config,
            cluster,
            kubelet: None,
            run: None,
            shutdown: CancellationToken::new(),
            marker,
            _slot: slot,
        }
    }

    /// Starts (or, after [`Env::crash`], restarts) the daemon's kubelet.
    fn start(&mut self) {
        let kubelet = Kubelet::new(self.cluster.clone(), self.config.clone()).unwrap();
        self.shutdown = CancellationToken::new();
        self.run = Some(tokio::spawn(kubelet.clone().run(self.shutdown.clone())));
        self.kubelet = Some(kubelet);
    }

    fn kubelet(&self) -> &Arc<Kubelet> {
        self.kubelet.as_ref().unwrap()
    }

    /// Simulates `kill -9` of the daemon: its tasks vanish, its processes stay, and
    /// the object store is read back from the database.
    async fn crash(&mut self) {
        if let Some(run) = self.run.take() {
            run.abort();
            let _ = run.await;
        }
        self.kubelet = None;
        self.cluster = Arc::new(open_cluster(&self.config));
    }

    fn apply(&self, v: Value) -> Object {
        self.cluster
            .apply(&Object::from_value(v).unwrap(), &ApplyOptions::default())
            .unwrap()
    }

    /// A pod running `web:1` with one container named `web` (port 8080), `extra`
    /// merged into the container and `pod_extra` into the spec. Every process gets
    /// this test's marker in its env, to find it in /proc.
    fn pod(&self, name: &str, extra: Value, pod_extra: Value) -> Object {
        let mut container = json!({
            "name": "web",
            "image": "web:1",
            "command": ["python3", "server.py"],
            "ports": [{"name": "http", "containerPort": 8080}],
            "env": [{"name": "TEST_MARKER", "value": self.marker}],
        });
        merge(&mut container, extra);
        let mut spec = json!({"terminationGracePeriodSeconds": 5, "containers": [container]});
        merge(&mut spec, pod_extra);
        self.apply(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
            "spec": spec}))
    }

    fn get(&self, name: &str) -> Option<Object> {
        self.cluster.get(&key(name))
    }

    /// Polls the pod until `pred` holds, failing with its last status after `WAIT`.
    async fn wait_pod(&self, name: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let pod = self.get(name).map(Object::into_value);
            if let Some(p) = &pod
                && pred(p)
            {
                return p.clone();
            }
            if Instant::now() > deadline {
                panic!(
                    "pod {name}: timed out waiting for {what}; last seen:\n{}",
                    serde_json::to_string_pretty(&pod).unwrap()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn processes(&self) -> Vec<ProcessRow> {
        self.cluster.db().unwrap().processes().unwrap()
    }

    fn events(&self, name: &str) -> Vec<(String, String)> {
        self.cluster
            .events(Some("default"), Some(&format!("Pod/{name}")))
            .unwrap()
            .into_iter()
            .map(|e| (e.reason, e.message))
            .collect()
    }

    /// Live processes carrying this test's marker in their environment.
    fn marked_pids(&self) -> Vec<u32> {
        let needle = format!("TEST_MARKER={}", self.marker);
        let mut out = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
                continue;
            };
            let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| {
                    s.rsplit(')')
                        .next()
                        .unwrap_or_default()
                        .trim_start()
                        .starts_with('Z')
                })
                .unwrap_or(true);
            if !zombie && env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
                out.push(pid);
            }
        }
        out
    }
}

impl Drop for Env {
    /// Whatever happened, leave no process behind.
    fn drop(&mut self) {
        if let Some(db) = self.cluster.db()
            && let Ok(rows) = db.processes()
        {
            for r in rows {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(r.pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        for pid in self.marked_pids() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn open_cluster(config: &RuntimeConfig) -> Cluster {
    let db = Arc::new(Db::open(&config.db_path()).unwrap());
    Cluster::open(Some(db)).unwrap()
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new("", "Pod", "default", name)
}

fn merge(base: &mut Value, extra: Value) {
    if let (Value::Object(b), Value::Object(e)) = (base, extra) {
        for (k, v) in e {
            b.insert(k, v);
        }
    }
}

fn container(pod: &Value) -> &Value {
    &pod["status"]["containerStatuses"][0]
}

fn waiting_reason(pod: &Value) -> &str {
    container(pod)["state"]["waiting"]["reason"]
        .as_str()
        .unwrap_or_default()
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running" && container(pod)["ready"] == true
}

fn condition<'a>(pod: &'a Value, kind: &str) -> &'a Value {
    pod["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
        .unwrap_or(&Value::Null)
}

fn host_port(pod: &Value) -> u16 {
    let obj = Object::from_value(pod.clone()).unwrap();
    *Kubelet::host_ports(&obj)
        .get(&8080)
        .expect("host port for 8080")
}

/// A blocking HTTP GET on 127.0.0.1: (status, body).
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

async fn get_env(port: u16) -> Value {
    let (code, body) = tokio::task::spawn_blocking(move || http_get(port, "/env"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code, 200);
    serde_json::from_str(&body).unwrap()
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or_default()
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

fn ready_probe() -> Value {
    json!({"readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_becomes_ready_and_serves_on_its_own_host_port() {
    let mut env = Env::new();
    env.start();
    env.pod("web", ready_probe(), json!({}));
    let pod = env.wait_pod("web", "Running and Ready", is_ready).await;
    let port = host_port(&pod);
    assert!((env.config.port_range.0..=env.config.port_range.1).contains(&port));
    let vars = get_env(port).await;
    assert_eq!(vars["PORT"], port.to_string());
    assert_eq!(vars["HOST"], "127.0.0.1");
    assert_eq!(vars["FROM_IMAGE"], "yes", "the image's env comes through");

    let s = &pod["status"];
    assert_eq!(s["podIP"], "127.0.0.1");
    assert_eq!(s["hostIP"], "127.0.0.1");
    assert_eq!(s["qosClass"], "BestEffort");
    assert!(s["startTime"].is_string());
    for c in ["Initialized", "Ready", "ContainersReady", "PodScheduled"] {
        assert_eq!(condition(&pod, c)["status"], "True", "{c}");
    }
    let c = container(&pod);
    assert_eq!(c["restartCount"], 0);
    assert_eq!(c["started"], true);
    assert!(c["state"]["running"]["startedAt"].is_string());
    assert!(
        c["imageID"].as_str().unwrap().starts_with("web@sha256:"),
        "{c}"
    );

    // A second replica gets its own port.
    env.pod("web-2", ready_probe(), json!({}));
    let other = env.wait_pod("web-2", "Running and Ready", is_ready).await;
    assert_ne!(host_port(&other), port);

    let reasons: Vec<String> = env.events("web").into_iter().map(|(r, _)| r).collect();
    for r in ["Pulled", "Created", "Started"] {
        assert!(reasons.iter().any(|x| x == r), "{r} in {reasons:?}");
    }
    let log = env
        .kubelet()
        .log_path("default", "web", "web", false)
        .unwrap();
    wait_until("the log line", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains(&format!("listening on {port}")))
    })
    .await;
    env.kubelet().stop_all().await;
    assert!(env.marked_pids().is_empty());
    assert!(env.processes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_comes_from_secrets_configmaps_fields_and_expansion() {
    let mut env = Env::new();
    env.apply(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "default"},
        "data": {"password": "czNjcjN0"}, "stringData": {"user": "admin"}}));
    env.apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "default"},
        "data": {"MODE": "fast", "LEVEL": "3"}}));
    env.apply(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api-db", "namespace": "default",
        "annotations": {"ferry.dev/host-ports": "{\"5432\": 31999}"}},
        "spec": {"ports": [{"port": 5432}]}}));
    env.start();
    let marker = env.marker.clone();
    env.pod(
        "env",
        json!({
            "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}, {"secretRef": {"name": "db"}}],
            "env": [
                {"name": "TEST_MARKER", "value": marker},
                {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "MODE"}}},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "DSN", "value": "$(user):$(PASSWORD)@$(API_DB_SERVICE_HOST):$(API_DB_SERVICE_PORT)/$(MODE)?x=$(UNKNOWN)"},
                {"name": "LITERAL", "value": "$$(MODE)"},
            ],
        }),
        json!({}),
    );
    let pod = env
        .wait_pod("env", "Running", |p| p["status"]["phase"] == "Running")
        .await;
    let port = host_port(&pod);
    let mut vars = Value::Null;
    wait_until("the server to answer", || match http_get(port, "/env") {
        Ok((200, body)) => {
            vars = serde_json::from_str(&body).unwrap();
            true
        }
        _ => false,
    })
    .await;
    assert_eq!(vars["PASSWORD"], "s3cr3t");
    assert_eq!(vars["user"], "admin", "envFrom secretRef");
    assert_eq!(vars["CFG_LEVEL"], "3", "envFrom with prefix");
    assert_eq!(vars["MODE"], "fast");
    assert_eq!(vars["POD_NAME"], "env");
    assert_eq!(vars["POD_NS"], "default");
    assert_eq!(vars["POD_UID"], pod["metadata"]["uid"]);
    assert_eq!(vars["APP"], "env");
    assert_eq!(vars["POD_IP"], "127.0.0.1");
    assert_eq!(vars["NODE"], "ferry");
    assert_eq!(vars["API_DB_SERVICE_HOST"], "127.0.0.1");
    assert_eq!(vars["API_DB_SERVICE_PORT"], "31999");
    assert_eq!(
        vars["DSN"],
        "admin:s3cr3t@127.0.0.1:31999/fast?x=$(UNKNOWN)"
    );
    assert_eq!(vars["LITERAL"], "$(MODE)");
    env.kubelet().stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_secret_key_waits_then_starts_without_a_restart() {
    let mut env = Env::new();
    env.apply(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "default"},
        "stringData": {"user": "admin"}}));
    env.start();
    let marker = env.marker.clone();
    env.pod(
        "needs-secret",
        json!({"env": [
            {"name": "TEST_MARKER", "value": marker},
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
        ]}),
        json!({}),
    );
    let pod = env
        .wait_pod("needs-secret", "CreateContainerConfigError", |p| {
            waiting_reason(p) == "CreateContainerConfigError"
        })
        .await;
    assert_eq!(
        container(&pod)["state"]["waiting"]["message"],
        "couldn't find key password in Secret default/db"
    );
    assert_eq!(pod["status"]["phase"], "Pending");
    assert!(
        env.marked_pids().is_empty(),
        "nothing runs without its config"
    );
    assert!(env.events("needs-secret").contains(&(
        "Failed".into(),
        "Error: couldn't find key password in Secret default/db".into()
    )));

    env.apply(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "default"},
        "stringData": {"user": "admin", "password": "now-here"}}));
    let pod = env
        .wait_pod("needs-secret", "Running", |p| {
            p["status"]["phase"] == "Running"
        })
        .await;
    assert_eq!(container(&pod)["restartCount"], 0);
    assert_eq!(container(&pod)["lastState"], json!({}));
    let vars = {
        let port = host_port(&pod);
        let mut vars = Value::Null;
        wait_until("the server", || match http_get(port, "/env") {
            Ok((200, b)) => {
                vars = serde_json::from_str(&b).unwrap();
                true
            }
            _ => false,
        })
        .await;
        vars
    };
    assert_eq!(vars["PASSWORD"], "now-here");

    // A missing Secret altogether reads as Kubernetes says it.
    env.pod(
        "no-secret",
        json!({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]}),
        json!({}),
    );
    let pod = env
        .wait_pod("no-secret", "CreateContainerConfigError", |p| {
            waiting_reason(p) == "CreateContainerConfigError"
        })
        .await;
    assert_eq!(
        container(&pod)["state"]["waiting"]["message"],
        "secret \"nope\" not found"
    );
    env.kubelet().stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_image_gives_err_image_pull_then_image_pull_back_off() {
    let mut env = Env::new();
    env.start();
    let mut watch = env.cluster.subscribe();
    // Nothing listens on port 1: the registry is unreachable.
    env.pod(
        "no-image",
        json!({"image": "127.0.0.1:1/team/nope:1"}),
        json!({}),
    );
    env.pod(
        "never",
        json!({"image": "absent:1", "imagePullPolicy": "Never"}),
        json!({}),
    );
    let pod = env
        .wait_pod("no-image", "ImagePullBackOff", |p| {
            waiting_reason(p) == "ImagePullBackOff"
        })
        .await;
    assert_eq!(
        container(&pod)["state"]["waiting"]["message"],
        "Back-off pulling image \"127.0.0.1:1/team/nope:1\""
    );
    assert_eq!(pod["status"]["phase"], "Pending");
    // Every status written went through ErrImagePull, with the registry's message, first.
    let mut seen = Vec::new();
    while let Ok(ev) = watch.try_recv() {
        let v = ev.object().value();
        if v["metadata"]["name"] == "no-image" {
            let r = waiting_reason(v).to_string();
            if !r.is_empty() && seen.last() != Some(&r) {
                if r == "ErrImagePull" {
                    let msg = container(v)["state"]["waiting"]["message"]
                        .as_str()
                        .unwrap();
                    assert!(msg.contains("127.0.0.1:1"), "{msg}");
                }
                seen.push(r);
            }
        }
    }
    let first_pull = seen.iter().position(|r| r == "ErrImagePull");
    let back_off = seen.iter().position(|r| r == "ImagePullBackOff");
    assert!(
        first_pull.is_some() && first_pull < back_off,
        "reasons in order: {seen:?}"
    );
    // It keeps retrying with back-off.
    let pulls = || {
        env.events("no-image")
            .iter()
            .filter(|(r, _)| r == "Pulling")
            .count()
    };
    wait_until("a second pull attempt", || pulls() >= 2).await;

    let pod = env
        .wait_pod("never", "ErrImageNeverPull", |p| {
            waiting_reason(p) == "ErrImageNeverPull"
        })
        .await;
    assert_eq!(
        container(&pod)["state"]["waiting"]["message"],
        "Container image \"absent:1\" is not present with pull policy of Never"
    );
    env.kubelet().stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_is_pulled_from_its_registry_once() {
    let reg = registry::Registry::start();
    let mut env = Env::new();
    let image = format!("{}/team/web:1", reg.host());
    let client = ferry_oci::RegistryClient::new(ferry_oci::RegistryOptions::default()).unwrap();
    let store = ferry_oci::Store::open(env.config.images_dir()).unwrap();
    client
        .push(
            &store,
            "web:1",
            &ferry_oci::Reference::parse(&image).unwrap(),
            false,
        )
        .await
        .unwrap();
    assert!(
        store.resolve(&image).unwrap().is_none(),
        "only the registry has it"
    );
    env.start();
    env.pod("pulled", json!({"image": image}), json!({}));
    let pod = env
        .wait_pod("pulled", "Running", |p| p["status"]["phase"] == "Running")
        .await;
    let id = container(&pod)["imageID"].as_str().unwrap().to_string();
    assert!(
        id.starts_with(&format!("{}/team/web@sha256:", reg.host())),
        "{id}"
    );
    let events = env.events("pulled");
    assert!(
        events.contains(&("Pulling".into(), format!("Pulling image {image:?}"))),
        "{events:?}"
    );
    assert!(
        events.iter().any(|(r, m)| r == "Pulled"
            && m.starts_with(&format!("Successfully pulled image {image:?} in "))),
        "{events:?}"
    );
    env.pod("again", json!({"image": image}), json!({}));
    env.wait_pod("again", "Running", |p| p["status"]["phase"] == "Running")
        .await;
    assert!(env.events("again").contains(&(
        "Pulled".into(),
        format!("Container image {image:?} already present on machine")
    )));
    let rootfs: Vec<_> = std::fs::read_dir(env.config.rootfs_dir())
        .unwrap()
        .collect();
    assert_eq!(rootfs.len(), 1, "unpacked once per digest");
    env.kubelet().stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashing_container_goes_into_crash_loop_back_off() {
    let mut env = Env::new();
    env.start();
    env.pod(
        "crash",
        json!({"command": ["sh", "-c", "echo crashing on $PORT; exit 3"]}),
        json!({}),
    );
    let pod = env
        .wait_pod("crash", "CrashLoopBackOff after 2 restarts", |p| {
            waiting_reason(p) == "CrashLoopBackOff"
                && container(p)["restartCount"].as_u64().unwrap_or(0) >= 2
        })
        .await;
    let c = container(&pod);
    let term = &c["lastState"]["terminated"];
    assert_eq!(term["exitCode"], 3);
    assert_eq!(term["reason"], "Error");
    assert!(term["startedAt"].is_string() && term["finishedAt"].is_string());
    let msg = c["state"]["waiting"]["message"].as_str().unwrap();
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    assert!(
        msg.starts_with("back-off ")
            && msg.ends_with(&format!(
                "restarting failed container=web pod=crash_default({uid})"
            )),
        "{msg}"
    );
    assert_eq!(
        pod["status"]["phase"], "Running",
        "restartPolicy Always keeps it Running"
    );
    assert_eq!(condition(&pod, "Ready")["status"], "False");
    let previous = env
        .kubelet()
        .log_path("default", "crash", "web", true)
        .unwrap();
    let text = std::fs::read_to_string(previous).unwrap();
    assert!(text.starts_with("crashing on "), "{text:?}");
    assert!(env.events("crash").iter().any(|(r, _)| r == "BackOff"));
    env.kubelet().stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_liveness_probe_restarts_the_container() {
    let mut env = Env::new();
    env.start();
    let marker = env.marker.clone();
    env.pod(
        "sick",
        json!({
            "env": [{"name": "TEST_MARKER", "value": marker}, {"name": "LIVE_FAIL", "value": "1"}],
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080},
                "initialDelaySeconds": 1, "periodSeconds": 1, "failureThreshold": 1,
                "terminationGracePeriodSeconds": 1},
        }),
        json!({}),
    );
    let pod = env
        .wait_pod("sick", "a restart", |p| {
            container(p)["restartCount"].as_u64().unwrap_or(0) >= 1
        })
        .await;
    assert!(container(&pod)["lastState"]["terminated"].is_object());
    let events = env.events("sick");
    assert!(
        events
            .iter()
            .any(|(r, m)| r == "Unhealthy" && m.starts_with("Liveness probe failed: ")),
        "{events:?}"
    );
    assert!(
        events.contains(&(
            "Killing".into(),
            "Container web failed liveness probe, will be restarted".into()
        )),
        "{events:?}"
    );
    env.kubelet().stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_readiness_probe_keeps_the_pod_unready() {
    let mut env = Env::new();
    env.start();
    let marker = env.marker.clone();
    let mut extra = ready_probe();
    merge(
        &mut extra,
        json!({"env": [{"name": "TEST_MARKER", "value": marker}, {"name": "NOT_READY", "value": "1"}]}),
    );
    env.pod("unready", extra, json!({}));
    env.wait_pod("unready", "a failed readiness probe", |_| {
        env.events("unready").iter().any(|(r, m)| {
            r == "Unhealthy"
                && m == "Readiness probe failed: HTTP probe failed with statuscode: 503"
        })
    })
    .await;
    let pod = env.get("unready").unwrap().into_value();
    assert_eq!(pod["status"]["phase"], "Running");
    assert_eq!(container(&pod)["ready"], false);
    assert_eq!(container(&pod)["started"], true);
    assert_eq!(
        container(&pod)["restartCount"],
        0,
        "readiness never restarts"
    );
    let ready = condition(&pod, "Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "ContainersNotReady");
    assert_eq!(ready["message"], "containers with unready status: [web]");
    env.kubelet().stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_probes_run_in_the_container_env_and_startup_probe_gates() {
    let mut env = Env::new();
    env.start();
    let marker = env.marker.clone();
    env.pod(
        "exec",
        json!({
            "env": [{"name": "TEST_MARKER", "value": marker}, {"name": "MODE", "value": "on"}],
            "startupProbe": {"exec": {"command": ["sh", "-c", "test -f server.py"]}, "periodSeconds": 1},
            "readinessProbe": {"exec": {"command": ["sh", "-c", "test \"$MODE\" = on"]}, "periodSeconds": 1},
            "livenessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 1, "failureThreshold": 5},
        }),
        json!({}),
    );
    let pod = env.wait_pod("exec", "ready", is_ready).await;
    assert_eq!(container(&pod)["started"], true);
    // A failing exec probe holds readiness.
    env.pod(
        "exec-bad",
        json!({"readinessProbe": {"exec": {"command": ["sh", "-c", "echo not yet; exit 1"]}, "periodSeconds": 1}}),
        json!({}),
    );
    env.wait_pod("exec-bad", "a failed exec probe", |_| {
        env.events("exec-bad")
            .iter()
            .any(|(r, m)| r == "Unhealthy" && m == "Readiness probe failed: not yet")
    })
    .await;
    assert_eq!(
        container(&env.get("exec-bad").unwrap().into_value())["ready"],
        false
    );
    env.kubelet().stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_policy_never_and_exit_zero_succeeds() {
    let mut env = Env::new();
    env.start();
    env.pod(
        "job",
        json!({"command": ["sh", "-c", "echo done"]}),
        json!({"restartPolicy": "Never"}),
    );
    let pod = env
        .wait_pod("job", "Succeeded", |p| p["status"]["phase"] == "Succeeded")
        .await;
    let term = &container(&pod)["state"]["terminated"];
    assert_eq!(term["exitCode"], 0);
    assert_eq!(term["reason"], "Completed");
    assert_eq!(container(&pod)["restartCount"], 0);
    assert_eq!(condition(&pod, "Ready")["reason"], "PodCompleted");
    assert!(env.processes().is_empty());

    env.pod(
        "job-fails",
        json!({"command": ["sh", "-c", "exit 7"]}),
        json!({"restartPolicy": "Never"}),
    );
    let pod = env
        .wait_pod("job-fails", "Failed", |p| p["status"]["phase"] == "Failed")
        .await;
    assert_eq!(container(&pod)["state"]["terminated"]["exitCode"], 7);
    env.kubelet().stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_containers_run_in_order_before_the_app() {
    let mut env = Env::new();
    env.start();
    let out = env.dir.path().join("init.txt");
    let out_s = out.display().to_string();
    env.pod(
        "inits",
        json!({}),
        json!({"initContainers": [
            {"name": "one", "image": "web:1", "command": ["sh", "-c", format!("echo one >> {out_s}")]},
            {"name": "two", "image": "web:1", "command": ["sh", "-c", format!("sleep 0.2; echo two >> {out_s}")]},
        ]}),
    );
    let pod = env
        .wait_pod("inits", "Running", |p| p["status"]["phase"] == "Running")
        .await;
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "one\ntwo\n");
    let inits = pod["status"]["initContainerStatuses"].as_array().unwrap();
    assert_eq!(inits.len(), 2);
    for i in inits {
        assert_eq!(i["state"]["terminated"]["reason"], "Completed", "{i}");
    }
    assert_eq!(condition(&pod, "Initialized")["status"], "True");

    env.pod(
        "init-fails",
        json!({}),
        json!({"restartPolicy": "Never", "initContainers": [
            {"name": "bad", "image": "web:1", "command": ["sh", "-c", "exit 1"]},
        ]}),
    );
    let pod = env
        .wait_pod("init-fails", "Failed", |p| p["status"]["phase"] == "Failed")
        .await;
    assert_eq!(waiting_reason(&pod), "PodInitializing");
    assert_eq!(
        condition(&pod, "Initialized")["reason"],
        "ContainersNotInitialized"
    );
    env.kubelet().stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_sends_sigterm_then_finalizes_the_pod() {
    let mut env = Env::new();
    env.start();
    let marker_file = env.dir.path().join("terminated");
    let marker = env.marker.clone();
    env.pod(
        "doomed",
        json!({"env": [
            {"name": "TEST_MARKER", "value": marker},
            {"name": "TERM_MARKER", "value": marker_file.display().to_string()},
        ]}),
        json!({}),
    );
    let pod = env
        .wait_pod("doomed", "Running", |p| p["status"]["phase"] == "Running")
        .await;
    let port = host_port(&pod);
    wait_until("the server", || http_get(port, "/").is_ok()).await;
    let pid = env.processes()[0].pid as u32;
    assert!(pid_alive(pid));
    env.cluster
        .delete(&key("doomed"), Propagation::Background)
        .unwrap();
    wait_until("the pod to be finalized", || env.get("doomed").is_none()).await;
    assert_eq!(std::fs::read_to_string(&marker_file).unwrap(), "SIGTERM");
    assert!(!pid_alive(pid));
    assert!(env.processes().is_empty());
    assert!(
        env.kubelet()
            .log_path("default", "doomed", "web", false)
            .is_none()
    );
    assert!(
        env.events("doomed")
            .contains(&("Killing".into(), "Stopping container web".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_period_ends_with_sigkill() {
    let mut env = Env::new();
    env.start();
    env.pod(
        "stubborn",
        json!({"command": ["sh", "-c", "trap '' TERM; echo started; while true; do sleep 0.1; done"]}),
        json!({"terminationGracePeriodSeconds": 1}),
    );
    env.wait_pod("stubborn", "Running", |p| p["status"]["phase"] == "Running")
        .await;
    let log = env
        .kubelet()
        .log_path("default", "stubborn", "web", false)
        .unwrap();
    wait_until("the trap to be set", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("started"))
    })
    .await;
    let pid = env.processes()[0].pid as u32;
    let t = Instant::now();
    env.cluster
        .delete(&key("stubborn"), Propagation::Background)
        .unwrap();
    wait_until("the pod to be finalized", || env.get("stubborn").is_none()).await;
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    assert!(!pid_alive(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_daemon_readopts_running_processes() {
    let mut env = Env::new();
    env.start();
    env.pod("survivor", ready_probe(), json!({}));
    let pod = env.wait_pod("survivor", "ready", is_ready).await;
    let port = host_port(&pod);
    let rows = env.processes();
    assert_eq!(rows.len(), 1);
    let pid = rows[0].pid as u32;
    assert_eq!(rows[0].id, "default/survivor/web");

    env.crash().await;
    assert!(pid_alive(pid), "the process outlives the daemon");
    // Its image leaving the store meanwhile does not orphan it.
    ferry_oci::Store::open(env.config.images_dir())
        .unwrap()
        .remove("web:1")
        .unwrap();
    assert_eq!(
        tokio::task::spawn_blocking(move || http_get(port, "/"))
            .await
            .unwrap()
            .unwrap()
            .0,
        200
    );

    env.start();
    // Give the new kubelet time to do anything wrong, then check it did not.
    let pod = env.wait_pod("survivor", "ready", is_ready).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pod_now = env.get("survivor").unwrap().into_value();
    assert_eq!(container(&pod_now)["restartCount"], 0);
    assert_eq!(container(&pod_now)["state"], container(&pod)["state"]);
    assert_eq!(env.marked_pids(), vec![pid], "one process, the same one");
    assert_eq!(env.processes()[0].pid as u32, pid);
    assert_eq!(host_port(&pod_now), port);
    assert_eq!(
        tokio::task::spawn_blocking(move || http_get(port, "/"))
            .await
            .unwrap()
            .unwrap()
            .0,
        200
    );

    // The adopted process is still supervised: deleting the pod stops it.
    env.cluster
        .delete(&key("survivor"), Propagation::Background)
        .unwrap();
    wait_until("the pod to be finalized", || env.get("survivor").is_none()).await;
    assert!(!pid_alive(pid));
    assert!(env.marked_pids().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_started_but_not_recorded_before_a_crash_is_still_adopted() {
    let mut env = Env::new();
    env.start();
    env.pod("unrecorded", ready_probe(), json!({}));
    env.wait_pod("unrecorded", "ready", is_ready).await;
    let pid = env.processes()[0].pid as u32;
    env.crash().await;
    // As if the daemon died right after the spawn, before writing the record.
    env.cluster
        .db()
        .unwrap()
        .delete_process("default/unrecorded/web")
        .unwrap();

    env.start();
    env.wait_pod("unrecorded", "ready", is_ready).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pod = env.get("unrecorded").unwrap().into_value();
    assert_eq!(container(&pod)["restartCount"], 0);
    assert_eq!(env.marked_pids(), vec![pid], "one process, the same one");
    let rows = env.processes();
    assert_eq!((rows.len(), rows[0].pid as u32), (1, pid), "recorded again");
    env.kubelet().stop_all().await;
    assert!(!pid_alive(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_lost_while_the_daemon_was_down_is_restarted() {
    let mut env = Env::new();
    env.start();
    env.pod("lost", json!({}), json!({}));
    env.wait_pod("lost", "Running", |p| p["status"]["phase"] == "Running")
        .await;
    let pid = env.processes()[0].pid as u32;
    env.crash().await;
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_until("the process to die", || !pid_alive(pid)).await;

    env.start();
    let pod = env
        .wait_pod("lost", "a restart", |p| {
            container(p)["restartCount"] == 1 && container(p)["state"]["running"].is_object()
        })
        .await;
    assert_eq!(
        container(&pod)["lastState"]["terminated"]["reason"],
        "ContainerStatusUnknown"
    );
    let port = host_port(&pod);
    wait_until("the server", || http_get(port, "/").is_ok()).await;
    let pids = env.marked_pids();
    assert_eq!(pids.len(), 1, "{pids:?}");
    assert_ne!(pids[0], pid);
    env.kubelet().stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_as_non_root_refuses_a_root_image_and_run_as_user_is_honoured() {
    let mut env = Env::new();
    env.start();
    env.pod(
        "rooty",
        json!({}),
        json!({"securityContext": {"runAsNonRoot": true}}),
    );
    let pod = env
        .wait_pod("rooty", "CreateContainerConfigError", |p| {
            waiting_reason(p) == "CreateContainerConfigError"
        })
        .await;
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    assert_eq!(
        container(&pod)["state"]["waiting"]["message"],
        format!(
            "container has runAsNonRoot and image will run as root (pod: \"rooty_default({uid})\", container: web)"
        )
    );
    assert!(env.processes().is_empty());

    if nix::unistd::geteuid().is_root() {
        // The rootfs must be reachable by the unprivileged user.
        set_mode(env.dir.path(), 0o755);
        env.pod(
            "nobody",
            json!({"command": ["sleep", "30"], "securityContext": {"runAsUser": 65534, "runAsGroup": 65534}}),
            json!({"securityContext": {"runAsNonRoot": true}}),
        );
        env.wait_pod("nobody", "Running", |p| p["status"]["phase"] == "Running")
            .await;
        let pid = env.processes()[0].pid;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert!(
            uid_line.split_whitespace().nth(1) == Some("65534"),
            "{uid_line}"
        );
    }
    env.kubelet().stop_all().await;
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_all_stops_every_process_and_keeps_the_pods() {
    let mut env = Env::new();
    env.start();
    for name in ["a", "b"] {
        env.pod(name, json!({}), json!({}));
    }
    for name in ["a", "b"] {
        env.wait_pod(name, "Running", |p| p["status"]["phase"] == "Running")
            .await;
    }
    wait_until("two processes", || env.marked_pids().len() == 2).await;
    env.kubelet().stop_all().await;
    assert!(env.marked_pids().is_empty());
    assert!(env.processes().is_empty());
    for name in ["a", "b"] {
        let pod = env.get(name).unwrap().into_value();
        assert!(container(&pod)["state"]["terminated"].is_object(), "{pod}");
    }
    // Nothing starts again afterwards.
    env.pod("c", json!({}), json!({}));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(env.marked_pids().is_empty());
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap()
}

/// The daemon's budget: 50 running pods in at most 40 MB RSS. Run alone (it measures
/// the whole test process): `cargo test -p ferry-runtime --test kubelet -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measures this process's RSS; run alone"]
async fn fifty_pods_fit_in_forty_megabytes() {
    let mut env = Env::new();
    env.start();
    let before = rss_kib();
    let probes = json!({
        "command": ["sleep", "600"],
        "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1},
        "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 10, "failureThreshold": 100},
    });
    for i in 0..50 {
        env.pod(&format!("p{i}"), probes.clone(), json!({}));
    }
    for i in 0..50 {
        env.wait_pod(&format!("p{i}"), "ready", is_ready).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib();
    println!("RSS before pods: {before} KiB; with 50 ready pods: {after} KiB");
    assert!(after < 40 * 1024, "{after} KiB");
    env.kubelet().stop_all().await;
}

/// A name no one else uses, for directories a `../` name would reach outside the home.
fn outside_name() -> String {
    format!("victim-{}", uuid::Uuid::new_v4().simple())
}

/// A pod named `name` in `ns` with one container `container` running `sleep`.
fn plain_pod(ns: &str, name: &str, container: &str) -> Object {
    Object::from_value(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"containers": [{"name": container, "image": "web:1", "command": ["sleep", "600"]}]}}))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_pod_name_with_dotdot_is_refused_and_nothing_is_created_outside_ferry_home() {
    let mut env = Env::new();
    env.start();
    let victim = outside_name();
    let name = format!("../../../{victim}");
    let pod = plain_pod("default", &name, "c");
    let err = env
        .cluster
        .apply(&pod, &ApplyOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "Pod \"{name}\" is invalid: metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters"
        )),
        "{err}"
    );
    assert!(env.cluster.create(&pod, "test").is_err());
    assert!(env.cluster.update_as(&pod, "test").is_err());
    let dry = ApplyOptions {
        dry_run: true,
        ..Default::default()
    };
    assert!(env.cluster.apply(&pod, &dry).is_err());
    assert!(env.cluster.list(Some("Pod"), None).is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // logs/default/../../../VICTIM is the home's parent's VICTIM.
    let outside = env.dir.path().parent().unwrap().join(&victim);
    assert!(!outside.exists(), "{} was created", outside.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_namespace_with_dotdot_is_refused() {
    let env = Env::new();
    let ns = Object::from_value(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "../../../x"}}),
    )
    .unwrap();
    let err = env
        .cluster
        .apply(&ns, &ApplyOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Namespace \"../../../x\" is invalid: metadata.name: Invalid value: \"../../../x\": a lowercase RFC 1123 label"),
        "{err}"
    );
    let err = env
        .cluster
        .apply(
            &plain_pod("../../../x", "web", "c"),
            &ApplyOptions::default(),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Pod \"web\" is invalid: metadata.namespace: Invalid value: \"../../../x\""),
        "{err}"
    );
    assert_eq!(env.cluster.count(None), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_container_name_with_dotdot_is_refused() {
    let env = Env::new();
    let err = env
        .cluster
        .apply(
            &plain_pod("default", "web", "../../x"),
            &ApplyOptions::default(),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Pod \"web\" is invalid: spec.containers[0].name: Invalid value: \"../../x\": a lowercase RFC 1123 label"),
        "{err}"
    );
    let deploy = Object::from_value(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "../../x", "image": "web:1"}]}}}}))
    .unwrap();
    let err = env
        .cluster
        .apply(&deploy, &ApplyOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("spec.template.spec.containers[0].name: Invalid value: \"../../x\""),
        "{err}"
    );
    assert_eq!(env.cluster.count(None), 0);
}

/// The kernel's start time of `pid`, as the kubelet records it.
fn start_ticks(pid: u32) -> i64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_pods_with_invalid_names_stored_by_an_older_ferry_are_not_run_and_stay_deletable()
 {
    let mut env = Env::new();
    let victim = outside_name();
    let bad_name = format!("../../../{victim}");
    // Written as an older ferry wrote them, with no check: a pod named `../…`, and a
    // pod whose container is named `../../x`, the second with a process still running.
    let db = env.cluster.db().unwrap().clone();
    let mut pids = Vec::new();
    let mut children = Vec::new();
    for (name, container) in [(bad_name.as_str(), "c"), ("web", "../../x")] {
        let mut pod = plain_pod("default", name, container).into_value();
        let uid = uuid::Uuid::new_v4().to_string();
        pod["metadata"]["uid"] = json!(uid);
        pod["metadata"]["resourceVersion"] = json!("1");
        let key = ObjectKey::new("", "Pod", "default", name);
        db.put_object_text(&key.to_string(), "Pod", "default", name, &pod.to_string())
            .unwrap();
        if name == "web" {
            use std::os::unix::process::CommandExt as _;
            let mut child = std::process::Command::new("sleep");
            child
                .arg("600")
                .env("TEST_MARKER", &env.marker)
                .process_group(0);
            let child = child.spawn().unwrap();
            let pid = child.id();
            pids.push(pid);
            db.put_process(&ProcessRow {
                id: "default/web/../../x".to_string(),
                pid: i64::from(pid),
                start_ticks: start_ticks(pid),
                pod_uid: uid,
                data: json!({}),
            })
            .unwrap();
            children.push(child);
        }
    }
    env.cluster = Arc::new(open_cluster(&env.config));
    assert_eq!(env.cluster.list(Some("Pod"), None).len(), 2, "both load");
    env.start();
    wait_until("an InvalidName event on each pod", || {
        [bad_name.as_str(), "web"].iter().all(|n| {
            env.events(n)
                .iter()
                .any(|(reason, m)| reason == "InvalidName" && m.contains("is invalid"))
        })
    })
    .await;
    wait_until("the old process to be stopped", || {
        pids.iter().all(|p| !pid_alive(*p))
    })
    .await;
    for mut c in children {
        c.wait().unwrap();
    }
    assert!(env.processes().is_empty());
    assert_eq!(
        env.events("web")
            .iter()
            .filter(|(r, _)| r == "InvalidName")
            .count(),
        1,
        "reported once"
    );
    let outside = env.dir.path().parent().unwrap().join(&victim);
    assert!(!outside.exists(), "{} was created", outside.display());
    for name in [bad_name.as_str(), "web"] {
        assert!(
            env.cluster
                .delete(&key(name), Propagation::Background)
                .unwrap()
        );
    }
    wait_until("both pods to be finalized", || {
        env.cluster.list(Some("Pod"), None).is_empty()
    })
    .await;
    assert!(!outside.exists());
}

#[test]
fn regression_kubelet_removal_is_confined_to_its_root_even_if_handed_an_outside_path() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("home/logs");
    std::fs::create_dir_all(root.join("default")).unwrap();
    let victim = dir.path().join("victim2");
    std::fs::create_dir_all(victim.join("c")).unwrap();
    std::fs::write(victim.join("c/current.log"), "precious").unwrap();
    for handed in [
        root.join("default/../../../victim2"),
        victim.clone(),
        root.clone(),
        dir.path().to_path_buf(),
    ] {
        let err = ferry_runtime::kubelet::remove_dir_within(&root, &handed).unwrap_err();
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::PermissionDenied,
            "{handed:?}"
        );
        assert!(err.to_string().contains("not inside"), "{err}");
    }
    std::os::unix::fs::symlink(&victim, root.join("default/link")).unwrap();
    assert!(ferry_runtime::kubelet::remove_dir_within(&root, &root.join("default/link")).is_err());
    assert!(
        ferry_runtime::kubelet::create_dir_within(&root, &root.join("default/../../../victim3"))
            .is_err()
    );
    assert!(
        ferry_runtime::kubelet::create_dir_within(&root, &root.join("default/link/d")).is_err()
    );
    assert_eq!(
        std::fs::read_to_string(victim.join("c/current.log")).unwrap(),
        "precious"
    );
    assert!(!dir.path().join("victim3").exists());
    assert!(!victim.join("c/d").exists() && !victim.join("d").exists());
    ferry_runtime::kubelet::create_dir_within(&root, &root.join("default/web/c")).unwrap();
    assert!(ferry_runtime::kubelet::remove_dir_within(&root, &root.join("default/web")).unwrap());
}

// ---------------------------------------------------------------------------
// Container isolation: pods run through runc (skipped, with the reason printed,
// where the test process is not root or runc or a static busybox is missing).

const BUSYBOX: &str = "/bin/busybox";
const APPLETS: &[&str] = &[
    "sh", "cat", "hostname", "id", "sleep", "head", "tr", "ls", "echo", "test", "stat", "true",
    "false", "env", "mkdir", "dd", "seq",
];

/// Why container tests cannot run here, if they cannot.
fn container_skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not running as root".into());
    }
    if !ferry_container::find_runc().is_file() {
        return Some("runc is not installed (Debian package runc)".into());
    }
    let head = std::fs::read(BUSYBOX).unwrap_or_default();
    if head.is_empty() || head.windows(7).take(8192).any(|w| w == b"ld-linu") {
        return Some(format!(
            "{BUSYBOX} is missing or not static (Debian package busybox-static)"
        ));
    }
    None
}

/// An [`Env`] whose kubelet runs containers, with the image `box:1` (busybox and its
/// applets, a passwd with `app` = 1000) in its store. Dropping it deletes every
/// container and unmounts every volume left under its home.
struct ContainerEnv {
    env: Env,
}

impl std::ops::Deref for ContainerEnv {
    type Target = Env;
    fn deref(&self) -> &Env {
        &self.env
    }
}

impl std::ops::DerefMut for ContainerEnv {
    fn deref_mut(&mut self) -> &mut Env {
        &mut self.env
    }
}

impl ContainerEnv {
    fn new() -> Option<ContainerEnv> {
        if let Some(why) = container_skip_reason() {
            eprintln!("skipped: {why}");
            return None;
        }
        let mut env = Env::new();
        env.config.isolation = ferry_container::Decision {
            isolation: ferry_container::Isolation::Container,
            reason: "container isolation: test".into(),
        };
        let ctx = env.dir.path().join("box");
        for d in ["bin", "etc", "tmp", "home/app"] {
            std::fs::create_dir_all(ctx.join(d)).unwrap();
        }
        std::fs::copy(BUSYBOX, ctx.join("bin/busybox")).unwrap();
        for a in APPLETS {
            std::os::unix::fs::symlink("busybox", ctx.join("bin").join(a)).unwrap();
        }
        std::fs::write(
            ctx.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:App:/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(ctx.join("etc/group"), "root:x:0:\napp:x:1000:\n").unwrap();
        set_mode(&ctx.join("tmp"), 0o1777);
        let store = ferry_oci::Store::open(env.config.images_dir()).unwrap();
        ferry_oci::build(
            &store,
            &ferry_oci::BuildOptions {
                context: ctx,
                tag: "box:1".into(),
                cmd: Some(vec!["sh".into()]),
                env: vec!["FROM_IMAGE=yes".into()],
                ..Default::default()
            },
        )
        .unwrap();
        Some(ContainerEnv { env })
    }

    /// A pod of `containers` (each `{name, script}` plus extra fields) on `box:1`.
    fn box_pod(&self, name: &str, containers: Vec<Value>, pod_extra: Value) -> Object {
        let containers: Vec<Value> = containers
            .into_iter()
            .map(|mut c| {
                let script = c["script"].as_str().unwrap_or_default().to_string();
                merge(
                    &mut c,
                    json!({"image": "box:1", "command": ["sh", "-c", script]}),
                );
                c.as_object_mut().unwrap().remove("script");
                c
            })
            .collect();
        let mut spec = json!({"terminationGracePeriodSeconds": 2, "containers": containers});
        merge(&mut spec, pod_extra);
        self.apply(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
            "spec": spec}))
    }

    fn runc_root(&self) -> std::path::PathBuf {
        self.config.home.join("runc/state")
    }

    /// Ids of the containers runc knows under this home.
    fn runc_ids(&self) -> Vec<String> {
        let out = std::process::Command::new(ferry_container::find_runc())
            .arg("--root")
            .arg(self.runc_root())
            .args(["list", "-q"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn log(&self, pod: &str, container: &str) -> String {
        self.kubelet()
            .log_path("default", pod, container, false)
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// Polls a container's log until it holds `needle`.
    async fn wait_log(&self, pod: &str, container: &str, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.log(pod, container);
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {needle:?} in the log of {pod}/{container}:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ContainerEnv {
    fn drop(&mut self) {
        for id in self.runc_ids() {
            let _ = std::process::Command::new(ferry_container::find_runc())
                .arg("--root")
                .arg(self.runc_root())
                .args(["delete", "--force", &id])
                .output();
        }
        let home = self.config.home.display().to_string();
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut mounts: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| p.starts_with(&home))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

fn field<'a>(log: &'a str, key: &str) -> &'a str {
    log.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_pod_gets_its_hostname_pid_1_env_and_volumes_and_not_the_host() {
    let Some(mut env) = ContainerEnv::new() else {
        return;
    };
    env.start();
    env.apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "default"},
        "data": {"greeting": "hello from a configmap"}}));
    env.apply(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "creds", "namespace": "default"},
        "data": {"token": "czNjcjN0"}}));
    let home = env.config.home.display().to_string();
    // `$$$$`: Kubernetes turns `$$` into `$` before the shell sees it.
    let app = format!(
        "echo host=$(hostname); echo pid=$$$$; echo env=$GREETING; echo image=$FROM_IMAGE; \
         echo cm=$(cat /etc/cm/greeting); echo cmmode=$(stat -c %a /etc/cm/greeting); \
         echo secret=$(cat /etc/creds/token); echo secretmode=$(stat -c %a /etc/creds/token); \
         if test -e {home}; then echo home=visible; else echo home=hidden; fi; \
         echo shared-by-app > /shared/note; echo done; sleep 3600"
    );
    let side = "for i in $(seq 200); do test -e /shared/note && break; sleep 0.1; done; \
                echo side=$(cat /shared/note); sleep 3600";
    env.box_pod(
        "boxed",
        vec![
            json!({"name": "app", "script": app,
                "env": [{"name": "GREETING", "value": "hi"}],
                "volumeMounts": [
                    {"name": "cm", "mountPath": "/etc/cm"},
                    {"name": "creds", "mountPath": "/etc/creds"},
                    {"name": "shared", "mountPath": "/shared"}]}),
            json!({"name": "side", "script": side,
                "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]}),
        ],
        json!({"volumes": [
            {"name": "cm", "configMap": {"name": "settings"}},
            {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400}},
            {"name": "shared", "emptyDir": {}}]}),
    );
    let log = env.wait_log("boxed", "app", "done").await;
    assert_eq!(field(&log, "host"), "boxed", "{log}");
    assert_eq!(
        field(&log, "pid"),
        "1",
        "the command is the container's init"
    );
    assert_eq!(field(&log, "env"), "hi");
    assert_eq!(field(&log, "image"), "yes");
    assert_eq!(field(&log, "cm"), "hello from a configmap");
    assert_eq!(field(&log, "cmmode"), "644");
    assert_eq!(field(&log, "secret"), "s3cr3t");
    assert_eq!(field(&log, "secretmode"), "400");
    assert_eq!(field(&log, "home"), "hidden", "FERRY_HOME is not inside");
    let side = env.wait_log("boxed", "side", "side=").await;
    assert_eq!(field(&side, "side"), "shared-by-app", "emptyDir is shared");
    let pod = env
        .wait_pod("boxed", "running", |p| p["status"]["phase"] == "Running")
        .await;
    assert_eq!(pod["status"]["containerStatuses"][0]["restartCount"], 0);
    assert_eq!(env.runc_ids().len(), 2);
    let rows = env.processes();
    assert!(
        rows.iter().all(|r| r.data["container"].is_string()),
        "{rows:?}"
    );

    // Deleting the pod deletes its containers, their state and the pod's volumes.
    env.cluster
        .delete(&key("boxed"), Propagation::Background)
        .unwrap();
    wait_until("the pod to be finalized", || env.get("boxed").is_none()).await;
    assert!(env.runc_ids().is_empty(), "{:?}", env.runc_ids());
    let containers = env.config.home.join("runc/containers");
    let left: Vec<_> = std::fs::read_dir(&containers)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "container directories left: {left:?}");
    let volumes = env.config.home.join("volumes");
    let left: Vec<_> = std::fs::read_dir(&volumes)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "volumes left: {left:?}");
    assert!(env.processes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_over_its_memory_limit_is_oom_killed_and_crash_loops() {
    let Some(mut env) = ContainerEnv::new() else {
        return;
    };
    env.start();
    env.box_pod(
        "hog",
        vec![json!({"name": "hog",
            "script": "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived",
            "resources": {"limits": {"memory": "32Mi"}}})],
        json!({}),
    );
    let pod = env
        .wait_pod("hog", "CrashLoopBackOff after an OOM kill", |p| {
            waiting_reason(p) == "CrashLoopBackOff"
                && container(p)["lastState"]["terminated"]["reason"] == "OOMKilled"
        })
        .await;
    let last = &container(&pod)["lastState"]["terminated"];
    assert_eq!(last["exitCode"], 137, "{last}");
    assert!(container(&pod)["restartCount"].as_u64().unwrap() >= 1);
    assert!(!env.log("hog", "hog").contains("survived"));
    env.kubelet().stop_all().await;
    assert!(env.runc_ids().is_empty(), "ferry down leaves no container");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_job_pod_that_completed_while_no_daemon_ran_is_succeeded() {
    let Some(mut env) = ContainerEnv::new() else {
        return;
    };
    env.start();
    env.box_pod(
        "job",
        vec![json!({"name": "work", "script": "echo working; sleep 1; echo finished"})],
        json!({"restartPolicy": "Never"}),
    );
    env.wait_log("job", "work", "working").await;
    env.crash().await;
    // The container finishes while no daemon runs; its exit is kept by runc's
    // supervisor.
    let exit_file = env.config.home.join("runc/containers");
    wait_until("the container to finish", || {
        std::fs::read_dir(&exit_file)
            .map(|d| d.flatten().any(|e| e.path().join("exit").is_file()))
            .unwrap_or(false)
    })
    .await;
    env.start();
    let pod = env
        .wait_pod("job", "Succeeded", |p| p["status"]["phase"] == "Succeeded")
        .await;
    let term = &container(&pod)["state"]["terminated"];
    assert_eq!(term["exitCode"], 0, "{term}");
    assert_eq!(term["reason"], "Completed");
    assert_eq!(container(&pod)["restartCount"], 0);
    assert_eq!(
        env.log("job", "work").matches("working").count(),
        1,
        "run once"
    );
    wait_until("the finished container to be deleted", || {
        env.runc_ids().is_empty()
    })
    .await;
    assert!(env.processes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_is_readopted_by_a_restarted_daemon_and_never_runs_twice() {
    let Some(mut env) = ContainerEnv::new() else {
        return;
    };
    env.start();
    env.box_pod(
        "keeper",
        vec![json!({"name": "app", "script": "echo started; sleep 3600",
            "livenessProbe": {"exec": {"command": ["test", "-e", "/bin/sh"]}, "periodSeconds": 1}})],
        json!({}),
    );
    env.wait_log("keeper", "app", "started").await;
    env.wait_pod("keeper", "ready", is_ready).await;
    let rows = env.processes();
    assert_eq!(rows.len(), 1);
    let pid = rows[0].pid as u32;
    let id = rows[0].data["container"].as_str().unwrap().to_string();

    env.crash().await;
    assert!(pid_alive(pid), "the container outlives the daemon");
    env.start();
    env.wait_pod("keeper", "ready", is_ready).await;
    // Give the new kubelet time to do anything wrong (the probe runs every second).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let pod = env.get("keeper").unwrap().into_value();
    assert_eq!(container(&pod)["restartCount"], 0);
    assert!(pid_alive(pid));
    assert_eq!(env.processes()[0].pid as u32, pid, "the same container pid");
    assert_eq!(env.runc_ids(), vec![id]);
    assert_eq!(env.log("keeper", "app").matches("started").count(), 1);
    assert!(
        !env.events("keeper")
            .iter()
            .any(|(r, _)| r == "Unhealthy" || r == "Killing"),
        "{:?}",
        env.events("keeper")
    );

    // Still supervised: stop_all (ferry down) stops and deletes it.
    env.kubelet().stop_all().await;
    assert!(!pid_alive(pid));
    assert!(env.runc_ids().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_whose_runtime_state_vanished_is_restarted() {
    let Some(mut env) = ContainerEnv::new() else {
        return;
    };
    env.start();
    env.box_pod(
        "lost",
        vec![json!({"name": "app", "script": "echo started; sleep 3600"})],
        json!({}),
    );
    env.wait_log("lost", "app", "started").await;
    env.wait_pod("lost", "running", |p| p["status"]["phase"] == "Running")
        .await;
    env.crash().await;
    for id in env.runc_ids() {
        let out = std::process::Command::new(ferry_container::find_runc())
            .arg("--root")
            .arg(env.runc_root())
            .args(["delete", "--force", &id])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    env.start();
    let pod = env
        .wait_pod("lost", "restarted", |p| {
            container(p)["restartCount"] == 1 && container(p)["state"]["running"].is_object()
        })
        .await;
    assert_eq!(
        container(&pod)["lastState"]["terminated"]["reason"],
        "ContainerStatusUnknown"
    );
    assert_eq!(env.runc_ids().len(), 1);
    env.kubelet().stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_honours_run_as_user_read_only_root_downward_api_host_path_and_exec_probes() {
    let Some(mut env) = ContainerEnv::new() else {
        return;
    };
    env.start();
    let host_dir = env.dir.path().join("host-data");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(host_dir.join("from-host"), "host file").unwrap();
    let script = "echo uid=$(id -u); echo gid=$(id -g); \
                  if touch /rootfile 2>/dev/null; then echo root=writable; else echo root=readonly; fi; \
                  echo labels=$(cat /etc/podinfo/labels); echo name=$(cat /etc/podinfo/name); \
                  echo host=$(cat /data/from-host); \
                  echo ok > /scratch/ready; echo done; sleep 3600";
    env.box_pod(
        "strict",
        vec![json!({"name": "app", "script": script,
            "securityContext": {"runAsUser": 1000, "runAsGroup": 1000,
                "runAsNonRoot": true, "readOnlyRootFilesystem": true},
            "readinessProbe": {"exec": {"command": ["cat", "/scratch/ready"]}, "periodSeconds": 1},
            "volumeMounts": [
                {"name": "podinfo", "mountPath": "/etc/podinfo"},
                {"name": "data", "mountPath": "/data", "readOnly": true},
                {"name": "scratch", "mountPath": "/scratch"}]})],
        json!({"volumes": [
            {"name": "podinfo", "downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
            {"name": "data", "hostPath": {"path": host_dir.display().to_string(), "type": "Directory"}},
            {"name": "scratch", "emptyDir": {"medium": "Memory"}}]}),
    );
    let log = env.wait_log("strict", "app", "done").await;
    assert_eq!(field(&log, "uid"), "1000", "{log}");
    assert_eq!(field(&log, "gid"), "1000");
    assert_eq!(field(&log, "root"), "readonly");
    assert_eq!(field(&log, "labels"), "app=\"strict\"");
    assert_eq!(field(&log, "name"), "strict");
    assert_eq!(field(&log, "host"), "host file");
    // The probe's file exists only inside the container: ready means it ran there.
    env.wait_pod("strict", "ready", is_ready).await;
    env.kubelet().stop_all().await;
    assert!(env.runc_ids().is_empty());
    let home = env.config.home.display().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.lines().any(|l| l.contains(&home)),
        "ferry down leaves no volume mounted"
    );
}

/// The pods of the whole runtime (`ferry_runtime::Runtime`) whose name starts with
/// `prefix`.
fn pods_named(rt: &ferry_runtime::Runtime, prefix: &str) -> Vec<Value> {
    rt.cluster
        .list(Some("Pod"), None)
        .into_iter()
        .map(Object::into_value)
        .filter(|p| {
            p["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect()
}

async fn wait_rt(
    rt: &ferry_runtime::Runtime,
    what: &str,
    mut f: impl FnMut(&ferry_runtime::Runtime) -> bool,
) {
    let deadline = Instant::now() + WAIT;
    while !f(rt) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_runtime_restart_readopts_workloads_and_a_job_completes_once() {
    let Some(env) = ContainerEnv::new() else {
        return;
    };
    let apply = |rt: &ferry_runtime::Runtime, v: Value| {
        rt.apply(&Object::from_value(v).unwrap(), &ApplyOptions::default())
            .unwrap();
    };
    let rt = ferry_runtime::Runtime::start(env.config.clone())
        .await
        .unwrap();
    apply(
        &rt,
        json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "batch", "namespace": "default"},
            "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "work", "image": "box:1",
                    "command": ["sh", "-c", "echo working; sleep 2; echo finished"]}]}}}}),
    );
    apply(
        &rt,
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "keeper", "namespace": "default"},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "app",
                "image": "box:1", "command": ["sh", "-c", "echo started; sleep 3600"]}]}}),
    );
    wait_rt(&rt, "both containers to run", |rt| {
        ["batch", "keeper"].iter().all(|n| {
            pods_named(rt, n)
                .first()
                .is_some_and(|p| container(p)["state"]["running"].is_object())
        })
    })
    .await;
    let db = rt.cluster.db().unwrap().clone();
    let keeper_pid = db
        .processes()
        .unwrap()
        .into_iter()
        .find(|r| r.id == "default/keeper/app")
        .unwrap()
        .pid;

    // The daemon stops without stopping workloads; a new one starts on the same home.
    rt.stop().await;
    drop(rt);
    let rt = ferry_runtime::Runtime::start(env.config.clone())
        .await
        .unwrap();
    wait_rt(&rt, "the Job to complete", |rt| {
        rt.cluster
            .get(&ObjectKey::new("batch", "Job", "default", "batch"))
            .is_some_and(|j| j.value()["status"]["succeeded"] == 1)
    })
    .await;
    let job_pod = pods_named(&rt, "batch").remove(0);
    assert_eq!(job_pod["status"]["phase"], "Succeeded", "{job_pod}");
    assert_eq!(container(&job_pod)["restartCount"], 0);
    let name = job_pod["metadata"]["name"].as_str().unwrap();
    let log = rt
        .kubelet
        .log_path("default", name, "work", false)
        .map(|p| std::fs::read_to_string(p).unwrap())
        .unwrap_or_default();
    assert_eq!(log, "working\nfinished\n", "the Job's container ran once");
    let keeper = pods_named(&rt, "keeper").remove(0);
    assert_eq!(container(&keeper)["restartCount"], 0, "{keeper}");
    let rows = rt.cluster.db().unwrap().processes().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].pid, keeper_pid, "the same container");
    assert!(pid_alive(keeper_pid as u32));

    rt.down().await;
    assert!(
        env.runc_ids().is_empty(),
        "ferry down deletes every container"
    );
}
