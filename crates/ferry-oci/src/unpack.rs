//! Extracting an image's layers into a root filesystem directory, with OCI whiteouts,
//! never writing outside the root and never following a symlink out of it.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, IoContext, Result};
use crate::store::{ImageInfo, Store};

const WHITEOUT_PREFIX: &str = ".wh.";
const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";
/// Symlinks followed while resolving one path, as Linux allows.
const MAX_SYMLINK_HOPS: usize = 40;

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Extracts `info`'s layers into `rootfs_root/<digest-hex>/`, atomically: into a temp
/// directory first, then renamed. An existing target is returned as is.
pub(crate) fn unpack_image(store: &Store, info: &ImageInfo, rootfs_root: &Path) -> Result<PathBuf> {
    let target = rootfs_root.join(info.digest.hex());
    if target.is_dir() {
        return Ok(target);
    }
    fs::create_dir_all(rootfs_root).at(rootfs_root)?;
    let tmp = rootfs_root.join(format!(
        ".tmp-{}-{}-{}",
        info.digest.short(),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir(&tmp).at(&tmp)?;
    let extracted = (|| {
        for layer in &info.layers {
            let blob = store.blob_path(layer);
            if !blob.is_file() {
                return Err(Error::BlobMissing {
                    reference: info.reference(),
                    digest: layer.to_string(),
                });
            }
            extract_layer(&blob, &layer.to_string(), &tmp)?;
        }
        Ok(())
    })();
    if let Err(e) = extracted {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    match fs::rename(&tmp, &target) {
        Ok(()) => Ok(target),
        // Someone else finished first: theirs is as good as ours.
        Err(_) if target.is_dir() => {
            let _ = fs::remove_dir_all(&tmp);
            Ok(target)
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            Err(Error::io(target, e))
        }
    }
}

/// Applies one layer (gzip or plain tar) on top of `root`.
pub fn extract_layer(blob: &Path, layer: &str, root: &Path) -> Result<()> {
    let file = File::open(blob).at(blob)?;
    let mut reader = BufReader::new(file);
    let head = reader.fill_buf().at(blob)?;
    let input: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(reader))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(Error::UnsupportedMediaType {
            reference: layer.to_string(),
            media_type: "zstd-compressed layer".to_string(),
        });
    } else {
        Box::new(reader)
    };
    let mut archive = tar::Archive::new(ZeroTail {
        inner: input,
        read: 0,
        tail: None,
    });
    let unsafe_path = |path: &Path, reason: &str| Error::UnsafePath {
        layer: layer.to_string(),
        path: path.display().to_string(),
        reason: reason.to_string(),
    };
    let tar_err = |e: io::Error| Error::io(blob, e);
    // As root, entries keep the layer's owners and set-id/sticky bits: a container
    // runs as the image's users and needs them. Otherwise the files are ours.
    let as_root = running_as_root();
    let mut created: HashSet<PathBuf> = HashSet::new();
    for entry in archive.entries().map_err(tar_err)? {
        let mut entry = entry.map_err(tar_err)?;
        let raw = entry.path().map_err(tar_err)?.into_owned();
        let rel =
            clean(&raw).ok_or_else(|| unsafe_path(&raw, "it climbs out of the root with .."))?;
        let Some(name) = rel.file_name().map(|n| n.to_os_string()) else {
            continue; // the root itself
        };
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        let name_str = name.to_string_lossy();

        if name_str == WHITEOUT_OPAQUE {
            if let Some(dir) =
                resolve_in_root(root, parent_rel, false).map_err(|r| unsafe_path(&raw, &r))?
            {
                for child in fs::read_dir(&dir).at(&dir)? {
                    let child = child.at(&dir)?;
                    if !created.contains(&parent_rel.join(child.file_name())) {
                        remove_any(&child.path())?;
                    }
                }
            }
            continue;
        }
        if let Some(victim) = name_str.strip_prefix(WHITEOUT_PREFIX) {
            if victim.is_empty() || victim == "." || victim == ".." {
                return Err(unsafe_path(&raw, "malformed whiteout"));
            }
            if let Some(dir) =
                resolve_in_root(root, parent_rel, false).map_err(|r| unsafe_path(&raw, &r))?
            {
                remove_any(&dir.join(victim))?;
            }
            continue;
        }

        let parent = resolve_in_root(root, parent_rel, true)
            .map_err(|r| unsafe_path(&raw, &r))?
            .ok_or_else(|| unsafe_path(&raw, "parent directory could not be created"))?;
        let dst = parent.join(&name);
        let mode = entry.header().mode().unwrap_or(0o644);
        let kind = entry.header().entry_type();
        let owner = match (entry.header().uid(), entry.header().gid()) {
            (Ok(u), Ok(g)) if as_root => u32::try_from(u).ok().zip(u32::try_from(g).ok()),
            _ => None,
        };
        let chown = |p: &Path| -> Result<()> {
            match owner {
                Some((u, g)) => std::os::unix::fs::lchown(p, Some(u), Some(g)).at(p),
                None => Ok(()),
            }
        };
        match kind {
            tar::EntryType::Directory => {
                match fs::symlink_metadata(&dst) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        remove_any(&dst)?;
                        fs::create_dir(&dst).at(&dst)?;
                    }
                    Err(_) => fs::create_dir(&dst).at(&dst)?,
                }
                chown(&dst)?;
                // Keep the owner's rwx so later layers can write and the tree can be
                // removed (root needs no such help).
                let mode = if as_root {
                    mode & 0o7777
                } else {
                    (mode & 0o777) | 0o700
                };
                fs::set_permissions(&dst, fs::Permissions::from_mode(mode)).at(&dst)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                remove_any(&dst)?;
                let mut out = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&dst)
                    .at(&dst)?;
                io::copy(&mut entry, &mut out).at(&dst)?;
                // Mode after chown: chown clears set-id bits.
                chown(&dst)?;
                let bits = if as_root { 0o7777 } else { 0o777 };
                fs::set_permissions(&dst, fs::Permissions::from_mode(mode & bits)).at(&dst)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(tar_err)?
                    .ok_or_else(|| unsafe_path(&raw, "symlink without a target"))?
                    .into_owned();
                remove_any(&dst)?;
                std::os::unix::fs::symlink(&target, &dst).at(&dst)?;
                chown(&dst)?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(tar_err)?
                    .ok_or_else(|| unsafe_path(&raw, "hard link without a target"))?
                    .into_owned();
                let target_rel = clean(&target).ok_or_else(|| {
                    unsafe_path(&target, "hard link target climbs out of the root")
                })?;
                let tparent =
                    resolve_in_root(root, target_rel.parent().unwrap_or(Path::new("")), false)
                        .map_err(|r| unsafe_path(&target, &r))?
                        .ok_or_else(|| unsafe_path(&target, "hard link target does not exist"))?;
                let src = match target_rel.file_name() {
                    Some(n) => tparent.join(n),
                    None => return Err(unsafe_path(&target, "hard link to the root")),
                };
                remove_any(&dst)?;
                fs::hard_link(&src, &dst).at(&dst)?;
            }
            // Devices and FIFOs cannot be made without privileges, and processes of the
            // local runtime use the host's /dev anyway.
            _ => continue,
        }
        created.insert(rel);
    }
    Ok(())
}

/// Whether we run with an effective uid of 0 (`/proc/self` belongs to it).
fn running_as_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Ends a tar stream the way Go's `archive/tar` tolerates: some writers (umoci 0.4)
/// stop right after the last entry's data, without padding or the two zero blocks
/// that close an archive. At EOF this pads to the next 512-byte block and adds them.
struct ZeroTail<R> {
    inner: R,
    read: u64,
    /// Zero bytes still to yield once `inner` is exhausted.
    tail: Option<u64>,
}

impl<R: Read> Read for ZeroTail<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.tail.is_none() {
            let n = self.inner.read(buf)?;
            if n > 0 || buf.is_empty() {
                self.read += n as u64;
                return Ok(n);
            }
            self.tail = Some((512 - self.read % 512) % 512 + 1024);
        }
        let left = self.tail.unwrap_or(0);
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        buf[..n].fill(0);
        self.tail = Some(left - n as u64);
        Ok(n)
    }
}

/// Normalises a path in a layer to a relative path without `.`/`..`; `None` if it
/// climbs above the root.
fn clean(p: &Path) -> Option<PathBuf> {
    let mut out: Vec<OsString> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => {
                out.pop()?;
            }
            Component::Prefix(_) => return None,
        }
    }
    Some(out.iter().collect())
}

/// Resolves `rel` to a real directory inside `root`, interpreting symlinks as if `root`
/// were `/` (so an absolute link to `/usr/bin` means `root/usr/bin`, and `..` stops at
/// the root). Missing directories are created when `create`, else `Ok(None)`.
fn resolve_in_root(
    root: &Path,
    rel: &Path,
    create: bool,
) -> std::result::Result<Option<PathBuf>, String> {
    let mut cur = root.to_path_buf();
    let mut depth = 0usize;
    let mut todo: Vec<OsString> = rel
        .components()
        .rev()
        .map(|c| c.as_os_str().to_os_string())
        .collect();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        if c == "." || c == "/" || c.is_empty() {
            continue;
        }
        if c == ".." {
            if depth > 0 {
                cur.pop();
                depth -= 1;
            }
            continue;
        }
        let next = cur.join(&c);
        match fs::symlink_metadata(&next) {
            Ok(m) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return Err("too many levels of symbolic links".to_string());
                }
                let target = fs::read_link(&next).map_err(|e| e.to_string())?;
                if target.is_absolute() {
                    cur = root.to_path_buf();
                    depth = 0;
                }
                todo.extend(
                    target
                        .components()
                        .rev()
                        .map(|c| c.as_os_str().to_os_string()),
                );
            }
            Ok(m) if m.is_dir() => {
                cur = next;
                depth += 1;
            }
            Ok(_) => {
                if !create {
                    return Ok(None);
                }
                // A later layer puts a directory where a file was.
                fs::remove_file(&next).map_err(|e| format!("{}: {e}", next.display()))?;
                fs::create_dir(&next).map_err(|e| format!("{}: {e}", next.display()))?;
                cur = next;
                depth += 1;
            }
            Err(_) => {
                if !create {
                    return Ok(None);
                }
                fs::create_dir(&next).map_err(|e| format!("{}: {e}", next.display()))?;
                cur = next;
                depth += 1;
            }
        }
    }
    Ok(Some(cur))
}

/// Removes a file, symlink or directory tree; absent is fine. Never follows a symlink.
fn remove_any(p: &Path) -> Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p).at(p),
        Ok(_) => fs::remove_file(p).at(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(p, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        assert_eq!(
            clean(Path::new("./a/b/../c")).unwrap(),
            PathBuf::from("a/c")
        );
        assert_eq!(
            clean(Path::new("/etc/passwd")).unwrap(),
            PathBuf::from("etc/passwd")
        );
        assert!(clean(Path::new("../x")).is_none());
        assert!(clean(Path::new("a/../../x")).is_none());
    }

    /// Containers run as the image's users: as root, unpacking keeps the layer's
    /// owners and set-id/sticky bits.
    #[test]
    fn root_keeps_owners_and_special_modes() {
        let t = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |path: &str, kind: tar::EntryType, mode: u32, owner: u64, link: &str| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_uid(owner);
            h.set_gid(owner + 1);
            h.set_size(if kind == tar::EntryType::Regular {
                2
            } else {
                0
            });
            if kind == tar::EntryType::Symlink {
                b.append_link(&mut h, path, link).unwrap();
            } else {
                let data: &[u8] = if kind == tar::EntryType::Regular {
                    b"hi"
                } else {
                    b""
                };
                b.append_data(&mut h, path, data).unwrap();
            }
        };
        add("tmp/", tar::EntryType::Directory, 0o1777, 0, "");
        add("home/app/", tar::EntryType::Directory, 0o700, 1000, "");
        add("home/app/notes", tar::EntryType::Regular, 0o600, 1000, "");
        add("bin/su", tar::EntryType::Regular, 0o4755, 0, "");
        add(
            "home/app/link",
            tar::EntryType::Symlink,
            0o777,
            1000,
            "notes",
        );
        let blob = t.path().join("layer.tar");
        fs::write(&blob, b.into_inner().unwrap()).unwrap();
        let root = t.path().join("root");
        fs::create_dir(&root).unwrap();
        extract_layer(&blob, "sha256:test", &root).unwrap();
        let meta = |p: &str| fs::symlink_metadata(root.join(p)).unwrap();
        if !running_as_root() {
            eprintln!("not root: owners cannot be given away; only checking the unpack works");
            assert_eq!(fs::read(root.join("home/app/notes")).unwrap(), b"hi");
            return;
        }
        assert_eq!(meta("tmp").mode() & 0o7777, 0o1777);
        assert_eq!(
            (meta("home/app").uid(), meta("home/app").gid()),
            (1000, 1001)
        );
        assert_eq!(meta("home/app").mode() & 0o7777, 0o700);
        assert_eq!(
            (meta("home/app/notes").uid(), meta("home/app/notes").gid()),
            (1000, 1001)
        );
        assert_eq!(meta("bin/su").mode() & 0o7777, 0o4755);
        assert_eq!((meta("bin/su").uid(), meta("bin/su").gid()), (0, 1));
        assert_eq!(meta("home/app/link").uid(), 1000);
    }

    #[test]
    fn symlinks_resolve_inside_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::os::unix::fs::symlink("/etc", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("up")).unwrap();
        let p = resolve_in_root(root, Path::new("abs/sub"), true)
            .unwrap()
            .unwrap();
        assert_eq!(p, root.join("etc/sub"));
        let p = resolve_in_root(root, Path::new("up/tmp"), true)
            .unwrap()
            .unwrap();
        assert_eq!(p, root.join("tmp"));
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert!(resolve_in_root(root, Path::new("loop/x"), true).is_err());
    }
}
