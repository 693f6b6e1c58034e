//! Running containers: [`Runtime`] prepares a bundle and starts it through runc,
//! [`Container`] is the handle to wait for, signal and stop one, and re-adoption
//! finds them again after the daemon restarts.
//!
//! # How a container is run, and why this way
//!
//! Each container is started as `runc run --keep` in the foreground, under a
//! three-line `/bin/sh` supervisor in its own process group:
//!
//! ```text
//! sh -c '"$@"; c=$?; echo "$c" > EXIT; exit "$c"' EXIT runc --root R run --keep --pid-file P ID
//! ```
//!
//! - **Exit codes.** runc in the foreground is the parent of the container's init,
//!   waits for it and exits with its code (`128 + signal` for a signal, so 137 for
//!   SIGKILL). While the daemon lives, that code reaches it through `wait` on the
//!   supervisor, its child. The supervisor also writes it to the container's `exit`
//!   file, so a daemon that was killed and restarted still learns how a container it
//!   re-adopted ended.
//! - **Surviving the daemon.** The supervisor and runc are in their own process group
//!   and hold no pipe to the daemon (output goes straight to the caller's log file,
//!   opened for appending), so `kill -9` of the daemon, or a Ctrl-C in its terminal,
//!   leaves the container, its logging and its exit-code bookkeeping running.
//! - **OOM.** `--keep` leaves the stopped container, and with it its cgroup, in place
//!   until [`Runtime::delete`]; so after the exit the cgroup's `oom_kill` counter can
//!   still be read, with no event stream to watch.
//!
//! The alternative, `runc create`/`start` detached with the daemon as
//! `PR_SET_CHILD_SUBREAPER`, was not taken: the daemon would inherit every orphan of
//! every process it starts and would have to reap them with `waitpid(-1)`, which
//! steals the exit statuses of tokio's own children; and after a daemon restart the
//! container's init is re-parented to pid 1, so its exit code is lost anyway. The cost
//! of the choice made is one idle runc process (and a shell) per running container.
//!
//! Stopping signals the container's init directly by its host pid (checked against
//! its start time, so a recycled pid is never hit): SIGTERM, then SIGKILL after the
//! grace period. Killing a pid namespace's init ends every process in it.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::bundle::{self, ContainerSpec};
use crate::cgroup;
use crate::error::{Error, IoContext, Result};
use crate::procfs;
use crate::rootfs::{self, RootfsKind, RootfsMode};
use crate::runc::{self, Runc, RuncState};
use crate::user;

/// How long runc may take to create a container before the start counts as failed.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a re-adopted container (whose supervisor is not our child) is checked.
const ADOPTED_POLL: Duration = Duration::from_millis(200);
/// How long to wait for the supervisor's exit file once the container is gone.
const EXIT_FILE_WAIT: Duration = Duration::from_secs(2);

/// The supervisor: runs runc, records its exit code in the file named by `$0`, and
/// exits with it.
const SUPERVISOR: &str = r#""$@"; c=$?; echo "$c" > "$0"; exit "$c""#;

/// Where containers live and how they are run.
///
/// Everything is under the directory given to [`Runtime::new`] (the daemon passes
/// `FERRY_HOME/runc`): runc's state in `state/` (its `--root`), one directory per
/// container in `containers/ID/` (bundle, root filesystem, `/etc` files, pid and exit
/// files).
#[derive(Clone, Debug)]
pub struct Runtime {
    runc: Runc,
    dir: PathBuf,
    cgroup_parent: String,
    rootfs_mode: RootfsMode,
    shell: PathBuf,
}

/// What this crate records about a started container, beside its bundle.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Record {
    pid: u32,
    start_ticks: i64,
    supervisor_pid: u32,
    supervisor_start_ticks: i64,
    cgroups_path: String,
    rootfs: RootfsKind,
    log: PathBuf,
}

/// A container's lifecycle state as runc reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Created, its process not yet started.
    Created,
    /// Its init process runs.
    Running,
    /// Frozen.
    Paused,
    /// Its init process has exited; the container waits for [`Runtime::delete`].
    Stopped,
    /// Something else runc said.
    Other(String),
}

impl Status {
    fn parse(s: &str) -> Status {
        match s {
            "created" => Status::Created,
            "running" => Status::Running,
            "paused" => Status::Paused,
            "stopped" => Status::Stopped,
            other => Status::Other(other.to_string()),
        }
    }
}

/// A container as [`Runtime::list`] and [`Runtime::state`] show it.
#[derive(Clone, Debug)]
pub struct ContainerInfo {
    /// The id.
    pub id: String,
    /// Its status.
    pub status: Status,
    /// Host pid of its init process (0 once stopped).
    pub pid: u32,
    /// Start time of that process in clock ticks since boot, as recorded at start.
    pub start_ticks: Option<i64>,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// When runc created it (RFC 3339).
    pub created: String,
    /// The spec's annotations.
    pub annotations: BTreeMap<String, String>,
    /// The log file its output is appended to, as recorded at start.
    pub log: Option<PathBuf>,
}

/// How a container ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    /// The exit code, `128 + signal` for a signal (137 for SIGKILL), as Kubernetes
    /// reports it.
    pub code: i32,
    /// The signal, when the code says one ended it.
    pub signal: Option<i32>,
    /// Whether the code is known (it is not when the supervisor was killed too).
    pub known: bool,
    /// Whether the kernel's OOM killer killed a process of the container
    /// (Kubernetes' `OOMKilled`).
    pub oom_killed: bool,
}

/// The output of [`Runtime::exec`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutput {
    /// The command's exit code (`128 + signal` for a signal).
    pub code: i32,
    /// What it wrote to stdout.
    pub stdout: Vec<u8>,
    /// What it wrote to stderr.
    pub stderr: Vec<u8>,
}

/// Extra settings for [`Runtime::exec`].
#[derive(Clone, Debug, Default)]
pub struct ExecOptions {
    /// Variables added to the container's environment.
    pub env: BTreeMap<String, String>,
    /// The working directory; the container's if `None`.
    pub cwd: Option<String>,
    /// Bytes fed to the command's stdin (then closed); `/dev/null` if `None`.
    pub stdin: Option<Vec<u8>>,
}

enum Supervisor {
    /// Started by this process: `wait` gives runc's exit status.
    Child(tokio::process::Child),
    /// Started by an earlier daemon: watched through `/proc` and the exit file.
    Adopted { pid: u32, start_ticks: i64 },
}

/// A started container. Dropping the handle leaves the container running (as a
/// daemon's death does); [`Runtime::adopt`] makes a new handle. Once it has exited,
/// [`Runtime::delete`] frees its cgroups, root filesystem and directory (until then
/// runc lists it as stopped, and its exit stays readable).
pub struct Container {
    id: String,
    pid: u32,
    start_ticks: i64,
    cgroups_path: String,
    exit_file: PathBuf,
    rootfs: RootfsKind,
    rootfs_note: Option<String>,
    supervisor: Supervisor,
    exit: Option<Exit>,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container")
            .field("id", &self.id)
            .field("pid", &self.pid)
            .field("start_ticks", &self.start_ticks)
            .field("exit", &self.exit)
            .finish()
    }
}

/// Finds runc: on `PATH`, else where Debian installs it (`/usr/sbin`, often not on a
/// non-root `PATH`).
pub fn find_runc() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("runc"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(["/usr/sbin/runc", "/usr/bin/runc", "/sbin/runc"].map(PathBuf::from))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("runc"))
}

fn read_exit_file(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn signal_of(code: i32) -> Option<i32> {
    (129..=128 + 64).contains(&code).then(|| code - 128)
}

impl Runtime {
    /// A runtime keeping its state under `dir` (created on first use), with runc found
    /// by [`find_runc`], cgroups under `/ferry`, and overlayfs root filesystems where
    /// possible.
    pub fn new(dir: impl Into<PathBuf>) -> Runtime {
        let dir = dir.into();
        Runtime {
            runc: Runc {
                bin: find_runc(),
                root: dir.join("state"),
            },
            dir,
            cgroup_parent: "ferry".into(),
            rootfs_mode: RootfsMode::Auto,
            shell: PathBuf::from("/bin/sh"),
        }
    }

    /// Uses this runc binary.
    pub fn with_runc(mut self, bin: impl Into<PathBuf>) -> Runtime {
        self.runc.bin = bin.into();
        self
    }

    /// Puts containers' cgroups under `/PARENT/ID` (default `ferry`).
    pub fn with_cgroup_parent(mut self, parent: impl Into<String>) -> Runtime {
        self.cgroup_parent = parent.into();
        self
    }

    /// Chooses how root filesystems are made.
    pub fn with_rootfs_mode(mut self, mode: RootfsMode) -> Runtime {
        self.rootfs_mode = mode;
        self
    }

    /// The runc binary used.
    pub fn runc_path(&self) -> &Path {
        &self.runc.bin
    }

    /// runc's `--root`.
    pub fn state_dir(&self) -> &Path {
        &self.runc.root
    }

    /// The directory of container `id` (bundle, rootfs, pid and exit files).
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.dir.join("containers").join(id)
    }

    /// The cgroup path (in every hierarchy) of container `id`.
    pub fn cgroups_path(&self, id: &str) -> String {
        bundle::cgroups_path(&self.cgroup_parent, id)
    }

    /// runc's version line.
    pub async fn runc_version(&self) -> Result<String> {
        self.runc.version().await
    }

    /// Prepares `spec`'s root filesystem and bundle and starts it, its stdout and
    /// stderr appended to `log`. Returns once runc has created the container (its
    /// pid is known); a container that cannot be created is an [`Error::Start`]
    /// quoting runc, and leaves nothing behind.
    pub async fn run(&self, spec: &ContainerSpec, log: &Path) -> Result<Container> {
        let id = spec.id.clone();
        bundle::check_id(&id)?;
        let dir = self.container_dir(&id);
        if self.runc.state(&id).await?.is_some() {
            return Err(Error::AlreadyExists { id, dir });
        }
        let prepared = {
            let rt = self.clone();
            let spec = spec.clone();
            tokio::task::spawn_blocking(move || rt.prepare(&spec))
                .await
                .map_err(|e| Error::InvalidSpec {
                    id: id.clone(),
                    reason: format!("preparing the bundle panicked: {e}"),
                })?
        };
        let (kind, note) = match prepared {
            Ok(p) => p,
            Err(e) => {
                // Never clean up a directory that was someone else's.
                if !matches!(e, Error::AlreadyExists { .. }) {
                    let _ = self.remove_dir(&id).await;
                }
                return Err(e);
            }
        };
        match self.start(&id, &dir, log, kind, note).await {
            Ok(c) => Ok(c),
            Err(e) => {
                let _ = self.delete(&id).await;
                Err(e)
            }
        }
    }

    /// The blocking part of [`Runtime::run`]: the container's directory, root
    /// filesystem, `/etc` files and `config.json`.
    fn prepare(&self, spec: &ContainerSpec) -> Result<(RootfsKind, Option<String>)> {
        let id = spec.id.as_str();
        let dir = self.container_dir(id);
        let parent = self.dir.join("containers");
        std::fs::create_dir_all(&parent).at(id, &parent)?;
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists {
                    id: id.to_string(),
                    dir,
                });
            }
            Err(e) => return Err(Error::io(id, &dir, e)),
        }
        let user = user::resolve(id, &spec.image_rootfs, &spec.user)?;
        let etc = bundle::write_etc_files(spec, &dir)?;
        let config =
            bundle::build_spec(spec, &user, Path::new("rootfs"), &etc, &self.cgroup_parent)?;
        let (kind, note) = rootfs::prepare(id, &spec.image_rootfs, &dir, self.rootfs_mode)?;
        let path = dir.join("config.json");
        config.save(&path).map_err(|e| Error::InvalidSpec {
            id: id.to_string(),
            reason: format!("writing {}: {e}", path.display()),
        })?;
        Ok((kind, note))
    }

    async fn start(
        &self,
        id: &str,
        dir: &Path,
        log: &Path,
        rootfs: RootfsKind,
        rootfs_note: Option<String>,
    ) -> Result<Container> {
        if let Some(parent) = log.parent() {
            std::fs::create_dir_all(parent).at(id, parent)?;
        }
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .at(id, log)?;
        let err = out.try_clone().at(id, log)?;
        let exit_file = dir.join("exit");
        let pid_file = dir.join("pid");
        let runc_log = dir.join("runc.log");
        let mut cmd = tokio::process::Command::new(&self.shell);
        cmd.arg("-c")
            .arg(SUPERVISOR)
            .arg(&exit_file)
            .arg(&self.runc.bin)
            .arg("--root")
            .arg(&self.runc.root)
            .arg("--log")
            .arg(&runc_log)
            .args(["--log-format", "json", "run", "--keep", "--bundle"])
            .arg(dir)
            .arg("--pid-file")
            .arg(&pid_file)
            .arg(id)
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into()),
            )
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .process_group(0)
            .kill_on_drop(false);
        let mut child = cmd.spawn().map_err(|source| Error::Spawn {
            id: id.to_string(),
            program: self.shell.clone(),
            source,
        })?;
        let supervisor_pid = child.id().unwrap_or(0);
        let supervisor_start_ticks = procfs::start_ticks(supervisor_pid).unwrap_or(0);

        // Wait (bounded) until runc has written the pid file, or has given up.
        let deadline = Instant::now() + START_TIMEOUT;
        let mut pause = Duration::from_millis(2);
        let pid = loop {
            if let Some(pid) = read_pid(&pid_file) {
                break pid;
            }
            let exited = child.try_wait().ok().flatten().is_some();
            if exited {
                // runc writes the pid file before the process starts: a container that
                // already ended has one.
                if let Some(pid) = read_pid(&pid_file) {
                    break pid;
                }
                return Err(Error::Start {
                    id: id.to_string(),
                    runc: runc::log_errors(&runc_log),
                });
            }
            if Instant::now() >= deadline {
                // runc and its supervisor share a process group: end both.
                if let Ok(pgid) = i32::try_from(supervisor_pid)
                    && pgid > 1
                {
                    let _ = nix::sys::signal::killpg(Pid::from_raw(pgid), Signal::SIGKILL);
                }
                return Err(Error::Start {
                    id: id.to_string(),
                    runc: format!(
                        "runc did not create the container within {}s; it said: {}",
                        START_TIMEOUT.as_secs(),
                        runc::log_errors(&runc_log)
                    ),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        };
        let start_ticks = procfs::start_ticks(pid).unwrap_or(0);
        let cgroups_path = self.cgroups_path(id);
        let record = Record {
            pid,
            start_ticks,
            supervisor_pid,
            supervisor_start_ticks,
            cgroups_path: cgroups_path.clone(),
            rootfs,
            log: log.to_path_buf(),
        };
        let record_path = dir.join("container.json");
        let text = serde_json::to_vec_pretty(&record).unwrap_or_default();
        std::fs::write(&record_path, text).at(id, &record_path)?;
        Ok(Container {
            id: id.to_string(),
            pid,
            start_ticks,
            cgroups_path,
            exit_file,
            rootfs,
            rootfs_note,
            supervisor: Supervisor::Child(child),
            exit: None,
        })
    }

    fn record(&self, id: &str) -> Option<Record> {
        let text = std::fs::read(self.container_dir(id).join("container.json")).ok()?;
        serde_json::from_slice(&text).ok()
    }

    fn info(&self, s: RuncState) -> ContainerInfo {
        let record = self.record(&s.id);
        ContainerInfo {
            status: Status::parse(&s.status),
            pid: s.pid,
            start_ticks: record.as_ref().map(|r| r.start_ticks),
            log: record.map(|r| r.log),
            bundle: s.bundle,
            created: s.created,
            annotations: s.annotations.unwrap_or_default(),
            id: s.id,
        }
    }

    /// Every container runc knows under this runtime's state directory.
    pub async fn list(&self) -> Result<Vec<ContainerInfo>> {
        Ok(self
            .runc
            .list()
            .await?
            .into_iter()
            .map(|s| self.info(s))
            .collect())
    }

    /// One container, `None` if runc does not know it.
    pub async fn state(&self, id: &str) -> Result<Option<ContainerInfo>> {
        bundle::check_id(id)?;
        Ok(self.runc.state(id).await?.map(|s| self.info(s)))
    }

    /// A handle on a container started earlier (by this or a previous daemon), to
    /// wait for or stop it; `None` if runc does not know it. A stopped container's
    /// handle returns its exit at once.
    pub async fn adopt(&self, id: &str) -> Result<Option<Container>> {
        bundle::check_id(id)?;
        let Some(state) = self.runc.state(id).await? else {
            return Ok(None);
        };
        let record = self.record(id);
        let (pid, start_ticks) = match &record {
            Some(r) if r.pid == state.pid || state.pid == 0 => (r.pid, r.start_ticks),
            _ => (state.pid, procfs::start_ticks(state.pid).unwrap_or(0)),
        };
        let (sup_pid, sup_ticks) = record
            .as_ref()
            .map(|r| (r.supervisor_pid, r.supervisor_start_ticks))
            .unwrap_or((0, 0));
        Ok(Some(Container {
            id: id.to_string(),
            pid,
            start_ticks,
            cgroups_path: record
                .as_ref()
                .map(|r| r.cgroups_path.clone())
                .unwrap_or_else(|| self.cgroups_path(id)),
            exit_file: self.container_dir(id).join("exit"),
            rootfs: record.map(|r| r.rootfs).unwrap_or(RootfsKind::Copy),
            rootfs_note: None,
            supervisor: Supervisor::Adopted {
                pid: sup_pid,
                start_ticks: sup_ticks,
            },
            exit: None,
        }))
    }

    /// `runc exec` in a running container, its stdio piped: the command's exit code
    /// and output. The command runs with the container's user, environment (plus
    /// `opts.env`) and capabilities.
    pub async fn exec(&self, id: &str, args: &[String], opts: &ExecOptions) -> Result<ExecOutput> {
        self.check_running(id).await?;
        let mut cmd = self.exec_command(id, args, opts);
        cmd.stdin(if opts.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| Error::Spawn {
            id: id.to_string(),
            program: self.runc.bin.clone(),
            source,
        })?;
        if let (Some(bytes), Some(mut stdin)) = (&opts.stdin, child.stdin.take()) {
            // A command that does not read its input may close it early: not an error.
            let _ = stdin.write_all(bytes).await;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|source| Error::Spawn {
                id: id.to_string(),
                program: self.runc.bin.clone(),
                source,
            })?;
        use std::os::unix::process::ExitStatusExt;
        let code = out
            .status
            .code()
            .or_else(|| out.status.signal().map(|s| 128 + s))
            .unwrap_or(255);
        Ok(ExecOutput {
            code,
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    /// The `runc exec` command for a streaming exec (stdio for the caller to set).
    pub fn exec_command(
        &self,
        id: &str,
        args: &[String],
        opts: &ExecOptions,
    ) -> tokio::process::Command {
        let mut cmd = self.runc.command();
        cmd.arg("exec");
        for (k, v) in &opts.env {
            cmd.arg("--env").arg(format!("{k}={v}"));
        }
        if let Some(cwd) = &opts.cwd {
            cmd.arg("--cwd").arg(cwd);
        }
        cmd.arg(id).args(args);
        cmd
    }

    async fn check_running(&self, id: &str) -> Result<()> {
        bundle::check_id(id)?;
        match self.runc.state(id).await? {
            None => Err(Error::NotFound { id: id.to_string() }),
            Some(s) if s.status == "running" => Ok(()),
            Some(s) => Err(Error::NotRunning {
                id: id.to_string(),
                status: s.status,
            }),
        }
    }

    /// Removes a container whatever its state: kills it if it runs (`runc delete
    /// --force`), removes runc's state and the container's cgroups, unmounts its root
    /// filesystem and removes its directory. Deleting an unknown container is not an
    /// error.
    pub async fn delete(&self, id: &str) -> Result<()> {
        bundle::check_id(id)?;
        let cgroups_path = self
            .record(id)
            .map(|r| r.cgroups_path)
            .unwrap_or_else(|| self.cgroups_path(id));
        self.runc.delete(id).await?;
        // Left by a runc that was killed mid-delete; runc normally removes them.
        let left = cgroup::remove(&cgroups_path);
        if !left.is_empty() {
            tracing::warn!(
                "container {id}: cgroups still in use after delete: {}",
                left.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        self.remove_dir(id).await
    }

    async fn remove_dir(&self, id: &str) -> Result<()> {
        let dir = self.container_dir(id);
        let owned = id.to_string();
        tokio::task::spawn_blocking(move || rootfs::cleanup(&owned, &dir))
            .await
            .map_err(|e| Error::InvalidSpec {
                id: id.to_string(),
                reason: format!("cleanup panicked: {e}"),
            })?
    }
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path)
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 0)
}

impl Container {
    /// The container's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Host pid of the container's init process.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Start time of the init process in clock ticks since boot (0 if it had already
    /// ended when looked at); with the pid it identifies the process across restarts.
    pub fn start_ticks(&self) -> i64 {
        self.start_ticks
    }

    /// How the root filesystem was made.
    pub fn rootfs_kind(&self) -> RootfsKind {
        self.rootfs
    }

    /// Why overlayfs was not used, when it was wanted and a copy was made instead.
    pub fn rootfs_note(&self) -> Option<&str> {
        self.rootfs_note.as_deref()
    }

    /// Whether the init process still runs.
    pub fn is_running(&self) -> bool {
        self.exit.is_none() && procfs::is_alive(self.pid, self.start_ticks)
    }

    /// Sends `sig` to the container's init process (if it still is the process that
    /// was started).
    pub fn signal(&self, sig: Signal) {
        if self.exit.is_none()
            && procfs::is_alive(self.pid, self.start_ticks)
            && let Ok(p) = i32::try_from(self.pid)
        {
            let _ = nix::sys::signal::kill(Pid::from_raw(p), sig);
        }
    }

    /// Waits until the container has exited. Cancel-safe: it can be raced against a
    /// timeout and called again.
    pub async fn wait(&mut self) -> Exit {
        if let Some(e) = self.exit {
            return e;
        }
        let code = match &mut self.supervisor {
            Supervisor::Child(child) => match child.wait().await {
                Ok(status) => status.code().or_else(|| read_exit_file(&self.exit_file)),
                Err(_) => read_exit_file(&self.exit_file),
            },
            Supervisor::Adopted { pid, start_ticks } => {
                let (sup, sup_ticks) = (*pid, *start_ticks);
                let mut gone_since: Option<Instant> = None;
                loop {
                    if let Some(code) = read_exit_file(&self.exit_file) {
                        break Some(code);
                    }
                    let supervised = sup > 0 && procfs::is_alive(sup, sup_ticks);
                    let running = procfs::is_alive(self.pid, self.start_ticks);
                    if !supervised && !running {
                        // The supervisor writes the file right after runc returns.
                        let since = *gone_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= EXIT_FILE_WAIT {
                            break None;
                        }
                    }
                    tokio::time::sleep(ADOPTED_POLL).await;
                }
            }
        };
        let oom_killed = cgroup::oom_kills(&self.cgroups_path).unwrap_or(0) > 0;
        let exit = Exit {
            code: code.unwrap_or(137),
            signal: code.and_then(signal_of),
            known: code.is_some(),
            oom_killed,
        };
        self.exit = Some(exit);
        exit
    }

    /// SIGTERM to the container's init, SIGKILL after `grace`; waits for the exit.
    pub async fn stop(&mut self, grace: Duration) -> Exit {
        if let Some(e) = self.exit {
            return e;
        }
        self.signal(Signal::SIGTERM);
        if let Ok(exit) = tokio::time::timeout(grace, self.wait()).await {
            return exit;
        }
        self.signal(Signal::SIGKILL);
        self.wait().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_read_from_codes() {
        assert_eq!(signal_of(137), Some(9));
        assert_eq!(signal_of(143), Some(15));
        assert_eq!(signal_of(1), None);
        assert_eq!(signal_of(128), None);
    }

    #[test]
    fn statuses_parse() {
        assert_eq!(Status::parse("running"), Status::Running);
        assert_eq!(Status::parse("weird"), Status::Other("weird".into()));
    }
}
