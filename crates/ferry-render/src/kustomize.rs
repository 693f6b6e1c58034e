//! Kustomize sources: `kustomize build DIR`, or `kubectl kustomize DIR` when only
//! kubectl is installed.

use std::ffi::OsString;
use std::path::Path;

use ferry_core::parse::parse_str;

use crate::error::{Error, Result};
use crate::exec;
use crate::{Output, Toolchain};

/// File names that make a directory a Kustomize source, as Argo CD recognises them.
pub(crate) const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Builds the kustomization in `dir` and parses what it prints.
pub(crate) fn render(dir: &Path, tools: &Toolchain) -> Result<Output> {
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
    args.push(dir.as_os_str().to_owned());
    let command = exec::display(name, &args);
    let out = exec::run(program, &args, &command, tools.timeout())?;
    let objects = parse_str(&out.stdout, &command)?;
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
