//! `ferry bench push`: how soon a `git push` reaches running services.
//!
//! A real daemon (`ferry serve`, started from this binary) on a temporary
//! `FERRY_HOME`, the quickstart's manifests in a local bare repository with ferry's
//! post-receive hook (`ferry repo hook install`), an automated app on it, and N pushes
//! that each change the Deployment's pod template (an annotation), so that each one
//! rolls the pods. For each push: push → Synced, push → Healthy (the rolling update
//! done), and what the app's own start-up and the readiness probe make of the latter:
//! the start-up of the quickstart's server is measured directly in the same run.
//!
//! Whatever happens (an error, a timeout, Ctrl-C), the daemon is brought down and
//! every process of the temporary home is stopped before the command returns.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use ferry_core::parse;
use serde_json::{Value, json};

use super::up::{self, Declared};
use crate::output;

/// `ferry bench push`.
#[derive(Args, Debug)]
pub struct PushBench {
    /// A directory as `ferry up` takes it (application.yaml, manifests/, app/).
    #[arg(long, default_value = "examples/quickstart")]
    pub dir: PathBuf,
    /// Timed pushes (the medians are reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Give up on any one wait (the daemon, the first sync, one push) after this long.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "120s")]
    pub timeout: Duration,
}

/// The annotation each push sets on the pod template.
const RUN_ANNOTATION: &str = "ferry.dev/bench-push";

/// Between two polls of the daemon.
const POLL: Duration = Duration::from_millis(5);

/// Runs the benchmark.
pub fn run(b: PushBench) -> anyhow::Result<u8> {
    let stop = Interrupt::watch()?;
    let declared = Declared::load(&b.dir)?;
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home)?;
    bench(&b, &declared, tmp.path(), &home, &stop)
}

fn bench(
    b: &PushBench,
    declared: &Declared,
    tmp: &Path,
    home: &Path,
    stop: &Interrupt,
) -> anyhow::Result<u8> {
    let name = &declared.name;
    let app_dir = declared.dir.join("app");
    let tag = format!("{name}:v1");
    eprintln!("building image {tag} from {} …", app_dir.display());
    up::build_image(&home.join("images"), &app_dir, &tag)?;

    let bare = tmp.join("gitops.git");
    let work = tmp.join("work");
    up::create_repo(
        &work,
        &declared.dir.join("manifests"),
        &declared.source_path,
    )?;
    up::git(
        tmp,
        &[
            "init",
            "-q",
            "--bare",
            "-b",
            "main",
            &bare.to_string_lossy(),
        ],
    )?;
    up::git(&work, &["remote", "add", "origin", &bare.to_string_lossy()])?;
    up::git(&work, &["push", "-q", "origin", "main"])?;
    let first = up::git(&work, &["rev-parse", "HEAD"])?;

    eprintln!("starting ferry serve on {} …", home.display());
    let daemon = Daemon::start(home, b.timeout, stop)?;
    let hook = Command::new(std::env::current_exe().context("finding this executable")?)
        .args(["repo", "hook", "install"])
        .arg(&bare)
        .env("FERRY_HOME", home)
        .stdin(Stdio::null())
        .output()
        .context("running ferry repo hook install")?;
    if !hook.status.success() {
        bail!(
            "ferry repo hook install {}: {}",
            bare.display(),
            String::from_utf8_lossy(&hook.stderr).trim()
        );
    }

    let mut app = up::with_repo(&declared.app, &bare)?.value().clone();
    if app.pointer("/spec/syncPolicy/automated").is_none() {
        app["spec"]["syncPolicy"]["automated"] = json!({"prune": true});
    }
    daemon.call("POST", "/api/v1/apps", &app)?;
    let ns = app
        .pointer("/spec/destination/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_string();
    let manifests = work.join(&declared.source_path);
    let (deploy_file, deploy) = find_deployment(&manifests)?;
    let deploy_name = deploy.name().to_string();
    let deploy_path = format!("/api/v1/namespaces/{ns}/deployments/{deploy_name}");
    let selector: BTreeMap<String, Value> = deploy
        .value()
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| m.clone().into_iter().collect())
        .unwrap_or_default();
    let pods_path = format!("/api/v1/namespaces/{ns}/pods");

    eprintln!("waiting for app {name} to be Synced and Healthy …");
    let deadline = Instant::now() + b.timeout;
    daemon.until(
        deadline,
        stop,
        &format!("app {name} Synced and Healthy"),
        || {
            let v = daemon.get(&format!("/api/v1/apps/{name}"))?;
            Ok(synced_at(&v, &first) && healthy(&v))
        },
    )?;

    // Once, uncounted: the first start of the server reads its files from disk.
    startup(&app_dir, b.timeout, stop)?;
    let mut runs = Vec::new();
    for i in 1..=b.runs.max(1) {
        let stamp = change_pod_template(&deploy_file, &deploy_name, i)?;
        up::git(&work, &["commit", "-q", "-am", &format!("bench push {i}")])?;
        let rev = up::git(&work, &["rev-parse", "HEAD"])?;
        let before: Vec<String> = pods(&daemon, &pods_path, &selector)?
            .into_iter()
            .map(|p| p.name)
            .collect();
        let t0 = Instant::now();
        up::git(&work, &["push", "-q", "origin", "main"])?;
        let pushed = t0.elapsed();
        let mut run = Run {
            push: pushed,
            ..Run::default()
        };
        let mut seen: BTreeMap<String, (Option<Duration>, Option<Duration>)> = BTreeMap::new();
        let deadline = t0 + b.timeout;
        daemon.until(
            deadline,
            stop,
            &format!("push {i} Synced and rolled out"),
            || {
                let now = t0.elapsed();
                let v = daemon.get(&format!("/api/v1/apps/{name}"))?;
                if run.synced.is_none() && synced_at(&v, &rev) {
                    run.synced = Some(now);
                }
                if run.synced.is_some() && run.healthy.is_none() && healthy(&v) {
                    run.healthy = Some(now);
                }
                for p in pods(&daemon, &pods_path, &selector)? {
                    if before.contains(&p.name) {
                        continue;
                    }
                    let e = seen.entry(p.name).or_default();
                    if e.0.is_none() && p.running {
                        e.0 = Some(now);
                    }
                    if e.1.is_none() && p.ready {
                        e.1 = Some(now);
                    }
                }
                if run.rolled.is_none() && rolled_out(&daemon.get(&deploy_path)?, &stamp) {
                    run.rolled = Some(now);
                }
                Ok(run.healthy.is_some() && run.rolled.is_some())
            },
        )?;
        run.pods = seen
            .values()
            .filter_map(|&(running, ready)| Some((running?, ready?)))
            .collect();
        run.pods.sort();
        run.startup = startup(&app_dir, b.timeout, stop)?;
        output::emit(&run.line(i))?;
        runs.push(run);
    }

    let probe = deploy
        .value()
        .pointer("/spec/template/spec/containers/0/readinessProbe")
        .cloned();
    output::emit(&summary(&runs, probe.as_ref(), &b.dir))?;
    daemon.down();
    Ok(0)
}

/// The figures of one push; times from the start of `git push`.
#[derive(Debug, Default)]
struct Run {
    /// `git push` itself, including the hook that tells the daemon.
    push: Duration,
    synced: Option<Duration>,
    /// The app Healthy (after it was Synced at the pushed commit).
    healthy: Option<Duration>,
    /// The Deployment rolled out: every replica updated and available.
    rolled: Option<Duration>,
    /// The new pods: when each was first seen running and Ready.
    pods: Vec<(Duration, Duration)>,
    /// The app's own start-up, measured directly after this push.
    startup: Duration,
}

impl Run {
    /// Push → Healthy: the app Healthy at the pushed commit, its Deployment rolled
    /// out (a Healthy read before the rollout ended does not count).
    fn healthy(&self) -> Duration {
        self.healthy
            .unwrap_or_default()
            .max(self.rolled.unwrap_or_default())
    }

    /// When the app said Healthy though its Deployment had not rolled out yet.
    fn early_healthy(&self) -> Option<Duration> {
        let (h, r) = (self.healthy?, self.rolled?);
        (h + Duration::from_millis(100) < r).then_some(h)
    }

    fn line(&self, i: usize) -> String {
        let pods: Vec<String> = self
            .pods
            .iter()
            .map(|(running, ready)| secs(ready.saturating_sub(*running)))
            .collect();
        format!(
            "  push {i}: git push {} · Synced {} · Healthy {}{} · new pods running → Ready: {} · app start-up {}\n",
            ms(self.push),
            secs(self.synced.unwrap_or_default()),
            secs(self.healthy()),
            self.early_healthy()
                .map(|h| format!(
                    " (the app said Healthy at {}, before its Deployment rolled out)",
                    secs(h)
                ))
                .unwrap_or_default(),
            if pods.is_empty() {
                "none seen".to_string()
            } else {
                pods.join(", ")
            },
            secs(self.startup),
        )
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn median(mut v: Vec<Duration>) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    v[v.len() / 2]
}

fn verdict(d: Duration, target: Duration) -> &'static str {
    if d <= target { "met" } else { "missed" }
}

fn summary(runs: &[Run], probe: Option<&Value>, dir: &Path) -> String {
    let synced = median(runs.iter().filter_map(|r| r.synced).collect());
    let healthy = median(runs.iter().map(Run::healthy).collect());
    let push = median(runs.iter().map(|r| r.push).collect());
    let startup = median(runs.iter().map(|r| r.startup).collect());
    let to_ready = median(
        runs.iter()
            .flat_map(|r| r.pods.iter().map(|(run, ready)| ready.saturating_sub(*run)))
            .collect(),
    );
    // Pods rolled one after another when each new one started once the one before was Ready.
    let sequential = runs.iter().all(|r| {
        r.pods
            .windows(2)
            .all(|w| w[1].0 + Duration::from_millis(50) >= w[0].1)
    });
    let new_pods = runs.iter().map(|r| r.pods.len()).max().unwrap_or(0);
    let waiting = to_ready.saturating_sub(startup);
    let probe_text = match probe {
        Some(p) => {
            let num = |f: &str, d: i64| p.get(f).and_then(Value::as_i64).unwrap_or(d);
            format!(
                "readinessProbe periodSeconds {}, initialDelaySeconds {}",
                num("periodSeconds", 10),
                num("initialDelaySeconds", 0)
            )
        }
        None => "no readinessProbe".to_string(),
    };
    let mut out = format!(
        "{} pushes of {} to a bare repository with ferry's post-receive hook; each changes the Deployment's pod template\n",
        runs.len(),
        dir.display()
    );
    out.push_str(&format!(
        "  push → Synced,  median: {:>7}   (target ≤ 1 s: {}; git push itself {})\n",
        secs(synced),
        verdict(synced, Duration::from_secs(1)),
        ms(push)
    ));
    out.push_str(&format!(
        "  push → Healthy, median: {:>7}   (target ≤ 3 s: {})\n",
        secs(healthy),
        verdict(healthy, Duration::from_secs(3))
    ));
    out.push_str(&format!(
        "    the app's start-up (python3 server.py spawned → /health 200, measured directly), median: {}\n",
        secs(startup)
    ));
    out.push_str(&format!(
        "    a new pod running → Ready, median: {} ({probe_text}); of that, waiting for the probe beyond start-up: {}\n",
        secs(to_ready),
        secs(waiting)
    ));
    out.push_str(&format!(
        "    new pods per push: {new_pods}, {}\n",
        if sequential && new_pods > 1 {
            "one after another (each waits for the one before to be Ready)"
        } else {
            "overlapping"
        }
    ));
    out
}

/// The file of `manifests` holding the Deployment (the first found), and it.
fn find_deployment(manifests: &Path) -> anyhow::Result<(PathBuf, ferry_core::Object)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(manifests)
        .with_context(|| format!("reading {}", manifests.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
        })
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f)?;
        let objects = parse::parse_str(&text, &f.display().to_string())?;
        if let Some(d) = objects.into_iter().find(|o| o.kind() == "Deployment") {
            return Ok((f, d));
        }
    }
    bail!(
        "no Deployment in {}: the bench changes a Deployment's pod template",
        manifests.display()
    )
}

/// Sets the run's annotation on the pod template of the Deployment `name` in `file`;
/// returns its value.
fn change_pod_template(file: &Path, name: &str, run: usize) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(file)?;
    let mut docs: Vec<Value> = parse::parse_str(&text, &file.display().to_string())?
        .into_iter()
        .map(|o| o.value().clone())
        .collect();
    let stamp = format!(
        "{run}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
    );
    let d = docs
        .iter_mut()
        .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == name)
        .with_context(|| format!("Deployment {name} left {}", file.display()))?;
    d["spec"]["template"]["metadata"]["annotations"][RUN_ANNOTATION] = json!(stamp);
    std::fs::write(file, parse::to_yaml_stream(docs.iter()))
        .with_context(|| format!("writing {}", file.display()))?;
    Ok(stamp)
}

fn synced_at(app: &Value, rev: &str) -> bool {
    app.pointer("/status/sync/status") == Some(&json!("Synced"))
        && app.pointer("/status/sync/revision").and_then(Value::as_str) == Some(rev)
}

fn healthy(app: &Value) -> bool {
    app.pointer("/status/health/status") == Some(&json!("Healthy"))
}

/// The Deployment's template is the one stamped `stamp`, and every replica of it is
/// updated and available, no other replica left.
fn rolled_out(d: &Value, stamp: &str) -> bool {
    let n = |p: &str| d.pointer(p).and_then(Value::as_i64).unwrap_or(-1);
    let want = n("/spec/replicas").max(1);
    let ours = d
        .pointer("/spec/template/metadata/annotations")
        .and_then(|a| a.get(RUN_ANNOTATION))
        .and_then(Value::as_str)
        == Some(stamp);
    ours && n("/status/observedGeneration") >= n("/metadata/generation")
        && n("/status/updatedReplicas") == want
        && n("/status/availableReplicas") == want
        && n("/status/replicas") == want
}

struct PodSeen {
    name: String,
    running: bool,
    ready: bool,
}

/// The pods matching `selector`, not being deleted.
fn pods(
    daemon: &Daemon,
    path: &str,
    selector: &BTreeMap<String, Value>,
) -> anyhow::Result<Vec<PodSeen>> {
    let list = daemon.get(path)?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| {
            p.pointer("/metadata/deletionTimestamp").is_none()
                && selector
                    .iter()
                    .all(|(k, v)| p["metadata"]["labels"].get(k) == Some(v))
        })
        .map(|p| {
            let statuses = p
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array);
            PodSeen {
                name: p["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                running: statuses.is_some_and(|cs| {
                    !cs.is_empty() && cs.iter().all(|c| c.pointer("/state/running").is_some())
                }),
                ready: p
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    }),
            }
        })
        .collect())
}

/// The quickstart's server started as the runtime starts it (`python3 server.py` in
/// the app directory, the interpreter from PATH, its own port): the time from the
/// spawn to `/health` answering 200.
fn startup(app_dir: &Path, timeout: Duration, stop: &Interrupt) -> anyhow::Result<Duration> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let t0 = Instant::now();
    let child = Command::new("python3")
        .arg("server.py")
        .current_dir(app_dir)
        .env("PORT", port.to_string())
        .env("VERSION", "bench")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting python3 server.py (is python3 on PATH?)")?;
    let mut server = Reaped(child);
    let deadline = t0 + timeout;
    loop {
        if http(addr, "GET", "/health", None, None, Duration::from_secs(2))
            .is_some_and(|(c, _)| c == 200)
        {
            return Ok(t0.elapsed());
        }
        if let Ok(Some(status)) = server.0.try_wait() {
            bail!("python3 server.py exited ({status}) before answering /health");
        }
        stop.check()?;
        if Instant::now() >= deadline {
            bail!("python3 server.py did not answer /health within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A child process killed and reaped when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Set once SIGINT, SIGTERM or SIGHUP arrives: the bench then stops at its next check
/// and cleans up, instead of dying with the daemon and its workloads left running.
#[derive(Clone)]
struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    fn watch() -> anyhow::Result<Self> {
        let flag = Arc::new(AtomicBool::new(false));
        let set = flag.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("bench-signals".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                rt.block_on(async move {
                    use tokio::signal::unix::{SignalKind, signal};
                    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
                        signal(SignalKind::interrupt()),
                        signal(SignalKind::terminate()),
                        signal(SignalKind::hangup()),
                    ) else {
                        let _ = ready_tx.send(Err("cannot install signal handlers".into()));
                        return;
                    };
                    let _ = ready_tx.send(Ok(()));
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                        _ = hup.recv() => {}
                    }
                    set.store(true, Ordering::SeqCst);
                });
            })
            .context("starting the signal thread")?;
        ready_rx
            .recv()
            .context("the signal thread ended")?
            .map_err(anyhow::Error::msg)?;
        Ok(Self(flag))
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.0.load(Ordering::SeqCst) {
            bail!("interrupted; the daemon and its processes are stopped");
        }
        Ok(())
    }
}

/// `ferry serve` on the bench's home, a child of this process in a process group of
/// its own (so a Ctrl-C reaches only the bench, which then stops it). Dropping it
/// brings it down and stops every process of its home.
struct Daemon {
    child: Option<Child>,
    home: PathBuf,
    log: PathBuf,
    addr: SocketAddr,
    /// The API token of `home` (every call needs it).
    token: String,
}

impl Daemon {
    fn start(home: &Path, timeout: Duration, stop: &Interrupt) -> anyhow::Result<Self> {
        let log = home.join("serve.log");
        let child = Command::new(std::env::current_exe().context("finding this executable")?)
            .args(["serve", "--addr", "127.0.0.1:0", "--reconciliation", "600s"])
            .env("FERRY_HOME", home)
            .env("RUST_LOG", "warn")
            .env_remove("FERRY_SERVER")
            .env_remove("FERRY_TOKEN")
            .env_remove("FERRY_WEBHOOK_SECRET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(&log)
                    .with_context(|| format!("creating {}", log.display()))?,
            )
            .process_group(0)
            .spawn()
            .context("starting ferry serve")?;
        let pid = child.id();
        let mut d = Daemon {
            child: Some(child),
            home: home.to_path_buf(),
            log,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: String::new(),
        };
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(info) = ferry_server::daemon::read_info(home)
                && info.pid == pid
                && let Ok(addr) = info.addr.parse()
            {
                // Written before daemon.json.
                d.token = ferry_server::auth::read_token(home).with_context(|| {
                    format!(
                        "{} is missing though the daemon has started",
                        ferry_server::auth::token_path(home).display()
                    )
                })?;
                d.addr = addr;
                return Ok(d);
            }
            if let Some(c) = d.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                bail!("ferry serve exited ({status}):\n{}", d.log_tail());
            }
            stop.check()?;
            if Instant::now() >= deadline {
                bail!(
                    "ferry serve did not start within {timeout:?}:\n{}",
                    d.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// A JSON call to the daemon; an error unless it answers 2xx.
    fn call(&self, method: &str, path: &str, body: &Value) -> anyhow::Result<Value> {
        let body = body.to_string();
        let (code, text) = http(
            self.addr,
            method,
            path,
            Some(&body),
            Some(&self.token),
            Duration::from_secs(10),
        )
        .with_context(|| {
            format!(
                "no answer from the daemon to {method} {path}:\n{}",
                self.log_tail()
            )
        })?;
        if !(200..300).contains(&code) {
            bail!(
                "{method} {path}: the daemon answered {code}: {}",
                text.trim()
            );
        }
        serde_json::from_str(&text).with_context(|| format!("{method} {path}: not JSON: {text}"))
    }

    fn get(&self, path: &str) -> anyhow::Result<Value> {
        let (code, text) = http(
            self.addr,
            "GET",
            path,
            None,
            Some(&self.token),
            Duration::from_secs(10),
        )
        .with_context(|| {
            format!(
                "no answer from the daemon to GET {path}:\n{}",
                self.log_tail()
            )
        })?;
        if code != 200 {
            bail!("GET {path}: the daemon answered {code}: {}", text.trim());
        }
        serde_json::from_str(&text).with_context(|| format!("GET {path}: not JSON: {text}"))
    }

    /// Polls `f` until it holds; an error at `deadline`, on an interrupt, or when the
    /// daemon has exited.
    fn until(
        &self,
        deadline: Instant,
        stop: &Interrupt,
        what: &str,
        mut f: impl FnMut() -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        loop {
            if f()? {
                return Ok(());
            }
            stop.check()?;
            if Instant::now() >= deadline {
                bail!(
                    "timed out waiting for {what}; the daemon's log ends:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// `ferry down`: every workload stopped, then the daemon; killed if it does not
    /// exit within 30 s.
    fn down(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(None)) {
            let _ = http(
                self.addr,
                "POST",
                "/api/v1/down",
                Some("{}"),
                Some(&self.token),
                Duration::from_secs(30),
            );
            let deadline = Instant::now() + Duration::from_secs(30);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        stop_processes_under(&self.home);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// SIGKILLs, by pid, every process whose working directory is under `home`: the
/// workloads of that home's runtime run in their unpacked images there.
fn stop_processes_under(home: &Path) {
    let Ok(home) = std::fs::canonicalize(home) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == std::process::id() as i32 {
            continue;
        }
        if std::fs::read_link(e.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(&home)) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// One HTTP/1.1 request to `addr` (a JSON body, the daemon's API `token`) with every
/// step bounded by `timeout`; the status and body, or `None` when the connection or
/// the answer fails.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
    timeout: Duration,
) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    let body = body.unwrap_or("");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:")
            && l.to_ascii_lowercase().contains("chunked")
    });
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_string()
    };
    Some((code, body))
}

/// The body of a chunked HTTP/1.1 answer.
fn dechunk(mut rest: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let n = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if n == 0 {
            return Some(out);
        }
        out.push_str(after.get(..n)?);
        rest = after.get(n..)?.strip_prefix("\r\n")?;
    }
}
