//! Write-back: clone, edit, commit, push — through the `git` CLI, because gix cannot push.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::cache::RepoCache;
use crate::commit::CommitId;
use crate::creds::{self, Credentials, GitAuth};
use crate::error::{Error, Result};
use crate::url::RepoUrl;

/// Name and e-mail of the commits ferry writes.
pub const FERRY_AUTHOR_NAME: &str = "ferry";
/// E-mail of the commits ferry writes.
pub const FERRY_AUTHOR_EMAIL: &str = "ferry@localhost";

impl RepoCache {
    /// Commit a change to `branch` of `url` and push it (the write-back of pipelines).
    ///
    /// Clones the branch into a private temp directory (borrowing objects from the
    /// mirror when there is one), runs `edit` on the working tree, commits everything it
    /// changed as `ferry <ferry@localhost>` and pushes. If the branch moved meanwhile the
    /// push is refused by the remote; the change is then rebased onto the new tip and
    /// pushed once more. A conflict, or a branch that moves again, gives
    /// [`Error::BranchMoved`] and nothing is pushed. When `edit` changes nothing, no
    /// commit is made and the branch's current tip is returned.
    ///
    /// On success the mirror is fetched again (best effort), so that
    /// [`RepoCache::resolve`] sees the new commit at once.
    pub fn commit_and_push(
        &self,
        url: &str,
        branch: &str,
        message: &str,
        edit: impl FnOnce(&Path) -> std::io::Result<()>,
        creds: Option<&Credentials>,
    ) -> Result<CommitId> {
        let repo_url = RepoUrl::parse(url)?;
        validate_branch(branch)?;
        let effective = creds::effective(&repo_url, creds);
        let git = Git {
            url: &repo_url,
            creds: effective.as_ref(),
            auth: GitAuth::new(&repo_url, effective.as_ref())?,
        };
        let tmp_root = self.root.join("tmp");
        std::fs::create_dir_all(&tmp_root).map_err(|e| Error::io("cannot create", &tmp_root, e))?;
        let work = tempfile::Builder::new()
            .prefix("push-")
            .tempdir_in(&tmp_root)
            .map_err(|e| Error::io("cannot create a temp dir in", &tmp_root, e))?;
        let dir = work.path().join("repo");

        let mut clone: Vec<OsString> = [
            "clone",
            "--quiet",
            "--no-tags",
            "--single-branch",
            "--branch",
            branch,
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let mirror = self.mirror(&repo_url);
        if mirror.dir.join("HEAD").is_file() {
            clone.push("--reference-if-able".into());
            clone.push(mirror.dir.clone().into());
        }
        clone.push("--".into());
        clone.push(repo_url.display().into());
        clone.push(dir.clone().into());
        git.run(None, "clone", &clone)?;

        edit(&dir).map_err(|source| Error::Edit {
            url: repo_url.display().to_string(),
            source,
        })?;
        git.run(Some(&dir), "add", &args(["add", "--all"]))?;
        let staged = git.output(Some(&dir), &args(["diff", "--cached", "--quiet"]))?;
        if staged.status.success() {
            return git.head(&dir);
        }
        let message = if message.trim().is_empty() {
            "ferry: update"
        } else {
            message
        };
        git.run(
            Some(&dir),
            "commit",
            &args(["commit", "--quiet", "--no-verify", "-m", message]),
        )?;

        if let Push::Rejected(first) = git.push(&dir, branch)? {
            git.run(
                Some(&dir),
                "fetch",
                &args(["fetch", "--quiet", "origin", branch]),
            )?;
            let rebase = git.output(Some(&dir), &args(["rebase", "--quiet", "FETCH_HEAD"]))?;
            if !rebase.status.success() {
                let _ = git.output(Some(&dir), &args(["rebase", "--abort"]));
                return Err(Error::BranchMoved {
                    url: repo_url.display().to_string(),
                    branch: branch.to_string(),
                    message: format!(
                        "our change conflicts with the new commits: {}",
                        git.tail(&rebase)
                    ),
                });
            }
            if let Push::Rejected(second) = git.push(&dir, branch)? {
                return Err(Error::BranchMoved {
                    url: repo_url.display().to_string(),
                    branch: branch.to_string(),
                    message: format!(
                        "refused twice ({first}; then after rebasing: {second}); try again later"
                    ),
                });
            }
        }
        let id = git.head(&dir)?;
        // Best effort: the push succeeded; a failed refresh only delays what resolve sees.
        let _ = self.fetch(url, creds);
        Ok(id)
    }
}

enum Push {
    Pushed,
    /// The remote refused a non-fast-forward update: the branch moved.
    Rejected(String),
}

struct Git<'a> {
    url: &'a RepoUrl,
    creds: Option<&'a Credentials>,
    auth: GitAuth,
}

fn args<const N: usize>(a: [&str; N]) -> Vec<OsString> {
    a.iter().map(OsString::from).collect()
}

impl Git<'_> {
    fn command(&self, dir: Option<&Path>, args: &[OsString]) -> Command {
        let mut cmd = Command::new("git");
        for c in self.auth.config.iter().map(String::as_str).chain([
            "commit.gpgsign=false",
            "core.hooksPath=/dev/null",
            "advice.detachedHead=false",
            "rebase.autoStash=false",
        ]) {
            cmd.arg("-c").arg(c);
        }
        cmd.args(args.iter().map(OsString::as_os_str));
        if let Some(d) = dir {
            cmd.current_dir(d);
        }
        for v in [
            "GIT_DIR",
            "GIT_WORK_TREE",
            "GIT_INDEX_FILE",
            "GIT_OBJECT_DIRECTORY",
        ] {
            cmd.env_remove(v);
        }
        cmd.env("LC_ALL", "C")
            .env("GIT_AUTHOR_NAME", FERRY_AUTHOR_NAME)
            .env("GIT_AUTHOR_EMAIL", FERRY_AUTHOR_EMAIL)
            .env("GIT_COMMITTER_NAME", FERRY_AUTHOR_NAME)
            .env("GIT_COMMITTER_EMAIL", FERRY_AUTHOR_EMAIL);
        cmd.envs(self.auth.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd.stdin(Stdio::null());
        cmd
    }

    fn output(&self, dir: Option<&Path>, args: &[OsString]) -> Result<Output> {
        let sub = args
            .first()
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.command(dir, args)
            .output()
            .map_err(|e| Error::GitCommand {
                url: self.url.display().to_string(),
                command: sub,
                message: format!("cannot run `git` (is it installed and on PATH?): {e}"),
            })
    }

    fn run(&self, dir: Option<&Path>, sub: &str, args: &[OsString]) -> Result<Output> {
        let out = self.output(dir, args)?;
        if out.status.success() {
            return Ok(out);
        }
        Err(Error::GitCommand {
            url: self.url.display().to_string(),
            command: sub.to_string(),
            message: self.tail(&out),
        })
    }

    /// The last lines of stderr (else stdout), redacted.
    fn tail(&self, out: &Output) -> String {
        let text = if out.stderr.iter().any(|b| !b.is_ascii_whitespace()) {
            String::from_utf8_lossy(&out.stderr)
        } else {
            String::from_utf8_lossy(&out.stdout)
        };
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(4)..].join(" | ");
        let msg = if tail.is_empty() {
            format!("exit status {}", out.status)
        } else {
            tail
        };
        creds::redact(&msg, self.creds)
    }

    fn head(&self, dir: &Path) -> Result<CommitId> {
        let out = self.run(Some(dir), "rev-parse", &args(["rev-parse", "HEAD"]))?;
        CommitId::parse(String::from_utf8_lossy(&out.stdout).trim())
    }

    fn push(&self, dir: &Path, branch: &str) -> Result<Push> {
        let refspec = format!("HEAD:refs/heads/{branch}");
        let out = self.output(
            Some(dir),
            &[
                OsStr::new("push").into(),
                OsStr::new("--porcelain").into(),
                OsStr::new("origin").into(),
                refspec.into(),
            ],
        )?;
        if out.status.success() {
            return Ok(Push::Pushed);
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        // `--porcelain`: `!<TAB>from:to<TAB>[rejected] (fetch first)` — a plain
        // `[rejected]` is the branch having moved; `[remote rejected]` (a hook, a
        // protected branch) is a real failure and is not retried.
        if let Some(line) = stdout
            .lines()
            .find(|l| l.starts_with('!') && l.contains("[rejected]"))
        {
            let reason = line.rsplit('\t').next().unwrap_or(line).trim().to_string();
            return Ok(Push::Rejected(reason));
        }
        Err(Error::GitCommand {
            url: self.url.display().to_string(),
            command: "push".into(),
            message: self.tail(&out),
        })
    }
}

/// The rules of `git check-ref-format --branch`, enough to keep a name from being read
/// as an option or a refspec.
fn validate_branch(branch: &str) -> Result<()> {
    let bad = branch.is_empty()
        || branch.starts_with(['-', '/'])
        || branch.ends_with(['/', '.'])
        || branch.ends_with(".lock")
        || branch.contains("..")
        || branch.contains("@{")
        || branch.contains("//")
        || branch
            .chars()
            .any(|c| c.is_ascii_control() || " ~^:?*[\\".contains(c));
    if bad {
        return Err(Error::InvalidBranch {
            branch: branch.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_are_checked() {
        assert!(validate_branch("main").is_ok());
        assert!(validate_branch("release/1.2").is_ok());
        for bad in ["", "-f", "a..b", "a b", "x:y", "a/", "HEAD@{1}"] {
            assert!(validate_branch(bad).is_err(), "{bad}");
        }
    }
}
