//! The kubelet: runs the cluster's Pod objects as supervised host processes, or —
//! when the daemon's isolation is `container` — as real containers through runc
//! ([`ferry_container`]): one container per pod container, the pod's volumes bind-mounted
//! from `volumes/POD-UID`, the host's network as for processes.
//!
//! Each pod gets one tokio task ([`worker`]) that resolves or pulls its images, builds
//! each container's environment and command as Kubernetes does, starts the processes
//! in their own process groups with output in per-container log files, runs the
//! probes, restarts with back-off, and writes the pod's status. Deleting a pod stops
//! its processes (SIGTERM, SIGKILL after the grace period) and then finalizes it.
//!
//! Every running process is recorded in the state database (pid and start time), so a
//! daemon killed at any moment re-adopts, on its next start, the processes still
//! running and restarts only the others: a replica never runs twice.
//!
//! Directories are named after namespaces, pods and containers, so only names that
//! pass Kubernetes' rules ([`ferry_core::names`]) ever become paths, and every
//! directory the kubelet creates or removes is checked to lie inside the root that
//! owns it ([`create_dir_within`], [`remove_dir_within`]). A pod with an invalid name
//! (stored by an older ferry, which did not check) is never run; it can still be
//! deleted.

mod command;
mod containers;
mod env;
pub mod exec;
mod expand;
mod image;
mod ports;
mod probe;
mod process;
mod status;
mod volume;
mod worker;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ferry_core::Object;
use ferry_core::names::{self, NameRule};
use ferry_oci::{RegistryClient, Store};
use ferry_store::ProcessRow;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{Cluster, Error, Result, RuntimeConfig};

pub use ferry_container::{Decision, Isolation};
pub use ports::HOST_PORTS_ANNOTATION;

/// Decides, once at the daemon's start, how `home`'s pods run for `requested`:
/// `process` as asked; `container` if runc runs a trial container here, else an
/// error saying why; `auto` containers where they work, else processes.
pub async fn decide_isolation(home: &Path, requested: Isolation) -> Result<Decision> {
    let rt = ferry_container::Runtime::new(home.join("runc"));
    ferry_container::detect(requested, &rt).await.map_err(|e| {
        Error::Invalid(format!(
            "--isolation {requested}: {e}; run the daemon as root with Debian's runc installed, or use --isolation process"
        ))
    })
}

/// The environment variable naming a container process (`NS/POD/CONTAINER`).
const CONTAINER_ID_VAR: &str = "FERRY_CONTAINER_ID";
/// The environment variable holding a container process's pod uid.
const POD_UID_VAR: &str = "FERRY_POD_UID";

/// How often the kubelet re-reads every pod even when nothing signalled a change.
const RESYNC: Duration = Duration::from_secs(30);

/// Why a pod worker is asked to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StopReason {
    /// The pod is being deleted, with this grace period; finalize it afterwards.
    Deleted(Duration),
    /// The pod object is gone.
    Gone,
    /// [`Kubelet::stop_all`].
    Shutdown,
}

/// The run loop's handle on one pod worker.
#[derive(Clone)]
struct WorkerCtl {
    stop: CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
    /// Closed when the worker has ended.
    done: watch::Receiver<()>,
}

impl WorkerCtl {
    fn request(&self, reason: StopReason) {
        {
            let mut r = self.reason.lock().unwrap_or_else(|p| p.into_inner());
            // A deletion wins over any other reason: the pod must still be finalized.
            match (*r, reason) {
                (None, _)
                | (Some(StopReason::Shutdown | StopReason::Gone), StopReason::Deleted(_)) => {
                    *r = Some(reason)
                }
                _ => {}
            }
        }
        self.stop.cancel();
    }

    fn stopping(&self) -> Option<StopReason> {
        *self.reason.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Removes a worker from the kubelet's table when its task ends, however it ends.
struct WorkerGuard {
    kubelet: Arc<Kubelet>,
    uid: String,
    _done: watch::Sender<()>,
}

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        self.kubelet.workers().remove(&self.uid);
    }
}

/// Runs Pod objects as processes; see the module documentation.
pub struct Kubelet {
    cluster: Arc<Cluster>,
    config: RuntimeConfig,
    store: Store,
    registry: OnceLock<Result<Arc<RegistryClient>, String>>,
    /// Pulls (and unpacks) one image at a time, as the kubelet serializes pulls.
    pull_lock: tokio::sync::Mutex<()>,
    ports: Mutex<ports::Allocator>,
    /// Processes of an earlier daemon still running, by id, until their worker takes them.
    adopted: Mutex<HashMap<String, ProcessRow>>,
    workers: Mutex<HashMap<String, WorkerCtl>>,
    stopping: CancellationToken,
    /// Whether the daemon runs as root (and can honour `runAsUser`).
    as_root: bool,
    /// Uids of pods refused for invalid names, so each is reported once.
    refused: Mutex<HashSet<String>>,
    /// Containers under `FERRY_HOME/runc`: run through it in container isolation, and
    /// always used to re-adopt or clean up containers recorded by an earlier daemon.
    containers: ferry_container::Runtime,
    /// Whether new containers run as containers (else as host processes).
    use_containers: bool,
    /// Containers of pods deleted while no daemon ran, deleted when [`Kubelet::run`]
    /// starts.
    orphans: Mutex<Vec<String>>,
}

impl std::fmt::Debug for Kubelet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubelet")
            .field("home", &self.config.home)
            .finish_non_exhaustive()
    }
}

fn pod_uid(pod: &Object) -> &str {
    pod.value()
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

impl Kubelet {
    /// A kubelet over `cluster`, with images, root filesystems and logs under
    /// `config.home`. Processes recorded by an earlier daemon are checked now: those
    /// still running (same pid and start time) for a pod that still exists are
    /// re-adopted when [`Kubelet::run`] starts their pod; the rest are forgotten (and
    /// killed if their pod is gone), and their containers restart.
    pub fn new(cluster: Arc<Cluster>, config: RuntimeConfig) -> Result<Arc<Self>> {
        for dir in [config.images_dir(), config.rootfs_dir(), config.logs_dir()] {
            std::fs::create_dir_all(&dir).map_err(|e| {
                Error::Invalid(format!(
                    "cannot create {}: {e}; check that FERRY_HOME is writable",
                    dir.display()
                ))
            })?;
        }
        let store = Store::open(config.images_dir()).map_err(|e| {
            Error::Invalid(format!(
                "cannot open the image store at {}: {e}",
                config.images_dir().display()
            ))
        })?;
        let kubelet = Arc::new(Self {
            ports: Mutex::new(ports::Allocator::new(config.port_range)),
            cluster,
            store,
            registry: OnceLock::new(),
            pull_lock: tokio::sync::Mutex::new(()),
            adopted: Mutex::new(HashMap::new()),
            workers: Mutex::new(HashMap::new()),
            stopping: CancellationToken::new(),
            as_root: nix::unistd::geteuid().is_root(),
            refused: Mutex::new(HashSet::new()),
            containers: ferry_container::Runtime::new(config.home.join("runc")),
            use_containers: config.isolation.containers(),
            orphans: Mutex::new(Vec::new()),
            config,
        });
        kubelet.adopt()?;
        Ok(kubelet)
    }

    /// Sorts the recorded processes into re-adopted and forgotten ones.
    fn adopt(&self) -> Result<()> {
        let Some(db) = self.cluster.db() else {
            return Ok(());
        };
        let pods: HashMap<String, Object> = self
            .cluster
            .list(Some("Pod"), None)
            .into_iter()
            .map(|p| (pod_uid(&p).to_string(), p))
            .collect();
        let mut adopted = self.adopted();
        for row in db.processes()? {
            if let Some(cid) = container_of(&row) {
                // A container's exit is kept (its `exit` file) even if it ended while no
                // daemon ran: its worker re-adopts it and reads how it ended.
                if pods.contains_key(&row.pod_uid) {
                    adopted.insert(row.id.clone(), row);
                } else {
                    tracing::info!("deleting container {cid}: its pod is gone");
                    self.orphans().push(cid.to_string());
                    db.delete_process(&row.id)?;
                }
                continue;
            }
            let alive =
                u32::try_from(row.pid).is_ok_and(|pid| process::is_alive(pid, row.start_ticks));
            let pod = pods.get(&row.pod_uid);
            match (alive, pod) {
                (true, Some(_)) => {
                    adopted.insert(row.id.clone(), row);
                }
                (true, None) => {
                    // Its pod was deleted while no daemon watched: it must not linger.
                    tracing::info!("stopping {} (pid {}): its pod is gone", row.id, row.pid);
                    if let Ok(pid) = u32::try_from(row.pid) {
                        process::signal_group(pid, nix::sys::signal::Signal::SIGKILL);
                    }
                    db.delete_process(&row.id)?;
                }
                (false, _) => db.delete_process(&row.id)?,
            }
        }
        // A daemon killed between starting a process and recording it left it
        // unrecorded: find it by its tags. Tagged processes of unknown pods may belong
        // to another FERRY_HOME and are left alone.
        for t in process::scan_tagged(CONTAINER_ID_VAR) {
            let (Some(id), Some(uid)) = (t.vars.get(CONTAINER_ID_VAR), t.vars.get(POD_UID_VAR))
            else {
                continue;
            };
            if !pods.contains_key(uid) {
                continue;
            }
            match adopted.get(id) {
                Some(r) if r.pid == i64::from(t.pid) => continue,
                Some(_) => {
                    // A second instance of a container of ours: a replica runs once.
                    tracing::warn!("stopping duplicate process {id} (pid {})", t.pid);
                    process::signal_group(t.pid, nix::sys::signal::Signal::SIGKILL);
                    continue;
                }
                None => {}
            }
            tracing::info!("re-adopting unrecorded process {id} (pid {})", t.pid);
            let row = ProcessRow {
                id: id.clone(),
                pid: i64::from(t.pid),
                start_ticks: t.start_ticks,
                pod_uid: uid.clone(),
                data: Value::Object(Default::default()),
            };
            db.put_process(&row)?;
            adopted.insert(id.clone(), row);
        }
        Ok(())
    }

    fn orphans(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.orphans.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How this kubelet runs containers, and why (decided by the daemon at start).
    pub fn isolation(&self) -> &ferry_container::Decision {
        &self.config.isolation
    }

    /// `volumes/POD-UID`: the pod's volumes, when the uid is a plain name.
    fn pod_volumes_dir(&self, uid: &str) -> Option<PathBuf> {
        let plain = !uid.is_empty()
            && uid.len() <= 64
            && uid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        plain.then(|| self.config.home.join("volumes").join(uid))
    }

    /// Unmounts and removes a pod's volumes.
    fn remove_pod_volumes(&self, uid: &str) {
        if let Some(dir) = self.pod_volumes_dir(uid)
            && dir.exists()
        {
            volume::remove(&self.config.home.join("volumes"), &dir);
        }
    }

    /// At start: deletes the containers of pods that are gone, and records those an
    /// earlier daemon started but was killed before recording (found by their
    /// annotations), so their workers re-adopt them instead of starting a second one.
    async fn reconcile_containers(&self) {
        let orphans: Vec<String> = std::mem::take(&mut *self.orphans());
        for id in orphans {
            if let Err(e) = self.containers.delete(&id).await {
                tracing::warn!("deleting container {id}: {e}");
            }
        }
        if !self.containers.state_dir().exists() {
            return;
        }
        let list = match self.containers.list().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("listing containers: {e}");
                return;
            }
        };
        let pods: HashSet<String> = self
            .cluster
            .list(Some("Pod"), None)
            .iter()
            .map(|p| pod_uid(p).to_string())
            .collect();
        for c in list {
            let (Some(uid), Some(pid_key)) = (
                c.annotations.get(containers::POD_UID_ANNOTATION),
                c.annotations.get(containers::PROCESS_ANNOTATION),
            ) else {
                continue;
            };
            if !pods.contains(uid) {
                tracing::info!("deleting container {}: its pod is gone", c.id);
                if let Err(e) = self.containers.delete(&c.id).await {
                    tracing::warn!("deleting container {}: {e}", c.id);
                }
                continue;
            }
            let known = self
                .adopted()
                .get(pid_key)
                .map(|r| container_of(r) == Some(c.id.as_str()));
            match known {
                Some(true) => continue,
                Some(false) => {
                    // The record names another instance: a replica runs once.
                    tracing::warn!("deleting duplicate container {}", c.id);
                    let _ = self.containers.delete(&c.id).await;
                    continue;
                }
                None => {}
            }
            tracing::info!("re-adopting unrecorded container {}", c.id);
            let row = ProcessRow {
                id: pid_key.clone(),
                pid: i64::from(c.pid),
                start_ticks: c.start_ticks.unwrap_or(0),
                pod_uid: uid.clone(),
                data: serde_json::json!({"container": c.id}),
            };
            self.record_process(&row);
            self.adopted().insert(pid_key.clone(), row);
        }
    }

    fn adopted(&self) -> std::sync::MutexGuard<'_, HashMap<String, ProcessRow>> {
        self.adopted.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn workers(&self) -> std::sync::MutexGuard<'_, HashMap<String, WorkerCtl>> {
        self.workers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The adopted process for a container, if there is one for this pod.
    fn take_adopted(&self, id: &str, uid: &str) -> Option<ProcessRow> {
        let mut adopted = self.adopted();
        match adopted.get(id) {
            Some(row) if row.pod_uid == uid => adopted.remove(id),
            _ => None,
        }
    }

    fn record_process(&self, row: &ProcessRow) {
        if let Some(db) = self.cluster.db()
            && let Err(e) = db.put_process(row)
        {
            tracing::warn!("recording process {}: {e}", row.id);
        }
    }

    /// Drops the record of a container's process, unless it belongs to another pod
    /// (a successor of the same name).
    fn forget_process(&self, id: &str, uid: &str) -> Result<()> {
        if let Some(db) = self.cluster.db() {
            let theirs = db
                .processes()?
                .iter()
                .any(|r| r.id == id && r.pod_uid != uid);
            if !theirs {
                db.delete_process(id)?;
            }
        }
        Ok(())
    }

    fn registry(&self) -> Result<Arc<RegistryClient>, String> {
        self.registry
            .get_or_init(|| image::registry_client(&self.config.insecure_registries))
            .clone()
    }

    /// `logs/NS/POD`, when both are valid names (and so single path segments).
    fn pod_log_dir(&self, ns: &str, pod: &str) -> Option<PathBuf> {
        let valid = NameRule::Label.check(ns, false).is_empty()
            && NameRule::Subdomain.check(pod, false).is_empty();
        valid.then(|| self.config.logs_dir().join(ns).join(pod))
    }

    /// `logs/NS/POD/CONTAINER`, when all three are valid names.
    fn container_log_dir(&self, ns: &str, pod: &str, container: &str) -> Option<PathBuf> {
        let valid = names::is_dns1123_label(container).is_empty()
            && names::is_valid_path_segment_name(container).is_empty();
        self.pod_log_dir(ns, pod)
            .filter(|_| valid)
            .map(|d| d.join(container))
    }

    /// A pod with an invalid name is not run: reported once (a warning in the log and
    /// an event on the pod), its processes from an older ferry stopped, and — once it
    /// is deleted — finalized at once, since nothing of it runs.
    fn refuse_invalid(&self, pod: &Object, uid: &str, problem: &names::InvalidObject) {
        let key = pod.key();
        let first = self
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uid.to_string());
        if first {
            tracing::warn!(
                "not running pod {:?} in {:?}: {problem}; delete it and create it with a valid name",
                key.name,
                key.namespace
            );
            self.cluster.record_event(
                &key,
                true,
                "InvalidName",
                &format!(
                    "{problem}; the pod is not run: delete it and create it with a valid name"
                ),
            );
            self.stop_recorded(uid);
        }
        if pod.is_being_deleted() {
            self.stop_recorded(uid);
            if let Err(e) = self.cluster.finalize(&key) {
                tracing::warn!("finalizing pod {key}: {e}");
            }
            self.refused
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(uid);
        }
    }

    /// Kills (and forgets) the processes an earlier daemon recorded for pod `uid`.
    fn stop_recorded(&self, uid: &str) {
        let rows: Vec<ProcessRow> = {
            let mut adopted = self.adopted();
            let ids: Vec<String> = adopted
                .iter()
                .filter(|(_, r)| r.pod_uid == uid)
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| adopted.remove(id)).collect()
        };
        for row in rows {
            tracing::info!("stopping {} (pid {}): its pod is not run", row.id, row.pid);
            // Forgotten first: whoever sees it gone then finds no record of it either.
            if let Some(db) = self.cluster.db()
                && let Err(e) = db.delete_process(&row.id)
            {
                tracing::warn!("forgetting process {}: {e}", row.id);
            }
            if let Some(cid) = container_of(&row) {
                let (rt, cid) = (self.containers.clone(), cid.to_string());
                tokio::spawn(async move {
                    if let Err(e) = rt.delete(&cid).await {
                        tracing::warn!("deleting container {cid}: {e}");
                    }
                });
            } else if let Ok(pid) = u32::try_from(row.pid) {
                process::signal_group(pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
    }

    /// Reconciles every Pod until `shutdown` is cancelled: a worker per pod, stopped
    /// when its pod is deleted (then finalized) or vanishes. Returning leaves the
    /// processes running, for the next daemon to re-adopt; [`Kubelet::stop_all`] stops
    /// them.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        self.reconcile_containers().await;
        let mut changed = self.cluster.changed();
        let mut tasks = JoinSet::new();
        loop {
            changed.borrow_and_update();
            self.sync(&mut tasks);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                r = changed.changed() => {
                    if r.is_err() {
                        break;
                    }
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = tokio::time::sleep(RESYNC) => {}
            }
        }
        // Dropping the tasks aborts the workers; their processes keep running.
    }

    fn sync(self: &Arc<Self>, tasks: &mut JoinSet<()>) {
        let pods = self.cluster.list(Some("Pod"), None);
        let mut workers = self.workers();
        let mut seen = BTreeSet::new();
        for pod in pods {
            let uid = pod_uid(&pod).to_string();
            if uid.is_empty() {
                continue;
            }
            seen.insert(uid.clone());
            if let Err(problem) = names::validate_object(&pod) {
                self.refuse_invalid(&pod, &uid, &problem);
                continue;
            }
            let deleting = pod.is_being_deleted();
            let grace = Duration::from_secs(
                pod.value()
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_u64)
                    .unwrap_or(30),
            );
            if let Some(ctl) = workers.get(&uid) {
                if deleting && !matches!(ctl.stopping(), Some(StopReason::Deleted(_))) {
                    ctl.request(StopReason::Deleted(grace));
                }
                continue;
            }
            if self.stopping.is_cancelled() {
                continue;
            }
            let (done_tx, done_rx) = watch::channel(());
            let ctl = WorkerCtl {
                stop: CancellationToken::new(),
                reason: Arc::new(Mutex::new(None)),
                done: done_rx,
            };
            if deleting {
                ctl.request(StopReason::Deleted(grace));
            }
            workers.insert(uid.clone(), ctl.clone());
            let guard = WorkerGuard {
                kubelet: self.clone(),
                uid,
                _done: done_tx,
            };
            let kubelet = self.clone();
            tasks.spawn(async move {
                let _guard = guard;
                worker::run_pod(kubelet, pod, ctl.stop, ctl.reason).await;
            });
        }
        for (uid, ctl) in workers.iter() {
            if !seen.contains(uid) && ctl.stopping().is_none() {
                ctl.request(StopReason::Gone);
            }
        }
    }

    /// Stops every container gracefully (SIGTERM, SIGKILL after its grace period) and
    /// starts no more, for `ferry down`. Pods keep their objects; their statuses show
    /// the containers terminated. Processes recorded by a run that is no longer
    /// supervised are stopped too.
    pub async fn stop_all(&self) {
        self.stopping.cancel();
        let ctls: Vec<WorkerCtl> = self.workers().values().cloned().collect();
        for c in &ctls {
            c.request(StopReason::Shutdown);
        }
        for mut c in ctls {
            while c.done.changed().await.is_ok() {}
        }
        volume::unmount_all(&self.config.home.join("volumes"));
        let Some(db) = self.cluster.db() else { return };
        let rows = match db.processes() {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!("reading recorded processes: {e}");
                return;
            }
        };
        let pods = self.cluster.list(Some("Pod"), None);
        for row in rows {
            let grace = pods
                .iter()
                .find(|p| pod_uid(p) == row.pod_uid)
                .and_then(|p| {
                    p.value()
                        .pointer("/spec/terminationGracePeriodSeconds")
                        .and_then(Value::as_u64)
                })
                .unwrap_or(30);
            if let Some(cid) = container_of(&row) {
                if let Ok(Some(mut c)) = self.containers.adopt(cid).await {
                    c.stop(Duration::from_secs(grace)).await;
                }
                if let Err(e) = self.containers.delete(cid).await {
                    tracing::warn!("deleting container {cid}: {e}");
                }
            } else if let Ok(pid) = u32::try_from(row.pid) {
                process::terminate_pid(pid, row.start_ticks, Duration::from_secs(grace)).await;
            }
            let _ = db.delete_process(&row.id);
            self.adopted().remove(&row.id);
        }
    }

    /// A container's log file: `current.log`, or with `previous` the log of the
    /// instance before the last restart. `None` if there is none.
    pub fn log_path(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Option<PathBuf> {
        let file = if previous {
            "previous.log"
        } else {
            "current.log"
        };
        let p = self.container_log_dir(ns, pod, container)?.join(file);
        // Read only what lies inside the logs directory (a link could point anywhere).
        let inside = std::fs::canonicalize(&p)
            .ok()?
            .starts_with(std::fs::canonicalize(self.config.logs_dir()).ok()?);
        (inside && p.is_file()).then_some(p)
    }

    /// The host port of each `containerPort` of a pod, as recorded on it
    /// (`ferry.dev/host-ports`). A pod that declares no port has its `PORT` under `0`.
    pub fn host_ports(pod: &Object) -> BTreeMap<u16, u16> {
        ports::of(pod)
    }

    /// The host port serving `container_port` of `pod`: its own mapping, else (for a
    /// pod declaring no ports) the pod's `PORT`. `None` before ports are assigned.
    pub fn host_port_for(pod: &Object, container_port: u16) -> Option<u16> {
        let map = ports::of(pod);
        if map.is_empty() {
            return None;
        }
        Some(ports::host_port_for(&map, container_port))
    }

    /// The pod's host ports, assigning and recording any it lacks.
    fn ensure_ports(&self, pod: &Object) -> Result<BTreeMap<u16, u16>, String> {
        let spec = pod.value().get("spec").cloned().unwrap_or(Value::Null);
        let mut want = ports::declared(&spec);
        if want.is_empty() {
            want.push(0);
        }
        let key = pod.key();
        let current = self.cluster.get(&key).unwrap_or_else(|| pod.clone());
        let mut have = ports::of(&current);
        if want.iter().all(|p| have.contains_key(p)) {
            return Ok(have);
        }
        let mut alloc = self.ports.lock().unwrap_or_else(|p| p.into_inner());
        let mut taken = self.taken_ports();
        for p in want {
            if have.contains_key(&p) {
                continue;
            }
            let Some(h) = alloc.allocate(&taken) else {
                let (lo, hi) = self.config.port_range;
                return Err(format!(
                    "no free host port in {lo}-{hi} for containerPort {p}; free some ports or widen the runtime's port range"
                ));
            };
            taken.insert(h);
            have.insert(p, h);
        }
        let value = ports::render(&have);
        let patched = self
            .cluster
            .patch_metadata(&key, |meta| {
                let ann = meta
                    .entry("annotations")
                    .or_insert_with(|| Value::Object(Default::default()));
                if !ann.is_object() {
                    *ann = Value::Object(Default::default());
                }
                if let Some(m) = ann.as_object_mut() {
                    m.insert(HOST_PORTS_ANNOTATION.into(), Value::String(value));
                }
            })
            .map_err(|e| format!("recording host ports: {e}"))?;
        if patched.is_none() {
            return Err("the pod no longer exists".into());
        }
        Ok(have)
    }

    /// Host ports already promised to pods or Services.
    fn taken_ports(&self) -> BTreeSet<u16> {
        let mut taken = BTreeSet::new();
        for pod in self.cluster.list(Some("Pod"), None) {
            taken.extend(ports::of(&pod).values());
        }
        for svc in self.cluster.list(Some("Service"), None) {
            taken.extend(ports::of(&svc).values());
            for p in svc
                .value()
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                for f in ["port", "nodePort"] {
                    if let Some(n) = p
                        .get(f)
                        .and_then(Value::as_u64)
                        .and_then(|n| u16::try_from(n).ok())
                    {
                        taken.insert(n);
                    }
                }
            }
        }
        taken
    }
}

/// The runc id of a recorded container (`None` for a host process).
fn container_of(row: &ProcessRow) -> Option<&str> {
    row.data.get("container").and_then(Value::as_str)
}

/// Why a directory was not created or removed: it is not inside the root that owns it.
fn outside(what: &str, path: &Path, root: &Path) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!(
            "refusing to {what} {}: it is not inside {}",
            path.display(),
            root.display()
        ),
    )
}

/// Removes the directory `path` and everything under it, only if its canonical form
/// lies strictly inside `root`'s: a name with `..` or a link pointing out of `root`
/// can never make the kubelet delete anything else. `Ok(false)` when it does not
/// exist.
pub fn remove_dir_within(root: &Path, path: &Path) -> std::io::Result<bool> {
    let root = std::fs::canonicalize(root)?;
    let target = match std::fs::canonicalize(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if target == root || !target.starts_with(&root) {
        return Err(outside("remove", path, &root));
    }
    std::fs::remove_dir_all(&target)?;
    Ok(true)
}

/// Creates the directory `path` (and its parents), only if it is `root` joined with
/// plain names and every part that already exists resolves inside `root`.
pub fn create_dir_within(root: &Path, path: &Path) -> std::io::Result<()> {
    let plain = path
        .strip_prefix(root)
        .is_ok_and(|rel| rel.components().all(|c| matches!(c, Component::Normal(_))));
    if !plain {
        return Err(outside("create", path, root));
    }
    std::fs::create_dir_all(root)?;
    let root_c = std::fs::canonicalize(root)?;
    // The deepest part that exists decides where the rest would go.
    let mut existing = path;
    while !existing.exists() {
        match existing.parent() {
            Some(p) => existing = p,
            None => break,
        }
    }
    if !std::fs::canonicalize(existing)?.starts_with(&root_c) {
        return Err(outside("create", path, root));
    }
    std::fs::create_dir_all(path)?;
    if !std::fs::canonicalize(path)?.starts_with(&root_c) {
        return Err(outside("create", path, root));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removal_and_creation_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("logs");
        let victim = dir.path().join("victim");
        std::fs::create_dir_all(victim.join("c")).unwrap();
        std::fs::create_dir_all(root.join("ns")).unwrap();
        let sneaky = root.join("ns/../../victim");
        assert!(remove_dir_within(&root, &sneaky).is_err());
        assert!(create_dir_within(&root, &root.join("ns/../../elsewhere")).is_err());
        assert!(
            remove_dir_within(&root, &root).is_err(),
            "never the root itself"
        );
        std::os::unix::fs::symlink(&victim, root.join("link")).unwrap();
        assert!(remove_dir_within(&root, &root.join("link")).is_err());
        assert!(create_dir_within(&root, &root.join("link/c/d")).is_err());
        assert!(victim.join("c").is_dir(), "the outside folder is untouched");
        create_dir_within(&root, &root.join("ns/pod/c")).unwrap();
        assert!(remove_dir_within(&root, &root.join("ns/pod")).unwrap());
        assert!(!root.join("ns/pod").exists());
        assert!(!remove_dir_within(&root, &root.join("ns/pod")).unwrap());
    }
}
