//! Container processes on the host: started in their own process group with output
//! appended to a log file (so both outlive the daemon), stopped by signalling the
//! group, and watched — our own children through `wait`, processes re-adopted after a
//! daemon restart through `/proc`.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::command::RunAs;

/// How often a re-adopted process (not our child, so no `wait`) is checked.
const ADOPTED_POLL: Duration = Duration::from_secs(1);
/// How often a process is checked while it is being stopped.
const STOPPING_POLL: Duration = Duration::from_millis(50);

/// `/proc/PID/stat`: the state letter and the start time in clock ticks (field 22).
pub(crate) fn proc_stat(pid: u32) -> Option<(char, i64)> {
    stat_fields(pid).map(|(state, _, ticks)| (state, ticks))
}

/// State letter, process group id (field 5) and start ticks (field 22).
fn stat_fields(pid: u32) -> Option<(char, u32, i64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let pgid = fields.get(2)?.parse().ok()?;
    let ticks = fields.get(19)?.parse().ok()?;
    Some((state, pgid, ticks))
}

/// A live process-group leader whose environment holds `var`: pid, start ticks, and
/// the values of the `FERRY_*` variables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Tagged {
    pub pid: u32,
    pub start_ticks: i64,
    pub vars: BTreeMap<String, String>,
}

/// Every live process-group leader carrying `var` in its initial environment (the
/// ones this user may read).
pub(crate) fn scan_tagged(var: &str) -> Vec<Tagged> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Some((state, pgid, ticks)) = stat_fields(pid) else {
            continue;
        };
        if pgid != pid || matches!(state, 'Z' | 'X') {
            continue;
        }
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let vars: BTreeMap<String, String> = environ
            .split(|b| *b == 0)
            .filter(|kv| kv.starts_with(b"FERRY_"))
            .filter_map(|kv| {
                let kv = String::from_utf8_lossy(kv);
                let (k, v) = kv.split_once('=')?;
                Some((k.to_string(), v.to_string()))
            })
            .collect();
        if vars.contains_key(var) {
            out.push(Tagged {
                pid,
                start_ticks: ticks,
                vars,
            });
        }
    }
    out
}

/// Whether `pid` is still the process that started at `start_ticks` and has not exited
/// (a zombie has).
pub(crate) fn is_alive(pid: u32, start_ticks: i64) -> bool {
    matches!(proc_stat(pid), Some((state, ticks)) if ticks == start_ticks && state != 'Z' && state != 'X')
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Exit {
    /// The exit code, `128 + signal` for a signal, as Kubernetes reports it.
    pub code: i32,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    /// Whether the code is known (it is not for a re-adopted process).
    pub known: bool,
    /// Whether the kernel's OOM killer killed a process of it (containers only).
    pub oom_killed: bool,
}

impl Exit {
    fn from_status(s: std::process::ExitStatus) -> Self {
        match (s.code(), s.signal()) {
            (Some(code), _) => Exit {
                code,
                signal: None,
                known: true,
                oom_killed: false,
            },
            (None, Some(sig)) => Exit {
                code: 128 + sig,
                signal: Some(sig),
                known: true,
                oom_killed: false,
            },
            (None, None) => Exit::unknown(),
        }
    }

    pub(crate) fn unknown() -> Self {
        Exit {
            code: 137,
            signal: None,
            known: false,
            oom_killed: false,
        }
    }

    fn of_container(e: ferry_container::Exit) -> Self {
        Exit {
            code: e.code,
            signal: e.signal,
            known: e.known,
            oom_killed: e.oom_killed,
        }
    }
}

/// A running container process.
#[derive(Debug)]
pub(crate) enum Proc {
    /// Started by this daemon.
    Child {
        child: tokio::process::Child,
        pid: u32,
        start_ticks: i64,
    },
    /// Started by an earlier daemon and re-adopted.
    Adopted { pid: u32, start_ticks: i64 },
    /// A container run through runc (started now or re-adopted): its own supervisor
    /// watches it, and [`Proc::remove`] deletes it once it has ended.
    Container {
        container: Box<ferry_container::Container>,
        runtime: ferry_container::Runtime,
    },
}

/// What to start.
pub(crate) struct Launch {
    pub program: PathBuf,
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    pub env: BTreeMap<String, String>,
    pub run_as: RunAs,
}

impl Proc {
    /// Starts `launch` in a new process group, stdout and stderr appended to `log`.
    pub(crate) fn spawn(launch: &Launch, log: &Path, as_root: bool) -> std::io::Result<Proc> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let out = OpenOptions::new().create(true).append(true).open(log)?;
        let err = out.try_clone()?;
        let mut cmd = tokio::process::Command::new(&launch.program);
        if let Some(a0) = launch.argv.first() {
            cmd.arg0(a0);
        }
        cmd.args(launch.argv.iter().skip(1))
            .env_clear()
            .envs(&launch.env)
            .current_dir(&launch.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .process_group(0)
            .kill_on_drop(false);
        if as_root {
            if let Some(gid) = launch.run_as.gid {
                cmd.gid(gid);
            }
            if let Some(uid) = launch.run_as.uid {
                cmd.uid(uid);
            }
        }
        let child = cmd.spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| std::io::Error::other("the process exited before its pid was read"))?;
        let start_ticks = proc_stat(pid).map(|(_, t)| t).unwrap_or(0);
        Ok(Proc::Child {
            child,
            pid,
            start_ticks,
        })
    }

    /// The process id (also its process group id).
    pub(crate) fn pid(&self) -> u32 {
        match self {
            Proc::Child { pid, .. } | Proc::Adopted { pid, .. } => *pid,
            Proc::Container { container, .. } => container.pid(),
        }
    }

    /// The container's id, for a container.
    pub(crate) fn container_id(&self) -> Option<&str> {
        match self {
            Proc::Container { container, .. } => Some(container.id()),
            _ => None,
        }
    }

    /// Start time in clock ticks since boot.
    pub(crate) fn start_ticks(&self) -> i64 {
        match self {
            Proc::Child { start_ticks, .. } | Proc::Adopted { start_ticks, .. } => *start_ticks,
            Proc::Container { container, .. } => container.start_ticks(),
        }
    }

    /// Waits until the process has exited.
    pub(crate) async fn wait(&mut self) -> Exit {
        self.wait_polling(ADOPTED_POLL).await
    }

    async fn wait_polling(&mut self, poll: Duration) -> Exit {
        match self {
            Proc::Child { child, .. } => match child.wait().await {
                Ok(s) => Exit::from_status(s),
                Err(_) => Exit::unknown(),
            },
            Proc::Adopted { pid, start_ticks } => {
                while is_alive(*pid, *start_ticks) {
                    tokio::time::sleep(poll).await;
                }
                Exit::unknown()
            }
            Proc::Container { container, .. } => Exit::of_container(container.wait().await),
        }
    }

    /// Sends `sig` to the process group (a container's init).
    pub(crate) fn signal(&self, sig: Signal) {
        match self {
            Proc::Container { container, .. } => container.signal(sig),
            _ => signal_group(self.pid(), sig),
        }
    }

    /// SIGTERM to the group, SIGKILL after `grace`; waits for the exit.
    pub(crate) async fn terminate(&mut self, grace: Duration) -> Exit {
        if let Proc::Container { container, .. } = self {
            return Exit::of_container(container.stop(grace).await);
        }
        self.signal(Signal::SIGTERM);
        let exit = match tokio::time::timeout(grace, self.wait_polling(STOPPING_POLL)).await {
            Ok(e) => e,
            Err(_) => {
                self.signal(Signal::SIGKILL);
                self.wait_polling(STOPPING_POLL).await
            }
        };
        self.reap_group();
        exit
    }

    /// Kills what is left of the group once its leader exited (a container's processes
    /// end with it).
    pub(crate) fn reap_group(&self) {
        // A container's processes end with its init (a pid namespace); its pid may
        // already belong to someone else.
        if !matches!(self, Proc::Container { .. }) {
            signal_group(self.pid(), Signal::SIGKILL);
        }
    }

    /// Frees what an ended container holds (runc's state, cgroups, root filesystem);
    /// nothing for a process.
    pub(crate) async fn remove(&self) {
        if let Proc::Container { container, runtime } = self
            && let Err(e) = runtime.delete(container.id()).await
        {
            tracing::warn!("deleting container {}: {e}", container.id());
        }
    }
}

/// Sends `sig` to process group `pgid`, ignoring a group that is gone.
pub(crate) fn signal_group(pgid: u32, sig: Signal) {
    if let Ok(p) = i32::try_from(pgid)
        && p > 1
    {
        let _ = killpg(Pid::from_raw(p), sig);
    }
}

/// Stops a process that is not our child: SIGTERM, SIGKILL after `grace`.
pub(crate) async fn terminate_pid(pid: u32, start_ticks: i64, grace: Duration) {
    let mut p = Proc::Adopted { pid, start_ticks };
    if is_alive(pid, start_ticks) {
        p.terminate(grace).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_stat() {
        let me = std::process::id();
        let (state, ticks) = proc_stat(me).unwrap();
        assert!(matches!(state, 'R' | 'S'), "{state}");
        assert!(ticks > 0);
        assert!(is_alive(me, ticks));
        assert!(!is_alive(me, ticks + 1));
    }

    #[tokio::test]
    async fn spawns_in_its_own_group_and_terminates() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("logs/current.log");
        let launch = Launch {
            program: PathBuf::from("/bin/sh"),
            argv: vec![
                "sh".into(),
                "-c".into(),
                "echo hello $GREETING; sleep 30 & wait".into(),
            ],
            cwd: dir.path().to_path_buf(),
            env: [("GREETING".to_string(), "world".to_string())]
                .into_iter()
                .collect(),
            run_as: RunAs::default(),
        };
        let mut p = Proc::spawn(&launch, &log, false).unwrap();
        let pid = p.pid();
        let pgid = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let pgid: u32 = pgid[pgid.rfind(')').unwrap() + 1..]
            .split_whitespace()
            .nth(2)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(pgid, pid, "the process leads its own group");
        // Terminate only once the shell has written its line, or the signal may beat it.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(&log).unwrap_or_default().trim() != "hello world"
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let exit = p.terminate(Duration::from_secs(5)).await;
        assert_eq!(exit.code, 143);
        assert_eq!(exit.signal, Some(15));
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(text.trim(), "hello world");
    }
}
