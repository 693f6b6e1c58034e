//! `ferry traffic set|get|clear svc/NAME`: traffic weights by version.

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::client::{self, Client, ServerArgs, object_path, s};
use crate::output::{self, EXIT_OK, Format};

/// Traffic weights of a Service between versions (pod-template hashes).
#[derive(Subcommand, Debug)]
pub enum TrafficCmd {
    /// Split traffic: `ferry traffic set svc/web 5d9c7f=90,7b8d9e=10`.
    Set(SetArgs),
    /// Show the weights and the endpoints of each version.
    Get(TargetArgs),
    /// Back to balancing over every ready endpoint.
    Clear(TargetArgs),
}

/// The Service, shared by the traffic commands.
#[derive(Args, Debug)]
pub struct TargetArgs {
    /// svc/NAME (or NAME).
    pub service: String,
    /// Namespace (default: `default`).
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    pub namespace: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `ferry traffic set`.
#[derive(Args, Debug)]
pub struct SetArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// HASH=WEIGHT,… (also as separate arguments).
    #[arg(required = true, value_name = "HASH=WEIGHT")]
    pub weights: Vec<String>,
}

fn parse_weights(args: &[String]) -> anyhow::Result<BTreeMap<String, u32>> {
    let mut out = BTreeMap::new();
    for part in args
        .iter()
        .flat_map(|a| a.split(','))
        .filter(|p| !p.trim().is_empty())
    {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("{part:?}: give HASH=WEIGHT, e.g. 5d9c7f=90"))?;
        let w: u32 = v
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{part:?}: the weight must be a whole number"))?;
        out.insert(k.trim().to_string(), w);
    }
    Ok(out)
}

/// Runs a traffic command.
pub fn run(cmd: TrafficCmd) -> anyhow::Result<u8> {
    let (t, answer) = match cmd {
        TrafficCmd::Set(a) => {
            let weights = parse_weights(&a.weights)?;
            let (client, path) = connect(&a.target)?;
            let v = client.put(&path, &json!({"weights": weights}))?;
            (a.target, v)
        }
        TrafficCmd::Get(t) => {
            let (client, path) = connect(&t)?;
            let v = client.get(&path)?;
            (t, v)
        }
        TrafficCmd::Clear(t) => {
            let (client, path) = connect(&t)?;
            let v = client.delete(&path)?;
            (t, v)
        }
    };
    if t.output != Format::Table {
        output::print_data(&answer, t.output)?;
        return Ok(EXIT_OK);
    }
    let weights = answer.get("weights").and_then(Value::as_object).cloned();
    let mut versions: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut ports = Vec::new();
    for p in answer
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let host = p
            .get("hostPort")
            .and_then(Value::as_u64)
            .map_or("-".to_string(), |h| h.to_string());
        ports.push(format!(
            "{}→127.0.0.1:{host}",
            p.get("port").and_then(Value::as_u64).unwrap_or(0)
        ));
        for e in p
            .get("endpoints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let entry = versions.entry(s(e, "/version").to_string()).or_default();
            entry.1 += 1;
            if e.get("ready").and_then(Value::as_bool) == Some(true) {
                entry.0 += 1;
            }
        }
    }
    if let Some(w) = &weights {
        for k in w.keys() {
            versions.entry(k.clone()).or_default();
        }
    }
    let rows: Vec<Vec<String>> = versions
        .iter()
        .map(|(v, (ready, total))| {
            let weight = match &weights {
                Some(w) => w.get(v).and_then(Value::as_u64).unwrap_or(0).to_string(),
                None => "-".into(),
            };
            vec![
                if v.is_empty() {
                    "<none>".into()
                } else {
                    v.clone()
                },
                weight,
                format!("{ready}/{total}"),
            ]
        })
        .collect();
    let mut text = format!(
        "service/{} ({}) weights: {}\n",
        s(&answer, "/name"),
        ports.join(", "),
        if weights.is_some() {
            "set"
        } else {
            "none (every ready endpoint)"
        }
    );
    text.push_str(&output::table(&["VERSION", "WEIGHT", "READY"], &rows));
    output::emit(&text)?;
    Ok(EXIT_OK)
}

fn connect(t: &TargetArgs) -> anyhow::Result<(Client, String)> {
    let (kind, name) = client::target(&t.service, Some("svc"))?;
    let ns = t.namespace.as_deref().unwrap_or("default");
    Ok((
        Client::new(&t.server)?,
        format!("{}/traffic", object_path(ns, &kind, &name)),
    ))
}
