//! The HTTP API, Kubernetes-flavoured, under `/api/v1`:
//!
//! | route | what |
//! | --- | --- |
//! | `POST /api/v1/apply?fieldManager=&force=&dryRun=&namespace=` | server-side apply of a YAML/JSON body (one object, many, or a `List`); every object is validated (a dry run) before the first is applied |
//! | `GET /api/v1/{kind}` | list across namespaces (`?labelSelector=`, `?fieldSelector=metadata.name=`, `?watch=true`) |
//! | `GET /api/v1/namespaces/{ns}/{kind}` | list in a namespace (same parameters) |
//! | `GET\|DELETE /api/v1/namespaces/{ns}/{kind}/{name}` | one object (`?watch=true`); delete with `?propagation=` or `?cascade=` |
//! | `GET\|DELETE /api/v1/{kind}/{name}` | the same for cluster-scoped kinds (namespaces) |
//! | `PUT …/{kind}/{name}/scale` | `{"spec":{"replicas":N}}` |
//! | `GET …/deployments/{name}/rollout` | rollout status (kubectl's wording) and health |
//! | `GET …/deployments/{name}/rollout/history` | revisions |
//! | `POST …/deployments/{name}/rollout/restart` | new pods with the same template |
//! | `POST …/deployments/{name}/rollout/undo?toRevision=` | back to a revision's template |
//! | `GET …/{kind}/{name}/log?container=&previous=&follow=&tail=` | container logs (a workload picks one of its pods) |
//! | `POST …/pods/{name}/exec` | `{"command": [...], "container"?, "stdin"?, "timeoutSeconds"?}` → `{"stdout", "stderr", "exitCode"}` (non-interactive) |
//! | `GET\|PUT\|DELETE …/services/{name}/traffic` | traffic weights by pod-template hash |
//! | `GET /api/v1/events?namespace=&object=Kind/name` | events as Kubernetes `Event` objects |
//! | `POST /api/v1/down` | stop every workload, then the daemon |
//! | `GET /api/v1/info` | which daemon this is: `{id, home, pid, version, addr}` (as in `daemon.json`) |
//! | `… /api/v1/apps …` | Argo CD Applications: see [`crate::apps`] |
//! | `POST /api/webhook` | a Git push (GitHub's or a local hook's) refreshes the apps on that repo and ref: see [`crate::webhook`] |
//! | `GET /metrics`, `GET /healthz` | Prometheus text, liveness |
//!
//! Kinds on the URL take kubectl's names (`pods`, `po`, `deploy`, `svc`, …) or a Kind
//! name. Names in the URL and in applied objects follow Kubernetes' rules
//! ([`ferry_core::names`]): an apply of an object the API server would refuse is 422
//! with its message (`Pod "../x" is invalid: metadata.name: …`), a URL naming what no
//! object could be called is 400 (a `/` in a name travels as `%2F`). Errors are
//! `{"error": "...", "code": N}` with 400, 404, 409, 422 or 500 (401
//! without the token, 403 for a foreign `Host` or `Origin`, 415 for a body that is
//! not JSON or YAML: see [`crate::auth`]). Watches
//! and followed logs stream newline-delimited JSON (or text) until the client goes away
//! or the daemon stops.

mod exec;
mod logs;
mod traffic;
mod workloads;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use bytes::Bytes;
use ferry_core::names;
use ferry_core::object::is_namespaced;
use ferry_core::{Object, ObjectKey};
use ferry_engine::Engine;
use ferry_runtime::Runtime;
use ferry_runtime::cluster::{ApplyOptions, Cluster, Propagation, WatchEvent};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::kinds;
use crate::select;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The embedded runtime.
    pub runtime: Arc<Runtime>,
    /// The app controller (Argo CD Applications).
    pub engine: Arc<Engine>,
    /// Cancelled when the daemon stops; ends streams.
    pub shutdown: CancellationToken,
    /// Set once `POST /api/v1/down` has stopped the workloads.
    pub downed: Arc<AtomicBool>,
    /// Who may call the API (see [`crate::auth`]).
    pub auth: crate::auth::Policy,
    /// The secret webhook bodies are signed with; `None` takes them unsigned.
    pub webhook_secret: Option<Arc<[u8]>>,
    /// Which daemon serves this API (`GET /api/v1/info`); `None` in-process.
    pub instance: Option<Arc<crate::daemon::DaemonInfo>>,
}

impl AppState {
    /// State over `runtime` and `engine`; cancelling `shutdown` ends every stream.
    pub fn new(runtime: Arc<Runtime>, engine: Arc<Engine>, shutdown: CancellationToken) -> Self {
        Self {
            runtime,
            engine,
            shutdown,
            downed: Arc::new(AtomicBool::new(false)),
            auth: crate::auth::Policy::open(),
            webhook_secret: None,
            instance: None,
        }
    }

    fn cluster(&self) -> &Arc<Cluster> {
        &self.runtime.cluster
    }

    /// The Kind a URL segment names, or 404.
    fn kind(&self, name: &str) -> Result<String, ApiError> {
        if let Some(k) = kinds::known(name) {
            return Ok(k.kind.to_string());
        }
        let objects = self.cluster().list(None, None);
        let mut present: Vec<&str> = objects.iter().map(|o| o.kind()).collect();
        present.dedup();
        kinds::resolve(name, present).ok_or_else(|| {
            ApiError::not_found(format!(
                "the server doesn't have a resource type {name:?}; use a kind such as pods, deployments, services or a Kind name"
            ))
        })
    }

    /// An object of `kind` named `name` in `ns` (ignored for cluster-scoped kinds).
    fn find(&self, kind: &str, ns: &str, name: &str) -> Option<Object> {
        let ns = if is_namespaced(kind) { ns } else { "" };
        self.cluster()
            .list(Some(kind), Some(ns))
            .into_iter()
            .find(|o| o.name() == name)
    }

    /// Like [`AppState::find`], or 404 in kubectl's words — 400 when no object of
    /// `kind` could have that name or namespace (objects an older ferry stored with
    /// such names are still found, so they can be deleted).
    fn require(&self, kind: &str, ns: &str, name: &str) -> Result<Object, ApiError> {
        if let Some(found) = self.find(kind, ns, name) {
            return Ok(found);
        }
        if let Some(why) = invalid_path_names(kind, ns, name) {
            return Err(ApiError::bad_request(why));
        }
        let scope = if is_namespaced(kind) && ns != "default" {
            format!(" in namespace {ns:?}")
        } else {
            String::new()
        };
        Err(ApiError::not_found(format!(
            "{} not found{scope}",
            kinds::quoted_name(kind, name)
        )))
    }
}

/// The API's routes over `state`.
pub fn router(state: AppState) -> Router {
    let one = "/api/v1/namespaces/{ns}/{kind}/{name}";
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/api/v1/apply", post(apply))
        .route("/api/v1/down", post(down))
        .route("/api/v1/info", get(crate::daemon::info))
        .route("/api/v1/events", get(events))
        .merge(crate::apps::routes())
        .merge(crate::webhook::routes())
        .route("/api/v1/namespaces", get(list_namespaces))
        .route(
            "/api/v1/namespaces/{name}",
            get(get_namespace).delete(delete_namespace),
        )
        .route("/api/v1/{kind}", get(list_all))
        .route(
            "/api/v1/{kind}/{name}",
            get(get_cluster_scoped).delete(delete_cluster_scoped),
        )
        .route("/api/v1/namespaces/{ns}/{kind}", get(list_in))
        .route(one, get(get_one).delete(delete_one))
        .route(&format!("{one}/scale"), put(workloads::scale))
        .route(&format!("{one}/rollout"), get(workloads::status))
        .route(&format!("{one}/rollout/history"), get(workloads::history))
        .route(&format!("{one}/rollout/restart"), post(workloads::restart))
        .route(&format!("{one}/rollout/undo"), post(workloads::undo))
        .route(&format!("{one}/log"), get(logs::logs))
        .route(&format!("{one}/exec"), post(exec::exec))
        .route(
            &format!("{one}/traffic"),
            get(traffic::get_weights)
                .put(traffic::set_weights)
                .delete(traffic::clear_weights),
        )
        .fallback(|| async { ApiError::not_found("no such route; the API lives under /api/v1") })
        .layer(axum::middleware::from_fn_with_state(
            state.auth.clone(),
            crate::auth::require,
        ))
        // Outermost, so an oversized body is refused before anything reads it.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(limit_body))
        .with_state(state)
}

/// Largest request body read, in bytes: the Kubernetes API server's 3 MiB. (axum's
/// own default is 2 MB, refused with a bare "length limit exceeded".)
pub const MAX_BODY_BYTES: usize = 3 << 20;

/// Refuses a body over [`MAX_BODY_BYTES`] with a 413 that says what to do: at once
/// when `Content-Length` says so, and in place of axum's terse answer when a body
/// without a length turns out too big while it is read.
async fn limit_body(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = |size: Option<u64>| {
        let size = size.map(|s| format!(" of {s} bytes")).unwrap_or_default();
        ApiError {
            code: axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            message: format!(
                "Request entity too large: limit is {MAX_BODY_BYTES}: the request body{size} is more than the API reads; send objects one at a time, and keep any one object under 1.5 MiB"
            ),
        }
        .into_response()
    };
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return too_large(declared);
    }
    let res = next.run(req).await;
    if res.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE
        && res
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            != Some("application/json")
    {
        return too_large(None);
    }
    res
}

/// Why `ns`/`name` from a URL can name no object of `kind`, in the API server's words;
/// `None` when both are valid.
fn invalid_path_names(kind: &str, ns: &str, name: &str) -> Option<String> {
    let rule = names::NameRule::of(kinds::group_of(kind), kind);
    let mut errors = Vec::new();
    for m in rule.check(name, false) {
        errors.push(format!(
            "metadata.name: Invalid value: {}: {m}",
            names::go_quote(name)
        ));
    }
    if is_namespaced(kind) {
        for m in names::NameRule::Label.check(ns, false) {
            errors.push(format!(
                "metadata.namespace: Invalid value: {}: {m}",
                names::go_quote(ns)
            ));
        }
    }
    (!errors.is_empty()).then(|| {
        format!(
            "{} is not a valid name: {}; no object can have it (a '/' in a name must be sent as %2F)",
            kinds::quoted_name(kind, name),
            errors.join(", ")
        )
    })
}

/// A query flag: present and not `false`/`0`.
pub(crate) fn flag(v: &Option<String>) -> bool {
    v.as_deref()
        .is_some_and(|s| !matches!(s.trim().to_ascii_lowercase().as_str(), "false" | "0" | "no"))
}

/// A streaming response fed by `rx`.
pub(crate) fn stream_response(rx: mpsc::Receiver<Bytes>, content_type: &'static str) -> Response {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    ([(CONTENT_TYPE, content_type)], Body::from_stream(stream)).into_response()
}

/// A `List` of objects, as `kubectl get -o json` prints one.
fn list_of(items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items})
}

// ---- objects -------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    label_selector: Option<String>,
    field_selector: Option<String>,
    watch: Option<String>,
}

/// Which objects a list or watch is about.
#[derive(Clone, Debug)]
struct Filter {
    kind: String,
    namespace: Option<String>,
    name: Option<String>,
    selector: Option<Value>,
}

impl Filter {
    fn new(kind: String, namespace: Option<String>, q: &ListQuery) -> Result<Self, ApiError> {
        let namespace = namespace.filter(|_| is_namespaced(&kind));
        let mut f = Filter {
            kind,
            namespace,
            name: None,
            selector: None,
        };
        if let Some(s) = q.label_selector.as_deref().filter(|s| !s.trim().is_empty()) {
            f.selector = Some(select::parse(s).map_err(ApiError::bad_request)?);
        }
        for term in q
            .field_selector
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .filter(|t| !t.trim().is_empty())
        {
            match term
                .split_once('=')
                .map(|(k, v)| (k.trim(), v.trim().trim_start_matches('=')))
            {
                Some(("metadata.name", v)) => f.name = Some(v.to_string()),
                Some(("metadata.namespace", v)) => f.namespace = Some(v.to_string()),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "field selector {term:?} is not supported; use metadata.name=NAME or metadata.namespace=NS"
                    )));
                }
            }
        }
        Ok(f)
    }

    fn matches(&self, o: &Object) -> bool {
        o.kind() == self.kind
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| o.namespace() == ns)
            && self.name.as_deref().is_none_or(|n| o.name() == n)
            && self.selector.as_ref().is_none_or(|s| {
                ferry_runtime::controller::selector_matches(
                    s,
                    o.value()
                        .pointer("/metadata/labels")
                        .and_then(Value::as_object),
                )
            })
    }

    fn list(&self, cluster: &Cluster) -> Vec<Object> {
        cluster
            .list(Some(&self.kind), self.namespace.as_deref())
            .into_iter()
            .filter(|o| self.matches(o))
            .collect()
    }
}

async fn list_all(
    State(s): State<AppState>,
    Path(kind): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let kind = s.kind(&kind)?;
    list(s, Filter::new(kind, None, &q)?, &q)
}

async fn list_in(
    State(s): State<AppState>,
    Path((ns, kind)): Path<(String, String)>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let kind = s.kind(&kind)?;
    list(s, Filter::new(kind, Some(ns), &q)?, &q)
}

async fn list_namespaces(
    State(s): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    list(s, Filter::new("Namespace".into(), None, &q)?, &q)
}

fn list(s: AppState, filter: Filter, q: &ListQuery) -> Result<Response, ApiError> {
    if filter.kind == "Event" {
        if flag(&q.watch) {
            return Err(ApiError::bad_request(
                "watching events is not supported; run 'ferry events' again",
            ));
        }
        return Ok(Json(list_of(event_objects(
            &s,
            filter.namespace.as_deref(),
            None,
        )?))
        .into_response());
    }
    if flag(&q.watch) {
        return Ok(watch(s, filter));
    }
    let items = filter
        .list(s.cluster())
        .into_iter()
        .map(Object::into_value)
        .collect();
    Ok(Json(list_of(items)).into_response())
}

async fn get_one(
    State(s): State<AppState>,
    Path((ns, kind, name)): Path<(String, String, String)>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let kind = s.kind(&kind)?;
    get_object(s, kind, ns, name, &q)
}

async fn get_cluster_scoped(
    State(s): State<AppState>,
    Path((kind, name)): Path<(String, String)>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let kind = s.kind(&kind)?;
    get_object(s, kind, "default".into(), name, &q)
}

async fn get_namespace(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    get_object(s, "Namespace".into(), String::new(), name, &q)
}

fn get_object(
    s: AppState,
    kind: String,
    ns: String,
    name: String,
    q: &ListQuery,
) -> Result<Response, ApiError> {
    if flag(&q.watch) {
        let mut filter = Filter::new(kind, Some(ns), q)?;
        filter.name = Some(name);
        return Ok(watch(s, filter));
    }
    if kind == "Event" {
        let found = event_objects(&s, Some(&ns), None)?
            .into_iter()
            .find(|e| e.pointer("/metadata/name").and_then(Value::as_str) == Some(name.as_str()));
        return found
            .map(|e| Json(e).into_response())
            .ok_or_else(|| ApiError::not_found(format!("events {name:?} not found")));
    }
    Ok(Json(s.require(&kind, &ns, &name)?.into_value()).into_response())
}

/// Streams `{"type": "ADDED"|"MODIFIED"|"DELETED", "object": …}` lines: the objects
/// that match now (as ADDED), then every change, until the client or the daemon goes.
fn watch(s: AppState, filter: Filter) -> Response {
    let mut rx = s.cluster().subscribe();
    let initial = filter.list(s.cluster());
    let (tx, body) = mpsc::channel::<Bytes>(256);
    tokio::spawn(async move {
        let line = |kind: &str, o: &Object| {
            Bytes::from(format!("{}\n", json!({"type": kind, "object": o.value()})))
        };
        for o in &initial {
            if tx.send(line("ADDED", o)).await.is_err() {
                return;
            }
        }
        loop {
            let ev = tokio::select! {
                _ = s.shutdown.cancelled() => return,
                _ = tx.closed() => return,
                ev = rx.recv() => ev,
            };
            let out = match ev {
                Ok(ev) if filter.matches(ev.object()) => {
                    let kind = match &ev {
                        WatchEvent::Added(_) => "ADDED",
                        WatchEvent::Modified(_) => "MODIFIED",
                        WatchEvent::Deleted(_) => "DELETED",
                    };
                    vec![line(kind, ev.object())]
                }
                Ok(_) => continue,
                // Too far behind: send the current state again rather than nothing.
                Err(broadcast::error::RecvError::Lagged(_)) => filter
                    .list(s.cluster())
                    .iter()
                    .map(|o| line("MODIFIED", o))
                    .collect(),
                Err(broadcast::error::RecvError::Closed) => return,
            };
            for b in out {
                if tx.send(b).await.is_err() {
                    return;
                }
            }
        }
    });
    stream_response(body, "application/x-ndjson")
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteQuery {
    propagation: Option<String>,
    propagation_policy: Option<String>,
    cascade: Option<String>,
}

fn propagation(q: &DeleteQuery) -> Result<Propagation, ApiError> {
    let raw = q
        .propagation
        .as_deref()
        .or(q.propagation_policy.as_deref())
        .or(q.cascade.as_deref());
    match raw.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        None | Some("" | "background" | "true") => Ok(Propagation::Background),
        Some("foreground") => Ok(Propagation::Foreground),
        Some("orphan" | "false") => Ok(Propagation::Orphan),
        Some(other) => Err(ApiError::bad_request(format!(
            "unknown propagation {other:?}; use background, foreground or orphan"
        ))),
    }
}

async fn delete_one(
    State(s): State<AppState>,
    Path((ns, kind, name)): Path<(String, String, String)>,
    Query(q): Query<DeleteQuery>,
) -> Result<Json<Value>, ApiError> {
    let kind = s.kind(&kind)?;
    delete(&s, &kind, &ns, &name, &q)
}

async fn delete_cluster_scoped(
    State(s): State<AppState>,
    Path((kind, name)): Path<(String, String)>,
    Query(q): Query<DeleteQuery>,
) -> Result<Json<Value>, ApiError> {
    let kind = s.kind(&kind)?;
    delete(&s, &kind, "default", &name, &q)
}

async fn delete_namespace(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> Result<Json<Value>, ApiError> {
    delete(&s, "Namespace", "", &name, &q)
}

fn delete(
    s: &AppState,
    kind: &str,
    ns: &str,
    name: &str,
    q: &DeleteQuery,
) -> Result<Json<Value>, ApiError> {
    let propagation = propagation(q)?;
    let obj = s.require(kind, ns, name)?;
    s.cluster()
        .delete(&Cluster::canonical_key(&obj), propagation)?;
    tracing::info!(
        "deleted {}/{} in {:?} ({propagation:?})",
        obj.kind(),
        obj.name(),
        obj.namespace()
    );
    Ok(Json(json!({
        "kind": obj.kind(), "group": obj.group(), "namespace": obj.namespace(), "name": obj.name(),
        "deleted": true,
    })))
}

// ---- apply ---------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApplyQuery {
    field_manager: Option<String>,
    force: Option<String>,
    dry_run: Option<String>,
    namespace: Option<String>,
}

/// Server-set fields a manifest copied from `get -o yaml` may carry; apply ignores them.
fn strip_server_fields(o: &mut Object) {
    let meta = o.metadata_mut();
    for f in [
        "managedFields",
        "resourceVersion",
        "uid",
        "creationTimestamp",
        "generation",
        "selfLink",
    ] {
        meta.remove(f);
    }
    if let Some(m) = o.value_mut().as_object_mut() {
        m.remove("status");
    }
}

async fn apply(
    State(s): State<AppState>,
    Query(q): Query<ApplyQuery>,
    body: String,
) -> Result<Json<Value>, ApiError> {
    let mut objects = ferry_core::parse::parse_str(&body, "<request>")
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if objects.is_empty() {
        return Err(ApiError::bad_request("no objects passed to apply"));
    }
    let want_ns = q.namespace.as_deref().filter(|n| !n.is_empty());
    for o in &mut objects {
        strip_server_fields(o);
        if !is_namespaced(o.kind()) {
            continue;
        }
        match (o.namespace(), want_ns) {
            ("", Some(ns)) => o.set_namespace(ns),
            ("", None) => o.set_namespace("default"),
            (have, Some(ns)) if have != ns => {
                return Err(ApiError::bad_request(format!(
                    "the namespace from the provided object {have:?} does not match the namespace {ns:?}; pass --namespace={have} or remove the namespace from the manifest"
                )));
            }
            _ => {}
        }
    }
    // Names first, all of them, answered as the API server answers: 422 Invalid with
    // every field error of the first invalid object (the store would refuse it too).
    for o in &objects {
        if let Err(invalid) = names::validate_object(o) {
            return Err(ApiError {
                code: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                message: invalid.to_string(),
            });
        }
    }
    let opts = ApplyOptions {
        field_manager: q
            .field_manager
            .clone()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "ferry".into()),
        force: flag(&q.force),
        dry_run: flag(&q.dry_run),
    };
    let label = |o: &Object| kinds::resource_name(o.kind(), o.group(), o.name());
    // Every object is checked (a dry run: validation and conflicts) before the first is applied.
    let check = ApplyOptions {
        dry_run: true,
        ..opts.clone()
    };
    for o in &objects {
        s.runtime
            .apply(o, &check)
            .map_err(|e| ApiError::from(e).context(label(o)))?;
    }
    let mut items = Vec::new();
    for o in &objects {
        let before = s.cluster().get(&Cluster::canonical_key(o));
        let after = s
            .runtime
            .apply(o, &opts)
            .map_err(|e| ApiError::from(e).context(label(o)))?;
        let action = match &before {
            None => "created",
            Some(b) if opts.dry_run && *b == after => "unchanged",
            Some(b) if !opts.dry_run && rv(b) == rv(&after) => "unchanged",
            Some(_) => "configured",
        };
        if !opts.dry_run && action != "unchanged" {
            tracing::info!("{} {action} by {}", label(o), opts.field_manager);
        }
        items.push(json!({"action": action, "object": after.into_value()}));
    }
    Ok(Json(json!({"dryRun": opts.dry_run, "items": items})))
}

fn rv(o: &Object) -> Option<&str> {
    o.value()
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
}

// ---- events --------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
struct EventsQuery {
    namespace: Option<String>,
    object: Option<String>,
}

/// Stored events as Kubernetes `Event` objects, oldest first. `object` is
/// `KIND/NAME` with any kubectl kind name.
fn event_objects(
    s: &AppState,
    namespace: Option<&str>,
    object: Option<&str>,
) -> Result<Vec<Value>, ApiError> {
    let object = match object.filter(|o| !o.is_empty()) {
        Some(o) => {
            let (k, n) = o.split_once('/').ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{o:?}: name the object as KIND/NAME, e.g. deploy/web"
                ))
            })?;
            Some(format!("{}/{n}", s.kind(k)?))
        }
        None => None,
    };
    let rows = s.cluster().events(namespace, object.as_deref())?;
    Ok(aggregate_events(rows).iter().map(event_object).collect())
}

/// One event series: rows with the same object, type, reason and message, counted
/// together as Kubernetes' event recorder does.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Series {
    first_ms: i64,
    last_ms: i64,
    count: i64,
    id: i64,
    namespace: String,
    object: String,
    kind: String,
    reason: String,
    message: String,
}

/// Folds repeated events into series, ordered by their last occurrence.
pub(crate) fn aggregate_events(rows: Vec<ferry_store::EventRow>) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    let mut at: std::collections::HashMap<(String, String, String, String, String), usize> =
        std::collections::HashMap::new();
    for row in rows {
        let key = (
            row.namespace.clone(),
            row.object.clone(),
            row.kind.clone(),
            row.reason.clone(),
            row.message.clone(),
        );
        match at.get(&key) {
            Some(&i) => {
                let series = &mut out[i];
                series.count += row.count.max(1);
                series.first_ms = series.first_ms.min(row.time_ms);
                series.last_ms = series.last_ms.max(row.time_ms);
                series.id = series.id.max(row.id);
            }
            None => {
                at.insert(key, out.len());
                out.push(Series {
                    first_ms: row.time_ms,
                    last_ms: row.time_ms,
                    count: row.count.max(1),
                    id: row.id,
                    namespace: row.namespace,
                    object: row.object,
                    kind: row.kind,
                    reason: row.reason,
                    message: row.message,
                });
            }
        }
    }
    out.sort_by_key(|s| (s.last_ms, s.id));
    out
}

fn rfc3339_ms(ms: i64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64))
        .to_string()
}

fn event_object(e: &Series) -> Value {
    let (okind, oname) = e.object.split_once('/').unwrap_or(("", e.object.as_str()));
    let (first, last) = (rfc3339_ms(e.first_ms), rfc3339_ms(e.last_ms));
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{oname}.{:x}", e.id), "namespace": e.namespace, "creationTimestamp": first},
        "involvedObject": {"kind": okind, "name": oname, "namespace": e.namespace},
        "reason": e.reason, "message": e.message, "type": e.kind, "count": e.count,
        "firstTimestamp": first, "lastTimestamp": last, "source": {"component": "ferry"},
    })
}

async fn events(
    State(s): State<AppState>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Value>, ApiError> {
    let ns = q.namespace.as_deref().filter(|n| !n.is_empty());
    Ok(Json(list_of(event_objects(&s, ns, q.object.as_deref())?)))
}

// ---- daemon --------------------------------------------------------------------

async fn down(State(s): State<AppState>) -> Json<Value> {
    tracing::info!("ferry down: stopping every workload");
    let pods = s.cluster().list(Some("Pod"), None).len();
    s.runtime.down().await;
    s.downed.store(true, Ordering::SeqCst);
    s.shutdown.cancel();
    Json(json!({"stopped": true, "pods": pods}))
}

async fn metrics(State(s): State<AppState>) -> Response {
    let mut out = s.runtime.metrics.render();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    let mut running = 0usize;
    for o in s.cluster().list(None, None) {
        *by_kind.entry(o.kind().to_string()).or_default() += 1;
        if o.kind() == "Pod"
            && o.value().pointer("/status/phase").and_then(Value::as_str) == Some("Running")
        {
            running += 1;
        }
    }
    out.push_str("# HELP ferry_objects Objects in the runtime's store, by kind.\n# TYPE ferry_objects gauge\n");
    for (k, n) in by_kind {
        out.push_str(&format!("ferry_objects{{kind=\"{k}\"}} {n}\n"));
    }
    out.push_str(
        "# HELP ferry_pods_running Pods in phase Running.\n# TYPE ferry_pods_running gauge\n",
    );
    out.push_str(&format!("ferry_pods_running {running}\n"));
    (
        [(CONTENT_TYPE, ferry_runtime::proxy::Metrics::CONTENT_TYPE)],
        out,
    )
        .into_response()
}

/// The key of an object as stored.
pub(crate) fn key_of(o: &Object) -> ObjectKey {
    Cluster::canonical_key(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, time_ms: i64, reason: &str, message: &str) -> ferry_store::EventRow {
        ferry_store::EventRow {
            id,
            time_ms,
            namespace: "default".into(),
            object: "Pod/web-1".into(),
            kind: "Normal".into(),
            reason: reason.into(),
            message: message.into(),
            count: 1,
        }
    }

    #[test]
    fn repeated_events_fold_into_one_series_ordered_by_last_time() {
        let series = aggregate_events(vec![
            row(1, 100, "Created", "Created container: app"),
            row(2, 110, "BackOff", "Back-off"),
            row(3, 120, "Created", "Created container: app"),
        ]);
        assert_eq!(series.len(), 2);
        assert_eq!((series[0].reason.as_str(), series[0].count), ("BackOff", 1));
        assert_eq!(
            (
                series[1].reason.as_str(),
                series[1].count,
                series[1].first_ms,
                series[1].last_ms
            ),
            ("Created", 2, 100, 120)
        );
        let e = event_object(&series[1]);
        assert_eq!(e["involvedObject"]["kind"], "Pod");
        assert_eq!(e["count"], 2);
    }
}
