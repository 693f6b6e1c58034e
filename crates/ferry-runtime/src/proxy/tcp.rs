//! TCP passthrough: each connection copied both ways to one ready endpoint.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::watch;

use super::Shared;
use super::backends::Target;

/// How long a connect to an endpoint may take before another is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

async fn connect(target: &Target) -> std::io::Result<TcpStream> {
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target.addr)).await {
        Ok(res) => res,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// Copies `client` to and from a chosen ready endpoint until either side closes or
/// the proxy stops. A refused connect is retried once on another endpoint (nothing
/// has been sent yet). With no ready endpoint the connection is closed.
pub(super) async fn passthrough(
    mut client: TcpStream,
    shared: &Shared,
    mut stopped: watch::Receiver<bool>,
) {
    let Some(mut target) = shared.backends.pick() else {
        tracing::debug!(service = %shared.service, "no ready endpoint; closing connection");
        return;
    };
    let mut upstream = match connect(&target).await {
        Ok(s) => s,
        Err(first) => {
            let Some(other) = shared.backends.pick_other(target.addr) else {
                tracing::debug!(service = %shared.service, endpoint = %target.addr, pod = %target.pod, error = %first, "connect failed");
                return;
            };
            target = other;
            match connect(&target).await {
                Ok(s) => s,
                Err(err) => {
                    tracing::debug!(service = %shared.service, endpoint = %target.addr, pod = %target.pod, error = %err, "connect failed");
                    return;
                }
            }
        }
    };
    let _ = upstream.set_nodelay(true);
    shared.metrics.connection(&target.version);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
        _ = super::until_stopped(&mut stopped) => {}
    }
}
