//! `POST …/pods/{name}/exec`: a command run in a running pod's container, as `kubectl
//! exec` without a TTY: stdin given whole in the request, stdout, stderr and the exit
//! code in the answer. Streaming (and so interactive shells) is not offered yet.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use ferry_core::Object;
use ferry_runtime::kubelet::exec::{ExecError, ExecRequest};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use crate::error::ApiError;

/// The time limit when the request gives none.
const DEFAULT_TIMEOUT_SECS: u64 = 30;
/// The longest time limit a request may ask for.
const MAX_TIMEOUT_SECS: u64 = 3600;

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExecBody {
    /// The container; the pod's default (annotation) or first when absent.
    container: Option<String>,
    /// argv.
    command: Vec<String>,
    /// Text fed to the command's stdin.
    stdin: Option<String>,
    /// How long the command may run.
    timeout_seconds: Option<u64>,
}

fn names(pod: &Object, list: &str) -> Vec<String> {
    pod.value()
        .pointer(&format!("/spec/{list}"))
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The container a request without one means, as kubectl picks it: the
/// `kubectl.kubernetes.io/default-container` annotation when it names a container,
/// else the first. With it, kubectl's list of every container (`x, y, z (init)`) when
/// the choice was not obvious (kubectl then says `Defaulted container "x" out of: …`).
fn default_container(pod: &Object) -> Result<(String, Option<String>), ApiError> {
    let main = names(pod, "containers");
    let init = names(pod, "initContainers");
    let Some(first) = main.first().cloned() else {
        return Err(ApiError::bad_request(format!(
            "pod {}/{} does not have any containers",
            pod.namespace(),
            pod.name()
        )));
    };
    if let Some(a) = pod.annotation("kubectl.kubernetes.io/default-container")
        && (main.iter().chain(&init)).any(|c| c == a)
    {
        return Ok((a.to_string(), None));
    }
    let all = (main.len() > 1 || !init.is_empty()).then(|| {
        main.iter()
            .cloned()
            .chain(init.iter().map(|c| format!("{c} (init)")))
            .collect::<Vec<_>>()
            .join(", ")
    });
    Ok((first, all))
}

/// `POST /api/v1/namespaces/{ns}/pods/{name}/exec` with `{"container"?, "command",
/// "stdin"?, "timeoutSeconds"?}`: `{"stdout", "stderr", "exitCode", "container",
/// "timedOut", "truncated"}`, plus `"defaultedFrom"` when the container was chosen
/// among several.
pub(super) async fn exec(
    State(s): State<AppState>,
    Path((ns, kind, name)): Path<(String, String, String)>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let kind = s.kind(&kind)?;
    if kind != "Pod" {
        return Err(ApiError::bad_request(format!(
            "cannot exec into {kind} {name:?}: exec runs in a pod; name one ('ferry get pods')"
        )));
    }
    let body: ExecBody = serde_json::from_value(body).map_err(|e| {
        ApiError::bad_request(format!(
            "invalid exec request: {e}; send {{\"command\": [\"sh\", \"-c\", \"…\"], \"container\"?: \"c\", \"stdin\"?: \"…\", \"timeoutSeconds\"?: N}}"
        ))
    })?;
    let secs = body.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECS);
    if !(1..=MAX_TIMEOUT_SECS).contains(&secs) {
        return Err(ApiError::bad_request(format!(
            "timeoutSeconds {secs} is out of range: give 1 to {MAX_TIMEOUT_SECS}"
        )));
    }
    let pod = s.require("Pod", &ns, &name)?;
    let (container, defaulted_from) = match body.container.filter(|c| !c.is_empty()) {
        Some(c) => (c, None),
        None => default_container(&pod)?,
    };
    let req = ExecRequest {
        container: container.clone(),
        command: body.command,
        stdin: body.stdin.map(String::into_bytes),
        timeout: Duration::from_secs(secs),
    };
    // A daemon that stops does not wait for the command: dropping the call kills it.
    let ran = tokio::select! {
        r = s.runtime.kubelet.exec(&pod, req) => r,
        _ = s.shutdown.cancelled() => {
            return Err(ApiError::conflict(format!(
                "the ferry daemon is stopping: the command in container {container:?} of pod {name:?} was killed; run it again once the daemon is back"
            )));
        }
    };
    let out = ran.map_err(|e| {
        let msg = e.to_string();
        match e {
            ExecError::Start { .. } => ApiError::internal(msg),
            ExecError::NoSuchContainer { .. }
            | ExecError::Completed { .. }
            | ExecError::NotRunning { .. }
            | ExecError::NoCommand => ApiError::bad_request(msg),
        }
    })?;
    let mut answer = json!({
        "stdout": String::from_utf8_lossy(&out.stdout),
        "stderr": String::from_utf8_lossy(&out.stderr),
        "exitCode": out.exit_code,
        "container": container,
        "timedOut": out.timed_out,
        "truncated": out.truncated,
    });
    if let Some(all) = defaulted_from {
        answer["defaultedFrom"] = Value::String(all);
    }
    Ok(Json(answer))
}
