//! ferry's pure core: the object model, manifest parsing, health assessment,
//! normalisation and diff, sync planning, the Argo spec types, and Kubernetes' name
//! rules. No I/O here.

pub mod admit;
pub mod argo;
pub mod diff;
pub mod error;
pub mod health;
pub mod names;
pub mod object;
pub mod parse;
pub mod plan;
pub mod schema;
pub mod target;

pub use error::{Error, Result};
pub use object::{Object, ObjectKey, Source};
