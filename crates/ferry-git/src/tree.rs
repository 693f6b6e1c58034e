//! Reading commits out of a mirror: checkouts for rendering, tree diffs, commit metadata.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::Ordering;

/// Blobs larger than this are checked out as sparse files of their size, never read:
/// no renderer accepts a manifest this big (ferry-core's per-file limit is 16 MiB),
/// and reading one whole would let a commit drive the daemon's memory.
pub const CHECKOUT_CONTENT_LIMIT: u64 = 16 * 1024 * 1024;

use gix::objs::tree::EntryKind;

use crate::cache::{Mirror, RepoCache, lock, read, write};
use crate::commit::{CommitId, CommitInfo};
use crate::error::{Error, Result, chain};
use crate::url::RepoUrl;

impl RepoCache {
    /// The files of `path` at `commit`, on disk, for rendering. `""` or `"."` is the
    /// repository root.
    ///
    /// The whole tree of the commit is written once, atomically (temp dir, then rename),
    /// to `trees/<commit>/`, and the returned directory is `trees/<commit>/<path>`: so
    /// that a Kustomize overlay can still reach `../base` and a Helm chart its sibling
    /// values, as under Argo CD, and so that a thousand apps of one repository share one
    /// checkout per commit. Later calls for the same `(commit, path)` are answered from
    /// memory, and a new `RepoCache` on the same root reuses what is on disk.
    ///
    /// Treat the directory as read-only: it is shared by every app at that commit.
    pub fn checkout(&self, url: &str, commit: &CommitId, path: &str) -> Result<PathBuf> {
        let path = normalize_repo_path(path)?;
        if let Some(dir) = read(&self.trees)
            .get(commit.as_str())
            .and_then(|paths| paths.get(path.as_str()))
        {
            return Ok(dir.clone());
        }
        let url = RepoUrl::parse(url)?;
        let tree_dir = self.root.join("trees").join(commit.as_str());
        if !tree_dir.is_dir() {
            self.materialise(&url, commit, &tree_dir)?;
        }
        let dir = if path.is_empty() {
            tree_dir.clone()
        } else {
            tree_dir.join(&path)
        };
        match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::NotADirectory {
                    url: url.display().to_string(),
                    commit: commit.to_string(),
                    path,
                });
            }
            Err(_) => {
                return Err(Error::PathNotFound {
                    url: url.display().to_string(),
                    commit: commit.to_string(),
                    path,
                });
            }
        }
        write(&self.trees)
            .entry(commit.clone())
            .or_default()
            .insert(path, dir.clone());
        Ok(dir)
    }

    /// Delete the checkouts of every commit not in `keep` (from disk and memory), to
    /// bound the disk used by old revisions. Returns how many were removed.
    ///
    /// Only call it when no render is reading a removed commit's files.
    pub fn prune_checkouts(&self, keep: &[CommitId]) -> Result<usize> {
        let trees = self.root.join("trees");
        let entries = match std::fs::read_dir(&trees) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io("cannot list", &trees, e)),
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("cannot list", &trees, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if keep.iter().any(|k| k.as_str() == name) {
                continue;
            }
            write(&self.trees).remove(name.as_str());
            std::fs::remove_dir_all(entry.path())
                .map_err(|e| Error::io("cannot remove", entry.path(), e))?;
            removed += 1;
        }
        Ok(removed)
    }

    /// The paths of files (and symlinks, submodules) that differ between the trees of two
    /// commits: added, deleted, modified or changed in mode. Sorted, `/`-separated,
    /// relative to the repository root. Use [`path_touched`] to ask whether an app's
    /// source path is among them.
    pub fn changed_paths(&self, url: &str, from: &CommitId, to: &CommitId) -> Result<Vec<String>> {
        let url = RepoUrl::parse(url)?;
        let mirror = self.mirror(&url);
        let table = self.table(&mirror)?;
        let repo = table.repo.to_thread_local();
        let a = commit_tree(&repo, &mirror, from)?;
        let b = commit_tree(&repo, &mirror, to)?;
        let mut out = Vec::new();
        diff_trees(&repo, Some(a), Some(b), "", &mut out).map_err(|m| repo_err(&mirror, m))?;
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Message, author and time of `commit`.
    pub fn commit_info(&self, url: &str, commit: &CommitId) -> Result<CommitInfo> {
        let url = RepoUrl::parse(url)?;
        let mirror = self.mirror(&url);
        let table = self.table(&mirror)?;
        let repo = table.repo.to_thread_local();
        let c = find_commit(&repo, &mirror, commit)?;
        let err = |e: gix::Error| repo_err(&mirror, chain(&e));
        let author = c.author().map_err(err)?;
        let time = author.time().map_err(err)?;
        let message = c.message_raw_sloppy().to_string().trim_end().to_string();
        let summary = message
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        Ok(CommitInfo {
            id: commit.clone(),
            summary,
            message,
            author_name: author.name.to_string().trim().to_string(),
            author_email: author.email.to_string().trim().to_string(),
            time: time.seconds,
            time_offset: time.offset,
            parents: c.parent_ids().map(CommitId::from_oid).collect(),
        })
    }

    /// Write the whole tree of `commit` to `tree_dir` (temp dir, then rename).
    fn materialise(&self, url: &RepoUrl, commit: &CommitId, tree_dir: &Path) -> Result<()> {
        let commit_lock = {
            let mut locks = lock(&self.tree_locks);
            locks.entry(commit.clone()).or_default().clone()
        };
        let guard = lock(&commit_lock);
        let result = if tree_dir.is_dir() {
            Ok(())
        } else {
            self.write_commit_tree(url, commit, tree_dir)
        };
        drop(guard);
        lock(&self.tree_locks).remove(commit.as_str());
        result
    }

    fn write_commit_tree(&self, url: &RepoUrl, commit: &CommitId, tree_dir: &Path) -> Result<()> {
        let mirror = self.mirror(url);
        let table = self.table(&mirror)?;
        let repo = table.repo.to_thread_local();
        let tree = commit_tree(&repo, &mirror, commit)?;
        let tmp_root = self.root.join("tmp");
        std::fs::create_dir_all(&tmp_root).map_err(|e| Error::io("cannot create", &tmp_root, e))?;
        let tmp = tempfile::Builder::new()
            .prefix("tree-")
            .tempdir_in(&tmp_root)
            .map_err(|e| Error::io("cannot create a temp dir in", &tmp_root, e))?;
        let mut writer = TreeWriter {
            repo: &repo,
            mirror: &mirror,
            commit,
            root: tmp.path(),
        };
        writer.write_tree(tree, "")?;
        let parent = self.root.join("trees");
        std::fs::create_dir_all(&parent).map_err(|e| Error::io("cannot create", &parent, e))?;
        let tmp_path = tmp.keep();
        if let Err(e) = std::fs::rename(&tmp_path, tree_dir) {
            let _ = std::fs::remove_dir_all(&tmp_path);
            // Another process wrote the same commit first: its copy is as good as ours.
            if !tree_dir.is_dir() {
                return Err(Error::io("cannot move a checkout to", tree_dir, e));
            }
        } else {
            self.trees_written.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Whether `path` (an app's source path, `""` or `"."` for the whole repository) is
/// touched by `changed` (from [`RepoCache::changed_paths`]).
pub fn path_touched(changed: &[String], path: &str) -> bool {
    let Ok(path) = normalize_repo_path(path) else {
        return true;
    };
    if path.is_empty() {
        return !changed.is_empty();
    }
    changed.iter().any(|c| {
        c == &path || (c.starts_with(path.as_str()) && c.as_bytes().get(path.len()) == Some(&b'/'))
    })
}

/// `./apps/web/` → `apps/web`; `.` and `""` → `""`. Refuses absolute paths and `..`.
pub(crate) fn normalize_repo_path(path: &str) -> Result<String> {
    let invalid = |reason: &str| Error::InvalidPath {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    if path.starts_with('/') || path.starts_with('\\') {
        return Err(invalid("it must be relative to the repository root"));
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.trim().split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(invalid("it must not climb out with `..`")),
            p if p.contains('\0') => return Err(invalid("it contains a NUL byte")),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

fn repo_err(mirror: &Mirror, message: String) -> Error {
    Error::Repository {
        url: mirror.url.display().to_string(),
        dir: mirror.dir.clone(),
        message,
    }
}

fn find_commit<'r>(
    repo: &'r gix::Repository,
    mirror: &Mirror,
    commit: &CommitId,
) -> Result<gix::Commit<'r>> {
    let not_found = || Error::CommitNotFound {
        url: mirror.url.display().to_string(),
        commit: commit.to_string(),
    };
    let obj = repo
        .try_find_object(commit.to_oid())
        .map_err(|e| repo_err(mirror, chain(&e)))?;
    obj.ok_or_else(not_found)?
        .try_into_commit()
        .map_err(|_| not_found())
}

fn commit_tree(
    repo: &gix::Repository,
    mirror: &Mirror,
    commit: &CommitId,
) -> Result<gix::ObjectId> {
    let c = find_commit(repo, mirror, commit)?;
    c.tree_id()
        .map(|id| id.detach())
        .map_err(|e| repo_err(mirror, chain(&e)))
}

/// One decoded tree entry, owned so that no object buffer is held while recursing.
struct Entry {
    name: String,
    kind: EntryKind,
    oid: gix::ObjectId,
}

fn tree_entries(
    repo: &gix::Repository,
    id: gix::ObjectId,
) -> std::result::Result<Vec<Entry>, String> {
    let tree = repo.find_tree(id).map_err(|e| chain(&e))?;
    let decoded = tree.decode().map_err(|e| chain(&e))?;
    Ok(decoded
        .entries
        .iter()
        .map(|e| Entry {
            name: e.filename.to_string(),
            kind: e.mode.kind(),
            oid: e.oid.to_owned(),
        })
        .collect())
}

/// Writes a tree's blobs, executables, symlinks and (empty) submodule dirs under `root`.
struct TreeWriter<'a> {
    repo: &'a gix::Repository,
    mirror: &'a Mirror,
    commit: &'a CommitId,
    root: &'a Path,
}

impl TreeWriter<'_> {
    fn write_tree(&mut self, id: gix::ObjectId, rel: &str) -> Result<()> {
        let entries = tree_entries(self.repo, id).map_err(|m| repo_err(self.mirror, m))?;
        for e in entries {
            if !safe_entry_name(&e.name) {
                return Err(repo_err(
                    self.mirror,
                    format!(
                        "commit {} has an unsafe entry {:?} under {:?}; refusing to write it",
                        self.commit,
                        e.name,
                        if rel.is_empty() { "/" } else { rel }
                    ),
                ));
            }
            let child_rel = if rel.is_empty() {
                e.name.clone()
            } else {
                format!("{rel}/{}", e.name)
            };
            let dest = self.root.join(&child_rel);
            match e.kind {
                EntryKind::Tree => {
                    std::fs::create_dir(&dest)
                        .map_err(|err| Error::io("cannot create", &dest, err))?;
                    self.write_tree(e.oid, &child_rel)?;
                }
                EntryKind::Blob | EntryKind::BlobExecutable => {
                    let size = self
                        .repo
                        .find_header(e.oid)
                        .map_err(|err| repo_err(self.mirror, chain(&err)))?
                        .size();
                    if size > CHECKOUT_CONTENT_LIMIT {
                        // A hostile commit's huge file is never held in memory: the
                        // checkout gets a sparse file of the same size, which every
                        // render refuses by its size (naming it) before reading it.
                        std::fs::File::create(&dest)
                            .and_then(|f| f.set_len(size))
                            .map_err(|err| Error::io("cannot write", &dest, err))?;
                    } else {
                        let blob = self
                            .repo
                            .find_blob(e.oid)
                            .map_err(|err| repo_err(self.mirror, chain(&err)))?;
                        std::fs::write(&dest, &blob.data)
                            .map_err(|err| Error::io("cannot write", &dest, err))?;
                    }
                    #[cfg(unix)]
                    if e.kind == EntryKind::BlobExecutable {
                        use std::os::unix::fs::PermissionsExt;
                        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755))
                            .map_err(|err| Error::io("cannot chmod", &dest, err))?;
                    }
                }
                EntryKind::Link => {
                    let blob = self
                        .repo
                        .find_blob(e.oid)
                        .map_err(|err| repo_err(self.mirror, chain(&err)))?;
                    let target = String::from_utf8_lossy(&blob.data).into_owned();
                    if !symlink_in_bounds(&child_rel, &target) {
                        return Err(Error::UnsafeSymlink {
                            url: self.mirror.url.display().to_string(),
                            commit: self.commit.to_string(),
                            path: child_rel,
                            target,
                        });
                    }
                    #[cfg(unix)]
                    std::os::unix::fs::symlink(&target, &dest)
                        .map_err(|err| Error::io("cannot create symlink", &dest, err))?;
                    #[cfg(not(unix))]
                    std::fs::write(&dest, target.as_bytes())
                        .map_err(|err| Error::io("cannot write", &dest, err))?;
                }
                // A submodule is an empty directory, as in a checkout without
                // `--recurse-submodules` (Argo CD does not fetch them by default either).
                EntryKind::Commit => {
                    std::fs::create_dir(&dest)
                        .map_err(|err| Error::io("cannot create", &dest, err))?;
                }
            }
        }
        Ok(())
    }
}

fn safe_entry_name(name: &str) -> bool {
    !(name.is_empty()
        || name == "."
        || name == ".."
        || name.eq_ignore_ascii_case(".git")
        || name.contains(['/', '\\', '\0']))
}

/// Whether a symlink at `link` (repo-relative) pointing to `target` stays inside the
/// repository, resolving `..` lexically from the link's directory.
fn symlink_in_bounds(link: &str, target: &str) -> bool {
    let t = Path::new(target);
    if t.is_absolute() || target.is_empty() {
        return false;
    }
    let mut depth: Vec<&str> = link.split('/').collect();
    depth.pop(); // the link's own name
    for c in t.components() {
        match c {
            Component::Normal(p) => depth.push(p.to_str().unwrap_or("?")),
            Component::CurDir => {}
            Component::ParentDir => {
                if depth.pop().is_none() {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// Append to `out` every non-tree path that differs between trees `a` and `b`.
fn diff_trees(
    repo: &gix::Repository,
    a: Option<gix::ObjectId>,
    b: Option<gix::ObjectId>,
    prefix: &str,
    out: &mut Vec<String>,
) -> std::result::Result<(), String> {
    if a == b {
        return Ok(());
    }
    let load = |id: Option<gix::ObjectId>| -> std::result::Result<BTreeMap<String, (EntryKind, gix::ObjectId)>, String> {
        Ok(match id {
            Some(id) => tree_entries(repo, id)?
                .into_iter()
                .map(|e| (e.name, (e.kind, e.oid)))
                .collect(),
            None => BTreeMap::new(),
        })
    };
    let left = load(a)?;
    let right = load(b)?;
    let mut names: Vec<&String> = left.keys().chain(right.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let l = left.get(name);
        let r = right.get(name);
        if l == r {
            continue;
        }
        let is_tree =
            |x: Option<&(EntryKind, gix::ObjectId)>| x.is_some_and(|(k, _)| *k == EntryKind::Tree);
        let tree_of = |x: Option<&(EntryKind, gix::ObjectId)>| {
            x.filter(|(k, _)| *k == EntryKind::Tree).map(|(_, id)| *id)
        };
        if is_tree(l) || is_tree(r) {
            diff_trees(repo, tree_of(l), tree_of(r), &path, out)?;
        }
        // A file on either side (added, removed, modified, or replaced by a directory).
        if (l.is_some() && !is_tree(l)) || (r.is_some() && !is_tree(r)) {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_paths_are_normalised() {
        assert_eq!(normalize_repo_path(".").unwrap(), "");
        assert_eq!(normalize_repo_path("").unwrap(), "");
        assert_eq!(normalize_repo_path("./apps//web/").unwrap(), "apps/web");
        assert!(normalize_repo_path("../x").is_err());
        assert!(normalize_repo_path("a/../../x").is_err());
        assert!(normalize_repo_path("/etc").is_err());
    }

    #[test]
    fn symlinks_must_stay_inside() {
        assert!(symlink_in_bounds("apps/web/base", "../../base"));
        assert!(symlink_in_bounds("a", "b/c"));
        assert!(!symlink_in_bounds("apps/web/x", "../../../etc/passwd"));
        assert!(!symlink_in_bounds("x", "/etc/passwd"));
    }

    #[test]
    fn path_touched_matches_whole_components() {
        let changed = vec!["apps/web/deploy.yaml".to_string(), "README.md".to_string()];
        assert!(path_touched(&changed, "apps/web"));
        assert!(path_touched(&changed, "./apps/web/"));
        assert!(!path_touched(&changed, "apps/we"));
        assert!(!path_touched(&changed, "apps/api"));
        assert!(path_touched(&changed, "."));
        assert!(path_touched(&changed, "README.md"));
    }

    #[test]
    fn unsafe_entry_names_are_refused() {
        assert!(!safe_entry_name(".."));
        assert!(!safe_entry_name(".GIT"));
        assert!(safe_entry_name(".github"));
    }
}
