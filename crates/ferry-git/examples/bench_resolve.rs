//! How long do 1,000 apps of one repository take to resolve and check out after a fetch?
//!
//! Builds a repository with 1,000 app directories (`apps/app-0000/…`), pushes it to a
//! bare remote, fetches it once, then times `resolve("main") + checkout(path)` for every
//! app: a cold round (the commit's tree is written once) and a warm round (all cache
//! hits, what every later refresh with the same commit costs). As a peer in the same
//! run, it times `git rev-parse main` run as a subprocess, the floor for any design that
//! shells out per app.
//!
//! Run: `cargo run --release -p ferry-git --example bench_resolve [APPS]`

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ferry_git::RepoCache;

fn git(dir: &Path, args: &[&str]) {
    let st = Command::new("git")
        .args([
            "-c",
            "user.name=b",
            "-c",
            "user.email=b@b",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .status()
        .expect("git runs");
    assert!(st.success(), "git {args:?} failed");
}

fn per_call(total: Duration, n: usize) -> String {
    format!("{:.1} µs/app", total.as_secs_f64() * 1e6 / n as f64)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let apps: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1000);
    let tmp = tempfile::tempdir()?;
    let work = tmp.path().join("work");
    let remote = tmp.path().join("remote.git");
    std::fs::create_dir_all(&work)?;
    git(tmp.path(), &["init", "-q", "--bare", "remote.git"]);
    git(&work, &["init", "-q"]);
    for i in 0..apps {
        let dir = work.join(format!("apps/app-{i:04}"));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("deployment.yaml"),
            format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{i:04}\n"),
        )?;
        std::fs::write(
            dir.join("kustomization.yaml"),
            "resources: [deployment.yaml]\n",
        )?;
    }
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "apps"]);
    git(
        &work,
        &["push", "-q", remote.to_str().ok_or("path")?, "main"],
    );

    let cache = RepoCache::new(tmp.path().join("cache"));
    let url = remote.to_str().ok_or("path")?;
    let t = Instant::now();
    cache.fetch(url, None)?;
    let fetch = t.elapsed();

    let round = |label: &str| -> Result<Duration, ferry_git::Error> {
        let t = Instant::now();
        for i in 0..apps {
            let commit = cache.resolve(url, "main")?;
            let dir = cache.checkout(url, &commit, &format!("apps/app-{i:04}"))?;
            debug_assert!(dir.join("deployment.yaml").exists());
        }
        let took = t.elapsed();
        println!(
            "{label:<34} {apps} apps in {:>8.2} ms  ({})",
            took.as_secs_f64() * 1e3,
            per_call(took, apps)
        );
        Ok(took)
    };
    println!(
        "fetch (new mirror)                 {:>8.2} ms",
        fetch.as_secs_f64() * 1e3
    );
    round("resolve+checkout, cold (1 write)")?;
    let warm = round("resolve+checkout, warm (hits)")?;
    let restarted = RepoCache::new(tmp.path().join("cache"));
    let t = Instant::now();
    for i in 0..apps {
        let commit = restarted.resolve(url, "main")?;
        restarted.checkout(url, &commit, &format!("apps/app-{i:04}"))?;
    }
    let disk = t.elapsed();
    println!(
        "{:<34} {apps} apps in {:>8.2} ms  ({})",
        "after restart (trees on disk)",
        disk.as_secs_f64() * 1e3,
        per_call(disk, apps)
    );

    let peer_n = apps.min(200);
    let t = Instant::now();
    for _ in 0..peer_n {
        let out = Command::new("git")
            .args(["rev-parse", "main"])
            .current_dir(&remote)
            .output()?;
        assert!(out.status.success());
    }
    let peer = t.elapsed();
    println!(
        "peer: `git rev-parse` subprocess   {peer_n} calls in {:>7.2} ms  ({})",
        peer.as_secs_f64() * 1e3,
        per_call(peer, peer_n)
    );
    let ratio = (peer.as_secs_f64() / peer_n as f64) / (warm.as_secs_f64() / apps as f64);
    println!("warm resolve+checkout is {ratio:.0}× faster than one `git rev-parse` subprocess");
    Ok(())
}
