//! A container's root filesystem: the image's unpacked layers (shared, read-only,
//! one directory per digest, made by `ferry-oci`) under a writable upper layer of the
//! container's own (overlayfs), or — where overlayfs cannot be mounted — a full copy
//! of the image. Either way, nothing the container writes reaches the shared image.
//!
//! Cleanup unmounts and removes, and only ever inside the container's own directory:
//! it refuses to remove a tree that still has something mounted in it.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use crate::error::{Error, IoContext, Result};
use crate::procfs;

/// How to make a container's root filesystem.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RootfsMode {
    /// overlayfs, else a copy (the reason is logged).
    #[default]
    Auto,
    /// overlayfs or fail.
    Overlay,
    /// Always a copy (slow for big images; for file systems overlayfs refuses).
    Copy,
    /// The image directory itself, bind-mounted: the container writes straight into
    /// it. For the Dockerfile builder, whose stage root file system is private to one
    /// build and must keep what `RUN` writes.
    Bind,
}

/// What a container's root filesystem turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RootfsKind {
    /// An overlayfs mount: the image below, `upper/` above.
    Overlay,
    /// A private copy of the image.
    Copy,
    /// The image directory itself (bind-mounted, written in place).
    Bind,
}

/// The mount point (or copy) inside a container directory.
pub(crate) fn rootfs_dir(dir: &Path) -> PathBuf {
    dir.join("rootfs")
}

/// Makes `dir/rootfs` from `image`. Returns what it made and, when overlayfs was
/// wanted but could not be used, why.
pub(crate) fn prepare(
    id: &str,
    image: &Path,
    dir: &Path,
    mode: RootfsMode,
) -> Result<(RootfsKind, Option<String>)> {
    let meta = fs::metadata(image).at(id, image)?;
    if !meta.is_dir() {
        return Err(Error::InvalidSpec {
            id: id.to_string(),
            reason: format!("the image root {} is not a directory", image.display()),
        });
    }
    let rootfs = rootfs_dir(dir);
    fs::create_dir_all(&rootfs).at(id, &rootfs)?;
    if mode == RootfsMode::Bind {
        nix::mount::mount(
            Some(image),
            &rootfs,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|source| Error::Mount {
            id: id.to_string(),
            action: "bind-mount the root file system on".into(),
            path: rootfs.clone(),
            source,
        })?;
        return Ok((RootfsKind::Bind, None));
    }
    let mut why_not = None;
    if mode != RootfsMode::Copy {
        match mount_overlay(id, image, dir) {
            Ok(()) => return Ok((RootfsKind::Overlay, None)),
            Err(e) if mode == RootfsMode::Overlay => return Err(e),
            Err(e) => {
                let reason = format!("overlayfs could not be used ({e}); copying the image");
                tracing::warn!("{reason}");
                why_not = Some(reason);
                let _ = fs::remove_dir_all(dir.join("upper"));
                let _ = fs::remove_dir_all(dir.join("work"));
            }
        }
    }
    copy_tree(id, image, &rootfs)?;
    Ok((RootfsKind::Copy, why_not))
}

fn mount_overlay(id: &str, image: &Path, dir: &Path) -> Result<()> {
    let upper = dir.join("upper");
    let work = dir.join("work");
    let rootfs = rootfs_dir(dir);
    for d in [&upper, &work] {
        fs::create_dir_all(d).at(id, d)?;
    }
    // The image's root directory's mode and owner show through as the container's `/`
    // only if the upper layer's root has them: overlayfs takes a directory's attributes
    // from its upper copy.
    let meta = fs::metadata(image).at(id, image)?;
    fs::set_permissions(&upper, fs::Permissions::from_mode(meta.mode() & 0o7777)).at(id, &upper)?;
    std::os::unix::fs::lchown(&upper, Some(meta.uid()), Some(meta.gid())).at(id, &upper)?;
    let mut paths = Vec::new();
    for p in [image, upper.as_path(), work.as_path()] {
        let s = p.to_str().unwrap_or_default();
        // overlayfs splits its options at ',' and lowerdir at ':'.
        if s.is_empty() || s.contains([',', ':', '\\']) {
            return Err(Error::InvalidSpec {
                id: id.to_string(),
                reason: format!(
                    "{} cannot be an overlayfs layer: its path holds ',', ':' or '\\'",
                    p.display()
                ),
            });
        }
        paths.push(s.to_string());
    }
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        paths[0], paths[1], paths[2]
    );
    nix::mount::mount(
        Some("overlay"),
        &rootfs,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
    .map_err(|source| Error::Mount {
        id: id.to_string(),
        action: "mount overlay on".into(),
        path: rootfs.clone(),
        source,
    })
}

/// Unmounts whatever is mounted inside `dir` and removes `dir`. Refuses to remove
/// anything while a mount is left inside (that would delete the mounted files).
pub(crate) fn cleanup(id: &str, dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for m in procfs::mounts_under(dir) {
        if let Err(first) = nix::mount::umount2(&m, MntFlags::empty()) {
            // Busy (a process still has a file open): detach it from the tree now; the
            // kernel frees it when the last user lets go.
            nix::mount::umount2(&m, MntFlags::MNT_DETACH).map_err(|_| Error::Mount {
                id: id.to_string(),
                action: "unmount".into(),
                path: m.clone(),
                source: first,
            })?;
        }
    }
    if let Some(left) = procfs::mounts_under(dir).into_iter().next() {
        return Err(Error::StillMounted {
            id: id.to_string(),
            path: left,
        });
    }
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(id, dir, e)),
    }
}

/// Copies `src` into the existing directory `dst`, keeping modes (with set-id and
/// sticky bits), owners, symlinks and hard links. Devices, FIFOs and sockets are
/// skipped: a container's `/dev` is its own tmpfs.
fn copy_tree(id: &str, src: &Path, dst: &Path) -> Result<()> {
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut todo: Vec<(PathBuf, PathBuf)> = vec![(src.to_path_buf(), dst.to_path_buf())];
    // Directories get their final mode last, so a read-only directory can be filled.
    let mut dirs: Vec<(PathBuf, fs::Metadata)> = Vec::new();
    while let Some((from, to)) = todo.pop() {
        let meta = fs::symlink_metadata(&from).at(id, &from)?;
        let ft = meta.file_type();
        if ft.is_dir() {
            if to != dst {
                fs::create_dir(&to).at(id, &to)?;
            }
            for entry in fs::read_dir(&from).at(id, &from)? {
                let entry = entry.at(id, &from)?;
                todo.push((entry.path(), to.join(entry.file_name())));
            }
            dirs.push((to, meta));
            continue;
        }
        if ft.is_symlink() {
            let target = fs::read_link(&from).at(id, &from)?;
            std::os::unix::fs::symlink(&target, &to).at(id, &to)?;
            own(id, &to, &meta)?;
            continue;
        }
        if !ft.is_file() {
            tracing::debug!("{}: skipped special file {}", id, from.display());
            continue;
        }
        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = links.get(&key) {
                fs::hard_link(first, &to).at(id, &to)?;
                continue;
            }
            links.insert(key, to.clone());
        }
        fs::copy(&from, &to).at(id, &from)?;
        own(id, &to, &meta)?;
        // After chown, which clears set-id bits.
        fs::set_permissions(&to, fs::Permissions::from_mode(meta.mode() & 0o7777)).at(id, &to)?;
    }
    for (dir, meta) in dirs.into_iter().rev() {
        own(id, &dir, &meta)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(meta.mode() & 0o7777)).at(id, &dir)?;
    }
    Ok(())
}

/// Gives `path` the owner in `like`, when we may (as root); otherwise keeps ours.
fn own(id: &str, path: &Path, like: &fs::Metadata) -> Result<()> {
    if !procfs::is_root() {
        return Ok(());
    }
    std::os::unix::fs::lchown(path, Some(like.uid()), Some(like.gid())).at(id, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_keep_modes_links_and_hard_links() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir_all(src.join("bin")).unwrap();
        fs::write(src.join("bin/tool"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(src.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::hard_link(src.join("bin/tool"), src.join("bin/alias")).unwrap();
        std::os::unix::fs::symlink("tool", src.join("bin/link")).unwrap();
        fs::create_dir(src.join("tmp")).unwrap();
        fs::set_permissions(src.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
        let dir = t.path().join("c1");
        let (kind, why) = prepare("c1", &src, &dir, RootfsMode::Copy).unwrap();
        assert_eq!((kind, why), (RootfsKind::Copy, None));
        let root = rootfs_dir(&dir);
        let tool = fs::metadata(root.join("bin/tool")).unwrap();
        assert_eq!(tool.mode() & 0o7777, 0o755);
        assert_eq!(
            tool.ino(),
            fs::metadata(root.join("bin/alias")).unwrap().ino()
        );
        assert_eq!(
            fs::read_link(root.join("bin/link")).unwrap(),
            PathBuf::from("tool")
        );
        assert_eq!(
            fs::metadata(root.join("tmp")).unwrap().mode() & 0o7777,
            0o1777
        );
        cleanup("c1", &dir).unwrap();
        assert!(!dir.exists());
        assert!(src.join("bin/tool").exists(), "the image is untouched");
    }
}
