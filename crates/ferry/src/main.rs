//! The `ferry` binary: the CLI over ferry's crates. Thin: parse arguments, call the
//! libraries, print, and map errors to exit codes.

mod client;
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
    /// Manage applications (Argo CD Applications): create, list, get, diff, sync, wait, history, rollback.
    #[command(subcommand)]
    App(cmd::app::AppCmd),
    /// Credentials for private Git repositories: add, list, rm.
    #[command(subcommand)]
    Repo(cmd::repo::RepoCmd),
    /// Start ferry and the app a directory declares (e.g. `ferry up examples/quickstart`).
    Up(cmd::up::UpArgs),
    /// Run the daemon: the embedded runtime and its HTTP API.
    Serve(cmd::serve::ServeArgs),
    /// Apply manifests to the runtime (server-side apply).
    Apply(cmd::apply::ApplyArgs),
    /// List runtime objects in kubectl's tables, or as JSON/YAML.
    Get(cmd::get::GetArgs),
    /// Show one object in detail, with its health and events.
    Describe(cmd::describe::DescribeArgs),
    /// Print a container's logs.
    Logs(cmd::logs::LogsArgs),
    /// Run a command in a running pod's container (non-interactive: no TTY yet).
    Exec(cmd::exec::ExecArgs),
    /// List events.
    Events(cmd::events::EventsArgs),
    /// Delete runtime objects (dependents too, unless --cascade=orphan).
    Delete(cmd::delete::DeleteArgs),
    /// Set the replicas of a Deployment.
    Scale(cmd::scale::ScaleArgs),
    /// Rollouts of a Deployment: status, restart, undo, history.
    #[command(subcommand)]
    Rollout(cmd::rollout::RolloutCmd),
    /// Traffic weights of a Service between versions.
    #[command(subcommand)]
    Traffic(cmd::traffic::TrafficCmd),
    /// Stop every workload, then the daemon.
    Down(cmd::down::DownArgs),
    /// Operate FERRY_HOME itself: rotate the encryption key.
    #[command(subcommand)]
    Admin(cmd::admin::AdminCmd),
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
        Command::Serve(a) => cmd::serve::run(a),
        Command::Up(a) => cmd::up::run(a),
        Command::Repo(c) => cmd::repo::run(c),
        Command::Admin(c) => cmd::admin::run(c),
        Command::App(c) => client::exit_code(cmd::app::run(c)),
        Command::Apply(a) => client::exit_code(cmd::apply::run(a)),
        Command::Get(a) => client::exit_code(cmd::get::run(a)),
        Command::Describe(a) => client::exit_code(cmd::describe::run(a)),
        Command::Logs(a) => client::exit_code(cmd::logs::run(a)),
        Command::Exec(a) => cmd::exec::run(a),
        Command::Events(a) => client::exit_code(cmd::events::run(a)),
        Command::Delete(a) => client::exit_code(cmd::delete::run(a)),
        Command::Scale(a) => client::exit_code(cmd::scale::run(a)),
        Command::Rollout(c) => client::exit_code(cmd::rollout::run(c)),
        Command::Traffic(c) => client::exit_code(cmd::traffic::run(c)),
        Command::Down(a) => client::exit_code(cmd::down::run(a)),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {}", output::error_chain(&err));
            ExitCode::from(output::EXIT_ERROR)
        }
    }
}
