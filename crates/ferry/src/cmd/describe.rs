//! `ferry describe KIND NAME`: one object in kubectl's words — metadata, spec
//! summary, containers, conditions, container states, health, and its events.

use clap::Args;
use ferry_core::Object;
use serde_json::Value;

use crate::client::{Client, ServerArgs, enc, i, object_path, s};
use crate::cmd::get::{event_age, host_ports, selector_text, service_ports};
use crate::output::{self, EXIT_OK};

/// Show one object (or every object of a kind) in detail, with its events.
#[derive(Args, Debug)]
pub struct DescribeArgs {
    /// KIND, or KIND/NAME.
    pub kind: String,
    /// Names (every object of the kind when none).
    pub names: Vec<String>,
    /// Namespace (default: `default`).
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Runs `ferry describe`.
pub fn run(args: DescribeArgs) -> anyhow::Result<u8> {
    let ns = args.namespace.clone().unwrap_or_else(|| "default".into());
    let client = Client::new(&args.server)?;
    let (kind, mut names) = match args.kind.split_once('/') {
        Some((k, n)) => (k.to_string(), vec![n.to_string()]),
        None => (args.kind.clone(), Vec::new()),
    };
    names.extend(args.names.iter().cloned());
    let objects: Vec<Value> = if names.is_empty() {
        let list = client.get(&format!("/api/v1/namespaces/{}/{}", enc(&ns), enc(&kind)))?;
        list.get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    } else {
        names
            .iter()
            .map(|n| client.get(&object_path(&ns, &kind, n)))
            .collect::<anyhow::Result<_>>()?
    };
    if objects.is_empty() {
        eprintln!("No resources found in {ns} namespace.");
    }
    let mut text = String::new();
    for o in &objects {
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str(&describe(&client, o)?);
    }
    output::emit(&text)?;
    Ok(EXIT_OK)
}

/// Where values start: column 24 at the top level (as kubectl's Deployment view),
/// column 20 below, later for a longer key.
fn key_width(indent: usize, key: &str) -> usize {
    let base = if indent == 0 {
        24
    } else {
        20usize.saturating_sub(indent)
    };
    base.max(key.len() + 2)
}

/// Lines of `Key:  value`, aligned per block, kubectl-style.
#[derive(Default)]
struct W {
    out: String,
}

impl W {
    fn kv(&mut self, indent: usize, key: &str, value: impl AsRef<str>) {
        let pad = " ".repeat(indent);
        let width = key_width(indent, key);
        let key = format!("{key}:");
        self.out
            .push_str(format!("{pad}{key:<width$}{}", value.as_ref()).trim_end());
        self.out.push('\n');
    }

    fn line(&mut self, indent: usize, text: impl AsRef<str>) {
        self.out.push_str(&" ".repeat(indent));
        self.out.push_str(text.as_ref());
        self.out.push('\n');
    }

    /// A map (labels, annotations) as `k=v` lines, the first beside the key.
    fn map(&mut self, indent: usize, key: &str, v: Option<&Value>, sep: &str) {
        let entries: Vec<String> = v
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        format!(
                            "{k}{sep}{}",
                            v.as_str().map_or_else(|| v.to_string(), str::to_string)
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if entries.is_empty() {
            return self.kv(indent, key, "<none>");
        }
        let width = key_width(indent, key);
        for (n, e) in entries.iter().enumerate() {
            if n == 0 {
                self.kv(indent, key, e);
            } else {
                self.line(indent + width, e);
            }
        }
    }
}

fn describe(client: &Client, o: &Value) -> anyhow::Result<String> {
    let kind = s(o, "/kind");
    let ns = s(o, "/metadata/namespace");
    let name = s(o, "/metadata/name");
    let mut w = W::default();
    w.kv(0, "Name", name);
    if !ns.is_empty() {
        w.kv(0, "Namespace", ns);
    }
    if kind == "Pod" {
        w.kv(0, "Start Time", non_empty(s(o, "/status/startTime")));
        // The daemon's isolation (an older daemon does not say).
        if let Ok(info) = client.get("/api/v1/info")
            && let Some(iso) = info.get("isolation").and_then(Value::as_str)
        {
            w.kv(0, "Isolation", iso);
        }
    } else {
        w.kv(0, "CreationTimestamp", s(o, "/metadata/creationTimestamp"));
    }
    w.map(0, "Labels", o.pointer("/metadata/labels"), "=");
    w.map(0, "Annotations", o.pointer("/metadata/annotations"), ": ");
    if let Some(owner) = o
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .and_then(|r| r.first())
    {
        w.kv(
            0,
            "Controlled By",
            format!("{}/{}", s(owner, "/kind"), s(owner, "/name")),
        );
    }
    // Pods and ReplicaSets of the namespace: health in context, and the workload's pods.
    let related = if ns.is_empty() {
        Vec::new()
    } else {
        related(client, ns)?
    };
    match kind {
        "Pod" => pod(&mut w, o),
        "Deployment" => deployment(&mut w, o, &related),
        "ReplicaSet" => replica_set(&mut w, o, &related),
        "Job" => job(&mut w, o, &related),
        "Service" => service(&mut w, o, client)?,
        "Secret" => {
            w.kv(
                0,
                "Type",
                o.get("type").and_then(Value::as_str).unwrap_or("Opaque"),
            );
            w.line(0, "");
            w.line(0, "Data");
            w.line(0, "====");
            for (k, v) in o
                .get("data")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let len = v
                    .as_str()
                    .map_or(0, |b| b.trim_end_matches('=').len() * 3 / 4);
                w.line(0, format!("{k}:  {len} bytes"));
            }
        }
        "ConfigMap" => {
            w.line(0, "");
            w.line(0, "Data");
            w.line(0, "====");
            for (k, v) in o
                .get("data")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                w.line(0, format!("{k}:"));
                w.line(0, "----");
                w.line(0, v.as_str().unwrap_or_default().trim_end());
                w.line(0, "");
            }
        }
        _ => {
            if let Some(spec) = o.get("spec") {
                w.line(0, "Spec:");
                for l in ferry_core::parse::to_yaml(spec).lines() {
                    w.line(2, l);
                }
            }
        }
    }
    health(&mut w, o, &related);
    events(&mut w, client, o)?;
    Ok(w.out)
}

fn non_empty(v: &str) -> &str {
    if v.is_empty() { "<none>" } else { v }
}

fn related(client: &Client, ns: &str) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    for kind in ["replicasets", "pods"] {
        let list = client.get(&format!("/api/v1/namespaces/{}/{kind}", enc(ns)))?;
        out.extend(
            list.get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        );
    }
    Ok(out)
}

/// `Health: Degraded — ImagePullBackOff: …` (ferry_core's assessment, pods in context).
fn health(w: &mut W, o: &Value, related: &[Value]) {
    let Ok(obj) = Object::from_value(o.clone()) else {
        return;
    };
    let related: Vec<Object> = related
        .iter()
        .filter_map(|r| Object::from_value(r.clone()).ok())
        .collect();
    if let Some(h) = ferry_core::health::assess_in(&obj, &related) {
        let text = if h.message.is_empty() {
            h.status.to_string()
        } else {
            format!("{} — {}", h.status, h.message)
        };
        w.kv(0, "Health", text);
    }
}

fn events(w: &mut W, client: &Client, o: &Value) -> anyhow::Result<()> {
    let ns = s(o, "/metadata/namespace");
    let object = format!("{}/{}", s(o, "/kind"), s(o, "/metadata/name"));
    let list = client.get(&format!(
        "/api/v1/events?namespace={}&object={}",
        enc(ns),
        enc(&object)
    ))?;
    let items = list
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if items.is_empty() {
        w.kv(0, "Events", "<none>");
        return Ok(());
    }
    w.line(0, "Events:");
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|e| {
            vec![
                s(e, "/type").to_string(),
                s(e, "/reason").to_string(),
                event_age(e),
                "ferry".to_string(),
                s(e, "/message").to_string(),
            ]
        })
        .collect();
    let mut all = vec![
        ["----", "------", "----", "----", "-------"]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
    ];
    all.extend(rows);
    for l in output::table(&["Type", "Reason", "Age", "From", "Message"], &all).lines() {
        w.line(2, l);
    }
    Ok(())
}

fn conditions(w: &mut W, o: &Value, with_reason: bool) {
    let cs = o
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if cs.is_empty() {
        return;
    }
    w.line(0, "Conditions:");
    let mut rows = vec![if with_reason {
        vec!["----".to_string(), "------".into(), "------".into()]
    } else {
        vec!["----".to_string(), "------".into()]
    }];
    for c in &cs {
        let mut r = vec![s(c, "/type").to_string(), s(c, "/status").to_string()];
        if with_reason {
            r.push(s(c, "/reason").to_string());
        }
        rows.push(r);
    }
    let headers: &[&str] = if with_reason {
        &["Type", "Status", "Reason"]
    } else {
        &["Type", "Status"]
    };
    for l in output::table(headers, &rows).lines() {
        w.line(2, l);
    }
}

fn probe_text(p: &Value) -> String {
    let what = if let Some(h) = p.get("httpGet") {
        let port = h
            .get("port")
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .unwrap_or_default();
        format!("http-get http://:{port}{}", s(h, "/path"))
    } else if let Some(t) = p.get("tcpSocket") {
        format!(
            "tcp-socket :{}",
            t.get("port")
                .map(|v| v.to_string())
                .unwrap_or_default()
                .trim_matches('"')
        )
    } else if let Some(e) = p.get("exec") {
        let cmd: Vec<&str> = e
            .get("command")
            .and_then(Value::as_array)
            .map(|c| c.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        format!("exec [{}]", cmd.join(" "))
    } else {
        "unknown".into()
    };
    let n = |f: &str, d: i64| p.get(f).and_then(Value::as_i64).unwrap_or(d);
    format!(
        "{what} delay={}s timeout={}s period={}s #success={} #failure={}",
        n("initialDelaySeconds", 0),
        n("timeoutSeconds", 1),
        n("periodSeconds", 10),
        n("successThreshold", 1),
        n("failureThreshold", 3)
    )
}

/// A container's spec (image, ports, command, probes, env sources).
fn container_spec(
    w: &mut W,
    indent: usize,
    c: &Value,
    pod_hosts: Option<&std::collections::BTreeMap<String, u64>>,
) {
    w.kv(indent, "Image", s(c, "/image"));
    let ports: Vec<&Value> = c
        .get("ports")
        .and_then(Value::as_array)
        .map(|p| p.iter().collect())
        .unwrap_or_default();
    if ports.is_empty() {
        w.kv(indent, "Port", "<none>");
    }
    for p in ports {
        let port = i(p, "/containerPort");
        let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
        w.kv(indent, "Port", format!("{port}/{proto}"));
        if let Some(h) = pod_hosts.and_then(|m| m.get(&port.to_string())) {
            w.kv(indent, "Host Port", format!("{h}/{proto}"));
        }
    }
    for (key, field) in [("Command", "command"), ("Args", "args")] {
        if let Some(items) = c
            .get(field)
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
        {
            w.line(indent, format!("{key}:"));
            for a in items {
                w.line(
                    indent + 2,
                    a.as_str().map_or_else(|| a.to_string(), str::to_string),
                );
            }
        }
    }
}

fn container_env(w: &mut W, indent: usize, c: &Value) {
    let env = c
        .get("env")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if env.is_empty() {
        w.kv(indent, "Environment", "<none>");
    } else {
        w.line(indent, "Environment:");
        for e in &env {
            let n = s(e, "/name");
            let text = if let Some(v) = e.get("value") {
                v.as_str().map_or_else(|| v.to_string(), str::to_string)
            } else if let Some(r) = e.pointer("/valueFrom/secretKeyRef") {
                format!(
                    "<set to the key '{}' in secret '{}'>  Optional: {}",
                    s(r, "/key"),
                    s(r, "/name"),
                    r.get("optional").and_then(Value::as_bool).unwrap_or(false)
                )
            } else if let Some(r) = e.pointer("/valueFrom/configMapKeyRef") {
                format!(
                    "<set to the key '{}' of config map '{}'>  Optional: {}",
                    s(r, "/key"),
                    s(r, "/name"),
                    r.get("optional").and_then(Value::as_bool).unwrap_or(false)
                )
            } else if let Some(r) = e.pointer("/valueFrom/fieldRef") {
                format!("({}:{})", s(r, "/apiVersion"), s(r, "/fieldPath"))
            } else {
                String::new()
            };
            w.line(indent + 2, format!("{n}:  {text}"));
        }
    }
    if let Some(from) = c
        .get("envFrom")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
    {
        w.line(indent, "Environment Variables from:");
        for f in from {
            let (what, r) = match (f.get("configMapRef"), f.get("secretRef")) {
                (Some(r), _) => ("ConfigMap", r),
                (_, Some(r)) => ("Secret", r),
                _ => continue,
            };
            let prefix = match s(f, "/prefix") {
                "" => String::new(),
                p => format!(" with prefix '{p}'"),
            };
            w.line(
                indent + 2,
                format!(
                    "{}  {what}{prefix}  Optional: {}",
                    s(r, "/name"),
                    r.get("optional").and_then(Value::as_bool).unwrap_or(false)
                ),
            );
        }
    }
}

fn state(w: &mut W, indent: usize, key: &str, st: Option<&Value>) {
    let Some(st) = st.filter(|v| v.as_object().is_some_and(|m| !m.is_empty())) else {
        if key == "State" {
            w.kv(indent, key, "Waiting");
        }
        return;
    };
    if let Some(r) = st.get("running") {
        w.kv(indent, key, "Running");
        w.kv(indent + 2, "Started", s(r, "/startedAt"));
    } else if let Some(wt) = st.get("waiting") {
        w.kv(indent, key, "Waiting");
        if !s(wt, "/reason").is_empty() {
            w.kv(indent + 2, "Reason", s(wt, "/reason"));
        }
        if !s(wt, "/message").is_empty() {
            w.kv(indent + 2, "Message", s(wt, "/message"));
        }
    } else if let Some(t) = st.get("terminated") {
        w.kv(indent, key, "Terminated");
        w.kv(indent + 2, "Reason", non_empty(s(t, "/reason")));
        if !s(t, "/message").is_empty() {
            w.kv(indent + 2, "Message", s(t, "/message"));
        }
        w.kv(indent + 2, "Exit Code", i(t, "/exitCode").to_string());
        if let Some(sig) = t.get("signal").and_then(Value::as_i64) {
            w.kv(indent + 2, "Signal", sig.to_string());
        }
        w.kv(indent + 2, "Started", s(t, "/startedAt"));
        w.kv(indent + 2, "Finished", s(t, "/finishedAt"));
    }
}

fn pod(w: &mut W, o: &Value) {
    let status = if o.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating".to_string()
    } else {
        non_empty(s(o, "/status/phase")).to_string()
    };
    w.kv(0, "Status", status);
    if !s(o, "/status/reason").is_empty() {
        w.kv(0, "Reason", s(o, "/status/reason"));
    }
    w.kv(0, "IP", non_empty(s(o, "/status/podIP")));
    let hosts = host_ports(o);
    for (list, statuses, title) in [
        ("initContainers", "initContainerStatuses", "Init Containers"),
        ("containers", "containerStatuses", "Containers"),
    ] {
        let cs = o
            .pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if cs.is_empty() {
            continue;
        }
        w.line(0, format!("{title}:"));
        for c in &cs {
            let name = s(c, "/name");
            w.line(2, format!("{name}:"));
            let status = o
                .pointer(&format!("/status/{statuses}"))
                .and_then(Value::as_array)
                .and_then(|a| a.iter().find(|x| s(x, "/name") == name))
                .cloned()
                .unwrap_or(Value::Null);
            container_spec(w, 4, c, Some(&hosts));
            if !s(&status, "/imageID").is_empty() {
                w.kv(4, "Image ID", s(&status, "/imageID"));
            }
            state(w, 4, "State", status.get("state"));
            state(w, 4, "Last State", status.get("lastState"));
            w.kv(
                4,
                "Ready",
                if status.get("ready").and_then(Value::as_bool) == Some(true) {
                    "True"
                } else {
                    "False"
                },
            );
            w.kv(4, "Restart Count", i(&status, "/restartCount").to_string());
            for (k, f) in [
                ("Liveness", "livenessProbe"),
                ("Readiness", "readinessProbe"),
                ("Startup", "startupProbe"),
            ] {
                if let Some(p) = c.get(f) {
                    w.kv(4, k, probe_text(p));
                }
            }
            container_env(w, 4, c);
        }
    }
    conditions(w, o, false);
}

fn template(w: &mut W, o: &Value) {
    w.line(0, "Pod Template:");
    w.map(
        2,
        "Labels",
        o.pointer("/spec/template/metadata/labels"),
        "=",
    );
    if o.pointer("/spec/template/metadata/annotations").is_some() {
        w.map(
            2,
            "Annotations",
            o.pointer("/spec/template/metadata/annotations"),
            ": ",
        );
    }
    w.line(2, "Containers:");
    for c in o
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        w.line(3, format!("{}:", s(c, "/name")));
        container_spec(w, 4, c, None);
        container_env(w, 4, c);
    }
}

fn owned_by(child: &Value, owner: &Value) -> bool {
    let uid = s(owner, "/metadata/uid");
    child
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| refs.iter().any(|r| s(r, "/uid") == uid))
}

fn deployment(w: &mut W, o: &Value, related: &[Value]) {
    w.kv(0, "Selector", selector_text(o.pointer("/spec/selector")));
    let want = o
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    w.kv(
        0,
        "Replicas",
        format!(
            "{want} desired | {} updated | {} total | {} available | {} unavailable",
            i(o, "/status/updatedReplicas"),
            i(o, "/status/replicas"),
            i(o, "/status/availableReplicas"),
            i(o, "/status/unavailableReplicas")
        ),
    );
    let strategy = o
        .pointer("/spec/strategy/type")
        .and_then(Value::as_str)
        .unwrap_or("RollingUpdate");
    w.kv(0, "StrategyType", strategy);
    w.kv(
        0,
        "MinReadySeconds",
        i(o, "/spec/minReadySeconds").to_string(),
    );
    if strategy == "RollingUpdate" {
        let v = |f: &str| {
            o.pointer(&format!("/spec/strategy/rollingUpdate/{f}"))
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .unwrap_or_else(|| "25%".into())
        };
        w.kv(
            0,
            "RollingUpdateStrategy",
            format!(
                "{} max unavailable, {} max surge",
                v("maxUnavailable"),
                v("maxSurge")
            ),
        );
    }
    template(w, o);
    conditions(w, o, true);
    let mut rss: Vec<&Value> = related
        .iter()
        .filter(|r| s(r, "/kind") == "ReplicaSet" && owned_by(r, o))
        .collect();
    rss.sort_by_key(|r| {
        s(
            r,
            "/metadata/annotations/deployment.kubernetes.io~1revision",
        )
        .parse::<i64>()
        .unwrap_or(0)
    });
    let fmt = |r: &Value| {
        format!(
            "{} ({}/{} replicas created)",
            s(r, "/metadata/name"),
            i(r, "/status/replicas"),
            i(r, "/spec/replicas")
        )
    };
    let new = rss.last().copied();
    let old: Vec<String> = rss
        .iter()
        .rev()
        .skip(1)
        .filter(|r| i(r, "/spec/replicas") > 0 || i(r, "/status/replicas") > 0)
        .map(|r| fmt(r))
        .collect();
    w.kv(
        0,
        "OldReplicaSets",
        if old.is_empty() {
            "<none>".into()
        } else {
            old.join(", ")
        },
    );
    w.kv(0, "NewReplicaSet", new.map_or_else(|| "<none>".into(), fmt));
}

fn pods_status(w: &mut W, pods: &[&Value]) {
    let count = |phase: &str| {
        pods.iter()
            .filter(|p| s(p, "/status/phase") == phase)
            .count()
    };
    w.kv(
        0,
        "Pods Status",
        format!(
            "{} Running / {} Waiting / {} Succeeded / {} Failed",
            count("Running"),
            count("Pending"),
            count("Succeeded"),
            count("Failed")
        ),
    );
}

fn replica_set(w: &mut W, o: &Value, related: &[Value]) {
    w.kv(0, "Selector", selector_text(o.pointer("/spec/selector")));
    w.kv(
        0,
        "Replicas",
        format!(
            "{} current / {} desired",
            i(o, "/status/replicas"),
            o.pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1)
        ),
    );
    let pods: Vec<&Value> = related
        .iter()
        .filter(|p| s(p, "/kind") == "Pod" && owned_by(p, o))
        .collect();
    pods_status(w, &pods);
    template(w, o);
    conditions(w, o, true);
}

fn job(w: &mut W, o: &Value, related: &[Value]) {
    w.kv(
        0,
        "Parallelism",
        o.pointer("/spec/parallelism")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            .to_string(),
    );
    w.kv(
        0,
        "Completions",
        o.pointer("/spec/completions")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            .to_string(),
    );
    w.kv(
        0,
        "Backoff Limit",
        o.pointer("/spec/backoffLimit")
            .and_then(Value::as_i64)
            .unwrap_or(6)
            .to_string(),
    );
    w.kv(0, "Start Time", non_empty(s(o, "/status/startTime")));
    if !s(o, "/status/completionTime").is_empty() {
        w.kv(0, "Completed At", s(o, "/status/completionTime"));
    }
    w.kv(
        0,
        "Pods Statuses",
        format!(
            "{} Active / {} Succeeded / {} Failed",
            i(o, "/status/active"),
            i(o, "/status/succeeded"),
            i(o, "/status/failed")
        ),
    );
    let _ = related;
    template(w, o);
    conditions(w, o, true);
}

fn service(w: &mut W, o: &Value, client: &Client) -> anyhow::Result<()> {
    w.kv(0, "Selector", selector_text(o.pointer("/spec/selector")));
    w.kv(
        0,
        "Type",
        o.pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP"),
    );
    w.kv(0, "Port(s)", service_ports(o));
    let path = format!(
        "{}/traffic",
        object_path(
            s(o, "/metadata/namespace"),
            "services",
            s(o, "/metadata/name")
        )
    );
    let traffic = client.get(&path)?;
    for p in traffic
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let port = i(p, "/port");
        match p.get("hostPort").and_then(Value::as_u64) {
            Some(h) => w.kv(0, "Listening", format!("127.0.0.1:{h} (port {port})")),
            None => w.kv(0, "Listening", format!("<not yet> (port {port})")),
        }
        let eps: Vec<String> = p
            .get("endpoints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|e| {
                let ready = if e.get("ready").and_then(Value::as_bool) == Some(true) {
                    ""
                } else {
                    " (not ready)"
                };
                format!("{}{ready}", s(e, "/address"))
            })
            .collect();
        w.kv(
            0,
            "Endpoints",
            if eps.is_empty() {
                "<none>".into()
            } else {
                eps.join(",")
            },
        );
    }
    match traffic.get("weights").and_then(Value::as_object) {
        Some(m) => w.kv(
            0,
            "Traffic Weights",
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
        ),
        None => w.kv(0, "Traffic Weights", "<none>"),
    }
    Ok(())
}
