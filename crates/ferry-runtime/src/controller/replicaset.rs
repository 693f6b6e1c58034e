//! ReplicaSet controller: keeps `spec.replicas` pods from the template, and reports
//! how many are ready and available.

use std::time::SystemTime;

use ferry_core::Object;
use serde_json::{Value, json};

use super::{MANAGER, children, int_at, owner_ref, pod_available, pod_ready};
use crate::Result;
use crate::cluster::{Cluster, Propagation};

/// Pods that count toward a ReplicaSet: not terminating and not finished.
pub fn live_pods(cluster: &Cluster, rs: &Object) -> Vec<Object> {
    children(cluster, rs, "Pod")
        .into_iter()
        .filter(|p| !p.is_being_deleted())
        .filter(|p| {
            !matches!(
                p.value().pointer("/status/phase").and_then(Value::as_str),
                Some("Succeeded" | "Failed")
            )
        })
        .collect()
}

/// A pod built from a template, owned by `owner`.
pub fn pod_from_template(
    owner: &Object,
    template: &Value,
    extra_labels: &[(&str, &str)],
) -> Result<Object> {
    let mut meta = template
        .get("metadata")
        .cloned()
        .unwrap_or_else(|| json!({}));
    meta["generateName"] = Value::String(format!("{}-", owner.name()));
    meta["namespace"] = Value::String(owner.namespace().to_string());
    if let Some(m) = meta.as_object_mut() {
        m.remove("name");
        m.remove("creationTimestamp");
    }
    for (k, v) in extra_labels {
        meta["labels"][*k] = Value::String((*v).to_string());
    }
    meta["ownerReferences"] = json!([owner_ref(owner)]);
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
    });
    Object::from_value(pod).map_err(|e| crate::Error::Invalid(e.to_string()))
}

/// One reconcile pass.
pub fn reconcile(cluster: &Cluster, rs: &Object, now: SystemTime) -> Result<()> {
    if rs.is_being_deleted() {
        return Ok(());
    }
    let v = rs.value();
    let want = int_at(v, "/spec/replicas", 1).max(0) as usize;
    let min_ready = int_at(v, "/spec/minReadySeconds", 0);
    let mut pods = live_pods(cluster, rs);
    if pods.len() < want {
        let template = v
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        for _ in pods.len()..want {
            let pod = pod_from_template(rs, &template, &[])?;
            pods.push(cluster.create(&pod, MANAGER)?);
        }
    } else if pods.len() > want {
        // Remove the least useful first: not ready, then the newest.
        pods.sort_by(|a, b| {
            pod_ready(a).cmp(&pod_ready(b)).then_with(|| {
                let ts = |p: &Object| {
                    p.value()
                        .pointer("/metadata/creationTimestamp")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                ts(b).cmp(&ts(a))
            })
        });
        let excess = pods.len() - want;
        for pod in pods.drain(..excess) {
            cluster.delete(&pod.key(), Propagation::Background)?;
        }
    }
    let ready = pods.iter().filter(|p| pod_ready(p)).count();
    let available = pods
        .iter()
        .filter(|p| pod_available(p, min_ready, now))
        .count();
    let status = json!({
        "replicas": pods.len(),
        "fullyLabeledReplicas": pods.len(),
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": int_at(v, "/metadata/generation", 1),
    });
    cluster.update_status(&rs.key(), status)?;
    Ok(())
}
