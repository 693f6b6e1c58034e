//! Printing for people and scripts, and exit codes.

#![allow(dead_code)]

/// Success.
pub const EXIT_OK: u8 = 0;
/// The command ran and found a problem (out of sync, invalid, unhealthy).
pub const EXIT_FINDING: u8 = 1;
/// The command could not do its job (bad input, I/O, tool missing).
pub const EXIT_ERROR: u8 = 2;

/// The error and its causes, joined by `: `.
pub fn error_chain(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

/// Output format of commands that print objects or reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table for people.
    #[default]
    Table,
    /// JSON for scripts.
    Json,
    /// YAML for scripts.
    Yaml,
}
