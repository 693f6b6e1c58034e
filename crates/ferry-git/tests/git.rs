//! ferry-git against real `git` repositories: a work repo, a bare remote, and (for the
//! HTTP tests) `git http-backend` behind a tiny server.

#[path = "support/harness.rs"]
mod harness;
#[path = "support/http.rs"]
mod http;

use std::path::Path;
use std::time::SystemTime;

use ferry_git::{Credentials, Error, RepoCache, path_touched};
use harness::{Fixture, git, id};

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()))
}

fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

/// Branch, tag (lightweight and annotated), short and full SHA, HEAD, `refs/…` and the
/// empty revision, against one URL.
fn assert_resolves_everything(f: &Fixture, cache: &RepoCache, url: &str) {
    let r = |rev: &str| {
        cache
            .resolve(url, rev)
            .unwrap_or_else(|e| panic!("resolve {rev:?}: {e}"))
            .to_string()
    };
    assert_eq!(r("main"), f.c2);
    assert_eq!(r("dev"), f.dev);
    assert_eq!(r("v1.0"), f.c1, "lightweight tag");
    assert_eq!(r("v1.1"), f.c2, "annotated tag peels to its commit");
    assert_eq!(r(&f.c1), f.c1, "full SHA");
    assert_eq!(r(&f.c1.to_uppercase()), f.c1, "full SHA, any case");
    assert_eq!(r(&f.dev[..7]), f.dev, "short SHA");
    assert_eq!(r("HEAD"), f.c2, "HEAD is the remote's default branch");
    assert_eq!(r(""), f.c2, "empty revision means HEAD");
    assert_eq!(r("refs/heads/dev"), f.dev);
    assert_eq!(r("refs/tags/v1.0"), f.c1);
}

#[test]
fn resolves_branches_tags_shas_and_head_over_file_url() {
    let f = Fixture::new();
    let cache = f.cache();
    let out = cache.fetch(&f.file_url(), None).unwrap();
    assert!(out.created);
    assert!(out.updated_refs >= 4, "{out:?}");
    assert_resolves_everything(&f, &cache, &f.file_url());
}

#[test]
fn resolves_over_plain_path_relative_path_and_path_with_spaces() {
    let f = Fixture::with_remote_name("my remote repo.git");
    let cache = f.cache();
    // No explicit fetch: resolve fetches a mirror that does not exist yet.
    assert_resolves_everything(&f, &cache, &f.path_url());
    assert_eq!(cache.stats().fetches, 1);

    // `../…/remote` relative to the current directory names the same mirror.
    let cwd = std::env::current_dir().unwrap();
    let ups = "../".repeat(cwd.components().count() - 1);
    let relative = format!("{ups}{}", f.path_url().trim_start_matches('/'));
    assert_eq!(cache.resolve(&relative, "main").unwrap().as_str(), f.c2);
    assert_eq!(
        cache.mirror_dir(&relative).unwrap(),
        cache.mirror_dir(&f.path_url()).unwrap()
    );
    assert_eq!(
        cache.stats().fetches,
        1,
        "the relative path reused the mirror"
    );

    let url = format!("file://{}", f.remote.display());
    cache.fetch(&url, None).unwrap();
    assert_eq!(cache.resolve(&url, "v1.0").unwrap().as_str(), f.c1);
    let name = cache.mirror_dir(&url).unwrap();
    assert!(!name.file_name().unwrap().to_string_lossy().contains(' '));
}

#[test]
fn a_pushed_commit_is_seen_after_fetch_and_not_before() {
    let f = Fixture::new();
    let cache = f.cache();
    let url = f.file_url();
    cache.fetch(&url, None).unwrap();
    assert_eq!(cache.resolve(&url, "main").unwrap().as_str(), f.c2);

    let c3 = f.push_commit(&[("apps/web/deploy.yaml", "image: web:v3\n")], "third");
    assert_eq!(
        cache.resolve(&url, "main").unwrap().as_str(),
        f.c2,
        "not before a fetch"
    );
    assert!(matches!(
        cache.resolve(&url, &c3),
        Err(Error::RevisionNotFound { .. })
    ));

    let out = cache.fetch(&url, None).unwrap();
    assert!(!out.created);
    assert_eq!(out.updated_refs, 1, "{out:?}");
    assert_eq!(cache.resolve(&url, "main").unwrap().as_str(), c3);
    assert_eq!(cache.resolve(&url, &c3[..10]).unwrap().as_str(), c3);

    let again = cache.fetch(&url, None).unwrap();
    assert_eq!(again.updated_refs, 0, "nothing new: {again:?}");

    // A second cache on the same root (a restarted daemon) reads the mirror from disk.
    let restarted = f.cache();
    assert_eq!(restarted.resolve(&url, "main").unwrap().as_str(), c3);
    assert_eq!(restarted.stats().fetches, 0);
}

#[test]
fn deleted_branches_are_pruned_and_head_follows_the_default_branch() {
    let f = Fixture::new();
    let cache = f.cache();
    let url = f.file_url();
    cache.fetch(&url, None).unwrap();
    git(&f.work, &["push", "--quiet", "origin", "--delete", "dev"]);
    git(&f.remote, &["symbolic-ref", "HEAD", "refs/tags/v1.0"]);
    git(&f.work, &["push", "--quiet", "origin", "main:release"]);
    git(&f.remote, &["symbolic-ref", "HEAD", "refs/heads/release"]);
    f.push_commit(&[("x", "y")], "main moves on");
    let out = cache.fetch(&url, None).unwrap();
    assert!(out.updated_refs >= 3, "{out:?}");
    assert!(matches!(
        cache.resolve(&url, "dev"),
        Err(Error::RevisionNotFound { .. })
    ));
    assert_eq!(
        cache.resolve(&url, "HEAD").unwrap().as_str(),
        f.c2,
        "HEAD → release"
    );
    assert_eq!(cache.resolve(&url, "release").unwrap().as_str(), f.c2);
}

#[test]
fn a_branch_wins_over_a_tag_of_the_same_name() {
    let f = Fixture::new();
    git(&f.work, &["tag", "dev", &f.c1]);
    git(&f.work, &["push", "--quiet", "origin", "refs/tags/dev"]);
    let cache = f.cache();
    cache.fetch(&f.file_url(), None).unwrap();
    assert_eq!(cache.resolve(&f.file_url(), "dev").unwrap().as_str(), f.dev);
    assert_eq!(
        cache
            .resolve(&f.file_url(), "refs/tags/dev")
            .unwrap()
            .as_str(),
        f.c1
    );
}

#[test]
fn checkout_of_a_subpath_at_two_commits_is_right_and_cached() {
    let f = Fixture::new();
    let cache = f.cache();
    let url = f.file_url();
    cache.fetch(&url, None).unwrap();

    let d1 = cache.checkout(&url, &id(&f.c1), "apps/web").unwrap();
    let d2 = cache.checkout(&url, &id(&f.c2), "./apps/web/").unwrap();
    assert_ne!(d1, d2);
    assert_eq!(read(&d1, "deploy.yaml"), "image: web:v1\n");
    assert_eq!(read(&d2, "deploy.yaml"), "image: web:v2\n");
    assert_eq!(cache.stats().trees_written, 2);

    // The overlay can still reach its siblings, as under Argo CD.
    assert_eq!(read(&d1, "../api/deploy.yaml"), "image: api:v1\n");
    let whole = cache.checkout(&url, &id(&f.c1), ".").unwrap();
    assert_eq!(read(&whole, "README.md"), "hello\n");
    assert_eq!(cache.checkout(&url, &id(&f.c1), "").unwrap(), whole);

    let before = mtime(&d1.join("deploy.yaml"));
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(cache.checkout(&url, &id(&f.c1), "apps/web").unwrap(), d1);
    assert_eq!(
        cache.checkout(&url, &id(&f.c1), "apps/api").unwrap(),
        whole.join("apps/api")
    );
    assert_eq!(
        cache.stats().trees_written,
        2,
        "second checkout is a cache hit"
    );
    assert_eq!(mtime(&d1.join("deploy.yaml")), before, "no rewrite");

    // A restarted cache finds the checkout on disk and does not write it again.
    let restarted = f.cache();
    assert_eq!(
        restarted.checkout(&url, &id(&f.c1), "apps/web").unwrap(),
        d1
    );
    assert_eq!(restarted.stats().trees_written, 0);
    assert_eq!(mtime(&d1.join("deploy.yaml")), before);
}

#[test]
fn checkout_keeps_executables_and_inner_symlinks_and_refuses_escaping_ones() {
    let f = Fixture::new();
    let script = f.work.join("apps/web/run.sh");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("../api/deploy.yaml", f.work.join("apps/web/api.yaml")).unwrap();
    let inside = f.push_commit(&[], "exec + symlink");
    std::os::unix::fs::symlink("../../../../etc/passwd", f.work.join("apps/web/passwd")).unwrap();
    let outside = f.push_commit(&[], "escaping symlink");

    let cache = f.cache();
    let url = f.file_url();
    cache.fetch(&url, None).unwrap();
    let d = cache.checkout(&url, &id(&inside), "apps/web").unwrap();
    let mode = std::fs::metadata(d.join("run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111, "executable bit kept");
    assert_eq!(read(&d, "api.yaml"), "image: api:v1\n");

    let err = cache.checkout(&url, &id(&outside), "apps/web").unwrap_err();
    assert!(matches!(err, Error::UnsafeSymlink { .. }), "{err}");
    assert!(err.to_string().contains("apps/web/passwd"), "{err}");
}

#[test]
fn missing_path_and_missing_revision_give_errors_naming_them() {
    let f = Fixture::new();
    let cache = f.cache();
    let url = f.file_url();
    cache.fetch(&url, None).unwrap();

    let err = cache.checkout(&url, &id(&f.c1), "apps/nope").unwrap_err();
    assert!(matches!(err, Error::PathNotFound { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("apps/nope") && msg.contains(&f.c1) && msg.contains(&url),
        "{msg}"
    );

    let err = cache.checkout(&url, &id(&f.c1), "README.md").unwrap_err();
    assert!(matches!(err, Error::NotADirectory { .. }), "{err}");
    let err = cache.checkout(&url, &id(&f.c1), "../etc").unwrap_err();
    assert!(matches!(err, Error::InvalidPath { .. }), "{err}");

    for rev in ["no-such-branch", "deadbeef", "abc", &"0".repeat(40)] {
        let err = cache.resolve(&url, rev).unwrap_err();
        assert!(
            matches!(err, Error::RevisionNotFound { .. }),
            "{rev}: {err}"
        );
        let msg = err.to_string();
        assert!(msg.contains(rev) && msg.contains(&url), "{msg}");
    }

    let unknown = id(&"1".repeat(40));
    let err = cache.checkout(&url, &unknown, ".").unwrap_err();
    assert!(matches!(err, Error::CommitNotFound { .. }), "{err}");
    assert!(err.to_string().contains(unknown.as_str()));
}

#[test]
fn an_unreachable_remote_errors_and_keeps_the_old_cache_usable() {
    let f = Fixture::new();
    let cache = f.cache();
    let url = f.path_url();
    cache.fetch(&url, None).unwrap();
    let d = cache.checkout(&url, &id(&f.c2), "apps/web").unwrap();

    // The remote disappears.
    let moved = f.tmp.path().join("gone.git");
    std::fs::rename(&f.remote, &moved).unwrap();
    let err = cache.fetch(&url, None).unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    assert!(
        err.to_string().starts_with(&format!("cannot reach {url}")),
        "{err}"
    );

    // The last known state still answers, from this cache and from a restarted one.
    assert_eq!(cache.resolve(&url, "main").unwrap().as_str(), f.c2);
    let old = cache.checkout(&url, &id(&f.c1), "apps/web").unwrap();
    assert_eq!(
        read(&old, "deploy.yaml"),
        "image: web:v1\n",
        "an unseen commit of the mirror"
    );
    assert_eq!(cache.checkout(&url, &id(&f.c2), "apps/web").unwrap(), d);
    let restarted = f.cache();
    assert_eq!(restarted.resolve(&url, "dev").unwrap().as_str(), f.dev);
    assert_eq!(
        restarted
            .changed_paths(&url, &id(&f.c1), &id(&f.c2))
            .unwrap()
            .len(),
        1
    );

    // It comes back.
    std::fs::rename(&moved, &f.remote).unwrap();
    cache.fetch(&url, None).unwrap();
}

#[test]
fn never_reachable_urls_error_and_leave_no_mirror() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = RepoCache::new(tmp.path());
    for url in [
        "file:///nonexistent/repo.git",
        "http://127.0.0.1:1/x.git",
        "/nonexistent/plain",
    ] {
        let err = cache.fetch(url, None).unwrap_err();
        assert!(matches!(err, Error::Unreachable { .. }), "{url}: {err}");
        assert!(
            err.to_string().contains(&format!("cannot reach {url}")),
            "{err}"
        );
        let err = cache.resolve(url, "main").unwrap_err();
        assert!(matches!(err, Error::Unreachable { .. }), "{url}: {err}");
    }
    let mirrors = tmp.path().join("mirrors");
    let left: Vec<_> = std::fs::read_dir(&mirrors)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "no half-made mirror: {left:?}");
    let tmp_left: Vec<_> = std::fs::read_dir(tmp.path().join("tmp"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(tmp_left.is_empty(), "temp dirs cleaned: {tmp_left:?}");
}

#[test]
fn credentials_never_appear_in_errors_or_cache_names() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = RepoCache::new(tmp.path());
    let url = "http://user:secret@127.0.0.1:1/org/x.git";
    let err = cache.fetch(url, None).unwrap_err();
    let msg = format!("{err} / {err:?}");
    assert!(matches!(err, Error::Unreachable { .. }), "{msg}");
    assert!(!msg.contains("secret"), "{msg}");
    assert!(msg.contains("http://127.0.0.1:1/org/x.git"), "{msg}");

    let creds = Credentials {
        username: Some("user".into()),
        password: Some("s3cr3t-token".into()),
        ssh_private_key: Some(
            "-----BEGIN KEY-----\nAAAAsupersecretkeymaterial\n-----END KEY-----".into(),
        ),
        insecure: false,
    };
    let err = cache
        .fetch("https://127.0.0.1:1/x.git", Some(&creds))
        .unwrap_err();
    let msg = format!("{err} / {err:?} / {creds:?}");
    assert!(
        !msg.contains("s3cr3t") && !msg.contains("supersecret"),
        "{msg}"
    );

    let err = cache
        .commit_and_push(url, "main", "m", |_| Ok(()), None)
        .unwrap_err();
    let msg = format!("{err} / {err:?}");
    assert!(matches!(err, Error::GitCommand { .. }), "{msg}");
    assert!(!msg.contains("secret"), "{msg}");

    let name = cache.mirror_dir(url).unwrap();
    assert!(!name.to_string_lossy().contains("secret"));
    assert!(!name.to_string_lossy().contains("user"));
}

#[test]
fn changed_paths_lists_what_differs_between_two_commits() {
    let f = Fixture::new();
    std::fs::remove_file(f.work.join("README.md")).unwrap();
    let c3 = f.push_commit(
        &[
            ("apps/api/deploy.yaml", "image: api:v3\n"),
            ("apps/new/a.yaml", "a\n"),
            ("apps/new/sub/b.yaml", "b\n"),
        ],
        "third",
    );
    let cache = f.cache();
    let url = f.file_url();
    cache.fetch(&url, None).unwrap();

    let one = cache.changed_paths(&url, &id(&f.c1), &id(&f.c2)).unwrap();
    assert_eq!(one, vec!["apps/web/deploy.yaml"]);
    assert!(path_touched(&one, "apps/web"));
    assert!(!path_touched(&one, "apps/api"));

    let many = cache.changed_paths(&url, &id(&f.c2), &id(&c3)).unwrap();
    assert_eq!(
        many,
        vec![
            "README.md",
            "apps/api/deploy.yaml",
            "apps/new/a.yaml",
            "apps/new/sub/b.yaml"
        ]
    );
    assert!(!path_touched(&many, "apps/web"));
    assert!(
        cache
            .changed_paths(&url, &id(&c3), &id(&c3))
            .unwrap()
            .is_empty()
    );
    let back = cache.changed_paths(&url, &id(&c3), &id(&f.c2)).unwrap();
    assert_eq!(back, many, "the same paths in either direction");
}

#[test]
fn commit_info_reports_message_author_and_time() {
    let f = Fixture::new();
    let cache = f.cache();
    let url = f.file_url();
    let info = cache.commit_info(&url, &id(&f.c2)).unwrap();
    assert_eq!(info.summary, "second");
    assert_eq!(info.message, "second");
    assert_eq!(info.author_name, "t");
    assert_eq!(info.author_email, "t@t");
    assert_eq!(info.parents, vec![id(&f.c1)]);
    let git_time: i64 = git(&f.work, &["log", "-1", "--format=%at", &f.c2])
        .parse()
        .unwrap();
    assert_eq!(info.time, git_time);
}

#[test]
fn commit_and_push_lands_on_the_remote_and_resolve_sees_it() {
    let f = Fixture::new();
    let cache = f.cache();
    let url = f.file_url();
    cache.fetch(&url, None).unwrap();
    let pushed = cache
        .commit_and_push(
            &url,
            "main",
            "bump web to v9",
            |dir| std::fs::write(dir.join("apps/web/deploy.yaml"), "image: web:v9\n"),
            None,
        )
        .unwrap();
    assert_eq!(f.remote_tip("main"), pushed.as_str());
    assert_eq!(
        cache.resolve(&url, "main").unwrap(),
        pushed,
        "the mirror was refreshed"
    );
    let info = cache.commit_info(&url, &pushed).unwrap();
    assert_eq!(
        (info.author_name.as_str(), info.author_email.as_str()),
        ("ferry", "ferry@localhost")
    );
    assert_eq!(info.summary, "bump web to v9");
    assert_eq!(info.parents, vec![id(&f.c2)]);
    let d = cache.checkout(&url, &pushed, "apps/web").unwrap();
    assert_eq!(read(&d, "deploy.yaml"), "image: web:v9\n");

    // An edit that changes nothing makes no commit.
    let same = cache
        .commit_and_push(&url, "main", "noop", |_| Ok(()), None)
        .unwrap();
    assert_eq!(same, pushed);
    assert_eq!(f.remote_tip("main"), pushed.as_str());

    // A failing edit pushes nothing.
    let err = cache
        .commit_and_push(
            &url,
            "main",
            "x",
            |_| Err(std::io::Error::other("boom")),
            None,
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::Edit { .. }) && err.to_string().contains("boom"),
        "{err}"
    );
    assert_eq!(f.remote_tip("main"), pushed.as_str());
}

#[test]
fn a_push_race_is_rebased_and_a_conflicting_one_refused() {
    let f = Fixture::new();
    let cache = f.cache();
    let url = f.path_url();

    // Someone else lands a commit on another file while we edit: rebased, both kept.
    let theirs = std::cell::RefCell::new(String::new());
    let ours = cache
        .commit_and_push(
            &url,
            "main",
            "ours",
            |dir| {
                *theirs.borrow_mut() =
                    f.push_commit(&[("apps/api/deploy.yaml", "image: api:theirs\n")], "theirs");
                std::fs::write(dir.join("apps/web/deploy.yaml"), "image: web:ours\n")
            },
            None,
        )
        .unwrap();
    assert_eq!(f.remote_tip("main"), ours.as_str());
    let info = cache.commit_info(&url, &ours).unwrap();
    assert_eq!(
        info.parents,
        vec![id(&theirs.borrow())],
        "rebased onto their commit"
    );
    let d = cache.checkout(&url, &ours, "apps").unwrap();
    assert_eq!(read(&d, "web/deploy.yaml"), "image: web:ours\n");
    assert_eq!(read(&d, "api/deploy.yaml"), "image: api:theirs\n");

    // Someone else changes the same line: refused, the remote keeps their commit.
    git(&f.work, &["pull", "--quiet", "--rebase", "origin", "main"]);
    let mut theirs2 = String::new();
    let err = cache
        .commit_and_push(
            &url,
            "main",
            "ours again",
            |dir| {
                theirs2 = f.push_commit(
                    &[("apps/web/deploy.yaml", "image: web:theirs\n")],
                    "theirs 2",
                );
                std::fs::write(dir.join("apps/web/deploy.yaml"), "image: web:ours2\n")
            },
            None,
        )
        .unwrap_err();
    assert!(matches!(err, Error::BranchMoved { .. }), "{err}");
    assert!(err.to_string().contains("main"), "{err}");
    assert_eq!(f.remote_tip("main"), theirs2);
}

#[test]
fn commit_and_push_to_a_missing_branch_or_bad_name_fails_clearly() {
    let f = Fixture::new();
    let cache = f.cache();
    let err = cache
        .commit_and_push(&f.file_url(), "nope", "m", |_| Ok(()), None)
        .unwrap_err();
    assert!(matches!(err, Error::GitCommand { .. }), "{err}");
    assert!(err.to_string().contains("nope"), "{err}");
    let err = cache
        .commit_and_push(&f.file_url(), "--force", "m", |_| Ok(()), None)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidBranch { .. }), "{err}");
}

#[test]
fn concurrent_fetches_and_checkouts_of_one_repo_take_turns() {
    let f = Fixture::new();
    let cache = std::sync::Arc::new(f.cache());
    let url = f.file_url();
    let c1 = id(&f.c1);
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (cache, url, c1) = (cache.clone(), url.clone(), c1.clone());
            std::thread::spawn(move || {
                if i % 2 == 0 {
                    cache.fetch(&url, None).map(|_| ())?;
                }
                let head = cache.resolve(&url, "main")?;
                cache.checkout(&url, &c1, "apps/web")?;
                cache.checkout(&url, &head, "apps/web").map(|_| ())
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    assert_eq!(cache.stats().trees_written, 2, "each commit written once");
    let mirrors: Vec<_> = std::fs::read_dir(f.cache_root.join("mirrors"))
        .unwrap()
        .collect();
    assert_eq!(mirrors.len(), 1);
}

#[test]
fn fetch_and_push_over_smart_http_with_basic_auth() {
    let f = Fixture::new();
    let server = http::GitHttpServer::start(f.tmp.path(), Some(("alice", "pa55word")));
    let url = server.url("remote.git");
    let cache = f.cache();

    let err = cache.fetch(&url, None).unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    let wrong = Credentials {
        username: Some("alice".into()),
        password: Some("wrong-password".into()),
        ..Default::default()
    };
    let err = cache.fetch(&url, Some(&wrong)).unwrap_err();
    assert!(!err.to_string().contains("wrong-password"), "{err}");

    let creds = Credentials {
        username: Some("alice".into()),
        password: Some("pa55word".into()),
        ..Default::default()
    };
    cache.fetch(&url, Some(&creds)).unwrap();
    assert_eq!(cache.resolve(&url, "main").unwrap().as_str(), f.c2);
    assert_eq!(cache.resolve(&url, "v1.1").unwrap().as_str(), f.c2);
    assert!(
        server
            .unauthorized
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 1
    );
    let mirror_config =
        std::fs::read_to_string(cache.mirror_dir(&url).unwrap().join("config")).unwrap();
    assert!(!mirror_config.contains("pa55word"));

    // Credentials in the URL work too, and the mirror is shared with the plain URL.
    let with_userinfo = url.replace("http://", "http://alice:pa55word@");
    assert_eq!(
        cache.resolve(&with_userinfo, "dev").unwrap().as_str(),
        f.dev
    );
    assert_eq!(
        cache.mirror_dir(&with_userinfo).unwrap(),
        cache.mirror_dir(&url).unwrap()
    );

    // Write-back through the git CLI with the askpass helper.
    let pushed = cache
        .commit_and_push(
            &url,
            "main",
            "over http",
            |dir| std::fs::write(dir.join("apps/web/deploy.yaml"), "image: web:http\n"),
            Some(&creds),
        )
        .unwrap();
    assert_eq!(f.remote_tip("main"), pushed.as_str());
    assert_eq!(cache.resolve(&url, "main").unwrap(), pushed);
}

/// `openssl s_server` with a self-signed certificate, killed on drop.
struct TlsServer {
    child: std::process::Child,
    port: u16,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_self_signed_https(dir: &Path) -> Option<TlsServer> {
    use std::process::{Command, Stdio};
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args([
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?
        .success();
    if !ok {
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new("openssl")
        .args([
            "s_server", "-quiet", "-WWW", "-cert", "cert.pem", "-key", "key.pem",
        ])
        .args(["-accept", &format!("127.0.0.1:{port}")])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let server = TlsServer { child, port };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if std::time::Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Some(server)
}

#[test]
fn insecure_skips_tls_verification_and_secure_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(server) = start_self_signed_https(tmp.path()) else {
        eprintln!("skipped: `openssl` cannot run a test TLS server here");
        return;
    };
    let url = format!("https://127.0.0.1:{}/x.git", server.port);
    let cache = RepoCache::new(tmp.path().join("cache"));

    let secure = cache.fetch(&url, None).unwrap_err().to_string();
    assert!(secure.to_lowercase().contains("certificate"), "{secure}");

    let creds = Credentials {
        insecure: true,
        ..Default::default()
    };
    // The TLS handshake now succeeds; this server speaks no Git, so the fetch still fails
    // for another reason.
    let insecure = cache.fetch(&url, Some(&creds)).unwrap_err().to_string();
    assert!(
        !insecure.to_lowercase().contains("certificate"),
        "{insecure}"
    );
    assert!(
        insecure.starts_with(&format!("cannot reach {url}")),
        "{insecure}"
    );
}

#[test]
fn regression_git_credentials_not_sent_across_redirect() {
    // The registered repository (one port) redirects to another server (another
    // port, so another origin) that asks for the same credentials: it must never get
    // them, neither through gix (fetch) nor through the git CLI (write-back), whether
    // the first server asked for credentials before redirecting or not.
    let f = Fixture::new();
    let other = http::GitHttpServer::start(f.tmp.path(), Some(("alice", "pa55word")));
    let creds = Credentials {
        username: Some("alice".into()),
        password: Some("pa55word".into()),
        ..Default::default()
    };
    let leaked = |server: &http::GitHttpServer| server.authorizations.lock().unwrap().clone();
    for first_asks in [false, true] {
        let registered =
            http::Redirector::start(&other.url(""), first_asks.then_some(("alice", "pa55word")));
        let url = registered.url("remote.git");
        let cache = f.cache();

        let err = cache.fetch(&url, Some(&creds)).unwrap_err();
        assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
        assert_eq!(
            leaked(&other),
            Vec::<String>::new(),
            "fetch, first_asks={first_asks}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&url), "{msg}");
        if !first_asks {
            // The redirect was followed without credentials; the error names both ends.
            assert!(msg.contains(&other.url("remote.git")), "{msg}");
            assert!(msg.contains("never to another origin"), "{msg}");
        }

        let err = cache
            .commit_and_push(
                &url,
                "main",
                "through a redirect",
                |dir| std::fs::write(dir.join("apps/web/deploy.yaml"), "image: web:redirected\n"),
                Some(&creds),
            )
            .unwrap_err();
        assert!(!err.to_string().contains("pa55word"), "{err}");
        assert_eq!(
            leaked(&other),
            Vec::<String>::new(),
            "push, first_asks={first_asks}"
        );
        if first_asks {
            // The registered origin itself did get them: that is what they are for.
            assert!(!registered.authorizations.lock().unwrap().is_empty());
        }
    }
    assert_eq!(f.remote_tip("main"), f.c2, "nothing was pushed");
}

#[test]
fn regression_a_huge_file_in_a_commit_is_checked_out_sparse_never_read_into_memory() {
    use std::os::unix::fs::MetadataExt as _;
    let f = Fixture::new();
    let big = "x".repeat(ferry_git::CHECKOUT_CONTENT_LIMIT as usize + 1);
    let c = f.push_commit(
        &[("apps/web/big.yaml", big.as_str())],
        "a hostile 16 MiB+ file",
    );
    let cache = f.cache();
    let url = f.file_url();
    cache.fetch(&url, None).unwrap();
    let dir = cache.checkout(&url, &id(&c), "apps/web").unwrap();
    let meta = std::fs::metadata(dir.join("big.yaml")).unwrap();
    // Same size, so a render refuses it by its size and names it...
    assert_eq!(meta.len(), big.len() as u64);
    // ...but sparse: its content was never written, so never held in memory.
    assert!(
        meta.blocks() * 512 < meta.len() / 2,
        "{} blocks",
        meta.blocks()
    );
}
