//! The build context: which ignore file applies and which files of the context
//! directory survive it. This module reads the file system; everything else in the
//! frontend is pure.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::ignore::{MatchInfo, PatternMatcher};

/// What kind of entry a context path is. Symlinks are not followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file (or anything that is neither a directory nor a symlink).
    File,
    /// A directory.
    Dir,
    /// A symbolic link (to a file or a directory).
    Symlink,
}

/// One path of the context that is sent to the build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextEntry {
    /// Slash-separated, relative to the context directory.
    pub path: String,
    /// What it is.
    pub kind: EntryKind,
}

/// The ignore file in effect for a build and its compiled patterns.
#[derive(Clone, Debug)]
pub struct IgnoreFile {
    /// Where it was found.
    pub path: PathBuf,
    /// Its patterns.
    pub matcher: PatternMatcher,
}

/// Finds the ignore file as Docker and Podman do: `<Dockerfile>.dockerignore` beside
/// the Dockerfile first (buildkit's per-Dockerfile ignore file), then
/// `<context>/.dockerignore`, then Podman's `<context>/.containerignore`.
pub fn find_ignore_file(context: &Path, dockerfile: Option<&Path>) -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(df) = dockerfile
        && let Some(name) = df.file_name()
    {
        let dir = df.parent().unwrap_or(Path::new(""));
        let mut n = name.to_os_string();
        n.push(".dockerignore");
        candidates.push(dir.join(&n));
        let mut n = name.to_os_string();
        n.push(".containerignore");
        candidates.push(dir.join(&n));
    }
    candidates.push(context.join(".dockerignore"));
    candidates.push(context.join(".containerignore"));
    candidates.into_iter().find(|p| p.is_file())
}

/// Reads and compiles the ignore file for a build, if there is one.
pub fn load_ignore_file(context: &Path, dockerfile: Option<&Path>) -> Result<Option<IgnoreFile>> {
    let Some(path) = find_ignore_file(context, dockerfile) else {
        return Ok(None);
    };
    let bytes = fs::read(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let matcher = PatternMatcher::parse(&name, &text)?;
    Ok(Some(IgnoreFile { path, matcher }))
}

/// Lists the entries of `context` that `ignore` does not exclude, depth first with
/// the entries of each directory in byte order of their names (the order Go's
/// `filepath.Walk` gives, so the same tree always lists the same way).
///
/// An excluded directory is still walked when an exception could re-include
/// something inside it; it is then listed only if something inside it is. The
/// Dockerfile and the ignore file are listed like any other file unless a pattern
/// excludes them (Docker still reads them, but `COPY` does not see them).
pub fn list_context(context: &Path, ignore: Option<&PatternMatcher>) -> Result<Vec<ContextEntry>> {
    let mut out = Vec::new();
    let empty = PatternMatcher::default();
    let pm = ignore.unwrap_or(&empty);
    walk(context, "", pm, &MatchInfo::default(), &mut out)?;
    Ok(out)
}

fn walk(
    root: &Path,
    rel_dir: &str,
    pm: &PatternMatcher,
    parent: &MatchInfo,
    out: &mut Vec<ContextEntry>,
) -> Result<()> {
    let dir = if rel_dir.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel_dir)
    };
    let read = fs::read_dir(&dir).map_err(|source| Error::Io {
        path: dir.clone(),
        source,
    })?;
    let mut entries = Vec::new();
    for entry in read {
        let entry = entry.map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        let ft = entry.file_type().map_err(|source| Error::Io {
            path: entry.path(),
            source,
        })?;
        entries.push((entry.file_name(), ft));
    }
    entries.sort_by(|a, b| a.0.as_encoded_bytes().cmp(b.0.as_encoded_bytes()));
    for (name, ft) in entries {
        let name = name.to_string_lossy();
        let rel = if rel_dir.is_empty() {
            name.to_string()
        } else {
            format!("{rel_dir}/{name}")
        };
        let kind = if ft.is_symlink() {
            EntryKind::Symlink
        } else if ft.is_dir() {
            EntryKind::Dir
        } else {
            EntryKind::File
        };
        let (excluded, info) = pm.matches_using_parent(&rel, parent);
        if !excluded {
            out.push(ContextEntry {
                path: rel.clone(),
                kind,
            });
            if kind == EntryKind::Dir {
                walk(root, &rel, pm, &info, out)?;
            }
            continue;
        }
        if kind != EntryKind::Dir || !pm.may_include_below(&rel) {
            continue;
        }
        // Walk the excluded directory for re-included children; list the directory
        // itself only when one turns up, so that it can hold them.
        let at = out.len();
        walk(root, &rel, pm, &info, out)?;
        if out.len() > at {
            out.insert(at, ContextEntry { path: rel, kind });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            let p = dir.path().join(f);
            if f.ends_with('/') {
                fs::create_dir_all(&p).unwrap();
            } else {
                fs::create_dir_all(p.parent().unwrap()).unwrap();
                fs::write(&p, f).unwrap();
            }
        }
        dir
    }

    fn paths(entries: &[ContextEntry]) -> Vec<&str> {
        entries.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn lists_in_walk_order_without_ignore() {
        let dir = tree(&["b.txt", "a/x", "a.txt", "empty/"]);
        let got = list_context(dir.path(), None).unwrap();
        assert_eq!(paths(&got), ["a", "a/x", "a.txt", "b.txt", "empty"]);
        assert_eq!(got[0].kind, EntryKind::Dir);
        assert_eq!(got[1].kind, EntryKind::File);
    }

    #[test]
    fn excluded_dir_with_reincluded_child_is_walked() {
        let dir = tree(&[
            "Dockerfile",
            ".dockerignore",
            "docs/keep.md",
            "docs/drop.md",
            "docs/deep/keep.md",
            "node_modules/x/index.js",
            "src/app.py",
            "src/app.pyc",
            ".git/HEAD",
        ]);
        fs::write(
            dir.path().join(".dockerignore"),
            "# build junk\n.git\nnode_modules\n**/*.pyc\ndocs\n!docs/keep.md\n.dockerignore\n",
        )
        .unwrap();
        let ignore = load_ignore_file(dir.path(), None).unwrap().unwrap();
        assert!(ignore.path.ends_with(".dockerignore"));
        let got = list_context(dir.path(), Some(&ignore.matcher)).unwrap();
        assert_eq!(
            paths(&got),
            ["Dockerfile", "docs", "docs/keep.md", "src", "src/app.py"]
        );
    }

    #[test]
    fn wildcard_exception_walks_everything_excluded() {
        let dir = tree(&["vendor/a/LICENSE", "vendor/a/code.go", "main.go"]);
        let pm = PatternMatcher::parse(".dockerignore", "vendor\n!**/LICENSE\n").unwrap();
        let got = list_context(dir.path(), Some(&pm)).unwrap();
        assert_eq!(
            paths(&got),
            ["main.go", "vendor", "vendor/a", "vendor/a/LICENSE"]
        );
    }

    #[test]
    fn per_dockerfile_ignore_file_wins() {
        let dir = tree(&[
            "build/app.Dockerfile",
            "build/app.Dockerfile.dockerignore",
            ".dockerignore",
            ".containerignore",
        ]);
        let df = dir.path().join("build/app.Dockerfile");
        assert_eq!(
            find_ignore_file(dir.path(), Some(&df)).unwrap(),
            dir.path().join("build/app.Dockerfile.dockerignore")
        );
        assert_eq!(
            find_ignore_file(dir.path(), None).unwrap(),
            dir.path().join(".dockerignore")
        );
        fs::remove_file(dir.path().join(".dockerignore")).unwrap();
        assert_eq!(
            find_ignore_file(dir.path(), None).unwrap(),
            dir.path().join(".containerignore")
        );
    }
}
