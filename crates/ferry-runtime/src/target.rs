//! The embedded runtime as a [`Target`]: what the GitOps engine drives.

use std::sync::Arc;

use ferry_core::target::{ApplyOptions, BoxFuture, Propagation, Selector, Target, TargetError};
use ferry_core::{Object, ObjectKey};

use crate::cluster::Cluster;
use crate::{Error, Runtime};

fn target_error(e: Error) -> TargetError {
    match e {
        Error::Conflict(m) => TargetError::Conflict(m),
        Error::Invalid(m) | Error::AlreadyExists(m) => TargetError::Invalid(m),
        other => TargetError::Unavailable(other.to_string()),
    }
}

/// The embedded runtime, named `local` (Argo's `destination.name: local`, or
/// `destination.server: https://kubernetes.default.svc`).
#[derive(Clone)]
pub struct LocalTarget {
    runtime: Arc<Runtime>,
}

impl LocalTarget {
    /// The target over a running runtime.
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Self { runtime }
    }

    fn cluster(&self) -> &Cluster {
        &self.runtime.cluster
    }
}

impl Target for LocalTarget {
    fn name(&self) -> &str {
        "local"
    }

    fn apply<'a>(
        &'a self,
        obj: &'a Object,
        opts: &'a ApplyOptions,
    ) -> BoxFuture<'a, Result<Object, TargetError>> {
        Box::pin(async move { self.runtime.apply(obj, opts).map_err(target_error) })
    }

    fn get<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<Option<Object>, TargetError>> {
        Box::pin(async move { Ok(self.cluster().get(key)) })
    }

    fn list<'a>(
        &'a self,
        selector: &'a Selector,
    ) -> BoxFuture<'a, Result<Vec<Object>, TargetError>> {
        Box::pin(async move {
            // The engine lists each app's objects by its instance label: use the index.
            if let Some(app) = selector.labels.get(crate::cluster::INSTANCE_LABEL) {
                return Ok(self
                    .cluster()
                    .list_instance(app)
                    .into_iter()
                    .filter(|o| selector.matches(o))
                    .collect());
            }
            Ok(self.cluster().list_selected(selector))
        })
    }

    fn delete<'a>(
        &'a self,
        key: &'a ObjectKey,
        propagation: Propagation,
    ) -> BoxFuture<'a, Result<bool, TargetError>> {
        Box::pin(async move {
            self.cluster()
                .delete(key, propagation)
                .map_err(target_error)
        })
    }

    fn changed(&self) -> BoxFuture<'_, ()> {
        let mut rx = self.cluster().changed();
        Box::pin(async move {
            rx.borrow_and_update();
            let _ = rx.changed().await;
        })
    }
}
