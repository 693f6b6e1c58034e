//! The engine: the apps it manages, the API the daemon and CLI call, refresh, and the
//! controller loop that refreshes, auto-syncs and self-heals.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use ferry_core::argo::{self, Application};
use ferry_core::diff::ResourceDiff;
use ferry_core::health::HealthStatus;
use ferry_core::plan::delete_order;
use ferry_core::target::{Propagation, Selector, Target};
use ferry_core::{Object, ObjectKey};
use ferry_git::{Credentials, RepoCache};
use ferry_store::Db;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::config::EngineConfig;
use crate::error::{Error, Result};
use crate::source::{FetchMode, Sources};
use crate::status::{
    AppStatus, AppView, HistoryEntry, OperationPhase, OperationState, StatusView, SyncCode,
};
use crate::sync::{SyncArgs, SyncRequest};
use crate::tracking::{self, INSTANCE_LABEL};

/// Destinations that mean "the engine's one target".
const LOCAL_SERVERS: &[&str] = &["https://kubernetes.default.svc", "local"];
const LOCAL_NAMES: &[&str] = &["in-cluster", "local"];

/// Now as RFC 3339 (seconds, UTC).
pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// A commit shortened for messages.
pub(crate) fn short(rev: &str) -> &str {
    if rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()) {
        &rev[..7]
    } else {
        rev
    }
}

/// What automated sync remembers across restarts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Automation {
    /// The commit of the last automated sync (the rule: one attempt per commit).
    pub attempted_revision: Option<String>,
    /// Whether that attempt failed (then it is not repeated for that commit).
    pub attempt_failed: bool,
    /// Automated sync is paused (rollback) while the target revision resolves to this.
    pub paused_at: Option<String>,
    /// Why it is paused.
    pub pause_reason: Option<String>,
}

/// When the controller next looks at one app.
#[derive(Clone, Debug, Default)]
pub(crate) struct Schedule {
    pub(crate) last_fetch: Option<Instant>,
    pub(crate) last_compare: Option<Instant>,
    /// A refresh was asked for (API, spec change, shared object): how far to go.
    pub(crate) requested: Option<FetchMode>,
    /// The target changed since the last comparison.
    pub(crate) live_changed: bool,
    /// A reconcile task is running for the app.
    pub(crate) in_flight: bool,
    /// Since when the app has been due for a refresh while every refresh slot was taken.
    pub(crate) waiting_since: Option<std::time::Instant>,
    /// Self-heal attempts since the app was last Synced.
    pub(crate) self_heal_attempts: u32,
    /// Earliest next self-heal.
    pub(crate) next_self_heal: Option<Instant>,
}

/// One app as the engine holds it.
pub(crate) struct AppEntry {
    pub app: Application,
    pub status: AppStatus,
    pub operation: Option<OperationState>,
    pub automation: Automation,
    /// The message of the last failed sync, shown as a `SyncError` condition.
    pub sync_error: Option<String>,
    /// Set while the repository cannot be fetched: why. Nothing is pruned meanwhile.
    pub unreachable: Option<String>,
    /// Keys of the non-hook objects of the last render: what the app claims.
    pub claims: BTreeSet<ObjectKey>,
    pub op_lock: Arc<tokio::sync::Mutex<()>>,
    pub refresh_lock: Arc<tokio::sync::Mutex<()>>,
    /// The status last written to the database (without `reconciledAt`).
    pub(crate) saved_status: AppStatus,
    pub(crate) sched: Schedule,
}

/// What one refresh found, for the automated-sync decision.
#[derive(Clone, Debug)]
pub(crate) struct Refreshed {
    /// The resolved target revision.
    pub revision: String,
    /// The app's sync status.
    pub sync: SyncCode,
    /// Whether a sync would change something: an object OutOfSync or Missing, or one
    /// automated prune would delete.
    pub actionable: bool,
}

/// The app controller: refresh, compare, sync, prune, self-heal, retry, health,
/// history and rollback of Argo CD `Application`s against one [`Target`].
pub struct Engine {
    pub(crate) db: Arc<Db>,
    pub(crate) target: Arc<dyn Target>,
    pub(crate) sources: Arc<Sources>,
    pub(crate) config: EngineConfig,
    pub(crate) apps: Mutex<BTreeMap<String, AppEntry>>,
    updates: watch::Sender<u64>,
    pub(crate) wake: Notify,
    /// Every app's claimed keys, inverted: key → the apps that render it. Kept in
    /// step with each app's `claims` (under the `apps` lock, taken first).
    pub(crate) claims_index: Mutex<ClaimsMap>,
    /// Refreshes the controller may run at once ([`EngineConfig::status_processors`]).
    pub(crate) refresh_slots: Arc<tokio::sync::Semaphore>,
    /// Automated syncs at once ([`EngineConfig::operation_processors`]).
    pub(crate) sync_slots: tokio::sync::Semaphore,
    /// Apps whose operation a killed daemon left running: the controller takes each
    /// up once, first thing.
    pub(crate) interrupted: Mutex<Vec<String>>,
}

/// How many daemons in a row may take up one interrupted operation; a sync that
/// takes the daemon down every time is then given up, and says so.
const MAX_RESTARTS: u32 = 3;

/// Every app's claimed keys, inverted: key → the apps that render it.
pub(crate) type ClaimsMap = std::collections::HashMap<ObjectKey, Vec<String>>;

/// What [`Engine::wait`] waits for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WaitFor {
    /// Sync status `Synced`.
    pub sync: bool,
    /// Health `Healthy`.
    pub health: bool,
    /// No operation running.
    pub operation: bool,
}

/// What a cascading delete did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deleted {
    /// Objects deleted, as `group/Kind:namespace/name`, in deletion order.
    pub deleted: Vec<String>,
    /// Objects kept because they are marked `Delete=false`.
    pub kept: Vec<String>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What decides whether a status is worth writing: all of it but `reconciledAt`.
pub(crate) fn saved_form(status: &AppStatus) -> AppStatus {
    AppStatus {
        reconciled_at: None,
        ..status.clone()
    }
}

impl Engine {
    /// An engine over `db`, applying to `target`, reading Git through `repos`.
    ///
    /// Loads every app from the database. An operation a killed daemon left `Running`
    /// stays `Running`, its message saying it was interrupted, and [`Engine::run`]
    /// takes it up again first thing: resumed where it stood when it had changed the
    /// target (its hooks adopted, not run again; its history entry completed), or
    /// retried from the start when it had changed nothing. One interrupted
    /// [`MAX_RESTARTS`] times is marked `Failed` instead.
    pub fn new(
        db: Arc<Db>,
        target: Arc<dyn Target>,
        repos: Arc<RepoCache>,
        config: EngineConfig,
    ) -> Result<Self> {
        let mut interrupted = Vec::new();
        for row in db.app_operations_in_phase("Running")? {
            let mut op: OperationState =
                serde_json::from_value(row.body.clone()).unwrap_or_default();
            let state = |op: &OperationState| {
                serde_json::to_value(op).map_err(|e| Error::State {
                    app: row.app.clone(),
                    message: e.to_string(),
                })
            };
            op.restarts += 1;
            op.phase = OperationPhase::Running;
            let resumable = op
                .sync_result
                .as_ref()
                .is_some_and(|r| !r.revision.is_empty());
            if op.restarts > MAX_RESTARTS {
                op.phase = OperationPhase::Failed;
                op.message = format!(
                    "interrupted: the daemon stopped during the sync {} times in a row; given up, run the sync again",
                    op.restarts
                );
                op.finished_at = Some(now_rfc3339());
                let body = state(&op)?;
                match op.history_id {
                    Some(id) => {
                        let mut entry = db
                            .app_history(&row.app)?
                            .into_iter()
                            .find(|(i, _)| *i == id)
                            .map(|(_, e)| e)
                            .unwrap_or_default();
                        if let Some(m) = entry.as_object_mut() {
                            m.insert("result".into(), "Failed".into());
                            m.insert("message".into(), op.message.clone().into());
                            m.insert(
                                "deployedAt".into(),
                                op.finished_at.clone().unwrap_or_default().into(),
                            );
                        }
                        db.finish_app_operation_updating(&row.app, "Failed", &body, id, &entry)?;
                    }
                    None => {
                        db.finish_app_operation(&row.app, "Failed", &body, None)?;
                    }
                }
                continue;
            }
            op.message = if resumable {
                format!(
                    "interrupted: the daemon stopped during the sync; resuming it (was: {})",
                    op.message
                )
            } else {
                "interrupted: the daemon stopped during the sync before it changed anything; retrying it"
                    .into()
            };
            db.put_app_operation(&row.app, "Running", &state(&op)?)?;
            interrupted.push(row.app.clone());
        }
        let mut apps = BTreeMap::new();
        for row in db.apps()? {
            let app: Application = match serde_json::from_value(row.spec.clone()) {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!("app {}: stored spec is unreadable, skipped: {e}", row.name);
                    continue;
                }
            };
            let status: AppStatus = serde_json::from_value(row.status.clone()).unwrap_or_default();
            let automation: Automation =
                serde_json::from_value(row.automation.clone()).unwrap_or_default();
            let operation = db
                .app_operation(&row.name)?
                .and_then(|o| serde_json::from_value::<OperationState>(o.body).ok());
            let sync_error = operation
                .as_ref()
                .filter(|o| o.phase == OperationPhase::Failed)
                .map(|o| o.message.clone());
            apps.insert(
                row.name.clone(),
                AppEntry {
                    app,
                    saved_status: saved_form(&status),
                    status,
                    operation,
                    automation,
                    sync_error,
                    unreachable: None,
                    claims: BTreeSet::new(),
                    op_lock: Arc::default(),
                    refresh_lock: Arc::default(),
                    sched: Schedule::default(),
                },
            );
        }
        Ok(Self {
            db,
            target,
            sources: Arc::new(Sources::new(repos)),
            apps: Mutex::new(apps),
            updates: watch::channel(0).0,
            wake: Notify::new(),
            claims_index: Mutex::new(ClaimsMap::new()),
            refresh_slots: Arc::new(tokio::sync::Semaphore::new(config.status_processors.max(1))),
            sync_slots: tokio::sync::Semaphore::new(config.operation_processors.max(1)),
            interrupted: Mutex::new(interrupted),
            config,
        })
    }

    /// Credentials for one repository URL (as an Argo CD repository secret holds them).
    pub fn set_repo_credentials(&self, url: &str, creds: Credentials) {
        self.sources.set_credentials(url, creds);
    }

    /// The engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// A receiver that changes whenever any app's status or operation changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.updates.subscribe()
    }

    pub(crate) fn notify(&self) {
        self.updates.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(crate) fn with_app<T>(&self, name: &str, f: impl FnOnce(&mut AppEntry) -> T) -> Result<T> {
        let mut apps = lock(&self.apps);
        let entry = apps.get_mut(name).ok_or_else(|| Error::NotFound {
            app: name.to_string(),
        })?;
        Ok(f(entry))
    }

    // ---- API -------------------------------------------------------------------

    /// Validates an Application: errors refuse it, warnings (fields ferry does not
    /// read) are returned. Fills `apiVersion` and `kind` when missing.
    fn validate(&self, app: &mut Application) -> Result<Vec<String>> {
        if app.api_version.is_empty() {
            app.api_version = argo::API_VERSION.into();
        }
        if app.kind.is_empty() {
            app.kind = "Application".into();
        }
        let name = app.metadata.name.clone();
        let invalid = |errors: Vec<String>| Error::Invalid {
            app: name.clone(),
            errors,
        };
        let value = serde_json::to_value(&*app).map_err(|e| invalid(vec![e.to_string()]))?;
        let obj = Object::from_value(value).map_err(|e| invalid(vec![e.to_string()]))?;
        let validation = argo::validate_object(&obj);
        let mut errors: Vec<String> = validation
            .errors()
            .map(|f| format!("{}: {}", f.path, f.message))
            .collect();
        // The name as the API server checks it: it becomes a label value and a URL
        // segment, and must never smuggle a path.
        errors.extend(
            ferry_core::names::field_errors(&obj)
                .iter()
                .map(ToString::to_string),
        );
        let d = &app.spec.destination;
        for m in ferry_core::names::NameRule::Label.check(&d.namespace, false) {
            if !d.namespace.is_empty() {
                errors.push(format!(
                    "spec.destination.namespace: Invalid value: {}: {m}",
                    ferry_core::names::go_quote(&d.namespace)
                ));
            }
        }
        let local = (d.server.is_empty() || LOCAL_SERVERS.contains(&d.server.as_str()))
            && (d.name.is_empty()
                || LOCAL_NAMES.contains(&d.name.as_str())
                || d.name == self.target.name());
        if !local {
            errors.push(format!(
                "spec.destination: ferry deploys to its one target ({}); set name: in-cluster (or server: https://kubernetes.default.svc)",
                self.target.name()
            ));
        }
        if app.spec.all_sources().is_empty() {
            errors.push("spec.source: required".into());
        }
        if !errors.is_empty() {
            return Err(invalid(errors));
        }
        Ok(validation.warnings().map(|f| f.to_string()).collect())
    }

    /// Creates an app (or, with `upsert`, replaces one of the same name). Creating an
    /// app that exists with the same spec is not an error. Returns the validation
    /// warnings. The app is refreshed by the controller right after.
    pub fn create_app(&self, mut app: Application, upsert: bool) -> Result<Vec<String>> {
        let warnings = self.validate(&mut app)?;
        let name = app.metadata.name.clone();
        {
            let apps = lock(&self.apps);
            if let Some(existing) = apps.get(&name) {
                if existing.app.spec == app.spec {
                    return Ok(warnings);
                }
                if !upsert {
                    return Err(Error::AlreadyExists { app: name });
                }
            }
        }
        self.store_spec(app)?;
        Ok(warnings)
    }

    /// Creates an app from an `Application` document as read from a file or request:
    /// every field ferry does not read is a warning naming it, every invalid value an
    /// error. See [`Engine::create_app`].
    pub fn create_app_from_object(&self, obj: &Object, upsert: bool) -> Result<Vec<String>> {
        let validation = argo::validate_object(obj);
        let errors: Vec<String> = validation
            .errors()
            .map(|f| format!("{}: {}", f.path, f.message))
            .collect();
        if !errors.is_empty() {
            return Err(Error::Invalid {
                app: obj.name().to_string(),
                errors,
            });
        }
        let app: Application = argo::decode(obj).map_err(|e| Error::Invalid {
            app: obj.name().to_string(),
            errors: vec![e.to_string()],
        })?;
        let mut warnings: Vec<String> = validation.warnings().map(|f| f.to_string()).collect();
        for w in self.create_app(app, upsert)? {
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
        Ok(warnings)
    }

    /// Replaces an existing app's spec (`ferry app set`); history and status are kept.
    /// Returns the validation warnings.
    pub fn update_app(&self, mut app: Application) -> Result<Vec<String>> {
        let warnings = self.validate(&mut app)?;
        self.with_app(&app.metadata.name, |_| ())?;
        self.store_spec(app)?;
        Ok(warnings)
    }

    fn store_spec(&self, app: Application) -> Result<()> {
        let name = app.metadata.name.clone();
        let value = serde_json::to_value(&app).map_err(|e| Error::State {
            app: name.clone(),
            message: e.to_string(),
        })?;
        self.db.put_app(&name, &value)?;
        {
            let mut apps = lock(&self.apps);
            match apps.get_mut(&name) {
                Some(e) => {
                    e.app = app;
                    e.sched.requested = Some(FetchMode::Fetch);
                }
                None => {
                    let status = AppStatus::default();
                    apps.insert(
                        name,
                        AppEntry {
                            app,
                            saved_status: saved_form(&status),
                            status,
                            operation: None,
                            automation: Automation::default(),
                            sync_error: None,
                            unreachable: None,
                            claims: BTreeSet::new(),
                            op_lock: Arc::default(),
                            refresh_lock: Arc::default(),
                            sched: Schedule {
                                requested: Some(FetchMode::Fetch),
                                ..Schedule::default()
                            },
                        },
                    );
                }
            }
        }
        self.notify();
        self.wake.notify_one();
        Ok(())
    }

    /// Deletes an app. With `cascade`, its live objects are deleted first, in reverse
    /// sync order, except those marked `Delete=false`.
    pub async fn delete_app(&self, name: &str, cascade: bool) -> Result<Deleted> {
        let op_lock = self.with_app(name, |e| e.op_lock.clone())?;
        let _guard = op_lock.try_lock_owned().map_err(|_| Error::Busy {
            app: name.to_string(),
        })?;
        let mut out = Deleted::default();
        if cascade {
            let selector = Selector {
                labels: BTreeMap::from([(INSTANCE_LABEL.to_string(), name.to_string())]),
                ..Selector::default()
            };
            let live: Vec<Object> = self
                .target
                .list(&selector)
                .await
                .map_err(|source| Error::Target {
                    app: name.to_string(),
                    what: "listing the app's objects".into(),
                    source,
                })?
                .into_iter()
                .filter(|o| tracking::owned_by(o, name))
                .collect();
            let (order, kept) = delete_order(&live);
            for i in order {
                let key = live[i].key();
                self.target
                    .delete(&key, Propagation::Background)
                    .await
                    .map_err(|source| Error::Target {
                        app: name.to_string(),
                        what: format!("deleting {key}"),
                        source,
                    })?;
                out.deleted.push(key.to_string());
            }
            out.kept = kept.iter().map(|i| live[*i].key().to_string()).collect();
        }
        self.db.delete_app(name)?;
        {
            let mut apps = lock(&self.apps);
            if let Some(e) = apps.remove(name) {
                self.reclaim(name, &e.claims, &BTreeSet::new());
            }
        }
        self.notify();
        Ok(out)
    }

    fn view_of(&self, e: &AppEntry) -> AppView {
        AppView {
            api_version: e.app.api_version.clone(),
            kind: e.app.kind.clone(),
            metadata: e.app.metadata.clone(),
            spec: e.app.spec.clone(),
            status: StatusView {
                status: e.status.clone(),
                history: Vec::new(),
                operation_state: e.operation.clone(),
            },
        }
    }

    /// One app with its status, history and operation; `None` when there is none.
    pub fn get_app(&self, name: &str) -> Result<Option<AppView>> {
        let view = {
            let apps = lock(&self.apps);
            apps.get(name).map(|e| self.view_of(e))
        };
        match view {
            Some(mut v) => {
                v.status.history = self.history(name)?;
                Ok(Some(v))
            }
            None => Ok(None),
        }
    }

    /// Every app, by name.
    pub fn list_apps(&self) -> Result<Vec<AppView>> {
        let views: Vec<AppView> = {
            let apps = lock(&self.apps);
            apps.values().map(|e| self.view_of(e)).collect()
        };
        views
            .into_iter()
            .map(|mut v| {
                v.status.history = self.history(&v.metadata.name)?;
                Ok(v)
            })
            .collect()
    }

    /// An app's sync history, oldest first.
    pub fn history(&self, name: &str) -> Result<Vec<HistoryEntry>> {
        self.db
            .app_history(name)?
            .into_iter()
            .map(|(id, body)| {
                let mut h: HistoryEntry =
                    serde_json::from_value(body).map_err(|e| Error::State {
                        app: name.to_string(),
                        message: format!("history entry {id}: {e}"),
                    })?;
                h.id = id;
                Ok(h)
            })
            .collect()
    }

    /// Refreshes an app now: fetches its repository (and with `hard`, renders again
    /// instead of using the cached render), compares, and returns the app. The
    /// controller then decides on automated sync. Takes one of the refresh slots the
    /// controller uses, so a webhook naming a thousand apps queues them instead of
    /// rendering a thousand at once.
    pub async fn refresh(&self, name: &str, hard: bool) -> Result<AppView> {
        {
            let _slot = self.refresh_slots.acquire().await;
            Box::pin(self.refresh_app(name, FetchMode::Fetch, hard, None)).await?;
        }
        self.with_app(name, |e| {
            e.sched.last_fetch = Some(Instant::now());
            e.sched.requested.get_or_insert(FetchMode::Mirror);
        })?;
        self.wake.notify_one();
        self.get_app(name)?.ok_or_else(|| Error::NotFound {
            app: name.to_string(),
        })
    }

    /// The diff of every resource of the app against its target revision (as last
    /// fetched), Secret values masked.
    pub async fn diff(&self, name: &str) -> Result<Vec<ResourceDiff>> {
        let (spec, _) = self.snapshot(name)?;
        let desired = self
            .sources
            .desired(name, &spec, None, None, FetchMode::Mirror, false, None)
            .await
            .map_err(|e| Error::Invalid {
                app: name.to_string(),
                errors: vec![e.message],
            })?;
        let cmp = self
            .compare(name, &spec, &desired)
            .await
            .map_err(|m| Error::Invalid {
                app: name.to_string(),
                errors: vec![m],
            })?;
        Ok(cmp.diffs)
    }

    /// Syncs an app and returns the finished operation. A sync that fails is not an
    /// `Err`: its operation is `Failed` and says why. The sync runs on its own task,
    /// so dropping this future does not interrupt it.
    pub async fn sync(self: &Arc<Self>, name: &str, req: SyncRequest) -> Result<OperationState> {
        let (spec, _) = self.snapshot(name)?;
        if let Some(rev) = req.revision.as_deref().filter(|r| !r.is_empty())
            && spec.sync_policy.as_ref().is_some_and(|p| p.is_automated())
        {
            let target = spec
                .all_sources()
                .first()
                .map(|s| s.revision().to_string())
                .unwrap_or_default();
            let compared = self.with_app(name, |e| e.status.sync.revision.clone())?;
            if rev != target && !compared.starts_with(rev) {
                return Err(Error::Invalid {
                    app: name.to_string(),
                    errors: vec![format!(
                        "cannot sync to revision {rev}: automated sync follows {target} and would undo it; use `ferry app rollback` (it pauses automated sync) or turn automated sync off"
                    )],
                });
            }
        }
        let automated = false;
        let args = SyncArgs {
            revision: req.revision.clone().filter(|r| !r.is_empty()),
            source: None,
            prune: req.prune,
            dry_run: req.dry_run,
            resources: req.resources.clone(),
            trigger: if req.trigger.is_empty() {
                "manual".into()
            } else {
                req.trigger.clone()
            },
            automated,
            username: req.username.clone(),
            fetch: FetchMode::Fetch,
        };
        self.spawn_sync(name, args).await
    }

    async fn spawn_sync(self: &Arc<Self>, name: &str, args: SyncArgs) -> Result<OperationState> {
        let this = self.clone();
        let name_owned = name.to_string();
        tokio::spawn(async move { this.run_sync(&name_owned, args).await })
            .await
            .map_err(|e| Error::State {
                app: name.to_string(),
                message: format!("the sync task failed: {e}"),
            })?
    }

    /// Rolls back to history entry `id`: syncs that entry's revision and source, and
    /// pauses automated sync until the next new commit.
    pub async fn rollback(self: &Arc<Self>, name: &str, id: i64) -> Result<OperationState> {
        let entry = self
            .history(name)?
            .into_iter()
            .find(|h| h.id == id)
            .ok_or_else(|| Error::HistoryNotFound {
                app: name.to_string(),
                id,
            })?;
        let automated = self.with_app(name, |e| {
            e.app
                .spec
                .sync_policy
                .as_ref()
                .is_some_and(|p| p.is_automated())
        })?;
        if automated {
            let revision = self.with_app(name, |e| e.status.sync.revision.clone())?;
            let reason = format!(
                "rolled back to revision {}; automated sync resumes at the next new commit",
                short(&entry.revision)
            );
            self.update_automation(name, |a| {
                a.paused_at = Some(revision.clone());
                a.pause_reason = Some(reason.clone());
            })?;
        }
        let args = SyncArgs {
            revision: Some(entry.revision.clone()),
            source: Some(entry.source.clone()),
            prune: false,
            dry_run: false,
            resources: Vec::new(),
            trigger: "rollback".into(),
            automated: false,
            username: String::new(),
            fetch: FetchMode::Mirror,
        };
        self.spawn_sync(name, args).await
    }

    /// Waits until the app is as asked (Synced, Healthy, no operation running), or
    /// `timeout` passes. Keeps the app's status fresh while waiting.
    pub async fn wait(&self, name: &str, what: WaitFor, timeout: Duration) -> Result<AppView> {
        let deadline = Instant::now() + timeout;
        let mut updates = self.subscribe();
        loop {
            updates.borrow_and_update();
            let view = self.get_app(name)?.ok_or_else(|| Error::NotFound {
                app: name.to_string(),
            })?;
            let st = &view.status;
            let running = st
                .operation_state
                .as_ref()
                .is_some_and(|o| o.phase == OperationPhase::Running);
            let ok = (!what.sync || st.status.sync.status == SyncCode::Synced)
                && (!what.health || st.status.health.status == HealthStatus::Healthy)
                && (!what.operation || !running);
            if ok {
                return Ok(view);
            }
            if Instant::now() >= deadline {
                let mut parts = Vec::new();
                if what.sync {
                    parts.push("sync Synced");
                }
                if what.health {
                    parts.push("health Healthy");
                }
                if what.operation {
                    parts.push("no running operation");
                }
                return Err(Error::Timeout {
                    app: name.to_string(),
                    what: parts.join(" and "),
                    now: format!(
                        "sync {}, health {}{}",
                        st.status.sync.status,
                        st.status.health.status,
                        if running { ", operation running" } else { "" }
                    ),
                    waited: timeout,
                });
            }
            tokio::select! {
                _ = updates.changed() => {}
                _ = tokio::time::sleep(self.config.poll_interval) => {
                    if !running {
                        // Without a running controller, keep the status fresh here.
                        if let Err(e) = self.refresh_app(name, FetchMode::Mirror, false, None).await {
                            tracing::debug!("wait: refreshing {name}: {e}");
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}
