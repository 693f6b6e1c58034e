//! `exec`: runs a command in a running pod's container, non-interactively (stdin given
//! up front, stdout and stderr collected, no TTY), as `kubectl exec` without `-t`.
//!
//! A container run through runc is entered with `runc exec`: the command gets the
//! container's namespaces, root filesystem, environment, user and working directory
//! (runc takes them from the container's own process spec). A container run as a host
//! process has nothing to enter: the command runs as a host process with the same view
//! the container's process has — the environment built as for it ([`super::env`] over
//! the image's), its working directory inside the unpacked image, and its user.
//!
//! The command is killed when its time is up or when the caller goes away (the
//! request's future dropped): a host command with its whole process group, a
//! container's with runc and the process runc started in the container.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use ferry_core::Object;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};

use super::{Kubelet, command, containers, env, ports};

/// Most bytes kept of each of stdout and stderr; the rest is read and dropped, so a
/// chatty command neither blocks nor fills the daemon's memory.
pub const MAX_OUTPUT: usize = 8 << 20;

/// `PATH` for a host command when neither the image nor the daemon has one.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What to run.
#[derive(Clone, Debug, Default)]
pub struct ExecRequest {
    /// The container's name.
    pub container: String,
    /// argv; the first word is the program.
    pub command: Vec<String>,
    /// Bytes fed to the command's stdin, then closed; `/dev/null` if `None`.
    pub stdin: Option<Vec<u8>>,
    /// How long the command may run before it is killed.
    pub timeout: Duration,
}

/// How the command ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// Its exit code (`128 + signal` when a signal ended it).
    pub exit_code: i32,
    /// What it wrote to stdout (at most [`MAX_OUTPUT`] bytes).
    pub stdout: Vec<u8>,
    /// What it wrote to stderr (at most [`MAX_OUTPUT`] bytes).
    pub stderr: Vec<u8>,
    /// It ran out of time and was killed.
    pub timed_out: bool,
    /// Output was cut at [`MAX_OUTPUT`].
    pub truncated: bool,
}

/// Why a command could not be run; the messages are kubectl's where it has one.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The pod has no container of that name.
    #[error("container {container} is not valid for pod {pod}")]
    NoSuchContainer {
        /// The pod.
        pod: String,
        /// The container asked for.
        container: String,
    },
    /// The pod has finished: nothing of it runs any more.
    #[error("cannot exec into a container in a completed pod; current phase is {phase}")]
    Completed {
        /// `Succeeded` or `Failed`.
        phase: String,
    },
    /// The container exists but does not run now (waiting to start, restarting, ended).
    #[error(
        "unable to upgrade connection: container not found ({container:?}); wait until it runs ('ferry get pod {pod}') and try again"
    )]
    NotRunning {
        /// The pod.
        pod: String,
        /// The container.
        container: String,
    },
    /// No command was given.
    #[error("you must specify at least one command for the container")]
    NoCommand,
    /// The command could not be started (no such program, no image, a bad config).
    #[error(
        "Internal error occurred: error executing command in container {container:?} of pod {pod:?}: {message}"
    )]
    Start {
        /// The pod.
        pod: String,
        /// The container.
        container: String,
        /// Why.
        message: String,
    },
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The container's spec, from `containers` or `initContainers`.
fn container_spec<'a>(pod: &'a Object, name: &str) -> Option<&'a Value> {
    ["containers", "initContainers"].iter().find_map(|list| {
        pod.value()
            .pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)?
            .iter()
            .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
    })
}

/// The container's status entry.
fn container_status<'a>(pod: &'a Object, name: &str) -> Option<&'a Value> {
    ["containerStatuses", "initContainerStatuses"]
        .iter()
        .find_map(|list| {
            pod.value()
                .pointer(&format!("/status/{list}"))
                .and_then(Value::as_array)?
                .iter()
                .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
        })
}

/// How the container's process runs now.
enum Target {
    /// Through runc, with this container id.
    Container(String),
    /// As a host process.
    Host,
}

impl Kubelet {
    /// Runs `req.command` in `req.container` of `pod`, which must be running; see the
    /// module documentation ([`exec`](self)) for what the command sees. A command
    /// that runs and fails is an `Ok` with its exit code; `Err` is a command that could
    /// not be run at all.
    pub async fn exec(&self, pod: &Object, req: ExecRequest) -> Result<ExecOutput, ExecError> {
        let v = pod.value();
        let (ns, name, uid) = (pod.namespace(), pod.name(), str_at(v, "/metadata/uid"));
        let cname = req.container.as_str();
        let start_error = |message: String| ExecError::Start {
            pod: name.to_string(),
            container: cname.to_string(),
            message,
        };
        let Some(spec) = container_spec(pod, cname) else {
            return Err(ExecError::NoSuchContainer {
                pod: name.to_string(),
                container: cname.to_string(),
            });
        };
        let phase = str_at(v, "/status/phase");
        if matches!(phase, "Succeeded" | "Failed") {
            return Err(ExecError::Completed {
                phase: phase.to_string(),
            });
        }
        let not_running = || ExecError::NotRunning {
            pod: name.to_string(),
            container: cname.to_string(),
        };
        let running = container_status(pod, cname)
            .and_then(|s| s.pointer("/state/running"))
            .is_some();
        if !running || pod.is_being_deleted() {
            return Err(not_running());
        }
        if req.command.is_empty() {
            return Err(ExecError::NoCommand);
        }
        match self.target(ns, name, cname, uid) {
            Target::Container(id) => {
                let state = self
                    .containers
                    .state(&id)
                    .await
                    .map_err(|e| start_error(e.to_string()))?;
                if !state.is_some_and(|s| s.status == ferry_container::Status::Running) {
                    return Err(not_running());
                }
                let opts = ferry_container::ExecOptions::default();
                let cmd = self.containers.exec_command(&id, &req.command, &opts);
                let out = run(cmd, Kill::RuncChildren, &req)
                    .await
                    .map_err(|e| start_error(format!("runc exec: {e}")))?;
                // runc reports a command it could not start (no such program) on its
                // stderr and exits non-zero before the command exists: that is no
                // exit code of the command, so say it as the API server would.
                let err = String::from_utf8_lossy(&out.stderr);
                if out.exit_code != 0
                    && out.stdout.is_empty()
                    && let Some(i) = err.find("exec failed: ")
                {
                    let msg = err[i..].lines().next().unwrap_or_default();
                    return Err(start_error(msg.trim_end_matches('"').to_string()));
                }
                Ok(out)
            }
            Target::Host => {
                let cmd = self
                    .host_command(pod, spec, &req.command)
                    .await
                    .map_err(start_error)?;
                run(cmd, Kill::Group, &req)
                    .await
                    .map_err(|e| start_error(format!("exec {:?}: {e}", req.command[0])))
            }
        }
    }

    /// Whether the container runs through runc: the process record says so (it
    /// survives a daemon restarted with another isolation); else this daemon's mode.
    fn target(&self, ns: &str, pod: &str, container: &str, uid: &str) -> Target {
        let id = format!("{ns}/{pod}/{container}");
        let row = self
            .cluster
            .db()
            .and_then(|db| db.processes().ok())
            .and_then(|rows| rows.into_iter().find(|r| r.id == id && r.pod_uid == uid));
        match row {
            Some(r) => match super::container_of(&r) {
                Some(cid) => Target::Container(cid.to_string()),
                None => Target::Host,
            },
            None if self.use_containers => {
                Target::Container(containers::container_id(ns, pod, container, uid))
            }
            None => Target::Host,
        }
    }

    /// The host command with the container process's view: its environment, working
    /// directory and user. `Err` says why it cannot be built.
    async fn host_command(
        &self,
        pod: &Object,
        c: &Value,
        argv: &[String],
    ) -> Result<tokio::process::Command, String> {
        let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
        // The image the process runs: the status's imageID pins the very digest (a tag
        // may have moved since); the spec's reference otherwise.
        let image_id = container_status(pod, name)
            .and_then(|s| s.get("imageID"))
            .and_then(Value::as_str)
            .and_then(|id| id.rsplit_once('@').map(|(_, d)| d.to_string()));
        let reference = image_id.unwrap_or_else(|| str_at(c, "/image").to_string());
        let (store, rootfs_dir, r) = (
            self.store.clone(),
            self.config.rootfs_dir(),
            reference.clone(),
        );
        let (config, rootfs) = tokio::task::spawn_blocking(move || {
            let info = store.get(&r)?;
            let config = store.config(&info.digest)?;
            // Unpacked already, since the process runs from it: this only finds it.
            let rootfs = store.unpack(&info.digest.to_string(), &rootfs_dir)?;
            Ok::<_, ferry_oci::Error>((config, rootfs))
        })
        .await
        .map_err(|e| format!("image store task failed: {e}"))?
        .map_err(|e| format!("image {reference:?}: {e}"))?;

        let port = ports::port_env(&ports::of(pod), c);
        let kenv = env::container_env(&self.cluster, pod, c, port)?;
        let mut envs: BTreeMap<String, String> = config.env_pairs().into_iter().collect();
        envs.extend(kenv);
        envs.entry("PATH".into())
            .or_insert_with(|| std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_string()));
        if let Ok(home) = std::env::var("HOME") {
            envs.entry("HOME".into()).or_insert(home);
        }
        // Deliberately without the kubelet's process tags: a restarted daemon must
        // never take an exec'd command for the container's process.
        let cwd = command::working_dir(c, &config, &rootfs);
        let cwd = if cwd.is_dir() { cwd } else { rootfs.clone() };
        let uid = str_at(pod.value(), "/metadata/uid");
        let pod_ref = format!("{}_{}({uid})", pod.name(), pod.namespace());
        let spec = pod.value().get("spec").cloned().unwrap_or(Value::Null);
        let run_as = command::run_as(&spec, c, &config, &rootfs, &pod_ref)?;
        let argv0 = &argv[0];
        let program =
            command::resolve_program(argv0, &rootfs, &cwd, envs.get("PATH").map(String::as_str))?;
        let mut cmd = tokio::process::Command::new(&program);
        cmd.arg0(argv0)
            .args(&argv[1..])
            .env_clear()
            .envs(&envs)
            .current_dir(&cwd)
            .process_group(0);
        if self.as_root {
            if let Some(g) = run_as.gid {
                cmd.gid(g);
            }
            if let Some(u) = run_as.uid {
                cmd.uid(u);
            }
        }
        Ok(cmd)
    }
}

/// What to kill when the command must stop.
#[derive(Clone, Copy)]
enum Kill {
    /// The command's process group (a host command leads its own).
    Group,
    /// The processes runc started (the command, inside the container), then runc.
    RuncChildren,
}

/// Kills what is left of a command unless it has been reaped: on a timeout, and when
/// the request is dropped mid-way.
struct Reaper {
    pid: u32,
    how: Kill,
    armed: bool,
}

impl Reaper {
    fn kill(&self) {
        let Ok(pid) = i32::try_from(self.pid) else {
            return;
        };
        match self.how {
            Kill::Group => {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            Kill::RuncChildren => {
                // SIGKILL cannot be forwarded by runc: kill its children (the
                // command, in the container's namespaces) by their host pids.
                for child in children(self.pid) {
                    if let Ok(c) = i32::try_from(child) {
                        let _ = kill(Pid::from_raw(c), Signal::SIGKILL);
                    }
                }
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if self.armed {
            self.kill();
        }
    }
}

/// The children of `pid`, from `/proc/PID/task/*/children`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Reads `r` to its end, keeping the first [`MAX_OUTPUT`] bytes; `true` if more came.
async fn read_capped(mut r: impl AsyncRead + Unpin) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut cut = false;
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return (kept, cut),
            Ok(n) => {
                let room = MAX_OUTPUT - kept.len();
                if n > room {
                    cut = true;
                }
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// Runs `cmd` with `req`'s stdin and time limit, collecting its output.
async fn run(
    mut cmd: tokio::process::Command,
    how: Kill,
    req: &ExecRequest,
) -> std::io::Result<ExecOutput> {
    cmd.stdin(if req.stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let mut reaper = Reaper {
        pid: child.id().unwrap_or(0),
        how,
        armed: true,
    };
    // Input is written while output is read: a command that answers before it has
    // read everything must not deadlock against a full pipe.
    let stdin = child.stdin.take().zip(req.stdin.clone());
    let feed = async move {
        if let Some((mut w, bytes)) = stdin {
            // A command that does not read its input may close it early: not an error.
            let _ = w.write_all(&bytes).await;
        }
    };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let collect = async {
        let out = async {
            match stdout {
                Some(s) => read_capped(s).await,
                None => Default::default(),
            }
        };
        let err = async {
            match stderr {
                Some(s) => read_capped(s).await,
                None => Default::default(),
            }
        };
        let ((), o, e, status) = tokio::join!(feed, out, err, child.wait());
        (o, e, status)
    };
    tokio::pin!(collect);
    let timed = tokio::time::timeout(req.timeout, &mut collect).await;
    let (timed_out, ((stdout, cut_out), (stderr, cut_err), status)) = match timed {
        Ok(r) => (false, r),
        Err(_) => {
            reaper.kill();
            // Killed: the pipes close and the wait returns, unless a grandchild kept a
            // pipe open; then give up on the rest of the output after a moment.
            match tokio::time::timeout(Duration::from_secs(5), &mut collect).await {
                Ok(r) => (true, r),
                Err(_) => (
                    true,
                    (
                        Default::default(),
                        Default::default(),
                        Err(std::io::Error::other("killed")),
                    ),
                ),
            }
        }
    };
    reaper.armed = false;
    use std::os::unix::process::ExitStatusExt as _;
    let exit_code = match status {
        Ok(s) => s
            .code()
            .or_else(|| s.signal().map(|n| 128 + n))
            .unwrap_or(255),
        Err(_) => 128 + 9,
    };
    Ok(ExecOutput {
        exit_code,
        stdout,
        stderr,
        timed_out,
        truncated: cut_out || cut_err,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(argv: &[&str], stdin: Option<&str>, secs: u64) -> ExecRequest {
        ExecRequest {
            container: "c".into(),
            command: argv.iter().map(|s| s.to_string()).collect(),
            stdin: stdin.map(|s| s.as_bytes().to_vec()),
            timeout: Duration::from_secs(secs),
        }
    }

    fn sh(r: &ExecRequest) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("/bin/sh");
        cmd.args(&r.command[1..]).process_group(0);
        cmd
    }

    #[tokio::test]
    async fn output_exit_code_and_stdin_are_carried() {
        let r = req(
            &["sh", "-c", "cat; echo err >&2; exit 3"],
            Some("from stdin\n"),
            30,
        );
        let out = run(sh(&r), Kill::Group, &r).await.unwrap();
        assert_eq!(out.stdout, b"from stdin\n");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.exit_code, 3);
        assert!(!out.timed_out && !out.truncated);
    }

    #[tokio::test]
    async fn a_command_out_of_time_is_killed_with_its_children() {
        let r = req(&["sh", "-c", "echo started; sleep 600 & wait"], None, 1);
        let out = run(sh(&r), Kill::Group, &r).await.unwrap();
        assert!(out.timed_out);
        assert_eq!(out.exit_code, 128 + 9);
        assert_eq!(out.stdout, b"started\n");
    }

    #[tokio::test]
    async fn big_output_is_cut_and_big_input_does_not_deadlock() {
        let input = "x".repeat(4 << 20);
        let r = req(
            &["sh", "-c", "head -c 9000000 /dev/zero; cat >/dev/null"],
            Some(&input),
            60,
        );
        let out = run(sh(&r), Kill::Group, &r).await.unwrap();
        assert_eq!(out.stdout.len(), MAX_OUTPUT);
        assert!(out.truncated);
        assert_eq!(out.exit_code, 0);
    }
}
