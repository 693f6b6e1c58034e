//! `ferry health -f FILE…`: judge the health of live objects read from files.

use std::path::PathBuf;

use clap::Args;
use ferry_core::health::{self, HealthStatus};
use serde::Serialize;

use crate::output::{self, EXIT_FINDING, EXIT_OK, Format};

/// Judge the health of live objects (as `kubectl get -o yaml` prints them) the way Argo CD does.
///
/// Exit code: 0 when the aggregate is Healthy, Progressing or Suspended; 1 when it is
/// Degraded, Missing or Unknown; 2 on error.
#[derive(Args, Debug)]
pub struct HealthArgs {
    /// Files or directories of live objects (YAML or JSON, multi-document or `kind: List`); `-` reads standard input.
    #[arg(short = 'f', long = "filename", required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

#[derive(Serialize)]
struct Resource<'a> {
    group: &'a str,
    kind: &'a str,
    namespace: &'a str,
    name: &'a str,
    status: Option<HealthStatus>,
    message: Option<&'a str>,
}

#[derive(Serialize)]
struct Report<'a> {
    status: HealthStatus,
    resources: Vec<Resource<'a>>,
}

/// Runs `ferry health`.
pub fn run(args: HealthArgs) -> anyhow::Result<u8> {
    let objects = output::load_objects(&args.files)?;
    let healths = health::assess_all(&objects);
    let aggregate = health::aggregate(healths.iter().map(Option::as_ref));
    let report = Report {
        status: aggregate,
        resources: objects
            .iter()
            .zip(&healths)
            .map(|(o, h)| Resource {
                group: o.group(),
                kind: o.kind(),
                namespace: o.namespace(),
                name: o.name(),
                status: h.as_ref().map(|h| h.status),
                message: h.as_ref().map(|h| h.message.as_str()),
            })
            .collect(),
    };
    match args.output {
        Format::Table => {
            let rows: Vec<Vec<String>> = report
                .resources
                .iter()
                .map(|r| {
                    vec![
                        r.kind.to_string(),
                        r.namespace.to_string(),
                        r.name.to_string(),
                        r.status.map_or("-".to_string(), |s| s.to_string()),
                        r.message.unwrap_or_default().to_string(),
                    ]
                })
                .collect();
            output::emit(&output::table(
                &["KIND", "NAMESPACE", "NAME", "STATUS", "MESSAGE"],
                &rows,
            ))?;
            output::emit(&format!("\nAggregate: {aggregate}\n"))?;
        }
        f => output::print_data(&report, f)?,
    }
    Ok(match aggregate {
        HealthStatus::Degraded | HealthStatus::Missing | HealthStatus::Unknown => EXIT_FINDING,
        _ => EXIT_OK,
    })
}
