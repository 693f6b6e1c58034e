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

/// Runs `ferry ARGS` against the daemon of `home`, isolated from the caller's
/// `FERRY_SERVER`/`FERRY_TOKEN`, with no standard input.
pub fn run_ferry(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(ferry_bin())
        .args(args)
        .env("FERRY_HOME", home)
        .env_remove("FERRY_SERVER")
        .env_remove("FERRY_TOKEN")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
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
