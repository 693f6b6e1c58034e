//! Sync: render and validate the whole app first, then phases PreSync → Sync →
//! PostSync (SyncFail hooks on failure), waves ascending, each wave applied and then
//! waited healthy; hooks re-created and awaited; prune last of all, and only when asked.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use ferry_core::argo::{ApplicationSource, ApplicationSpec, RetryStrategy, SyncPolicy};
use ferry_core::diff::SyncStatus;
use ferry_core::health::{HealthStatus, assess_all};
use ferry_core::object::split_api_version;
use ferry_core::plan::{HookDeletePolicy, Phase, Task, prune_order, wave};
use ferry_core::target::{ApplyOptions, Propagation};
use ferry_core::{Object, ObjectKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::compare::{Comparison, related};
use crate::engine::{Engine, now_rfc3339};
use crate::error::{Error, Result};
use crate::source::{Desired, FetchMode};
use crate::status::{
    COMPARISON_ERROR, HistoryEntry, HookRun, InitiatedBy, Operation, OperationPhase,
    OperationState, ResourceResult, ResultCode, SYNC_ATTEMPT, SyncOperation, SyncResult,
};
use crate::tracking::{self, FIELD_MANAGER};

/// Limits a sync to some resources: Argo's `--resource GROUP:KIND:[NAMESPACE/]NAME`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourceFilter {
    /// API group (empty for core); `None` matches any.
    pub group: Option<String>,
    /// Kind.
    pub kind: String,
    /// Namespace; `None` matches any.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl ResourceFilter {
    /// Whether `key` is selected.
    pub fn matches(&self, key: &ObjectKey) -> bool {
        self.group.as_deref().is_none_or(|g| g == key.group)
            && self.kind == key.kind
            && self.namespace.as_deref().is_none_or(|n| n == key.namespace)
            && (self.name == key.name || self.name == "*")
    }
}

impl FromStr for ResourceFilter {
    type Err = String;

    /// Parses `GROUP:KIND:NAME` or `GROUP:KIND:NAMESPACE/NAME` (group may be empty,
    /// `*` matches any group).
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let parts: Vec<&str> = s.splitn(3, ':').collect();
        let [group, kind, rest] = parts[..] else {
            return Err(format!(
                "resource {s:?}: expected GROUP:KIND:NAME or GROUP:KIND:NAMESPACE/NAME (e.g. apps:Deployment:web, :ConfigMap:shop/settings)"
            ));
        };
        if kind.is_empty() || rest.is_empty() {
            return Err(format!("resource {s:?}: kind and name are required"));
        }
        let (namespace, name) = match rest.split_once('/') {
            Some((ns, name)) => (Some(ns.to_string()), name.to_string()),
            None => (None, rest.to_string()),
        };
        Ok(Self {
            group: (group != "*").then(|| group.to_string()),
            kind: kind.to_string(),
            namespace,
            name,
        })
    }
}

impl fmt::Display for ResourceFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:", self.group.as_deref().unwrap_or("*"), self.kind)?;
        if let Some(ns) = &self.namespace {
            write!(f, "{ns}/")?;
        }
        f.write_str(&self.name)
    }
}

/// A sync as the API asks for it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SyncRequest {
    /// Sync to this revision (branch, tag or commit) instead of the app's target
    /// revision. Refused while automated sync is on (use rollback).
    pub revision: Option<String>,
    /// Delete live objects that left Git.
    pub prune: bool,
    /// Apply nothing; report what would change.
    pub dry_run: bool,
    /// Only these resources (hooks do not run in a partial sync).
    pub resources: Vec<ResourceFilter>,
    /// What started it, for history (`manual` when empty).
    pub trigger: String,
    /// Who started it.
    pub username: String,
}

/// A sync as the engine runs it.
#[derive(Clone, Debug)]
pub(crate) struct SyncArgs {
    pub revision: Option<String>,
    pub source: Option<ApplicationSource>,
    pub prune: bool,
    pub dry_run: bool,
    pub resources: Vec<ResourceFilter>,
    pub trigger: String,
    pub automated: bool,
    pub username: String,
    pub fetch: FetchMode,
}

/// How one attempt ended.
struct Outcome {
    phase: OperationPhase,
    message: String,
    result: SyncResult,
    /// Whether the attempt got past validation (it may have changed live state).
    applied: bool,
}

impl Outcome {
    fn failed(message: String, result: SyncResult, applied: bool) -> Self {
        Self {
            phase: OperationPhase::Failed,
            message,
            result,
            applied,
        }
    }
}

/// What a wave waits on.
struct WaitItem {
    key: ObjectKey,
    hook: bool,
    /// Index of the item's row in the sync result.
    row: usize,
    delete_policies: Vec<HookDeletePolicy>,
}

/// How a hook of the current attempt stands once [`Engine::run_hook`] has seen to it.
enum HookStart {
    /// Running (created now, or adopted after a restart): wait for it. The message
    /// says which.
    Running(ObjectKey, String),
    /// Finished before the daemon restarted; with the failure, if it failed.
    Done(ObjectKey, Option<String>),
}

impl HookRun {
    /// Whether this record is of the hook object `key`.
    fn is(&self, key: &ObjectKey) -> bool {
        self.group == key.group
            && self.kind == key.kind
            && self.namespace == key.namespace
            && self.name == key.name
    }
}

/// An object's `metadata.uid` (empty when it has none).
fn uid_of(obj: &Object) -> String {
    obj.value()
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

#[derive(Clone, Debug, PartialEq)]
enum Waited {
    Ok,
    Failed(String),
    Pending,
}

fn row(
    obj: &Object,
    key: &ObjectKey,
    status: ResultCode,
    message: impl Into<String>,
    phase: Phase,
    wave: i32,
) -> ResourceResult {
    ResourceResult {
        group: key.group.clone(),
        version: split_api_version(obj.api_version()).1.to_string(),
        kind: key.kind.clone(),
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        status,
        message: message.into(),
        hook_phase: None,
        hook_type: None,
        sync_phase: phase.as_str().to_string(),
        sync_wave: wave,
    }
}

/// The delay before retry `n` (1-based) of a failed sync.
fn retry_delay(retry: &RetryStrategy, n: u32) -> Duration {
    let b = retry.backoff.clone().unwrap_or_default();
    let base = b.duration().unwrap_or(Duration::from_secs(5));
    let max = b.max_duration().unwrap_or(Duration::from_secs(180));
    let factor = u32::try_from(b.factor().max(1)).unwrap_or(u32::MAX);
    crate::config::Backoff { base, factor, max }.delay(n)
}

/// Gives hooks that only have `generateName` a name, unique to this sync (and the
/// tracking id of that name).
fn name_generated(app: &str, objects: &mut [Object], salt: &str) {
    for o in objects.iter_mut() {
        let named = o
            .value()
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        if !named {
            let name = format!("{}{salt}", o.name());
            o.metadata_mut().insert("name".into(), Value::String(name));
            let id = tracking::tracking_id(app, &o.key());
            o.set_meta_entry("annotations", tracking::TRACKING_ID, &id);
        }
    }
}

/// The history entry of `op` as stored (without its id): `result` and `message` are
/// the operation's, `deployed_at` when it reached its end (or now, while running).
fn history_value(name: &str, op: &OperationState, deployed_at: String) -> Result<Value> {
    let result = op.sync_result.clone().unwrap_or_default();
    let entry = HistoryEntry {
        id: 0,
        revision: result.revision,
        deployed_at,
        deploy_started_at: op.started_at.clone(),
        source: result.source,
        initiated_by: op.operation.initiated_by.clone(),
        trigger: op.operation.trigger.clone(),
        result: op.phase,
        message: op.message.clone(),
    };
    let mut v = serde_json::to_value(&entry).map_err(|e| Error::State {
        app: name.to_string(),
        message: e.to_string(),
    })?;
    if let Some(m) = v.as_object_mut() {
        m.remove("id");
    }
    Ok(v)
}

impl Engine {
    fn record_operation(&self, name: &str, op: &OperationState) -> Result<()> {
        self.with_app(name, |e| e.operation = Some(op.clone()))?;
        let body = serde_json::to_value(op).map_err(|e| Error::State {
            app: name.to_string(),
            message: e.to_string(),
        })?;
        self.db
            .put_app_operation(name, &op.phase.to_string(), &body)?;
        self.notify();
        Ok(())
    }

    /// Runs a sync (with retries as the app's `retry` says) and records it.
    pub(crate) async fn run_sync(&self, name: &str, args: SyncArgs) -> Result<OperationState> {
        let op_lock = self.with_app(name, |e| e.op_lock.clone())?;
        let guard = op_lock.try_lock_owned().map_err(|_| Error::Busy {
            app: name.to_string(),
        })?;
        let op = OperationState {
            operation: Operation {
                sync: SyncOperation {
                    revision: args.revision.clone().unwrap_or_default(),
                    prune: args.prune,
                    dry_run: args.dry_run,
                    resources: args.resources.iter().map(ToString::to_string).collect(),
                    source: args.source.clone(),
                },
                initiated_by: InitiatedBy {
                    username: args.username.clone(),
                    automated: args.automated,
                },
                trigger: args.trigger.clone(),
            },
            phase: OperationPhase::Running,
            message: "rendering and validating".into(),
            started_at: now_rfc3339(),
            ..OperationState::default()
        };
        if !args.dry_run {
            // Recorded before anything is applied, so that a crash shows as interrupted.
            self.record_operation(name, &op)?;
        }
        self.drive_sync(name, args, op, guard, None).await
    }

    /// Takes up an operation a killed daemon left `Running` (its state as stored,
    /// `guard` the app's operation lock): the same attempt goes on where it stood —
    /// the revision it resolved, the hooks it started adopted, not run again — or,
    /// when it had changed nothing yet, it is run again from the start.
    pub(crate) async fn resume_sync(
        &self,
        name: &str,
        op: OperationState,
        guard: tokio::sync::OwnedMutexGuard<()>,
    ) -> Result<OperationState> {
        let resolved = op
            .sync_result
            .as_ref()
            .map(|r| r.revision.clone())
            .filter(|r| !r.is_empty());
        let how = if resolved.is_some() {
            "resumed"
        } else {
            "retried"
        };
        let sync = &op.operation.sync;
        let args = SyncArgs {
            revision: resolved.or_else(|| Some(sync.revision.clone()).filter(|r| !r.is_empty())),
            source: sync.source.clone(),
            prune: sync.prune,
            dry_run: false,
            resources: sync
                .resources
                .iter()
                .filter_map(|r| r.parse().ok())
                .collect(),
            trigger: op.operation.trigger.clone(),
            automated: op.operation.initiated_by.automated,
            username: op.operation.initiated_by.username.clone(),
            fetch: FetchMode::Mirror,
        };
        tracing::info!(
            "app {name}: the sync the daemon was running when it stopped is {how} (restart {})",
            op.restarts
        );
        self.drive_sync(name, args, op, guard, Some(how)).await
    }

    /// Runs the attempts of an operation (retries as the app's `retry` says), records
    /// its end and its history entry. `resumed` says how a sync interrupted by a
    /// crash was taken up again (`resumed`/`retried`), for its message.
    async fn drive_sync(
        &self,
        name: &str,
        args: SyncArgs,
        mut op: OperationState,
        guard: tokio::sync::OwnedMutexGuard<()>,
        resumed: Option<&str>,
    ) -> Result<OperationState> {
        let spec = self.with_app(name, |e| e.app.spec.clone())?;
        let retry = spec.sync_policy.as_ref().and_then(|p| p.retry.clone());
        let mut attempt: u32 = u32::try_from(op.retry_count).unwrap_or(0);
        let outcome = loop {
            let outcome = self.sync_once(name, &spec, &args, &mut op).await;
            if outcome.phase == OperationPhase::Succeeded || args.dry_run {
                break outcome;
            }
            let Some(retry) = &retry else {
                break outcome;
            };
            let limit = retry.limit.unwrap_or(0);
            if limit >= 0 && i64::from(attempt) >= limit {
                break outcome;
            }
            attempt += 1;
            let delay = retry_delay(retry, attempt);
            op.retry_count = i64::from(attempt);
            op.message = format!(
                "{}; retrying in {}s (retry {attempt}{})",
                outcome.message,
                delay.as_secs_f64(),
                if limit >= 0 {
                    format!(" of {limit}")
                } else {
                    String::new()
                }
            );
            // A retry is a new attempt: its hooks run again.
            op.attempt.clear();
            op.hooks.clear();
            op.sync_result = Some(outcome.result);
            self.record_operation(name, &op)?;
            tokio::time::sleep(delay).await;
        };
        op.phase = outcome.phase;
        op.message = match resumed {
            Some(how) => format!(
                "{} ({how} after the daemon stopped during the sync)",
                outcome.message
            ),
            None => outcome.message,
        };
        op.finished_at = Some(now_rfc3339());
        op.sync_result = Some(outcome.result);
        if args.dry_run {
            return Ok(op);
        }
        let body = serde_json::to_value(&op).map_err(|e| Error::State {
            app: name.to_string(),
            message: e.to_string(),
        })?;
        let keep = usize::try_from(spec.history_limit().max(0)).unwrap_or(10);
        match op.history_id {
            // The entry written when the sync first changed the target, now final.
            Some(id) => {
                let entry = history_value(name, &op, op.finished_at.clone().unwrap_or_default())?;
                self.db.finish_app_operation_updating(
                    name,
                    &op.phase.to_string(),
                    &body,
                    id,
                    &entry,
                )?;
            }
            None => {
                let entry = if outcome.applied {
                    Some(history_value(
                        name,
                        &op,
                        op.finished_at.clone().unwrap_or_default(),
                    )?)
                } else {
                    None
                };
                self.db.finish_app_operation(
                    name,
                    &op.phase.to_string(),
                    &body,
                    entry.as_ref().map(|h| (h, keep)),
                )?;
            }
        }
        let failed = op.phase != OperationPhase::Succeeded;
        let message = op.message.clone();
        self.with_app(name, |e| e.sync_error = failed.then_some(message))?;
        // Argo's rule looks at the last sync of a commit, whoever started it: a manual
        // sync that fixed a commit lets self-heal work again, and one that failed on it
        // is not repeated automatically.
        let revision = op
            .sync_result
            .as_ref()
            .map(|r| r.revision.clone())
            .unwrap_or_default();
        if (args.automated || outcome.applied) && !revision.is_empty() {
            self.update_automation(name, |a| {
                a.attempted_revision = Some(revision);
                a.attempt_failed = failed;
            })?;
        }
        // The status is brought up to date before the operation shows as finished, so
        // that no one sees a finished sync beside the status of a moment before (the
        // rollout it waited for still Progressing).
        if let Err(e) = self.refresh_app(name, FetchMode::Mirror, false, None).await {
            tracing::warn!("app {name}: refresh after sync: {e}");
        }
        self.with_app(name, |e| e.operation = Some(op.clone()))?;
        drop(guard);
        self.notify();
        Ok(op)
    }

    /// Writes the operation's history entry (result `Running`) in the same
    /// transaction as the operation, before the sync first changes the target: a sync
    /// that applied something has its entry even when the daemon dies before the
    /// wait ends. An operation that has its entry keeps it (one per operation).
    fn start_history(
        &self,
        name: &str,
        spec: &ApplicationSpec,
        op: &mut OperationState,
        result: &SyncResult,
    ) -> Result<()> {
        op.sync_result = Some(SyncResult {
            revision: result.revision.clone(),
            source: result.source.clone(),
            resources: Vec::new(),
        });
        if op.history_id.is_some() {
            return self.record_operation(name, op);
        }
        let keep = usize::try_from(spec.history_limit().max(0)).unwrap_or(10);
        let mut entry_op = op.clone();
        entry_op.message = "syncing".into();
        let entry = history_value(name, &entry_op, now_rfc3339())?;
        let mut error = None;
        let id = self
            .db
            .start_app_history(name, &op.phase.to_string(), &entry, keep, |id| {
                let mut with_id = op.clone();
                with_id.history_id = Some(id);
                serde_json::to_value(&with_id).unwrap_or_else(|e| {
                    error = Some(e.to_string());
                    Value::Null
                })
            })?;
        if let Some(message) = error {
            return Err(Error::State {
                app: name.to_string(),
                message,
            });
        }
        op.history_id = Some(id);
        self.with_app(name, |e| e.operation = Some(op.clone()))?;
        self.notify();
        Ok(())
    }

    /// One attempt: render, validate, apply phase by phase, prune.
    async fn sync_once(
        &self,
        name: &str,
        spec: &ApplicationSpec,
        args: &SyncArgs,
        op: &mut OperationState,
    ) -> Outcome {
        let mut result = SyncResult::default();
        let rendered = self
            .sources
            .desired(
                name,
                spec,
                args.revision.as_deref(),
                args.source.as_ref(),
                args.fetch,
                false,
                None,
            )
            .await;
        let unreachable = self
            .note_reachability(name, args.fetch, &rendered)
            .ok()
            .flatten();
        let desired = match rendered {
            Ok(mut d) => {
                d.unreachable = unreachable;
                d
            }
            Err(e) => {
                return Outcome::failed(
                    format!("{COMPARISON_ERROR}: {}; nothing was applied", e.message),
                    result,
                    false,
                );
            }
        };
        result.revision = desired.revision.clone();
        result.source = desired.source.clone();
        let cmp = match self.compare(name, spec, &desired).await {
            Ok(c) => c,
            Err(m) => {
                return Outcome::failed(
                    format!("{COMPARISON_ERROR}: {m}; nothing was applied"),
                    result,
                    false,
                );
            }
        };
        let policy = spec.sync_policy.clone().unwrap_or_default();
        let partial = !args.resources.is_empty();
        let selected = |key: &ObjectKey| !partial || args.resources.iter().any(|f| f.matches(key));
        let mut objects = desired.objects.clone();
        // The attempt's id names its generated hooks: a resumed attempt finds the
        // hooks it started under the same names.
        if op.attempt.is_empty() {
            op.attempt = format!(
                "{}{:04x}",
                desired.revision.get(..5).unwrap_or(&desired.revision),
                now_nanos() & 0xffff
            );
        }
        let salt = op.attempt.clone();
        name_generated(name, &mut objects, &salt);
        let tasks: Vec<&Task> = cmp
            .plan
            .tasks
            .iter()
            .filter(|t| {
                if t.hook {
                    !partial
                } else {
                    selected(&objects[t.index].key())
                }
            })
            .collect();

        // Validate everything before touching anything.
        let check = ApplyOptions {
            field_manager: FIELD_MANAGER.into(),
            force: true,
            dry_run: true,
        };
        let mut seen = HashSet::new();
        for t in &tasks {
            if !seen.insert(t.index) {
                continue;
            }
            let obj = &objects[t.index];
            if let Err(e) = self.target.apply(obj, &check).await {
                let key = obj.key();
                let message = format!(
                    "{} {} ({}) was refused by the target: {e}; nothing was applied",
                    key.kind,
                    key.name,
                    obj.origin()
                );
                result.resources.push(row(
                    obj,
                    &key,
                    ResultCode::SyncFailed,
                    e.to_string(),
                    t.phase,
                    t.wave,
                ));
                return Outcome::failed(message, result, false);
            }
        }

        if args.dry_run {
            for t in tasks.iter().filter(|t| t.phase != Phase::SyncFail) {
                let obj = &objects[t.index];
                let key = obj.key();
                let message = if t.hook {
                    "hook would run (dry run)"
                } else {
                    match cmp.diff_of(&key).map(|d| d.status) {
                        Some(SyncStatus::Synced) => "unchanged (dry run)",
                        Some(SyncStatus::OutOfSync) => "would be configured (dry run)",
                        _ => "would be created (dry run)",
                    }
                };
                result
                    .resources
                    .push(row(obj, &key, ResultCode::Synced, message, t.phase, t.wave));
            }
            for last in [false, true] {
                let _ = self
                    .prune(&cmp, &desired, &policy, args, last, &mut result)
                    .await;
            }
            let apply = result
                .resources
                .iter()
                .filter(|r| r.status == ResultCode::Synced && !r.message.starts_with("unchanged"))
                .count();
            let prune = result
                .resources
                .iter()
                .filter(|r| r.status == ResultCode::Pruned)
                .count();
            return Outcome {
                phase: OperationPhase::Succeeded,
                message: format!(
                    "dry run: {apply} to apply, {prune} to prune; nothing was changed"
                ),
                result,
                applied: false,
            };
        }

        if let Err(e) = self.start_history(name, spec, op, &result) {
            return Outcome::failed(
                format!("recording the sync before applying: {e}; nothing was applied"),
                result,
                false,
            );
        }
        let mut failure: Option<String> = None;
        if policy.option_is_true("CreateNamespace") {
            failure = self
                .create_namespace(spec, &policy, &objects, &mut result)
                .await;
        }
        let apply_out_of_sync_only = policy.option_is_true("ApplyOutOfSyncOnly");
        'phases: for phase in [Phase::PreSync, Phase::Sync, Phase::PostSync] {
            if failure.is_some() {
                break;
            }
            for w in cmp.plan.waves(phase) {
                let wave_tasks: Vec<&&Task> = tasks
                    .iter()
                    .filter(|t| t.phase == phase && t.wave == w)
                    .collect();
                if wave_tasks.is_empty() {
                    continue;
                }
                op.message = format!(
                    "{phase} wave {w}: applying {} resource(s)",
                    wave_tasks.len()
                );
                let _ = self.record_operation(name, op);
                let mut waits = Vec::new();
                for t in wave_tasks {
                    let obj = &objects[t.index];
                    let key = obj.key();
                    if t.hook {
                        match self.run_hook(name, op, obj).await {
                            Ok(HookStart::Done(key, outcome)) => {
                                let mut r = row(
                                    obj,
                                    &key,
                                    ResultCode::Synced,
                                    "hook succeeded (before the daemon restarted; not run again)",
                                    phase,
                                    w,
                                );
                                r.hook_phase = Some("Succeeded".into());
                                r.hook_type = Some(phase.as_str().into());
                                if let Some(m) = outcome {
                                    r.status = ResultCode::SyncFailed;
                                    r.message = m.clone();
                                    r.hook_phase = Some("Failed".into());
                                    failure.get_or_insert(m);
                                }
                                result.resources.push(r);
                            }
                            Ok(HookStart::Running(key, message)) => {
                                let mut r = row(obj, &key, ResultCode::Synced, message, phase, w);
                                r.hook_phase = Some("Running".into());
                                r.hook_type = Some(phase.as_str().into());
                                waits.push(WaitItem {
                                    key,
                                    hook: true,
                                    row: result.resources.len(),
                                    delete_policies: t.delete_policies.clone(),
                                });
                                result.resources.push(r);
                            }
                            Err(m) => {
                                let mut r =
                                    row(obj, &key, ResultCode::SyncFailed, m.clone(), phase, w);
                                r.hook_phase = Some("Failed".into());
                                r.hook_type = Some(phase.as_str().into());
                                result.resources.push(r);
                                failure.get_or_insert(m);
                            }
                        }
                        continue;
                    }
                    if apply_out_of_sync_only
                        && cmp
                            .diff_of(&key)
                            .is_some_and(|d| d.status == SyncStatus::Synced)
                    {
                        result.resources.push(row(
                            obj,
                            &key,
                            ResultCode::Synced,
                            "unchanged (ApplyOutOfSyncOnly)",
                            phase,
                            w,
                        ));
                        continue;
                    }
                    let replace = policy.option_is_true("Replace") || t.options.replace;
                    match self.apply_one(obj, replace, cmp.live.get(&key)).await {
                        Ok(message) => {
                            waits.push(WaitItem {
                                key: key.clone(),
                                hook: false,
                                row: result.resources.len(),
                                delete_policies: Vec::new(),
                            });
                            result.resources.push(row(
                                obj,
                                &key,
                                ResultCode::Synced,
                                message,
                                phase,
                                w,
                            ));
                        }
                        Err(m) => {
                            result.resources.push(row(
                                obj,
                                &key,
                                ResultCode::SyncFailed,
                                m.clone(),
                                phase,
                                w,
                            ));
                            failure.get_or_insert(m);
                        }
                    }
                }
                if failure.is_some() {
                    break 'phases;
                }
                op.message = format!(
                    "{phase} wave {w}: waiting for {} resource(s) to become healthy",
                    waits.len()
                );
                let _ = self.record_operation(name, op);
                // The app's status follows a sync that waits, as Argo CD's does:
                // Synced once everything is applied, Progressing while a rollout runs.
                if let Some(f) = self.settle(&waits, &mut result, name, op, true).await {
                    failure = Some(f);
                    break 'phases;
                }
            }
            if phase == Phase::Sync
                && let Some(f) = self
                    .prune(&cmp, &desired, &policy, args, false, &mut result)
                    .await
            {
                failure = Some(f);
                break;
            }
        }
        if failure.is_none()
            && let Some(f) = self
                .prune(&cmp, &desired, &policy, args, true, &mut result)
                .await
        {
            failure = Some(f);
        }
        if let Some(f) = failure {
            if !partial {
                self.run_sync_fail_hooks(&cmp, &objects, &tasks, op, name, &mut result)
                    .await;
            }
            return Outcome::failed(f, result, true);
        }
        Outcome {
            phase: OperationPhase::Succeeded,
            message: format!(
                "successfully synced {} (all tasks run)",
                crate::engine::short(&desired.revision)
            ),
            result,
            applied: true,
        }
    }

    /// Runs the SyncFail hooks of a failed sync; their own failures are recorded only.
    async fn run_sync_fail_hooks(
        &self,
        cmp: &Comparison,
        objects: &[Object],
        tasks: &[&Task],
        op: &mut OperationState,
        name: &str,
        result: &mut SyncResult,
    ) {
        for w in cmp.plan.waves(Phase::SyncFail) {
            let mut waits = Vec::new();
            for t in tasks
                .iter()
                .filter(|t| t.phase == Phase::SyncFail && t.wave == w)
            {
                let obj = &objects[t.index];
                op.message = format!("SyncFail wave {w}: running hooks");
                let _ = self.record_operation(name, op);
                let key = obj.key();
                let mut r = row(
                    obj,
                    &key,
                    ResultCode::Synced,
                    "hook created",
                    Phase::SyncFail,
                    w,
                );
                r.hook_type = Some("SyncFail".into());
                match self.run_hook(name, op, obj).await {
                    Ok(HookStart::Done(_, outcome)) => {
                        r.message = outcome.unwrap_or_else(|| {
                            "hook succeeded (before the daemon restarted; not run again)".into()
                        });
                        r.hook_phase = Some("Succeeded".into());
                    }
                    Ok(HookStart::Running(key, message)) => {
                        r.message = message;
                        r.hook_phase = Some("Running".into());
                        waits.push(WaitItem {
                            key,
                            hook: true,
                            row: result.resources.len(),
                            delete_policies: t.delete_policies.clone(),
                        });
                    }
                    Err(m) => {
                        r.status = ResultCode::SyncFailed;
                        r.message = m;
                        r.hook_phase = Some("Failed".into());
                    }
                }
                result.resources.push(r);
            }
            let _ = self.settle(&waits, result, name, op, false).await;
        }
    }

    /// Applies `CreateNamespace=true`: the destination namespace, unless rendered.
    async fn create_namespace(
        &self,
        spec: &ApplicationSpec,
        policy: &SyncPolicy,
        objects: &[Object],
        result: &mut SyncResult,
    ) -> Option<String> {
        let ns = spec.destination.namespace.as_str();
        if ns.is_empty()
            || objects
                .iter()
                .any(|o| o.kind() == "Namespace" && o.group().is_empty() && o.name() == ns)
        {
            return None;
        }
        let mut meta = Map::new();
        meta.insert("name".into(), json!(ns));
        if let Some(m) = &policy.managed_namespace_metadata {
            if !m.labels.is_empty() {
                meta.insert("labels".into(), json!(m.labels));
            }
            if !m.annotations.is_empty() {
                meta.insert("annotations".into(), json!(m.annotations));
            }
        }
        let obj = match Object::from_value(json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": meta
        })) {
            Ok(o) => o,
            Err(e) => return Some(e.to_string()),
        };
        let key = obj.key();
        let before = self.target.get(&key).await.ok().flatten();
        match self.apply_one(&obj, false, before.as_ref()).await {
            Ok(m) => {
                result.resources.push(row(
                    &obj,
                    &key,
                    ResultCode::Synced,
                    format!("namespace {m} (CreateNamespace=true)"),
                    Phase::PreSync,
                    i32::MIN,
                ));
                None
            }
            Err(m) => {
                result.resources.push(row(
                    &obj,
                    &key,
                    ResultCode::SyncFailed,
                    m.clone(),
                    Phase::PreSync,
                    i32::MIN,
                ));
                Some(m)
            }
        }
    }

    /// Applies one object (server-side apply as `ferry`, taking fields back from other
    /// managers); `replace` deletes it first. Returns `created`, `configured`,
    /// `unchanged` or `replaced`.
    async fn apply_one(
        &self,
        obj: &Object,
        replace: bool,
        before: Option<&Object>,
    ) -> std::result::Result<String, String> {
        let key = obj.key();
        let fail = |what: &str, e: &dyn fmt::Display| {
            format!("{what} {} {} ({}): {e}", key.kind, key.name, obj.origin())
        };
        let mut replaced = false;
        if replace && before.is_some() {
            self.target
                .delete(&key, Propagation::Background)
                .await
                .map_err(|e| fail("deleting (Replace=true)", &e))?;
            self.wait_gone(&key).await?;
            replaced = true;
        }
        let opts = ApplyOptions {
            field_manager: FIELD_MANAGER.into(),
            force: true,
            dry_run: false,
        };
        let applied = self
            .target
            .apply(obj, &opts)
            .await
            .map_err(|e| fail("applying", &e))?;
        let rv = |o: &Object| {
            o.value()
                .pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(Value::Null)
        };
        Ok(match before {
            _ if replaced => "replaced",
            None => "created",
            Some(b) if rv(b) == rv(&applied) && !rv(b).is_null() => "unchanged",
            Some(_) => "configured",
        }
        .to_string())
    }

    /// Starts a hook of the current attempt — recorded in the operation, in the store,
    /// before the target is touched — or, when the attempt is one a restarted daemon
    /// resumes, adopts the hook it started before the crash: one still there (carrying
    /// this attempt's id) is waited for, not created again; one that finished is not
    /// run again.
    async fn run_hook(
        &self,
        name: &str,
        op: &mut OperationState,
        obj: &Object,
    ) -> std::result::Result<HookStart, String> {
        let key = obj.key();
        let known = op.hooks.iter().position(|h| h.is(&key));
        let i = match known {
            Some(i) => {
                let h = &op.hooks[i];
                match h.phase.as_str() {
                    "Succeeded" => return Ok(HookStart::Done(key, None)),
                    "Failed" => {
                        let m = if h.message.is_empty() {
                            format!("hook {} {} failed", key.kind, key.name)
                        } else {
                            h.message.clone()
                        };
                        return Ok(HookStart::Done(key, Some(m)));
                    }
                    _ => {}
                }
                match self.target.get(&key).await {
                    Ok(Some(live))
                        if live.annotation(SYNC_ATTEMPT) == Some(op.attempt.as_str()) =>
                    {
                        let uid = uid_of(&live);
                        let h = &mut op.hooks[i];
                        if h.uid != uid || h.phase != "Running" {
                            h.uid = uid;
                            h.phase = "Running".into();
                            self.record_operation(name, op)
                                .map_err(|e| format!("recording hook {key}: {e}"))?;
                        }
                        return Ok(HookStart::Running(
                            key,
                            "hook adopted after the daemon restarted (not run again)".into(),
                        ));
                    }
                    // Recorded but never created (the daemon died in between), or gone
                    // since: this attempt's run of it starts now.
                    Ok(_) => i,
                    Err(e) => return Err(format!("reading hook {key}: {e}")),
                }
            }
            None => {
                op.hooks.push(HookRun {
                    group: key.group.clone(),
                    kind: key.kind.clone(),
                    namespace: key.namespace.clone(),
                    name: key.name.clone(),
                    uid: String::new(),
                    phase: "Starting".into(),
                    message: String::new(),
                });
                op.hooks.len() - 1
            }
        };
        // In the store before the hook exists: a crash from here on leaves a record the
        // next daemon finds, so it never starts a second run beside this one.
        self.record_operation(name, op)
            .map_err(|e| format!("recording hook {key} before starting it: {e}"))?;
        let mut obj = obj.clone();
        obj.set_meta_entry("annotations", SYNC_ATTEMPT, &op.attempt);
        let created = self.start_hook(&obj).await?;
        let h = &mut op.hooks[i];
        h.uid = uid_of(&created);
        h.phase = "Running".into();
        if let Err(e) = self.record_operation(name, op) {
            tracing::warn!("app {name}: recording hook {key}: {e}");
        }
        Ok(HookStart::Running(created.key(), "hook created".into()))
    }

    /// Deletes a hook's previous object, waits for it to go, and creates it anew.
    async fn start_hook(&self, obj: &Object) -> std::result::Result<Object, String> {
        let key = obj.key();
        match self.target.get(&key).await {
            Ok(Some(_)) => {
                // In the foreground, as Argo CD does: the previous hook (a Job, say) is
                // gone only once its pods are, so the new one never runs beside it.
                self.target
                    .delete(&key, Propagation::Foreground)
                    .await
                    .map_err(|e| format!("deleting the previous hook {key}: {e}"))?;
                self.wait_gone(&key).await?;
            }
            Ok(None) => {}
            Err(e) => return Err(format!("reading hook {key}: {e}")),
        }
        let opts = ApplyOptions {
            field_manager: FIELD_MANAGER.into(),
            force: true,
            dry_run: false,
        };
        self.target.apply(obj, &opts).await.map_err(|e| {
            format!(
                "creating hook {} {} ({}): {e}",
                key.kind,
                key.name,
                obj.origin()
            )
        })
    }

    async fn wait_gone(&self, key: &ObjectKey) -> std::result::Result<(), String> {
        let deadline = Instant::now() + self.config.sync_timeout;
        let target = self.target.clone();
        loop {
            let changed = target.changed();
            match target.get(key).await {
                Ok(None) => return Ok(()),
                Ok(Some(_)) => {}
                Err(e) => return Err(format!("reading {key}: {e}")),
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "timed out after {}s waiting for {key} to be deleted",
                    self.config.sync_timeout.as_secs_f64()
                ));
            }
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep(self.config.poll_interval) => {}
            }
        }
    }

    /// Waits until every item is healthy (hooks: finished), fails at once on a
    /// Degraded one, applies hook deletion policies, and updates the result rows.
    /// Returns the first failure.
    /// While waiting, the status of `app` (when given) is compared again as the target
    /// changes, at most every `compare_interval`.
    /// A hook's outcome is recorded in the operation before its deletion policy
    /// applies, so that a daemon resuming the attempt knows it ran.
    async fn settle(
        &self,
        items: &[WaitItem],
        result: &mut SyncResult,
        name: &str,
        op: &mut OperationState,
        follow_status: bool,
    ) -> Option<String> {
        let outcomes = self.wait_for(items, follow_status.then_some(name)).await;
        for (item, outcome) in items.iter().zip(&outcomes) {
            let phase = match outcome {
                _ if !item.hook => continue,
                Waited::Ok => ("Succeeded", String::new()),
                Waited::Failed(m) => ("Failed", m.clone()),
                Waited::Pending => continue,
            };
            if let Some(h) = op.hooks.iter_mut().find(|h| h.is(&item.key)) {
                h.phase = phase.0.into();
                h.message = phase.1;
            }
        }
        if items.iter().any(|i| i.hook)
            && let Err(e) = self.record_operation(name, op)
        {
            tracing::warn!("app {name}: recording hook outcomes: {e}");
        }
        let mut failure = None;
        for (item, outcome) in items.iter().zip(outcomes) {
            let r = &mut result.resources[item.row];
            let ok = match &outcome {
                Waited::Ok => {
                    if item.hook {
                        r.hook_phase = Some("Succeeded".into());
                        r.message = if r.message.starts_with("hook adopted") {
                            "hook succeeded (adopted after the daemon restarted; not run again)"
                        } else {
                            "hook succeeded"
                        }
                        .into();
                    }
                    true
                }
                Waited::Failed(m) => {
                    r.status = ResultCode::SyncFailed;
                    r.message = m.clone();
                    if item.hook {
                        r.hook_phase = Some("Failed".into());
                    }
                    failure.get_or_insert_with(|| m.clone());
                    false
                }
                Waited::Pending => continue,
            };
            if item.hook {
                let delete = (ok
                    && item
                        .delete_policies
                        .contains(&HookDeletePolicy::HookSucceeded))
                    || (!ok && item.delete_policies.contains(&HookDeletePolicy::HookFailed));
                if delete
                    && let Err(e) = self.target.delete(&item.key, Propagation::Background).await
                {
                    r.message = format!("{}; deleting the hook failed: {e}", r.message);
                }
            }
        }
        failure
    }

    /// Compares the app again during a sync (compare only, no fetch); a failure is
    /// logged, the sync goes on.
    async fn refresh_status(&self, app: &str) {
        if let Err(e) = Box::pin(self.refresh_app(app, FetchMode::Mirror, false, None)).await {
            tracing::warn!("app {app}: refresh during sync: {e}");
        }
    }

    async fn wait_for(&self, items: &[WaitItem], app: Option<&str>) -> Vec<Waited> {
        let mut out = vec![Waited::Pending; items.len()];
        if items.is_empty() {
            return out;
        }
        let deadline = Instant::now() + self.config.sync_timeout;
        let target = self.target.clone();
        let mut last: BTreeMap<usize, String> = BTreeMap::new();
        let mut degraded_since: BTreeMap<usize, Instant> = BTreeMap::new();
        // When the app's status was last compared during this wait (first: before
        // the first wait).
        let mut last_status: Option<Instant> = None;
        loop {
            let changed = target.changed();
            let pending: Vec<usize> = (0..items.len())
                .filter(|i| out[*i] == Waited::Pending)
                .collect();
            let mut live: Vec<(usize, Object)> = Vec::new();
            for &i in &pending {
                match target.get(&items[i].key).await {
                    Ok(Some(o)) => live.push((i, o)),
                    Ok(None) => {
                        last.insert(i, "not found".into());
                    }
                    Err(e) => {
                        last.insert(i, e.to_string());
                    }
                }
            }
            let refs: Vec<&Object> = live.iter().map(|(_, o)| o).collect();
            let related = related(target.as_ref(), &refs).await.unwrap_or_default();
            let mut judged: Vec<Object> = live.iter().map(|(_, o)| o.clone()).collect();
            judged.extend(related);
            let healths = assess_all(&judged);
            for (j, (i, o)) in live.iter().enumerate() {
                let item = &items[*i];
                let what = format!("{} {}", o.kind(), o.name());
                if !observed(o) {
                    // Its controller has not seen this apply yet: its pods are the old
                    // ones, whose failures say nothing about the new spec.
                    last.insert(
                        *i,
                        "waiting for the controller to observe the change".into(),
                    );
                    continue;
                }
                let degraded = healths[j]
                    .as_ref()
                    .is_some_and(|h| h.status == HealthStatus::Degraded);
                if !degraded {
                    degraded_since.remove(i);
                }
                match &healths[j] {
                    None => out[*i] = Waited::Ok,
                    Some(h) => match h.status {
                        HealthStatus::Healthy => out[*i] = Waited::Ok,
                        HealthStatus::Suspended if !item.hook => out[*i] = Waited::Ok,
                        HealthStatus::Degraded => {
                            let message = if item.hook {
                                format!("hook {what} failed: {}", h.message)
                            } else {
                                format!("{what} is Degraded: {}", h.message)
                            };
                            // A pod's waiting reason can predate what this sync just
                            // applied (the Secret key a stuck container waits for):
                            // fail only on a verdict that outlasts one re-check.
                            let since = *degraded_since.entry(*i).or_insert_with(Instant::now);
                            if since.elapsed() >= self.config.poll_interval {
                                out[*i] = Waited::Failed(message);
                            } else {
                                last.insert(*i, message);
                            }
                        }
                        s => {
                            last.insert(
                                *i,
                                if h.message.is_empty() {
                                    s.to_string()
                                } else {
                                    format!("{s}: {}", h.message)
                                },
                            );
                        }
                    },
                }
            }
            if out.iter().any(|w| matches!(w, Waited::Failed(_)))
                || out.iter().all(|w| *w == Waited::Ok)
            {
                return out;
            }
            if Instant::now() >= deadline {
                for (i, w) in out.iter_mut().enumerate() {
                    if *w == Waited::Pending {
                        let item = &items[i];
                        *w = Waited::Failed(format!(
                            "timed out after {}s waiting for {} {} to {} (last: {})",
                            self.config.sync_timeout.as_secs_f64(),
                            item.key.kind,
                            item.key.name,
                            if item.hook {
                                "finish"
                            } else {
                                "become healthy"
                            },
                            last.get(&i).map(String::as_str).unwrap_or("unknown")
                        ));
                    }
                }
                return out;
            }
            if let Some(app) = app
                && last_status.is_none_or(|t| t.elapsed() >= self.config.compare_interval)
            {
                self.refresh_status(app).await;
                last_status = Some(Instant::now());
            }
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep(self.config.poll_interval) => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// Prunes (or, in a dry run, lists) the app's objects that left Git: those marked
    /// `PruneLast` when `last`, the others otherwise. Returns the first failure.
    async fn prune(
        &self,
        cmp: &Comparison,
        desired: &Desired,
        policy: &SyncPolicy,
        args: &SyncArgs,
        last: bool,
        result: &mut SyncResult,
    ) -> Option<String> {
        let partial = !args.resources.is_empty();
        let app_last = policy.option_is_true("PruneLast");
        let candidates: Vec<Object> = cmp
            .extraneous()
            .into_iter()
            .filter(|o| !partial || args.resources.iter().any(|f| f.matches(&o.key())))
            .filter(|o| (app_last || tracking::object_option(o, "PruneLast")) == last)
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let empty = !desired.objects.iter().any(|o| !tracking::is_hook(o));
        let allow_empty = policy.automated.as_ref().is_some_and(|a| a.allow_empty);
        let gate = if !args.prune {
            Some("ignored (requires pruning: sync with prune)".to_string())
        } else if desired.unreachable.is_some() {
            Some("not pruned: the repository is unreachable".to_string())
        } else if empty && !allow_empty {
            Some(
                "not pruned: the render is empty; set syncPolicy.automated.allowEmpty: true to allow pruning everything"
                    .to_string(),
            )
        } else {
            None
        };
        let propagation = match policy.option("PrunePropagationPolicy") {
            Some("background") => Propagation::Background,
            Some("orphan") => Propagation::Orphan,
            _ => Propagation::Foreground,
        };
        let phase = Phase::Sync;
        let (order, kept) = prune_order(&candidates);
        for i in kept {
            let o = &candidates[i];
            result.resources.push(row(
                o,
                &o.key(),
                ResultCode::PruneSkipped,
                "ignored (Prune=false)",
                phase,
                wave(o).unwrap_or(0),
            ));
        }
        let mut failure = None;
        for i in order {
            let o = &candidates[i];
            let key = o.key();
            let w = wave(o).unwrap_or(0);
            if let Some(reason) = &gate {
                result.resources.push(row(
                    o,
                    &key,
                    ResultCode::PruneSkipped,
                    reason.clone(),
                    phase,
                    w,
                ));
                continue;
            }
            if args.dry_run {
                result.resources.push(row(
                    o,
                    &key,
                    ResultCode::Pruned,
                    "would be pruned (dry run)",
                    phase,
                    w,
                ));
                continue;
            }
            match self.target.delete(&key, propagation).await {
                Ok(_) => {
                    result
                        .resources
                        .push(row(o, &key, ResultCode::Pruned, "pruned", phase, w))
                }
                Err(e) => {
                    let m = format!("pruning {key}: {e}");
                    result.resources.push(row(
                        o,
                        &key,
                        ResultCode::SyncFailed,
                        m.clone(),
                        phase,
                        w,
                    ));
                    failure.get_or_insert(m);
                }
            }
        }
        failure
    }
}

/// Whether a workload's controller has observed its latest spec
/// (`status.observedGeneration` ≥ `metadata.generation`); other kinds always have.
fn observed(obj: &Object) -> bool {
    const WORKLOADS: &[&str] = &[
        "Deployment",
        "ReplicaSet",
        "StatefulSet",
        "DaemonSet",
        "Rollout",
    ];
    if !WORKLOADS.contains(&obj.kind()) {
        return true;
    }
    let v = obj.value();
    let generation = v
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let observed = v
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    observed >= generation
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_filters_parse_and_match() {
        let f: ResourceFilter = "apps:Deployment:shop/web".parse().unwrap();
        assert!(f.matches(&ObjectKey::new("apps", "Deployment", "shop", "web")));
        assert!(!f.matches(&ObjectKey::new("apps", "Deployment", "other", "web")));
        assert_eq!(f.to_string(), "apps:Deployment:shop/web");
        let f: ResourceFilter = ":ConfigMap:settings".parse().unwrap();
        assert!(f.matches(&ObjectKey::new("", "ConfigMap", "any", "settings")));
        assert!(!f.matches(&ObjectKey::new("x", "ConfigMap", "any", "settings")));
        assert!("Deployment/web".parse::<ResourceFilter>().is_err());
    }

    #[test]
    fn retry_backoff_defaults_are_argos() {
        let r = RetryStrategy::default();
        let secs: Vec<u64> = (1..=7).map(|n| retry_delay(&r, n).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 180]);
    }
}
