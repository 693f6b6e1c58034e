//! Layers from a stage's root file system: a snapshot of every entry's metadata
//! before a step, the difference after it (added and changed entries, OCI whiteouts
//! for deleted ones, an opaque marker where a directory was replaced), and that
//! difference written as a reproducible gzip tar into the image store.
//!
//! Change detection compares kind, mode, owner, size, symlink target, inode and the
//! change time (`ctime`, which every write, chmod and chown moves and no process can
//! set back) — so no file content is hashed, and a file rewritten with the same bytes
//! still counts as changed, as in Docker.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ferry_oci::Store;
use ferry_oci::spec::{Descriptor, OCI_LAYER_GZIP};
use flate2::{Compression, GzBuilder};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A device, FIFO or socket (never put into a layer).
    Other,
}

/// The metadata of one entry, as compared between snapshots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    /// What it is.
    pub kind: Kind,
    /// Permission bits with set-id and sticky bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (files).
    pub size: u64,
    /// Modification time, seconds.
    pub mtime: i64,
    /// Change time, seconds and nanoseconds.
    pub ctime: (i64, i64),
    /// Inode (a replaced entry has a new one).
    pub ino: u64,
    /// Symlink target.
    pub target: Option<PathBuf>,
}

/// Every entry under a root, by slash-separated path relative to it (no leading
/// slash); the root itself is not listed.
pub type Snapshot = BTreeMap<String, Meta>;

fn io_err(path: &Path, source: io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The metadata of `path`, symlinks not followed.
pub fn meta_of(path: &Path) -> Result<Meta> {
    let m = fs::symlink_metadata(path).map_err(|e| io_err(path, e))?;
    let ft = m.file_type();
    let kind = if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_file() {
        Kind::File
    } else {
        Kind::Other
    };
    let target = if kind == Kind::Symlink {
        Some(fs::read_link(path).map_err(|e| io_err(path, e))?)
    } else {
        None
    };
    Ok(Meta {
        kind,
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        size: if kind == Kind::File { m.len() } else { 0 },
        mtime: m.mtime(),
        ctime: (m.ctime(), m.ctime_nsec()),
        ino: m.ino(),
        target,
    })
}

/// Snapshots every entry under `root` (bounded by the tree itself: symlinks are not
/// followed).
pub fn snapshot(root: &Path) -> Result<Snapshot> {
    let mut out = Snapshot::new();
    let mut todo: Vec<String> = vec![String::new()];
    while let Some(rel) = todo.pop() {
        let dir = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(&rel)
        };
        for entry in fs::read_dir(&dir).map_err(|e| io_err(&dir, e))? {
            let entry = entry.map_err(|e| io_err(&dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let meta = meta_of(&entry.path())?;
            if meta.kind == Kind::Dir {
                todo.push(child.clone());
            }
            out.insert(child, meta);
        }
    }
    Ok(out)
}

/// One entry of a layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Added or changed: its current state goes into the layer.
    Put(String),
    /// Deleted: a `.wh.` whiteout beside where it was.
    Whiteout(String),
    /// A directory that replaced another: `.wh..wh..opq` inside it hides everything
    /// the lower layers had there.
    Opaque(String),
}

/// What changed from `before` to `after`, in a deterministic order.
pub fn diff(before: &Snapshot, after: &Snapshot) -> Vec<Change> {
    let mut out = Vec::new();
    for (path, now) in after {
        match before.get(path) {
            None => out.push(Change::Put(path.clone())),
            Some(was) if now.kind == Kind::Dir && was.kind == Kind::Dir => {
                if now.ino != was.ino {
                    out.push(Change::Put(path.clone()));
                    out.push(Change::Opaque(path.clone()));
                } else if (now.mode, now.uid, now.gid) != (was.mode, was.uid, was.gid) {
                    out.push(Change::Put(path.clone()));
                }
            }
            Some(was) if was != now => out.push(Change::Put(path.clone())),
            Some(_) => {}
        }
    }
    for path in before.keys() {
        if after.contains_key(path) {
            continue;
        }
        // Only the topmost deleted entry needs a whiteout; below a directory that is
        // gone or was replaced by something else, nothing is left to hide.
        let parent_kept = match path.rsplit_once('/') {
            None => true,
            Some((parent, _)) => matches!(
                (before.get(parent), after.get(parent)),
                (Some(b), Some(a)) if a.kind == Kind::Dir && b.kind == Kind::Dir && a.ino == b.ino
            ),
        };
        if parent_kept {
            out.push(Change::Whiteout(path.clone()));
        }
    }
    out.sort_by_key(tar_name);
    out
}

fn tar_name(c: &Change) -> String {
    match c {
        Change::Put(p) => p.clone(),
        Change::Whiteout(p) => match p.rsplit_once('/') {
            Some((dir, name)) => format!("{dir}/.wh.{name}"),
            None => format!(".wh.{p}"),
        },
        Change::Opaque(p) => format!("{p}/.wh..wh..opq"),
    }
}

/// A layer written into the store.
#[derive(Clone, Debug)]
pub struct Layer {
    /// Its descriptor (gzip).
    pub descriptor: Descriptor,
    /// The digest of the uncompressed tar.
    pub diff_id: ferry_oci::Digest,
}

/// A writer that hashes what passes through it and counts the bytes.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn digest_of(h: Sha256) -> Result<ferry_oci::Digest> {
    let hex = hex::encode(h.finalize());
    ferry_oci::Digest::parse(&format!("sha256:{hex}")).map_err(|source| Error::Image {
        what: "hashing a layer".into(),
        source: Box::new(source),
    })
}

/// Writes `changes` of `root` as a gzip tar layer into `store`. Owners and modes are
/// kept; mtimes are clamped to `epoch` when given (`SOURCE_DATE_EPOCH`); user and
/// group names are left empty, so nothing about the building machine gets in.
pub fn write_layer(
    store: &Store,
    root: &Path,
    changes: &[Change],
    epoch: Option<u64>,
) -> Result<Layer> {
    let tmp = store.temp_path("build-layer");
    let result = write_tar(&tmp, root, changes, epoch);
    let (digest, size, diff_id) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    if store.has_blob(&digest) {
        let _ = fs::remove_file(&tmp);
    } else {
        store
            .commit_blob(&tmp, &digest)
            .map_err(|source| Error::Image {
                what: "storing a layer".into(),
                source: Box::new(source),
            })?;
    }
    Ok(Layer {
        descriptor: Descriptor {
            media_type: OCI_LAYER_GZIP.to_string(),
            digest,
            size,
            platform: None,
            annotations: BTreeMap::new(),
        },
        diff_id,
    })
}

type Written = (ferry_oci::Digest, u64, ferry_oci::Digest);

fn write_tar(tmp: &Path, root: &Path, changes: &[Change], epoch: Option<u64>) -> Result<Written> {
    let file = File::create(tmp).map_err(|e| io_err(tmp, e))?;
    let compressed = Hashing {
        inner: BufWriter::new(file),
        hasher: Sha256::new(),
        len: 0,
    };
    let gz = GzBuilder::new()
        .mtime(0)
        .write(compressed, Compression::default());
    let mut tar = tar::Builder::new(Hashing {
        inner: gz,
        hasher: Sha256::new(),
        len: 0,
    });
    tar.mode(tar::HeaderMode::Complete);
    let clamp = |t: i64| -> u64 {
        let t = u64::try_from(t).unwrap_or(0);
        match epoch {
            Some(e) => t.min(e),
            None => t,
        }
    };
    for c in changes {
        let name = tar_name(c);
        match c {
            Change::Whiteout(_) | Change::Opaque(_) => {
                let mut h = header(tar::EntryType::Regular, 0o644, 0, 0, 0, clamp(0));
                tar.append_data(&mut h, &name, io::empty())
                    .map_err(|e| io_err(tmp, e))?;
            }
            Change::Put(rel) => {
                let path = root.join(rel);
                let m = meta_of(&path)?;
                let mtime = clamp(m.mtime);
                match m.kind {
                    Kind::Dir => {
                        let mut h =
                            header(tar::EntryType::Directory, m.mode, m.uid, m.gid, 0, mtime);
                        tar.append_data(&mut h, format!("{name}/"), io::empty())
                            .map_err(|e| io_err(&path, e))?;
                    }
                    Kind::Symlink => {
                        let mut h = header(tar::EntryType::Symlink, 0o777, m.uid, m.gid, 0, mtime);
                        let target = m.target.clone().unwrap_or_default();
                        tar.append_link(&mut h, &name, &target)
                            .map_err(|e| io_err(&path, e))?;
                    }
                    Kind::File => {
                        let f = File::open(&path).map_err(|e| io_err(&path, e))?;
                        let mut h =
                            header(tar::EntryType::Regular, m.mode, m.uid, m.gid, m.size, mtime);
                        tar.append_data(&mut h, &name, f)
                            .map_err(|e| io_err(&path, e))?;
                    }
                    // Devices and FIFOs cannot be recreated without privileges on the
                    // other side; Docker images carry none outside /dev.
                    Kind::Other => {}
                }
            }
        }
    }
    let uncompressed = tar.into_inner().map_err(|e| io_err(tmp, e))?;
    let diff_id = digest_of(uncompressed.hasher)?;
    let mut compressed = uncompressed.inner.finish().map_err(|e| io_err(tmp, e))?;
    compressed.flush().map_err(|e| io_err(tmp, e))?;
    let size = compressed.len;
    let digest = digest_of(compressed.hasher)?;
    let file = compressed
        .inner
        .into_inner()
        .map_err(|e| io_err(tmp, e.into_error()))?;
    file.sync_all().map_err(|e| io_err(tmp, e))?;
    Ok((digest, size, diff_id))
}

fn header(
    kind: tar::EntryType,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: u64,
) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(u64::from(uid));
    h.set_gid(u64::from(gid));
    h.set_size(size);
    h.set_mtime(mtime);
    let _ = h.set_username("");
    let _ = h.set_groupname("");
    h
}

/// Applies a stored layer on top of `root` (whiteouts included).
pub fn apply(store: &Store, digest: &ferry_oci::Digest, root: &Path) -> Result<()> {
    let blob = store.blob_path(digest);
    ferry_oci::unpack::extract_layer(&blob, digest.as_str(), root).map_err(|source| Error::Image {
        what: format!("applying layer {digest}"),
        source: Box::new(source),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_finds_added_changed_and_deleted() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("a/b")).unwrap();
        fs::write(r.join("a/b/keep"), "1").unwrap();
        fs::write(r.join("a/gone"), "1").unwrap();
        fs::create_dir_all(r.join("d/x")).unwrap();
        fs::write(r.join("change"), "1").unwrap();
        let before = snapshot(r).unwrap();
        fs::remove_file(r.join("a/gone")).unwrap();
        fs::remove_dir_all(r.join("d")).unwrap();
        fs::write(r.join("change"), "22").unwrap();
        fs::write(r.join("a/new"), "n").unwrap();
        let after = snapshot(r).unwrap();
        let d = diff(&before, &after);
        assert_eq!(
            d,
            [
                Change::Whiteout("d".into()),
                Change::Whiteout("a/gone".into()),
                Change::Put("a/new".into()),
                Change::Put("change".into()),
            ],
            "in the order of their names in the tar: `.wh.d` before `a/…`"
        );
        assert_eq!(tar_name(&d[1]), "a/.wh.gone");
    }
}
