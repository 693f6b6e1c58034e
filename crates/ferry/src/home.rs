//! Where ferry keeps its state: `FERRY_HOME`, else `$XDG_STATE_HOME/ferry`, else
//! `~/.local/state/ferry`. Every path ferry writes is derived from here.

#![allow(dead_code)]

use std::path::PathBuf;

/// The state directory (not created).
pub fn ferry_home() -> PathBuf {
    if let Some(h) = std::env::var_os("FERRY_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(x).join("ferry");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/state/ferry")
}

/// `FERRY_HOME/images`: the OCI image-layout store.
pub fn images_dir() -> PathBuf {
    ferry_home().join("images")
}
