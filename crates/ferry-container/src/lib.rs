//! ferry-container owns running images as real containers: root filesystems made
//! from an image's unpacked layers (overlayfs over the shared image, else a copy), OCI
//! runtime bundles (`config.json` through `oci-spec`), and runc — start, wait, exit
//! codes and OOM kills, stop, exec, list, re-adoption after a daemon restart, delete —
//! plus the choice between containers and plain processes ([`detect`]).
//!
//! It writes no namespace code of its own: runc does that. Used by the kubelet (pods)
//! and the Dockerfile builder (`RUN`).
//!
//! ```no_run
//! # async fn demo() -> ferry_container::Result<()> {
//! use ferry_container::{ContainerSpec, Runtime};
//! let rt = Runtime::new("/var/lib/ferry/runc");
//! let spec = ContainerSpec {
//!     id: "default_web-0_app".into(),
//!     image_rootfs: "/var/lib/ferry/rootfs/0123abcd".into(),
//!     args: vec!["nginx".into(), "-g".into(), "daemon off;".into()],
//!     hostname: "web-0".into(),
//!     ..ContainerSpec::default()
//! };
//! let mut c = rt.run(&spec, "/var/lib/ferry/logs/web-0/app.log".as_ref()).await?;
//! let exit = c.stop(std::time::Duration::from_secs(30)).await;
//! rt.delete(c.id()).await?;
//! # let _ = exit; Ok(()) }
//! ```

pub mod bundle;
pub mod cgroup;
pub mod container;
pub mod error;
pub mod isolation;
pub mod procfs;
pub mod rootfs;
pub mod runc;
pub mod user;

pub use bundle::{ContainerSpec, HostEntry, Mount, Resources};
pub use container::{
    Container, ContainerInfo, ExecOptions, ExecOutput, Exit, Runtime, Status, find_runc,
};
pub use error::{Error, Result};
pub use isolation::{Decision, Isolation, detect};
pub use rootfs::{RootfsKind, RootfsMode};
pub use runc::RuncState;
pub use user::{ResolvedUser, UserSpec};
