//! ferry's embedded target: Kubernetes workloads run on this machine as supervised
//! processes from OCI images — object store, controllers, kubelet, probes, and a
//! weighted, metered proxy per Service.

pub mod cluster;
pub mod controller;
pub mod fields;
pub mod home;
pub mod kubelet;
pub mod proxy;
pub mod runtime;
pub mod services;
pub mod target;

pub use cluster::{ApplyOptions, Cluster, Propagation, WatchEvent};
pub use runtime::Runtime;

/// What can go wrong in the runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An object is malformed for what was asked.
    #[error("invalid: {0}")]
    Invalid(String),
    /// An apply or update collides with another manager or a deletion.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A create found the object already there.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The state database failed.
    #[error(transparent)]
    Store(#[from] ferry_store::Error),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub mod config;
pub use config::RuntimeConfig;
