//! Shared test harness: real `git` repositories in a temp dir — a work repo and a bare
//! repo acting as the remote.

use std::path::{Path, PathBuf};
use std::process::Command;

use ferry_git::{CommitId, RepoCache};

/// Run `git` in `dir` with a fixed identity; panics (with stderr) on failure; returns
/// trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "commit.gpgsign=false",
        ])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "protocol.file.allow=always",
        ])
        .args(args)
        .current_dir(dir)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A work repo with history, a bare remote it pushes to, and a cache root.
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    /// Non-bare repo where the test makes commits.
    pub work: PathBuf,
    /// Bare repo acting as the remote.
    pub remote: PathBuf,
    /// Root of the `RepoCache` under test.
    pub cache_root: PathBuf,
    /// First commit on main: apps/web v1, apps/api, README; tagged `v1.0` (lightweight).
    pub c1: String,
    /// Second commit on main: apps/web v2; tagged `v1.1` (annotated).
    pub c2: String,
    /// The tip of branch `dev` (forked from c1).
    pub dev: String,
}

impl Fixture {
    /// The standard history, with the remote at `<tmp>/remote.git`.
    pub fn new() -> Self {
        Self::with_remote_name("remote.git")
    }

    /// The standard history with the bare remote at `<tmp>/<name>` (e.g. with spaces).
    pub fn with_remote_name(name: &str) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let work = tmp.path().join("work");
        let remote = tmp.path().join(name);
        std::fs::create_dir_all(&work).unwrap();
        git(
            tmp.path(),
            &[
                "init",
                "--quiet",
                "--bare",
                "-b",
                "main",
                remote.to_str().unwrap(),
            ],
        );
        git(&work, &["init", "--quiet", "-b", "main"]);
        git(
            &work,
            &["remote", "add", "origin", remote.to_str().unwrap()],
        );
        let mut f = Fixture {
            cache_root: tmp.path().join("cache"),
            tmp,
            work,
            remote,
            c1: String::new(),
            c2: String::new(),
            dev: String::new(),
        };
        f.c1 = f.commit(
            &[
                ("apps/web/deploy.yaml", "image: web:v1\n"),
                ("apps/api/deploy.yaml", "image: api:v1\n"),
                ("README.md", "hello\n"),
            ],
            "first",
        );
        git(&f.work, &["tag", "v1.0"]);
        git(&f.work, &["checkout", "--quiet", "-b", "dev"]);
        f.dev = f.commit(&[("apps/web/deploy.yaml", "image: web:dev\n")], "dev work");
        git(&f.work, &["checkout", "--quiet", "main"]);
        f.c2 = f.commit(&[("apps/web/deploy.yaml", "image: web:v2\n")], "second");
        git(&f.work, &["tag", "-a", "v1.1", "-m", "release 1.1"]);
        git(
            &f.work,
            &["push", "--quiet", "origin", "main", "dev", "--tags"],
        );
        f
    }

    /// A fresh cache on this fixture's cache root.
    pub fn cache(&self) -> RepoCache {
        RepoCache::new(&self.cache_root)
    }

    /// `file://` URL of the remote.
    pub fn file_url(&self) -> String {
        format!("file://{}", self.remote.display())
    }

    /// Plain-path URL of the remote.
    pub fn path_url(&self) -> String {
        self.remote.display().to_string()
    }

    /// Write `files` in the work repo, commit on the current branch (not pushed).
    pub fn commit(&self, files: &[(&str, &str)], msg: &str) -> String {
        for (path, body) in files {
            let p = self.work.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, body).unwrap();
        }
        git(&self.work, &["add", "--all"]);
        git(&self.work, &["commit", "--quiet", "-m", msg]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// Commit on main and push it to the remote.
    pub fn push_commit(&self, files: &[(&str, &str)], msg: &str) -> String {
        let id = self.commit(files, msg);
        git(&self.work, &["push", "--quiet", "origin", "HEAD"]);
        id
    }

    /// The remote's tip of `branch`.
    pub fn remote_tip(&self, branch: &str) -> String {
        git(
            &self.remote,
            &["rev-parse", &format!("refs/heads/{branch}")],
        )
    }
}

/// `CommitId` from a hex string the test produced.
pub fn id(s: &str) -> CommitId {
    CommitId::parse(s).expect("a 40-hex SHA")
}
