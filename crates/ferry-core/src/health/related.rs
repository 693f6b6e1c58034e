//! Finding a workload's pods among other live objects, so that a pod that cannot start
//! fails its Deployment at once instead of after the progress deadline.

use serde_json::Value;

use super::fields::{array_at, at, int_at, str_at, string_at};
use super::pod::{WaitingProblem, waiting_problems};
use crate::Object;

/// The label the Deployment controller puts on a ReplicaSet and its pods.
const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// The label the Argo Rollouts controller puts on a ReplicaSet and its pods.
const ROLLOUT_HASH: &str = "rollouts-pod-template-hash";
const DEPLOYMENT_REVISION: &str = "deployment.kubernetes.io/revision";
const ROLLOUT_REVISION: &str = "rollout.argoproj.io/revision";

/// The pods and ReplicaSets among a set of objects, indexed once.
pub(crate) struct Related<'a> {
    pods: Vec<&'a Object>,
    replica_sets: Vec<&'a Object>,
}

/// The worst failing container among a workload's pods.
pub(crate) struct PodProblem<'a> {
    problem: WaitingProblem<'a>,
    pod: &'a str,
    others: usize,
}

impl PodProblem<'_> {
    /// `REASON: MESSAGE (pod NAME)`, noting how many other pods fail too.
    pub(crate) fn describe(&self) -> String {
        let mut out = format!("{} (pod {}", self.problem.describe(), self.pod);
        if self.others > 0 {
            out.push_str(&format!(" and {} more", self.others));
        }
        out.push(')');
        out
    }
}

impl<'a> Related<'a> {
    /// Indexes the pods and ReplicaSets of `objects`.
    pub(crate) fn new(objects: &'a [Object]) -> Self {
        let mut pods = Vec::new();
        let mut replica_sets = Vec::new();
        for o in objects {
            match (o.group(), o.kind()) {
                ("", "Pod") => pods.push(o),
                ("apps" | "extensions", "ReplicaSet") => replica_sets.push(o),
                _ => {}
            }
        }
        Self { pods, replica_sets }
    }

    /// The worst waiting problem among the current pods of `owner`, if any pod has one.
    pub(crate) fn pod_problem(&self, owner: &Object) -> Option<PodProblem<'a>> {
        let pods = self.pods_of(owner);
        let mut worst: Option<(WaitingProblem<'a>, &'a Object)> = None;
        let mut failing = 0;
        for pod in pods {
            let Some(p) = waiting_problems(pod.value())
                .into_iter()
                .min_by_key(WaitingProblem::rank)
            else {
                continue;
            };
            failing += 1;
            if worst.is_none_or(|(w, _)| p.rank() < w.rank()) {
                worst = Some((p, pod));
            }
        }
        worst.map(|(problem, pod)| PodProblem {
            problem,
            pod: pod.name(),
            others: failing - 1,
        })
    }

    /// The pods that make up the current version of `owner`, in input order.
    fn pods_of(&self, owner: &Object) -> Vec<&'a Object> {
        let v = owner.value();
        let live = self
            .pods
            .iter()
            .copied()
            .filter(|p| p.namespace() == owner.namespace() && !p.is_being_deleted());
        match owner.kind() {
            "Deployment" => {
                let newest = self
                    .replica_sets
                    .iter()
                    .copied()
                    .filter(|rs| owned_by(rs, owner))
                    .max_by_key(|rs| revision_key(rs, DEPLOYMENT_REVISION));
                match newest {
                    // Only the newest ReplicaSet's pods: an old one's pods are on their
                    // way out and may fail as they go.
                    Some(rs) => {
                        let hash = rs.label(POD_TEMPLATE_HASH);
                        live.filter(|p| {
                            owned_by(p, rs)
                                || (hash.is_some()
                                    && p.label(POD_TEMPLATE_HASH) == hash
                                    && selects(v, p))
                        })
                        .collect()
                    }
                    None => live.filter(|p| selects(v, p)).collect(),
                }
            }
            "Rollout" => {
                let owned: Vec<&Object> = self
                    .replica_sets
                    .iter()
                    .copied()
                    .filter(|rs| owned_by(rs, owner))
                    .collect();
                let hash = str_at(v, &["status", "currentPodHash"]).or_else(|| {
                    owned
                        .iter()
                        .max_by_key(|rs| revision_key(rs, ROLLOUT_REVISION))
                        .and_then(|rs| rs.label(ROLLOUT_HASH))
                });
                match hash {
                    Some(hash) => live
                        .filter(|p| {
                            p.label(ROLLOUT_HASH) == Some(hash)
                                && (selects(v, p) || owned.iter().any(|rs| owned_by(p, rs)))
                        })
                        .collect(),
                    None => live.filter(|p| selects(v, p)).collect(),
                }
            }
            // A ReplicaSet scaled to zero, or one its owner has replaced, is draining:
            // its pods may fail on their way out without failing anything.
            "ReplicaSet"
                if int_at(v, &["spec", "replicas"]) == Some(0) || self.superseded(owner) =>
            {
                Vec::new()
            }
            "ReplicaSet" | "StatefulSet" | "DaemonSet" => live
                .filter(|p| owned_by(p, owner) || selects(v, p))
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl Related<'_> {
    /// Whether another ReplicaSet of the same controller has a newer revision.
    fn superseded(&self, rs: &Object) -> bool {
        let Some(owner) = controller_of(rs) else {
            return false;
        };
        let annotation = match owner.kind {
            "Deployment" => DEPLOYMENT_REVISION,
            "Rollout" => ROLLOUT_REVISION,
            _ => return false,
        };
        let mine = revision_key(rs, annotation);
        self.replica_sets.iter().any(|other| {
            other.namespace() == rs.namespace()
                && controller_of(other).is_some_and(|o| o.same_as(&owner))
                && revision_key(other, annotation) > mine
        })
    }
}

/// The controller named in an object's owner references.
struct OwnerRef<'o> {
    kind: &'o str,
    name: &'o str,
    uid: Option<&'o str>,
}

impl OwnerRef<'_> {
    fn same_as(&self, other: &OwnerRef<'_>) -> bool {
        self.kind == other.kind
            && self.name == other.name
            && match (self.uid, other.uid) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

fn controller_of(obj: &Object) -> Option<OwnerRef<'_>> {
    array_at(obj.value(), &["metadata", "ownerReferences"])
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .map(|r| OwnerRef {
            kind: string_at(r, &["kind"]),
            name: string_at(r, &["name"]),
            uid: str_at(r, &["uid"]),
        })
}

/// Orders ReplicaSets by revision annotation, then creation time, then name.
fn revision_key<'o>(rs: &'o Object, annotation: &str) -> (i64, &'o str, &'o str) {
    let revision = rs
        .annotation(annotation)
        .and_then(|r| r.trim().parse().ok())
        .unwrap_or(0);
    let created = string_at(rs.value(), &["metadata", "creationTimestamp"]);
    (revision, created, rs.name())
}

/// Whether `child` lists `owner` among its owner references (same namespace, same kind
/// and name, and the same uid when both have one).
fn owned_by(child: &Object, owner: &Object) -> bool {
    if child.namespace() != owner.namespace() {
        return false;
    }
    let owner_uid = str_at(owner.value(), &["metadata", "uid"]);
    array_at(child.value(), &["metadata", "ownerReferences"])
        .iter()
        .any(|r| {
            string_at(r, &["kind"]) == owner.kind()
                && string_at(r, &["name"]) == owner.name()
                && match (str_at(r, &["uid"]), owner_uid) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                }
        })
}

/// Whether `owner`'s `spec.selector` selects `pod`. An absent or empty selector selects
/// nothing here: ferry will not pin every pod of a namespace on one workload.
fn selects(owner: &Value, pod: &Object) -> bool {
    let Some(selector) = at(owner, &["spec", "selector"]) else {
        return false;
    };
    let labels = at(pod.value(), &["metadata", "labels"]).and_then(Value::as_object);
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let match_labels = at(selector, &["matchLabels"]).and_then(Value::as_object);
    let expressions = array_at(selector, &["matchExpressions"]);
    if match_labels.is_none_or(|m| m.is_empty()) && expressions.is_empty() {
        return false;
    }
    let labels_ok = match_labels.is_none_or(|m| {
        m.iter()
            .all(|(k, want)| want.as_str().is_some_and(|w| label(k) == Some(w)))
    });
    labels_ok
        && expressions.iter().all(|e| {
            let key = string_at(e, &["key"]);
            let values: Vec<&str> = array_at(e, &["values"])
                .iter()
                .filter_map(Value::as_str)
                .collect();
            match string_at(e, &["operator"]) {
                "In" => label(key).is_some_and(|l| values.contains(&l)),
                "NotIn" => label(key).is_none_or(|l| !values.contains(&l)),
                "Exists" => label(key).is_some(),
                "DoesNotExist" => label(key).is_none(),
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(labels: Value) -> Object {
        Object::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "labels": labels}
        }))
        .expect("valid pod")
    }

    fn owner(selector: Value) -> Value {
        json!({"spec": {"selector": selector}})
    }

    #[test]
    fn selector_semantics() {
        let p = pod(json!({"app": "web", "tier": "front"}));
        assert!(selects(&owner(json!({"matchLabels": {"app": "web"}})), &p));
        assert!(!selects(&owner(json!({"matchLabels": {"app": "db"}})), &p));
        assert!(!selects(&owner(json!({})), &p), "empty selects nothing");
        assert!(!selects(&json!({"spec": {}}), &p), "absent selects nothing");
        let expr = |op: &str, values: Value| {
            owner(json!({"matchExpressions": [{"key": "tier", "operator": op, "values": values}]}))
        };
        assert!(selects(&expr("In", json!(["front", "back"])), &p));
        assert!(!selects(&expr("In", json!(["back"])), &p));
        assert!(selects(&expr("NotIn", json!(["back"])), &p));
        assert!(!selects(&expr("NotIn", json!(["front"])), &p));
        assert!(selects(&expr("Exists", json!([])), &p));
        assert!(!selects(&expr("DoesNotExist", json!([])), &p));
        assert!(!selects(&expr("Gt", json!(["1"])), &p), "unknown operator");
        let both = owner(json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "canary", "operator": "DoesNotExist"}]
        }));
        assert!(selects(&both, &p));
    }
}
