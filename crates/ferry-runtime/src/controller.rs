//! Controllers: Deployment → ReplicaSet → Pod, and Job → Pod, reconciled level-triggered
//! on every change of the store and on a timer (for time-based conditions such as
//! `minReadySeconds` and `progressDeadlineSeconds`).

pub mod deployment;
pub mod job;
pub mod replicaset;

use std::sync::Arc;
use std::time::Duration;

use ferry_core::Object;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;

/// Manager name controllers write with.
pub const MANAGER: &str = "ferry-controller";

/// Runs every controller until `shutdown` is cancelled.
pub async fn run(cluster: Arc<Cluster>, shutdown: CancellationToken) {
    let mut changed = cluster.changed();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        reconcile_all(&cluster);
        tokio::select! {
            _ = changed.changed() => {
                // Let a burst of writes settle into one pass.
                tokio::time::sleep(Duration::from_millis(5)).await;
                changed.borrow_and_update();
            }
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// One pass of every controller over every object.
pub fn reconcile_all(cluster: &Cluster) {
    let now = std::time::SystemTime::now();
    for d in cluster.list(Some("Deployment"), None) {
        if let Err(e) = deployment::reconcile(cluster, &d, now) {
            tracing::warn!("deployment {}: {e}", d.key());
        }
    }
    for rs in cluster.list(Some("ReplicaSet"), None) {
        if let Err(e) = replicaset::reconcile(cluster, &rs, now) {
            tracing::warn!("replicaset {}: {e}", rs.key());
        }
    }
    for j in cluster.list(Some("Job"), None) {
        if let Err(e) = job::reconcile(cluster, &j, now) {
            tracing::warn!("job {}: {e}", j.key());
        }
    }
}

/// The object's `metadata.uid`.
pub fn uid(obj: &Object) -> &str {
    obj.value()
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// An owner reference to `owner` marking it as the controller.
pub fn owner_ref(owner: &Object) -> Value {
    json!({
        "apiVersion": owner.api_version(),
        "kind": owner.kind(),
        "name": owner.name(),
        "uid": uid(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// Whether `obj` is controlled by the object with uid `owner_uid`.
pub fn owned_by(obj: &Object, owner_uid: &str) -> bool {
    obj.value()
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r.get("uid").and_then(Value::as_str) == Some(owner_uid))
        })
}

/// Objects of `kind` in `owner`'s namespace controlled by it.
pub fn children(cluster: &Cluster, owner: &Object, kind: &str) -> Vec<Object> {
    let owner_uid = uid(owner);
    cluster
        .list(Some(kind), Some(owner.namespace()))
        .into_iter()
        .filter(|o| owned_by(o, owner_uid))
        .collect()
}

/// An integer field, with a default.
pub fn int_at(v: &Value, pointer: &str, default: i64) -> i64 {
    v.pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or(default)
}

/// Whether a pod's `Ready` condition is True.
pub fn pod_ready(pod: &Object) -> bool {
    condition(pod.value(), "Ready")
        .is_some_and(|c| c.get("status").and_then(Value::as_str) == Some("True"))
}

/// Whether a pod has been Ready for at least `min_ready` seconds at `now`.
pub fn pod_available(pod: &Object, min_ready: i64, now: std::time::SystemTime) -> bool {
    if !pod_ready(pod) || pod.is_being_deleted() {
        return false;
    }
    if min_ready <= 0 {
        return true;
    }
    let since = condition(pod.value(), "Ready")
        .and_then(|c| c.get("lastTransitionTime"))
        .and_then(Value::as_str)
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok());
    match since {
        Some(t) => now
            .duration_since(t)
            .map(|d| d.as_secs() as i64 >= min_ready)
            .unwrap_or(false),
        None => false,
    }
}

/// A status condition by type.
pub fn condition<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
        })
}

/// Builds a condition, keeping `lastTransitionTime` from `previous` when the status did not change.
pub fn make_condition(
    previous: Option<&Value>,
    kind: &str,
    status: bool,
    reason: &str,
    message: &str,
    now: &str,
) -> Value {
    let status_s = if status { "True" } else { "False" };
    let transition = previous
        .filter(|p| p.get("status").and_then(Value::as_str) == Some(status_s))
        .and_then(|p| p.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| Value::String(now.to_string()));
    let update = previous
        .filter(|p| {
            p.get("status").and_then(Value::as_str) == Some(status_s)
                && p.get("reason").and_then(Value::as_str) == Some(reason)
                && p.get("message").and_then(Value::as_str) == Some(message)
        })
        .and_then(|p| p.get("lastUpdateTime").cloned())
        .unwrap_or_else(|| Value::String(now.to_string()));
    json!({
        "type": kind,
        "status": status_s,
        "lastUpdateTime": update,
        "lastTransitionTime": transition,
        "reason": reason,
        "message": message,
    })
}

/// Whether `labels` match a `LabelSelector` (`matchLabels` and `matchExpressions`).
pub fn selector_matches(selector: &Value, labels: Option<&serde_json::Map<String, Value>>) -> bool {
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    if let Some(ml) = selector.get("matchLabels").and_then(Value::as_object)
        && ml.iter().any(|(k, v)| get(k) != v.as_str())
    {
        return false;
    }
    if let Some(exprs) = selector.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let ok = match e
                .get("operator")
                .and_then(Value::as_str)
                .unwrap_or_default()
            {
                "In" => get(key).is_some_and(|v| values.contains(&v)),
                "NotIn" => get(key).is_none_or(|v| !values.contains(&v)),
                "Exists" => get(key).is_some(),
                "DoesNotExist" => get(key).is_none(),
                _ => false,
            };
            if !ok {
                return false;
            }
        }
    }
    true
}
