//! Kustomize sources: `kustomize build DIR`, or `kubectl kustomize DIR` when only
//! kubectl is installed.

use std::collections::{HashSet, VecDeque};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use ferry_core::parse::{Limits, parse_str_with, parse_values};
use serde_json::Value;

use crate::confine::{Root, resolve};
use crate::error::{Error, Result};
use crate::exec;
use crate::{Output, Toolchain};

/// File names that make a directory a Kustomize source, as Argo CD recognises them.
pub(crate) const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Builds the kustomization in `dir` and parses what it prints, once every path the
/// kustomization graph reaches is known to stay inside `root`.
pub(crate) fn render(dir: &Path, tools: &Toolchain, root: &Root) -> Result<Output> {
    let (program, name, mut args): (&Path, &str, Vec<OsString>) =
        match (tools.kustomize(), tools.kubectl()) {
            (Some(k), _) => (k, "kustomize", vec!["build".into()]),
            (None, Some(k)) => (k, "kubectl", vec!["kustomize".into()]),
            (None, None) => {
                return Err(Error::ToolMissing {
                    message: format!(
                        "neither kustomize nor kubectl is on PATH; install one to render {} ({})",
                        dir.display(),
                        tools.kustomize_search()
                    ),
                });
            }
        };
    check(dir, root)?;
    args.push(dir.as_os_str().to_owned());
    let command = exec::display(name, &args);
    let out = exec::run(program, &args, &command, tools.timeout())?;
    // A tool's output is the whole app: held to the render budget (already
    // enforced while reading it), not to the per-file limit.
    let limits = Limits {
        max_bytes: Limits::default().max_render_bytes,
        ..Limits::default()
    };
    let objects = parse_str_with(&out.stdout, &command, &limits)?;
    // kustomize reports deprecations (`commonLabels`, `patchesStrategicMerge`) on stderr.
    let warnings = out
        .stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| format!("{command}: {}", l.trim_start_matches("# ")))
        .collect();
    Ok(Output { objects, warnings })
}

/// Most kustomizations one render may reach: a bound on the walk, far above any real
/// repository.
const MAX_KUSTOMIZATIONS: usize = 10_000;

/// Walks the kustomization graph from `dir` (every kustomization reached through
/// `resources`, `bases`, `components`, generators, transformers and validators) and
/// refuses, before kustomize runs, any local path that resolves outside `root`, any
/// `file://` URL and any remote base; then any symlink in a reached directory that
/// points outside `root`.
///
/// kustomize's own load restrictor keeps patch and generator files inside each
/// kustomization's directory, but a resource directory is a new root to it, wherever
/// it is; and a remote base would be fetched by kustomize itself, outside ferry's
/// credential rules. Both are closed here.
pub(crate) fn check(dir: &Path, root: &Root) -> Result<()> {
    let mut walk = Walk {
        root,
        seen: HashSet::new(),
        queue: VecDeque::new(),
    };
    walk.enqueue(dir);
    let mut visited = Vec::new();
    while let Some(next) = walk.queue.pop_front() {
        if visited.len() >= MAX_KUSTOMIZATIONS {
            break;
        }
        walk.kustomization(&next)?;
        visited.push(next);
    }
    for d in &visited {
        root.check_symlinks_under(d)?;
    }
    Ok(())
}

/// The state of one walk of the kustomization graph.
struct Walk<'a> {
    root: &'a Root,
    /// Canonical directories already queued.
    seen: HashSet<PathBuf>,
    queue: VecDeque<PathBuf>,
}

/// What a field's entries may name.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// A file, or a directory holding a kustomization (`resources`, `components`).
    FileOrKustomization,
    /// A file (patches, generator inputs, CRDs); a directory is only checked.
    File,
    /// A file, a kustomization directory, or an inline YAML config
    /// (`generators`, `transformers`, `validators`, `patchesStrategicMerge`).
    InlineOrPath,
}

impl Walk<'_> {
    fn enqueue(&mut self, dir: &Path) {
        let canon = resolve(dir);
        if self.seen.insert(canon.clone()) {
            self.queue.push_back(canon);
        }
    }

    /// Checks the paths of the kustomization in `dir` (canonical) and queues the
    /// kustomizations it reaches. A directory without one is left to kustomize to
    /// refuse.
    fn kustomization(&mut self, dir: &Path) -> Result<()> {
        let Some(file) = KUSTOMIZATION_FILES
            .iter()
            .map(|f| dir.join(f))
            .find(|f| f.is_file())
        else {
            return Ok(());
        };
        let shown = self.root.show(&file);
        let size = std::fs::metadata(&file).map_or(0, |m| m.len());
        let limit = Limits::default().max_bytes;
        if size > limit as u64 {
            return Err(ferry_core::Error::TooLarge {
                file: shown,
                size: usize::try_from(size).unwrap_or(usize::MAX),
                limit,
            }
            .into());
        }
        let text = crate::plain::read_bounded(&file, &shown, limit)?;
        let Some((_, doc)) = parse_values(&text, &shown)?.into_iter().next() else {
            return Ok(());
        };
        let k = Kustomization { file: &shown, dir };
        let mut found: Vec<(String, String, Entry)> = Vec::new();
        for (field, kind) in [
            ("resources", Entry::FileOrKustomization),
            ("bases", Entry::FileOrKustomization),
            ("components", Entry::FileOrKustomization),
            ("crds", Entry::File),
            ("configurations", Entry::File),
            ("patchesStrategicMerge", Entry::InlineOrPath),
            ("generators", Entry::InlineOrPath),
            ("transformers", Entry::InlineOrPath),
            ("validators", Entry::InlineOrPath),
        ] {
            for (i, v) in strings(doc.get(field)) {
                found.push((format!("{field}[{i}]"), v, kind));
            }
        }
        for field in ["patches", "patchesJson6902", "replacements"] {
            for (i, item) in items(doc.get(field)) {
                match item {
                    // kustomize accepts a bare path in `patches` too.
                    Value::String(v) => {
                        found.push((format!("{field}[{i}]"), v.clone(), Entry::InlineOrPath));
                    }
                    _ => {
                        if let Some(v) = item.get("path").and_then(Value::as_str) {
                            found.push((format!("{field}[{i}].path"), v.to_string(), Entry::File));
                        }
                    }
                }
            }
        }
        for field in ["configMapGenerator", "secretGenerator"] {
            for (i, gen_) in items(doc.get(field)) {
                for (j, v) in strings(gen_.get("files")) {
                    // `key=path` names the key; the path is after the first `=`.
                    let path = v.split_once('=').map_or(v.as_str(), |(_, p)| p).to_string();
                    found.push((format!("{field}[{i}].files[{j}]"), path, Entry::File));
                }
                for (j, v) in strings(gen_.get("envs")) {
                    found.push((format!("{field}[{i}].envs[{j}]"), v, Entry::File));
                }
                if let Some(v) = gen_.get("env").and_then(Value::as_str) {
                    found.push((format!("{field}[{i}].env"), v.to_string(), Entry::File));
                }
            }
        }
        if let Some(v) = doc.pointer("/openapi/path").and_then(Value::as_str) {
            found.push(("openapi.path".into(), v.to_string(), Entry::File));
        }
        if let Some(v) = doc
            .pointer("/helmGlobals/chartHome")
            .and_then(Value::as_str)
        {
            found.push(("helmGlobals.chartHome".into(), v.to_string(), Entry::File));
        }
        for (i, chart) in items(doc.get("helmCharts")) {
            if let Some(v) = chart.get("valuesFile").and_then(Value::as_str) {
                found.push((
                    format!("helmCharts[{i}].valuesFile"),
                    v.to_string(),
                    Entry::File,
                ));
            }
            for (j, v) in strings(chart.get("additionalValuesFiles")) {
                found.push((
                    format!("helmCharts[{i}].additionalValuesFiles[{j}]"),
                    v,
                    Entry::File,
                ));
            }
        }
        for (field, value, kind) in found {
            if let Some(dir) = k.check(self.root, &field, &value, kind)? {
                self.enqueue(&dir);
            }
        }
        Ok(())
    }
}

/// One kustomization file being checked.
struct Kustomization<'a> {
    /// Relative to the root, for messages.
    file: &'a str,
    /// Its directory (canonical): relative paths start here.
    dir: &'a Path,
}

impl Kustomization<'_> {
    /// Checks one entry; returns the directory to walk next when it names a
    /// kustomization directory.
    fn check(&self, root: &Root, field: &str, value: &str, kind: Entry) -> Result<Option<PathBuf>> {
        let v = value.trim();
        if v.is_empty() {
            return Ok(None);
        }
        // An inline patch or plugin config, not a path (kustomize tries a file first,
        // but a value spanning lines or opening a mapping is never one).
        if kind == Entry::InlineOrPath
            && (v.contains('\n') || v.starts_with('{') || v.starts_with("apiVersion:"))
        {
            return Ok(None);
        }
        let remote = |reason: &str| Error::Remote {
            file: self.file.to_string(),
            field: field.to_string(),
            url: v.to_string(),
            reason: reason.to_string(),
        };
        let lower = v.to_ascii_lowercase();
        if lower.starts_with("file:") {
            return Err(remote(
                "a file:// URL, which could read anywhere on the machine; refer to files inside the repository by relative path",
            ));
        }
        let path = Path::new(v);
        let joined = if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.dir.join(path)
        };
        let exists = std::fs::symlink_metadata(&joined).is_ok();
        if v.contains("://") || lower.starts_with("git@") || (!exists && looks_remote(v)) {
            return Err(remote(
                "a remote base, which ferry does not let kustomize fetch (it would bypass the repository's credentials and needs network access during every render); copy it into the repository and refer to it by relative path",
            ));
        }
        if !root.contains(&joined) {
            return Err(Error::OutsideRoot {
                file: self.file.to_string(),
                field: field.to_string(),
                path: v.to_string(),
            });
        }
        let wants_dir = matches!(kind, Entry::FileOrKustomization | Entry::InlineOrPath);
        Ok((wants_dir && joined.is_dir()).then_some(joined))
    }
}

/// Whether a path that does not exist locally is one kustomize would try to fetch:
/// `github.com/org/repo//dir?ref=v1`, `example.com/org/repo`.
fn looks_remote(v: &str) -> bool {
    if v.contains('?') || v.trim_start_matches("./").contains("//") {
        return true;
    }
    let mut parts = v.split('/');
    let first = parts.next().unwrap_or_default();
    let rest = parts.filter(|p| !p.is_empty()).count();
    first.contains('.') && first != "." && first != ".." && rest >= 2
}

/// A field's list items, with their indexes.
fn items(v: Option<&Value>) -> impl Iterator<Item = (usize, &Value)> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
}

/// A field's string list items, with their indexes (non-strings skipped).
fn strings(v: Option<&Value>) -> impl Iterator<Item = (usize, String)> + '_ {
    items(v).filter_map(|(i, s)| s.as_str().map(|s| (i, s.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_looking_paths() {
        for r in [
            "github.com/org/repo//deploy?ref=v1",
            "example.com/org/repo",
            "repo?ref=main",
        ] {
            assert!(looks_remote(r), "{r}");
        }
        for l in [
            "missing.yaml",
            "base/x.yaml",
            "../base",
            "../../a.b/c/d",
            "./x.yaml",
        ] {
            assert!(!looks_remote(l), "{l}");
        }
    }
}
