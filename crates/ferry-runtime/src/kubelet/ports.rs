//! Host ports: every pod gets its own host port per `containerPort`, recorded on the
//! pod as the annotation `ferry.dev/host-ports` (`{"8080": 31001}`), so replicas never
//! collide and the port survives daemon restarts. A pod that declares no port gets one
//! anyway, recorded under `"0"`, for its `PORT`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;

use ferry_core::Object;
use serde_json::Value;

/// The annotation holding host ports, on pods (by containerPort) and on Services (by
/// service port, written by the service controller).
pub const HOST_PORTS_ANNOTATION: &str = "ferry.dev/host-ports";

/// Parses a `ferry.dev/host-ports` annotation value.
pub(crate) fn parse(value: &str) -> BTreeMap<u16, u16> {
    let Ok(Value::Object(m)) = serde_json::from_str::<Value>(value) else {
        return BTreeMap::new();
    };
    m.iter()
        .filter_map(|(k, v)| {
            let port = k.trim().parse::<u16>().ok()?;
            let host = match v {
                Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
                Value::String(s) => s.trim().parse::<u16>().ok(),
                _ => None,
            }?;
            Some((port, host))
        })
        .collect()
}

/// The host ports an object's annotation records.
pub(crate) fn of(obj: &Object) -> BTreeMap<u16, u16> {
    obj.annotation(HOST_PORTS_ANNOTATION)
        .map(parse)
        .unwrap_or_default()
}

/// The annotation value for `ports`.
pub(crate) fn render(ports: &BTreeMap<u16, u16>) -> String {
    let m: serde_json::Map<String, Value> = ports
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .collect();
    Value::Object(m).to_string()
}

/// The `containerPort`s a container declares (TCP and UDP alike), in order.
pub(crate) fn container_ports(container: &Value) -> Vec<u16> {
    container
        .get("ports")
        .and_then(Value::as_array)
        .map(|ports| {
            ports
                .iter()
                .filter_map(|p| p.get("containerPort").and_then(Value::as_u64))
                .filter_map(|p| u16::try_from(p).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Every `containerPort` of a pod spec (init containers too), deduplicated, in order.
pub(crate) fn declared(spec: &Value) -> Vec<u16> {
    let mut out = Vec::new();
    for list in ["initContainers", "containers"] {
        for c in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for p in container_ports(c) {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// The host port `container_port` maps to: its own entry, else (for a pod declaring no
/// ports) the pod's `PORT`, else the port itself.
pub(crate) fn host_port_for(ports: &BTreeMap<u16, u16>, container_port: u16) -> u16 {
    if let Some(h) = ports.get(&container_port) {
        return *h;
    }
    if let Some(h) = ports.get(&0) {
        return *h;
    }
    container_port
}

/// The `PORT` of a container: the host port of its first `containerPort`, else the
/// pod's spare port, else the first host port of the pod.
pub(crate) fn port_env(ports: &BTreeMap<u16, u16>, container: &Value) -> Option<u16> {
    container_ports(container)
        .first()
        .and_then(|p| ports.get(p))
        .or_else(|| ports.get(&0))
        .or_else(|| ports.values().next())
        .copied()
}

/// Whether nothing listens on `port` (checked by binding it, on loopback and on all
/// addresses, for a moment).
pub(crate) fn is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok() && TcpListener::bind(("0.0.0.0", port)).is_ok()
}

/// Hands out host ports from a range, round-robin so that a port freed a moment ago is
/// not handed out again at once.
#[derive(Debug)]
pub(crate) struct Allocator {
    range: (u16, u16),
    next: u16,
}

impl Allocator {
    pub(crate) fn new(range: (u16, u16)) -> Self {
        let (lo, hi) = (range.0.min(range.1), range.0.max(range.1));
        Self {
            range: (lo, hi),
            next: lo,
        }
    }

    /// A free port not in `taken`, or `None` if the range is exhausted.
    pub(crate) fn allocate(&mut self, taken: &BTreeSet<u16>) -> Option<u16> {
        let (lo, hi) = self.range;
        let span = u32::from(hi - lo) + 1;
        for _ in 0..span {
            let p = self.next;
            self.next = if p >= hi { lo } else { p + 1 };
            if p != 0 && !taken.contains(&p) && is_free(p) {
                return Some(p);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn annotation_round_trips() {
        let mut m = BTreeMap::new();
        m.insert(8080, 31001);
        m.insert(9090, 31002);
        let s = render(&m);
        assert_eq!(s, r#"{"8080":31001,"9090":31002}"#);
        assert_eq!(parse(&s), m);
        assert_eq!(parse(r#"{"80": "30000", "x": 1}"#).get(&80), Some(&30000));
        assert!(parse("not json").is_empty());
    }

    #[test]
    fn port_lookup_falls_back_to_the_pods_port() {
        let mut m = BTreeMap::new();
        m.insert(0, 30005);
        assert_eq!(host_port_for(&m, 8080), 30005);
        let c = json!({"name": "a"});
        assert_eq!(port_env(&m, &c), Some(30005));
        let mut declared = BTreeMap::new();
        declared.insert(8080, 30007);
        assert_eq!(host_port_for(&declared, 8080), 30007);
        assert_eq!(host_port_for(&declared, 9999), 9999);
    }

    #[test]
    fn allocator_skips_taken_and_busy_ports() {
        let busy = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let p = busy.local_addr().unwrap().port();
        let mut a = Allocator::new((p, p.saturating_add(3)));
        let mut taken = BTreeSet::new();
        taken.insert(p.saturating_add(1));
        let got = a.allocate(&taken).unwrap();
        assert!(got != p && got != p + 1, "{got}");
    }
}
