//! `ferry serve`: the daemon — the embedded runtime and its HTTP API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use crate::home;
use crate::output::EXIT_OK;

/// Run the daemon: the embedded runtime for FERRY_HOME and its API.
///
/// Workloads keep running when the daemon stops on SIGTERM/SIGINT (the next
/// `ferry serve` re-adopts them); `ferry down` stops them, then the daemon. Logs go to
/// stderr, filtered by RUST_LOG (default `info`).
///
/// Every API call but `/healthz` and `/api/webhook` needs `Authorization: Bearer
/// <token>`, on loopback too, the token being in FERRY_HOME/token (the CLI sends it).
/// On loopback, requests for another `Host` (DNS rebinding) are refused; so are calls
/// from another site's pages (`Origin`) and bodies that are not JSON or YAML.
/// `POST /api/webhook` takes Git push events.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address for the API; port 0 picks a free one (written to FERRY_HOME/daemon.json).
    #[arg(long, default_value = "127.0.0.1:7171", value_name = "HOST:PORT")]
    pub addr: SocketAddr,
    /// How often each app's repository is fetched (Argo's `timeout.reconciliation`);
    /// a commit is also picked up at once by `ferry app refresh`.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub reconciliation: Duration,
    /// A file holding the secret GitHub (or `ferry repo hook install --secret-file`)
    /// signs webhook bodies with; unsigned or badly signed pushes are refused (401).
    /// Without it, FERRY_WEBHOOK_SECRET is used, and without that pushes are unsigned.
    #[arg(long, value_name = "FILE")]
    pub webhook_secret_file: Option<PathBuf>,
    /// Apps refreshed at once (Argo CD's `--status-processors`); more wait their turn.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..), value_name = "N")]
    pub status_processors: u16,
    /// Automated syncs run at once (Argo CD's `--operation-processors`); a sync waiting
    /// for a hook or a rollout holds its slot.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..), value_name = "N")]
    pub operation_processors: u16,
}

/// Runs `ferry serve` until a signal or `ferry down`.
pub fn run(args: ServeArgs) -> anyhow::Result<u8> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let secret = match &args.webhook_secret_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the webhook secret from {}", path.display()))?;
            let secret = text.trim_end_matches(['\n', '\r']).to_string();
            anyhow::ensure!(
                !secret.is_empty(),
                "the webhook secret file {} is empty; put the secret in it",
                path.display()
            );
            Some(secret.into_bytes())
        }
        None => None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let opts = ferry_server::DaemonOptions {
        home: home::ferry_home(),
        addr: args.addr,
        reconciliation: Some(args.reconciliation),
        status_processors: Some(args.status_processors.into()),
        operation_processors: Some(args.operation_processors.into()),
    };
    let result = rt.block_on(async move {
        let mut daemon = ferry_server::start(opts).await?;
        if secret.is_some() {
            daemon.set_webhook_secret(secret);
        }
        daemon.serve().await
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    result?;
    Ok(EXIT_OK)
}
