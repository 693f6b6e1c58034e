//! `ferry down`: stop every workload, then the daemon.

use std::time::{Duration, Instant};

use clap::Args;

use crate::client::{Client, ServerArgs};
use crate::output::{self, EXIT_OK};

/// Stop every workload cleanly (SIGTERM, then SIGKILL after the grace period), then
/// the daemon. Objects stay stored: the next `ferry serve` starts them again.
#[derive(Args, Debug)]
pub struct DownArgs {
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Runs `ferry down`; returns once the daemon has stopped answering.
pub fn run(args: DownArgs) -> anyhow::Result<u8> {
    let client = Client::new(&args.server)?;
    let answer = client.post("/api/v1/down", &serde_json::json!({}))?;
    let pods = answer
        .get("pods")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
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
