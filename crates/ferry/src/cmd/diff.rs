//! `ferry diff PATH --live FILE…`: compare what a source renders with live objects.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use ferry_core::diff::{self, DiffOptions, IgnoreDifferences, SyncStatus};
use serde::Serialize;

use crate::cmd::render::{SourceArgs, render_ordered};
use crate::output::{self, EXIT_FINDING, EXIT_OK, Format};

/// Compare the objects PATH renders with live objects read from files (offline).
///
/// Prints each object's status (Synced, OutOfSync, Missing, Extraneous) and a unified
/// YAML diff for each OutOfSync object; Secret values are masked. Exit code: 0 when in
/// sync, 1 when not, 2 on error (as `diff` and `kubectl diff`).
#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The desired state: a directory (plain, Kustomize or Helm chart) or a manifest file.
    pub path: PathBuf,
    /// Live objects (YAML or JSON, as `kubectl get -o yaml` prints them); files or directories, `-` for stdin.
    #[arg(long, required = true, num_args = 1.., value_name = "FILE")]
    pub live: Vec<PathBuf>,
    /// Namespace assumed for desired objects that set none.
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// Argo CD `ignoreDifferences`: an `Application` file, or a YAML list of entries.
    #[arg(long, value_name = "FILE")]
    pub ignore_differences: Option<PathBuf>,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

#[derive(Serialize)]
struct Entry {
    group: String,
    kind: String,
    namespace: String,
    name: String,
    status: SyncStatus,
    #[serde(skip_serializing_if = "String::is_empty")]
    diff: String,
}

fn load_ignore(path: &std::path::Path) -> anyhow::Result<Vec<IgnoreDifferences>> {
    let text = output::read_input(path)?;
    let name = path.display().to_string();
    let value: serde_json::Value = ferry_core::parse::from_yaml(&text, &name)?;
    let list = match value.pointer("/spec/ignoreDifferences") {
        Some(list) => list.clone(),
        None => value,
    };
    serde_json::from_value(list).with_context(|| {
        format!("{name}: expected an Application or a list of ignoreDifferences entries")
    })
}

/// Runs `ferry diff`.
pub fn run(args: DiffArgs) -> anyhow::Result<u8> {
    let (mut desired, plan) = render_ordered(&args.path, &args.source)?;
    // Namespaced objects that name no namespace land in the destination namespace.
    for o in desired.iter_mut() {
        if o.namespace().is_empty() && ferry_core::object::is_namespaced(o.kind()) {
            o.set_namespace(&args.namespace);
        }
    }
    // In sync order; hooks are not compared, they are created anew on each sync.
    let desired: Vec<_> = plan
        .tasks
        .iter()
        .filter(|t| !t.hook)
        .map(|t| desired[t.index].clone())
        .collect();
    let live = output::load_objects(&args.live)?;
    let opts = DiffOptions {
        ignore: match &args.ignore_differences {
            Some(p) => load_ignore(p)?,
            None => Vec::new(),
        },
    };
    let results = diff::compare(&desired, &live, &args.namespace, &opts)?;
    let in_sync = results.iter().all(|r| r.status == SyncStatus::Synced);
    let entries: Vec<Entry> = results
        .iter()
        .map(|r| Entry {
            group: r.key.group.clone(),
            kind: r.key.kind.clone(),
            namespace: r.key.namespace.clone(),
            name: r.key.name.clone(),
            status: r.status,
            diff: if r.status == SyncStatus::OutOfSync {
                r.unified()
            } else {
                String::new()
            },
        })
        .collect();
    match args.output {
        Format::Table => {
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|e| {
                    vec![
                        format!("{:?}", e.status),
                        e.kind.clone(),
                        e.namespace.clone(),
                        e.name.clone(),
                    ]
                })
                .collect();
            output::emit(&output::table(
                &["STATUS", "KIND", "NAMESPACE", "NAME"],
                &rows,
            ))?;
            for e in entries.iter().filter(|e| !e.diff.is_empty()) {
                output::emit("\n")?;
                output::emit(&e.diff)?;
            }
        }
        f => output::print_data(
            &serde_json::json!({"synced": in_sync, "resources": entries}),
            f,
        )?,
    }
    Ok(if in_sync { EXIT_OK } else { EXIT_FINDING })
}
