//! ferry-engine owns the app controller: refresh (fetch, render, track), compare
//! (diff and health), sync (phases, waves, hooks, prune), automated sync with
//! self-heal and retry, history, rollback, and the crash-safe record of all of it.
//!
//! The engine touches live objects only through [`ferry_core::target::Target`], Git
//! only through [`ferry_git::RepoCache`], and keeps its state in [`ferry_store::Db`].
//! [`Engine`] is the API the daemon and the CLI call; [`Engine::run`] is the
//! controller loop.

mod compare;
mod config;
mod controller;
mod engine;
mod error;
mod refresh;
mod source;
mod status;
mod sync;
mod tracking;

pub use config::{Backoff, EngineConfig};
pub use engine::{Deleted, Engine, WaitFor};
pub use error::{Error, Result};
pub use status::{
    AppStatus, AppView, COMPARISON_ERROR, ComparedTo, Condition, HealthInfo, HistoryEntry, HookRun,
    InitiatedBy, Operation, OperationPhase, OperationState, RENDER_WARNING, ResourceResult,
    ResourceStatus, ResultCode, SHARED_RESOURCE_WARNING, SYNC_ATTEMPT, SYNC_ERROR, StatusView,
    Summary, SyncCode, SyncInfo, SyncOperation, SyncResult,
};
pub use sync::{ResourceFilter, SyncRequest};
pub use tracking::{FIELD_MANAGER, INSTANCE_LABEL, TRACKING_ID, tracking_id};
