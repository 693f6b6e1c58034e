//! `apps` workloads: Deployment, ReplicaSet, StatefulSet and DaemonSet, after
//! gitops-engine's `health_deployment.go`, `health_replicaset.go`,
//! `health_statefulset.go` and `health_daemonset.go` (themselves borrowed from
//! `kubectl rollout status`).

use serde_json::Value;

use super::fields::{bool_at, condition, int_at, string_at};
use super::{Health, HealthStatus};

fn generation(v: &Value) -> i64 {
    int_at(v, &["metadata", "generation"]).unwrap_or(0)
}

fn observed_generation(v: &Value) -> i64 {
    int_at(v, &["status", "observedGeneration"]).unwrap_or(0)
}

fn status_int(v: &Value, field: &str) -> i64 {
    int_at(v, &["status", field]).unwrap_or(0)
}

/// Health of an `apps/v1` Deployment.
pub(crate) fn deployment(v: &Value) -> Health {
    if bool_at(v, &["spec", "paused"]) {
        return Health::new(HealthStatus::Suspended, "Deployment is paused");
    }
    if generation(v) > observed_generation(v) {
        return Health::new(
            HealthStatus::Progressing,
            "Waiting for rollout to finish: observed deployment generation less than desired generation",
        );
    }
    let name = string_at(v, &["metadata", "name"]);
    let spec_replicas = int_at(v, &["spec", "replicas"]);
    let replicas = status_int(v, "replicas");
    let updated = status_int(v, "updatedReplicas");
    let available = status_int(v, "availableReplicas");
    if condition(v, "Progressing").is_some_and(|c| c.reason == "ProgressDeadlineExceeded") {
        return Health::new(
            HealthStatus::Degraded,
            format!("Deployment {name:?} exceeded its progress deadline"),
        );
    }
    if let Some(want) = spec_replicas.filter(|want| updated < *want) {
        return Health::new(
            HealthStatus::Progressing,
            format!(
                "Waiting for rollout to finish: {updated} out of {want} new replicas have been updated..."
            ),
        );
    }
    if replicas > updated {
        return Health::new(
            HealthStatus::Progressing,
            format!(
                "Waiting for rollout to finish: {} old replicas are pending termination...",
                replicas - updated
            ),
        );
    }
    if available < updated {
        return Health::new(
            HealthStatus::Progressing,
            format!(
                "Waiting for rollout to finish: {available} of {updated} updated replicas are available..."
            ),
        );
    }
    Health::new(HealthStatus::Healthy, "")
}

/// Health of an `apps/v1` ReplicaSet.
pub(crate) fn replica_set(v: &Value) -> Health {
    if generation(v) > observed_generation(v) {
        return Health::new(
            HealthStatus::Progressing,
            "Waiting for rollout to finish: observed replica set generation less than desired generation",
        );
    }
    if let Some(c) = condition(v, "ReplicaFailure").filter(|c| c.is_true()) {
        return Health::new(HealthStatus::Degraded, c.message);
    }
    let available = status_int(v, "availableReplicas");
    if let Some(want) = int_at(v, &["spec", "replicas"]).filter(|want| available < *want) {
        return Health::new(
            HealthStatus::Progressing,
            format!(
                "Waiting for rollout to finish: {available} out of {want} new replicas are available..."
            ),
        );
    }
    Health::new(HealthStatus::Healthy, "")
}

/// Health of an `apps/v1` StatefulSet.
pub(crate) fn stateful_set(v: &Value) -> Health {
    let observed = observed_generation(v);
    if observed == 0 || generation(v) > observed {
        return Health::new(
            HealthStatus::Progressing,
            "Waiting for statefulset spec update to be observed...",
        );
    }
    let spec_replicas = int_at(v, &["spec", "replicas"]);
    let ready = status_int(v, "readyReplicas");
    let updated = status_int(v, "updatedReplicas");
    if let Some(want) = spec_replicas.filter(|want| ready < *want) {
        return Health::new(
            HealthStatus::Progressing,
            format!("Waiting for {} pods to be ready...", want - ready),
        );
    }
    let strategy = string_at(v, &["spec", "updateStrategy", "type"]);
    let rolling = v.pointer("/spec/updateStrategy/rollingUpdate");
    if strategy == "RollingUpdate" && rolling.is_some_and(|r| !r.is_null()) {
        let partition = int_at(v, &["spec", "updateStrategy", "rollingUpdate", "partition"]);
        if let (Some(want), Some(partition)) = (spec_replicas, partition)
            && updated < want - partition
        {
            return Health::new(
                HealthStatus::Progressing,
                format!(
                    "Waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated...",
                    want - partition
                ),
            );
        }
        return Health::new(
            HealthStatus::Healthy,
            format!("partitioned roll out complete: {updated} new pods have been updated..."),
        );
    }
    if strategy == "OnDelete" {
        return Health::new(
            HealthStatus::Healthy,
            format!("statefulset has {ready} ready pods"),
        );
    }
    let update_revision = string_at(v, &["status", "updateRevision"]);
    let current_revision = string_at(v, &["status", "currentRevision"]);
    if update_revision != current_revision {
        return Health::new(
            HealthStatus::Progressing,
            format!(
                "waiting for statefulset rolling update to complete {updated} pods at revision {update_revision}..."
            ),
        );
    }
    Health::new(
        HealthStatus::Healthy,
        format!(
            "statefulset rolling update complete {} pods at revision {current_revision}...",
            status_int(v, "currentReplicas")
        ),
    )
}

/// Health of an `apps/v1` DaemonSet.
pub(crate) fn daemon_set(v: &Value) -> Health {
    if generation(v) > observed_generation(v) {
        return Health::new(
            HealthStatus::Progressing,
            "Waiting for rollout to finish: observed daemon set generation less than desired generation",
        );
    }
    let name = string_at(v, &["metadata", "name"]);
    let desired = status_int(v, "desiredNumberScheduled");
    let updated = status_int(v, "updatedNumberScheduled");
    let available = status_int(v, "numberAvailable");
    if string_at(v, &["spec", "updateStrategy", "type"]) == "OnDelete" {
        return Health::new(
            HealthStatus::Healthy,
            format!("daemon set {updated} out of {desired} new pods have been updated"),
        );
    }
    if updated < desired {
        return Health::new(
            HealthStatus::Progressing,
            format!(
                "Waiting for daemon set {name:?} rollout to finish: {updated} out of {desired} new pods have been updated..."
            ),
        );
    }
    if available < desired {
        return Health::new(
            HealthStatus::Progressing,
            format!(
                "Waiting for daemon set {name:?} rollout to finish: {available} of {desired} updated pods are available..."
            ),
        );
    }
    Health::new(HealthStatus::Healthy, "")
}
