//! `ferry get KIND [NAME…]`: runtime objects in kubectl's tables, or as JSON/YAML.

use std::time::SystemTime;

use clap::Args;
use ferry_core::parse::to_yaml;
use serde_json::{Value, json};

use crate::client::{self, Client, NamespaceArgs, ServerArgs, age_of, enc, i, object_path, s};
use crate::output::{self, EXIT_FINDING, EXIT_OK};

/// List runtime objects, kubectl-style.
///
/// KIND takes kubectl's names (pods/po, deployments/deploy, replicasets/rs,
/// services/svc, configmaps/cm, secrets, jobs, namespaces/ns, events/ev, all), a Kind
/// name, several joined by commas, or KIND/NAME.
#[derive(Args, Debug)]
pub struct GetArgs {
    /// What to list: KIND, KIND,KIND, or KIND/NAME.
    pub kind: String,
    /// Names of objects to show (all when none).
    pub names: Vec<String>,
    #[command(flatten)]
    pub ns: NamespaceArgs,
    /// Label selector (`app=web,tier!=db`).
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Output: wide, json, yaml or name (default: a table).
    #[arg(short, long, value_name = "FORMAT")]
    pub output: Option<String>,
    /// After listing, print every change as it happens (until interrupted).
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Show labels as the last column.
    #[arg(long)]
    pub show_labels: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Out {
    Table,
    Wide,
    Json,
    Yaml,
    Name,
}

fn out_of(o: Option<&str>) -> anyhow::Result<Out> {
    Ok(match o {
        None | Some("") => Out::Table,
        Some("wide") => Out::Wide,
        Some("json") => Out::Json,
        Some("yaml") => Out::Yaml,
        Some("name") => Out::Name,
        Some(other) => {
            anyhow::bail!("unknown output format {other:?}; use wide, json, yaml or name")
        }
    })
}

/// Runs `ferry get`.
pub fn run(args: GetArgs) -> anyhow::Result<u8> {
    let out = out_of(args.output.as_deref())?;
    let client = Client::new(&args.server)?;
    let (kinds, mut names): (Vec<String>, Vec<String>) = match args.kind.split_once('/') {
        Some((k, n)) => (
            vec![k.to_string()],
            std::iter::once(n.to_string())
                .chain(args.names.iter().cloned())
                .collect(),
        ),
        None => (
            args.kind
                .split(',')
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .collect(),
            args.names.clone(),
        ),
    };
    let kinds: Vec<String> = kinds
        .into_iter()
        .flat_map(|k| {
            if k == "all" {
                ferry_server::kinds::ALL
                    .iter()
                    .map(|k| k.to_string())
                    .collect()
            } else {
                vec![k]
            }
        })
        .collect();
    names.dedup();
    if args.watch {
        return watch(&client, &args, &kinds, &names, out);
    }
    let mut objects: Vec<Value> = Vec::new();
    let mut failed = false;
    for kind in &kinds {
        if names.is_empty() {
            let list = client.get(&list_path(&args, kind, false))?;
            objects.extend(
                list.get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            );
        } else {
            for name in &names {
                match client.get(&object_path(args.ns.ns(), kind, name)) {
                    Ok(o) => objects.push(o),
                    Err(e) => match e.downcast::<client::ApiFailure>() {
                        Ok(f) => {
                            eprintln!("error: {}", f.message);
                            failed = true;
                        }
                        Err(e) => return Err(e),
                    },
                }
            }
        }
    }
    let single = names.len() == 1 && kinds.len() == 1;
    match out {
        Out::Json | Out::Yaml => {
            let v = if single && objects.len() == 1 {
                objects[0].clone()
            } else {
                list_of(objects)
            };
            let format = if out == Out::Json {
                output::Format::Json
            } else {
                output::Format::Yaml
            };
            output::print_data(&v, format)?;
        }
        Out::Name => {
            let text: String = objects
                .iter()
                .map(|o| format!("{}\n", client::resource_name(o)))
                .collect();
            output::emit(&text)?;
        }
        Out::Table | Out::Wide => {
            if objects.is_empty() && !failed {
                let cluster_scoped = kinds.iter().all(|k| {
                    ferry_server::kinds::known(k)
                        .is_some_and(|k| !ferry_core::object::is_namespaced(k.kind))
                });
                if args.ns.all_namespaces || cluster_scoped {
                    eprintln!("No resources found");
                } else {
                    eprintln!("No resources found in {} namespace.", args.ns.ns());
                }
            }
            let prefix = kinds.len() > 1;
            let mut text = String::new();
            for kind in distinct_kinds(&objects) {
                let group: Vec<Value> = objects
                    .iter()
                    .filter(|o| s(o, "/kind") == kind)
                    .cloned()
                    .collect();
                let (headers, rows) = table_for(
                    &kind,
                    &group,
                    out == Out::Wide,
                    args.ns.all_namespaces,
                    prefix,
                    args.show_labels,
                );
                if !text.is_empty() {
                    text.push('\n');
                }
                let h: Vec<&str> = headers.iter().map(String::as_str).collect();
                text.push_str(&output::table(&h, &rows));
            }
            output::emit(&text)?;
        }
    }
    Ok(if failed { EXIT_FINDING } else { EXIT_OK })
}

fn list_path(args: &GetArgs, kind: &str, watch: bool) -> String {
    let mut path = if args.ns.all_namespaces {
        format!("/api/v1/{}", enc(kind))
    } else {
        format!("/api/v1/namespaces/{}/{}", enc(args.ns.ns()), enc(kind))
    };
    let mut q = Vec::new();
    if let Some(sel) = &args.selector {
        q.push(format!("labelSelector={}", enc(sel)));
    }
    if watch {
        q.push("watch=true".into());
    }
    if !q.is_empty() {
        path.push('?');
        path.push_str(&q.join("&"));
    }
    path
}

fn list_of(items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items})
}

fn distinct_kinds(objects: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for o in objects {
        let k = s(o, "/kind").to_string();
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

/// `-w`: the current objects, then every change, as rows (or JSON lines).
fn watch(
    client: &Client,
    args: &GetArgs,
    kinds: &[String],
    names: &[String],
    out: Out,
) -> anyhow::Result<u8> {
    let [kind] = kinds else {
        anyhow::bail!("watch one kind at a time");
    };
    let path = match names {
        [] => list_path(args, kind, true),
        [name] => format!("{}?watch=true", object_path(args.ns.ns(), kind, name)),
        _ => anyhow::bail!("watch one name, or all of a kind"),
    };
    let mut header_done = false;
    let mut widths: Vec<usize> = Vec::new();
    // The last row printed per object: a change that shows nothing new prints nothing.
    let mut last: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
    client.stream_lines(&path, |ev| {
        let obj = ev.get("object").cloned().unwrap_or(Value::Null);
        match out {
            Out::Json => output::emit(&format!("{}\n", serde_json::to_string(&obj)?))?,
            Out::Yaml => output::emit(&format!("---\n{}", to_yaml(&obj)))?,
            Out::Name => output::emit(&format!("{}\n", client::resource_name(&obj)))?,
            Out::Table | Out::Wide => {
                let kind = s(&obj, "/kind").to_string();
                let (headers, mut rows) = table_for(
                    &kind,
                    std::slice::from_ref(&obj),
                    out == Out::Wide,
                    args.ns.all_namespaces,
                    false,
                    args.show_labels,
                );
                if ev.get("type").and_then(Value::as_str) == Some("DELETED")
                    && let Some(row) = rows.first_mut()
                    && let Some(status) = headers.iter().position(|h| h == "STATUS")
                {
                    row[status] = "Deleted".into();
                }
                if !header_done {
                    widths = headers
                        .iter()
                        .map(|h| match h.as_str() {
                            "NAME" => 40,
                            "STATUS" | "MESSAGE" => 28,
                            _ => (h.len() + 3).max(10),
                        })
                        .collect();
                    output::emit(&pad(&headers, &widths))?;
                    header_done = true;
                }
                let key = format!(
                    "{}/{}",
                    s(&obj, "/metadata/namespace"),
                    s(&obj, "/metadata/name")
                );
                for row in rows {
                    if last.get(&key) != Some(&row) {
                        output::emit(&pad(&row, &widths))?;
                        last.insert(key.clone(), row);
                    }
                }
            }
        }
        Ok(true)
    })?;
    Ok(EXIT_OK)
}

fn pad(cells: &[String], widths: &[usize]) -> String {
    let mut line = String::new();
    for (n, c) in cells.iter().enumerate() {
        let w = widths.get(n).copied().unwrap_or(0);
        if n + 1 == cells.len() {
            line.push_str(c);
        } else {
            line.push_str(&format!("{c:<w$}"));
            if c.chars().count() >= w {
                line.push_str("   ");
            }
        }
    }
    format!("{}\n", line.trim_end())
}

/// The headers and rows kubectl prints for objects of `kind`.
fn table_for(
    kind: &str,
    objects: &[Value],
    wide: bool,
    all_ns: bool,
    prefix: bool,
    labels: bool,
) -> (Vec<String>, Vec<Vec<String>>) {
    let cols: &[&str] = match kind {
        "Pod" if wide => &["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "PORTS"],
        "Pod" => &["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "Deployment" if wide => &[
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR",
        ],
        "Deployment" => &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "ReplicaSet" if wide => &[
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR",
        ],
        "ReplicaSet" => &["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        "Service" if wide => &["NAME", "TYPE", "CLUSTER-IP", "PORT(S)", "AGE", "SELECTOR"],
        "Service" => &["NAME", "TYPE", "CLUSTER-IP", "PORT(S)", "AGE"],
        "Job" if wide => &[
            "NAME",
            "STATUS",
            "COMPLETIONS",
            "DURATION",
            "AGE",
            "CONTAINERS",
            "IMAGES",
        ],
        "Job" => &["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
        "Namespace" => &["NAME", "STATUS", "AGE"],
        "ConfigMap" => &["NAME", "DATA", "AGE"],
        "Secret" => &["NAME", "TYPE", "DATA", "AGE"],
        "Event" => &["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        _ => &["NAME", "AGE"],
    };
    let mut headers: Vec<String> = cols.iter().map(|c| c.to_string()).collect();
    let namespaced = ferry_core::object::is_namespaced(kind);
    if all_ns && namespaced {
        headers.insert(0, "NAMESPACE".into());
    }
    if labels {
        headers.push("LABELS".into());
    }
    let rows = objects
        .iter()
        .map(|o| {
            let name = if prefix {
                client::resource_name(o)
            } else {
                s(o, "/metadata/name").to_string()
            };
            let age = age_of(
                o.pointer("/metadata/creationTimestamp")
                    .and_then(Value::as_str),
            );
            let mut row: Vec<String> = match kind {
                "Pod" => {
                    let st = pod_status(o);
                    let mut r = vec![name, st.ready, st.status, st.restarts, age];
                    if wide {
                        r.push(non_empty(s(o, "/status/podIP")));
                        r.push(non_empty(&pod_ports(o)));
                    }
                    r
                }
                "Deployment" => {
                    let want = o
                        .pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1);
                    let mut r = vec![
                        name,
                        format!("{}/{want}", i(o, "/status/readyReplicas")),
                        i(o, "/status/updatedReplicas").to_string(),
                        i(o, "/status/availableReplicas").to_string(),
                        age,
                    ];
                    if wide {
                        r.extend(wide_template(o));
                    }
                    r
                }
                "ReplicaSet" => {
                    let mut r = vec![
                        name,
                        o.pointer("/spec/replicas")
                            .and_then(Value::as_i64)
                            .unwrap_or(1)
                            .to_string(),
                        i(o, "/status/replicas").to_string(),
                        i(o, "/status/readyReplicas").to_string(),
                        age,
                    ];
                    if wide {
                        r.extend(wide_template(o));
                    }
                    r
                }
                "Service" => {
                    let mut r = vec![
                        name,
                        non_empty(
                            o.pointer("/spec/type")
                                .and_then(Value::as_str)
                                .unwrap_or("ClusterIP"),
                        ),
                        service_ip(o),
                        service_ports(o),
                        age,
                    ];
                    if wide {
                        r.push(selector_text(o.pointer("/spec/selector")));
                    }
                    r
                }
                "Job" => {
                    let mut r = vec![
                        name,
                        job_status(o),
                        job_completions(o),
                        job_duration(o),
                        age,
                    ];
                    if wide {
                        r.extend(wide_template(o).into_iter().take(2));
                    }
                    r
                }
                "Namespace" => vec![
                    name,
                    o.pointer("/status/phase")
                        .and_then(Value::as_str)
                        .unwrap_or("Active")
                        .to_string(),
                    age,
                ],
                "ConfigMap" => vec![name, data_count(o).to_string(), age],
                "Secret" => vec![
                    name,
                    o.get("type")
                        .and_then(Value::as_str)
                        .unwrap_or("Opaque")
                        .to_string(),
                    data_count(o).to_string(),
                    age,
                ],
                "Event" => event_row(o),
                _ => vec![name, age],
            };
            if all_ns && namespaced {
                row.insert(0, s(o, "/metadata/namespace").to_string());
            }
            if labels {
                row.push(labels_text(o));
            }
            row
        })
        .collect();
    (headers, rows)
}

fn non_empty(v: &str) -> String {
    if v.is_empty() {
        "<none>".into()
    } else {
        v.to_string()
    }
}

fn labels_text(o: &Value) -> String {
    match o.pointer("/metadata/labels").and_then(Value::as_object) {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(","),
        _ => "<none>".into(),
    }
}

/// `app=web,tier=front` for a map or a LabelSelector.
pub fn selector_text(sel: Option<&Value>) -> String {
    let Some(sel) = sel else {
        return "<none>".into();
    };
    let labels = sel.get("matchLabels").unwrap_or(sel);
    let mut parts: Vec<String> = labels
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, v)| v.is_string())
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = s(e, "/key");
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        parts.push(match s(e, "/operator") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            op => format!("{key} {op}"),
        });
    }
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

fn wide_template(o: &Value) -> Vec<String> {
    let cs = o
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = cs.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = cs.iter().map(|c| s(c, "/image")).collect();
    vec![
        names.join(","),
        images.join(","),
        selector_text(o.pointer("/spec/selector")),
    ]
}

fn data_count(o: &Value) -> usize {
    ["data", "binaryData", "stringData"]
        .iter()
        .filter_map(|f| o.get(*f).and_then(Value::as_object))
        .map(|m| m.len())
        .sum()
}

/// The host port map `ferry.dev/host-ports` records on a pod or Service.
pub fn host_ports(o: &Value) -> std::collections::BTreeMap<String, u64> {
    o.pointer("/metadata/annotations/ferry.dev~1host-ports")
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str::<serde_json::Map<String, Value>>(s).ok())
        .map(|m| {
            m.into_iter()
                .filter_map(|(k, v)| Some((k, v.as_u64().or_else(|| v.as_str()?.parse().ok())?)))
                .collect()
        })
        .unwrap_or_default()
}

fn pod_ports(o: &Value) -> String {
    host_ports(o)
        .iter()
        .map(|(c, h)| {
            if c == "0" {
                format!("{h}")
            } else {
                format!("{c}:{h}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn service_ip(o: &Value) -> String {
    match s(o, "/spec/clusterIP") {
        "" => "127.0.0.1".into(),
        ip => ip.to_string(),
    }
}

/// `80:31001/TCP,9090/TCP`: each port with its host port once listening.
pub fn service_ports(o: &Value) -> String {
    let hosts = host_ports(o);
    let ports: Vec<String> = o
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let port = p.get("port").and_then(Value::as_u64).unwrap_or(0);
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            match hosts.get(&port.to_string()) {
                Some(h) => format!("{port}:{h}/{proto}"),
                None => format!("{port}/{proto}"),
            }
        })
        .collect();
    if ports.is_empty() {
        "<none>".into()
    } else {
        ports.join(",")
    }
}

fn condition_true(o: &Value, kind: &str) -> bool {
    o.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| s(c, "/type") == kind && s(c, "/status") == "True")
}

fn job_status(o: &Value) -> String {
    if condition_true(o, "Complete") {
        "Complete".into()
    } else if condition_true(o, "Failed") {
        "Failed".into()
    } else if o.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
        "Suspended".into()
    } else {
        "Running".into()
    }
}

fn job_completions(o: &Value) -> String {
    let want = o
        .pointer("/spec/completions")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    format!("{}/{want}", i(o, "/status/succeeded"))
}

fn job_duration(o: &Value) -> String {
    let parse = |p: &str| {
        o.pointer(p)
            .and_then(Value::as_str)
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
    };
    let Some(start) = parse("/status/startTime") else {
        return String::new();
    };
    let end = parse("/status/completionTime").unwrap_or_else(SystemTime::now);
    client::human_age(end.duration_since(start).unwrap_or_default())
}

/// How long ago an event last happened, kubectl-style: `5s`, or `5s (x3 over 40s)`.
pub fn event_age(e: &Value) -> String {
    let count = i(e, "/count");
    let last = age_of(e.pointer("/lastTimestamp").and_then(Value::as_str));
    if count > 1 {
        let first = age_of(e.pointer("/firstTimestamp").and_then(Value::as_str));
        format!("{last} (x{count} over {first})")
    } else {
        last
    }
}

/// One row of the events table: `LAST SEEN TYPE REASON OBJECT MESSAGE`.
pub fn event_row(e: &Value) -> Vec<String> {
    let kind = s(e, "/involvedObject/kind").to_ascii_lowercase();
    let seen = event_age(e);
    vec![
        seen,
        s(e, "/type").to_string(),
        s(e, "/reason").to_string(),
        format!("{kind}/{}", s(e, "/involvedObject/name")),
        s(e, "/message").to_string(),
    ]
}

/// What kubectl shows for a pod: READY, STATUS and RESTARTS.
pub struct PodStatus {
    /// `1/1`.
    pub ready: String,
    /// `Running`, `ImagePullBackOff`, `CrashLoopBackOff`, `Terminating`, `Init:0/1`, …
    pub status: String,
    /// `2 (5s ago)`.
    pub restarts: String,
}

/// kubectl's pod columns (its `printPod`): the waiting or terminated reason of a
/// container wins over the phase; a pod being deleted is `Terminating`.
pub fn pod_status(o: &Value) -> PodStatus {
    let total = o
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let mut reason = match s(o, "/status/reason") {
        "" => non_empty(s(o, "/status/phase")).replace("<none>", "Pending"),
        r => r.to_string(),
    };
    let mut restarts = 0i64;
    let mut last_restart: Option<String> = None;
    let mut note_last = |c: &Value| {
        if let Some(t) = c
            .pointer("/lastState/terminated/finishedAt")
            .and_then(Value::as_str)
            && last_restart.as_deref().is_none_or(|l| t > l)
        {
            last_restart = Some(t.to_string());
        }
    };
    let inits = o
        .pointer("/status/initContainerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let init_total = o
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let mut initializing = false;
    for (n, c) in inits.iter().enumerate() {
        restarts += i(c, "/restartCount");
        note_last(c);
        let term = c.pointer("/state/terminated");
        if term.is_some_and(|t| i(t, "/exitCode") == 0) {
            continue;
        }
        initializing = true;
        reason = if let Some(t) = term {
            match s(t, "/reason") {
                "" => format!("Init:ExitCode:{}", i(t, "/exitCode")),
                r => format!("Init:{r}"),
            }
        } else {
            match s(c, "/state/waiting/reason") {
                "" | "PodInitializing" => format!("Init:{n}/{init_total}"),
                r => format!("Init:{r}"),
            }
        };
        break;
    }
    let mut ready = 0;
    let mut has_running = false;
    if !initializing {
        restarts = 0;
        for c in o
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .rev()
        {
            restarts += i(c, "/restartCount");
            note_last(c);
            let waiting = s(c, "/state/waiting/reason");
            let term = c.pointer("/state/terminated");
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if let Some(t) = term {
                reason = match s(t, "/reason") {
                    "" if t.get("signal").is_some() => format!("Signal:{}", i(t, "/signal")),
                    "" => format!("ExitCode:{}", i(t, "/exitCode")),
                    r => r.to_string(),
                };
            } else if c.pointer("/state/running").is_some()
                && c.get("ready").and_then(Value::as_bool) == Some(true)
            {
                has_running = true;
                ready += 1;
            } else if c.pointer("/state/running").is_some() {
                has_running = true;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(o, "Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }
    if o.pointer("/metadata/deletionTimestamp").is_some() {
        reason = "Terminating".into();
    }
    let restarts = match last_restart {
        Some(t) if restarts > 0 => format!("{restarts} ({} ago)", age_of(Some(&t))),
        _ => restarts.to_string(),
    };
    PodStatus {
        ready: format!("{ready}/{total}"),
        status: reason,
        restarts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_status_shows_the_waiting_reason_and_terminating() {
        let pod = json!({
            "spec": {"containers": [{"name": "web"}]},
            "status": {"phase": "Pending", "containerStatuses": [
                {"name": "web", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff"}}}
            ]}
        });
        let st = pod_status(&pod);
        assert_eq!(
            (st.ready.as_str(), st.status.as_str(), st.restarts.as_str()),
            ("0/1", "ImagePullBackOff", "0")
        );
        let mut running = json!({
            "metadata": {},
            "spec": {"containers": [{"name": "web"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "web", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}}}
            ]}
        });
        assert_eq!(pod_status(&running).status, "Running");
        assert_eq!(pod_status(&running).ready, "1/1");
        running["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        assert_eq!(pod_status(&running).status, "Terminating");
    }

    #[test]
    fn service_ports_show_the_host_port() {
        let svc = json!({
            "metadata": {"annotations": {"ferry.dev/host-ports": "{\"80\":31001}"}},
            "spec": {"ports": [{"port": 80}, {"port": 9090, "protocol": "UDP"}]}
        });
        assert_eq!(service_ports(&svc), "80:31001/TCP,9090/UDP");
    }
}
