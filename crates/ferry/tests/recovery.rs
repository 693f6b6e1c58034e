//! A daemon killed with `kill -9` in the middle of a sync, end to end: a real
//! `ferry serve`, a real Git repository, real workload processes. The daemon that
//! starts next on the same FERRY_HOME must find a consistent state: the operation
//! recorded as failed (interrupted), never left Running; the history as it was; no
//! hook and no replica running twice; and the next sync succeeding.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

mod util;

use util::{Daemon, ferry_command, git, serial, workload_pids};

/// The web replica: a Python process that idles until stopped.
const IDLE: &str = "import time\nwhile True:\n    time.sleep(60)\n";

/// The PreSync hook: waits until the file `argv[1]` exists (the test's go-ahead),
/// for at most 120 s, then exits 0. Stopped, it exits at once.
const WAIT_FOR_FILE: &str = "import os, sys, time\n\
deadline = time.time() + 120\n\
while not os.path.exists(sys.argv[1]):\n    \
if time.time() > deadline:\n        sys.exit(1)\n    \
time.sleep(0.05)\n";

/// The same hook stopping as a migration does: SIGTERM lets it finish its step
/// first (a second).
const WAIT_FOR_FILE_SLOW_TO_STOP: &str = "import signal, sys, time\n\
def stop(*_):\n    time.sleep(1)\n    sys.exit(0)\n\
signal.signal(signal.SIGTERM, stop)\n";

/// Command-line markers of the two workloads (the interpreter ignores them).
const WEB: &str = "recovery-web-replica";
const HOOK: &str = "recovery-presync-hook";

/// A ConfigMap and a one-replica Deployment of `tools:v1` (no probe: Ready once
/// running).
fn web_manifests(value: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  value: "{value}"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: tools:v1
        command: ["python3", "-c", {idle}, "{WEB}"]
"#,
        idle = serde_json::to_string(IDLE).unwrap(),
    )
}

/// A PreSync hook Job that runs until `release` exists (and, if `slow_to_stop`,
/// takes a second to stop).
fn hook_manifest(release: &Path, slow_to_stop: bool) -> String {
    let script = if slow_to_stop {
        format!("{WAIT_FOR_FILE_SLOW_TO_STOP}{WAIT_FOR_FILE}")
    } else {
        WAIT_FOR_FILE.to_string()
    };
    format!(
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations:
    argocd.argoproj.io/hook: PreSync
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 5
      containers:
      - name: migrate
        image: tools:v1
        command: ["python3", "-c", {script}, "{release}", "{HOOK}"]
"#,
        script = serde_json::to_string(&script).unwrap(),
        release = release.display(),
    )
}

/// Samples the home's workload processes every few milliseconds, remembering the
/// most of each marker seen at once and every pid seen.
struct Watch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    most_web: usize,
    most_hook: usize,
    web_pids: BTreeSet<u32>,
    hook_pids: BTreeSet<u32>,
}

impl Watch {
    fn start(home: &Path) -> Watch {
        let home = home.to_path_buf();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = Seen::default();
            while !flag.load(Ordering::SeqCst) {
                let web = workload_pids(&home, WEB, true);
                let hook = workload_pids(&home, HOOK, true);
                seen.most_web = seen.most_web.max(web.len());
                seen.most_hook = seen.most_hook.max(hook.len());
                seen.web_pids.extend(web);
                seen.hook_pids.extend(hook);
                std::thread::sleep(Duration::from_millis(5));
            }
            seen
        });
        Watch { stop, thread }
    }

    fn finish(self) -> Seen {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

/// `ferry app sync NAME` in the background, its output in a file of the home.
fn sync_in_background(d: &Daemon, name: &str, n: u32) -> (Child, std::path::PathBuf) {
    let out = d.home().join(format!("sync-{n}.out"));
    let file = std::fs::File::create(&out).unwrap();
    let child = ferry_command(d.home(), &["app", "sync", name])
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    (child, out)
}

/// Waits (bounded) for a background command to end; its exit status.
fn wait_child(d: &Daemon, child: &mut Child, what: &str) -> std::process::ExitStatus {
    d.eventually(what, 60, || child.try_wait().unwrap())
}

/// Rows of `ferry app history NAME`: id, revision, result.
fn history(d: &Daemon, name: &str) -> Vec<[String; 3]> {
    d.ok(&["app", "history", name])
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            [c[0].to_string(), c[2].to_string(), c[3].to_string()]
        })
        .collect()
}

fn short(rev: &str) -> String {
    rev[..7].to_string()
}

/// A daemon with one app synced once (its Deployment's replica running), a commit
/// with a PreSync hook waiting for the go-ahead, and the daemon killed with `kill -9`
/// while syncing that commit, its hook process running.
struct Scene {
    d: Daemon,
    /// The file that lets the hook finish.
    release: std::path::PathBuf,
    first: String,
    second: String,
    web_pid: u32,
    hook_pid: u32,
    /// The history before the crash.
    before: Vec<[String; 3]>,
    watch: Watch,
}

impl Scene {
    fn kill_mid_sync(automated: bool, hook_slow_to_stop: bool) -> Scene {
        let mut d = Daemon::new();
        let ctx = tempfile::tempdir().unwrap();
        std::fs::write(
            ctx.path().join("README"),
            "tools run from the host's PATH\n",
        )
        .unwrap();
        d.ok(&[
            "image",
            "build",
            ctx.path().to_str().unwrap(),
            "--tag",
            "tools:v1",
        ]);
        d.spawn(&["--addr", "127.0.0.1:0", "--reconciliation", "600s"]);

        let repo = d.home().join("gitops");
        let release = d.home().join("release-the-hook");
        std::fs::create_dir_all(repo.join("manifests")).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("manifests/web.yaml"), web_manifests("one")).unwrap();
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", "web"]);
        let first = git(&repo, &["rev-parse", "HEAD"]);

        // A first sync, quick: it is the history the crash must leave intact.
        d.create_app("recovery", &repo, automated);
        if !automated {
            d.ok(&["app", "sync", "recovery"]);
        }
        let web_pid = d.eventually("the web replica running", 30, || {
            let p = workload_pids(d.home(), WEB, true);
            (p.len() == 1).then(|| p[0])
        });
        let before = d.eventually("the first sync in the history", 30, || {
            let h = history(&d, "recovery");
            (!h.is_empty()).then_some(h)
        });
        assert_eq!(
            before,
            [["1".to_string(), short(&first), "Succeeded".to_string()]]
        );

        let watch = Watch::start(d.home());

        // A commit whose sync holds in PreSync until the test releases its hook.
        std::fs::write(
            repo.join("manifests/hook.yaml"),
            hook_manifest(&release, hook_slow_to_stop),
        )
        .unwrap();
        std::fs::write(repo.join("manifests/web.yaml"), web_manifests("two")).unwrap();
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", "a slow PreSync hook"]);
        let second = git(&repo, &["rev-parse", "HEAD"]);
        let client = if automated {
            d.ok(&["app", "refresh", "recovery"]);
            None
        } else {
            Some(sync_in_background(&d, "recovery", 1))
        };
        let hook_pid = d.eventually("the sync Running, its hook process started", 60, || {
            let app = d.app("recovery");
            let op = &app["status"]["operationState"];
            let hook = workload_pids(d.home(), HOOK, true);
            (op["phase"] == "Running"
                && op["message"].as_str()?.contains("PreSync")
                && hook.len() == 1)
                .then(|| hook[0])
        });

        d.kill9();
        if let Some((mut sync, out)) = client {
            let status = wait_child(&d, &mut sync, "`ferry app sync` to end with its daemon");
            assert!(
                !status.success(),
                "the sync's client cannot have seen it succeed:\n{}",
                std::fs::read_to_string(&out).unwrap_or_default()
            );
        }
        // Workloads outlive the daemon.
        assert_eq!(workload_pids(d.home(), HOOK, true), [hook_pid]);
        assert_eq!(workload_pids(d.home(), WEB, true), [web_pid]);
        Scene {
            d,
            release,
            first,
            second,
            web_pid,
            hook_pid,
            before,
            watch,
        }
    }

    /// Waits until the interrupted hook's process is replaced by a new sync's, then
    /// lets the new one finish.
    fn release_a_new_hook(&self) {
        self.d.eventually(
            "a new hook process in place of the interrupted one",
            60,
            || {
                let hook = workload_pids(self.d.home(), HOOK, true);
                (hook.len() == 1 && hook[0] != self.hook_pid).then_some(())
            },
        );
        std::fs::write(&self.release, "go\n").unwrap();
    }

    /// `ferry app sync` again, the interrupted hook replaced and the new one let go:
    /// the sync succeeds.
    fn resync_by_hand(&self) {
        let (mut sync, out) = sync_in_background(&self.d, "recovery", 2);
        self.release_a_new_hook();
        let status = wait_child(&self.d, &mut sync, "the second sync");
        assert!(
            status.success(),
            "the sync after the restart succeeds:\n{}\n{}",
            std::fs::read_to_string(&out).unwrap_or_default(),
            self.d.log_tail()
        );
    }

    /// The app Synced at the second commit by a successful sync, both syncs in the
    /// history once each, no process ever run twice at once, the replica never
    /// restarted, and nothing left running after `ferry down`.
    fn assert_recovered(mut self) {
        let d = &self.d;
        let app = d.eventually("the app Synced at the second commit", 60, || {
            let app = d.app("recovery");
            (app["status"]["operationState"]["phase"] != "Running"
                && app["status"]["sync"]["revision"] == self.second.as_str())
            .then_some(app)
        });
        assert_eq!(
            app["status"]["operationState"]["phase"], "Succeeded",
            "{:#}",
            app["status"]
        );
        assert_eq!(app["status"]["sync"]["status"], "Synced");
        assert_eq!(
            history(d, "recovery"),
            [
                ["1".to_string(), short(&self.first), "Succeeded".to_string()],
                [
                    "2".to_string(),
                    short(&self.second),
                    "Succeeded".to_string()
                ],
            ],
            "one entry per finished sync, none for the interrupted one, none twice"
        );

        let seen = self.watch.finish();
        assert_eq!(seen.most_web, 1, "the replica never ran twice: {seen:?}");
        assert_eq!(
            seen.web_pids,
            BTreeSet::from([self.web_pid]),
            "the replica was re-adopted, never restarted: {seen:?}"
        );
        assert_eq!(
            seen.most_hook, 1,
            "the hook never ran twice at once: {seen:?}"
        );
        assert_eq!(
            seen.hook_pids.len(),
            2,
            "the interrupted hook and the new sync's: {seen:?}"
        );

        self.d.down();
        assert_eq!(workload_pids(self.d.home(), "", false), Vec::<u32>::new());
    }
}

#[test]
fn a_daemon_killed_mid_sync_restarts_with_the_sync_failed_history_kept_and_nothing_run_twice() {
    let _s = serial();
    let mut s = Scene::kill_mid_sync(false, false);
    s.d.respawn();
    let d = &s.d;

    // Recorded before the new daemon answers anything: never Running again.
    let app = d.app("recovery");
    let op = &app["status"]["operationState"];
    assert_eq!(op["phase"], "Failed", "{op:#}");
    let message = op["message"].as_str().unwrap();
    assert!(
        message.contains("interrupted") && message.contains("run the sync again"),
        "{message}"
    );
    assert!(
        op["finishedAt"].as_str().is_some_and(|t| !t.is_empty()),
        "{op:#}"
    );
    assert_eq!(history(d, "recovery"), s.before, "history as it was");
    let get = d.ok(&["app", "get", "recovery"]);
    assert!(get.contains("interrupted"), "{get}");

    // The new daemon re-adopted both processes; it started neither again.
    d.eventually("the hook's pod re-adopted as Running", 30, || {
        let pods: Value = serde_json::from_str(&d.ok(&[
            "get",
            "pods",
            "-n",
            "recovery",
            "-l",
            "job-name=migrate",
            "-o",
            "json",
        ]))
        .ok()?;
        let items = pods["items"].as_array()?;
        (items.len() == 1 && items[0]["status"]["phase"] == "Running").then_some(())
    });
    assert_eq!(workload_pids(d.home(), HOOK, true), [s.hook_pid]);
    assert_eq!(workload_pids(d.home(), WEB, true), [s.web_pid]);

    // Sync again: the interrupted hook is replaced (never running beside the new
    // one), the new hook is let go, and the sync succeeds.
    s.resync_by_hand();
    s.assert_recovered();
}

#[test]
fn an_automated_sync_killed_mid_way_is_retried_once_by_the_next_daemon() {
    let _s = serial();
    let mut s = Scene::kill_mid_sync(true, false);
    s.d.respawn();
    // The next daemon records the operation interrupted and, the app being automated
    // and the commit not yet attempted to the end, syncs it again by itself.
    s.release_a_new_hook();
    s.assert_recovered();
}

/// Regression test: the previous run of a hook was deleted with background
/// propagation, so its Job was gone while its pod still stopped, and the new Job's pod
/// started beside it: a hook that takes a moment to stop (as a migration finishing its
/// step does) ran twice at once. The previous hook is now deleted in the foreground,
/// as Argo CD does, which waits for its pods.
#[test]
fn a_hook_slow_to_stop_never_runs_beside_the_next_sync_of_it() {
    let _s = serial();
    let mut s = Scene::kill_mid_sync(false, true);
    s.d.respawn();
    s.resync_by_hand();
    s.assert_recovered();
}
