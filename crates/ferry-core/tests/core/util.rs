//! Shared harness: fixture paths and loading.
#![allow(dead_code)]

use std::path::PathBuf;

use ferry_core::Object;

/// `tests/fixtures/<rel>`.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// Parses every object of a fixture file.
pub fn load(rel: &str) -> Vec<Object> {
    let path = fixture(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ferry_core::parse::parse_str(&text, rel).unwrap_or_else(|e| panic!("{e}"))
}
