//! `ferry exec POD [-c C] [-i] -- CMD ARGS…`: a command in a running pod's container,
//! as `kubectl exec` without a TTY.

use std::io::{Read as _, Write as _};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::{Value, json};

use crate::client::{Client, ServerArgs, object_path};
use crate::output::{EXIT_ERROR, EXIT_OK};

/// What `ferry exec --help` says after the options.
const AFTER_HELP: &str = "\
Non-interactive: with -i, standard input is read to its end and sent before the command
starts; stdout and stderr are printed once it has finished (stdout first). There is no
TTY (-t) and no streaming yet, so interactive shells do not work.

In container isolation the command runs inside the container: its namespaces, files,
environment and user. In process isolation there is no container to enter: it runs on
the host with the same view the container's process has (its environment, working
directory and user).

Exits with the command's exit code (saying 'command terminated with exit code N'),
or 2 when it could not be run (no such pod or container, not running, timed out).

Example: ferry exec web-7d4b9c-x2x9k -c app -- sh -c 'echo $HOSTNAME'";

/// The command line of `ferry exec`.
#[derive(Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct ExecArgs {
    /// The pod.
    pub pod: String,
    /// Container (default: the pod's default-container annotation, else its first).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Pass standard input to the command (read to its end first).
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Kill the command if it runs longer than this.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// Namespace (default: `default`).
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Runs `ferry exec`: the command's exit code, or an error (exit 2) when it could not
/// be run.
pub fn run(args: ExecArgs) -> anyhow::Result<u8> {
    let ns = args
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or("default");
    let secs = args.timeout.as_secs().max(1);
    let mut body = json!({
        "command": args.command,
        "timeoutSeconds": secs,
    });
    if let Some(c) = args.container.as_deref().filter(|c| !c.is_empty()) {
        body["container"] = json!(c);
    }
    if args.stdin {
        let mut input = Vec::new();
        std::io::stdin()
            .read_to_end(&mut input)
            .context("reading standard input for -i")?;
        let text = String::from_utf8(input).map_err(|_| {
            anyhow::anyhow!(
                "standard input is not UTF-8 text; ferry exec -i passes text only (pipe binary data through base64)"
            )
        })?;
        body["stdin"] = json!(text);
    }
    let client = Client::new(&args.server)?;
    let path = format!("{}/exec", object_path(ns, "pods", &args.pod));
    let out = client.post(&path, &body)?;
    let container = out.get("container").and_then(Value::as_str).unwrap_or("");
    if let Some(all) = out.get("defaultedFrom").and_then(Value::as_str) {
        eprintln!("Defaulted container {container:?} out of: {all}");
    }
    let text = |k: &str| out.get(k).and_then(Value::as_str).unwrap_or("");
    {
        let mut stdout = std::io::stdout().lock();
        match stdout
            .write_all(text("stdout").as_bytes())
            .and_then(|()| stdout.flush())
        {
            // `ferry exec … | head`: the reader went away, as for any Unix tool.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other.context("writing the command's output")?,
        }
    }
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text("stderr").as_bytes());
    if out.get("truncated").and_then(Value::as_bool) == Some(true) {
        let _ = writeln!(
            stderr,
            "warning: the command's output was cut: ferry exec keeps at most 8 MiB of each of stdout and stderr"
        );
    }
    if out.get("timedOut").and_then(Value::as_bool) == Some(true) {
        let _ = writeln!(
            stderr,
            "error: the command in container {container:?} of pod {:?} ran longer than {secs}s and was killed; give it longer with --timeout",
            args.pod
        );
        return Ok(EXIT_ERROR);
    }
    let Some(code) = out.get("exitCode").and_then(Value::as_i64) else {
        bail!("the daemon's answer to {path} has no exitCode; is it an older ferry?");
    };
    if code == 0 {
        return Ok(EXIT_OK);
    }
    // kubectl's words, and its exit code: the command's.
    let _ = writeln!(stderr, "command terminated with exit code {code}");
    Ok(u8::try_from(code).unwrap_or(u8::MAX))
}
