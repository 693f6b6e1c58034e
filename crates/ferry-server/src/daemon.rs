//! The daemon's lifecycle: one per `FERRY_HOME` (an advisory lock on
//! `daemon.lock`), its address in `daemon.json` for the CLI, the runtime started
//! under it, and the way it ends — SIGTERM/SIGINT leave workloads running for the
//! next daemon to re-adopt, `POST /api/v1/down` stops them first.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ferry_engine::{Engine, EngineConfig};
use ferry_git::RepoCache;
use ferry_runtime::config::ConnectionLimits;
use ferry_runtime::target::LocalTarget;
use ferry_runtime::{Runtime, RuntimeConfig};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{AppState, router};
use crate::error::Error;

/// What `FERRY_HOME/daemon.json` records about the running daemon, and what
/// `GET /api/v1/info` answers: the CLI compares the two before a destructive call, so
/// that it never stops a daemon that merely took over the address (or pid) of this
/// home's dead one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonInfo {
    /// Random, new at every start: which daemon this is.
    #[serde(default)]
    pub id: String,
    /// The daemon's `FERRY_HOME`.
    #[serde(default)]
    pub home: PathBuf,
    /// `127.0.0.1:7171`: where the API listens.
    pub addr: String,
    /// The daemon's process id.
    pub pid: u32,
    /// ferry's version.
    #[serde(default)]
    pub version: String,
    /// How pods run: `container` or `process`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub isolation: String,
    /// Why, in words (the runc version, or why not containers).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub isolation_reason: String,
}

/// `FERRY_HOME/daemon.json`.
pub fn info_path(home: &Path) -> PathBuf {
    home.join("daemon.json")
}

/// `FERRY_HOME/daemon.lock`: held (flock) by the running daemon.
pub fn lock_path(home: &Path) -> PathBuf {
    home.join("daemon.lock")
}

/// Reads `daemon.json`, if there is a readable one.
pub fn read_info(home: &Path) -> Option<DaemonInfo> {
    let text = std::fs::read_to_string(info_path(home)).ok()?;
    serde_json::from_str(&text).ok()
}

/// How to run the daemon.
#[derive(Clone, Debug)]
pub struct DaemonOptions {
    /// `FERRY_HOME`.
    pub home: PathBuf,
    /// Where to serve the API; port 0 picks a free one.
    pub addr: SocketAddr,
    /// How often apps' repositories are fetched (default: Argo's 120 s).
    pub reconciliation: Option<Duration>,
    /// Apps refreshed at once (default: Argo's `--status-processors`, 20).
    pub status_processors: Option<usize>,
    /// Automated syncs run at once (default: Argo's `--operation-processors`, 10).
    pub operation_processors: Option<usize>,
    /// How pods run (`--isolation`); `None` is processes.
    pub isolation: Option<ferry_runtime::kubelet::Isolation>,
}

/// Takes the daemon lock of `home`, or says who holds it.
fn lock(home: &Path) -> Result<Flock<File>, Error> {
    let path = lock_path(home);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| Error::Io {
            what: "opening",
            path: path.clone(),
            source,
        })?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
        if errno == nix::errno::Errno::EWOULDBLOCK {
            let running = match read_info(home) {
                Some(i) => format!("pid {}, listening on {}", i.pid, i.addr),
                None => format!("it holds {}", path.display()),
            };
            Error::AlreadyRunning {
                home: home.to_path_buf(),
                running,
            }
        } else {
            Error::Io {
                what: "locking",
                path,
                source: std::io::Error::from(errno),
            }
        }
    })
}

fn write_info(home: &Path, info: &DaemonInfo) -> Result<(), Error> {
    let path = info_path(home);
    let tmp = home.join(".daemon.json.tmp");
    let body = serde_json::to_string_pretty(info).unwrap_or_default();
    std::fs::write(&tmp, body + "\n")
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|source| Error::Io {
            what: "writing",
            path,
            source,
        })
}

/// Waits for SIGTERM or SIGINT.
async fn terminated() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers; stop the daemon with 'ferry down'");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// A started daemon: the lock held, the API bound, the runtime and the engine
/// running, `daemon.json` written. [`Daemon::serve`] serves until a signal or
/// `ferry down`; `ferry up` uses the parts in between.
pub struct Daemon {
    /// The embedded runtime.
    pub runtime: Arc<Runtime>,
    /// The app controller.
    pub engine: Arc<Engine>,
    /// Where the API listens.
    pub addr: SocketAddr,
    /// Cancel to stop the daemon (as a signal does: workloads keep running).
    pub shutdown: CancellationToken,
    home: PathBuf,
    listener: TcpListener,
    state: AppState,
    info: DaemonInfo,
    engine_task: tokio::task::JoinHandle<()>,
    _lock: Flock<File>,
}

/// The engine's timing for a daemon: Argo's defaults, with `reconciliation` when
/// given (and then a jitter of at most half of it, so a short interval stays short).
pub fn engine_config(reconciliation: Option<Duration>) -> EngineConfig {
    let mut config = EngineConfig::default();
    if let Some(r) = reconciliation {
        config.reconciliation = r;
        config.jitter = config.jitter.min(r / 2);
    }
    config
}

/// Starts the daemon: takes the lock, binds the API, starts the runtime (re-adopting
/// the workloads of an earlier daemon) and the engine over it, and writes
/// `daemon.json`.
pub async fn start(opts: DaemonOptions) -> Result<Daemon, Error> {
    crate::listen::raise_fd_limit();
    std::fs::create_dir_all(&opts.home).map_err(|source| Error::Io {
        what: "creating",
        path: opts.home.clone(),
        source,
    })?;
    let lock = lock(&opts.home)?;
    let listener = TcpListener::bind(opts.addr)
        .await
        .map_err(|source| Error::Bind {
            addr: opts.addr,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: opts.addr,
        source,
    })?;
    let mut config = RuntimeConfig::new(&opts.home);
    let requested = opts
        .isolation
        .unwrap_or(ferry_runtime::kubelet::Isolation::Process);
    config.isolation = ferry_runtime::kubelet::decide_isolation(&opts.home, requested).await?;
    tracing::info!("--isolation {requested}: {}", config.isolation.reason);
    let runtime = Runtime::start(config).await?;
    let shutdown = CancellationToken::new();
    let db = match runtime.cluster.db() {
        Some(db) => db.clone(),
        None => Arc::new(
            ferry_store::Db::open(&runtime.config.db_path()).map_err(ferry_engine::Error::from)?,
        ),
    };
    let target = Arc::new(LocalTarget::new(runtime.clone()));
    let repos = Arc::new(RepoCache::new(opts.home.join("repos")));
    let engine = Arc::new(Engine::new(
        db,
        target,
        repos,
        EngineConfig {
            status_processors: opts
                .status_processors
                .unwrap_or(EngineConfig::default().status_processors),
            operation_processors: opts
                .operation_processors
                .unwrap_or(EngineConfig::default().operation_processors),
            ..engine_config(opts.reconciliation)
        },
    )?);
    for (url, entry) in crate::repos::load(&opts.home)? {
        engine.set_repo_credentials(&url, entry.into());
    }
    let engine_task = tokio::spawn(engine.clone().run(shutdown.clone()));
    let mut state = AppState::new(runtime.clone(), engine.clone(), shutdown.clone());
    // Asked for on loopback too: other users of this host, and browser pages, reach
    // 127.0.0.1 as well (see crate::auth).
    let token = crate::auth::load_or_create(&opts.home)?;
    state.auth = crate::auth::Policy::daemon(token, addr);
    tracing::info!(
        "API calls need the token in {} (the CLI sends it)",
        crate::auth::token_path(&opts.home).display()
    );
    state.webhook_secret = std::env::var("FERRY_WEBHOOK_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
        .map(|s| Arc::from(s.into_bytes()));
    let id = crate::auth::random_hex(16).map_err(|source| Error::Io {
        what: "reading",
        path: PathBuf::from("/dev/urandom"),
        source,
    })?;
    let info = DaemonInfo {
        id,
        home: std::path::absolute(&opts.home).unwrap_or_else(|_| opts.home.clone()),
        addr: addr.to_string(),
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        isolation: runtime.config.isolation.isolation.to_string(),
        isolation_reason: runtime.config.isolation.reason.clone(),
    };
    state.instance = Some(Arc::new(info.clone()));
    write_info(&opts.home, &info)?;
    tracing::info!(
        "ferry daemon serving http://{addr} for FERRY_HOME {} (pid {})",
        opts.home.display(),
        info.pid
    );
    Ok(Daemon {
        runtime,
        engine,
        addr,
        shutdown,
        home: opts.home,
        listener,
        state,
        info,
        engine_task,
        _lock: lock,
    })
}

impl Daemon {
    /// Whether `POST /api/v1/down` has stopped the workloads.
    pub fn downed(&self) -> Arc<AtomicBool> {
        self.state.downed.clone()
    }

    /// Requires webhook bodies signed with `secret` (replacing `FERRY_WEBHOOK_SECRET`,
    /// which [`start`] reads); `None` takes them unsigned.
    pub fn set_webhook_secret(&mut self, secret: Option<Vec<u8>>) {
        self.state.webhook_secret = secret.map(Arc::from);
    }

    /// Whether API calls need the token (always, for a started daemon).
    pub fn requires_token(&self) -> bool {
        self.state.auth.requires_token()
    }

    /// What `daemon.json` records about this daemon.
    pub fn info(&self) -> &DaemonInfo {
        &self.info
    }

    /// Serves until a signal or `ferry down`, then stops the engine and the runtime's
    /// loops (after a signal the workloads keep running) and removes `daemon.json`.
    /// The API has the default [`ConnectionLimits::api`], with `FERRY_API_*` from
    /// the environment (see [`ConnectionLimits::with_env`]).
    pub async fn serve(self) -> Result<(), Error> {
        self.serve_with(ConnectionLimits::api().with_env("FERRY_API"))
            .await
    }

    /// [`Daemon::serve`] with the API's timeouts and connection caps.
    pub async fn serve_with(self, limits: ConnectionLimits) -> Result<(), Error> {
        let Daemon {
            runtime,
            addr,
            shutdown,
            home,
            listener,
            state,
            info,
            engine_task,
            _lock,
            ..
        } = self;
        let downed = state.downed.clone();
        let signalled = {
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                tokio::select! {
                    sig = terminated() => {
                        tracing::info!("{sig}: stopping the daemon; workloads keep running for the next 'ferry serve' to re-adopt");
                        shutdown.cancel();
                    }
                    _ = shutdown.cancelled() => {}
                }
            })
        };
        let served = crate::listen::serve(listener, router(state), limits, shutdown.clone()).await;
        shutdown.cancel();
        let _ = signalled.await;
        let _ = engine_task.await;
        runtime.stop().await;
        if downed.load(Ordering::SeqCst) {
            tracing::info!("ferry down: every workload stopped; daemon exiting");
        } else {
            tracing::info!("runtime loops stopped; workloads still running");
        }
        if read_info(&home).is_some_and(|i| i.pid == info.pid) {
            let _ = std::fs::remove_file(info_path(&home));
        }
        served.map_err(|source| Error::Io {
            what: "serving on",
            path: PathBuf::from(addr.to_string()),
            source,
        })
    }
}

/// `GET /api/v1/info`: which daemon answers (what `daemon.json` records); 404 for an
/// API built without a daemon.
pub(crate) async fn info(
    axum::extract::State(s): axum::extract::State<AppState>,
) -> Result<axum::Json<DaemonInfo>, crate::ApiError> {
    s.instance
        .as_deref()
        .cloned()
        .map(axum::Json)
        .ok_or_else(|| crate::ApiError::not_found("this API runs without a daemon"))
}

/// Runs the daemon until a signal or `ferry down`: [`start`], then [`Daemon::serve`].
pub async fn run(opts: DaemonOptions) -> Result<(), Error> {
    start(opts).await?.serve().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_home_is_refused_with_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let _held = lock(dir.path()).unwrap();
        write_info(
            dir.path(),
            &DaemonInfo {
                id: "x".into(),
                home: dir.path().to_path_buf(),
                addr: "127.0.0.1:9".into(),
                pid: 42,
                version: String::new(),
                isolation: String::new(),
                isolation_reason: String::new(),
            },
        )
        .unwrap();
        let err = lock(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("already running") && err.contains("pid 42"),
            "{err}"
        );
        drop(_held);
        assert!(lock(dir.path()).is_ok());
    }
}
