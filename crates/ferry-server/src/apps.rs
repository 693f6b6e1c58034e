//! The apps API: Argo CD Applications run by [`ferry_engine::Engine`].
//!
//! | route | what |
//! | --- | --- |
//! | `GET /api/v1/apps` | every app (Argo-shaped `Application`s with status) as a `List` |
//! | `POST /api/v1/apps?upsert=` | create from an `Application` (YAML or JSON body) |
//! | `GET\|PUT\|DELETE /api/v1/apps/{name}` | one app; `PUT` replaces its spec; `DELETE ?cascade=` also deletes its objects |
//! | `GET /api/v1/apps/{name}/diff` | `[{group, kind, namespace, name, status, diff}]` |
//! | `POST /api/v1/apps/{name}/sync` | JSON [`SyncRequest`]; answers the finished operation |
//! | `POST /api/v1/apps/{name}/refresh?hard=` | fetch and compare now |
//! | `GET /api/v1/apps/{name}/history` | sync history, oldest first |
//! | `POST /api/v1/apps/{name}/rollback/{id}` | sync history entry `id` again, pausing automated sync |
//! | `GET /api/v1/apps/{name}/wait?sync=&health=&operation=&timeout=` | the app once it is as asked (408 on timeout) |

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Router, body::Bytes};
use ferry_core::Object;
use ferry_core::argo::{self, Application};
use ferry_core::names::{self, NameRule};
use ferry_engine::{Error as EngineError, SyncRequest, WaitFor};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{AppState, flag};
use crate::error::ApiError;

/// The apps routes, to be merged into the API's router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/apps", get(list).post(create))
        .route("/api/v1/apps/{name}", get(get_app).put(set).delete(delete))
        .route("/api/v1/apps/{name}/diff", get(diff))
        .route("/api/v1/apps/{name}/sync", post(sync))
        .route("/api/v1/apps/{name}/refresh", post(refresh))
        .route("/api/v1/apps/{name}/history", get(history))
        .route("/api/v1/apps/{name}/rollback/{id}", post(rollback))
        .route("/api/v1/apps/{name}/wait", get(wait))
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let message = e.to_string();
        match e {
            // A name no app can have is a bad request, not a missing app: say why.
            EngineError::NotFound { app } if !valid_app_name(&app) => {
                Self::bad_request(invalid_app_name(&app))
            }
            EngineError::NotFound { .. } | EngineError::HistoryNotFound { .. } => {
                Self::not_found(message)
            }
            EngineError::AlreadyExists { .. } | EngineError::Busy { .. } => Self::conflict(message),
            EngineError::Invalid { .. } => Self::bad_request(message),
            EngineError::Timeout { .. } => Self {
                code: StatusCode::REQUEST_TIMEOUT,
                message,
            },
            EngineError::Target { .. } | EngineError::Store(_) | EngineError::State { .. } => {
                Self::internal(message)
            }
        }
    }
}

/// Whether `name` may name an app (an `Application` is named as any object is).
fn valid_app_name(name: &str) -> bool {
    NameRule::Subdomain.check(name, false).is_empty()
}

/// Why `name` names no app, in the API server's words.
fn invalid_app_name(name: &str) -> String {
    format!(
        "application {} is invalid: metadata.name: Invalid value: {}: {}; app names are lowercase RFC 1123 subdomains",
        names::go_quote(name),
        names::go_quote(name),
        NameRule::Subdomain.check(name, false).join(", ")
    )
}

fn json_of<T: serde::Serialize>(v: &T) -> Result<Json<Value>, ApiError> {
    serde_json::to_value(v)
        .map(Json)
        .map_err(|e| ApiError::internal(format!("encoding the answer: {e}")))
}

/// The one `Application` of a request body (YAML or JSON).
fn application_of(body: &Bytes) -> Result<Object, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the request body is not UTF-8 text"))?;
    let mut objects = ferry_core::parse::parse_str(text, "<request>")
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if objects.len() != 1 {
        return Err(ApiError::bad_request(format!(
            "expected one Application in the request body, found {} objects",
            objects.len()
        )));
    }
    let obj = objects.remove(0);
    if obj.kind() != "Application" {
        return Err(ApiError::bad_request(format!(
            "expected kind Application (apiVersion {}), got {:?}",
            argo::API_VERSION,
            obj.kind()
        )));
    }
    Ok(obj)
}

/// Moves user names and passwords written into `http(s)` `repoURL`s
/// (`https://user:token@host/repo.git`) into the repository credentials
/// (`repos.json`, passwords encrypted at rest) and leaves the URL without them in the
/// Application, so no spec, history entry, event or error ever shows them. The whole
/// user-info goes, not just the password: a token is often written as the user name
/// (`https://TOKEN@github.com/…`).
fn take_repo_credentials(s: &AppState, obj: &mut Object) -> Result<(), ApiError> {
    let mut moved: Vec<(String, ferry_git::Credentials)> = Vec::new();
    let value = obj.value_mut();
    let mut fields: Vec<&mut Value> = Vec::new();
    let spec = value.get_mut("spec").and_then(Value::as_object_mut);
    if let Some(spec) = spec {
        for (key, field) in spec.iter_mut() {
            match (key.as_str(), field) {
                ("source", Value::Object(src)) => fields.extend(src.get_mut("repoURL")),
                ("sources", Value::Array(list)) => {
                    fields.extend(list.iter_mut().filter_map(|src| src.get_mut("repoURL")))
                }
                _ => {}
            }
        }
    }
    for field in fields {
        let Some(url) = field.as_str() else { continue };
        let Some((bare, username, password)) = ferry_git::split_userinfo(url) else {
            continue;
        };
        *field = Value::String(bare.clone());
        moved.push((
            bare,
            ferry_git::Credentials {
                username,
                password,
                ..ferry_git::Credentials::default()
            },
        ));
    }
    if moved.is_empty() {
        return Ok(());
    }
    if let Some(home) = s.instance.as_ref().map(|i| i.home.clone()) {
        let mut entries: Vec<crate::repos::RepoEntry> = crate::repos::load(&home)
            .map_err(|e| ApiError::internal(e.to_string()))?
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        for (url, creds) in &moved {
            let insecure = entries.iter().any(|e| &e.url == url && e.insecure);
            entries.retain(|e| &e.url != url);
            entries.push(crate::repos::RepoEntry {
                url: url.clone(),
                username: creds.username.clone(),
                password: creds.password.clone(),
                insecure,
            });
        }
        crate::repos::save(&home, &entries).map_err(|e| ApiError::internal(e.to_string()))?;
    }
    for (url, creds) in moved {
        tracing::info!(
            app = obj.name(),
            "credentials in repoURL {url} moved to the repository credentials"
        );
        s.engine.set_repo_credentials(&url, creds);
    }
    Ok(())
}

async fn list(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let apps = s.engine.list_apps()?;
    let items = serde_json::to_value(&apps)
        .map_err(|e| ApiError::internal(format!("encoding the apps: {e}")))?;
    Ok(Json(
        json!({"apiVersion": argo::API_VERSION, "kind": "ApplicationList", "items": items}),
    ))
}

#[derive(Debug, Default, Deserialize)]
struct UpsertQuery {
    upsert: Option<String>,
}

async fn create(
    State(s): State<AppState>,
    Query(q): Query<UpsertQuery>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut obj = application_of(&body)?;
    take_repo_credentials(&s, &mut obj)?;
    let warnings = s.engine.create_app_from_object(&obj, flag(&q.upsert))?;
    let app = s.engine.get_app(obj.name())?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"warnings": warnings, "app": app})),
    ))
}

async fn get_app(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let app = s
        .engine
        .get_app(&name)?
        .ok_or(EngineError::NotFound { app: name })?;
    json_of(&app)
}

async fn set(
    State(s): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let mut obj = application_of(&body)?;
    take_repo_credentials(&s, &mut obj)?;
    if obj.name() != name {
        return Err(ApiError::bad_request(format!(
            "the Application in the body is named {:?}, the URL names {name:?}",
            obj.name()
        )));
    }
    let app: Application = argo::decode(&obj).map_err(|e| EngineError::Invalid {
        app: name.clone(),
        errors: vec![e.to_string()],
    })?;
    let warnings = s.engine.update_app(app)?;
    let app = s.engine.get_app(&name)?;
    Ok(Json(json!({"warnings": warnings, "app": app})))
}

#[derive(Debug, Default, Deserialize)]
struct DeleteQuery {
    cascade: Option<String>,
}

async fn delete(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> Result<Json<Value>, ApiError> {
    // Argo's default: cascade unless asked not to.
    let cascade = q.cascade.is_none() || flag(&q.cascade);
    let deleted = s.engine.delete_app(&name, cascade).await?;
    json_of(&deleted)
}

async fn diff(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let diffs = s.engine.diff(&name).await?;
    let items: Vec<Value> = diffs
        .iter()
        .map(|d| {
            json!({
                "group": d.key.group,
                "kind": d.key.kind,
                "namespace": d.key.namespace,
                "name": d.key.name,
                "status": d.status.to_string(),
                "diff": d.unified(),
            })
        })
        .collect();
    Ok(Json(Value::Array(items)))
}

async fn sync(
    State(s): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: SyncRequest = if body.iter().all(u8::is_ascii_whitespace) {
        SyncRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the sync request is not valid: {e}")))?
    };
    let op = s.engine.sync(&name, req).await?;
    json_of(&op)
}

#[derive(Debug, Default, Deserialize)]
struct RefreshQuery {
    hard: Option<String>,
}

async fn refresh(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<RefreshQuery>,
) -> Result<Json<Value>, ApiError> {
    let app = s.engine.refresh(&name, flag(&q.hard)).await?;
    json_of(&app)
}

async fn history(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if s.engine.get_app(&name)?.is_none() {
        return Err(EngineError::NotFound { app: name }.into());
    }
    json_of(&s.engine.history(&name)?)
}

async fn rollback(
    State(s): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let id: i64 = id.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "history id {id:?} is not a number; `ferry app history {name}` lists them"
        ))
    })?;
    let op = s.engine.rollback(&name, id).await?;
    json_of(&op)
}

#[derive(Debug, Default, Deserialize)]
struct WaitQuery {
    sync: Option<String>,
    health: Option<String>,
    operation: Option<String>,
    timeout: Option<String>,
}

async fn wait(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<WaitQuery>,
) -> Result<Json<Value>, ApiError> {
    let mut what = WaitFor {
        sync: flag(&q.sync),
        health: flag(&q.health),
        operation: flag(&q.operation),
    };
    if !what.sync && !what.health && !what.operation {
        // `argocd app wait` with no flag waits for all three.
        what = WaitFor {
            sync: true,
            health: true,
            operation: true,
        };
    }
    let timeout = match q.timeout.as_deref().filter(|t| !t.is_empty()) {
        None => Duration::from_secs(300),
        Some(t) => parse_timeout(t)?,
    };
    let app = s.engine.wait(&name, what, timeout).await?;
    json_of(&app)
}

/// `120s`, `2m`, or a bare number of seconds.
fn parse_timeout(t: &str) -> Result<Duration, ApiError> {
    if let Ok(secs) = t.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Ok(Duration::from_secs_f64(secs));
    }
    humantime::parse_duration(t).map_err(|e| {
        ApiError::bad_request(format!(
            "timeout {t:?}: {e}; give a duration such as 120s or 5m"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_seconds_or_durations() {
        assert_eq!(parse_timeout("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_timeout("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(
            parse_timeout("nope").unwrap_err().code,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn engine_errors_map_to_http_statuses() {
        let code = |e: EngineError| ApiError::from(e).code;
        assert_eq!(
            code(EngineError::NotFound { app: "a".into() }),
            StatusCode::NOT_FOUND
        );
        let bad = ApiError::from(EngineError::NotFound { app: "../x".into() });
        assert_eq!(bad.code, StatusCode::BAD_REQUEST, "a name no app can have");
        assert!(
            bad.message.contains("a lowercase RFC 1123 subdomain"),
            "{bad}"
        );
        assert_eq!(
            code(EngineError::Busy { app: "a".into() }),
            StatusCode::CONFLICT
        );
        assert_eq!(
            code(EngineError::Invalid {
                app: "a".into(),
                errors: vec!["spec.source: required".into()]
            }),
            StatusCode::BAD_REQUEST
        );
    }
}
