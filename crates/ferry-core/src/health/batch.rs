//! `batch` kinds: Job (gitops-engine's `health_job.go`) and CronJob (Argo CD's
//! `resource_customizations/batch/CronJob/health.lua`).

use serde_json::Value;

use super::fields::{array_at, bool_at, conditions, int_at, parse_time, str_at};
use super::{Health, HealthStatus};

/// Health of a `batch/v1` Job.
pub(crate) fn job(v: &Value) -> Health {
    let mut failed: Option<String> = None;
    let mut complete: Option<String> = None;
    let mut suspended: Option<String> = None;
    for c in conditions(v) {
        let text = if c.message.is_empty() {
            c.reason
        } else {
            c.message
        };
        match c.ty {
            // The Job controller only ever adds these two with status True.
            "Failed" if c.status != "False" => failed = Some(text.to_string()),
            "Complete" if c.status != "False" => complete = Some(text.to_string()),
            // Unlike Argo, a `Suspended=False` (resumed) condition does not end the Job:
            // Argo would call a resumed, running Job Healthy.
            "Suspended" if c.is_true() => suspended = Some(text.to_string()),
            _ => {}
        }
    }
    if let Some(msg) = failed {
        return Health::new(HealthStatus::Degraded, msg);
    }
    if let Some(msg) = complete {
        return Health::new(HealthStatus::Healthy, msg);
    }
    if let Some(msg) = suspended {
        return Health::new(HealthStatus::Suspended, msg);
    }
    // A suspended Job the controller has not reconciled yet has no condition.
    if bool_at(v, &["spec", "suspend"]) {
        return Health::new(HealthStatus::Suspended, "Job suspended");
    }
    let active = int_at(v, &["status", "active"]).unwrap_or(0);
    let message = if active > 0 {
        format!(
            "Job is running: {active} active, {} succeeded, {} failed",
            int_at(v, &["status", "succeeded"]).unwrap_or(0),
            int_at(v, &["status", "failed"]).unwrap_or(0)
        )
    } else {
        String::new()
    };
    Health::new(HealthStatus::Progressing, message)
}

/// Health of a `batch/v1` CronJob.
pub(crate) fn cron_job(v: &Value) -> Health {
    // Argo's Lua has no suspend branch, but Argo names a suspended CronJob as the
    // typical `Suspended` resource; say so before judging its last runs.
    if bool_at(v, &["spec", "suspend"]) {
        return Health::new(HealthStatus::Suspended, "CronJob is suspended");
    }
    if !array_at(v, &["status", "active"]).is_empty() {
        return Health::new(HealthStatus::Progressing, "CronJob has active jobs");
    }
    let last_schedule = str_at(v, &["status", "lastScheduleTime"]).and_then(parse_time);
    let last_success = str_at(v, &["status", "lastSuccessfulTime"]).and_then(parse_time);
    match (last_schedule, last_success) {
        (None, _) => Health::new(HealthStatus::Healthy, "CronJob has never run"),
        (Some(scheduled), Some(succeeded)) if scheduled < succeeded => {
            Health::new(HealthStatus::Healthy, "CronJob has run successfully")
        }
        _ => Health::new(HealthStatus::Degraded, "CronJob has not run successfully"),
    }
}
