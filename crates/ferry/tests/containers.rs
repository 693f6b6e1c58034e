//! `ferry serve --isolation container` end to end: the real binary, runc, and an
//! image made from Debian's `busybox-static` with `ferry image build`. Skipped, with
//! the reason printed, where the test is not root or runc or a static busybox is
//! missing.

mod util;

use std::path::Path;

use util::{Daemon, serial};

const BUSYBOX: &str = "/bin/busybox";

fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not running as root".into());
    }
    let runc = ["/usr/sbin/runc", "/usr/bin/runc", "/sbin/runc"];
    if !runc.iter().any(|p| Path::new(p).is_file()) {
        return Some("runc is not installed (Debian package runc)".into());
    }
    let head = std::fs::read(BUSYBOX).unwrap_or_default();
    if head.is_empty() || head.windows(7).take(8192).any(|w| w == b"ld-linu") {
        return Some(format!(
            "{BUSYBOX} is missing or not static (Debian package busybox-static)"
        ));
    }
    None
}

/// `runc list` of the daemon's containers.
fn runc_ids(home: &Path) -> Vec<String> {
    let out = std::process::Command::new("runc")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .arg("--root")
        .arg(home.join("runc/state"))
        .args(["list", "-q"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The host pid of a container's init, 0 once it has stopped.
fn runc_pid(home: &Path, id: &str) -> u64 {
    let out = std::process::Command::new("runc")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .arg("--root")
        .arg(home.join("runc/state"))
        .args(["state", id])
        .output()
        .unwrap();
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v["pid"].as_u64())
        .unwrap_or(0)
}

#[test]
fn serve_with_container_isolation_runs_readopts_after_kill_9_and_deletes_a_pod_as_a_container() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let _serial = serial();
    let mut d = Daemon::new();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(ctx.path().join("bin")).unwrap();
    std::fs::create_dir_all(ctx.path().join("etc")).unwrap();
    std::fs::copy(BUSYBOX, ctx.path().join("bin/busybox")).unwrap();
    for a in ["sh", "hostname", "sleep", "echo"] {
        std::os::unix::fs::symlink("busybox", ctx.path().join("bin").join(a)).unwrap();
    }
    std::fs::write(
        ctx.path().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n",
    )
    .unwrap();
    d.ok(&[
        "image",
        "build",
        ctx.path().to_str().unwrap(),
        "--tag",
        "box:1",
        "--cmd",
        "sh",
    ]);
    d.spawn(&["--addr", "127.0.0.1:0", "--isolation", "container"]);
    let manifest = d.home().join("pod.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: boxed\nspec:\n  terminationGracePeriodSeconds: 2\n  containers:\n  - name: app\n    image: box:1\n    command: [sh, -c, 'echo \"hello from $(hostname)\"; sleep 3600']\n",
    )
    .unwrap();
    d.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    d.eventually("the pod to run", 30, || {
        let out = d.ok(&["get", "pods"]);
        out.lines()
            .any(|l| l.starts_with("boxed") && l.contains("Running"))
            .then_some(())
    });
    let described = d.ok(&["describe", "pod", "boxed"]);
    assert!(
        described
            .lines()
            .any(|l| l.starts_with("Isolation:") && l.trim_end().ends_with("container")),
        "{described}"
    );
    d.eventually("the container's output", 20, || {
        let logs = d.ok(&["logs", "boxed"]);
        logs.contains("hello from boxed").then_some(())
    });
    let ids = runc_ids(d.home());
    assert_eq!(ids.len(), 1, "{}", d.log_tail());
    let pid = runc_pid(d.home(), &ids[0]);
    assert!(pid > 0);

    // kill -9 of the daemon leaves the container running; the next daemon re-adopts
    // it: the same container, the same init process, no restart.
    d.kill9();
    assert_eq!(
        runc_pid(d.home(), &ids[0]),
        pid,
        "the container outlives the daemon"
    );
    d.respawn();
    d.eventually("the pod to run again", 30, || {
        let out = d.ok(&["get", "pods"]);
        out.lines()
            .any(|l| l.starts_with("boxed") && l.contains("Running"))
            .then_some(())
    });
    assert_eq!(runc_ids(d.home()), ids, "{}", d.log_tail());
    assert_eq!(runc_pid(d.home(), &ids[0]), pid);
    let pod: serde_json::Value =
        serde_json::from_str(&d.ok(&["get", "pod", "boxed", "-o", "json"])).unwrap();
    assert_eq!(
        pod.pointer("/status/containerStatuses/0/restartCount"),
        Some(&serde_json::json!(0)),
        "{pod}"
    );
    let logs = d.ok(&["logs", "boxed"]);
    assert_eq!(
        logs.matches("hello from boxed").count(),
        1,
        "ran once: {logs}"
    );

    d.ok(&["delete", "pod", "boxed"]);
    d.eventually("the pod's container to be deleted", 30, || {
        runc_ids(d.home()).is_empty().then_some(())
    });
    d.down();
    assert!(runc_ids(d.home()).is_empty());
}
