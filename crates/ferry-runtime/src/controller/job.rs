//! Job controller: runs pods to `completions` with `parallelism`, retries up to
//! `backoffLimit`, honours `activeDeadlineSeconds` and `suspend`, and reports the
//! `Complete`/`Failed`/`Suspended` conditions as Kubernetes does.

use std::time::SystemTime;

use ferry_core::Object;
use serde_json::{Value, json};

use super::replicaset::pod_from_template;
use super::{MANAGER, children, condition, int_at, make_condition, uid};
use crate::Result;
use crate::cluster::{Cluster, Propagation};

fn phase(p: &Object) -> &str {
    p.value()
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("Pending")
}

/// Restarts of containers in a pod (they count as failures under `OnFailure`).
fn restarts(p: &Object) -> i64 {
    p.value()
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map(|cs| cs.iter().map(|c| int_at(c, "/restartCount", 0)).sum())
        .unwrap_or(0)
}

/// One reconcile pass.
pub fn reconcile(cluster: &Cluster, job: &Object, now: SystemTime) -> Result<()> {
    if job.is_being_deleted() {
        return Ok(());
    }
    let v = job.value();
    let now_s = humantime::format_rfc3339_seconds(now).to_string();
    let finished = ["Complete", "Failed"].iter().any(|t| {
        condition(v, t).is_some_and(|c| c.get("status").and_then(Value::as_str) == Some("True"))
    });
    let pods = children(cluster, job, "Pod");
    let succeeded = pods.iter().filter(|p| phase(p) == "Succeeded").count() as i64;
    let failed = pods.iter().filter(|p| phase(p) == "Failed").count() as i64
        + pods.iter().map(restarts).sum::<i64>();
    let active: Vec<&Object> = pods
        .iter()
        .filter(|p| !p.is_being_deleted() && !matches!(phase(p), "Succeeded" | "Failed"))
        .collect();
    let mut status = v.get("status").cloned().unwrap_or_else(|| json!({}));
    if finished {
        for p in &active {
            cluster.delete(&p.key(), Propagation::Background)?;
        }
        status["active"] = json!(0);
        status["succeeded"] = json!(succeeded);
        status["failed"] = json!(failed);
        cluster.update_status(&job.key(), status)?;
        return Ok(());
    }
    let completions = int_at(v, "/spec/completions", 1).max(0);
    let parallelism = int_at(v, "/spec/parallelism", 1).max(0);
    let backoff_limit = int_at(v, "/spec/backoffLimit", 6);
    let suspended = v
        .pointer("/spec/suspend")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if status.get("startTime").is_none() && !suspended {
        status["startTime"] = json!(now_s);
    }
    let started = status
        .get("startTime")
        .and_then(Value::as_str)
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok());
    let deadline_hit = v
        .pointer("/spec/activeDeadlineSeconds")
        .and_then(Value::as_i64)
        .zip(started)
        .is_some_and(|(secs, t)| {
            now.duration_since(t)
                .map(|d| d.as_secs() as i64 >= secs)
                .unwrap_or(false)
        });
    let mut conditions: Vec<Value> = Vec::new();
    let mut stop_active = false;
    if succeeded >= completions {
        conditions.push(make_condition(
            condition(v, "Complete"),
            "Complete",
            true,
            "",
            "",
            &now_s,
        ));
        status["completionTime"] = json!(now_s);
        stop_active = true;
    } else if failed > backoff_limit {
        conditions.push(make_condition(
            condition(v, "Failed"),
            "Failed",
            true,
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
            &now_s,
        ));
        stop_active = true;
    } else if deadline_hit {
        conditions.push(make_condition(
            condition(v, "Failed"),
            "Failed",
            true,
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
            &now_s,
        ));
        stop_active = true;
    } else if suspended {
        conditions.push(make_condition(
            condition(v, "Suspended"),
            "Suspended",
            true,
            "JobSuspended",
            "Job suspended",
            &now_s,
        ));
        stop_active = true;
    } else {
        let want_active = parallelism.min(completions - succeeded).max(0) as usize;
        let template = v
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let job_uid = uid(job).to_string();
        for _ in active.len()..want_active {
            let pod = pod_from_template(
                job,
                &template,
                &[
                    ("job-name", job.name()),
                    ("controller-uid", job_uid.as_str()),
                    ("batch.kubernetes.io/job-name", job.name()),
                ],
            )?;
            cluster.create(&pod, MANAGER)?;
        }
    }
    let mut active_count = active.len();
    if stop_active {
        for p in &active {
            cluster.delete(&p.key(), Propagation::Background)?;
        }
        active_count = 0;
    }
    if let Some(m) = status.as_object_mut() {
        m.insert("active".into(), json!(active_count));
        m.insert("succeeded".into(), json!(succeeded));
        m.insert("failed".into(), json!(failed));
        if !conditions.is_empty() {
            m.insert("conditions".into(), Value::Array(conditions));
        } else if let Some(cs) = m.get_mut("conditions").and_then(Value::as_array_mut) {
            cs.retain(|c| c.get("type").and_then(Value::as_str) != Some("Suspended"));
        }
    }
    cluster.update_status(&job.key(), status)?;
    Ok(())
}
