//! Health assessment of live objects, ported from Argo CD's gitops-engine
//! `pkg/health` and the Argo Rollouts / CronJob health scripts Argo CD bundles.
//!
//! [`assess`] judges one object from its own status, the way Argo CD does.
//! [`assess_in`] and [`assess_all`] go one step further: a workload (Deployment,
//! ReplicaSet, StatefulSet, DaemonSet, Rollout) whose current pods cannot start
//! (`ImagePullBackOff`, `CrashLoopBackOff`, `CreateContainerConfigError`, …) is
//! Degraded at once, naming the pod and the reason, instead of Progressing until its
//! progress deadline runs out.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Object;
use crate::object::split_api_version;

mod apiservice;
mod apps;
mod argo;
mod batch;
mod fields;
mod hpa;
mod network;
mod pod;
mod pvc;
mod related;

use related::Related;

/// How healthy an object is. The order is Argo CD's, from best to worst, so the worst
/// of several statuses is their maximum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum HealthStatus {
    /// The object is fully healthy.
    Healthy,
    /// The object is paused or suspended on purpose (a paused Deployment or Rollout,
    /// a suspended Job or CronJob).
    Suspended,
    /// Not healthy yet, but still on its way there.
    Progressing,
    /// The object does not exist in the target.
    Missing,
    /// The object failed, or cannot become healthy without a change.
    Degraded,
    /// Health could not be assessed.
    Unknown,
}

impl HealthStatus {
    /// Every status, from best to worst.
    pub const ALL: [HealthStatus; 6] = [
        HealthStatus::Healthy,
        HealthStatus::Suspended,
        HealthStatus::Progressing,
        HealthStatus::Missing,
        HealthStatus::Degraded,
        HealthStatus::Unknown,
    ];

    /// The status as Argo CD spells it: `"Healthy"`, `"Degraded"`, ….
    pub fn as_str(&self) -> &'static str {
        match self {
            HealthStatus::Healthy => "Healthy",
            HealthStatus::Suspended => "Suspended",
            HealthStatus::Progressing => "Progressing",
            HealthStatus::Missing => "Missing",
            HealthStatus::Degraded => "Degraded",
            HealthStatus::Unknown => "Unknown",
        }
    }

    /// Reads a status spelled as Argo CD spells it (exact case).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|h| h.as_str() == s)
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One object's health: its status and a human-readable reason (empty when there is
/// nothing to say).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Health {
    /// The verdict.
    pub status: HealthStatus,
    /// Why, in the words Argo CD (or the Kubernetes controller) uses.
    pub message: String,
}

impl Health {
    /// A health with the given status and message.
    pub fn new(status: HealthStatus, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

/// The finalizer Argo CD puts on hooks it is still watching; such objects keep their
/// own health while being deleted.
const HOOK_FINALIZER: &str = "argocd.argoproj.io/hook-finalizer";

/// The kinds ferry can judge, by API group and kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    Pod,
    Service,
    PersistentVolumeClaim,
    Ingress,
    Job,
    CronJob,
    HorizontalPodAutoscaler,
    ApiService,
    Rollout,
    Workflow,
}

impl Check {
    fn of(obj: &Object) -> Option<Self> {
        Some(match (obj.group(), obj.kind()) {
            ("apps" | "extensions", "Deployment") => Check::Deployment,
            ("apps" | "extensions", "ReplicaSet") => Check::ReplicaSet,
            ("apps", "StatefulSet") => Check::StatefulSet,
            ("apps" | "extensions", "DaemonSet") => Check::DaemonSet,
            ("", "Pod") => Check::Pod,
            ("", "Service") => Check::Service,
            ("", "PersistentVolumeClaim") => Check::PersistentVolumeClaim,
            ("networking.k8s.io" | "extensions", "Ingress") => Check::Ingress,
            ("batch", "Job") => Check::Job,
            ("batch", "CronJob") => Check::CronJob,
            ("autoscaling", "HorizontalPodAutoscaler") => Check::HorizontalPodAutoscaler,
            ("apiregistration.k8s.io", "APIService") => Check::ApiService,
            ("argoproj.io", "Rollout") => Check::Rollout,
            ("argoproj.io", "Workflow") => Check::Workflow,
            _ => return None,
        })
    }

    /// Whether this kind owns pods whose failures it should carry.
    fn has_pods(self) -> bool {
        matches!(
            self,
            Check::Deployment
                | Check::ReplicaSet
                | Check::StatefulSet
                | Check::DaemonSet
                | Check::Rollout
        )
    }

    fn run(self, obj: &Object) -> Health {
        let v = obj.value();
        match self {
            Check::Deployment => apps::deployment(v),
            Check::ReplicaSet => apps::replica_set(v),
            Check::StatefulSet => apps::stateful_set(v),
            Check::DaemonSet => apps::daemon_set(v),
            Check::Pod => pod::pod(v),
            Check::Service => network::service(v),
            Check::PersistentVolumeClaim => pvc::persistent_volume_claim(v),
            Check::Ingress => network::ingress(v),
            Check::Job => batch::job(v),
            Check::CronJob => batch::cron_job(v),
            Check::HorizontalPodAutoscaler => {
                hpa::horizontal_pod_autoscaler(v, split_api_version(obj.api_version()).1)
            }
            Check::ApiService => apiservice::api_service(v),
            Check::Rollout => argo::rollout(v),
            Check::Workflow => argo::workflow(v),
        }
    }
}

/// `Progressing` for an object being deleted, unless it is a hook Argo still watches.
fn pending_deletion(obj: &Object) -> Option<Health> {
    if !obj.is_being_deleted() {
        return None;
    }
    let finalizers: Vec<&str> = obj
        .metadata()
        .and_then(|m| m.get("finalizers"))
        .and_then(|f| f.as_array())
        .map(|f| f.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    if finalizers.contains(&HOOK_FINALIZER) {
        return None;
    }
    let message = if finalizers.is_empty() {
        "Pending deletion".to_string()
    } else {
        format!("Pending deletion (finalizers: {})", finalizers.join(", "))
    };
    Some(Health::new(HealthStatus::Progressing, message))
}

fn assess_with(obj: &Object, related: Option<&Related<'_>>) -> Option<Health> {
    if let Some(h) = pending_deletion(obj) {
        return Some(h);
    }
    let check = Check::of(obj)?;
    let health = check.run(obj);
    let Some(related) = related.filter(|_| check.has_pods()) else {
        return Some(health);
    };
    let Some(problem) = related.pod_problem(obj) else {
        return Some(health);
    };
    let text = problem.describe();
    Some(if health.status >= HealthStatus::Degraded {
        let message = if health.message.is_empty() {
            text
        } else {
            format!("{}; {text}", health.message)
        };
        Health::new(health.status, message)
    } else {
        Health::new(HealthStatus::Degraded, text)
    })
}

/// The health of one object, judged from its own status as Argo CD does.
///
/// `None` when ferry has no health check for the object's kind (a ConfigMap, a CRD's
/// custom resource, …): such objects do not count in the aggregate. An object with
/// `metadata.deletionTimestamp` is `Progressing` ("Pending deletion") whatever its
/// kind.
pub fn assess(obj: &Object) -> Option<Health> {
    assess_with(obj, None)
}

/// Like [`assess`], but a Deployment, ReplicaSet, StatefulSet, DaemonSet or Rollout
/// also looks for its pods among `related` (through ReplicaSet owner references, or its
/// label selector) and is Degraded at once when one of its current pods has a container
/// waiting for a failing reason, e.g.
/// `ImagePullBackOff: Back-off pulling image "web:nope" (pod web-5d9c7-abcde)`.
///
/// Only current pods count: for a Deployment those of its newest ReplicaSet when its
/// ReplicaSets are in `related` (otherwise every pod its selector matches in its
/// namespace); for a Rollout those labelled with its `status.currentPodHash`; a
/// ReplicaSet scaled to zero or replaced by a newer one carries none. Pods being
/// deleted never count. The worst reason wins (configuration errors, then image pulls,
/// then crash loops), and other failing pods are counted (`… and 2 more)`).
pub fn assess_in(obj: &Object, related: &[Object]) -> Option<Health> {
    assess_with(obj, Some(&Related::new(related)))
}

/// Assesses every object in the context of all the others (see [`assess_in`]); the
/// result is in input order.
pub fn assess_all(objects: &[Object]) -> Vec<Option<Health>> {
    let related = Related::new(objects);
    objects
        .iter()
        .map(|o| assess_with(o, Some(&related)))
        .collect()
}

/// The worst status among the assessed objects, `Healthy` when there are none.
pub fn aggregate<'a>(healths: impl IntoIterator<Item = Option<&'a Health>>) -> HealthStatus {
    healths
        .into_iter()
        .flatten()
        .map(|h| h.status)
        .max()
        .unwrap_or(HealthStatus::Healthy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: serde_json::Value) -> Object {
        Object::from_value(v).expect("valid object")
    }

    #[test]
    fn order_is_argo_severity() {
        use HealthStatus::*;
        let mut shuffled = vec![Unknown, Healthy, Degraded, Progressing, Missing, Suspended];
        shuffled.sort();
        assert_eq!(shuffled, HealthStatus::ALL.to_vec());
        assert!(Degraded > Missing && Missing > Progressing && Progressing > Suspended);
        assert!(Unknown > Degraded && Suspended > Healthy);
    }

    #[test]
    fn names_round_trip() {
        for h in HealthStatus::ALL {
            assert_eq!(HealthStatus::parse(h.as_str()), Some(h));
            assert_eq!(h.to_string(), h.as_str());
            assert_eq!(
                serde_json::to_value(h).expect("serializes"),
                json!(h.as_str())
            );
        }
        assert_eq!(HealthStatus::parse("degraded"), None);
    }

    #[test]
    fn aggregate_takes_the_worst_and_ignores_unjudged() {
        let healthy = Health::new(HealthStatus::Healthy, "");
        let suspended = Health::new(HealthStatus::Suspended, "paused");
        let missing = Health::new(HealthStatus::Missing, "");
        assert_eq!(
            aggregate(Vec::<Option<&Health>>::new()),
            HealthStatus::Healthy
        );
        assert_eq!(aggregate([None, None]), HealthStatus::Healthy);
        assert_eq!(
            aggregate([Some(&healthy), None, Some(&suspended)]),
            HealthStatus::Suspended
        );
        assert_eq!(
            aggregate([Some(&missing), Some(&suspended), Some(&healthy)]),
            HealthStatus::Missing
        );
    }

    #[test]
    fn deletion_wins_over_kind_but_not_for_watched_hooks() {
        let deleting = obj(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "deletionTimestamp": "2024-01-01T00:00:00Z",
                         "finalizers": ["example.com/cleanup"]}
        }));
        let h = assess(&deleting).expect("judged");
        assert_eq!(h.status, HealthStatus::Progressing);
        assert_eq!(
            h.message,
            "Pending deletion (finalizers: example.com/cleanup)"
        );

        let hook = obj(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "migrate", "deletionTimestamp": "2024-01-01T00:00:00Z",
                         "finalizers": [HOOK_FINALIZER]},
            "status": {"conditions": [{"type": "Complete", "status": "True"}]}
        }));
        assert_eq!(assess(&hook).map(|h| h.status), Some(HealthStatus::Healthy));
    }

    #[test]
    fn unknown_kinds_and_groups_are_not_judged() {
        let cm = obj(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}));
        assert_eq!(assess(&cm), None);
        let foreign = obj(json!({
            "apiVersion": "example.com/v1", "kind": "Deployment", "metadata": {"name": "d"}
        }));
        assert_eq!(assess(&foreign), None);
    }

    #[test]
    fn failing_reason_rule() {
        for r in [
            "ErrImagePull",
            "ImagePullBackOff",
            "CrashLoopBackOff",
            "CreateContainerConfigError",
            "CreateContainerError",
            "RunContainerError",
            "InvalidImageName",
            "ErrImageNeverPull",
        ] {
            assert!(pod::is_failing_reason(r), "{r}");
        }
        for r in ["ContainerCreating", "PodInitializing", ""] {
            assert!(!pod::is_failing_reason(r), "{r}");
        }
    }
}
