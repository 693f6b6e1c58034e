//! The build cache: what a file-system step (`RUN`, `COPY`, `ADD`, `WORKDIR`) left
//! behind, keyed by everything that determines it — the state it started from (the
//! chain of layers before it), the instruction as expanded, and its inputs (for
//! `COPY`/`ADD` a hash of the copied files' paths, modes, owners and contents; for
//! `RUN` its environment, user, working directory and shell).
//!
//! One small JSON file per key under `FERRY_HOME/build-cache/`, pointing at a layer
//! blob in the image store. A record whose blob is gone (garbage-collected) is a miss.
//! Records are written through a temp file and a rename, so a killed build leaves
//! either the whole record or none.

use std::fs;
use std::path::{Path, PathBuf};

use ferry_oci::Store;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// A cache key: the hex sha256 of its parts.
pub fn key(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        // Length-prefixed, so that ("ab","c") and ("a","bc") differ.
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// What a cached step produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Its layer, if it changed the file system: descriptor and diff id.
    pub layer: Option<(ferry_oci::spec::Descriptor, ferry_oci::Digest)>,
    /// When it first ran (seconds since 1970): the history's time.
    pub created: u64,
}

/// The cache directory.
#[derive(Clone, Debug)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// The cache in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache { dir: dir.into() }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// The record for `key`, if there is one whose layer is still in `store`.
    pub fn get(&self, store: &Store, key: &str) -> Option<Record> {
        let text = fs::read(self.path(key)).ok()?;
        let v: Value = serde_json::from_slice(&text).ok()?;
        let created = v.get("created")?.as_u64()?;
        let layer = match v.get("layer") {
            None | Some(Value::Null) => None,
            Some(l) => {
                let desc: ferry_oci::spec::Descriptor =
                    serde_json::from_value(l.get("descriptor")?.clone()).ok()?;
                let diff_id = ferry_oci::Digest::parse(l.get("diffId")?.as_str()?).ok()?;
                if !store.has_blob(&desc.digest) {
                    return None;
                }
                Some((desc, diff_id))
            }
        };
        Some(Record { layer, created })
    }

    /// Stores `record` under `key`. A cache that cannot be written only costs the
    /// next build time, so failures are returned for the caller to report, not fatal.
    pub fn put(&self, key: &str, record: &Record) -> std::io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let layer = match &record.layer {
            Some((d, diff)) => json!({"descriptor": d, "diffId": diff.as_str()}),
            None => Value::Null,
        };
        let v = json!({"layer": layer, "created": record.created});
        let tmp = self.dir.join(format!(".{key}.{}.tmp", std::process::id()));
        fs::write(&tmp, serde_json::to_vec(&v).unwrap_or_default())?;
        fs::rename(&tmp, self.path(key))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
