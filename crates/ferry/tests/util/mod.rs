//! What every daemon test of the `ferry` binary shares.

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
