//! Keeping a render inside its repository.
//!
//! A source comes from a Git repository that anyone with push access controls, and
//! the tools it is rendered with (kustomize, helm) read whatever paths it names. So
//! before a tool runs, every path the source refers to is resolved on disk (symlinks
//! followed) and refused unless it stays under the root: the repository checkout, as
//! Argo CD's repo server refuses paths and symlinks that leave the repository.

use std::path::{Component, Path, PathBuf};

use walkdir::WalkDir;

use crate::error::{Error, Result};

/// Most entries looked at when scanning a directory for escaping symlinks: a bound
/// on the walk, far above any real source tree.
const MAX_SCAN_ENTRIES: usize = 1_000_000;

/// The directory a render may read from, resolved once.
#[derive(Clone, Debug)]
pub(crate) struct Root {
    /// Canonical (absolute, symlinks resolved).
    canon: PathBuf,
}

impl Root {
    /// Resolves `dir` (which must exist).
    pub(crate) fn new(dir: &Path) -> Result<Self> {
        let canon = dir.canonicalize().map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Root { canon })
    }

    /// Whether `path` resolves to the root or somewhere under it.
    pub(crate) fn contains(&self, path: &Path) -> bool {
        let resolved = resolve(path);
        !resolved.as_os_str().is_empty() && resolved.starts_with(&self.canon)
    }

    /// `path` relative to the root for messages (`overlays/prod/kustomization.yaml`),
    /// or as given when it is not under the root.
    pub(crate) fn show(&self, path: &Path) -> String {
        let resolved = resolve(path);
        match resolved.strip_prefix(&self.canon) {
            Ok(rel) if rel.as_os_str().is_empty() => ".".to_string(),
            Ok(rel) => rel.display().to_string(),
            Err(_) => path.display().to_string(),
        }
    }

    /// Refuses a source path that is not under the root.
    pub(crate) fn check_source(&self, path: &Path) -> Result<()> {
        if self.contains(path) {
            return Ok(());
        }
        Err(Error::OutsideRoot {
            file: self.canon.display().to_string(),
            field: "source path".to_string(),
            path: path.display().to_string(),
        })
    }

    /// Refuses a symlink at `link` whose target leaves the root (dangling ones
    /// included: what they would point to is judged lexically).
    pub(crate) fn check_symlink(&self, link: &Path) -> Result<()> {
        if self.contains(link) {
            return Ok(());
        }
        let target = std::fs::read_link(link)
            .map(|t| t.display().to_string())
            .unwrap_or_else(|_| "?".to_string());
        Err(Error::OutsideRoot {
            file: self.show_link(link),
            field: "symlink".to_string(),
            path: target,
        })
    }

    /// A symlink's own path relative to the root (its parent resolved, not the link).
    fn show_link(&self, link: &Path) -> String {
        match (link.parent(), link.file_name()) {
            (Some(parent), Some(name)) => {
                let parent = self.show(parent);
                if parent == "." {
                    name.to_string_lossy().into_owned()
                } else {
                    format!("{parent}/{}", name.to_string_lossy())
                }
            }
            _ => link.display().to_string(),
        }
    }

    /// Refuses any symlink under `dir` (at any depth, hidden entries and `.git`
    /// skipped) that points outside the root, as Argo CD refuses a repository with
    /// out-of-bounds symlinks: a tool may follow any of them.
    pub(crate) fn check_symlinks_under(&self, dir: &Path) -> Result<()> {
        let walker = WalkDir::new(dir)
            .follow_links(false)
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || e.file_name() != ".git");
        for entry in walker.take(MAX_SCAN_ENTRIES) {
            let entry = entry.map_err(|e| {
                let path = e.path().unwrap_or(dir).to_path_buf();
                let message = e.to_string();
                Error::Io {
                    path,
                    source: e
                        .into_io_error()
                        .unwrap_or_else(|| std::io::Error::other(message)),
                }
            })?;
            if entry.path_is_symlink() {
                self.check_symlink(entry.path())?;
            }
        }
        Ok(())
    }
}

/// `path` made absolute with every symlink resolved. A path that does not exist
/// (yet) is resolved as far as it exists, and the rest applied lexically, so that a
/// missing `../../../etc/x` is still seen to leave the root; a dangling symlink on
/// the way is judged by where it points.
pub(crate) fn resolve(path: &Path) -> PathBuf {
    resolve_at(path, 0)
}

/// Symlinks followed by hand before giving up, as the kernel's own limit (`ELOOP`).
const MAX_LINK_DEPTH: usize = 40;

fn resolve_at(path: &Path, depth: usize) -> PathBuf {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        match std::env::current_dir() {
            Ok(cwd) => cwd.join(path),
            Err(_) => path.to_path_buf(),
        }
    };
    if let Ok(c) = abs.canonicalize() {
        return c;
    }
    let comps: Vec<Component<'_>> = abs.components().collect();
    // The longest prefix that exists, canonicalised; at worst the filesystem root.
    for keep in (1..comps.len()).rev() {
        let prefix: PathBuf = comps[..keep].iter().collect();
        let Ok(mut out) = prefix.canonicalize() else {
            continue;
        };
        for c in &comps[keep..] {
            match c {
                Component::ParentDir => {
                    out.pop();
                }
                Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
                Component::Normal(n) => {
                    out.push(n);
                    // A dangling symlink: where it points decides, not its own name.
                    let is_link =
                        std::fs::symlink_metadata(&out).is_ok_and(|m| m.file_type().is_symlink());
                    if is_link {
                        if depth >= MAX_LINK_DEPTH {
                            // A loop: resolve it to something no root contains.
                            return PathBuf::new();
                        }
                        if let Ok(target) = std::fs::read_link(&out) {
                            out.pop();
                            out = resolve_at(&out.join(target), depth + 1);
                        }
                    }
                }
            }
        }
        return out;
    }
    lexical(&abs)
}

/// `..` and `.` removed without touching the disk.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_paths_are_resolved_lexically_past_what_exists() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path()).unwrap();
        assert!(root.contains(&t.path().join("a/b/../c")));
        assert!(!root.contains(&t.path().join("a/../../x")));
        assert!(!root.contains(&t.path().join("missing/../../../etc/passwd")));
        assert!(root.contains(t.path()));
        assert!(!root.contains(Path::new("/etc/passwd")));
    }

    #[test]
    fn symlinks_are_followed_before_judging() {
        let t = tempfile::tempdir().unwrap();
        let repo = t.path().join("repo");
        std::fs::create_dir_all(repo.join("inner")).unwrap();
        std::os::unix::fs::symlink(t.path(), repo.join("up")).unwrap();
        std::os::unix::fs::symlink("inner", repo.join("ok")).unwrap();
        std::os::unix::fs::symlink("../../nowhere", repo.join("dangling")).unwrap();
        let root = Root::new(&repo).unwrap();
        assert!(!root.contains(&repo.join("up")));
        assert!(!root.contains(&repo.join("up/repo/../x")));
        assert!(root.contains(&repo.join("ok")));
        root.check_symlink(&repo.join("ok")).unwrap();
        let err = root
            .check_symlink(&repo.join("dangling"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("dangling: symlink \"../../nowhere\" points outside"),
            "{err}"
        );
        let err = root.check_symlinks_under(&repo).unwrap_err().to_string();
        assert!(err.contains("points outside the repository"), "{err}");
    }
}
