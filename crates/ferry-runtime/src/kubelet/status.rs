//! Pod status as the kubelet writes it: container states, phase, conditions, QoS class.
//!
//! The worker keeps a [`PodRt`] per pod; [`pod_status`] turns it into the `status`
//! object, keeping each condition's `lastTransitionTime` from the previous status when
//! the condition did not change, so an unchanged pod writes an identical status (and
//! [`crate::Cluster::update_status`] then writes nothing).

use std::time::Duration;

use serde_json::{Map, Value, json};

/// The IP every pod and the node have here.
pub(crate) const LOCAL_IP: &str = "127.0.0.1";

/// A finished container instance.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Terminated {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: String,
}

impl Terminated {
    pub(crate) fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("exitCode".into(), json!(self.exit_code));
        if let Some(s) = self.signal {
            m.insert("signal".into(), json!(s));
        }
        m.insert("reason".into(), json!(self.reason));
        if let Some(msg) = &self.message {
            m.insert("message".into(), json!(msg));
        }
        if let Some(s) = &self.started_at {
            m.insert("startedAt".into(), json!(s));
        }
        m.insert("finishedAt".into(), json!(self.finished_at));
        Value::Object(m)
    }

    pub(crate) fn from_json(v: &Value) -> Option<Self> {
        let v = v.as_object()?;
        Some(Self {
            exit_code: v.get("exitCode").and_then(Value::as_i64).unwrap_or(0) as i32,
            signal: v.get("signal").and_then(Value::as_i64).map(|s| s as i32),
            reason: v
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            message: v.get("message").and_then(Value::as_str).map(str::to_string),
            started_at: v
                .get("startedAt")
                .and_then(Value::as_str)
                .map(str::to_string),
            finished_at: v
                .get("finishedAt")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        })
    }
}

/// A container's current state.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum State {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: String,
    },
    Terminated(Terminated),
}

impl State {
    pub(crate) fn waiting(reason: &str, message: Option<String>) -> Self {
        State::Waiting {
            reason: reason.to_string(),
            message,
        }
    }

    fn to_json(&self) -> Value {
        match self {
            State::Waiting { reason, message } => {
                let mut w = Map::new();
                w.insert("reason".into(), json!(reason));
                if let Some(m) = message {
                    w.insert("message".into(), json!(m));
                }
                json!({ "waiting": w })
            }
            State::Running { started_at } => json!({"running": {"startedAt": started_at}}),
            State::Terminated(t) => json!({ "terminated": t.to_json() }),
        }
    }

    fn from_json(v: &Value) -> Option<Self> {
        if let Some(w) = v.get("waiting") {
            return Some(State::Waiting {
                reason: w
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                message: w.get("message").and_then(Value::as_str).map(str::to_string),
            });
        }
        if let Some(r) = v.get("running") {
            return Some(State::Running {
                started_at: r
                    .get("startedAt")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            });
        }
        v.get("terminated")
            .and_then(Terminated::from_json)
            .map(State::Terminated)
    }
}

/// What the kubelet knows about one container.
#[derive(Clone, Debug)]
pub(crate) struct ContainerRt {
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub state: State,
    pub last: Option<Terminated>,
    pub restart_count: u32,
    pub ready: bool,
    pub started: bool,
}

impl ContainerRt {
    /// A container not yet started, or as the previous status (`prev`) left it.
    pub(crate) fn new(name: &str, image: &str, waiting: &str, prev: Option<&Value>) -> Self {
        let mut rt = Self {
            name: name.to_string(),
            image: image.to_string(),
            image_id: String::new(),
            state: State::waiting(waiting, None),
            last: None,
            restart_count: 0,
            ready: false,
            started: false,
        };
        if let Some(p) = prev {
            rt.restart_count = p.get("restartCount").and_then(Value::as_u64).unwrap_or(0) as u32;
            rt.last = p
                .pointer("/lastState/terminated")
                .and_then(Terminated::from_json);
            if let Some(s) = p.get("state").and_then(State::from_json) {
                rt.state = s;
            }
            rt.ready = p.get("ready").and_then(Value::as_bool).unwrap_or(false);
            rt.started = p.get("started").and_then(Value::as_bool).unwrap_or(false);
            rt.image_id = p
                .get("imageID")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
        }
        rt
    }

    fn to_json(&self) -> Value {
        let last = match &self.last {
            Some(t) => json!({"terminated": t.to_json()}),
            None => json!({}),
        };
        json!({
            "name": self.name,
            "state": self.state.to_json(),
            "lastState": last,
            "ready": self.ready,
            "restartCount": self.restart_count,
            "image": self.image,
            "imageID": self.image_id,
            "started": self.started,
        })
    }
}

/// What the kubelet knows about one pod.
#[derive(Clone, Debug)]
pub(crate) struct PodRt {
    pub init: Vec<ContainerRt>,
    pub main: Vec<ContainerRt>,
    pub start_time: String,
}

/// `spec.restartPolicy`, default `Always`.
pub(crate) fn restart_policy(spec: &Value) -> &str {
    spec.get("restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("Always")
}

/// The pod phase, after the kubelet's `getPhase`.
pub(crate) fn phase(rt: &PodRt, policy: &str) -> &'static str {
    let mut pending_init = 0;
    let mut failed_init = 0;
    for c in &rt.init {
        match &c.state {
            State::Running { .. } => pending_init += 1,
            State::Terminated(t) => {
                if t.exit_code != 0 {
                    failed_init += 1;
                }
            }
            State::Waiting { .. } => match &c.last {
                Some(t) if t.exit_code != 0 => failed_init += 1,
                Some(_) => {}
                None => pending_init += 1,
            },
        }
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in &rt.main {
        match &c.state {
            State::Running { .. } => running += 1,
            State::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            State::Waiting { .. } => {
                if c.last.is_some() {
                    stopped += 1;
                } else {
                    waiting += 1;
                }
            }
        }
    }
    if failed_init > 0 && policy == "Never" {
        return "Failed";
    }
    if pending_init > 0 || waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped > 0 {
        if policy == "Always" {
            return "Running";
        }
        if stopped == succeeded {
            return "Succeeded";
        }
        if policy == "Never" {
            return "Failed";
        }
        return "Running";
    }
    "Pending"
}

fn condition(
    kind: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    prev: Option<&Value>,
    now: &str,
) -> Value {
    let status = if ok { "True" } else { "False" };
    let prev_cond = prev
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
        });
    let since = prev_cond
        .filter(|c| c.get("status").and_then(Value::as_str) == Some(status))
        .and_then(|c| c.get("lastTransitionTime").and_then(Value::as_str))
        .unwrap_or(now);
    let mut m = Map::new();
    m.insert("type".into(), json!(kind));
    m.insert("status".into(), json!(status));
    m.insert("lastProbeTime".into(), Value::Null);
    m.insert("lastTransitionTime".into(), json!(since));
    if let Some(r) = reason {
        m.insert("reason".into(), json!(r));
    }
    if let Some(msg) = message {
        m.insert("message".into(), json!(msg));
    }
    Value::Object(m)
}

fn names(list: &[&ContainerRt]) -> String {
    let n: Vec<&str> = list.iter().map(|c| c.name.as_str()).collect();
    format!("[{}]", n.join(" "))
}

/// The whole `status` of a pod: `spec` is the pod's spec, `prev` its current status.
pub(crate) fn pod_status(rt: &PodRt, spec: &Value, prev: Option<&Value>, now: &str) -> Value {
    let policy = restart_policy(spec);
    let phase = phase(rt, policy);
    let completed = phase == "Succeeded";

    let incomplete: Vec<&ContainerRt> = rt
        .init
        .iter()
        .filter(|c| !matches!(&c.state, State::Terminated(t) if t.exit_code == 0))
        .collect();
    let initialized = if completed {
        condition("Initialized", true, Some("PodCompleted"), None, prev, now)
    } else if incomplete.is_empty() {
        condition("Initialized", true, None, None, prev, now)
    } else {
        condition(
            "Initialized",
            false,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: {}",
                names(&incomplete)
            )),
            prev,
            now,
        )
    };
    let unready: Vec<&ContainerRt> = rt.main.iter().filter(|c| !c.ready).collect();
    let ready_cond = |kind: &str| {
        if completed {
            condition(kind, false, Some("PodCompleted"), None, prev, now)
        } else if unready.is_empty() {
            condition(kind, true, None, None, prev, now)
        } else {
            condition(
                kind,
                false,
                Some("ContainersNotReady"),
                Some(format!(
                    "containers with unready status: {}",
                    names(&unready)
                )),
                prev,
                now,
            )
        }
    };
    let conditions = vec![
        initialized,
        ready_cond("Ready"),
        ready_cond("ContainersReady"),
        condition("PodScheduled", true, None, None, prev, now),
    ];

    let mut status = Map::new();
    status.insert("phase".into(), json!(phase));
    status.insert("conditions".into(), Value::Array(conditions));
    status.insert("hostIP".into(), json!(LOCAL_IP));
    status.insert("hostIPs".into(), json!([{ "ip": LOCAL_IP }]));
    status.insert("podIP".into(), json!(LOCAL_IP));
    status.insert("podIPs".into(), json!([{ "ip": LOCAL_IP }]));
    status.insert("startTime".into(), json!(rt.start_time));
    if !rt.init.is_empty() {
        status.insert(
            "initContainerStatuses".into(),
            Value::Array(rt.init.iter().map(ContainerRt::to_json).collect()),
        );
    }
    status.insert(
        "containerStatuses".into(),
        Value::Array(rt.main.iter().map(ContainerRt::to_json).collect()),
    );
    status.insert("qosClass".into(), json!(qos_class(spec)));
    Value::Object(status)
}

/// A resource quantity as a number (`500m` → 0.5, `1Gi` → 1073741824).
pub(crate) fn parse_quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        s if s.starts_with(['e', 'E']) => 10f64.powi(s[1..].parse().ok()?),
        _ => return None,
    };
    Some(n * mult)
}

/// `status.qosClass`: Guaranteed, Burstable or BestEffort, as Kubernetes decides it.
pub(crate) fn qos_class(spec: &Value) -> &'static str {
    let containers = ["initContainers", "containers"]
        .iter()
        .filter_map(|k| spec.get(*k).and_then(Value::as_array))
        .flatten();
    let mut any = false;
    let mut guaranteed = true;
    for c in containers {
        let requests = c.pointer("/resources/requests");
        let limits = c.pointer("/resources/limits");
        for r in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(r)).and_then(Value::as_str);
            let request = requests
                .and_then(|l| l.get(r))
                .and_then(Value::as_str)
                .or(limit);
            let (l, q) = (
                limit.and_then(parse_quantity),
                request.and_then(parse_quantity),
            );
            if l.is_some_and(|v| v != 0.0) || q.is_some_and(|v| v != 0.0) {
                any = true;
            }
            match (l, q) {
                (Some(l), Some(q)) if l == q => {}
                _ => guaranteed = false,
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// A duration as Go prints it (`200ms`, `10s`, `1m20s`, `5m0s`), for Kubernetes' messages.
pub(crate) fn go_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    if d < Duration::from_secs(1) {
        let ms = d.as_secs_f64() * 1000.0;
        return format!("{}ms", trim_float(ms));
    }
    let total = d.as_secs();
    let (h, m) = (total / 3600, (total % 3600) / 60);
    let s = (total % 60) as f64 + f64::from(d.subsec_nanos()) / 1e9;
    let s = format!("{}s", trim_float(s));
    if h > 0 {
        format!("{h}h{m}m{s}")
    } else if m > 0 {
        format!("{m}m{s}")
    } else {
        s
    }
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.9}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(state: State, last: Option<i32>) -> ContainerRt {
        ContainerRt {
            name: "c".into(),
            image: "i".into(),
            image_id: String::new(),
            state,
            last: last.map(|code| Terminated {
                exit_code: code,
                signal: None,
                reason: "Error".into(),
                message: None,
                started_at: None,
                finished_at: "t".into(),
            }),
            restart_count: 0,
            ready: false,
            started: false,
        }
    }

    fn term(code: i32) -> State {
        State::Terminated(Terminated {
            exit_code: code,
            signal: None,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            message: None,
            started_at: None,
            finished_at: "t".into(),
        })
    }

    fn running() -> State {
        State::Running {
            started_at: "t".into(),
        }
    }

    #[test]
    fn phase_follows_the_kubelet() {
        let pod = |init: Vec<ContainerRt>, main: Vec<ContainerRt>| PodRt {
            init,
            main,
            start_time: "t".into(),
        };
        let waiting = || State::waiting("ContainerCreating", None);
        let table: Vec<(PodRt, &str, &str)> = vec![
            (pod(vec![], vec![c(waiting(), None)]), "Always", "Pending"),
            (pod(vec![], vec![c(running(), None)]), "Always", "Running"),
            (
                pod(
                    vec![],
                    vec![c(State::waiting("CrashLoopBackOff", None), Some(3))],
                ),
                "Always",
                "Running",
            ),
            (pod(vec![], vec![c(term(0), None)]), "Never", "Succeeded"),
            (
                pod(vec![], vec![c(term(0), None)]),
                "OnFailure",
                "Succeeded",
            ),
            (pod(vec![], vec![c(term(1), None)]), "Never", "Failed"),
            (
                pod(vec![], vec![c(term(0), None), c(running(), None)]),
                "Never",
                "Running",
            ),
            (
                pod(vec![c(running(), None)], vec![c(waiting(), None)]),
                "Always",
                "Pending",
            ),
            (
                pod(vec![c(term(1), None)], vec![c(waiting(), None)]),
                "Never",
                "Failed",
            ),
            (
                pod(vec![c(term(0), None)], vec![c(running(), None)]),
                "Never",
                "Running",
            ),
        ];
        for (i, (rt, policy, want)) in table.iter().enumerate() {
            assert_eq!(phase(rt, policy), *want, "case {i}");
        }
    }

    #[test]
    fn conditions_keep_their_transition_time() {
        let rt = PodRt {
            init: vec![],
            main: vec![c(running(), None)],
            start_time: "t0".into(),
        };
        let spec = json!({"containers": [{"name": "c"}]});
        let first = pod_status(&rt, &spec, None, "t1");
        let again = pod_status(&rt, &spec, Some(&first), "t2");
        assert_eq!(first, again, "an unchanged pod writes an identical status");
        let mut ready = rt.clone();
        ready.main[0].ready = true;
        let third = pod_status(&ready, &spec, Some(&again), "t3");
        let cond = |s: &Value, t: &str| {
            s["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == t)
                .unwrap()
                .clone()
        };
        assert_eq!(cond(&third, "Ready")["lastTransitionTime"], "t3");
        assert_eq!(cond(&third, "PodScheduled")["lastTransitionTime"], "t1");
        assert_eq!(
            cond(&first, "Ready")["message"],
            "containers with unready status: [c]"
        );
    }

    #[test]
    fn qos_classes() {
        let best = json!({"containers": [{"name": "a"}]});
        let guaranteed = json!({"containers": [{"name": "a", "resources": {
            "limits": {"cpu": "500m", "memory": "128Mi"}}}]});
        let burst = json!({"containers": [{"name": "a", "resources": {
            "requests": {"cpu": "0.5"}, "limits": {"cpu": "1"}}}]});
        let same_value = json!({"containers": [{"name": "a", "resources": {
            "requests": {"cpu": "0.5", "memory": "1Gi"}, "limits": {"cpu": "500m", "memory": "1024Mi"}}}]});
        assert_eq!(qos_class(&best), "BestEffort");
        assert_eq!(qos_class(&guaranteed), "Guaranteed");
        assert_eq!(qos_class(&burst), "Burstable");
        assert_eq!(qos_class(&same_value), "Guaranteed");
    }

    #[test]
    fn durations_print_as_go_does() {
        let cases = [
            (Duration::from_millis(200), "200ms"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_secs(80), "1m20s"),
            (Duration::from_secs(300), "5m0s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(3600), "1h0m0s"),
        ];
        for (d, want) in cases {
            assert_eq!(go_duration(d), want);
        }
    }
}
