//! Helm sources: `helm template RELEASE DIR` with Argo CD's `spec.source.helm` options.

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;

use ferry_core::parse::{Limits, parse_str_with};

use crate::confine::Root;
use crate::error::{Error, Result};
use crate::exec;
use crate::{HelmOptions, Output, Toolchain};

/// Templates the chart in `dir` and parses what helm prints, once the chart and its
/// value files are known to stay inside `root`.
pub(crate) fn render(
    dir: &Path,
    opts: &HelmOptions,
    tools: &Toolchain,
    root: &Root,
) -> Result<Output> {
    check(dir, opts, root)?;
    let Some(program) = tools.helm() else {
        return Err(Error::ToolMissing {
            message: format!(
                "helm is not on PATH; install helm to render the chart at {} ({})",
                dir.display(),
                tools.helm_search()
            ),
        });
    };
    let release = match &opts.release_name {
        Some(r) if !r.is_empty() => r.clone(),
        _ => default_release_name(dir)?,
    };
    let mut args: Vec<OsString> = vec!["template".into(), release.into(), dir.into()];
    if let Some(ns) = opts.namespace.as_deref().filter(|ns| !ns.is_empty()) {
        args.extend(["--namespace".into(), ns.into()]);
    }
    for file in &opts.value_files {
        args.extend(["-f".into(), value_file(dir, file)]);
    }
    // Inline values go through a file that lives until helm exits, as Argo CD does;
    // they come after the value files, so they win.
    let inline = match opts.values.as_deref().filter(|v| !v.trim().is_empty()) {
        Some(values) => Some(inline_values(values)?),
        None => None,
    };
    if let Some(file) = &inline {
        args.extend(["-f".into(), file.path().into()]);
    }
    for (key, value) in &opts.set {
        args.extend(["--set".into(), format!("{key}={value}").into()]);
    }
    args.push(
        if opts.skip_crds {
            "--skip-crds"
        } else {
            "--include-crds"
        }
        .into(),
    );

    let command = exec::display("helm", &args);
    let out = exec::run(program, &args, &command, tools.timeout())?;
    drop(inline);
    // A tool's output is the whole app: held to the render budget (already
    // enforced while reading it), not to the per-file limit.
    let limits = Limits {
        max_bytes: Limits::default().max_render_bytes,
        ..Limits::default()
    };
    let objects = parse_str_with(&out.stdout, &command, &limits)?;
    let warnings = out
        .stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| format!("{command}: {l}"))
        .collect();
    Ok(Output { objects, warnings })
}

/// Refuses value files outside `root` (relative ones are taken from the chart
/// directory, as helm is given them), value files by `file://` or any URL scheme
/// but http(s) (which helm fetches itself, with no credentials of ferry's), and
/// symlinks in the chart that point outside `root` (helm follows them).
fn check(dir: &Path, opts: &HelmOptions, root: &Root) -> Result<()> {
    let chart = root.show(dir);
    for (i, file) in opts.value_files.iter().enumerate() {
        let field = format!("helm.valueFiles[{i}]");
        if let Some((scheme, _)) = file.split_once("://") {
            if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") {
                continue;
            }
            return Err(Error::Remote {
                file: chart,
                field,
                url: file.clone(),
                reason: "a URL helm would read outside the repository; use a path inside the repository, or an http(s) URL".to_string(),
            });
        }
        let path = Path::new(file);
        let resolved = if path.is_absolute() {
            path.to_path_buf()
        } else {
            dir.join(path)
        };
        if !root.contains(&resolved) {
            return Err(Error::OutsideRoot {
                file: chart,
                field,
                path: file.clone(),
            });
        }
    }
    root.check_symlinks_under(dir)
}

/// The chart directory's own name, as a release name when none is given.
fn default_release_name(dir: &Path) -> Result<String> {
    let abs = dir.canonicalize().map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(abs
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "release".to_string()))
}

/// A value file as helm should see it: URLs and absolute paths as given, relative
/// paths from the chart directory (Argo CD resolves them there too).
fn value_file(dir: &Path, file: &str) -> OsString {
    if file.contains("://") || Path::new(file).is_absolute() {
        file.into()
    } else {
        dir.join(file).into_os_string()
    }
}

fn inline_values(values: &str) -> Result<tempfile::NamedTempFile> {
    let io_err = |source| Error::Io {
        path: std::env::temp_dir(),
        source,
    };
    let mut file = tempfile::Builder::new()
        .prefix("ferry-helm-values-")
        .suffix(".yaml")
        .tempfile()
        .map_err(io_err)?;
    file.write_all(values.as_bytes()).map_err(io_err)?;
    file.flush().map_err(io_err)?;
    Ok(file)
}
