//! Pushes reaching the daemon at once — GitHub's webhook and ferry's own post-receive
//! hook — and the API token a daemon bound beyond loopback asks for, end to end: a real
//! daemon process, real Git repositories, real HTTP.
//!
//! The daemons run with a 600 s reconciliation, so only a webhook explains an app
//! seeing a new commit within seconds.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod util;

use util::{Daemon, ferry_bin, git, serial};

/// Writes `manifests/cm.yaml` (a ConfigMap whose `value` is `value`) in the work tree
/// `dir` and commits it; returns the commit.
fn commit_value(dir: &Path, value: &str) -> String {
    std::fs::create_dir_all(dir.join("manifests")).unwrap();
    std::fs::write(
        dir.join("manifests/cm.yaml"),
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  value: \"{value}\"\n"),
    )
    .unwrap();
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", value]);
    git(dir, &["rev-parse", "HEAD"])
}

/// A daemon on `addr` with a 600 s reconciliation, taking pushes signed with
/// `secret` (from a file in its home) when one is given.
fn daemon(addr: &str, secret: Option<&str>) -> Daemon {
    let mut d = Daemon::new();
    let mut args = vec![
        "--addr".to_string(),
        addr.into(),
        "--reconciliation".into(),
        "600s".into(),
    ];
    if let Some(s) = secret {
        let f = d.home().join("webhook-secret");
        std::fs::write(&f, format!("{s}\n")).unwrap();
        args.extend(["--webhook-secret-file".into(), f.display().to_string()]);
    }
    d.spawn(&args.iter().map(String::as_str).collect::<Vec<_>>());
    d
}

/// The revision the app is Synced at, if it is Synced (read over raw HTTP: cheap
/// enough to poll every few milliseconds).
fn synced_at(d: &Daemon, name: &str) -> Option<String> {
    let bearer = bearer(d);
    let (code, body) = http(
        d.port,
        "GET",
        &format!("/api/v1/apps/{name}"),
        &[("Authorization", &bearer)],
        b"",
    );
    let v: Value = serde_json::from_str(&body).ok().filter(|_| code == 200)?;
    (v["status"]["sync"]["status"] == "Synced")
        .then(|| v["status"]["sync"]["revision"].as_str().map(str::to_string))
        .flatten()
}

/// `Bearer <the token of d's home>`.
fn bearer(d: &Daemon) -> String {
    let token = std::fs::read_to_string(d.home().join("token")).unwrap();
    format!("Bearer {}", token.trim())
}

fn wait_synced(d: &Daemon, name: &str, rev: &str, secs: u64) {
    d.eventually(&format!("{name} Synced at {rev}"), secs, || {
        (synced_at(d, name).as_deref() == Some(rev)).then_some(())
    });
}

/// One HTTP/1.1 request to `127.0.0.1:port` (never another address); status and body.
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    // The daemon may answer (413) before reading all of a large body and close.
    let _ = s.write_all(body);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer to {method} {path}: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A GitHub push event for the repository at `repo` (as GitHub would send it for a
/// repository cloned from a local path: `clone_url` carries the `file://` URL).
fn github_push(repo: &Path, git_ref: &str, after: &str) -> Vec<u8> {
    json!({
        "ref": git_ref,
        "before": "0000000000000000000000000000000000000000",
        "after": after,
        "repository": {
            "name": repo.file_name().unwrap().to_str().unwrap(),
            "full_name": "example/gitops",
            "clone_url": format!("file://{}", repo.display()),
            "html_url": "https://github.com/example/gitops",
            "ssh_url": "git@github.com:example/gitops.git",
        },
        "pusher": {"name": "test"},
    })
    .to_string()
    .into_bytes()
}

fn post_webhook(port: u16, event: &str, sig: Option<&str>, body: &[u8]) -> (u16, Value) {
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("X-GitHub-Event", event),
    ];
    if let Some(s) = sig {
        headers.push(("X-Hub-Signature-256", s));
    }
    let (code, text) = http(port, "POST", "/api/webhook", &headers, body);
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[test]
fn a_signed_github_push_refreshes_only_the_app_on_that_repo_and_ref() {
    let _s = serial();
    let secret = "it's a secret";
    let d = daemon("127.0.0.1:0", Some(secret));
    let sign = |body: &[u8]| ferry_server::webhook::signature(secret.as_bytes(), body);

    let repos = tempfile::tempdir().unwrap();
    let (a, b) = (repos.path().join("a"), repos.path().join("b"));
    let mut heads = Vec::new();
    for r in [&a, &b] {
        std::fs::create_dir_all(r).unwrap();
        git(r, &["init", "-q", "-b", "main"]);
        heads.push(commit_value(r, "one"));
    }
    d.create_app("app-a", &a, true);
    d.create_app("app-b", &b, true);
    wait_synced(&d, "app-a", &heads[0], 30);
    wait_synced(&d, "app-b", &heads[1], 30);

    // On loopback too the token is asked for.
    assert_eq!(http(d.port, "GET", "/api/v1/apps", &[], b"").0, 401);
    let auth = bearer(&d);
    assert_eq!(
        http(
            d.port,
            "GET",
            "/api/v1/apps",
            &[("Authorization", &auth)],
            b""
        )
        .0,
        200
    );

    let new_a = commit_value(&a, "two");
    let new_b = commit_value(&b, "two");
    let push_a = github_push(&a, "refs/heads/main", &new_a);
    let push_b = github_push(&b, "refs/heads/main", &new_b);

    // Refused: a bad signature, a signature of another body, none at all.
    let (code, v) = post_webhook(d.port, "push", Some("sha256=00"), &push_b);
    assert_eq!(code, 401, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("X-Hub-Signature-256"),
        "{v}"
    );
    let (code, _) = post_webhook(d.port, "push", Some(&sign(&push_a)), &push_b);
    assert_eq!(code, 401);
    let (code, _) = post_webhook(d.port, "push", None, &push_b);
    assert_eq!(code, 401);
    // Too large, even when signed.
    let mut big = push_b.clone();
    big.resize(1024 * 1024 + 1, b' ');
    let (code, _) = post_webhook(d.port, "push", Some(&sign(&big)), &big);
    assert_eq!(code, 413);
    // A ping is answered and does nothing.
    let ping = br#"{"zen": "Keep it logically awesome.", "hook_id": 1}"#;
    let (code, v) = post_webhook(d.port, "ping", Some(&sign(ping)), ping);
    assert_eq!((code, v), (200, json!({"refreshed": []})));
    // A tag concerns no app that follows HEAD.
    let tag = github_push(&b, "refs/tags/v1", &new_b);
    let (code, v) = post_webhook(d.port, "push", Some(&sign(&tag)), &tag);
    assert_eq!((code, v), (200, json!({"refreshed": []})));

    // None of that refreshed app-b.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(d.app("app-b")["status"]["sync"]["revision"], heads[1]);

    // The signed push of repo a refreshes app-a, and only it.
    let t0 = Instant::now();
    let (code, v) = post_webhook(d.port, "push", Some(&sign(&push_a)), &push_a);
    assert_eq!((code, v), (200, json!({"refreshed": ["app-a"]})));
    wait_synced(&d, "app-a", &new_a, 10);
    eprintln!("github push -> app-a Synced in {:?}", t0.elapsed());
    let got = d.app("app-a");
    assert_eq!(got["status"]["sync"]["revision"], new_a.as_str());
    std::thread::sleep(Duration::from_millis(500));
    let other = d.app("app-b");
    assert_eq!(
        other["status"]["sync"]["revision"], heads[1],
        "app-b was refreshed though only repo a was pushed"
    );
}

#[test]
fn beyond_loopback_every_call_but_healthz_and_the_webhook_needs_the_token() {
    let _s = serial();
    let d = daemon("0.0.0.0:0", None);
    let token_file = d.home().join("token");
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(token.len(), 64, "32 random bytes in hex: {token:?}");
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let (code, body) = http(d.port, "GET", "/api/v1/apps", &[], b"");
    assert_eq!(code, 401, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], 401);
    assert!(
        v["error"].as_str().unwrap().contains("FERRY_HOME/token"),
        "{v}"
    );
    let wrong = format!("Bearer {}", "0".repeat(64));
    assert_eq!(
        http(
            d.port,
            "GET",
            "/api/v1/apps",
            &[("Authorization", &wrong)],
            b""
        )
        .0,
        401
    );
    let bearer = format!("Bearer {token}");
    let (code, body) = http(
        d.port,
        "GET",
        "/api/v1/apps",
        &[("Authorization", &bearer)],
        b"",
    );
    assert_eq!(code, 200, "{body}");

    // Nothing is done without the token: `down` is refused and the daemon stays.
    assert_eq!(http(d.port, "POST", "/api/v1/down", &[], b"").0, 401);
    assert_eq!(http(d.port, "GET", "/no/such/route", &[], b"").0, 401);
    assert_eq!(
        http(d.port, "GET", "/healthz", &[], b""),
        (200, "ok\n".into())
    );
    let ping = http(
        d.port,
        "POST",
        "/api/webhook",
        &[("X-GitHub-Event", "ping")],
        b"{}",
    );
    assert_eq!(ping.0, 200);

    // The CLI reads the token (and reaches a daemon bound to 0.0.0.0 on loopback).
    d.ok(&["app", "list"]);
    let out = Command::new(ferry_bin())
        .args(["app", "list"])
        .env("FERRY_HOME", d.home())
        .env("FERRY_TOKEN", "nope")
        .env_remove("FERRY_SERVER")
        .output()
        .unwrap();
    assert!(!out.status.success(), "a wrong FERRY_TOKEN is refused");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("FERRY_TOKEN"), "{err}");
}

#[test]
fn a_push_to_a_hooked_bare_repo_syncs_the_app_at_once_and_never_fails() {
    let _s = serial();
    let mut d = daemon("127.0.0.1:0", None);
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("gitops.git");
    let work = dir.path().join("work");
    git(
        dir.path(),
        &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
    );
    git(
        dir.path(),
        &[
            "clone",
            "-q",
            bare.to_str().unwrap(),
            work.to_str().unwrap(),
        ],
    );
    git(&work, &["checkout", "-q", "-b", "main"]);
    let first = commit_value(&work, "v0");
    git(&work, &["push", "-q", "origin", "main"]);
    d.create_app("hooked", &bare, true);
    wait_synced(&d, "hooked", &first, 30);

    // Not a bare repository: refused, nothing written.
    let out = d.ferry(&["repo", "hook", "install", work.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a bare Git repository"));
    assert!(!work.join(".git/hooks/post-receive").exists());

    // A hook already there is kept and still runs.
    let marker = dir.path().join("chained-ran");
    let old_hook = bare.join("hooks/post-receive");
    std::fs::write(
        &old_hook,
        format!("#!/bin/sh\ncat >> '{}'\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(&old_hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let said = d.ok(&["repo", "hook", "install", bare.to_str().unwrap()]);
    assert!(said.contains("post-receive.ferry-chained"), "{said}");
    // Installing again replaces ferry's hook and keeps the chained one.
    d.ok(&["repo", "hook", "install", bare.to_str().unwrap()]);
    assert!(bare.join("hooks/post-receive.ferry-chained").exists());

    // Each push is seen at once: the daemon's reconciliation is 600 s. (How fast is
    // measured by `ferry bench push`, not asserted here.)
    for i in 1..=5 {
        let rev = commit_value(&work, &format!("v{i}"));
        git(&work, &["push", "-q", "origin", "main"]);
        wait_synced(&d, "hooked", &rev, 30);
    }
    let chained = std::fs::read_to_string(&marker).unwrap();
    assert_eq!(
        chained.lines().count(),
        5,
        "the chained hook ran each push:\n{chained}"
    );

    // With the daemon down, a push still succeeds (the hook exits 0), promptly.
    d.down();
    let rev = commit_value(&work, "while down");
    let t0 = Instant::now();
    git(&work, &["push", "-q", "origin", "main"]);
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert_eq!(git(&bare, &["rev-parse", "main"]), rev);
}
