//! Pod health, after gitops-engine's `health_pod.go`.

use serde_json::Value;

use super::fields::{array_at, at, condition, int_at, string_at};
use super::{Health, HealthStatus};

/// Pods carrying this annotation are judged as if their restart policy were `Always`
/// (Argo CD's escape hatch for operator-managed pods with `Never`/`OnFailure`).
const IGNORE_RESTART_POLICY: &str = "argocd.argoproj.io/ignore-restart-policy";

/// A container stuck waiting for a reason that will not clear by itself.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WaitingProblem<'a> {
    pub reason: &'a str,
    pub message: &'a str,
}

impl WaitingProblem<'_> {
    /// `REASON: MESSAGE`, or just `REASON` when the kubelet gave no message.
    pub(crate) fn describe(&self) -> String {
        if self.message.is_empty() {
            self.reason.to_string()
        } else {
            format!("{}: {}", self.reason, self.message)
        }
    }

    /// Lower is worse: configuration errors that never fix themselves first, then image
    /// pulls, then crash loops, then anything else that matched.
    pub(crate) fn rank(&self) -> u8 {
        match self.reason {
            "InvalidImageName"
            | "CreateContainerConfigError"
            | "CreateContainerError"
            | "RunContainerError"
            | "ErrImageNeverPull" => 0,
            "ImagePullBackOff" | "ErrImagePull" => 1,
            "CrashLoopBackOff" => 2,
            _ => 3,
        }
    }
}

/// Argo's rule for a waiting reason that means the container is failing
/// (`ErrImagePull`, `ImagePullBackOff`, `CrashLoopBackOff`, `CreateContainerConfigError`,
/// …), plus `InvalidImageName`, which the rule misses.
pub(crate) fn is_failing_reason(reason: &str) -> bool {
    reason.starts_with("Err")
        || reason.ends_with("BackOff")
        || reason.ends_with("Error")
        || reason == "InvalidImageName"
}

fn container_statuses(pod: &Value) -> impl Iterator<Item = &Value> {
    array_at(pod, &["status", "initContainerStatuses"])
        .iter()
        .chain(array_at(pod, &["status", "containerStatuses"]))
}

/// Every container (init containers first) waiting for a failing reason.
pub(crate) fn waiting_problems(pod: &Value) -> Vec<WaitingProblem<'_>> {
    container_statuses(pod)
        .filter_map(|c| {
            let reason = string_at(c, &["state", "waiting", "reason"]);
            is_failing_reason(reason).then(|| WaitingProblem {
                reason,
                message: string_at(c, &["state", "waiting", "message"]),
            })
        })
        .collect()
}

/// Why a terminated container failed, when it did: exit code, OOM kill, its message.
fn fail_message(c: &Value) -> Option<String> {
    let term = at(c, &["state", "terminated"])?;
    let name = string_at(c, &["name"]);
    let code = int_at(term, &["exitCode"]).unwrap_or(0);
    let reason = string_at(term, &["reason"]);
    let message = string_at(term, &["message"]).trim();
    if code != 0 {
        let mut out = format!("container {name:?} failed with exit code {code}");
        if reason == "OOMKilled" {
            out.push_str(" (OOMKilled)");
        }
        if !message.is_empty() {
            out.push_str(": ");
            out.push_str(message);
        }
        Some(out)
    } else if reason == "OOMKilled" {
        Some(reason.to_string())
    } else if !message.is_empty() {
        Some(message.to_string())
    } else {
        None
    }
}

fn nonzero_exit(c: &Value) -> bool {
    int_at(c, &["state", "terminated", "exitCode"]).is_some_and(|code| code != 0)
}

/// A pending pod's best explanation: the pod's message, an unschedulable condition, or
/// what its containers are waiting for.
fn pending_message(pod: &Value) -> String {
    let msg = string_at(pod, &["status", "message"]);
    if !msg.is_empty() {
        return msg.to_string();
    }
    if let Some(c) = condition(pod, "PodScheduled").filter(|c| c.status == "False")
        && !c.message.is_empty()
    {
        return if c.reason.is_empty() {
            c.message.to_string()
        } else {
            format!("{}: {}", c.reason, c.message)
        };
    }
    container_statuses(pod)
        .find_map(|c| {
            let reason = string_at(c, &["state", "waiting", "reason"]);
            (!reason.is_empty()).then(|| WaitingProblem {
                reason,
                message: string_at(c, &["state", "waiting", "message"]),
            })
        })
        .map(|w| w.describe())
        .unwrap_or_default()
}

fn or_else(message: &str, fallback: impl FnOnce() -> String) -> String {
    if message.is_empty() {
        fallback()
    } else {
        message.to_string()
    }
}

/// Health of a `v1/Pod`.
pub(crate) fn pod(pod: &Value) -> Health {
    let policy = at(pod, &["spec", "restartPolicy"])
        .and_then(Value::as_str)
        .unwrap_or("Always");
    let ignore_policy = at(pod, &["metadata", "annotations", IGNORE_RESTART_POLICY]).is_some();
    let restarts = policy == "Always" || ignore_policy;
    let phase = string_at(pod, &["status", "phase"]);
    let message = string_at(pod, &["status", "message"]);

    // Only pods that restart are failed by a waiting reason: a hook pod (Never/OnFailure)
    // marked Degraded on ImagePullBackOff would fail its hook, then run late once the
    // image appears (Argo's reasoning, kept).
    if restarts {
        let problems = waiting_problems(pod);
        if !problems.is_empty() {
            let text: Vec<String> = problems.iter().map(WaitingProblem::describe).collect();
            return Health::new(HealthStatus::Degraded, text.join("; "));
        }
    }
    // Under `Never` a container that exited non-zero will not run again, so the pod can
    // only end Failed: say so now rather than when the last sidecar stops.
    if policy == "Never"
        && !ignore_policy
        && matches!(phase, "Pending" | "Running")
        && let Some(msg) = container_statuses(pod)
            .filter(|c| nonzero_exit(c))
            .find_map(fail_message)
    {
        return Health::new(HealthStatus::Degraded, msg);
    }

    match phase {
        "Pending" => Health::new(HealthStatus::Progressing, pending_message(pod)),
        "Succeeded" => Health::new(HealthStatus::Healthy, message),
        "Failed" => Health::new(
            HealthStatus::Degraded,
            or_else(message, || {
                container_statuses(pod)
                    .find_map(fail_message)
                    .unwrap_or_default()
            }),
        ),
        "Running" if restarts => {
            if condition(pod, "Ready").is_some_and(|c| c.is_true()) {
                return Health::new(HealthStatus::Healthy, message);
            }
            let restarted = array_at(pod, &["status", "containerStatuses"])
                .iter()
                .find(|c| at(c, &["lastState", "terminated"]).is_some());
            if let Some(c) = restarted {
                let text = or_else(message, || {
                    let term = at(c, &["lastState", "terminated"]).unwrap_or(&Value::Null);
                    format!(
                        "container {:?} is not ready: restarted {} times, last exit code {} ({})",
                        string_at(c, &["name"]),
                        int_at(c, &["restartCount"]).unwrap_or(0),
                        int_at(term, &["exitCode"]).unwrap_or(0),
                        string_at(term, &["reason"]),
                    )
                });
                return Health::new(HealthStatus::Degraded, text);
            }
            let text = or_else(message, || {
                condition(pod, "Ready")
                    .map(|c| c.message.to_string())
                    .unwrap_or_default()
            });
            Health::new(HealthStatus::Progressing, text)
        }
        "Running" if matches!(policy, "Never" | "OnFailure") => {
            // Finite pods (usually hooks) are Progressing until they finish.
            Health::new(HealthStatus::Progressing, message)
        }
        _ => Health::new(HealthStatus::Unknown, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_reason_without_message_stands_alone() {
        let p = json!({
            "spec": {"restartPolicy": "Always"},
            "status": {"phase": "Pending", "containerStatuses": [
                {"name": "web", "state": {"waiting": {"reason": "ErrImageNeverPull"}}},
                {"name": "side", "state": {"waiting": {"reason": "ImagePullBackOff",
                    "message": "Back-off pulling image \"side:1\""}}}
            ]}
        });
        assert_eq!(
            pod(&p),
            Health::new(
                HealthStatus::Degraded,
                "ErrImageNeverPull; ImagePullBackOff: Back-off pulling image \"side:1\""
            )
        );
    }

    #[test]
    fn missing_restart_policy_means_always_and_missing_status_is_unknown() {
        let p = json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True"}
        ]}});
        assert_eq!(pod(&p).status, HealthStatus::Healthy);
        assert_eq!(pod(&json!({"spec": {}})).status, HealthStatus::Unknown);
        // Mistyped fields read as absent rather than panicking.
        let odd = json!({"spec": {"restartPolicy": 7}, "status": {"phase": ["Running"],
            "containerStatuses": "nope"}});
        assert_eq!(pod(&odd).status, HealthStatus::Unknown);
    }

    #[test]
    fn ignore_restart_policy_annotation_judges_like_always() {
        let p = json!({
            "metadata": {"annotations": {IGNORE_RESTART_POLICY: "true"}},
            "spec": {"restartPolicy": "Never"},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "main", "state": {"waiting": {"reason": "ImagePullBackOff",
                    "message": "Back-off pulling image \"alpine:3.21\""}}}
            ]}
        });
        assert_eq!(pod(&p).status, HealthStatus::Degraded);
    }
}
