//! The `ferry` binary: the CLI over ferry's crates. Thin: parse arguments, call the
//! libraries, print, and map errors to exit codes.

mod cmd;
mod home;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// ferry carries a change from a Git commit to running services, safely.
#[derive(Parser)]
#[command(name = "ferry", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the objects a source directory produces, in the order a sync applies them.
    Render(cmd::render::RenderArgs),
    /// Compare what a source renders with live objects read from files (offline).
    Diff(cmd::diff::DiffArgs),
    /// Judge the health of live objects read from files, as Argo CD does.
    Health(cmd::health::HealthArgs),
    /// Check Argo CD and Argo Rollouts specs: unsupported fields and invalid values.
    Validate(cmd::validate::ValidateArgs),
    /// Performance benchmarks (figures in docs/benchmarks.md).
    #[command(subcommand)]
    Bench(cmd::bench::BenchCmd),
    /// Build, push, pull and list OCI images without a container daemon.
    #[command(subcommand)]
    Image(cmd::image::ImageCmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Render(a) => cmd::render::run(a),
        Command::Diff(a) => cmd::diff::run(a),
        Command::Health(a) => cmd::health::run(a),
        Command::Validate(a) => cmd::validate::run(a),
        Command::Image(c) => cmd::image::run(c),
        Command::Bench(c) => cmd::bench::run(c),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {}", output::error_chain(&err));
            ExitCode::from(output::EXIT_ERROR)
        }
    }
}
