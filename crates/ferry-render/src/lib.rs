//! ferry-render owns turning a source directory into objects: plain YAML/JSON files,
//! Kustomize (`kustomize build` / `kubectl kustomize`) and Helm (`helm template`).
//!
//! [`render`] is the one entry point. It detects the format as Argo CD does, runs the
//! external tool when one is needed (found through [`Toolchain`]), parses the output
//! with `ferry_core::parse` and refuses two objects with the same key.
//!
//! A render never reads outside its root ([`RenderOptions::confine_to`]): every path a
//! kustomization or Helm option names, and every symlink in the source, is resolved
//! and refused if it leaves the root, before any tool runs.

mod confine;
mod error;
mod exec;
mod helm;
mod kustomize;
mod plain;
mod toolchain;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ferry_core::{Object, ObjectKey};

pub use error::{Error, Result};
pub use exec::DEFAULT_TIMEOUT;
pub use toolchain::Toolchain;

/// How a source is rendered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// Detect from the files present, as Argo CD does: a kustomization file means
    /// Kustomize, a `Chart.yaml` means Helm, anything else is plain.
    #[default]
    Auto,
    /// Every `*.yaml`, `*.yml` and `*.json` file, parsed as Kubernetes objects.
    Plain,
    /// `kustomize build DIR`, or `kubectl kustomize DIR` when `kustomize` is absent.
    Kustomize,
    /// `helm template RELEASE DIR`.
    Helm,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Auto => "auto",
            Format::Plain => "plain",
            Format::Kustomize => "kustomize",
            Format::Helm => "helm",
        })
    }
}

impl FromStr for Format {
    type Err = String;

    /// Parses `auto`, `plain` (or `directory`), `kustomize` or `helm`, any case.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Format::Auto),
            "plain" | "directory" => Ok(Format::Plain),
            "kustomize" => Ok(Format::Kustomize),
            "helm" => Ok(Format::Helm),
            _ => Err(format!(
                "unknown format {s:?}; expected auto, plain, kustomize or helm"
            )),
        }
    }
}

/// Argo CD's `spec.source.directory`: which plain files are read.
#[derive(Clone, Debug, Default)]
pub struct DirectoryOptions {
    /// Descend into subdirectories (Argo's default is not to).
    pub recurse: bool,
    /// Only files whose path relative to the source root matches this glob
    /// (`*` also crosses `/`; `{a.yaml,b/*.yaml}` lists alternatives).
    pub include: Option<String>,
    /// Leave out files whose path relative to the source root matches this glob.
    pub exclude: Option<String>,
}

/// Argo CD's `spec.source.helm`: how a chart is templated.
#[derive(Clone, Debug, Default)]
pub struct HelmOptions {
    /// Release name; defaults to the chart directory's name.
    pub release_name: Option<String>,
    /// `--namespace`; omitted when unset.
    pub namespace: Option<String>,
    /// `-f` files, relative to the chart directory unless absolute or a URL.
    pub value_files: Vec<String>,
    /// Inline values (YAML), applied after the value files.
    pub values: Option<String>,
    /// `--set key=value` parameters, applied last.
    pub set: Vec<(String, String)>,
    /// Leave the chart's `crds/` out (`--skip-crds`); by default they are included.
    pub skip_crds: bool,
}

/// Everything [`render`] needs besides the path.
#[derive(Clone, Debug, Default)]
pub struct RenderOptions {
    /// The format, or [`Format::Auto`] to detect it.
    pub format: Format,
    /// Options for plain directories.
    pub directory: DirectoryOptions,
    /// Options for Helm charts.
    pub helm: HelmOptions,
    /// The directory the render may read from: the repository checkout the source
    /// lives in. Every path the source refers to (kustomization resources, bases,
    /// components, patches, generator files; Helm value files; symlinks) must resolve
    /// under it, or the render is refused before any tool runs. `None` confines the
    /// render to the source itself (the directory, or a single file's directory), so
    /// an overlay reaching `../base` needs the repository root set here.
    pub confine_to: Option<PathBuf>,
}

/// The result of rendering a source.
#[derive(Clone, Debug)]
pub struct Rendered {
    /// The format actually used (never [`Format::Auto`]).
    pub format: Format,
    /// The objects, in a deterministic order: file order then document order for
    /// plain sources, the tool's output order otherwise.
    pub objects: Vec<Object>,
    /// Things the user should know that did not stop the render: options that do
    /// not apply, skipped files, the tool's own warnings on stderr.
    pub warnings: Vec<String>,
}

/// Detects a directory's format as Argo CD does: `kustomization.yaml`,
/// `kustomization.yml` or `Kustomization` → Kustomize; `Chart.yaml` → Helm; else plain.
pub fn detect(dir: &Path) -> Format {
    if !dir.is_dir() {
        return Format::Plain;
    }
    if kustomize::KUSTOMIZATION_FILES
        .iter()
        .any(|f| dir.join(f).is_file())
    {
        Format::Kustomize
    } else if dir.join("Chart.yaml").is_file() {
        Format::Helm
    } else {
        Format::Plain
    }
}

/// Renders the source at `path` (a directory, or a single manifest file) into
/// objects, finding external tools through [`Toolchain::from_env`].
pub fn render(path: &Path, opts: &RenderOptions) -> Result<Rendered> {
    render_with(path, opts, &Toolchain::from_env())
}

/// Renders like [`render`], with the external tools given explicitly.
pub fn render_with(path: &Path, opts: &RenderOptions, tools: &Toolchain) -> Result<Rendered> {
    let meta = std::fs::metadata(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let is_dir = meta.is_dir();
    let format = match opts.format {
        Format::Auto => detect(path),
        f => f,
    };
    if !is_dir && matches!(format, Format::Kustomize | Format::Helm) {
        return Err(Error::NotADirectory {
            path: path.to_path_buf(),
            format,
        });
    }
    let root = match (&opts.confine_to, is_dir) {
        (Some(root), _) => confine::Root::new(root)?,
        (None, true) => confine::Root::new(path)?,
        (None, false) => {
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            confine::Root::new(parent.unwrap_or(Path::new(".")))?
        }
    };
    root.check_source(path)?;
    let mut warnings = unused_option_warnings(path, format, opts);
    let objects = match format {
        Format::Auto | Format::Plain => {
            let out = plain::render(path, &opts.directory, &root)?;
            warnings.extend(out.warnings);
            out.objects
        }
        Format::Kustomize => {
            let out = kustomize::render(path, tools, &root)?;
            warnings.extend(out.warnings);
            out.objects
        }
        Format::Helm => {
            let out = helm::render(path, &opts.helm, tools, &root)?;
            warnings.extend(out.warnings);
            out.objects
        }
    };
    check_duplicates(&objects)?;
    let format = if format == Format::Auto {
        Format::Plain
    } else {
        format
    };
    Ok(Rendered {
        format,
        objects,
        warnings,
    })
}

/// Objects and warnings from one renderer.
pub(crate) struct Output {
    pub(crate) objects: Vec<Object>,
    pub(crate) warnings: Vec<String>,
}

/// Options the user set that the chosen format ignores: worth saying, never fatal.
fn unused_option_warnings(path: &Path, format: Format, opts: &RenderOptions) -> Vec<String> {
    let mut warnings = Vec::new();
    let dir = &opts.directory;
    if format != Format::Plain && format != Format::Auto {
        for (name, value) in [("include", &dir.include), ("exclude", &dir.exclude)] {
            if value.is_some() {
                warnings.push(format!(
                    "{}: directory.{name} is ignored because the source is rendered with {format}",
                    path.display()
                ));
            }
        }
    }
    let h = &opts.helm;
    let helm_set = h.release_name.is_some()
        || h.namespace.is_some()
        || !h.value_files.is_empty()
        || h.values.is_some()
        || !h.set.is_empty()
        || h.skip_crds;
    if format != Format::Helm && helm_set {
        warnings.push(format!(
            "{}: helm options are ignored because the source is rendered with {}",
            path.display(),
            if format == Format::Auto {
                Format::Plain
            } else {
                format
            }
        ));
    }
    warnings
}

/// Refuses two objects with the same key, naming where each was defined. Objects
/// with only `generateName` get a fresh name when created, so they never clash.
fn check_duplicates(objects: &[Object]) -> Result<()> {
    let mut seen: std::collections::HashMap<ObjectKey, &Object> =
        std::collections::HashMap::with_capacity(objects.len());
    for obj in objects {
        let named = obj
            .value()
            .pointer("/metadata/name")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|n| !n.is_empty());
        if !named {
            continue;
        }
        let key = obj.key();
        if let Some(first) = seen.get(&key) {
            return Err(Error::from(ferry_core::Error::Duplicate {
                key: Box::new(key),
                first: first.origin(),
                second: obj.origin(),
            }));
        }
        seen.insert(key, obj);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_parses_and_prints() {
        for f in [Format::Auto, Format::Plain, Format::Kustomize, Format::Helm] {
            assert_eq!(f.to_string().parse::<Format>(), Ok(f));
        }
        assert_eq!("Directory".parse::<Format>(), Ok(Format::Plain));
        assert!("jsonnet".parse::<Format>().is_err());
    }
}
