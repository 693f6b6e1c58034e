//! The embedded runtime assembled: object store, controllers, kubelet and Service
//! proxies over one state directory.

use std::sync::{Arc, Mutex};

use ferry_core::{Object, ObjectKey};
use ferry_store::Db;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cluster::{ApplyOptions, Cluster};
use crate::kubelet::Kubelet;
use crate::proxy::Metrics;
use crate::services::ServiceManager;
use crate::{Error, Result, RuntimeConfig, controller};

/// Kinds the embedded runtime acts on; everything else is stored and reported as not run.
pub const RUN_KINDS: &[&str] = &[
    "Pod",
    "Deployment",
    "ReplicaSet",
    "Job",
    "Service",
    "ConfigMap",
    "Secret",
    "Namespace",
];

/// A running embedded runtime.
pub struct Runtime {
    /// Its settings.
    pub config: RuntimeConfig,
    /// The object store.
    pub cluster: Arc<Cluster>,
    /// Runs pods as processes.
    pub kubelet: Arc<Kubelet>,
    /// Runs Service listeners and proxies.
    pub services: Arc<ServiceManager>,
    /// Request metrics of every Service proxy.
    pub metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Runtime {
    /// Opens the state under `config.home` and starts the controllers, the kubelet
    /// (re-adopting processes an earlier daemon left running) and the Service proxies.
    pub async fn start(config: RuntimeConfig) -> Result<Arc<Self>> {
        let repaired = crate::home::secure(&config.home).map_err(|e| {
            Error::Invalid(format!(
                "cannot create or secure FERRY_HOME {}: {e}",
                config.home.display()
            ))
        })?;
        for line in repaired {
            tracing::warn!("FERRY_HOME holds secrets and must be private: {line}");
        }
        let db = Arc::new(Db::open(&config.db_path())?);
        let cluster = Arc::new(Cluster::open(Some(db))?);
        let kubelet = Kubelet::new(cluster.clone(), config.clone())?;
        let metrics = Metrics::new();
        let services = ServiceManager::new(cluster.clone(), metrics.clone(), config.clone());
        let shutdown = CancellationToken::new();
        let rt = Arc::new(Self {
            config,
            cluster: cluster.clone(),
            kubelet: kubelet.clone(),
            services: services.clone(),
            metrics,
            shutdown: shutdown.clone(),
            tasks: Mutex::new(Vec::new()),
        });
        let tasks = vec![
            tokio::spawn(controller::run(cluster, shutdown.clone())),
            tokio::spawn(kubelet.run(shutdown.clone())),
            tokio::spawn(services.run(shutdown.clone())),
        ];
        *rt.tasks.lock().unwrap_or_else(|p| p.into_inner()) = tasks;
        Ok(rt)
    }

    /// Applies an object (server-side apply). Kinds the runtime does not run are
    /// stored and an event says so.
    pub fn apply(&self, obj: &Object, opts: &ApplyOptions) -> Result<Object> {
        let out = self.cluster.apply(obj, opts)?;
        if !RUN_KINDS.contains(&obj.kind()) && !opts.dry_run {
            self.cluster.record_event(
                &out.key(),
                true,
                "NotRun",
                &format!(
                    "the embedded runtime stores {} objects but does not run them",
                    obj.kind()
                ),
            );
        }
        Ok(out)
    }

    /// Sets the traffic weights of a Service by version (pod-template hash).
    pub fn set_traffic(
        &self,
        service: &ObjectKey,
        weights: Option<&std::collections::BTreeMap<String, u32>>,
    ) -> Result<()> {
        if !crate::services::set_weights(&self.cluster, service, weights)? {
            return Err(Error::Invalid(format!(
                "service {}/{} not found",
                service.namespace, service.name
            )));
        }
        Ok(())
    }

    /// Stops the runtime's loops; workloads keep running for the next daemon to adopt.
    pub async fn stop(&self) {
        self.shutdown.cancel();
        let tasks: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
    }

    /// Stops every workload cleanly (SIGTERM, then SIGKILL after the grace period),
    /// closes every Service listener, then the loops. Objects stay in the store, so
    /// the next start brings them back.
    pub async fn down(&self) {
        self.kubelet.stop_all().await;
        self.services.stop_all().await;
        self.stop().await;
    }
}
