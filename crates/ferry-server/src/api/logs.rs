//! Container logs: whole, tailed, the previous instance's, or followed as they grow.

use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ferry_core::Object;
use serde::Deserialize;
use serde_json::Value;
use tokio::io::AsyncReadExt as _;
use tokio::sync::mpsc;

use super::{AppState, flag, stream_response};
use crate::error::ApiError;
use crate::kinds;

/// How often a followed log is checked for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// `?container=&previous=&follow=&tail=` (`tailLines` too, as Kubernetes spells it).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct LogQuery {
    container: Option<String>,
    previous: Option<String>,
    follow: Option<String>,
    tail: Option<i64>,
    tail_lines: Option<i64>,
}

fn uid(o: &Object) -> &str {
    o.value()
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The pod whose logs a request means: the pod itself, or for a workload (or a
/// Service) one of the pods it selects, ready ones and newer ones first.
fn pod_for(s: &AppState, kind: &str, ns: &str, name: &str) -> Result<Object, ApiError> {
    let obj = s.require(kind, ns, name)?;
    if kind == "Pod" {
        return Ok(obj);
    }
    let selector = match kind {
        "Service" => obj
            .value()
            .pointer("/spec/selector")
            .filter(|v| v.as_object().is_some_and(|m| !m.is_empty()))
            .map(|m| serde_json::json!({"matchLabels": m})),
        _ => obj.value().pointer("/spec/selector").cloned(),
    };
    let owner = uid(&obj).to_string();
    let mut pods: Vec<Object> = s
        .cluster()
        .list(Some("Pod"), Some(obj.namespace()))
        .into_iter()
        .filter(|p| match &selector {
            Some(sel) => ferry_runtime::controller::selector_matches(
                sel,
                p.value()
                    .pointer("/metadata/labels")
                    .and_then(Value::as_object),
            ),
            None => ferry_runtime::controller::owned_by(p, &owner),
        })
        .collect();
    pods.sort_by_key(|p| {
        let created = p
            .value()
            .pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        (
            p.is_being_deleted(),
            !ferry_runtime::controller::pod_ready(p),
            std::cmp::Reverse(created),
        )
    });
    pods.into_iter().next().ok_or_else(|| {
        ApiError::not_found(format!(
            "no pods found for {}",
            kinds::resource_name(kind, obj.group(), name)
        ))
    })
}

fn container_names(pod: &Object, list: &str) -> Vec<String> {
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

/// The container asked for, else the pod's default container, else its first.
fn container_for(pod: &Object, asked: Option<&str>) -> Result<String, ApiError> {
    let mut all = container_names(pod, "containers");
    let first = all.first().cloned();
    all.extend(container_names(pod, "initContainers"));
    let want = asked
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .or_else(|| {
            pod.annotation("kubectl.kubernetes.io/default-container")
                .map(str::to_string)
        })
        .or(first)
        .ok_or_else(|| ApiError::bad_request(format!("pod {:?} has no containers", pod.name())))?;
    if !all.contains(&want) {
        return Err(ApiError::bad_request(format!(
            "container {want:?} is not valid for pod {:?}; choose one of: [{}]",
            pod.name(),
            all.join(" ")
        )));
    }
    Ok(want)
}

/// The waiting reason of a container, if it waits.
fn waiting_reason(pod: &Object, container: &str) -> Option<String> {
    ["containerStatuses", "initContainerStatuses"]
        .iter()
        .find_map(|list| {
            pod.value()
                .pointer(&format!("/status/{list}"))
                .and_then(Value::as_array)?
                .iter()
                .find(|c| c.get("name").and_then(Value::as_str) == Some(container))?
                .pointer("/state/waiting/reason")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
}

/// The last `n` lines of `text`.
pub(crate) fn tail(text: &[u8], n: Option<usize>) -> &[u8] {
    let Some(n) = n else { return text };
    if n == 0 {
        return &text[text.len()..];
    }
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &text[i + 1..];
            }
        }
    }
    text
}

/// `GET …/{kind}/{name}/log`.
pub(super) async fn logs(
    State(s): State<AppState>,
    Path((ns, kind, name)): Path<(String, String, String)>,
    Query(q): Query<LogQuery>,
) -> Result<Response, ApiError> {
    let kind = s.kind(&kind)?;
    let pod = pod_for(&s, &kind, &ns, &name)?;
    let container = container_for(&pod, q.container.as_deref())?;
    let previous = flag(&q.previous);
    let tail_n = q
        .tail
        .or(q.tail_lines)
        .filter(|n| *n >= 0)
        .map(|n| n as usize);
    let path = s
        .runtime
        .kubelet
        .log_path(pod.namespace(), pod.name(), &container, previous);
    let follow = flag(&q.follow) && !previous;
    if path.is_none() {
        if previous {
            return Err(ApiError::bad_request(format!(
                "previous terminated container {container:?} in pod {:?} not found",
                pod.name()
            )));
        }
        if !follow {
            if let Some(reason) = waiting_reason(&pod, &container) {
                return Err(ApiError::bad_request(format!(
                    "container {container:?} in pod {:?} is waiting to start: {reason}",
                    pod.name()
                )));
            }
            return Ok(
                ([(CONTENT_TYPE, "text/plain; charset=utf-8")], String::new()).into_response(),
            );
        }
    }
    if !follow {
        let bytes = match &path {
            Some(p) => tokio::fs::read(p)
                .await
                .map_err(|e| ApiError::internal(format!("reading {}: {e}", p.display())))?,
            None => Vec::new(),
        };
        let out = tail(&bytes, tail_n).to_vec();
        return Ok(([(CONTENT_TYPE, "text/plain; charset=utf-8")], out).into_response());
    }
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let pod_uid = uid(&pod).to_string();
    tokio::spawn(follow_log(
        s,
        pod.namespace().to_string(),
        pod.name().to_string(),
        pod_uid,
        container,
        tail_n,
        tx,
    ));
    Ok(stream_response(rx, "text/plain; charset=utf-8"))
}

struct Open {
    file: tokio::fs::File,
    ino: u64,
}

async fn open(path: &PathBuf) -> Option<Open> {
    let file = tokio::fs::File::open(path).await.ok()?;
    let ino = file.metadata().await.ok()?.ino();
    Some(Open { file, ino })
}

/// Streams a container's current log as it grows; a restart (the log rotated to
/// `previous.log`) switches to the new instance's log. Ends when the client goes,
/// the pod is gone, or the daemon stops.
async fn follow_log(
    s: AppState,
    ns: String,
    pod: String,
    pod_uid: String,
    container: String,
    tail_n: Option<usize>,
    tx: mpsc::Sender<Bytes>,
) {
    let mut current: Option<Open> = None;
    let mut first = true;
    loop {
        let path = s.runtime.kubelet.log_path(&ns, &pod, &container, false);
        if current.is_none()
            && let Some(p) = &path
        {
            current = open(p).await;
            if let Some(o) = current.as_mut() {
                let mut buf = Vec::new();
                let _ = o.file.read_to_end(&mut buf).await;
                let out = if first { tail(&buf, tail_n) } else { &buf[..] };
                first = false;
                if !out.is_empty() && tx.send(Bytes::copy_from_slice(out)).await.is_err() {
                    return;
                }
            }
        } else if let Some(o) = current.as_mut() {
            let mut buf = Vec::new();
            let _ = o.file.read_to_end(&mut buf).await;
            if !buf.is_empty() && tx.send(Bytes::from(buf)).await.is_err() {
                return;
            }
            let now_ino = match &path {
                Some(p) => tokio::fs::metadata(p).await.ok().map(|m| m.ino()),
                None => None,
            };
            if now_ino != Some(o.ino) {
                current = None;
                first = false;
                continue;
            }
        }
        let alive = s.find("Pod", &ns, &pod).is_some_and(|p| uid(&p) == pod_uid);
        if !alive {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_POLL) => {}
            _ = tx.closed() => return,
            _ = s.shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tail;

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail(b"a\nb\nc\n", Some(2)), b"b\nc\n");
        assert_eq!(tail(b"a\nb\nc", Some(2)), b"b\nc");
        assert_eq!(tail(b"a\nb\n", Some(5)), b"a\nb\n");
        assert_eq!(tail(b"a\nb\n", Some(0)), b"");
        assert_eq!(tail(b"a\nb\n", None), b"a\nb\n");
    }
}
