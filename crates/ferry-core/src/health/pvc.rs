//! PersistentVolumeClaim, after gitops-engine's `health_pvc.go`.

use serde_json::Value;

use super::fields::string_at;
use super::{Health, HealthStatus};

/// Health of a `v1/PersistentVolumeClaim`, from its phase.
pub(crate) fn persistent_volume_claim(v: &Value) -> Health {
    match string_at(v, &["status", "phase"]) {
        "Bound" => Health::new(HealthStatus::Healthy, ""),
        "Pending" => Health::new(
            HealthStatus::Progressing,
            "Waiting for the claim to be bound",
        ),
        "Lost" => {
            let volume = string_at(v, &["spec", "volumeName"]);
            let message = if volume.is_empty() {
                "The claim lost its volume".to_string()
            } else {
                format!("The claim lost its volume {volume:?}")
            };
            Health::new(HealthStatus::Degraded, message)
        }
        other => Health::new(
            HealthStatus::Unknown,
            format!("unknown claim phase {other:?}"),
        ),
    }
}
