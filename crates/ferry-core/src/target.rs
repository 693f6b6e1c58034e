//! The only door between the engine and a place where objects run: the embedded
//! runtime or, later, a Kubernetes cluster. The engine never knows which.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use crate::object::{Object, ObjectKey};

/// A boxed future, so that [`Target`] can be used as `dyn Target`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How an apply is made (server-side apply semantics).
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// The manager that owns the fields this apply sets (`ferry` for the engine).
    pub field_manager: String,
    /// Take ownership of fields other managers own instead of failing with a conflict.
    pub force: bool,
    /// Validate and compute the result without storing it.
    pub dry_run: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            field_manager: "ferry".into(),
            force: false,
            dry_run: false,
        }
    }
}

/// What happens to an object's dependents when it is deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Propagation {
    /// Delete the object now and its dependents right after (Kubernetes' default).
    #[default]
    Background,
    /// Delete dependents first.
    Foreground,
    /// Keep the dependents.
    Orphan,
}

/// Which objects a list returns.
#[derive(Clone, Debug, Default)]
pub struct Selector {
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Only objects carrying every one of these labels.
    pub labels: BTreeMap<String, String>,
}

impl Selector {
    /// Whether `obj` is selected.
    pub fn matches(&self, obj: &Object) -> bool {
        self.kind.as_deref().is_none_or(|k| obj.kind() == k)
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| obj.namespace() == ns)
            && self
                .labels
                .iter()
                .all(|(k, v)| obj.label(k) == Some(v.as_str()))
    }
}

/// What a target can refuse.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Another manager owns a field this apply sets, or the object is being deleted.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The object is malformed for this target.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The target cannot be reached or failed.
    #[error("target unavailable: {0}")]
    Unavailable(String),
}

/// A place where objects run.
pub trait Target: Send + Sync {
    /// A short name for messages (`local`, a cluster's name).
    fn name(&self) -> &str;
    /// Server-side apply: create or update, owning the fields `obj` sets.
    fn apply<'a>(
        &'a self,
        obj: &'a Object,
        opts: &'a ApplyOptions,
    ) -> BoxFuture<'a, Result<Object, TargetError>>;
    /// One object, if it exists.
    fn get<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<Option<Object>, TargetError>>;
    /// Objects a selector picks.
    fn list<'a>(
        &'a self,
        selector: &'a Selector,
    ) -> BoxFuture<'a, Result<Vec<Object>, TargetError>>;
    /// Deletes an object; `Ok(false)` when it was not there.
    fn delete<'a>(
        &'a self,
        key: &'a ObjectKey,
        propagation: Propagation,
    ) -> BoxFuture<'a, Result<bool, TargetError>>;
    /// Resolves at the next change on the target after this call, so a controller can
    /// wait for change instead of polling.
    fn changed(&self) -> BoxFuture<'_, ()>;
}
