//! `ferry validate FILE…`: read Argo CD and Argo Rollouts specs and report what ferry
//! does not support and what is invalid.

use std::path::PathBuf;

use clap::Args;
use ferry_core::argo::{self, Severity};

use crate::output::{self, EXIT_FINDING, EXIT_OK, Format};

/// Check Argo CD `Application`, `AppProject`, `ApplicationSet` and Argo Rollouts `Rollout`,
/// `AnalysisTemplate`, `ClusterAnalysisTemplate` files.
///
/// Prints one warning per field ferry does not support and one error per invalid value.
/// Exit code: 0 when every document is valid (warnings allowed), 1 when any is invalid, 2 on error.
#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// Files or directories to check; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// Runs `ferry validate`.
pub fn run(args: ValidateArgs) -> anyhow::Result<u8> {
    let mut all = Vec::new();
    let mut syntax_errors = Vec::new();
    for path in output::expand_paths(&args.files)? {
        let text = output::read_input(&path)?;
        let name = if path.as_os_str() == "-" {
            "<stdin>".to_string()
        } else {
            path.display().to_string()
        };
        match argo::validate_str(&text, &name) {
            Ok(v) => all.extend(v),
            Err(e) => syntax_errors.push(e.to_string()),
        }
    }
    let invalid = !syntax_errors.is_empty() || all.iter().any(|v| !v.is_valid());
    match args.output {
        Format::Table => {
            for e in &syntax_errors {
                output::emit(&format!("{e}: error: not valid YAML\n"))?;
            }
            let (mut warnings, mut errors) = (0, 0);
            for v in &all {
                for f in &v.findings {
                    let sev = match f.severity {
                        Severity::Warning => {
                            warnings += 1;
                            "warning"
                        }
                        Severity::Error => {
                            errors += 1;
                            "error"
                        }
                    };
                    output::emit(&format!(
                        "{}:{}: {}/{}: {sev}: {}: {}\n",
                        v.file, v.line, v.kind, v.name, f.path, f.message
                    ))?;
                }
            }
            errors += syntax_errors.len();
            output::emit(&format!(
                "{} document{} checked: {errors} error{}, {warnings} warning{}\n",
                all.len(),
                if all.len() == 1 { "" } else { "s" },
                if errors == 1 { "" } else { "s" },
                if warnings == 1 { "" } else { "s" },
            ))?;
        }
        f => {
            let report = serde_json::json!({
                "valid": !invalid,
                "syntaxErrors": syntax_errors,
                "documents": all,
            });
            output::print_data(&report, f)?;
        }
    }
    Ok(if invalid { EXIT_FINDING } else { EXIT_OK })
}
