//! The shared harness: fixtures, scratch source trees, toolchains and fake tools.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ferry_core::Object;
use ferry_render::Toolchain;
use serde_json::Value;

/// A directory under `tests/fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// A scratch source tree in a temporary directory.
pub struct Tree {
    pub dir: tempfile::TempDir,
}

impl Tree {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `text` to `rel`, creating parent directories.
    pub fn write(&self, rel: &str, text: &str) -> &Self {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write");
        self
    }

    /// Writes an executable script to `rel` and returns its path.
    pub fn script(&self, rel: &str, text: &str) -> PathBuf {
        self.write(rel, text);
        let path = self.dir.path().join(rel);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }
}

/// A ConfigMap manifest named `name`.
pub fn config_map(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n")
}

/// A toolchain that sees only `vars` as its environment (no inherited `PATH`).
pub fn toolchain(vars: &[(&str, &OsString)]) -> Toolchain {
    let vars: Vec<(String, OsString)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), (*v).clone()))
        .collect();
    Toolchain::from_lookup(move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
}

/// `kind/namespace/name` of each object, in order.
pub fn names(objects: &[Object]) -> Vec<String> {
    objects
        .iter()
        .map(|o| format!("{}/{}/{}", o.kind(), o.namespace(), o.name()))
        .collect()
}

/// `file:line` of each object, in order.
pub fn origins(objects: &[Object]) -> Vec<String> {
    objects.iter().map(Object::origin).collect()
}

/// Objects by key, for comparing renders as sets.
pub fn by_key(objects: &[Object]) -> BTreeMap<String, Value> {
    objects
        .iter()
        .map(|o| (o.key().to_string(), o.value().clone()))
        .collect()
}

/// `kubectl` on this process's `PATH`, if any.
pub fn kubectl() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
}
