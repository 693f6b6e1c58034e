//! `ferry render PATH`: the objects a source directory produces, in sync order.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use ferry_core::{Object, plan};
use ferry_render::{DirectoryOptions, Format, HelmOptions, RenderOptions};

use crate::output::{self, EXIT_OK};

/// How to read the source directory.
#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum SourceFormat {
    /// Kustomize if a kustomization file is present, Helm if `Chart.yaml` is, else plain.
    #[default]
    Auto,
    /// A directory of YAML/JSON manifests.
    Plain,
    /// `kustomize build` (or `kubectl kustomize`).
    Kustomize,
    /// `helm template` (needs `helm` on PATH).
    Helm,
}

/// Output of `render`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum RenderOutput {
    /// Multi-document YAML.
    #[default]
    Yaml,
    /// A Kubernetes `List` as JSON.
    Json,
}

/// Source options shared by `render` and `diff`.
#[derive(Args, Clone, Debug)]
pub struct SourceArgs {
    /// How to read PATH.
    #[arg(long, value_enum, default_value_t = SourceFormat::Auto)]
    pub format: SourceFormat,
    /// Plain directories: do not descend into subdirectories (Argo's `directory.recurse: false`).
    #[arg(long)]
    pub no_recurse: bool,
    /// Plain directories: only files matching this glob (Argo's `directory.include`, e.g. `{web.yaml,db/*.yaml}`).
    #[arg(long, value_name = "GLOB")]
    pub include: Option<String>,
    /// Plain directories: leave out files matching this glob (Argo's `directory.exclude`).
    #[arg(long, value_name = "GLOB")]
    pub exclude: Option<String>,
    /// Helm: release name (default: the directory's name).
    #[arg(long, value_name = "NAME")]
    pub release_name: Option<String>,
    /// Helm: namespace passed to `helm template`.
    #[arg(long = "helm-namespace", value_name = "NS")]
    pub helm_namespace: Option<String>,
    /// Helm: a values file (repeatable).
    #[arg(long = "values", value_name = "FILE")]
    pub value_files: Vec<String>,
    /// Helm: `--set KEY=VALUE` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

impl SourceArgs {
    /// The render options these flags describe.
    pub fn options(&self) -> anyhow::Result<RenderOptions> {
        let set = self
            .set
            .iter()
            .map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .with_context(|| format!("--set {kv:?}: expected KEY=VALUE"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(RenderOptions {
            format: match self.format {
                SourceFormat::Auto => Format::Auto,
                SourceFormat::Plain => Format::Plain,
                SourceFormat::Kustomize => Format::Kustomize,
                SourceFormat::Helm => Format::Helm,
            },
            directory: DirectoryOptions {
                recurse: !self.no_recurse,
                include: self.include.clone(),
                exclude: self.exclude.clone(),
            },
            helm: HelmOptions {
                release_name: self.release_name.clone(),
                namespace: self.helm_namespace.clone(),
                value_files: self.value_files.clone(),
                set,
                ..HelmOptions::default()
            },
            confine_to: None,
        })
    }
}

/// The directory `ferry render PATH` may read from: the Git work tree PATH is in
/// (the nearest ancestor with a `.git`), as the engine confines an app to its
/// repository; else PATH itself (a file's directory). So an overlay may reach
/// `../../base` inside its repository, and nothing outside it.
pub fn confine_root(path: &Path) -> PathBuf {
    let abs = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let start = if abs.is_dir() {
        abs.clone()
    } else {
        abs.parent().map_or_else(|| abs.clone(), Path::to_path_buf)
    };
    start
        .ancestors()
        .find(|d| d.join(".git").exists())
        .map_or(start.clone(), Path::to_path_buf)
}

/// Print the objects a source directory produces, as multi-document YAML in the order a sync applies them.
#[derive(Args, Debug)]
pub struct RenderArgs {
    /// A directory (plain, Kustomize or Helm chart) or a manifest file.
    pub path: PathBuf,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = RenderOutput::Yaml)]
    pub output: RenderOutput,
    /// Print the sync plan (phase, wave, kind, name) instead of the objects.
    #[arg(long)]
    pub plan: bool,
}

/// Renders `path` and returns its objects in sync order (hooks by phase), warning on stderr.
pub fn render_ordered(
    path: &std::path::Path,
    source: &SourceArgs,
) -> anyhow::Result<(Vec<Object>, plan::Plan)> {
    let mut opts = source.options()?;
    opts.confine_to = Some(confine_root(path));
    let rendered = ferry_render::render(path, &opts)
        .with_context(|| format!("rendering {}", path.display()))?;
    for w in &rendered.warnings {
        eprintln!("warning: {w}");
    }
    let objects = rendered.objects;
    let plan = plan::plan(&objects)?;
    for w in &plan.warnings {
        eprintln!("warning: {w}");
    }
    Ok((objects, plan))
}

/// Runs `ferry render`.
pub fn run(args: RenderArgs) -> anyhow::Result<u8> {
    let (objects, plan) = render_ordered(&args.path, &args.source)?;
    if args.plan {
        let rows: Vec<Vec<String>> = plan
            .tasks
            .iter()
            .map(|t| {
                let o = &objects[t.index];
                vec![
                    t.phase.to_string(),
                    t.wave.to_string(),
                    o.kind().to_string(),
                    o.namespace().to_string(),
                    o.name().to_string(),
                    if t.hook { "hook".into() } else { String::new() },
                ]
            })
            .collect();
        output::emit(&output::table(
            &["PHASE", "WAVE", "KIND", "NAMESPACE", "NAME", "HOOK"],
            &rows,
        ))?;
        return Ok(EXIT_OK);
    }
    // A hook in several phases is printed once, at its first phase.
    let mut seen = vec![false; objects.len()];
    let mut ordered = Vec::with_capacity(objects.len());
    for t in &plan.tasks {
        if !std::mem::replace(&mut seen[t.index], true) {
            ordered.push(objects[t.index].value());
        }
    }
    match args.output {
        RenderOutput::Yaml => output::emit(&ferry_core::parse::to_yaml_stream(ordered))?,
        RenderOutput::Json => {
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": ordered});
            output::emit(&format!("{}\n", serde_json::to_string_pretty(&list)?))?;
        }
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confined_to_the_enclosing_work_tree_else_to_the_path() {
        let t = tempfile::tempdir().unwrap();
        let repo = t.path().join("repo");
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        std::fs::create_dir_all(repo.join("apps/web")).unwrap();
        std::fs::write(repo.join("apps/web/a.yaml"), "").unwrap();
        let repo = repo.canonicalize().unwrap();
        assert_eq!(confine_root(&repo.join("apps/web")), repo);
        assert_eq!(confine_root(&repo.join("apps/web/a.yaml")), repo);
        let loose = t.path().join("loose/app");
        std::fs::create_dir_all(&loose).unwrap();
        std::fs::write(loose.join("a.yaml"), "").unwrap();
        let loose = loose.canonicalize().unwrap();
        assert_eq!(confine_root(&loose), loose);
        assert_eq!(confine_root(&loose.join("a.yaml")), loose);
    }
}
