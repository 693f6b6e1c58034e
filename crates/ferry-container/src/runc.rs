//! runc's command line: every call passes `--root` (the runtime's own state directory,
//! never the system default, so daemons and tests never see each other's containers)
//! and turns a failure into an [`Error`] that quotes runc's last stderr lines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use serde::Deserialize;

use crate::error::{Error, Result};

/// What `runc state` / `runc list --format json` say about a container.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct RuncState {
    /// The container id.
    pub id: String,
    /// Host pid of the container's init (0 once stopped).
    #[serde(default)]
    pub pid: u32,
    /// `created`, `running`, `paused` or `stopped`.
    pub status: String,
    /// The bundle directory.
    #[serde(default)]
    pub bundle: PathBuf,
    /// RFC 3339 creation time.
    #[serde(default)]
    pub created: String,
    /// The bundle's annotations.
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The runc binary and the state directory it is used with.
#[derive(Clone, Debug)]
pub(crate) struct Runc {
    pub bin: PathBuf,
    pub root: PathBuf,
}

/// The last few non-empty lines of `text`, for error messages.
pub(crate) fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let start = lines.len().saturating_sub(n);
    let out = lines[start..].join(" | ");
    if out.is_empty() {
        "(runc said nothing)".to_string()
    } else {
        out
    }
}

/// runc's own `--log` file (JSON lines): the messages of its error-level entries.
pub(crate) fn log_errors(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let msgs: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| matches!(v["level"].as_str(), Some("error" | "fatal")))
        .filter_map(|v| v["msg"].as_str().map(str::to_string))
        .collect();
    last_lines(&msgs.join("\n"), 3)
}

impl Runc {
    /// `runc --root ROOT` with a clean environment (runc reads no variables we need to
    /// pass, and a caller's `XDG_RUNTIME_DIR` must not move its state).
    pub(crate) fn command(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into()),
            )
            .arg("--root")
            .arg(&self.root)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Runs `runc ARGS` to completion, stdout and stderr captured.
    pub(crate) async fn output(&self, id: &str, args: &[&str]) -> Result<Output> {
        let mut cmd = self.command();
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.output().await.map_err(|source| Error::Spawn {
            id: id.to_string(),
            program: self.bin.clone(),
            source,
        })
    }

    /// Runs `runc ARGS`; a non-zero exit is an error quoting stderr.
    pub(crate) async fn check(&self, id: &str, args: &[&str]) -> Result<Output> {
        let out = self.output(id, args).await?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(Error::Runc {
                id: id.to_string(),
                command: args.first().copied().unwrap_or_default().to_string(),
                runc: last_lines(&String::from_utf8_lossy(&out.stderr), 3),
            })
        }
    }

    /// `runc state ID`; `None` if runc does not know the container.
    pub(crate) async fn state(&self, id: &str) -> Result<Option<RuncState>> {
        let out = self.output(id, &["state", id]).await?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            if err.contains("does not exist") || err.contains("not exist") {
                return Ok(None);
            }
            return Err(Error::Runc {
                id: id.to_string(),
                command: "state".into(),
                runc: last_lines(&err, 3),
            });
        }
        serde_json::from_slice(&out.stdout)
            .map(Some)
            .map_err(|e| Error::Runc {
                id: id.to_string(),
                command: "state".into(),
                runc: format!("unreadable output: {e}"),
            })
    }

    /// `runc list --format json` (runc prints `null` when there are none).
    pub(crate) async fn list(&self) -> Result<Vec<RuncState>> {
        if !self.root.is_dir() {
            return Ok(Vec::new());
        }
        let out = self.check("*", &["list", "--format", "json"]).await?;
        let parsed: Option<Vec<RuncState>> =
            serde_json::from_slice(&out.stdout).map_err(|e| Error::Runc {
                id: "*".into(),
                command: "list".into(),
                runc: format!("unreadable output: {e}"),
            })?;
        Ok(parsed.unwrap_or_default())
    }

    /// `runc delete --force ID`: kills what is left and removes runc's state and the
    /// container's cgroups. A container runc does not know is already deleted.
    pub(crate) async fn delete(&self, id: &str) -> Result<()> {
        let out = self.output(id, &["delete", "--force", id]).await?;
        if out.status.success() {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("does not exist") || err.contains("not exist") {
            return Ok(());
        }
        Err(Error::Runc {
            id: id.to_string(),
            command: "delete".into(),
            runc: last_lines(&err, 3),
        })
    }

    /// `runc --version`'s first line.
    pub(crate) async fn version(&self) -> Result<String> {
        let out = self.check("-", &["--version"]).await?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_the_last_lines() {
        assert_eq!(last_lines("a\n\nb\nc\nd\n", 2), "c | d");
        assert_eq!(last_lines("", 2), "(runc said nothing)");
    }

    #[test]
    fn reads_runc_json_logs() {
        let t = tempfile::tempdir().unwrap();
        let log = t.path().join("runc.log");
        std::fs::write(
            &log,
            "{\"level\":\"warning\",\"msg\":\"meh\"}\n{\"level\":\"error\",\"msg\":\"runc run failed: exec: \\\"x\\\": not found\"}\n",
        )
        .unwrap();
        assert_eq!(log_errors(&log), "runc run failed: exec: \"x\": not found");
    }

    #[test]
    fn parses_state() {
        let s: RuncState = serde_json::from_str(
            r#"{"ociVersion":"1.0.2-dev","id":"t2","pid":0,"status":"stopped","bundle":"/b","rootfs":"/b/rootfs","created":"2026-01-01T00:00:00Z","owner":"","annotations":{"a":"b"}}"#,
        )
        .unwrap();
        assert_eq!(s.status, "stopped");
        assert_eq!(s.annotations.unwrap()["a"], "b");
    }
}
