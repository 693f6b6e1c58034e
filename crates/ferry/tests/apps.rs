//! `ferry app …` and `ferry up` end to end: a real daemon process, a real Git
//! repository committed to by the test, real workload processes built from
//! `examples/quickstart/app`, real HTTP through the Service's host port.
//!
//! Tests run one at a time (the quickstart Service asks for host port 8080), and every
//! daemon is brought `down` when its test ends so no process leaks.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod util;

use util::{ferry_bin, serial};

fn quickstart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart")
}

/// Polls `f` until it gives a value, for at most `secs` seconds; `log` explains a timeout.
fn eventually<T>(
    what: &str,
    secs: u64,
    log: impl Fn() -> String,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {secs}s waiting for {what}\n{}", log());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A daemon on a FERRY_HOME of its own, and a Git repository holding the quickstart
/// manifests under `manifests/`.
struct World {
    home: tempfile::TempDir,
    child: Option<Child>,
    log: PathBuf,
    repo: PathBuf,
}

impl World {
    fn start() -> World {
        let home = tempfile::tempdir().unwrap();
        let log = home.path().join("serve.log");
        let repo = home.path().join("gitops");
        std::fs::create_dir_all(repo.join("manifests")).unwrap();
        for f in ["greeter.yaml", "config.yaml"] {
            std::fs::copy(
                quickstart().join("manifests").join(f),
                repo.join("manifests").join(f),
            )
            .unwrap();
        }
        let mut w = World {
            home,
            child: None,
            log,
            repo,
        };
        w.git(&["init", "-q", "-b", "main"]);
        w.commit("initial manifests");
        w.ok(&[
            "image",
            "build",
            "-t",
            "greeter:v1",
            "--cmd",
            "python3 server.py",
            "--env",
            "VERSION=v1",
            quickstart().join("app").to_str().unwrap(),
        ]);
        let child = util::spawn_serve(
            w.home(),
            &["--addr", "127.0.0.1:0", "--reconciliation", "1s"],
            &w.log,
        );
        let pid = child.id();
        w.child = Some(child);
        eventually(
            "daemon.json",
            20,
            || w.log_tail(),
            || {
                let text = std::fs::read_to_string(w.home().join("daemon.json")).ok()?;
                let v: Value = serde_json::from_str(&text).ok()?;
                (v["pid"].as_u64() == Some(u64::from(pid))).then_some(())
            },
        );
        w
    }

    fn home(&self) -> &Path {
        self.home.path()
    }

    /// `git ARGS` in the repository; its trimmed stdout.
    fn git(&self, args: &[&str]) -> String {
        util::git(&self.repo, args)
    }

    /// Commits everything; returns the new commit's id.
    fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
        self.git(&["rev-parse", "HEAD"]).trim().to_string()
    }

    /// Rewrites `manifests/FILE` with `from` replaced by `to`, and commits; returns
    /// the commit's id.
    fn edit(&self, file: &str, from: &str, to: &str) -> String {
        let path = self.repo.join("manifests").join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{from:?} not in {file}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
        self.commit(&format!("{from} -> {to}"))
    }

    fn edit_greeter(&self, from: &str, to: &str) -> String {
        self.edit("greeter.yaml", from, to)
    }

    /// Registers the quickstart's `application.yaml` for this repository, without its
    /// automated sync policy unless `automated`.
    fn create_app(&self, automated: bool) {
        let app_file = self.home().join("application.yaml");
        let mut text = std::fs::read_to_string(quickstart().join("application.yaml"))
            .unwrap()
            .replace(
                "file:///path/to/quickstart-gitops",
                self.repo.to_str().unwrap(),
            );
        if !automated {
            text = text.replace(
                "    automated:\n      prune: true\n      selfHeal: true\n",
                "",
            );
        }
        std::fs::write(&app_file, text).unwrap();
        self.ok(&["app", "create", "-f", app_file.to_str().unwrap()]);
    }

    /// Waits until the app is Synced and Healthy.
    fn wait_synced_healthy(&self) {
        self.ok(&[
            "app",
            "wait",
            "greeter",
            "--sync",
            "--health",
            "--timeout",
            "60s",
        ]);
    }

    fn ferry(&self, args: &[&str]) -> Output {
        util::run_ferry(self.home(), args)
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        util::expect_ok(args, self.ferry(args), &self.log_tail())
    }

    fn app(&self) -> Value {
        serde_json::from_str(&self.ok(&["app", "get", "greeter", "-o", "json"])).unwrap()
    }

    /// The pods of the `demo` namespace.
    fn pods(&self) -> Vec<Value> {
        let v: Value =
            serde_json::from_str(&self.ok(&["get", "pods", "-n", "demo", "-o", "json"])).unwrap();
        v["items"].as_array().cloned().unwrap_or_default()
    }

    /// `http://127.0.0.1:PORT/` of the greeter Service's host listener.
    fn service_url(&self) -> String {
        let svc: Value = serde_json::from_str(
            &self.ok(&["get", "service", "greeter", "-n", "demo", "-o", "json"]),
        )
        .unwrap();
        let ports = svc
            .pointer("/metadata/annotations/ferry.dev~1host-ports")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no host ports on the Service: {svc}"));
        let ports: Value = serde_json::from_str(ports).unwrap();
        let port = ports
            .as_object()
            .and_then(|m| m.values().find_map(Value::as_u64))
            .unwrap_or_else(|| panic!("no host port in {ports}"));
        format!("http://127.0.0.1:{port}/")
    }

    /// `ferry scale deployment greeter --replicas N -n demo`: drift.
    fn scale_by_hand(&self, replicas: u32) {
        let n = replicas.to_string();
        self.ok(&[
            "scale",
            "deployment",
            "greeter",
            "--replicas",
            &n,
            "-n",
            "demo",
        ]);
    }

    /// The id and the line of the newest `ferry app history` entry.
    fn last_history(&self) -> (u64, String) {
        let history = self.ok(&["app", "history", "greeter"]);
        let line = history.lines().last().unwrap_or_default().trim_end();
        let id = line
            .split_whitespace()
            .next()
            .and_then(|id| id.parse().ok())
            .unwrap_or(0);
        (id, line.to_string())
    }

    fn replicas(&self) -> Option<i64> {
        let out = self.ferry(&["get", "deploy", "greeter", "-n", "demo", "-o", "json"]);
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        v.pointer("/spec/replicas").and_then(Value::as_i64)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "--- daemon log ---\n{}",
            lines[lines.len().saturating_sub(40)..].join("\n")
        )
    }

    fn eventually<T>(&self, what: &str, secs: u64, f: impl FnMut() -> Option<T>) -> T {
        eventually(what, secs, || self.log_tail(), f)
    }

    /// Waits until the app's health is `health` and its message contains `needle`.
    fn health(&self, health: &str, needle: &str, secs: u64) -> Value {
        self.eventually(&format!("health {health} ({needle})"), secs, || {
            let app = self.app();
            (app["status"]["health"]["status"] == health && app.to_string().contains(needle))
                .then_some(app)
        })
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = self.ferry(&["down"]);
            let deadline = Instant::now() + Duration::from_secs(20);
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A plain HTTP/1.1 GET of a full `http://host:port/path` URL.
fn http_get(url: &str) -> Option<(u16, String)> {
    let rest = url.strip_prefix("http://")?;
    let (addr, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
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

#[test]
fn an_app_follows_git_through_sync_rollback_bad_commits_and_drift() {
    let _s = serial();
    let w = World::start();

    // Errors name the app and exit 1.
    let out = w.ferry(&["app", "get", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));

    // Created manually (no automation yet), synced, waited healthy.
    w.create_app(false);
    let listed = w.ok(&["app", "list"]);
    assert!(
        listed.starts_with("NAME") && listed.contains("greeter"),
        "{listed}"
    );
    let out = w.ferry(&["app", "diff", "greeter"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "out of sync before the first sync"
    );
    let synced = w.ok(&["app", "sync", "greeter"]);
    assert!(synced.contains("Succeeded"), "{synced}");
    w.ok(&["app", "wait", "greeter", "--health", "--timeout", "60s"]);
    let app = w.app();
    assert_eq!(app["status"]["sync"]["status"], "Synced");
    assert_eq!(app["status"]["health"]["status"], "Healthy");
    assert_eq!(w.replicas(), Some(2));
    let got = w.ok(&["app", "get", "greeter"]);
    assert!(
        got.contains("Sync Status:") && got.contains("Deployment"),
        "{got}"
    );

    // Automated from now on: a commit reaches the runtime by itself.
    w.ok(&[
        "app",
        "set",
        "greeter",
        "--sync-policy",
        "automated",
        "--auto-prune",
        "--self-heal",
    ]);
    w.edit_greeter("replicas: 2", "replicas: 3");
    w.eventually("3 replicas from Git", 30, || {
        (w.replicas() == Some(3)).then_some(())
    });
    w.wait_synced_healthy();
    let history = w.ok(&["app", "history", "greeter"]);
    assert_eq!(history.lines().count(), 3, "header + 2 entries:\n{history}");

    // Rollback: old replicas back, automated sync paused.
    let rolled = w.ok(&["app", "rollback", "greeter", "1"]);
    assert!(rolled.contains("Succeeded"), "{rolled}");
    assert_eq!(w.replicas(), Some(2));
    assert_eq!(w.app()["status"]["autoSyncPaused"], true);

    // INC-002 through GitOps: a bad image tag is Degraded at once, a revert heals it.
    w.edit_greeter("image: greeter:v1", "image: greeter:nope");
    let app = w.health("Degraded", "ImagePullBackOff", 60);
    assert!(
        app["status"].get("autoSyncPaused").is_none(),
        "a new commit resumes automation"
    );
    w.edit_greeter("image: greeter:nope", "image: greeter:v1");
    w.health("Healthy", "", 60);

    // A malformed file: ComparisonError naming file and line; live state untouched.
    let before = w.replicas();
    std::fs::write(
        w.repo.join("manifests/broken.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\ndata: [unclosed\n",
    )
    .unwrap();
    w.commit("broken yaml");
    let cond = w.eventually("ComparisonError", 30, || {
        let app = w.app();
        app["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "ComparisonError")
            .map(|c| c["message"].as_str().unwrap_or_default().to_string())
    });
    assert!(cond.contains("broken.yaml:5"), "file and line: {cond}");
    assert_eq!(w.replicas(), before);
    std::fs::remove_file(w.repo.join("manifests/broken.yaml")).unwrap();
    w.commit("fix yaml");
    w.wait_synced_healthy();

    // Drift: replicas scaled and a ConfigMap deleted by hand come back from Git, and
    // the history says which sync did it. The first drift is synced as the commit it
    // happened on ("fix yaml" needed no sync of its own); drift on a commit already
    // synced is self-heal's.
    let want = w.replicas();
    for triggers in [&["automated", "self-heal"][..], &["self-heal"]] {
        let (before, _) = w.last_history();
        w.scale_by_hand(5);
        w.ok(&["delete", "configmap", "greeter-config", "-n", "demo"]);
        w.eventually(
            &format!("{triggers:?} restores replicas and ConfigMap"),
            30,
            || {
                let (id, entry) = w.last_history();
                let out = w.ferry(&[
                    "get",
                    "configmap",
                    "greeter-config",
                    "-n",
                    "demo",
                    "-o",
                    "json",
                ]);
                let cm: Value = serde_json::from_slice(&out.stdout).ok()?;
                (w.replicas() == want
                    && cm["data"]["greeting"] == "Hello from ferry"
                    && id > before
                    && entry.contains("Succeeded")
                    && triggers.iter().any(|t| entry.ends_with(t)))
                .then_some(())
            },
        );
        w.wait_synced_healthy();
    }

    // Delete cascades.
    w.ok(&["app", "delete", "greeter"]);
    w.eventually("the Deployment gone", 20, || {
        w.replicas().is_none().then_some(())
    });
    assert!(!w.ok(&["app", "list"]).contains("greeter"));
}

/// The line of the quickstart's Secret (`config.yaml`) holding the key its Deployment reads.
const SECRET_KEY_LINE: &str = "  api-token: demo-token-not-a-secret\n";

/// INC-003 through Git on an automated app: a commit makes the Deployment read a key
/// its Secret does not have. Waits until the app is Degraded with Kubernetes' message
/// and returns the name of the new pod stuck in `CreateContainerConfigError`.
fn commit_a_missing_secret_key(w: &World) -> String {
    w.edit_greeter("key: api-token", "key: api-key");
    let app = w.health("Degraded", "CreateContainerConfigError", 60);
    let message = app["status"]["health"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("couldn't find key api-key in Secret demo/greeter-secret"),
        "the health message names the key and the secret: {message}"
    );
    let stuck: Vec<String> = w
        .pods()
        .iter()
        .filter(|p| {
            p.pointer("/status/containerStatuses/0/state/waiting/reason")
                == Some(&Value::from("CreateContainerConfigError"))
        })
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(stuck.len(), 1, "one new pod, stuck: {stuck:?}");
    stuck[0].clone()
}

/// Commits the missing key into the Secret; returns the commit's id.
fn commit_the_missing_key(w: &World) -> String {
    w.edit(
        "config.yaml",
        SECRET_KEY_LINE,
        &format!("{SECRET_KEY_LINE}  api-key: demo-key-not-a-secret\n"),
    )
}

/// Waits until the app is Synced to `revision` and Healthy.
fn wait_healthy_at(w: &World, revision: &str) -> Value {
    w.eventually(&format!("Synced to {revision} and Healthy"), 60, || {
        let app = w.app();
        (app["status"]["sync"]["revision"] == revision
            && app["status"]["sync"]["status"] == "Synced"
            && app["status"]["health"]["status"] == "Healthy")
            .then_some(app)
    })
}

#[test]
fn a_missing_secret_key_degrades_the_app_at_once_while_old_pods_serve_until_git_adds_it() {
    let _s = serial();
    let w = World::start();
    w.create_app(true);
    w.wait_synced_healthy();
    let url = w.service_url();
    let serving: Vec<String> = w
        .pods()
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(serving.len(), 2, "{serving:?}");

    let stuck = commit_a_missing_secret_key(&w);

    // The rollout holds: the old pods keep answering every request.
    for _ in 0..20 {
        let (status, body) = http_get(&url).unwrap_or_else(|| panic!("{url} answers"));
        assert_eq!(status, 200, "{body}");
        assert!(
            serving.iter().any(|p| body.contains(p.as_str())),
            "answered by an old pod: {body}"
        );
    }

    // Git gets the key: the stuck pod starts as it is, without a restart, and the
    // rollout completes.
    let fix = commit_the_missing_key(&w);
    wait_healthy_at(&w, &fix);
    let pod = w
        .pods()
        .into_iter()
        .find(|p| p["metadata"]["name"] == stuck.as_str())
        .unwrap_or_else(|| panic!("pod {stuck} still there"));
    assert_eq!(pod["status"]["phase"], "Running", "{pod}");
    assert_eq!(
        pod.pointer("/status/containerStatuses/0/restartCount"),
        Some(&Value::from(0)),
        "{pod}"
    );
    let (status, body) = http_get(&url).unwrap_or_else(|| panic!("{url} answers"));
    assert_eq!(status, 200, "{body}");
}

/// Regression test for the engine deciding the fixing commit's sync on the pod's
/// stale `CreateContainerConfigError`: the Deployment is unchanged, so the sync judged
/// it before the kubelet had re-read the Secret, recorded the sync as Failed and, by
/// Argo's rule for failed attempts, kept self-heal off until the next commit. It was a
/// race (about every other run failed) until a Degraded verdict had to outlast one
/// re-check.
#[test]
fn the_commit_that_adds_a_missing_secret_key_syncs_successfully_and_self_heal_stays_on() {
    let _s = serial();
    let w = World::start();
    w.create_app(true);
    w.wait_synced_healthy();
    commit_a_missing_secret_key(&w);
    let fix = commit_the_missing_key(&w);
    wait_healthy_at(&w, &fix);
    let op = w.eventually("the sync of the fix to finish", 60, || {
        let op = w.app()["status"]["operationState"].clone();
        (op["syncResult"]["revision"] == fix.as_str() && op["phase"] != "Running").then_some(op)
    });
    assert_eq!(op["phase"], "Succeeded", "{op}");
    let app = w.app();
    assert!(!app.to_string().contains("SyncError"), "{app}");
    w.scale_by_hand(5);
    w.eventually("self-heal restores replicas", 30, || {
        (w.replicas() == Some(2)).then_some(())
    });
}

/// Runs `ferry up examples/quickstart` on `home`.
fn up(home: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(ferry_bin());
    cmd.args([
        "up",
        quickstart().to_str().unwrap(),
        "--addr",
        "127.0.0.1:0",
    ])
    .args(extra)
    .env("FERRY_HOME", home)
    .env("FERRY_BACKOFF_BASE_MS", "200")
    .env("FERRY_BACKOFF_MAX_MS", "1000")
    .env_remove("FERRY_SERVER")
    .stdin(Stdio::null());
    cmd
}

#[test]
fn up_serves_the_quickstart_until_down() {
    let _s = serial();
    let home = tempfile::tempdir().unwrap();
    let mut child = up(home.path(), &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let url = loop {
        let Some(Ok(line)) = lines.next() else {
            let _ = child.kill();
            panic!("ferry up ended before printing the service URL:\n{printed}");
        };
        printed.push_str(&line);
        printed.push('\n');
        if let Some(url) = line.strip_prefix("service: ") {
            break url.to_string();
        }
    };
    let (status, body) = http_get(&url).unwrap_or_else(|| panic!("{url} answers\n{printed}"));
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v.get("greeting").is_some(), "{body}");
    assert!(printed.contains("Synced, Healthy"), "{printed}");
    assert!(printed.contains("building image greeter:v1"), "{printed}");
    let down = Command::new(ferry_bin())
        .arg("down")
        .env("FERRY_HOME", home.path())
        .env_remove("FERRY_SERVER")
        .output()
        .unwrap();
    assert!(down.status.success(), "{down:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "ferry up still running after down"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn up_exit_when_healthy_exits_zero_and_keeps_the_repo() {
    let _s = serial();
    let home = tempfile::tempdir().unwrap();
    let out = up(home.path(), &["--exit-when-healthy"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("service: http://127.0.0.1:"), "{stdout}");
    assert!(stdout.contains("(created)"), "{stdout}");
    assert!(home.path().join("gitops/quickstart/.git").is_dir());
    // A second run reuses the repository.
    let again = up(home.path(), &["--exit-when-healthy"]).output().unwrap();
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("(kept)"));
}

#[test]
fn repo_credentials_are_stored_private_and_never_printed() {
    use std::os::unix::fs::PermissionsExt as _;
    let home = tempfile::tempdir().unwrap();
    let ferry = |args: &[&str]| {
        Command::new(ferry_bin())
            .args(args)
            .env("FERRY_HOME", home.path())
            .output()
            .unwrap()
    };
    let url = "https://git.example/team/deploy.git";
    let out = ferry(&[
        "repo",
        "add",
        url,
        "--username",
        "bot",
        "--password",
        "s3cret-token",
    ]);
    assert!(out.status.success(), "{out:?}");
    let file = home.path().join("repos.json");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let list = ferry(&["repo", "list"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains(url) && text.contains("bot"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    assert!(ferry(&["repo", "rm", url]).status.success());
    assert_eq!(ferry(&["repo", "rm", url]).status.code(), Some(1));
}
