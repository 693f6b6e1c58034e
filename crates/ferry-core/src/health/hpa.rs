//! HorizontalPodAutoscaler, after gitops-engine's `health_hpa.go` (as of Argo CD's
//! fix that ranks every degraded condition above any healthy one).

use serde_json::Value;

use super::fields::{Condition, conditions, str_at};
use super::{Health, HealthStatus};

/// Where `autoscaling/v1` keeps the conditions that v2 has in `status.conditions`.
const V1_CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";

const WAITING: &str = "Waiting to Autoscale";

/// Condition (type, reason) pairs that mean the autoscaler cannot do its job.
const DEGRADED: &[(&str, &str)] = &[
    ("AbleToScale", "FailedGetScale"),
    ("AbleToScale", "FailedUpdateScale"),
    ("ScalingActive", "FailedGetResourceMetric"),
    ("ScalingActive", "FailedGetContainerResourceMetric"),
    ("ScalingActive", "FailedGetPodsMetric"),
    ("ScalingActive", "FailedGetObjectMetric"),
    ("ScalingActive", "FailedGetExternalMetric"),
    ("ScalingActive", "InvalidSelector"),
    ("ScalingActive", "InvalidMetricSourceType"),
];

fn judge<'a>(conds: impl Iterator<Item = Condition<'a>> + Clone) -> Health {
    if let Some(c) = conds
        .clone()
        .find(|c| DEGRADED.iter().any(|(t, r)| c.ty == *t && c.reason == *r))
    {
        return Health::new(HealthStatus::Degraded, c.message);
    }
    if let Some(c) = conds
        .clone()
        .find(|c| matches!(c.ty, "AbleToScale" | "ScalingLimited") && c.is_true())
    {
        return Health::new(HealthStatus::Healthy, c.message);
    }
    Health::new(HealthStatus::Progressing, WAITING)
}

/// Health of an `autoscaling` HorizontalPodAutoscaler, any version.
pub(crate) fn horizontal_pod_autoscaler(v: &Value, version: &str) -> Health {
    if version != "v1" {
        return judge(conditions(v));
    }
    let Some(text) = str_at(v, &["metadata", "annotations", V1_CONDITIONS]) else {
        return Health::new(HealthStatus::Progressing, WAITING);
    };
    match serde_json::from_str::<Vec<Value>>(text) {
        Ok(list) if list.is_empty() => Health::new(HealthStatus::Progressing, WAITING),
        Ok(list) => judge(list.iter().map(Condition::from_value)),
        Err(e) => Health::new(
            HealthStatus::Unknown,
            format!("failed to read the {V1_CONDITIONS} annotation: {e}"),
        ),
    }
}
