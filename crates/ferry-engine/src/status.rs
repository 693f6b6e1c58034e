//! What the engine reports about an app, shaped as Argo CD's `Application.status`
//! so that `-o json` output and scripts written for Argo keep working.

use std::fmt;

use ferry_core::argo::{ApplicationDestination, ApplicationSource, ApplicationSpec, ObjectMeta};
use ferry_core::health::HealthStatus;
use serde::{Deserialize, Serialize};

/// Condition type: manifests could not be fetched, rendered or compared.
pub const COMPARISON_ERROR: &str = "ComparisonError";
/// Condition type: the last sync failed.
pub const SYNC_ERROR: &str = "SyncError";
/// Condition type: an object is rendered by more than one app.
pub const SHARED_RESOURCE_WARNING: &str = "SharedResourceWarning";
/// Condition type: something in the render the user should know (skipped files, …).
pub const RENDER_WARNING: &str = "RenderWarning";

/// An app's sync status, as Argo CD names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SyncCode {
    /// Live matches Git.
    Synced,
    /// Live differs from Git.
    OutOfSync,
    /// Not compared yet, or comparison failed.
    #[default]
    Unknown,
}

impl fmt::Display for SyncCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// `status.sync`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SyncInfo {
    /// Synced, OutOfSync or Unknown.
    pub status: SyncCode,
    /// The commit compared against (the resolved target revision).
    pub revision: String,
    /// What was compared: the source and destination at comparison time.
    pub compared_to: ComparedTo,
}

/// `status.sync.comparedTo`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ComparedTo {
    /// The source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<ApplicationSource>,
    /// The destination.
    pub destination: ApplicationDestination,
}

/// A health verdict with its reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HealthInfo {
    /// The verdict.
    pub status: HealthStatus,
    /// Why (empty when there is nothing to say).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl Default for HealthInfo {
    fn default() -> Self {
        Self {
            status: HealthStatus::Unknown,
            message: String::new(),
        }
    }
}

/// One entry of `status.resources`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ResourceStatus {
    /// API group (empty for core).
    pub group: String,
    /// API version (`v1`).
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Namespace (empty for cluster-scoped).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Synced or OutOfSync (a Missing object is OutOfSync with health Missing).
    pub status: SyncCode,
    /// Health, for kinds that have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthInfo>,
    /// Whether the object is a hook (not part of sync status or health).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hook: bool,
    /// Whether the object is live but no longer in Git (a sync with prune deletes it).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub requires_pruning: bool,
}

/// One entry of `status.conditions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `ComparisonError`, `SyncError`, `SharedResourceWarning`, `RenderWarning`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What happened and what to do.
    pub message: String,
    /// When the condition first appeared with this message (RFC 3339).
    #[serde(default)]
    pub last_transition_time: String,
}

/// `status.summary`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Summary {
    /// Container images of the app's live workloads.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
}

/// Who or what started an operation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct InitiatedBy {
    /// The user, for manual operations.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// Whether the controller started it (automated sync, self-heal, retry).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub automated: bool,
}

/// One entry of `status.history`: one sync.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HistoryEntry {
    /// Increasing id; what `rollback` takes.
    pub id: i64,
    /// The commit synced.
    pub revision: String,
    /// When the sync finished (RFC 3339).
    pub deployed_at: String,
    /// When the sync started (RFC 3339).
    pub deploy_started_at: String,
    /// The source synced.
    pub source: ApplicationSource,
    /// Who started it.
    pub initiated_by: InitiatedBy,
    /// `automated`, `self-heal`, `retry`, `manual` or `rollback`.
    pub trigger: String,
    /// `Succeeded` or `Failed`.
    pub result: OperationPhase,
    /// The operation's message.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// The phase of an operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OperationPhase {
    /// Applying or waiting.
    #[default]
    Running,
    /// Done; every step succeeded.
    Succeeded,
    /// Done; a step failed (the message says which).
    Failed,
    /// The operation could not be carried out at all.
    Error,
}

impl OperationPhase {
    /// Whether the operation has finished.
    pub fn is_completed(self) -> bool {
        self != OperationPhase::Running
    }
}

impl fmt::Display for OperationPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// `status.operationState.operation.sync`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SyncOperation {
    /// The revision asked for (empty: the app's target revision).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub revision: String,
    /// Whether pruning was asked for.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub prune: bool,
    /// Whether nothing was to be changed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// The resources the sync was limited to (`GROUP:KIND:[NAMESPACE/]NAME`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// The source asked for instead of the app's (a rollback's), so that a sync the
    /// next daemon resumes renders what was being synced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<ApplicationSource>,
}

/// `status.operationState.operation`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Operation {
    /// The sync asked for.
    pub sync: SyncOperation,
    /// Who asked.
    pub initiated_by: InitiatedBy,
    /// `automated`, `self-heal`, `retry`, `manual` or `rollback`.
    pub trigger: String,
}

/// The outcome of one resource in a sync, as Argo CD names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ResultCode {
    /// Applied (or, in a dry run, would be).
    #[default]
    Synced,
    /// The apply, or the wait for health, failed.
    SyncFailed,
    /// Deleted because it left Git.
    Pruned,
    /// Left in place although it left Git (prune not asked, `Prune=false`, …).
    PruneSkipped,
}

/// `status.operationState.syncResult.resources[]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ResourceResult {
    /// API group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Namespace.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Synced, SyncFailed, Pruned or PruneSkipped.
    pub status: ResultCode,
    /// What happened (`created`, `configured`, `unchanged`, `pruned`, the error).
    pub message: String,
    /// For hooks: `Running`, `Succeeded` or `Failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook_phase: Option<String>,
    /// For hooks: the hook type (`PreSync`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook_type: Option<String>,
    /// The phase the resource was synced in.
    pub sync_phase: String,
    /// Its wave.
    pub sync_wave: i32,
}

/// `status.operationState.syncResult`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SyncResult {
    /// The commit synced.
    pub revision: String,
    /// The source synced.
    pub source: ApplicationSource,
    /// One entry per resource touched, in the order they were handled.
    pub resources: Vec<ResourceResult>,
}

/// `status.operationState`: the current or last operation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OperationState {
    /// What was asked.
    pub operation: Operation,
    /// Running, Succeeded, Failed or Error.
    pub phase: OperationPhase,
    /// What happened, or the current step.
    pub message: String,
    /// Start (RFC 3339).
    pub started_at: String,
    /// End (RFC 3339), once finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Per-resource results.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_result: Option<SyncResult>,
    /// Which retry this is (0 for the first attempt).
    #[serde(skip_serializing_if = "is_zero")]
    pub retry_count: i64,
    /// The current attempt's id: it names the hooks this attempt started (their
    /// `generateName` suffix and the [`SYNC_ATTEMPT`] annotation), so that a daemon
    /// resuming the attempt adopts them instead of running them again.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub attempt: String,
    /// The hooks the current attempt started, recorded before each is created.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookRun>,
    /// The history entry of this operation, written when it first changed the target
    /// and brought up to date when it finishes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_id: Option<i64>,
    /// How many times a daemon that started after a crash took the operation up again.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub restarts: u32,
}

/// Annotation on a hook object: the sync attempt ([`OperationState::attempt`]) that
/// created it.
pub const SYNC_ATTEMPT: &str = "ferry.dev/sync-attempt";

/// One hook a sync attempt started: recorded in the store before the hook is created,
/// so that a crash never leaves a hook the next daemon does not know about.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HookRun {
    /// API group.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The created object's uid (empty until the target answered the create).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// `Starting` (recorded, maybe not created yet), `Running`, `Succeeded`, `Failed`.
    pub phase: String,
    /// Why it failed.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// An app's status as the engine computes it (persisted between restarts; history and
/// the operation are kept apart and joined in [`AppView`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AppStatus {
    /// Sync status.
    pub sync: SyncInfo,
    /// Aggregate health: the worst of the app's resources.
    pub health: HealthInfo,
    /// Every resource of the app, hooks included.
    pub resources: Vec<ResourceStatus>,
    /// Errors and warnings.
    pub conditions: Vec<Condition>,
    /// `Directory`, `Kustomize` or `Helm`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source_type: String,
    /// When the app was last compared (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconciled_at: Option<String>,
    /// Images in use.
    pub summary: Summary,
    /// Automated sync is paused (after a rollback) until the next new commit.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub auto_sync_paused: bool,
    /// Why automated sync is paused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_sync_paused_reason: Option<String>,
}

impl AppStatus {
    /// The first condition of a type.
    pub fn condition(&self, kind: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }
}

/// `status` of an [`AppView`]: the computed status with history and operation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct StatusView {
    /// The computed status.
    #[serde(flatten)]
    pub status: AppStatus,
    /// Syncs, oldest first.
    pub history: Vec<HistoryEntry>,
    /// The current or last operation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_state: Option<OperationState>,
}

/// An app as the API shows it: an Argo CD `Application` with ferry's status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AppView {
    /// `argoproj.io/v1alpha1`.
    pub api_version: String,
    /// `Application`.
    pub kind: String,
    /// The Application's metadata as given.
    pub metadata: ObjectMeta,
    /// The spec as given.
    pub spec: ApplicationSpec,
    /// What the engine knows.
    pub status: StatusView,
}

impl AppView {
    /// The app's name.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }
}
