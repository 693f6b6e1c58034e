//! `ferry apply -f FILE|DIR|-`: server-side apply to the daemon's runtime.

use std::path::PathBuf;

use clap::Args;
use serde_json::{Value, json};

use crate::client::{self, ApiFailure, Client, ServerArgs, enc};
use crate::output::{self, EXIT_OK};

/// Apply manifests to the embedded runtime (server-side apply, field manager `ferry`).
///
/// Every object is parsed and checked before the first is applied: a bad file or a
/// conflict changes nothing. A field another manager owns (after `ferry scale`, say)
/// is a conflict naming the field and its manager (exit 1) unless --force-conflicts.
#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// Files or directories of manifests (YAML or JSON, multi-document, `kind: List`); `-` reads standard input.
    #[arg(short = 'f', long = "filename", required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Namespace for objects that name none (objects naming another one are refused).
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    pub namespace: Option<String>,
    /// Take over fields other managers own instead of failing on the conflict.
    #[arg(long)]
    pub force_conflicts: bool,
    /// Only show what would happen (`server`, the default when given without a value).
    #[arg(long, value_name = "MODE", num_args = 0..=1, default_missing_value = "server")]
    pub dry_run: Option<String>,
    /// Field manager owning the applied fields.
    #[arg(long, default_value = "ferry")]
    pub field_manager: String,
    /// Output: `name` prints only kind/name, `json`/`yaml` the applied objects.
    #[arg(short, long, value_name = "FORMAT")]
    pub output: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Runs `ferry apply`.
pub fn run(args: ApplyArgs) -> anyhow::Result<u8> {
    let objects = output::load_objects(&args.files)?;
    if objects.is_empty() {
        anyhow::bail!("no objects passed to apply");
    }
    let dry_run = matches!(args.dry_run.as_deref(), Some(m) if m != "none");
    let body = json!({
        "apiVersion": "v1", "kind": "List",
        "items": objects.into_iter().map(|o| o.into_value()).collect::<Vec<Value>>(),
    });
    let mut path = format!(
        "/api/v1/apply?fieldManager={}&force={}&dryRun={dry_run}",
        enc(&args.field_manager),
        args.force_conflicts
    );
    if let Some(ns) = &args.namespace {
        path.push_str(&format!("&namespace={}", enc(ns)));
    }
    let client = Client::new(&args.server)?;
    let answer = client
        .post(&path, &body)
        .map_err(|e| match e.downcast::<ApiFailure>() {
            Ok(f) if f.code == 409 => ApiFailure {
                code: f.code,
                message: format!(
                    "{}\nrerun with --force-conflicts to take over these fields",
                    f.message
                ),
            }
            .into(),
            Ok(f) => f.into(),
            Err(e) => e,
        })?;
    let items = answer
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let suffix = if dry_run { " (server dry run)" } else { "" };
    match args.output.as_deref() {
        Some("json") | Some("yaml") => {
            let objs: Vec<Value> = items
                .iter()
                .filter_map(|i| i.get("object").cloned())
                .collect();
            let v = if objs.len() == 1 {
                objs[0].clone()
            } else {
                json!({"apiVersion": "v1", "kind": "List", "items": objs})
            };
            let format = if args.output.as_deref() == Some("json") {
                output::Format::Json
            } else {
                output::Format::Yaml
            };
            output::print_data(&v, format)?;
        }
        other => {
            let mut out = String::new();
            for i in &items {
                let obj = i.get("object").cloned().unwrap_or(Value::Null);
                let name = client::resource_name(&obj);
                if other == Some("name") {
                    out.push_str(&format!("{name}\n"));
                } else {
                    let action = i
                        .get("action")
                        .and_then(Value::as_str)
                        .unwrap_or("configured");
                    out.push_str(&format!("{name} {action}{suffix}\n"));
                }
            }
            output::emit(&out)?;
        }
    }
    Ok(EXIT_OK)
}
