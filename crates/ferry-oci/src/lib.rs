//! ferry-oci owns OCI images: the local image-layout store, the registry client
//! (pull, push, HEAD, basic and bearer auth) and daemonless, reproducible builds.
//!
//! The store is synchronous (plain files; call it from `spawn_blocking` in async
//! code); the registry client is async (tokio, reqwest).

pub mod archive;
pub mod auth;
pub mod build;
pub mod digest;
pub mod error;
pub mod reference;
pub mod registry;
pub mod spec;
pub mod store;
pub mod unpack;

pub use archive::{ExportResult, ImportOptions, ImportResult, ImportedImage, export, import};
pub use auth::{Credential, Credentials};
pub use build::{BuildOptions, BuildResult, build};
pub use digest::Digest;
pub use error::{Error, Result};
pub use reference::Reference;
pub use registry::{
    DEFAULT_CHUNK_SIZE, Progress, ProgressEvent, PullResult, PushStats, RegistryClient,
    RegistryOptions,
};
pub use spec::{ImageConfig, Platform};
pub use store::{ImageInfo, Store};
