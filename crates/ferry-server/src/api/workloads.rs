//! Scale and rollouts (status, history, restart, undo).

use axum::Json;
use axum::extract::{Path, Query, State};
use ferry_core::Object;
use ferry_runtime::cluster::{ApplyOptions, now_rfc3339};
use ferry_runtime::controller::children;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppState, key_of};
use crate::error::ApiError;
use crate::{kinds, rollout};

/// The manager that owns `spec.replicas` after a scale.
pub const SCALE_MANAGER: &str = "ferry-scale";
/// The manager that owns the restart annotation after `rollout restart`.
pub const RESTART_MANAGER: &str = "ferry-rollout-restart";
/// The manager that owns the template after `rollout undo`.
pub const UNDO_MANAGER: &str = "ferry-rollout";
/// The annotation `rollout restart` sets on the pod template.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

type Target = Path<(String, String, String)>;

fn deployment(
    s: &AppState,
    (ns, kind, name): &(String, String, String),
    verb: &str,
) -> Result<Object, ApiError> {
    let kind = s.kind(kind)?;
    if kind != "Deployment" {
        return Err(ApiError::bad_request(format!(
            "rollout {verb} supports deployments only, not {}",
            kinds::plural_of(&kind)
        )));
    }
    s.require(&kind, ns, name)
}

/// A forced apply of `patch` (a partial object) as `manager`: it takes ownership of
/// exactly the fields it sets, as a Kubernetes subresource update does.
fn apply_partial(
    s: &AppState,
    live: &Object,
    spec: Value,
    manager: &str,
) -> Result<Object, ApiError> {
    let patch = json!({
        "apiVersion": live.api_version(), "kind": live.kind(),
        "metadata": {"name": live.name(), "namespace": live.namespace()},
        "spec": spec,
    });
    let patch = Object::from_value(patch).map_err(|e| ApiError::internal(e.to_string()))?;
    let opts = ApplyOptions {
        field_manager: manager.into(),
        force: true,
        dry_run: false,
    };
    Ok(s.runtime.apply(&patch, &opts)?)
}

/// `PUT …/{kind}/{name}/scale` with `{"spec": {"replicas": N}}` (or `{"replicas": N}`).
pub(super) async fn scale(
    State(s): State<AppState>,
    Path(t): Target,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let kind = s.kind(&t.1)?;
    if !matches!(kind.as_str(), "Deployment" | "ReplicaSet" | "StatefulSet") {
        return Err(ApiError::bad_request(format!(
            "cannot scale {}: only deployments, replicasets and statefulsets scale",
            kinds::plural_of(&kind)
        )));
    }
    let replicas = body
        .pointer("/spec/replicas")
        .or_else(|| body.get("replicas"))
        .and_then(Value::as_i64)
        .filter(|n| *n >= 0)
        .ok_or_else(|| {
            ApiError::bad_request("give the replicas as {\"spec\": {\"replicas\": N}} with N ≥ 0")
        })?;
    let live = s.require(&kind, &t.0, &t.2)?;
    let out = apply_partial(&s, &live, json!({"replicas": replicas}), SCALE_MANAGER)?;
    tracing::info!("scaled {}/{} in {} to {replicas}", kind, t.2, t.0);
    Ok(Json(out.into_value()))
}

/// `GET …/deployments/{name}/rollout`: kubectl's rollout status, plus the health.
pub(super) async fn status(
    State(s): State<AppState>,
    Path(t): Target,
) -> Result<Json<Value>, ApiError> {
    let d = deployment(&s, &t, "status")?;
    let st = rollout::status(&d);
    let mut related = s.cluster().list(Some("ReplicaSet"), Some(d.namespace()));
    related.extend(s.cluster().list(Some("Pod"), Some(d.namespace())));
    let health = ferry_core::health::assess_in(&d, &related);
    Ok(Json(json!({
        "done": st.done, "failed": st.failed, "message": st.message,
        "revision": d.annotation(ferry_runtime::controller::deployment::REVISION),
        "health": health,
    })))
}

/// `GET …/deployments/{name}/rollout/history`.
pub(super) async fn history(
    State(s): State<AppState>,
    Path(t): Target,
) -> Result<Json<Value>, ApiError> {
    let d = deployment(&s, &t, "history")?;
    let revisions = rollout::history(&children(s.cluster(), &d, "ReplicaSet"));
    Ok(Json(
        json!({"name": d.name(), "namespace": d.namespace(), "revisions": revisions}),
    ))
}

/// `POST …/deployments/{name}/rollout/restart`.
pub(super) async fn restart(
    State(s): State<AppState>,
    Path(t): Target,
) -> Result<Json<Value>, ApiError> {
    let d = deployment(&s, &t, "restart")?;
    if d.value().pointer("/spec/paused").and_then(Value::as_bool) == Some(true) {
        return Err(ApiError::bad_request(format!(
            "can't restart paused deployment {:?} (run rollout resume first)",
            d.name()
        )));
    }
    let spec = json!({"template": {"metadata": {"annotations": {RESTARTED_AT: now_rfc3339()}}}});
    let out = apply_partial(&s, &d, spec, RESTART_MANAGER)?;
    s.cluster().record_event(
        &key_of(&d),
        false,
        "RolloutRestart",
        "restart requested: new pods replace the current ones",
    );
    Ok(Json(out.into_value()))
}

/// `?toRevision=N`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UndoQuery {
    to_revision: Option<i64>,
}

/// `POST …/deployments/{name}/rollout/undo?toRevision=N` (0 or absent: the previous one).
pub(super) async fn undo(
    State(s): State<AppState>,
    Path(t): Target,
    Query(q): Query<UndoQuery>,
) -> Result<Json<Value>, ApiError> {
    let d = deployment(&s, &t, "undo")?;
    let rss = children(s.cluster(), &d, "ReplicaSet");
    let revisions = rollout::history(&rss);
    let to = q.to_revision.unwrap_or(0);
    let target = if to == 0 {
        let current = d
            .annotation(ferry_runtime::controller::deployment::REVISION)
            .and_then(|r| r.parse::<i64>().ok())
            .or_else(|| revisions.last().map(|r| r.revision))
            .unwrap_or(0);
        revisions
            .iter()
            .rev()
            .find(|r| r.revision < current)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "no rollout history found for deployment {:?}",
                    d.name()
                ))
            })?
    } else {
        revisions.iter().find(|r| r.revision == to).ok_or_else(|| {
            ApiError::not_found(format!("unable to find specified revision {to} in history"))
        })?
    };
    let rs = rss
        .iter()
        .find(|rs| rs.name() == target.replica_set)
        .ok_or_else(|| ApiError::internal("the revision's ReplicaSet vanished; try again"))?;
    let template = rollout::template_of(rs);
    let revision = target.revision;
    if d.value().pointer("/spec/template") == Some(&template) {
        return Ok(Json(json!({
            "revision": revision, "skipped": true,
            "message": format!("skipped rollback (current template already matches revision {revision})"),
        })));
    }
    let mut next = d.clone();
    for f in ["managedFields", "resourceVersion"] {
        next.metadata_mut().remove(f);
    }
    next.value_mut()["spec"]["template"] = template;
    let out = s.cluster().update_as(&next, UNDO_MANAGER)?;
    s.cluster().record_event(
        &key_of(&d),
        false,
        "DeploymentRollback",
        &format!(
            "Rolled back deployment {:?} to revision {revision}",
            d.name()
        ),
    );
    Ok(Json(
        json!({"revision": revision, "skipped": false, "object": out.into_value()}),
    ))
}
