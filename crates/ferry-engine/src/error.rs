//! The one error type of `ferry-engine`.

use std::time::Duration;

/// What the engine's API can refuse. A sync that runs and fails is not an error: it
/// returns an [`OperationState`](crate::OperationState) in phase `Failed`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No application has this name.
    #[error("application {app:?} not found; `ferry app list` shows the apps")]
    NotFound {
        /// The name asked for.
        app: String,
    },
    /// `create` of an app that exists with another spec, without `upsert`.
    #[error(
        "application {app:?} already exists with a different spec; use upsert (`--upsert`) to replace it or `app set` to change it"
    )]
    AlreadyExists {
        /// The app.
        app: String,
    },
    /// The Application document has errors (each names its field).
    #[error("application {app:?} is invalid:\n{}", errors.join("\n"))]
    Invalid {
        /// The app (may be empty when the document has no name).
        app: String,
        /// One line per error, `path: message`.
        errors: Vec<String>,
    },
    /// Another operation (a sync, rollback or delete) is running on the app.
    #[error(
        "another operation is already in progress on application {app:?}; wait for it (`ferry app wait {app}`) and try again"
    )]
    Busy {
        /// The app.
        app: String,
    },
    /// The history has no entry with this id.
    #[error("application {app:?} has no history entry {id}; `ferry app history {app}` lists them")]
    HistoryNotFound {
        /// The app.
        app: String,
        /// The id asked for.
        id: i64,
    },
    /// A wait ran out of time.
    #[error("application {app:?}: timed out after {}s waiting for {what} (now {now})", waited.as_secs_f64())]
    Timeout {
        /// The app.
        app: String,
        /// What was waited for, e.g. `sync Synced and health Healthy`.
        what: String,
        /// The state when the time ran out.
        now: String,
        /// How long was waited.
        waited: Duration,
    },
    /// The target refused or failed while deleting the app's objects.
    #[error("application {app:?}: {what}: {source}")]
    Target {
        /// The app.
        app: String,
        /// What was being done, naming the object.
        what: String,
        /// The target's error.
        source: ferry_core::target::TargetError,
    },
    /// The state database failed.
    #[error(transparent)]
    Store(#[from] ferry_store::Error),
    /// The engine's own state could not be encoded or decoded.
    #[error("application {app:?}: stored state is unreadable: {message}")]
    State {
        /// The app.
        app: String,
        /// What failed.
        message: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
