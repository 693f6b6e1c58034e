//! Traffic weights of a Service by version (pod-template hash), and where its
//! traffic goes now.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use ferry_core::Object;
use ferry_runtime::services::WEIGHTS_ANNOTATION;
use serde_json::{Value, json};

use super::{AppState, key_of};
use crate::error::ApiError;

type Target = Path<(String, String, String)>;

fn service(s: &AppState, (ns, kind, name): &(String, String, String)) -> Result<Object, ApiError> {
    let kind = s.kind(kind)?;
    if kind != "Service" {
        return Err(ApiError::bad_request(
            "traffic weights apply to services only (svc/NAME)",
        ));
    }
    s.require(&kind, ns, name)
}

async fn describe(s: &AppState, svc: &Object) -> Value {
    let weights: Option<BTreeMap<String, u32>> = svc
        .annotation(WEIGHTS_ANNOTATION)
        .and_then(|w| serde_json::from_str(w).ok());
    let mut ports = Vec::new();
    for p in svc
        .value()
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(port) = p
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|n| u16::try_from(n).ok())
        else {
            continue;
        };
        let host = s
            .runtime
            .services
            .host_port(svc.namespace(), svc.name(), port)
            .await;
        let endpoints: Vec<Value> = s
            .runtime
            .services
            .endpoints(svc.namespace(), svc.name(), port)
            .await
            .into_iter()
            .map(|e| json!({"address": e.addr.to_string(), "version": e.version, "pod": e.pod, "ready": e.ready}))
            .collect();
        ports.push(json!({"port": port, "hostPort": host, "endpoints": endpoints}));
    }
    json!({"namespace": svc.namespace(), "name": svc.name(), "weights": weights, "ports": ports})
}

/// `GET …/services/{name}/traffic`.
pub(super) async fn get_weights(
    State(s): State<AppState>,
    Path(t): Target,
) -> Result<Json<Value>, ApiError> {
    let svc = service(&s, &t)?;
    Ok(Json(describe(&s, &svc).await))
}

/// `PUT …/services/{name}/traffic` with `{"weights": {"HASH": WEIGHT, …}}`.
pub(super) async fn set_weights(
    State(s): State<AppState>,
    Path(t): Target,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let svc = service(&s, &t)?;
    let weights: BTreeMap<String, u32> = body
        .get("weights")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| {
            ApiError::bad_request(format!("weights must map versions to whole numbers: {e}"))
        })?
        .ok_or_else(|| ApiError::bad_request("give {\"weights\": {\"HASH\": WEIGHT, …}}"))?;
    if weights.is_empty() || weights.values().all(|w| *w == 0) {
        return Err(ApiError::bad_request(
            "at least one version needs a weight above 0; clear the weights instead",
        ));
    }
    s.runtime.set_traffic(&key_of(&svc), Some(&weights))?;
    tracing::info!(
        "traffic of service {}/{} set to {weights:?}",
        svc.namespace(),
        svc.name()
    );
    let svc = s.require("Service", svc.namespace(), svc.name())?;
    Ok(Json(describe(&s, &svc).await))
}

/// `DELETE …/services/{name}/traffic`: back to balancing over every ready endpoint.
pub(super) async fn clear_weights(
    State(s): State<AppState>,
    Path(t): Target,
) -> Result<Json<Value>, ApiError> {
    let svc = service(&s, &t)?;
    s.runtime.set_traffic(&key_of(&svc), None)?;
    let svc = s.require("Service", svc.namespace(), svc.name())?;
    Ok(Json(describe(&s, &svc).await))
}
