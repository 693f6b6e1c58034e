//! Plain sources: every `*.yaml`, `*.yml` and `*.json` file of a directory (or one
//! file), selected as Argo CD's `spec.source.directory` says and parsed in parallel.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use ferry_core::Object;
use ferry_core::parse::{Limits, parse_str};
use globset::{GlobBuilder, GlobMatcher};
use walkdir::WalkDir;

use crate::confine::Root;
use crate::error::{Error, Result};
use crate::{DirectoryOptions, Output};

/// Extensions read as manifests (case-sensitive, as Argo CD's `manifestFile` pattern).
const MANIFEST_EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

/// One file to parse: where it is, and how messages name it.
struct ManifestFile {
    path: PathBuf,
    /// Relative to the source root, `/`-separated: `apps/web.yaml`.
    name: String,
    /// Size in bytes when listed, to refuse huge files before reading them.
    size: u64,
}

/// Renders a plain directory, or a single file named directly.
pub(crate) fn render(path: &Path, opts: &DirectoryOptions, root: &Root) -> Result<Output> {
    let mut warnings = Vec::new();
    let files = if path.is_dir() {
        list(path, opts, root, &mut warnings)?
    } else {
        // A size that cannot be read is taken as 0 here; reading stops at the limit.
        let size = std::fs::metadata(path).map_or(0, |m| m.len());
        vec![ManifestFile {
            path: path.to_path_buf(),
            name: path.display().to_string(),
            size,
        }]
    };
    check_sizes(&files, &Limits::default())?;
    let mut objects = Vec::new();
    for parsed in parse_all(&files) {
        objects.extend(parsed?);
    }
    Ok(Output { objects, warnings })
}

/// The manifest files under `root` in Argo CD's walk order (lexical within each
/// directory), hidden entries skipped, subdirectories only when `recurse`. A symlink
/// met on the way (file or directory) that resolves outside `confine` is refused.
fn list(
    root: &Path,
    opts: &DirectoryOptions,
    confine: &Root,
    warnings: &mut Vec<String>,
) -> Result<Vec<ManifestFile>> {
    let include = matcher("include", opts.include.as_deref())?;
    let exclude = matcher("exclude", opts.exclude.as_deref())?;
    let walker = WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
        .max_depth(if opts.recurse { usize::MAX } else { 1 });
    let mut files = Vec::new();
    let entries = walker
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for entry in entries {
        let entry = entry.map_err(|e| walk_error(root, e))?;
        // Links are followed (as Argo CD reads them), so where each one leads is
        // checked before anything below it is read; what is under a checked directory
        // is inside it, unless it is itself a link, checked in turn.
        if entry.path_is_symlink() {
            confine.check_symlink(entry.path())?;
        }
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
        let name = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        let ext = rel.extension().and_then(|e| e.to_str()).unwrap_or_default();
        let wanted = include.as_ref().is_none_or(|g| g.is_match(&name))
            && !exclude.as_ref().is_some_and(|g| g.is_match(&name));
        if !wanted {
            continue;
        }
        if ext == "jsonnet" {
            warnings.push(format!(
                "{name}: skipped: ferry does not render Jsonnet; render it to YAML or JSON first"
            ));
            continue;
        }
        if !MANIFEST_EXTENSIONS.contains(&ext) {
            continue;
        }
        let size = entry.metadata().map_or(0, |m| m.len());
        files.push(ManifestFile {
            path: entry.into_path(),
            name,
            size,
        });
    }
    Ok(files)
}

/// Refuses the render before any file is read when one file is over the per-file
/// limit or all of them together are over the per-render budget; the error names the
/// first file (in walk order) that crosses a limit, so memory stays flat however
/// big the commit is.
fn check_sizes(files: &[ManifestFile], limits: &Limits) -> Result<()> {
    let mut total: u64 = 0;
    for file in files {
        if file.size > limits.max_bytes as u64 {
            return Err(ferry_core::Error::TooLarge {
                file: file.name.clone(),
                size: usize::try_from(file.size).unwrap_or(usize::MAX),
                limit: limits.max_bytes,
            }
            .into());
        }
        total = total.saturating_add(file.size);
        if total > limits.max_render_bytes as u64 {
            return Err(Error::OverBudget {
                file: file.name.clone(),
                total,
                limit: limits.max_render_bytes,
            });
        }
    }
    Ok(())
}

/// Compiles an include/exclude pattern the way Argo CD matches it: `*` also crosses
/// `/`, and `{a,b}` lists alternatives.
fn matcher(option: &'static str, pattern: Option<&str>) -> Result<Option<GlobMatcher>> {
    let Some(pattern) = pattern.filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let glob = GlobBuilder::new(pattern)
        .literal_separator(false)
        .build()
        .map_err(|source| Error::Glob {
            option,
            pattern: pattern.to_string(),
            source,
        })?;
    Ok(Some(glob.compile_matcher()))
}

fn walk_error(root: &Path, e: walkdir::Error) -> Error {
    let path = e.path().unwrap_or(root).to_path_buf();
    let message = e.to_string();
    let source = e
        .into_io_error()
        .unwrap_or_else(|| std::io::Error::other(message));
    Error::Io { path, source }
}

/// Reads and parses every file, spread over the machine's cores; results come back
/// in file order whatever order the work finished in.
fn parse_all(files: &[ManifestFile]) -> Vec<Result<Vec<Object>>> {
    let workers = std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(files.len());
    if workers <= 1 {
        return files.iter().map(load).collect();
    }
    // Workers claim files one at a time, so one big file does not hold up a whole chunk.
    let next = AtomicUsize::new(0);
    let mut slots: Vec<Option<Result<Vec<Object>>>> = (0..files.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(file) = files.get(i) else { break };
                        done.push((i, load(file)));
                    }
                    done
                })
            })
            .collect();
        for handle in handles {
            match handle.join() {
                Ok(done) => {
                    for (i, parsed) in done {
                        slots[i] = Some(parsed);
                    }
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    slots
        .into_iter()
        .map(|slot| slot.expect("every file index is claimed by exactly one worker"))
        .collect()
}

fn load(file: &ManifestFile) -> Result<Vec<Object>> {
    let limit = Limits::default().max_bytes;
    if file.size > limit as u64 {
        return Err(ferry_core::Error::TooLarge {
            file: file.name.clone(),
            size: usize::try_from(file.size).unwrap_or(usize::MAX),
            limit,
        }
        .into());
    }
    let text = read_bounded(&file.path, &file.name, limit)?;
    Ok(parse_str(&text, &file.name)?)
}

/// Reads a file as UTF-8, never more than `limit` bytes (plus one, to notice): a file
/// that grew after it was listed, or whose size the listing could not see, is still
/// refused without being read whole.
pub(crate) fn read_bounded(path: &Path, name: &str, limit: usize) -> Result<String> {
    use std::io::Read as _;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let mut buf = Vec::new();
    f.take(limit as u64 + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() > limit {
        return Err(ferry_core::Error::TooLarge {
            file: name.to_string(),
            size: buf.len(),
            limit,
        }
        .into());
    }
    String::from_utf8(buf).map_err(|e| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text: {e}"),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_cross_slashes_and_take_braces() {
        let g = matcher("include", Some("{a.yaml,b/*.yaml}"))
            .unwrap()
            .unwrap();
        assert!(g.is_match("a.yaml"));
        assert!(g.is_match("b/x.yaml"));
        assert!(g.is_match("b/c/x.yaml"), "`*` crosses `/` as in Argo CD");
        assert!(!g.is_match("c/a.yaml"));
        assert!(matcher("include", Some("")).unwrap().is_none());
        let err = matcher("exclude", Some("{a,b")).unwrap_err().to_string();
        assert!(err.starts_with("directory.exclude \"{a,b\""), "{err}");
    }
}
