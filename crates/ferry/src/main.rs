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
    /// Build, push, pull and list OCI images without a container daemon.
    #[command(subcommand)]
    Image(cmd::image::ImageCmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Image(c) => cmd::image::run(c),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {}", output::error_chain(&err));
            ExitCode::from(output::EXIT_ERROR)
        }
    }
}
