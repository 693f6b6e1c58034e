//! `ferry logs POD|KIND/NAME`: a container's output, whole, tailed, previous or followed.

use clap::Args;

use crate::client::{self, Client, ServerArgs, enc, object_path};
use crate::output::{self, EXIT_OK};

/// Print a container's logs. `deploy/NAME` (or rs/, job/, svc/) picks one of its pods.
#[derive(Args, Debug)]
pub struct LogsArgs {
    /// The pod, or KIND/NAME of a workload.
    pub target: String,
    /// Container (default: the pod's first).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Keep printing new output until interrupted or the pod is deleted.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// The output of the container's previous instance (before its last restart).
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Only the last N lines.
    #[arg(long, value_name = "N")]
    pub tail: Option<i64>,
    /// Namespace (default: `default`).
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Runs `ferry logs`.
pub fn run(args: LogsArgs) -> anyhow::Result<u8> {
    let (kind, name) = client::target(&args.target, Some("pod"))?;
    let ns = args.namespace.as_deref().unwrap_or("default");
    let mut q = Vec::new();
    if let Some(c) = &args.container {
        q.push(format!("container={}", enc(c)));
    }
    if args.previous {
        q.push("previous=true".into());
    }
    if args.follow {
        q.push("follow=true".into());
    }
    if let Some(n) = args.tail.filter(|n| *n >= 0) {
        q.push(format!("tail={n}"));
    }
    let path = format!("{}/log?{}", object_path(ns, &kind, &name), q.join("&"));
    let client = Client::new(&args.server)?;
    client.stream(&path, |chunk| {
        output::emit(&String::from_utf8_lossy(chunk))?;
        Ok(true)
    })?;
    Ok(EXIT_OK)
}
