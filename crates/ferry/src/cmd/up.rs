//! `ferry up DIR`: the one-command start. Serves in the foreground and loads what DIR
//! declares: the image built from `DIR/app`, a local GitOps repository made from
//! `DIR/manifests`, and the Application in `DIR/application.yaml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use ferry_core::ObjectKey;
use ferry_engine::{AppView, OperationPhase};
use serde_json::Value;

use crate::home;
use crate::output::{EXIT_FINDING, EXIT_OK};

/// Start ferry and the app a directory declares, then keep serving until Ctrl-C.
///
/// DIR holds `application.yaml` (an Argo CD Application), `manifests/` (what goes in
/// Git) and optionally `app/` (a directory built into the image `NAME:v1`, run with
/// `python3 server.py` and `VERSION=v1`). The GitOps repository is created once at
/// FERRY_HOME/gitops/<DIR's name>; edit and commit there, and ferry syncs within
/// seconds. Ctrl-C stops the daemon and leaves the workloads for the next
/// `ferry serve`; `ferry down` stops them.
#[derive(Args, Debug)]
pub struct UpArgs {
    /// The directory to start (e.g. examples/quickstart).
    pub dir: PathBuf,
    /// Address for the API; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:7171", value_name = "HOST:PORT")]
    pub addr: SocketAddr,
    /// How often the app's repository is fetched.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub reconciliation: Duration,
    /// Stop the workloads and exit 0 once the app is Synced and Healthy.
    #[arg(long)]
    pub exit_when_healthy: bool,
    /// How long the app may take to become Synced and Healthy (exit 1 after).
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
}

/// Runs `ferry up`.
pub fn run(args: UpArgs) -> anyhow::Result<u8> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let Declared {
        dir,
        app_file,
        app,
        name,
        source_path,
    } = Declared::load(&args.dir)?;
    let home = home::ferry_home();

    if dir.join("app").is_dir() {
        let tag = format!("{name}:v1");
        say(&format!("building image {tag} …"));
        build_image(&home::images_dir(), &dir.join("app"), &tag)?;
        say(" done\n");
    }
    let dir_name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.clone());
    let repo = home.join("gitops").join(&dir_name);
    if repo.join(".git").is_dir() {
        say(&format!("gitops repo {} (kept)\n", repo.display()));
    } else {
        create_repo(&repo, &dir.join("manifests"), &source_path)?;
        say(&format!("gitops repo {} (created)\n", repo.display()));
    }
    let app = with_repo(&app, &repo)?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let opts = ferry_server::DaemonOptions {
        home,
        addr: args.addr,
        reconciliation: Some(args.reconciliation),
        status_processors: None,
        operation_processors: None,
        isolation: None,
    };
    let code = rt.block_on(async move {
        let daemon = ferry_server::start(opts).await?;
        let engine = daemon.engine.clone();
        let runtime = daemon.runtime.clone();
        let shutdown = daemon.shutdown.clone();
        let downed = daemon.downed();
        let addr = daemon.addr;
        let served = tokio::spawn(daemon.serve());
        let stop = |down: bool| {
            let runtime = runtime.clone();
            let shutdown = shutdown.clone();
            let downed = downed.clone();
            async move {
                if down {
                    runtime.down().await;
                    downed.store(true, Ordering::SeqCst);
                }
                shutdown.cancel();
            }
        };
        for w in engine
            .create_app_from_object(&app, true)
            .with_context(|| format!("registering the app from {}", app_file.display()))?
        {
            eprintln!("warning: {w}");
        }
        let healthy = watch_until_healthy(&engine, &name, args.timeout, &shutdown).await;
        let code = match healthy {
            Ok(view) => {
                let ns = view.spec.destination.namespace.clone();
                if let Some(url) = service_url(&runtime, &ns, &name) {
                    say(&format!("service: {url}\n"));
                }
                say(&format!("api: http://{addr}/api/v1\n"));
                say(&format!(
                    "edit the manifests in {}, commit, and ferry syncs within seconds\n",
                    repo.display()
                ));
                if args.exit_when_healthy {
                    stop(true).await;
                } else {
                    say("serving; Ctrl-C stops the daemon (workloads keep running), `ferry down` stops everything\n");
                }
                EXIT_OK
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                stop(args.exit_when_healthy).await;
                EXIT_FINDING
            }
        };
        served.await.context("the daemon task failed")??;
        anyhow::Ok(code)
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    code
}

/// What a directory for `ferry up` declares.
pub(crate) struct Declared {
    /// The directory, absolute.
    pub dir: PathBuf,
    /// `DIR/application.yaml`.
    pub app_file: PathBuf,
    /// The Application in it.
    pub app: ferry_core::Object,
    /// The app's name.
    pub name: String,
    /// Where its manifests go in the GitOps repository (`spec.source.path`).
    pub source_path: String,
}

impl Declared {
    /// Reads `DIR/application.yaml`.
    pub(crate) fn load(dir: &Path) -> anyhow::Result<Self> {
        let dir = std::fs::canonicalize(dir)
            .with_context(|| format!("{}: no such directory", dir.display()))?;
        let app_file = dir.join("application.yaml");
        let text = std::fs::read_to_string(&app_file).with_context(|| {
            format!(
                "reading {}: ferry up needs an Argo CD Application there",
                app_file.display()
            )
        })?;
        let mut objects = ferry_core::parse::parse_str(&text, &app_file.display().to_string())?;
        let Some(pos) = objects.iter().position(|o| o.kind() == "Application") else {
            bail!("{}: no Application in this file", app_file.display());
        };
        let app = objects.swap_remove(pos);
        let name = app.name().to_string();
        let source_path = app
            .value()
            .pointer("/spec/source/path")
            .and_then(Value::as_str)
            .unwrap_or(".")
            .to_string();
        Ok(Self {
            dir,
            app_file,
            app,
            name,
            source_path,
        })
    }
}

/// `app` with its source's `repoURL` set to the local repository `repo`.
pub(crate) fn with_repo(
    app: &ferry_core::Object,
    repo: &Path,
) -> anyhow::Result<ferry_core::Object> {
    let mut doc = app.value().clone();
    doc["spec"]["source"]["repoURL"] = Value::String(repo.display().to_string());
    Ok(ferry_core::Object::from_value(doc)?)
}

fn say(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Builds `context` into the image store `dir` as `tag` (`NAME:VERSION`), run with
/// `python3 server.py` and `VERSION` set.
pub(crate) fn build_image(dir: &Path, context: &Path, tag: &str) -> anyhow::Result<()> {
    let store = ferry_oci::Store::open(dir)
        .with_context(|| format!("opening the image store {}", dir.display()))?;
    let version = tag.rsplit(':').next().unwrap_or("v1");
    let opts = ferry_oci::BuildOptions {
        context: context.to_path_buf(),
        tag: tag.to_string(),
        cmd: Some(vec!["python3".into(), "server.py".into()]),
        env: vec![format!("VERSION={version}")],
        ..ferry_oci::BuildOptions::default()
    };
    ferry_oci::build(&store, &opts)
        .with_context(|| format!("building {tag} from {}", context.display()))?;
    Ok(())
}

/// `git ARGS` in `repo` as the author `ferry`; its trimmed standard output.
pub(crate) fn git(repo: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(repo)
        .env("GIT_AUTHOR_NAME", "ferry")
        .env("GIT_AUTHOR_EMAIL", "ferry@localhost")
        .env("GIT_COMMITTER_NAME", "ferry")
        .env("GIT_COMMITTER_EMAIL", "ferry@localhost")
        .output()
        .with_context(|| format!("running git {}: is git installed?", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "git {} in {}: {}",
            args.join(" "),
            repo.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A Git repository at `repo` whose `path` holds a copy of `manifests`.
pub(crate) fn create_repo(repo: &Path, manifests: &Path, path: &str) -> anyhow::Result<()> {
    let dest = repo.join(path);
    std::fs::create_dir_all(&dest).with_context(|| format!("creating {}", dest.display()))?;
    copy_dir(manifests, &dest)?;
    git(repo, &["init", "-q", "-b", "main"])?;
    git(repo, &["add", "-A"])?;
    git(repo, &["commit", "-q", "-m", "ferry up: initial manifests"])?;
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    let entries = std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))?;
    for entry in entries {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&target)?;
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Prints each change of the app's state until it is Synced and Healthy.
async fn watch_until_healthy(
    engine: &ferry_engine::Engine,
    name: &str,
    timeout: Duration,
    shutdown: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<AppView> {
    let deadline = Instant::now() + timeout;
    let mut updates = engine.subscribe();
    let mut last = String::new();
    loop {
        updates.borrow_and_update();
        let view = engine
            .get_app(name)?
            .with_context(|| format!("app {name} disappeared"))?;
        let st = &view.status.status;
        let running = view
            .status
            .operation_state
            .as_ref()
            .is_some_and(|o| o.phase == OperationPhase::Running);
        let synced = st.sync.status == ferry_engine::SyncCode::Synced;
        let healthy = st.health.status == ferry_core::health::HealthStatus::Healthy;
        let line = if synced && healthy && !running {
            "Synced, Healthy".to_string()
        } else {
            let mut l = format!("app {name}: {}/{}", st.sync.status, st.health.status);
            if running {
                l.push_str(" → syncing");
            } else if let Some(c) = st.conditions.first() {
                l.push_str(&format!(" ({}: {})", c.kind, c.message));
            } else if !st.health.message.is_empty() {
                l.push_str(&format!(" ({})", st.health.message));
            }
            l
        };
        // Before its first comparison the app is only Unknown/Unknown: nothing to say.
        let compared = st.reconciled_at.is_some() || running;
        if compared && line != last {
            say(&format!("{line}\n"));
            last = line;
        }
        if synced && healthy && !running {
            return Ok(view);
        }
        if Instant::now() >= deadline {
            bail!(
                "app {name} is not Synced and Healthy after {}s; `ferry app get {name}` shows why",
                timeout.as_secs()
            );
        }
        tokio::select! {
            _ = updates.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.cancelled() => bail!("interrupted before app {name} became healthy"),
        }
    }
}

/// `http://127.0.0.1:PORT/` of the Service named `name` in `ns`, from its
/// `ferry.dev/host-ports` annotation (the first port).
fn service_url(runtime: &ferry_runtime::Runtime, ns: &str, name: &str) -> Option<String> {
    let svc = runtime
        .cluster
        .get(&ObjectKey::new("", "Service", ns, name))?;
    let ports = svc
        .value()
        .pointer("/metadata/annotations/ferry.dev~1host-ports")?
        .as_str()?
        .to_string();
    let map: serde_json::Map<String, Value> = serde_json::from_str(&ports).ok()?;
    let port = map.values().find_map(Value::as_u64)?;
    Some(format!("http://127.0.0.1:{port}/"))
}
