//! Rollouts of Deployments: status as `kubectl rollout status` words it, and the
//! revision history kept in the Deployment's ReplicaSets.

use ferry_core::Object;
use ferry_runtime::controller::deployment::{HASH_LABEL, REVISION};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a Deployment's rollout stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutStatus {
    /// The rollout finished: every replica updated and available.
    pub done: bool,
    /// The rollout failed (`ProgressDeadlineExceeded`).
    pub failed: bool,
    /// kubectl's line: `Waiting for deployment "web" rollout to finish: …`.
    pub message: String,
}

fn int(v: &Value, p: &str) -> i64 {
    v.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

/// The status of a Deployment's rollout, with kubectl's wording and logic.
pub fn status(d: &Object) -> RolloutStatus {
    let v = d.value();
    let name = d.name();
    let waiting = |message: String| RolloutStatus {
        done: false,
        failed: false,
        message,
    };
    let generation = int(v, "/metadata/generation");
    let observed = int(v, "/status/observedGeneration");
    if generation > observed {
        return waiting("Waiting for deployment spec update to be observed...".into());
    }
    let progressing = v
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Progressing"))
        });
    if progressing
        .and_then(|c| c.get("reason"))
        .and_then(Value::as_str)
        == Some("ProgressDeadlineExceeded")
    {
        return RolloutStatus {
            done: false,
            failed: true,
            message: format!("deployment {name:?} exceeded its progress deadline"),
        };
    }
    let want = v
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let updated = int(v, "/status/updatedReplicas");
    let replicas = int(v, "/status/replicas");
    let available = int(v, "/status/availableReplicas");
    if updated < want {
        return waiting(format!(
            "Waiting for deployment {name:?} rollout to finish: {updated} out of {want} new replicas have been updated..."
        ));
    }
    if replicas > updated {
        return waiting(format!(
            "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...",
            replicas - updated
        ));
    }
    if available < updated {
        return waiting(format!(
            "Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available..."
        ));
    }
    RolloutStatus {
        done: true,
        failed: false,
        message: format!("deployment {name:?} successfully rolled out"),
    }
}

/// One revision of a Deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    /// `deployment.kubernetes.io/revision`.
    pub revision: i64,
    /// The ReplicaSet holding it.
    pub replica_set: String,
    /// Its pod-template hash.
    pub hash: String,
    /// The images of its containers.
    pub images: Vec<String>,
    /// `kubernetes.io/change-cause`, if set.
    pub change_cause: Option<String>,
}

/// The revision a ReplicaSet records.
pub fn revision_of(rs: &Object) -> Option<i64> {
    rs.annotation(REVISION).and_then(|r| r.trim().parse().ok())
}

/// The revisions among a Deployment's ReplicaSets, oldest first.
pub fn history(replica_sets: &[Object]) -> Vec<Revision> {
    let mut out: Vec<Revision> = replica_sets
        .iter()
        .filter_map(|rs| {
            let revision = revision_of(rs)?;
            let images = rs
                .value()
                .pointer("/spec/template/spec/containers")
                .and_then(Value::as_array)
                .map(|cs| {
                    cs.iter()
                        .filter_map(|c| c.get("image").and_then(Value::as_str))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            Some(Revision {
                revision,
                replica_set: rs.name().to_string(),
                hash: rs.label(HASH_LABEL).unwrap_or_default().to_string(),
                images,
                change_cause: rs
                    .annotation("kubernetes.io/change-cause")
                    .or_else(|| {
                        rs.value()
                            .pointer(
                                "/spec/template/metadata/annotations/kubernetes.io~1change-cause",
                            )
                            .and_then(Value::as_str)
                    })
                    .map(str::to_string),
            })
        })
        .collect();
    out.sort_by_key(|r| r.revision);
    out
}

/// The pod template of a ReplicaSet as the Deployment would carry it (without the
/// `pod-template-hash` label the controller adds).
pub fn template_of(rs: &Object) -> Value {
    let mut t = rs
        .value()
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(HASH_LABEL);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(generation: i64, status: Value) -> Object {
        Object::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "generation": generation},
            "spec": {"replicas": 2},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn status_words_each_stage_like_kubectl() {
        let s = status(&deploy(2, json!({"observedGeneration": 1})));
        assert_eq!(
            s.message,
            "Waiting for deployment spec update to be observed..."
        );
        let s = status(&deploy(
            1,
            json!({"observedGeneration": 1, "updatedReplicas": 1, "replicas": 2}),
        ));
        assert_eq!(
            s.message,
            "Waiting for deployment \"web\" rollout to finish: 1 out of 2 new replicas have been updated..."
        );
        let s = status(&deploy(
            1,
            json!({"observedGeneration": 1, "updatedReplicas": 2, "replicas": 3}),
        ));
        assert!(
            s.message
                .ends_with("1 old replicas are pending termination..."),
            "{}",
            s.message
        );
        let s = status(&deploy(
            1,
            json!({"observedGeneration": 1, "updatedReplicas": 2, "replicas": 2, "availableReplicas": 1}),
        ));
        assert!(
            s.message
                .ends_with("1 of 2 updated replicas are available..."),
            "{}",
            s.message
        );
        assert!(!s.done);
        let s = status(&deploy(
            1,
            json!({"observedGeneration": 1, "updatedReplicas": 2, "replicas": 2, "availableReplicas": 2}),
        ));
        assert!(s.done && !s.failed);
        assert_eq!(s.message, "deployment \"web\" successfully rolled out");
    }

    #[test]
    fn a_deadline_exceeded_fails() {
        let s = status(&deploy(
            1,
            json!({"observedGeneration": 1, "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}),
        ));
        assert!(s.failed && !s.done);
    }

    #[test]
    fn history_orders_revisions_and_templates_lose_the_hash() {
        let rs = |rev: &str, hash: &str, image: &str| {
            Object::from_value(json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": format!("web-{hash}"), "labels": {HASH_LABEL: hash}, "annotations": {REVISION: rev}},
                "spec": {"template": {"metadata": {"labels": {"app": "web", HASH_LABEL: hash}},
                          "spec": {"containers": [{"name": "web", "image": image}]}}}
            }))
            .unwrap()
        };
        let h = history(&[rs("2", "b", "web:2"), rs("1", "a", "web:1")]);
        assert_eq!(h.iter().map(|r| r.revision).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(h[1].images, vec!["web:2"]);
        let t = template_of(&rs("1", "a", "web:1"));
        assert_eq!(t["metadata"]["labels"], json!({"app": "web"}));
    }
}
