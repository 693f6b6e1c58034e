//! `ferry down`: stop every workload, then the daemon.

use std::time::{Duration, Instant};

use clap::Args;
use serde_json::Value;

use crate::client::{ApiFailure, Client, ServerArgs};
use crate::output::{self, EXIT_OK};

/// Stop every workload cleanly (SIGTERM, then SIGKILL after the grace period), then
/// the daemon. Objects stay stored: the next `ferry serve` starts them again.
///
/// Without --server it stops only the daemon FERRY_HOME/daemon.json records, and only
/// after that daemon has said it is that one (its instance id).
#[derive(Args, Debug)]
pub struct DownArgs {
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Runs `ferry down`; returns once the daemon has stopped answering.
pub fn run(args: DownArgs) -> anyhow::Result<u8> {
    let client = Client::new(&args.server)?;
    confirm_identity(&client)?;
    let answer = client.post("/api/v1/down", &serde_json::json!({}))?;
    let pods = answer.get("pods").and_then(Value::as_u64).unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    output::emit(&format!(
        "stopped {pods} pod(s); the ferry daemon at {} has exited\n",
        client.base()
    ))?;
    Ok(EXIT_OK)
}

/// Before stopping anything: the daemon answering at the address `daemon.json`
/// records must be the one it records (same instance id). Another daemon may have
/// taken the address after this home's died; that one is left alone (exit 2). A
/// daemon named by --server is taken as named.
fn confirm_identity(client: &Client) -> anyhow::Result<()> {
    let Some(recorded) = client.recorded() else {
        return Ok(());
    };
    let not_ours = |why: String| {
        anyhow::anyhow!(
            "the daemon at {} is not the one {} records ({why}); not stopping it. \
             Stop it with 'ferry down --server {}' if you mean to.",
            client.base(),
            ferry_server::daemon::info_path(client.home()).display(),
            client.base()
        )
    };
    let info = match client.get("/api/v1/info") {
        Ok(info) => info,
        Err(e) => {
            return Err(match e.downcast::<ApiFailure>() {
                Ok(f) if f.code == 401 => not_ours("it refuses this FERRY_HOME's token".into()),
                Ok(f) if f.code == 404 => not_ours("it does not say which daemon it is".into()),
                Ok(f) => f.into(),
                Err(e) => e,
            });
        }
    };
    let id = info.get("id").and_then(Value::as_str).unwrap_or_default();
    if recorded.id.is_empty() || id != recorded.id {
        let home = info.get("home").and_then(Value::as_str).unwrap_or("?");
        return Err(not_ours(format!(
            "it is instance {id:?} of FERRY_HOME {home}, daemon.json names instance {:?}",
            recorded.id
        )));
    }
    Ok(())
}
