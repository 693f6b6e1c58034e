//! Service and Ingress, after gitops-engine's `health_service.go` and
//! `health_ingress.go`: both wait for a load balancer to report an address.

use serde_json::Value;

use super::fields::{array_at, string_at};
use super::{Health, HealthStatus};

/// Health of a `v1/Service`: only a `LoadBalancer` can be anything but Healthy.
pub(crate) fn service(v: &Value) -> Health {
    if string_at(v, &["spec", "type"]) == "LoadBalancer"
        && array_at(v, &["status", "loadBalancer", "ingress"]).is_empty()
    {
        return Health::new(
            HealthStatus::Progressing,
            "Waiting for the load balancer to be assigned an address",
        );
    }
    Health::new(HealthStatus::Healthy, "")
}

/// Health of an Ingress (`networking.k8s.io` or `extensions`).
pub(crate) fn ingress(v: &Value) -> Health {
    if array_at(v, &["status", "loadBalancer", "ingress"]).is_empty() {
        return Health::new(
            HealthStatus::Progressing,
            "Waiting for the ingress controller to assign an address",
        );
    }
    Health::new(HealthStatus::Healthy, "")
}
