//! What every daemon test of the `ferry` binary shares.

// Each test binary uses only part of the harness.
#![allow(dead_code)]

use std::path::PathBuf;

/// Held while a test runs a daemon. Daemon tests run one at a time, also across
/// processes (nextest runs each test in its own) and across test files: daemons on
/// one machine hand out host ports from one range.
pub struct Serial(#[allow(dead_code)] std::fs::File);

/// Waits for, then holds, the machine-wide daemon-test lock.
pub fn serial() -> Serial {
    let path = std::env::temp_dir().join("ferry-daemon-tests.lock");
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap();
    file.lock().unwrap();
    Serial(file)
}

/// The `ferry` binary under test.
pub fn ferry_bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin!("ferry").to_path_buf()
}

/// `ferry ARGS` against the daemon of `home`, isolated from the caller's
/// `FERRY_SERVER`/`FERRY_TOKEN`, with no standard input.
pub fn ferry_command(home: &std::path::Path, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(ferry_bin());
    cmd.args(args)
        .env("FERRY_HOME", home)
        .env_remove("FERRY_SERVER")
        .env_remove("FERRY_TOKEN")
        .stdin(std::process::Stdio::null());
    cmd
}

/// Runs [`ferry_command`] to its end.
pub fn run_ferry(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    ferry_command(home, args).output().unwrap()
}

/// Stdout of a run that must succeed; the failure message carries its output and
/// `context` (the daemon's log tail).
pub fn expect_ok(args: &[&str], out: std::process::Output, context: &str) -> String {
    assert!(
        out.status.success(),
        "ferry {args:?} failed ({:?}):\n{}{}\n{context}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Polls `f` every 20 ms until it gives a value, for at most `secs` seconds; `log`
/// explains a timeout.
pub fn eventually<T>(
    what: &str,
    secs: u64,
    log: impl Fn() -> String,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if std::time::Instant::now() >= deadline {
            panic!("timed out after {secs}s waiting for {what}\n{}", log());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `git ARGS` in `dir` as a fixed test author; its trimmed stdout.
pub fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Starts `ferry serve ARGS` on `home` (with short restart back-offs, and none of the
/// caller's FERRY_* settings), appending its log to `log`; does not wait for it.
pub fn spawn_serve(
    home: &std::path::Path,
    args: &[&str],
    log: &std::path::Path,
) -> std::process::Child {
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    std::process::Command::new(ferry_bin())
        .arg("serve")
        .args(args)
        .env("FERRY_HOME", home)
        .env("FERRY_BACKOFF_BASE_MS", "200")
        .env("FERRY_BACKOFF_MAX_MS", "1000")
        .env("RUST_LOG", "info")
        .env_remove("FERRY_SERVER")
        .env_remove("FERRY_TOKEN")
        .env_remove("FERRY_WEBHOOK_SECRET")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Live (not zombie) processes whose working directory is under `home` — the
/// workloads of that FERRY_HOME's runtime, which run in their unpacked images — and
/// whose command line contains `needle`. Only interpreters count when `python` is
/// set: the pyenv shim on the way to one carries the same command line for a moment
/// (in its subshells too).
pub fn workload_pids(home: &std::path::Path, needle: &str, python: bool) -> Vec<u32> {
    let Ok(home) = std::fs::canonicalize(home) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let zombie = std::fs::read_to_string(e.path().join("stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(true);
        let ours = std::fs::read_link(e.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(&home));
        let interpreter = !python
            || std::fs::read_link(e.path().join("exe")).is_ok_and(|exe| {
                exe.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("python"))
            });
        if !zombie && ours && interpreter && String::from_utf8_lossy(&cmdline).contains(needle) {
            out.push(pid);
        }
    }
    out.sort();
    out
}

/// A `ferry serve` on a FERRY_HOME of its own (a temporary directory), logging to
/// `serve.log` there. Dropping it brings it `down`, and kills by pid any workload of
/// its home still running (after a test killed the daemon, say), so no process
/// outlives the test.
pub struct Daemon {
    home: tempfile::TempDir,
    child: Option<std::process::Child>,
    log: PathBuf,
    args: Vec<String>,
    /// The API's port on 127.0.0.1.
    pub port: u16,
}

impl Daemon {
    /// A fresh FERRY_HOME with no daemon yet: put files there, then [`Daemon::spawn`].
    pub fn new() -> Daemon {
        let home = tempfile::tempdir().unwrap();
        let log = home.path().join("serve.log");
        Daemon {
            home,
            child: None,
            log,
            args: Vec::new(),
            port: 0,
        }
    }

    /// `ferry serve ARGS` on a fresh FERRY_HOME.
    pub fn start(args: &[&str]) -> Daemon {
        let mut d = Daemon::new();
        d.spawn(args);
        d
    }

    /// Starts `ferry serve ARGS` on this home (with short restart back-offs, and
    /// none of the caller's FERRY_* settings) and waits until `daemon.json` names it.
    pub fn spawn(&mut self, args: &[&str]) {
        assert!(self.child.is_none(), "a daemon of this home is running");
        self.args = args.iter().map(|s| s.to_string()).collect();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let child = spawn_serve(self.home(), &args, &self.log);
        let pid = child.id();
        self.child = Some(child);
        self.port = self.eventually("daemon.json of the new daemon", 20, || {
            let text = std::fs::read_to_string(self.home().join("daemon.json")).ok()?;
            let v: serde_json::Value = serde_json::from_str(&text).ok()?;
            (v["pid"].as_u64() == Some(u64::from(pid))).then_some(())?;
            let addr: std::net::SocketAddr = v["addr"].as_str()?.parse().ok()?;
            Some(addr.port())
        });
    }

    /// Starts the daemon again on the same home with the same arguments.
    pub fn respawn(&mut self) {
        let args = std::mem::take(&mut self.args);
        self.spawn(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }

    /// The daemon's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    pub fn home(&self) -> &std::path::Path {
        self.home.path()
    }

    pub fn ferry(&self, args: &[&str]) -> std::process::Output {
        run_ferry(self.home(), args)
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        expect_ok(args, self.ferry(args), &self.log_tail())
    }

    /// Registers an app named `name` on `repo`'s `manifests/`, following `HEAD`, into
    /// the namespace `name` (created by the sync); `automated` with prune, else synced
    /// by hand.
    pub fn create_app(&self, name: &str, repo: &std::path::Path, automated: bool) {
        let policy = if automated {
            "  syncPolicy:\n    automated:\n      prune: true\n"
        } else {
            "  syncPolicy:\n"
        };
        let file = self.home().join(format!("{name}.yaml"));
        std::fs::write(
            &file,
            format!(
                "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n\
                 spec:\n  project: default\n  source:\n    repoURL: {}\n    targetRevision: HEAD\n    path: manifests\n\
                 \x20 destination:\n    name: local\n    namespace: {name}\n{policy}\
                 \x20   syncOptions:\n      - CreateNamespace=true\n",
                repo.display()
            ),
        )
        .unwrap();
        self.ok(&["app", "create", "-f", file.to_str().unwrap()]);
    }

    /// `ferry app get NAME -o json`.
    pub fn app(&self, name: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["app", "get", name, "-o", "json"])).unwrap()
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "--- daemon log ---\n{}",
            lines[lines.len().saturating_sub(40)..].join("\n")
        )
    }

    /// [`eventually`], explaining a timeout with the daemon's log.
    pub fn eventually<T>(&self, what: &str, secs: u64, f: impl FnMut() -> Option<T>) -> T {
        eventually(what, secs, || self.log_tail(), f)
    }

    /// SIGKILL, as `kill -9` does: nothing of the daemon runs its shutdown.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(c.id()).unwrap()),
                nix::sys::signal::Signal::SIGKILL,
            )
            .unwrap();
            c.wait().unwrap();
        }
    }

    /// `ferry down`, and the process gone (killed if it does not go in 20 s).
    pub fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = self.ferry(&["down"]);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while matches!(c.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.down();
        for pid in workload_pids(self.home(), "", false) {
            if let Ok(pid) = i32::try_from(pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}
