//! `ferry serve`: the daemon — the embedded runtime and its HTTP API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use ferry_runtime::config::ConnectionLimits;

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
    /// How long an API client may take to send a request head (from the connection
    /// for the first request, from its first byte for later ones); slower ones are
    /// closed. Default 10s (or FERRY_API_HEADER_TIMEOUT_MS).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub header_timeout: Option<Duration>,
    /// How long an idle keep-alive API connection waits for its next request; never
    /// cuts a response being sent (watches, followed logs). Default 60s (or
    /// FERRY_API_IDLE_TIMEOUT_MS).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub idle_timeout: Option<Duration>,
    /// API connections held at once; more are closed at once while established ones
    /// keep being served. Default: half of the open-files limit less a reserve of
    /// an eighth of it (at least 1,024), between 64 and 65,536.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub max_connections: Option<u32>,
    /// API connections held at once from one IP address beyond loopback. Default 256.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub max_connections_per_ip: Option<u32>,
    /// How pods' containers run. `container`: real containers through runc (needs
    /// root and Debian's runc; each gets the image's files as its root, its own
    /// pid/mount/uts/ipc namespaces, the host's network, volumes and memory/cpu
    /// limits); the daemon refuses to start if they do not work here. `process`: host
    /// processes that see the host's files (so an image of only app files can use the
    /// host's python3). `auto`: containers if root and runc works, else processes.
    /// The default stays `process` until images are built from Dockerfiles with their
    /// own runtimes; then it becomes `container`.
    #[arg(long, default_value = "process", value_parser = parse_isolation, value_name = "auto|container|process")]
    pub isolation: ferry_runtime::kubelet::Isolation,
}

fn parse_isolation(s: &str) -> Result<ferry_runtime::kubelet::Isolation, String> {
    s.parse()
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
    for (flag, t) in [
        ("--header-timeout", args.header_timeout),
        ("--idle-timeout", args.idle_timeout),
    ] {
        anyhow::ensure!(
            t.is_none_or(|t| !t.is_zero()),
            "{flag} 0s would close every connection; give a duration such as 10s"
        );
    }
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
        isolation: Some(args.isolation),
    };
    let result = rt.block_on(async move {
        let mut daemon = ferry_server::start(opts).await?;
        if secret.is_some() {
            daemon.set_webhook_secret(secret);
        }
        // Flags over FERRY_API_* over the defaults.
        let mut limits = ConnectionLimits::api().with_env("FERRY_API");
        if let Some(t) = args.header_timeout {
            limits.header_timeout = t;
        }
        if let Some(t) = args.idle_timeout {
            limits.idle_timeout = t;
        }
        if let Some(n) = args.max_connections {
            limits.max_connections = n as usize;
        }
        if let Some(n) = args.max_connections_per_ip {
            limits.max_connections_per_ip = n as usize;
        }
        daemon.serve_with(limits).await
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    result?;
    Ok(EXIT_OK)
}
