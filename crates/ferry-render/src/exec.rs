//! Running one external program: no shell, arguments as a vector, output captured,
//! and a time limit after which the program and everything it started are killed.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long one `kustomize`, `kubectl` or `helm` run may take unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Most of a failing program's stderr kept in the error.
const STDERR_LIMIT: usize = 8 * 1024;

/// Most of a program's stdout read: what one render may read in all, so a tool
/// cannot make the daemon hold more than a plain directory could.
const OUTPUT_LIMIT: usize = ferry_core::parse::MAX_RENDER_BYTES;

/// What a program printed when it succeeded.
pub(crate) struct Captured {
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs `program args…` with stdin closed, waiting at most `timeout`. `command` is
/// how the command line is shown in errors.
pub(crate) fn run(
    program: &Path,
    args: &[OsString],
    command: &str,
    timeout: Duration,
) -> Result<Captured> {
    let deadline = Instant::now() + timeout;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout kills what it started too (helm plugins,
        // kustomize exec plugins, a script's children), not just the program itself.
        .process_group(0)
        .spawn()
        .map_err(|source| Error::Spawn {
            program: program.to_path_buf(),
            source,
        })?;

    // Read both pipes on their own threads so neither can fill up and stall the child.
    let (tx, rx) = mpsc::channel::<(bool, std::io::Result<Vec<u8>>)>();
    for (is_stdout, pipe) in [
        (
            true,
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
        (
            false,
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let res = match pipe {
                Some(mut p) => {
                    // Never hold more than a render may read: stdout past the budget
                    // is reported as soon as it is seen (and the program killed);
                    // stderr past its cap is drained and dropped so the program
                    // cannot stall on a full pipe.
                    let cap = if is_stdout {
                        OUTPUT_LIMIT
                    } else {
                        STDERR_LIMIT
                    };
                    let read = p.by_ref().take(cap as u64 + 1).read_to_end(&mut buf);
                    if read.is_ok() && !is_stdout && buf.len() > cap {
                        let _ = std::io::copy(&mut p, &mut std::io::sink());
                    }
                    read.map(|_| buf)
                }
                None => Ok(buf),
            };
            let _ = tx.send((is_stdout, res));
        });
    }
    drop(tx);

    let timed_out = |child: &mut Child| {
        kill(child);
        Error::Timeout {
            command: command.to_string(),
            timeout,
        }
    };

    // The pipes close when the program exits (normally): wait for that without polling.
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(remaining) {
            Ok((true, Ok(bytes))) if bytes.len() > OUTPUT_LIMIT => {
                kill(&mut child);
                return Err(Error::OverBudget {
                    file: format!("the output of `{command}`"),
                    total: bytes.len() as u64,
                    limit: OUTPUT_LIMIT,
                });
            }
            Ok((is_stdout, Ok(bytes))) => {
                if is_stdout {
                    stdout = bytes;
                } else {
                    stderr = bytes;
                }
            }
            Ok((_, Err(e))) => {
                kill(&mut child);
                return Err(Error::BadOutput {
                    command: command.to_string(),
                    message: format!("reading its output: {e}"),
                });
            }
            Err(mpsc::RecvTimeoutError::Timeout) => return Err(timed_out(&mut child)),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }

    // A program may close its pipes and go on running: poll for its exit until the deadline.
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => return Err(timed_out(&mut child)),
            Ok(None) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(source) => {
                kill(&mut child);
                return Err(Error::Spawn {
                    program: program.to_path_buf(),
                    source,
                });
            }
        }
    };

    let stderr = String::from_utf8_lossy(&stderr).trim().to_string();
    if !status.success() {
        return Err(Error::ToolFailed {
            command: command.to_string(),
            status: status.to_string(),
            stderr: truncate(stderr, STDERR_LIMIT),
        });
    }
    let stdout = String::from_utf8(stdout).map_err(|e| Error::BadOutput {
        command: command.to_string(),
        message: format!("not UTF-8 ({e})"),
    })?;
    Ok(Captured { stdout, stderr })
}

/// Kills the child's whole process group, then reaps the child. Called only before
/// the child has been reaped, so its pid (and so the group id) cannot have been reused.
fn kill(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn truncate(mut s: String, limit: usize) -> String {
    if s.len() > limit {
        let mut cut = limit;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("\n… (stderr truncated)");
    }
    s
}

/// Shows a command line for messages: words with spaces or quotes are quoted.
pub(crate) fn display(program_name: &str, args: &[OsString]) -> String {
    let mut out = program_name.to_string();
    for a in args {
        let a = a.to_string_lossy();
        out.push(' ');
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
            out.push_str(&format!("{a:?}"));
        } else {
            out.push_str(&a);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_failure() {
        let sh = Path::new("/bin/sh");
        let ok = run(
            sh,
            &["-c".into(), "echo out; echo err >&2".into()],
            "sh",
            DEFAULT_TIMEOUT,
        )
        .unwrap();
        assert_eq!(ok.stdout, "out\n");
        assert_eq!(ok.stderr, "err");
        let err = run(
            sh,
            &["-c".into(), "echo boom >&2; exit 3".into()],
            "sh -c fail",
            DEFAULT_TIMEOUT,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.contains("`sh -c fail` failed (exit status: 3)"),
            "{err}"
        );
        assert!(err.contains("boom"), "{err}");
    }

    #[test]
    fn timeout_kills_the_program_and_its_children() {
        let started = Instant::now();
        let err = run(
            Path::new("/bin/sh"),
            &["-c".into(), "sleep 30 & sleep 30; wait".into()],
            "sh sleepy",
            Duration::from_millis(300),
        )
        .err()
        .unwrap();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn display_quotes_words_with_spaces() {
        assert_eq!(
            display("helm", &["template".into(), "a b".into()]),
            "helm template \"a b\""
        );
    }
}
