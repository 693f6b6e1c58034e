//! `ferry serve`: the daemon — the embedded runtime and its HTTP API.

use std::net::SocketAddr;
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
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address for the API; port 0 picks a free one (written to FERRY_HOME/daemon.json).
    #[arg(long, default_value = "127.0.0.1:7171", value_name = "HOST:PORT")]
    pub addr: SocketAddr,
    /// How often each app's repository is fetched (Argo's `timeout.reconciliation`);
    /// a commit is also picked up at once by `ferry app refresh`.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub reconciliation: Duration,
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let opts = ferry_server::DaemonOptions {
        home: home::ferry_home(),
        addr: args.addr,
        reconciliation: Some(args.reconciliation),
    };
    let result = rt.block_on(ferry_server::run(opts));
    rt.shutdown_timeout(Duration::from_secs(5));
    result?;
    Ok(EXIT_OK)
}
