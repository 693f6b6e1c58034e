//! The shared harness: a real Git repository (working clone plus a bare remote reached
//! by `file://`), the runtime's in-memory object store as the target with its
//! controllers and a fake kubelet running, and an engine with short intervals.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_core::argo::Application;
use ferry_core::target::{ApplyOptions, BoxFuture, Propagation, Selector, Target, TargetError};
use ferry_core::{Object, ObjectKey};
use ferry_engine::{AppView, Backoff, Engine, EngineConfig};
use ferry_git::RepoCache;
use ferry_runtime::Cluster;
use ferry_runtime::cluster;
use ferry_store::Db;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A fixture file's text.
pub fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A Deployment `web` with `replicas` and `image`, from the fixture.
pub fn deployment(replicas: u32, image: &str) -> String {
    fixture("deployment.yaml")
        .replace("replicas: 1", &format!("replicas: {replicas}"))
        .replace("registry.local/web:1", image)
}

/// A ConfigMap named `name` with one key, optionally annotated.
pub fn config_map(name: &str, value: &str, annotations: &[(&str, &str)]) -> String {
    let mut out = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n");
    if !annotations.is_empty() {
        out.push_str("  annotations:\n");
        for (k, v) in annotations {
            out.push_str(&format!("    {k}: {v:?}\n"));
        }
    }
    out.push_str(&format!("data:\n  value: {value:?}\n"));
    out
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A working repository and its bare remote.
pub struct GitRepo {
    work: PathBuf,
    remote: PathBuf,
}

impl GitRepo {
    /// A repository whose first commit holds `files` (path, content).
    pub fn new(root: &Path, files: &[(&str, &str)]) -> Self {
        let work = root.join("work");
        let remote = root.join("remote.git");
        std::fs::create_dir_all(&work).expect("mkdir");
        git(&work, &["init", "-q", "-b", "main"]);
        let repo = GitRepo { work, remote };
        repo.write(files, &[]);
        git(&repo.work, &["add", "-A"]);
        git(&repo.work, &["commit", "-q", "-m", "initial"]);
        git(root, &["clone", "-q", "--bare", "work", "remote.git"]);
        git(&repo.work, &["remote", "add", "origin", &repo.url()]);
        repo
    }

    /// The remote's `file://` URL.
    pub fn url(&self) -> String {
        format!("file://{}", self.remote.display())
    }

    fn write(&self, files: &[(&str, &str)], remove: &[&str]) {
        for (path, text) in files {
            let p = self.work.join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, text).expect("write");
        }
        for path in remove {
            std::fs::remove_file(self.work.join(path)).expect("remove");
        }
    }

    /// Commits the changes and pushes them; returns the commit.
    pub fn commit(&self, files: &[(&str, &str)], remove: &[&str], message: &str) -> String {
        self.write(files, remove);
        git(&self.work, &["add", "-A"]);
        git(
            &self.work,
            &["commit", "-q", "--allow-empty", "-m", message],
        );
        git(&self.work, &["push", "-q", "origin", "main"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// Makes the remote unreachable.
    pub fn break_remote(&self) {
        std::fs::remove_dir_all(&self.remote).expect("remove remote");
    }
}

/// One thing the target was asked to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A (non-dry-run) apply by the engine: `Kind/name`, and whether every Deployment
    /// was available at that moment.
    Apply(String, bool),
    /// A delete: `Kind/name`.
    Delete(String),
}

/// The runtime's object store as a [`Target`], recording what the engine does.
pub struct TestTarget {
    pub cluster: Arc<Cluster>,
    pub events: Mutex<Vec<Event>>,
}

fn target_error(e: ferry_runtime::Error) -> TargetError {
    match e {
        ferry_runtime::Error::Conflict(m) => TargetError::Conflict(m),
        other => TargetError::Invalid(other.to_string()),
    }
}

fn all_deployments_available(c: &Cluster) -> bool {
    c.list(Some("Deployment"), None).iter().all(|d| {
        let want = d
            .value()
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let have = d
            .value()
            .pointer("/status/availableReplicas")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        have >= want
    })
}

impl TestTarget {
    /// The events so far, as `apply Kind/name` / `delete Kind/name` strings.
    pub fn log(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| match e {
                Event::Apply(k, _) => format!("apply {k}"),
                Event::Delete(k) => format!("delete {k}"),
            })
            .collect()
    }

    pub fn clear(&self) {
        self.events.lock().unwrap().clear();
    }
}

impl Target for TestTarget {
    fn name(&self) -> &str {
        "local"
    }

    fn apply<'a>(
        &'a self,
        obj: &'a Object,
        opts: &'a ApplyOptions,
    ) -> BoxFuture<'a, Result<Object, TargetError>> {
        Box::pin(async move {
            if !opts.dry_run {
                let ready = all_deployments_available(&self.cluster);
                self.events.lock().unwrap().push(Event::Apply(
                    format!("{}/{}", obj.kind(), obj.name()),
                    ready,
                ));
            }
            let o = cluster::ApplyOptions {
                field_manager: opts.field_manager.clone(),
                force: opts.force,
                dry_run: opts.dry_run,
            };
            self.cluster.apply(obj, &o).map_err(target_error)
        })
    }

    fn get<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<Option<Object>, TargetError>> {
        Box::pin(async move { Ok(self.cluster.get(key)) })
    }

    fn list<'a>(
        &'a self,
        selector: &'a Selector,
    ) -> BoxFuture<'a, Result<Vec<Object>, TargetError>> {
        Box::pin(async move {
            Ok(self
                .cluster
                .list(selector.kind.as_deref(), selector.namespace.as_deref())
                .into_iter()
                .filter(|o| selector.matches(o))
                .collect())
        })
    }

    fn delete<'a>(
        &'a self,
        key: &'a ObjectKey,
        propagation: Propagation,
    ) -> BoxFuture<'a, Result<bool, TargetError>> {
        Box::pin(async move {
            self.events
                .lock()
                .unwrap()
                .push(Event::Delete(format!("{}/{}", key.kind, key.name)));
            let p = match propagation {
                Propagation::Orphan => cluster::Propagation::Orphan,
                _ => cluster::Propagation::Background,
            };
            self.cluster.delete(key, p).map_err(target_error)
        })
    }

    fn changed(&self) -> BoxFuture<'_, ()> {
        let mut rx = self.cluster.changed();
        Box::pin(async move {
            rx.borrow_and_update();
            let _ = rx.changed().await;
        })
    }
}

/// Plays the kubelet without processes: pods become Ready (Jobs' pods Succeeded,
/// or Failed for an image ending in `:fail`); an image ending in `:bad` is stuck in
/// `ImagePullBackOff`; deleted pods are finalised.
fn fake_kubelet(c: &Cluster) {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    for p in c.list(Some("Pod"), None) {
        if p.is_being_deleted() {
            let _ = c.finalize(&p.key());
            continue;
        }
        if p.value().pointer("/status/phase").is_some() {
            continue;
        }
        let image = p
            .value()
            .pointer("/spec/containers/0/image")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let container = p
            .value()
            .pointer("/spec/containers/0/name")
            .and_then(Value::as_str)
            .unwrap_or("main")
            .to_string();
        let by_job = p
            .value()
            .pointer("/metadata/ownerReferences/0/kind")
            .and_then(Value::as_str)
            == Some("Job");
        let status = if image.ends_with(":bad") {
            json!({"phase": "Pending", "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now}],
                "containerStatuses": [{"name": container, "ready": false, "restartCount": 0, "image": image,
                    "state": {"waiting": {"reason": "ImagePullBackOff", "message": format!("Back-off pulling image \"{image}\"")}}}]})
        } else if by_job {
            let ok = !image.ends_with(":fail");
            json!({"phase": if ok {"Succeeded"} else {"Failed"},
                "containerStatuses": [{"name": container, "ready": false, "restartCount": 0, "image": image,
                    "state": {"terminated": {"exitCode": if ok {0} else {1}, "reason": if ok {"Completed"} else {"Error"}}}}]})
        } else {
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
                "containerStatuses": [{"name": container, "ready": true, "restartCount": 0, "image": image,
                    "state": {"running": {"startedAt": now}}}]})
        };
        let _ = c.update_status(&p.key(), status);
    }
}

/// Everything one test needs.
pub struct World {
    pub dir: tempfile::TempDir,
    pub repo: GitRepo,
    pub target: Arc<TestTarget>,
    pub engine: Arc<Engine>,
    pub repos: Arc<RepoCache>,
    pub db: Arc<Db>,
    pub shutdown: CancellationToken,
}

/// The engine's timing in tests: fast, but with room for real `git` fetches.
pub fn config() -> EngineConfig {
    EngineConfig {
        reconciliation: Duration::from_millis(400),
        jitter: Duration::ZERO,
        self_heal_backoff: Backoff {
            base: Duration::from_millis(100),
            factor: 2,
            max: Duration::from_secs(1),
        },
        sync_timeout: Duration::from_secs(15),
        compare_interval: Duration::from_millis(50),
        poll_interval: Duration::from_millis(50),
        ..EngineConfig::default()
    }
}

impl World {
    /// A repository with `files`, a running target, and an engine with `run` started.
    pub fn new(files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = GitRepo::new(dir.path(), files);
        let db = Arc::new(Db::open(&dir.path().join("ferry.db")).expect("db"));
        Self::with(dir, repo, db, Arc::new(Cluster::in_memory()))
    }

    /// The same, over given parts (for restarts).
    pub fn with(dir: tempfile::TempDir, repo: GitRepo, db: Arc<Db>, cluster: Arc<Cluster>) -> Self {
        let target = Arc::new(TestTarget {
            cluster: cluster.clone(),
            events: Mutex::new(Vec::new()),
        });
        let shutdown = CancellationToken::new();
        let c = cluster.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let mut changed = c.changed();
            loop {
                ferry_runtime::controller::reconcile_all(&c);
                fake_kubelet(&c);
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = changed.changed() => {}
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
            }
        });
        let repos = Arc::new(RepoCache::new(dir.path().join("repos")));
        let engine = Arc::new(
            Engine::new(db.clone(), target.clone(), repos.clone(), config()).expect("engine"),
        );
        tokio::spawn(engine.clone().run(shutdown.clone()));
        World {
            dir,
            repo,
            target,
            engine,
            repos,
            db,
            shutdown,
        }
    }

    /// An Application for this world's repository.
    pub fn app(&self, name: &str, path: &str, sync_policy: Value) -> Application {
        let mut v = json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": name},
            "spec": {
                "project": "default",
                "source": {"repoURL": self.repo.url(), "path": path, "targetRevision": "main"},
                "destination": {"name": "in-cluster", "namespace": "shop"},
            }
        });
        if !sync_policy.is_null() {
            v["spec"]["syncPolicy"] = sync_policy;
        }
        serde_json::from_value(v).expect("application")
    }

    /// A live object.
    pub fn live(&self, kind: &str, name: &str) -> Option<Object> {
        let group = if kind == "Deployment" {
            "apps"
        } else if kind == "Job" {
            "batch"
        } else {
            ""
        };
        self.target
            .cluster
            .get(&ObjectKey::new(group, kind, "shop", name))
    }

    /// A live Deployment's `spec.replicas`.
    pub fn replicas(&self, name: &str) -> Option<i64> {
        self.live("Deployment", name)?
            .value()
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
    }

    /// The app.
    pub fn view(&self, name: &str) -> AppView {
        self.engine.get_app(name).expect("get").expect("app exists")
    }

    /// Stops the engine and the controllers.
    pub fn stop(&self) {
        self.shutdown.cancel();
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

impl World {
    /// A daemon restart: stops this world's engine and controllers and starts new
    /// ones over the same database, target objects and repository.
    pub fn restart(mut self) -> World {
        self.stop();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
        let repo = std::mem::replace(
            &mut self.repo,
            GitRepo {
                work: PathBuf::new(),
                remote: PathBuf::new(),
            },
        );
        World::with(dir, repo, self.db.clone(), self.target.cluster.clone())
    }
}
