//! `argoproj.io` kinds: Rollout (Argo CD's
//! `resource_customizations/argoproj.io/Rollout/health.lua`) and Workflow
//! (gitops-engine's `health_argo.go`).

use serde_json::Value;

use super::fields::{array_at, at, bool_at, conditions, int_at, str_at, string_at};
use super::{Health, HealthStatus};

/// Whether the controller has seen the Rollout's current spec. Before v0.10 the
/// observed generation was a hash (numerically larger than any generation, or not a
/// number at all); such rollouts count as observed.
fn generation_observed(v: &Value) -> bool {
    if at(v, &["status"]).is_none() {
        return false;
    }
    let generation = int_at(v, &["metadata", "generation"]).unwrap_or(0);
    match int_at(v, &["status", "observedGeneration"]) {
        None => true,
        Some(observed) if observed > generation => true,
        Some(observed) => observed == generation,
    }
}

/// Whether the controller has seen the generation of a `workloadRef` Deployment
/// (Rollouts v1.1+).
fn workload_generation_observed(v: &Value) -> bool {
    if at(v, &["spec", "workloadRef"]).is_none() || at(v, &["metadata", "annotations"]).is_none() {
        return true;
    }
    int_at(
        v,
        &[
            "metadata",
            "annotations",
            "rollout.argoproj.io/workload-generation",
        ],
    ) == int_at(v, &["status", "workloadObservedGeneration"])
}

/// Health of an Argo Rollouts `Rollout`.
pub(crate) fn rollout(v: &Value) -> Health {
    if !generation_observed(v) || !workload_generation_observed(v) {
        return Health::new(
            HealthStatus::Progressing,
            "Waiting for rollout spec update to be observed",
        );
    }
    // Rollouts v1.0+ records its own verdict; Argo CD surfaces it as is.
    if let Some(phase) = str_at(v, &["status", "phase"]) {
        let message = string_at(v, &["status", "message"]);
        return match phase {
            "Paused" => Health::new(HealthStatus::Suspended, message),
            other => match HealthStatus::parse(other) {
                Some(status) => Health::new(status, message),
                None => Health::new(
                    HealthStatus::Unknown,
                    format!("unknown rollout phase {other:?}: {message}"),
                ),
            },
        };
    }
    for c in conditions(v) {
        if c.ty == "InvalidSpec"
            || (c.ty == "Progressing"
                && matches!(c.reason, "RolloutAborted" | "ProgressDeadlineExceeded"))
        {
            return Health::new(HealthStatus::Degraded, c.message);
        }
    }
    if !array_at(v, &["status", "pauseConditions"]).is_empty() || bool_at(v, &["spec", "paused"]) {
        return Health::new(HealthStatus::Suspended, "Rollout is paused");
    }
    let Some(current) = str_at(v, &["status", "currentPodHash"]) else {
        return Health::new(
            HealthStatus::Progressing,
            "Waiting for rollout to finish: status has not been reconciled.",
        );
    };
    let desired = int_at(v, &["spec", "replicas"]).unwrap_or(1);
    let replicas = int_at(v, &["status", "replicas"]).unwrap_or(0);
    let updated = int_at(v, &["status", "updatedReplicas"]).unwrap_or(0);
    let available = int_at(v, &["status", "availableReplicas"]).unwrap_or(0);
    if updated < desired {
        return Health::new(
            HealthStatus::Progressing,
            "Waiting for roll out to finish: More replicas need to be updated",
        );
    }
    if available < updated {
        return Health::new(
            HealthStatus::Progressing,
            "Waiting for roll out to finish: updated replicas are still becoming available",
        );
    }
    // v0.8 moved `status.canary.stableRS` to `status.stableRS`.
    let stable = str_at(v, &["status", "stableRS"])
        .or_else(|| str_at(v, &["status", "canary", "stableRS"]))
        .unwrap_or_default();
    if at(v, &["spec", "strategy", "blueGreen"]).is_some() {
        if str_at(v, &["status", "blueGreen", "activeSelector"]) != Some(current) {
            return Health::new(HealthStatus::Progressing, "active service cutover pending");
        }
        if !stable.is_empty() && stable != current {
            return Health::new(
                HealthStatus::Progressing,
                "waiting for analysis to complete",
            );
        }
    } else if at(v, &["spec", "strategy", "canary"]).is_some() {
        if replicas > updated {
            return Health::new(
                HealthStatus::Progressing,
                "Waiting for roll out to finish: old replicas are pending termination",
            );
        }
        if stable.is_empty() || stable != current {
            return Health::new(
                HealthStatus::Progressing,
                "Waiting for rollout to finish steps",
            );
        }
    }
    Health::new(HealthStatus::Healthy, "")
}

/// Health of an Argo Workflows `Workflow`, from its phase.
pub(crate) fn workflow(v: &Value) -> Health {
    let message = string_at(v, &["status", "message"]);
    match string_at(v, &["status", "phase"]) {
        "" | "Pending" | "Running" => Health::new(HealthStatus::Progressing, message),
        "Succeeded" => Health::new(HealthStatus::Healthy, message),
        "Failed" | "Error" => Health::new(HealthStatus::Degraded, message),
        _ => Health::new(HealthStatus::Unknown, message),
    }
}
