//! ferry's pure core: the object model, manifest parsing, health assessment,
//! normalisation and diff, sync planning, and the Argo spec types. No I/O here.

pub mod error;
pub mod object;
pub mod parse;

pub use error::{Error, Result};
pub use object::{Object, ObjectKey, Source};
