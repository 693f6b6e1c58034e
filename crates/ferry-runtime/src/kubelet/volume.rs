//! Pod volumes for containers: each volume a directory under `volumes/POD-UID/NAME`,
//! shared by the pod's containers through bind mounts — `emptyDir` (a tmpfs mounted
//! there for `medium: Memory`), `configMap`, `secret` (always a tmpfs, so a Secret
//! never touches the disk), `downwardAPI` (files written from the object) and
//! `hostPath` (the host's own path). Removed with the pod.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use base64::Engine as _;
use ferry_core::{Object, ObjectKey};
use serde_json::Value;

use crate::Cluster;

/// Kubernetes' default file mode for configMap, secret and downwardAPI volumes (0644).
const DEFAULT_MODE: u32 = 0o644;

/// A volume ready on the host: where it is, and whether containers may only read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HostVolume {
    pub path: PathBuf,
    pub read_only: bool,
}

fn volume_error(name: &str, what: impl std::fmt::Display) -> String {
    format!("volume {name:?}: {what}")
}

/// A relative path without `..`, absolute parts or empty segments (an `items[].path`
/// or a `subPath`).
pub(crate) fn safe_relative(p: &str) -> bool {
    !p.is_empty()
        && Path::new(p)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// Whether `dir` is the root of a mount (its device differs from its parent's).
fn is_mount_point(dir: &Path) -> bool {
    let (Ok(me), Some(Ok(parent))) = (std::fs::metadata(dir), dir.parent().map(std::fs::metadata))
    else {
        return false;
    };
    me.dev() != parent.dev()
}

/// Mounts a fresh tmpfs at `dir` unless one is mounted there already.
fn ensure_tmpfs(dir: &Path, size: Option<u64>) -> std::io::Result<()> {
    if is_mount_point(dir) {
        return Ok(());
    }
    let mut opts = "mode=0755".to_string();
    if let Some(s) = size {
        opts.push_str(&format!(",size={s}"));
    }
    nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some(opts.as_str()),
    )
    .map_err(std::io::Error::from)
}

/// Keys of a Secret or ConfigMap as bytes; `None` if the object does not exist.
fn read_object(
    cluster: &Cluster,
    kind: &str,
    ns: &str,
    name: &str,
) -> Option<BTreeMap<String, Vec<u8>>> {
    let obj = cluster.get(&ObjectKey::new("", kind, ns, name))?;
    let v = obj.value();
    let mut out = BTreeMap::new();
    let (encoded, plain) = if kind == "Secret" {
        ("data", "stringData")
    } else {
        ("binaryData", "data")
    };
    for (k, val) in v
        .get(encoded)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if let Some(b) = val.as_str().and_then(|s| {
            base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .ok()
        }) {
            out.insert(k.clone(), b);
        }
    }
    for (k, val) in v
        .get(plain)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let s = match val {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.insert(k.clone(), s.into_bytes());
    }
    Some(out)
}

fn mode_of(v: &Value, field: &str) -> Option<u32> {
    v.get(field)
        .and_then(Value::as_u64)
        .and_then(|m| u32::try_from(m).ok())
        .map(|m| m & 0o777)
}

/// Replaces everything in `dir` by `files` (relative path → bytes, mode).
fn write_files(dir: &Path, files: &[(String, Vec<u8>, u32)]) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)?.flatten() {
        let p = e.path();
        if e.file_type()?.is_dir() {
            std::fs::remove_dir_all(&p)?;
        } else {
            std::fs::remove_file(&p)?;
        }
    }
    for (rel, bytes, mode) in files {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, bytes)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode))?;
    }
    Ok(())
}

/// The files of a configMap or secret volume: every key, or the `items` asked for.
fn projected(
    name: &str,
    kind: &str,
    source: &Value,
    data: &BTreeMap<String, Vec<u8>>,
) -> Result<Vec<(String, Vec<u8>, u32)>, String> {
    let default = mode_of(source, "defaultMode").unwrap_or(DEFAULT_MODE);
    let optional = source
        .get("optional")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let Some(items) = source.get("items").and_then(Value::as_array) else {
        return Ok(data
            .iter()
            .filter(|(k, _)| safe_relative(k) && !k.contains('/'))
            .map(|(k, b)| (k.clone(), b.clone(), default))
            .collect());
    };
    let mut out = Vec::new();
    for item in items {
        let key = item.get("key").and_then(Value::as_str).unwrap_or_default();
        let path = item.get("path").and_then(Value::as_str).unwrap_or_default();
        if !safe_relative(path) {
            return Err(volume_error(
                name,
                format!("items path {path:?} must be relative, without '..'"),
            ));
        }
        match data.get(key) {
            Some(b) => out.push((
                path.to_string(),
                b.clone(),
                mode_of(item, "mode").unwrap_or(default),
            )),
            None if optional => {}
            None => {
                return Err(volume_error(
                    name,
                    format!("{kind} has no key {key:?}; add it or remove it from items"),
                ));
            }
        }
    }
    Ok(out)
}

/// Prepares every volume of `pod` under `root` (`volumes/POD-UID`), writing the
/// files of configMap, secret and downwardAPI volumes afresh. `Err` is a
/// `CreateContainerConfigError` message (a missing ConfigMap is retried).
pub(crate) fn prepare(
    cluster: &Cluster,
    pod: &Object,
    root: &Path,
) -> Result<BTreeMap<String, HostVolume>, String> {
    let v = pod.value();
    let ns = pod.key().namespace.clone();
    let mut out = BTreeMap::new();
    for vol in v
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = vol.get("name").and_then(Value::as_str).unwrap_or_default();
        if !safe_relative(name) || name.contains('/') {
            return Err(format!("volume name {name:?} is not a valid name"));
        }
        let dir = root.join(name);
        let make_dir = || {
            super::create_dir_within(root, &dir)
                .map_err(|e| volume_error(name, format!("creating {}: {e}", dir.display())))
        };
        let io = |e: std::io::Error| volume_error(name, format!("{}: {e}", dir.display()));
        let host = if let Some(src) = vol.get("emptyDir") {
            make_dir()?;
            if src.get("medium").and_then(Value::as_str) == Some("Memory") {
                let size = src
                    .get("sizeLimit")
                    .and_then(|q| match q {
                        Value::String(s) => super::status::parse_quantity(s),
                        Value::Number(n) => n.as_f64(),
                        _ => None,
                    })
                    .map(|b| b as u64);
                ensure_tmpfs(&dir, size).map_err(io)?;
            }
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).map_err(io)?;
            HostVolume {
                path: dir,
                read_only: false,
            }
        } else if let Some((kind, src)) = vol
            .get("configMap")
            .map(|s| ("ConfigMap", s))
            .or_else(|| vol.get("secret").map(|s| ("Secret", s)))
        {
            let obj_name = src
                .get(if kind == "Secret" {
                    "secretName"
                } else {
                    "name"
                })
                .and_then(Value::as_str)
                .unwrap_or_default();
            let optional = src
                .get("optional")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let data = match read_object(cluster, kind, &ns, obj_name) {
                Some(d) => d,
                None if optional => BTreeMap::new(),
                None => {
                    return Err(format!("{} {obj_name:?} not found", kind.to_lowercase()));
                }
            };
            let files = projected(name, kind, src, &data)?;
            make_dir()?;
            if kind == "Secret" {
                ensure_tmpfs(&dir, None).map_err(io)?;
            }
            write_files(&dir, &files).map_err(io)?;
            HostVolume {
                path: dir,
                read_only: true,
            }
        } else if let Some(src) = vol.get("downwardAPI") {
            let default = mode_of(src, "defaultMode").unwrap_or(DEFAULT_MODE);
            let mut files = Vec::new();
            for item in src
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let path = item.get("path").and_then(Value::as_str).unwrap_or_default();
                if !safe_relative(path) {
                    return Err(volume_error(
                        name,
                        format!("items path {path:?} must be relative, without '..'"),
                    ));
                }
                let Some(field) = item.pointer("/fieldRef/fieldPath").and_then(Value::as_str)
                else {
                    return Err(volume_error(
                        name,
                        format!(
                            "item {path:?}: only fieldRef is supported by the embedded runtime"
                        ),
                    ));
                };
                let value = super::env::field_ref(pod, field).map_err(|e| volume_error(name, e))?;
                files.push((
                    path.to_string(),
                    value.into_bytes(),
                    mode_of(item, "mode").unwrap_or(default),
                ));
            }
            make_dir()?;
            write_files(&dir, &files).map_err(io)?;
            HostVolume {
                path: dir,
                read_only: true,
            }
        } else if let Some(src) = vol.get("hostPath") {
            let path = src.get("path").and_then(Value::as_str).unwrap_or_default();
            let p = PathBuf::from(path);
            if !p.is_absolute() {
                return Err(volume_error(
                    name,
                    format!("hostPath {path:?} must be absolute"),
                ));
            }
            let typ = src.get("type").and_then(Value::as_str).unwrap_or_default();
            let host_err = |e: std::io::Error| volume_error(name, format!("hostPath {path}: {e}"));
            match typ {
                "DirectoryOrCreate" => std::fs::create_dir_all(&p).map_err(host_err)?,
                "FileOrCreate" if !p.exists() => {
                    if let Some(parent) = p.parent() {
                        std::fs::create_dir_all(parent).map_err(host_err)?;
                    }
                    std::fs::write(&p, b"").map_err(host_err)?;
                }
                "Directory" if !p.is_dir() => {
                    return Err(volume_error(
                        name,
                        format!("hostPath {path} is not a directory"),
                    ));
                }
                "File" if !p.is_file() => {
                    return Err(volume_error(name, format!("hostPath {path} is not a file")));
                }
                _ if !p.exists() && !typ.is_empty() => {
                    return Err(volume_error(
                        name,
                        format!("hostPath {path} does not exist"),
                    ));
                }
                _ => {}
            }
            HostVolume {
                path: p,
                read_only: false,
            }
        } else {
            // Left unprepared: a container that mounts it is refused with the name.
            continue;
        };
        out.insert(name.to_string(), host);
    }
    Ok(out)
}

/// The container's mounts from its `volumeMounts` over the prepared volumes.
pub(crate) fn mounts(
    container: &Value,
    volumes: &BTreeMap<String, HostVolume>,
) -> Result<Vec<ferry_container::Mount>, String> {
    let mut out = Vec::new();
    for m in container
        .get("volumeMounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = m.get("name").and_then(Value::as_str).unwrap_or_default();
        let dest = m
            .get("mountPath")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(vol) = volumes.get(name) else {
            return Err(format!(
                "volumeMount {name:?} at {dest:?}: no volume of that name the embedded runtime supports (emptyDir, configMap, secret, downwardAPI, hostPath)"
            ));
        };
        let mut source = vol.path.clone();
        if let Some(sub) = m
            .get("subPath")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            if !safe_relative(sub) {
                return Err(format!(
                    "volumeMount {name:?}: subPath {sub:?} must be relative, without '..'"
                ));
            }
            source = source.join(sub);
            if !source.exists() && !vol.read_only {
                std::fs::create_dir_all(&source)
                    .map_err(|e| format!("volumeMount {name:?}: creating subPath {sub:?}: {e}"))?;
            }
        }
        let read_only =
            vol.read_only || m.get("readOnly").and_then(Value::as_bool).unwrap_or(false);
        out.push(ferry_container::Mount::Bind {
            source,
            destination: dest.to_string(),
            read_only,
        });
    }
    Ok(out)
}

/// Unmounts every tmpfs volume (memory emptyDirs, Secrets) under `volumes_root`, for
/// `ferry down`: nothing of a stopped runtime stays in memory. Disk volumes stay for
/// their pods; the next start mounts fresh tmpfs volumes and writes Secrets again.
pub(crate) fn unmount_all(volumes_root: &Path) {
    let Ok(pods) = std::fs::read_dir(volumes_root) else {
        return;
    };
    for pod in pods.flatten() {
        let Ok(vols) = std::fs::read_dir(pod.path()) else {
            continue;
        };
        for v in vols.flatten() {
            let p = v.path();
            if is_mount_point(&p)
                && let Err(err) = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH)
            {
                tracing::warn!("unmounting volume {}: {err}", p.display());
            }
        }
    }
}

/// Unmounts and removes a pod's volumes (`volumes/POD-UID`), only inside `volumes`.
pub(crate) fn remove(volumes_root: &Path, pod_dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(pod_dir) {
        for e in entries.flatten() {
            let p = e.path();
            if is_mount_point(&p)
                && let Err(err) = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH)
            {
                tracing::warn!("unmounting volume {}: {err}", p.display());
            }
        }
    }
    if let Err(e) = super::remove_dir_within(volumes_root, pod_dir) {
        tracing::warn!("removing volumes {}: {e}", pod_dir.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_paths_and_sub_paths_never_climb() {
        assert!(safe_relative("a/b"));
        assert!(!safe_relative("../x"));
        assert!(!safe_relative("/etc/passwd"));
        assert!(!safe_relative("a/../../b"));
        assert!(!safe_relative(""));
    }

    #[test]
    fn items_choose_keys_paths_and_modes() {
        let mut data = BTreeMap::new();
        data.insert("a".to_string(), b"1".to_vec());
        data.insert("b".to_string(), b"2".to_vec());
        let src = serde_json::json!({"defaultMode": 0o400, "items": [{"key": "b", "path": "dir/b.txt", "mode": 0o644}]});
        let files = projected("v", "Secret", &src, &data).unwrap();
        assert_eq!(files, vec![("dir/b.txt".to_string(), b"2".to_vec(), 0o644)]);
        let all = projected(
            "v",
            "Secret",
            &serde_json::json!({"defaultMode": 0o400}),
            &data,
        )
        .unwrap();
        assert_eq!(all.len(), 2);
        assert!(all.iter().all(|f| f.2 == 0o400));
        let missing = serde_json::json!({"items": [{"key": "c", "path": "c"}]});
        assert!(
            projected("v", "Secret", &missing, &data)
                .unwrap_err()
                .contains("no key \"c\"")
        );
    }
}
