//! A pod's container as a real container: the `ferry_container::ContainerSpec` built
//! from the pod (argv, env, user, volumes, limits), container ids, and the
//! annotations that let a restarted daemon tell whose a container is.

use std::collections::BTreeMap;

use ferry_container::{ContainerSpec, HostEntry, Resources, UserSpec};
use serde_json::Value;

use super::command::RunAs;
use super::status::parse_quantity;

/// Annotation: the pod's uid.
pub(crate) const POD_UID_ANNOTATION: &str = "ferry.dev/pod-uid";
/// Annotation: the container's process id (`NS/POD/CONTAINER`), as the store's
/// processes table names it.
pub(crate) const PROCESS_ANNOTATION: &str = "ferry.dev/process";

/// The runc id of a pod's container: readable names plus the start of the pod's uid
/// (cgroup paths are machine-wide, so two homes' `default/web` must differ).
pub(crate) fn container_id(ns: &str, pod: &str, container: &str, uid: &str) -> String {
    let short: String = uid
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(12)
        .collect();
    let id = format!("{ns}_{pod}_{container}_{short}");
    if id.len() <= 200 {
        id
    } else {
        let pod: String = pod
            .chars()
            .take(200 - 3 - ns.len() - container.len() - short.len())
            .collect();
        format!("{ns}_{pod}_{container}_{short}")
    }
}

/// The UTS hostname of a pod: its name, cut to 63 characters as Kubernetes does.
pub(crate) fn hostname(pod: &str) -> String {
    let h: String = pod.chars().take(63).collect();
    h.trim_end_matches(['-', '.']).to_string()
}

fn millis(v: Option<&Value>) -> Option<u64> {
    let q = match v? {
        Value::String(s) => parse_quantity(s)?,
        Value::Number(n) => n.as_f64()?,
        _ => return None,
    };
    Some((q * 1000.0).round() as u64).filter(|m| *m > 0)
}

fn bytes(v: Option<&Value>) -> Option<u64> {
    let q = match v? {
        Value::String(s) => parse_quantity(s)?,
        Value::Number(n) => n.as_f64()?,
        _ => return None,
    };
    Some(q.round() as u64).filter(|b| *b > 0)
}

/// `resources.limits.memory/cpu` and `requests.cpu`.
pub(crate) fn resources(container: &Value) -> Resources {
    let r = container.get("resources");
    let limits = r.and_then(|r| r.get("limits"));
    let requests = r.and_then(|r| r.get("requests"));
    Resources {
        memory_limit: bytes(limits.and_then(|l| l.get("memory"))),
        cpu_limit_millis: millis(limits.and_then(|l| l.get("cpu"))),
        cpu_request_millis: millis(requests.and_then(|l| l.get("cpu"))),
        pids_limit: None,
    }
}

/// Everything of a container's spec that is not argv, env, cwd and mounts.
pub(crate) struct Parts<'a> {
    pub id: String,
    pub pod_spec: &'a Value,
    pub container: &'a Value,
    pub pod_name: &'a str,
    pub pod_uid: &'a str,
    pub process_id: String,
    pub image_user: Option<String>,
    pub run_as: RunAs,
}

/// Builds the spec; `image_rootfs`, args, env, cwd and mounts are filled in by the
/// caller.
pub(crate) fn spec(p: Parts<'_>) -> ContainerSpec {
    let csc = p.container.get("securityContext");
    let psc = p.pod_spec.get("securityContext");
    let supplemental = psc
        .and_then(|s| s.get("supplementalGroups"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|g| g.as_u64().and_then(|g| u32::try_from(g).ok()))
                .collect()
        })
        .unwrap_or_default();
    let extra_hosts = p
        .pod_spec
        .get("hostAliases")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|a| HostEntry {
            ip: a
                .get("ip")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            names: a
                .get("hostnames")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
        })
        .filter(|h| !h.ip.is_empty() && !h.names.is_empty())
        .collect();
    let mut annotations = BTreeMap::new();
    annotations.insert(POD_UID_ANNOTATION.to_string(), p.pod_uid.to_string());
    annotations.insert(PROCESS_ANNOTATION.to_string(), p.process_id);
    ContainerSpec {
        id: p.id,
        hostname: hostname(p.pod_name),
        user: UserSpec {
            user: p.image_user.filter(|u| !u.is_empty()),
            uid: p.run_as.uid,
            gid: p.run_as.gid,
            supplemental_groups: supplemental,
        },
        extra_hosts,
        read_only_rootfs: csc
            .and_then(|s| s.get("readOnlyRootFilesystem"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
        resources: resources(p.container),
        annotations,
        ..ContainerSpec::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn limits_and_requests_in_kubernetes_units() {
        let c = json!({"resources": {"limits": {"memory": "32Mi", "cpu": "500m"}, "requests": {"cpu": 1}}});
        let r = resources(&c);
        assert_eq!(r.memory_limit, Some(32 * 1024 * 1024));
        assert_eq!(r.cpu_limit_millis, Some(500));
        assert_eq!(r.cpu_request_millis, Some(1000));
        assert_eq!(resources(&json!({})), Resources::default());
    }

    #[test]
    fn ids_are_bounded_and_hostnames_cut() {
        let uid = "0123abcd-4567-89ef-0123-456789abcdef";
        assert_eq!(
            container_id("default", "web", "app", uid),
            "default_web_app_0123abcd4567"
        );
        let long = "p".repeat(253);
        assert!(container_id("default", &long, "app", uid).len() <= 200);
        assert_eq!(hostname(&format!("{}-x", "a".repeat(62))), "a".repeat(62));
    }
}
