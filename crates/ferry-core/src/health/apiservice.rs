//! APIService, after gitops-engine's `health_apiservice.go`.

use serde_json::Value;

use super::fields::condition;
use super::{Health, HealthStatus};

/// Health of an `apiregistration.k8s.io` APIService, from its `Available` condition.
pub(crate) fn api_service(v: &Value) -> Health {
    match condition(v, "Available") {
        Some(c) => {
            let status = if c.is_true() {
                HealthStatus::Healthy
            } else {
                HealthStatus::Progressing
            };
            Health::new(status, format!("{}: {}", c.reason, c.message))
        }
        None => Health::new(HealthStatus::Progressing, "Waiting to be processed"),
    }
}
