//! `ferry rollout status|restart|undo|history deploy/NAME`.

use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::client::{self, Client, ServerArgs, object_path, s};
use crate::output::{self, EXIT_FINDING, EXIT_OK};

/// Manage the rollout of a Deployment.
#[derive(Subcommand, Debug)]
pub enum RolloutCmd {
    /// Wait for the rollout to finish, printing progress (exit 1 if it fails or times out).
    Status(StatusArgs),
    /// Replace every pod with a new one from the same template.
    Restart(TargetArgs),
    /// Go back to the previous revision (or --to-revision N).
    Undo(UndoArgs),
    /// List the revisions.
    History(TargetArgs),
}

/// The Deployment, shared by the rollout commands.
#[derive(Args, Debug)]
pub struct TargetArgs {
    /// deploy/NAME (or NAME).
    pub target: String,
    /// Namespace (default: `default`).
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `ferry rollout status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Give up after this long (`0s`: wait as long as it takes).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Wait for the rollout to finish (`--watch=false` prints the status once).
    #[arg(short = 'w', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub watch: bool,
}

/// `ferry rollout undo`.
#[derive(Args, Debug)]
pub struct UndoArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// The revision to go back to (0: the previous one).
    #[arg(long, default_value_t = 0)]
    pub to_revision: i64,
}

fn connect(t: &TargetArgs) -> anyhow::Result<(Client, String)> {
    let (kind, name) = client::target(&t.target, Some("deploy"))?;
    let ns = t.namespace.as_deref().unwrap_or("default");
    Ok((Client::new(&t.server)?, object_path(ns, &kind, &name)))
}

/// Runs a rollout command.
pub fn run(cmd: RolloutCmd) -> anyhow::Result<u8> {
    match cmd {
        RolloutCmd::Status(a) => status(a),
        RolloutCmd::Restart(t) => {
            let (client, path) = connect(&t)?;
            let obj = client.post(&format!("{path}/rollout/restart"), &json!({}))?;
            output::emit(&format!("{} restarted\n", client::resource_name(&obj)))?;
            Ok(EXIT_OK)
        }
        RolloutCmd::Undo(a) => {
            let (client, path) = connect(&a.target)?;
            let v = client.post(
                &format!("{path}/rollout/undo?toRevision={}", a.to_revision),
                &json!({}),
            )?;
            let name = client::target(&a.target.target, Some("deploy"))?.1;
            if v.get("skipped").and_then(Value::as_bool) == Some(true) {
                output::emit(&format!("deployment.apps/{name} {}\n", s(&v, "/message")))?;
            } else {
                output::emit(&format!("deployment.apps/{name} rolled back\n"))?;
            }
            Ok(EXIT_OK)
        }
        RolloutCmd::History(t) => {
            let (client, path) = connect(&t)?;
            let v = client.get(&format!("{path}/rollout/history"))?;
            let rows: Vec<Vec<String>> = v
                .get("revisions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|r| {
                    let images: Vec<&str> = r
                        .get("images")
                        .and_then(Value::as_array)
                        .map(|i| i.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    vec![
                        r.get("revision")
                            .and_then(Value::as_i64)
                            .unwrap_or(0)
                            .to_string(),
                        match s(r, "/changeCause") {
                            "" => "<none>".to_string(),
                            c => c.to_string(),
                        },
                        images.join(","),
                        s(r, "/replicaSet").to_string(),
                    ]
                })
                .collect();
            let text = format!(
                "deployment.apps/{}\n{}",
                s(&v, "/name"),
                output::table(&["REVISION", "CHANGE-CAUSE", "IMAGES", "REPLICASET"], &rows)
            );
            output::emit(&text)?;
            Ok(EXIT_OK)
        }
    }
}

fn status(a: StatusArgs) -> anyhow::Result<u8> {
    let (client, path) = connect(&a.target)?;
    let started = Instant::now();
    let mut last_message = String::new();
    let mut seen_health: Vec<String> = Vec::new();
    loop {
        let v = client.get(&format!("{path}/rollout"))?;
        let message = s(&v, "/message").to_string();
        if v.get("failed").and_then(Value::as_bool) == Some(true) {
            eprintln!("error: {message}");
            return Ok(EXIT_FINDING);
        }
        if v.get("done").and_then(Value::as_bool) == Some(true) {
            output::emit(&format!("{message}\n"))?;
            return Ok(EXIT_OK);
        }
        if message != last_message {
            output::emit(&format!("{message}\n"))?;
            last_message = message;
        }
        let health = match s(&v, "/health/status") {
            "Degraded" => format!("  Degraded: {}", s(&v, "/health/message")),
            _ => String::new(),
        };
        if !health.is_empty() && !seen_health.contains(&health) {
            output::emit(&format!("{health}\n"))?;
            seen_health.push(health);
        }
        if !a.watch {
            return Ok(EXIT_FINDING);
        }
        if !a.timeout.is_zero() && started.elapsed() >= a.timeout {
            eprintln!("error: timed out waiting for the condition");
            return Ok(EXIT_FINDING);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
