//! One pod's worker: a single tokio task that runs the pod's init containers in order,
//! then its containers side by side (each with its probes, restarts and back-off), and
//! writes the pod's status whenever what it knows changes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Poll;
use std::time::Duration;

use ferry_core::{Object, ObjectKey};
use ferry_store::ProcessRow;
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::command;
use super::containers;
use super::env;
use super::image::{self, Failure, PullPolicy};
use super::ports;
use super::probe::{self, ExecContext, Kind, Probe};
use super::process::{Exit, Launch, Proc};
use super::status::{self, ContainerRt, PodRt, State, Terminated};
use super::volume;
use super::{Kubelet, StopReason};
use crate::cluster::now_rfc3339;

/// A container that ran this long without failing starts its back-off afresh.
const BACKOFF_RESET: Duration = Duration::from_secs(600);
/// How often a container waiting for configuration (a Secret, a free port) re-checks
/// even when nothing in the cluster changed.
const RECHECK: Duration = Duration::from_secs(10);
/// Kubernetes' default `terminationGracePeriodSeconds`.
const DEFAULT_GRACE: u64 = 30;
/// `PATH` for containers whose image sets none and a daemon without one.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How a container is to be started: a host process, or a container through runc.
enum Plan {
    Process(Launch),
    Container(Box<ferry_container::ContainerSpec>),
}

/// Which container of the pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Which {
    init: bool,
    idx: usize,
}

/// How a container's part of the pod ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Succeeded,
    Failed,
    Stopped,
}

/// Why a running container stops being monitored.
enum Ending {
    Exited(Exit),
    Kill { kind: Kind, grace: Option<Duration> },
    Stop,
}

/// Restart back-off: the first restart is immediate, then `base` doubling to `max`
/// (the kubelet's crash-loop back-off).
struct Backoff {
    base: Duration,
    max: Duration,
    current: Option<Duration>,
}

impl Backoff {
    fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            current: None,
        }
    }

    /// The wait before the next restart, given how long the last run lasted.
    fn next(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= BACKOFF_RESET {
            self.current = None;
        }
        match self.current {
            None => {
                self.current = Some(self.base.min(self.max));
                Duration::ZERO
            }
            Some(d) => {
                self.current = Some((d * 2).min(self.max));
                d
            }
        }
    }
}

/// Whether a container that exited with `code` restarts under `policy`.
fn should_restart(policy: &str, code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => code != 0,
        _ => true,
    }
}

/// Polls a set of futures to completion inside the current task.
async fn join_all<F: std::future::Future<Output = ()>>(futs: Vec<F>) {
    let mut futs: Vec<Option<Pin<Box<F>>>> = futs.into_iter().map(|f| Some(Box::pin(f))).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for slot in futs.iter_mut() {
            if let Some(f) = slot {
                if f.as_mut().poll(cx).is_ready() {
                    *slot = None;
                } else {
                    pending = true;
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await
}

/// Everything a pod worker shares between its containers.
pub(super) struct PodCtx {
    kl: Arc<Kubelet>,
    pod: Object,
    key: ObjectKey,
    uid: String,
    spec: Value,
    /// `NAME_NAMESPACE(UID)`, as Kubernetes names pods in messages.
    pod_ref: String,
    host_ports: OnceLock<BTreeMap<u16, u16>>,
    rt: Mutex<PodRt>,
    dirty: Notify,
    stop: CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
    /// The pod had already finished when this worker started: leave its status alone.
    frozen: bool,
}

impl PodCtx {
    fn new(
        kl: Arc<Kubelet>,
        pod: Object,
        stop: CancellationToken,
        reason: Arc<Mutex<Option<StopReason>>>,
    ) -> Self {
        let key = pod.key();
        let v = pod.value();
        let uid = v
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let spec = v.get("spec").cloned().unwrap_or(Value::Null);
        let prev = v.get("status");
        let find = |list: &str, name: &str| {
            prev.and_then(|s| s.get(list))
                .and_then(Value::as_array)
                .and_then(|a| {
                    a.iter()
                        .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
                })
        };
        let containers = |list: &str| -> Vec<Value> {
            spec.get(list)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let init_specs = containers("initContainers");
        let main_specs = containers("containers");
        let name_of = |c: &Value| {
            c.get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let image_of = |c: &Value| {
            c.get("image")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let init: Vec<ContainerRt> = init_specs
            .iter()
            .map(|c| {
                ContainerRt::new(
                    &name_of(c),
                    &image_of(c),
                    "PodInitializing",
                    find("initContainerStatuses", &name_of(c)),
                )
            })
            .collect();
        let main_waiting = if init.is_empty() {
            "ContainerCreating"
        } else {
            "PodInitializing"
        };
        let main: Vec<ContainerRt> = main_specs
            .iter()
            .map(|c| {
                ContainerRt::new(
                    &name_of(c),
                    &image_of(c),
                    main_waiting,
                    find("containerStatuses", &name_of(c)),
                )
            })
            .collect();
        let start_time = prev
            .and_then(|s| s.get("startTime"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(now_rfc3339);
        let frozen = matches!(
            prev.and_then(|s| s.get("phase")).and_then(Value::as_str),
            Some("Succeeded" | "Failed")
        );
        let pod_ref = format!("{}_{}({uid})", key.name, key.namespace);
        Self {
            kl,
            key,
            uid,
            spec,
            pod_ref,
            host_ports: OnceLock::new(),
            rt: Mutex::new(PodRt {
                init,
                main,
                start_time,
            }),
            dirty: Notify::new(),
            stop,
            reason,
            frozen,
            pod,
        }
    }

    fn container(&self, w: Which) -> &Value {
        let list = if w.init {
            "initContainers"
        } else {
            "containers"
        };
        self.spec
            .get(list)
            .and_then(Value::as_array)
            .and_then(|a| a.get(w.idx))
            .unwrap_or(&Value::Null)
    }

    fn rt(&self) -> std::sync::MutexGuard<'_, PodRt> {
        self.rt.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn snapshot(&self, w: Which) -> ContainerRt {
        let rt = self.rt();
        let list = if w.init { &rt.init } else { &rt.main };
        list[w.idx].clone()
    }

    /// Changes what is known about a container, and has the status written.
    fn update(&self, w: Which, f: impl FnOnce(&mut ContainerRt)) {
        {
            let mut rt = self.rt();
            let list = if w.init { &mut rt.init } else { &mut rt.main };
            f(&mut list[w.idx]);
        }
        self.dirty.notify_one();
    }

    fn event(&self, warning: bool, reason: &str, message: &str) {
        self.kl
            .cluster
            .record_event(&self.key, warning, reason, message);
    }

    fn ports(&self) -> BTreeMap<u16, u16> {
        self.host_ports.get().cloned().unwrap_or_default()
    }

    fn policy(&self) -> &str {
        status::restart_policy(&self.spec)
    }

    fn stop_reason(&self) -> Option<StopReason> {
        *self.reason.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The grace period for stopping now: a deletion's, else the pod's.
    fn grace(&self) -> Duration {
        match self.stop_reason() {
            Some(StopReason::Deleted(g)) => g,
            _ => self.pod_grace(),
        }
    }

    fn pod_grace(&self) -> Duration {
        Duration::from_secs(
            self.spec
                .get("terminationGracePeriodSeconds")
                .and_then(Value::as_u64)
                .unwrap_or(DEFAULT_GRACE),
        )
    }

    fn write_status(&self) {
        if self.frozen {
            return;
        }
        let current = self.kl.cluster.get(&self.key);
        let Some(current) = current else { return };
        let uid_now = current
            .value()
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if uid_now != self.uid {
            return;
        }
        let status = {
            let rt = self.rt();
            status::pod_status(
                &rt,
                &self.spec,
                current.value().get("status"),
                &now_rfc3339(),
            )
        };
        if let Err(e) = self.kl.cluster.update_status(&self.key, status) {
            tracing::warn!("writing the status of pod {}: {e}", self.pod_ref);
        }
    }

    fn process_id(&self, w: Which) -> String {
        let name = self
            .container(w)
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        format!("{}/{}/{name}", self.key.namespace, self.key.name)
    }

    /// The container's log directory; `Err` is a `CreateContainerConfigError` message
    /// (the kubelet runs only pods with valid names, so this is a second line).
    fn log_dir(&self, w: Which) -> Result<PathBuf, String> {
        let name = self
            .container(w)
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        self.kl
            .container_log_dir(&self.key.namespace, &self.key.name, name)
            .ok_or_else(|| format!("container name {name:?} is not a valid RFC 1123 label"))
    }

    /// The container's environment, argv, working directory and user; `Err` is a
    /// `CreateContainerConfigError` message.
    fn build_launch(&self, w: Which, ready: &image::Ready) -> Result<(Plan, ExecContext), String> {
        let c = self.container(w);
        let hp = self.ports();
        let port = ports::port_env(&hp, c);
        let pod = self
            .kl
            .cluster
            .get(&self.key)
            .unwrap_or_else(|| self.pod.clone());
        let kenv = env::container_env(&self.kl.cluster, &pod, c, port)?;
        if self.kl.use_containers {
            return self.container_plan(w, ready, &pod, kenv);
        }
        let argv = command::argv(c, &ready.config, &kenv);
        let mut envs: BTreeMap<String, String> = ready.config.env_pairs().into_iter().collect();
        envs.extend(kenv);
        envs.entry("PATH".into())
            .or_insert_with(|| std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_string()));
        if let Ok(home) = std::env::var("HOME") {
            envs.entry("HOME".into()).or_insert(home);
        }
        // Tags that let a restarted daemon find the process even if it died before
        // recording it.
        envs.insert(super::CONTAINER_ID_VAR.into(), self.process_id(w));
        envs.insert(super::POD_UID_VAR.into(), self.uid.clone());
        let cwd = command::working_dir(c, &ready.config, &ready.rootfs);
        let run_as = command::run_as(&self.spec, c, &ready.config, &ready.rootfs, &self.pod_ref)?;
        let exec = ExecContext {
            rootfs: ready.rootfs.clone(),
            cwd: cwd.clone(),
            env: envs.clone(),
            run_as,
            as_root: self.kl.as_root,
            container: None,
        };
        Ok((
            Plan::Process(Launch {
                program: PathBuf::new(),
                argv,
                cwd,
                env: envs,
                run_as,
            }),
            exec,
        ))
    }

    /// The container's spec for runc: argv and env as for a process (without the
    /// host's `PATH` and `HOME`: the image's, or the runtime's defaults), the working
    /// directory and user inside the image, the pod's volumes, limits.
    fn container_plan(
        &self,
        w: Which,
        ready: &image::Ready,
        pod: &Object,
        kenv: BTreeMap<String, String>,
    ) -> Result<(Plan, ExecContext), String> {
        let c = self.container(w);
        let argv = command::argv(c, &ready.config, &kenv);
        if argv.is_empty() {
            return Err("no command specified".into());
        }
        let mut envs: BTreeMap<String, String> = ready.config.env_pairs().into_iter().collect();
        envs.extend(kenv);
        let run_as = command::run_as(&self.spec, c, &ready.config, &ready.rootfs, &self.pod_ref)?;
        let wd = c
            .get("workingDir")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or(ready.config.working_dir.as_str());
        let cwd = if wd.starts_with('/') {
            wd.to_string()
        } else {
            format!("/{wd}")
        };
        let root = self
            .kl
            .pod_volumes_dir(&self.uid)
            .ok_or_else(|| format!("pod uid {:?} cannot name a volumes directory", self.uid))?;
        let volumes = volume::prepare(&self.kl.cluster, pod, &root)?;
        let mounts = volume::mounts(c, &volumes)?;
        let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
        let id = containers::container_id(&self.key.namespace, &self.key.name, name, &self.uid);
        let mut spec = containers::spec(containers::Parts {
            id: id.clone(),
            pod_spec: &self.spec,
            container: c,
            pod_name: &self.key.name,
            pod_uid: &self.uid,
            process_id: self.process_id(w),
            image_user: ready.config.user.clone(),
            run_as,
        });
        spec.image_rootfs = ready.rootfs.clone();
        spec.args = argv;
        spec.env = envs.clone();
        spec.cwd = cwd.clone();
        spec.mounts = mounts;
        let exec = ExecContext {
            rootfs: ready.rootfs.clone(),
            cwd: PathBuf::from(cwd),
            env: envs,
            run_as,
            as_root: self.kl.as_root,
            container: Some((self.kl.containers.clone(), id)),
        };
        Ok((Plan::Container(Box::new(spec)), exec))
    }
}

/// Runs one pod until it is deleted, vanishes, or the kubelet shuts down.
pub(super) async fn run_pod(
    kl: Arc<Kubelet>,
    pod: Object,
    stop: CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
) {
    let ctx = PodCtx::new(kl, pod, stop, reason);
    if ctx.pod.value().get("status").is_none() {
        ctx.event(
            false,
            "Scheduled",
            &format!(
                "Successfully assigned {}/{} to {}",
                ctx.key.namespace,
                ctx.key.name,
                env::NODE_NAME
            ),
        );
    }
    let life = lifecycle(&ctx);
    tokio::pin!(life);
    let mut life_done = ctx.frozen;
    ctx.write_status();
    loop {
        tokio::select! {
            _ = &mut life, if !life_done => life_done = true,
            _ = ctx.dirty.notified() => {}
            _ = ctx.stop.cancelled(), if life_done => break,
        }
        ctx.write_status();
        if life_done && ctx.stop.is_cancelled() {
            break;
        }
    }
    match ctx.stop_reason() {
        Some(StopReason::Deleted(_)) => {
            let still_ours = ctx.kl.cluster.get(&ctx.key).is_some_and(|p| {
                p.value().pointer("/metadata/uid").and_then(Value::as_str) == Some(ctx.uid.as_str())
            });
            if still_ours {
                // Logs go first: once finalized, a new pod may take the same name. Only
                // ever inside the logs directory, whatever the names say.
                if let Some(dir) = ctx.kl.pod_log_dir(&ctx.key.namespace, &ctx.key.name)
                    && let Err(e) = super::remove_dir_within(&ctx.kl.config.logs_dir(), &dir)
                {
                    tracing::warn!("removing the logs of pod {}: {e}", ctx.pod_ref);
                }
                // Containers recorded but never taken by a container of this worker (a
                // finished pod's, left by a daemon killed before it deleted them).
                ctx.kl.stop_recorded(&ctx.uid);
                ctx.kl.remove_pod_volumes(&ctx.uid);
                if let Err(e) = ctx.kl.cluster.finalize(&ctx.key) {
                    tracing::warn!("finalizing pod {}: {e}", ctx.pod_ref);
                }
            }
        }
        Some(StopReason::Shutdown) => ctx.write_status(),
        Some(StopReason::Gone) => ctx.kl.remove_pod_volumes(&ctx.uid),
        None => {}
    }
}

async fn lifecycle(ctx: &PodCtx) {
    if ctx.frozen {
        return;
    }
    // Host ports first: every container's PORT and probes need them.
    loop {
        let mut changed = ctx.kl.cluster.changed();
        changed.borrow_and_update();
        match ctx.kl.ensure_ports(&ctx.pod) {
            Ok(p) => {
                let _ = ctx.host_ports.set(p);
                break;
            }
            Err(msg) => {
                let n_main = ctx.rt().main.len();
                for idx in 0..n_main {
                    ctx.update(Which { init: false, idx }, |c| {
                        c.state = State::waiting("CreateContainerError", Some(msg.clone()));
                    });
                }
                if !wait_for_change(ctx, &mut changed).await {
                    return;
                }
            }
        }
    }
    let (n_init, n_main, initialized) = {
        let rt = ctx.rt();
        // Once any container has run, the init containers are done (they ran before).
        let ran = rt
            .main
            .iter()
            .any(|c| c.last.is_some() || !matches!(c.state, State::Waiting { .. }));
        (rt.init.len(), rt.main.len(), ran)
    };
    if !initialized {
        for idx in 0..n_init {
            let w = Which { init: true, idx };
            let done = matches!(&ctx.snapshot(w).state, State::Terminated(t) if t.exit_code == 0);
            if done {
                continue;
            }
            match run_container(ctx, w).await {
                Outcome::Succeeded => {}
                Outcome::Failed | Outcome::Stopped => return,
            }
        }
        for idx in 0..n_main {
            ctx.update(Which { init: false, idx }, |c| {
                if matches!(&c.state, State::Waiting { reason, .. } if reason == "PodInitializing")
                {
                    c.state = State::waiting("ContainerCreating", None);
                }
            });
        }
    }
    let futs: Vec<_> = (0..n_main)
        .map(|idx| async move {
            run_container(ctx, Which { init: false, idx }).await;
        })
        .collect();
    join_all(futs).await;
}

/// Waits for a cluster change, the re-check timer, or the stop; `false` on stop.
async fn wait_for_change(ctx: &PodCtx, changed: &mut watch::Receiver<u64>) -> bool {
    tokio::select! {
        biased;
        _ = ctx.stop.cancelled() => false,
        r = changed.changed() => {
            if r.is_err() {
                tokio::select! {
                    _ = ctx.stop.cancelled() => return false,
                    _ = tokio::time::sleep(RECHECK) => {}
                }
            }
            true
        }
        _ = tokio::time::sleep(RECHECK) => true,
    }
}

/// Sleeps `d` unless stopped first; `false` on stop.
async fn sleep_or_stop(ctx: &PodCtx, d: Duration) -> bool {
    tokio::select! {
        biased;
        _ = ctx.stop.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// Gets the container's image ready, retrying with back-off; `None` when stopped.
async fn acquire_image(ctx: &PodCtx, w: Which, once: bool) -> Option<image::Ready> {
    let c = ctx.container(w);
    let image_ref = c
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    // A re-adopted process only needs the image's files: never pull for it.
    let policy = if once {
        PullPolicy::Never
    } else {
        PullPolicy::of(c, &image_ref)
    };
    let kl = &ctx.kl;
    let mut backoff = Backoff::new(kl.config.backoff_base, kl.config.backoff_max);
    backoff.next(Duration::ZERO);
    loop {
        if ctx.stop.is_cancelled() {
            return None;
        }
        let attempt = image::acquire(
            &kl.store,
            || kl.registry(),
            &kl.pull_lock,
            kl.config.rootfs_dir(),
            &image_ref,
            policy,
            || ctx.event(false, "Pulling", &format!("Pulling image {image_ref:?}")),
        );
        let result = tokio::select! {
            biased;
            _ = ctx.stop.cancelled() => return None,
            r = attempt => r,
        };
        match result {
            Ok(ready) => {
                match ready.pulled {
                    _ if once => {}
                    Some((took, size)) => ctx.event(
                        false,
                        "Pulled",
                        &format!(
                            "Successfully pulled image {image_ref:?} in {} ({} including waiting). Image size: {size} bytes.",
                            status::go_duration(took),
                            status::go_duration(took)
                        ),
                    ),
                    None => ctx.event(
                        false,
                        "Pulled",
                        &format!("Container image {image_ref:?} already present on machine"),
                    ),
                }
                let id = ready.image_id.clone();
                ctx.update(w, |c| c.image_id = id);
                return Some(ready);
            }
            Err(_) if once => return None,
            Err(Failure::InvalidName(msg)) => {
                ctx.update(w, |c| {
                    c.state = State::waiting("InvalidImageName", Some(msg.clone()))
                });
                ctx.event(true, "InspectFailed", &msg);
                ctx.event(true, "Failed", "Error: InvalidImageName");
                ctx.stop.cancelled().await;
                return None;
            }
            Err(Failure::NeverPull(msg)) => {
                ctx.update(w, |c| {
                    c.state = State::waiting("ErrImageNeverPull", Some(msg.clone()))
                });
                ctx.event(true, "ErrImageNeverPull", &msg);
                ctx.event(true, "Failed", "Error: ErrImageNeverPull");
                // The image may be built into the store later: look again now and then.
                if !sleep_or_stop(ctx, kl.config.backoff_max.min(RECHECK)).await {
                    return None;
                }
            }
            Err(Failure::Pull(msg)) => {
                ctx.update(w, |c| {
                    c.state = State::waiting("ErrImagePull", Some(msg.clone()))
                });
                ctx.event(
                    true,
                    "Failed",
                    &format!("Failed to pull image {image_ref:?}: {msg}"),
                );
                ctx.event(true, "Failed", "Error: ErrImagePull");
                let delay = backoff.next(Duration::ZERO);
                // ErrImagePull shows until the next sync; then ImagePullBackOff until the retry.
                let shown = (delay / 2).min(Duration::from_secs(2));
                if !sleep_or_stop(ctx, shown).await {
                    return None;
                }
                let back = format!("Back-off pulling image {image_ref:?}");
                ctx.update(w, |c| {
                    c.state = State::waiting("ImagePullBackOff", Some(back.clone()))
                });
                ctx.event(false, "BackOff", &back);
                ctx.event(true, "Failed", "Error: ImagePullBackOff");
                if !sleep_or_stop(ctx, delay.saturating_sub(shown)).await {
                    return None;
                }
            }
        }
    }
}

/// The image of a re-adopted process whose image could not be looked up: its rootfs
/// and image ID from the process record, the image config unknown.
fn adopted_image(ctx: &PodCtx, w: Which, row: &ProcessRow) -> image::Ready {
    let rootfs = row
        .data
        .get("rootfs")
        .and_then(Value::as_str)
        .map(PathBuf::from)
        .unwrap_or_else(|| ctx.kl.config.rootfs_dir());
    let image_id = row
        .data
        .get("imageID")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| ctx.snapshot(w).image_id);
    let id = image_id.clone();
    ctx.update(w, |c| c.image_id = id);
    image::Ready {
        image_id,
        config: Default::default(),
        rootfs,
        pulled: None,
    }
}

/// Waits until the container's configuration can be built; `None` when stopped.
async fn wait_config(ctx: &PodCtx, w: Which, ready: &image::Ready) -> Option<(Plan, ExecContext)> {
    let mut last: Option<String> = None;
    loop {
        let mut changed = ctx.kl.cluster.changed();
        changed.borrow_and_update();
        match ctx.build_launch(w, ready) {
            Ok(l) => return Some(l),
            Err(msg) => {
                if last.as_ref() != Some(&msg) {
                    ctx.update(w, |c| {
                        c.state = State::waiting("CreateContainerConfigError", Some(msg.clone()));
                    });
                    ctx.event(true, "Failed", &format!("Error: {msg}"));
                    last = Some(msg);
                }
                if !wait_for_change(ctx, &mut changed).await {
                    return None;
                }
            }
        }
    }
}

/// Runs one container through its whole life: image, configuration, start, probes,
/// exits and restarts.
async fn run_container(ctx: &PodCtx, w: Which) -> Outcome {
    let spec = ctx.container(w).clone();
    let name = spec
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let id = ctx.process_id(w);
    let policy = match (w.init, ctx.policy()) {
        (true, "Never") => "Never",
        (true, _) => "OnFailure",
        (false, p) => p,
    }
    .to_string();
    let kl = &ctx.kl;
    let mut adopted = kl.take_adopted(&id, &ctx.uid);
    // A recorded container is looked up in runc: running, or ended with its exit kept.
    let mut adopted_container = None;
    if let Some(cid) = adopted
        .as_ref()
        .and_then(super::container_of)
        .map(str::to_string)
    {
        match kl.containers.adopt(&cid).await {
            Ok(Some(c)) => adopted_container = Some(c),
            Ok(None) => {
                tracing::info!("container {cid} of {id} is gone from runc: starting it again");
                adopted = None;
            }
            Err(e) => {
                tracing::warn!("looking up container {cid} of {id}: {e}; starting it again");
                adopted = None;
            }
        }
    }

    // Resume from what the previous status says.
    let prev = ctx.snapshot(w);
    let mut had_instance = prev.last.is_some() || !matches!(prev.state, State::Waiting { .. });
    if adopted.is_none() {
        let lost = match &prev.state {
            State::Terminated(t) => Some(t.clone()),
            State::Running { started_at } => Some(Terminated {
                exit_code: 137,
                signal: None,
                reason: "ContainerStatusUnknown".into(),
                message: Some(
                    "The container could not be located when the daemon restarted".into(),
                ),
                started_at: Some(started_at.clone()),
                finished_at: now_rfc3339(),
            }),
            State::Waiting { .. } => None,
        };
        if let Some(t) = lost {
            let _ = kl.forget_process(&id, &ctx.uid);
            if !should_restart(&policy, t.exit_code) {
                let code = t.exit_code;
                ctx.update(w, |c| {
                    c.state = State::Terminated(t);
                    c.ready = false;
                    c.started = false;
                });
                return if code == 0 {
                    Outcome::Succeeded
                } else {
                    Outcome::Failed
                };
            }
            ctx.update(w, |c| {
                c.last = Some(t);
                c.state = State::waiting("ContainerCreating", None);
                c.ready = false;
                c.started = false;
            });
        } else if matches!(&prev.state, State::Waiting { reason, .. } if reason != "PodInitializing" && reason != "ContainerCreating")
        {
            ctx.update(w, |c| c.state = State::waiting("ContainerCreating", None));
        }
    }

    let ready = match (acquire_image(ctx, w, adopted.is_some()).await, &adopted) {
        (Some(r), _) => r,
        // A running process must stay supervised even if its image is gone from the
        // store: run on with what its record says.
        (None, Some(row)) => adopted_image(ctx, w, row),
        (None, None) => return Outcome::Stopped,
    };
    let mut backoff = Backoff::new(kl.config.backoff_base, kl.config.backoff_max);

    loop {
        if ctx.stop.is_cancelled() && adopted.is_none() {
            return Outcome::Stopped;
        }
        let log_dir = match ctx.log_dir(w) {
            Ok(d) => d,
            Err(msg) => {
                ctx.update(w, |c| {
                    c.state = State::waiting("CreateContainerConfigError", Some(msg.clone()));
                });
                ctx.event(true, "Failed", &format!("Error: {msg}"));
                return Outcome::Stopped;
            }
        };
        let current_log = log_dir.join("current.log");
        let previous_log = log_dir.join("previous.log");
        let started = Instant::now();
        let mut resumed = false;
        let (mut proc, exec, started_at) = if let Some(row) = adopted.take() {
            resumed = true;
            let exec = ctx
                .build_launch(w, &ready)
                .map(|(_, e)| e)
                .unwrap_or_else(|_| ExecContext {
                    rootfs: ready.rootfs.clone(),
                    cwd: command::working_dir(&spec, &ready.config, &ready.rootfs),
                    env: ready.config.env_pairs().into_iter().collect(),
                    run_as: Default::default(),
                    as_root: kl.as_root,
                    container: None,
                });
            let started_at = row
                .data
                .get("startedAt")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| match &prev.state {
                    State::Running { started_at } => Some(started_at.clone()),
                    _ => None,
                })
                .unwrap_or_else(now_rfc3339);
            let count = row
                .data
                .get("restartCount")
                .and_then(Value::as_u64)
                .unwrap_or(0) as u32;
            let sa = started_at.clone();
            ctx.update(w, |c| {
                c.state = State::Running { started_at: sa };
                c.restart_count = c.restart_count.max(count);
            });
            tracing::info!("re-adopted {id} (pid {})", row.pid);
            let (proc, exec) = match adopted_container.take() {
                Some(c) => {
                    let mut exec = exec;
                    exec.container = Some((kl.containers.clone(), c.id().to_string()));
                    (
                        Proc::Container {
                            container: Box::new(c),
                            runtime: kl.containers.clone(),
                        },
                        exec,
                    )
                }
                None => (
                    Proc::Adopted {
                        pid: row.pid as u32,
                        start_ticks: row.start_ticks,
                    },
                    exec,
                ),
            };
            (proc, exec, started_at)
        } else {
            let Some((plan, exec)) = wait_config(ctx, w, &ready).await else {
                return Outcome::Stopped;
            };
            let rotate_logs = || {
                super::create_dir_within(&kl.config.logs_dir(), &log_dir)
                    .map_err(|e| format!("creating the log directory: {e}"))?;
                if had_instance {
                    if current_log.exists() {
                        let _ = std::fs::rename(&current_log, &previous_log);
                    }
                } else {
                    let _ = std::fs::remove_file(&previous_log);
                    let _ = std::fs::remove_file(&current_log);
                }
                Ok::<(), String>(())
            };
            let spawned = match plan {
                Plan::Process(mut launch) => command::resolve_program(
                    launch.argv.first().map(String::as_str).unwrap_or_default(),
                    &ready.rootfs,
                    &launch.cwd,
                    launch.env.get("PATH").map(String::as_str),
                )
                .and_then(|program| {
                    launch.program = program;
                    std::fs::create_dir_all(&launch.cwd)
                        .map_err(|e| format!("chdir {}: {e}", launch.cwd.display()))?;
                    rotate_logs()?;
                    Proc::spawn(&launch, &current_log, kl.as_root).map_err(|e| {
                        format!(
                            "exec: {:?}: {}",
                            launch.argv.first().cloned().unwrap_or_default(),
                            e
                        )
                    })
                }),
                Plan::Container(spec) => match rotate_logs() {
                    Err(e) => Err(e),
                    Ok(()) => {
                        // What is left of an earlier instance (runc state, rootfs) goes
                        // first: only one instance of a container ever exists.
                        let _ = kl.containers.delete(&spec.id).await;
                        match kl.containers.run(&spec, &current_log).await {
                            Ok(c) => {
                                if let Some(note) = c.rootfs_note() {
                                    tracing::info!("container {}: {note}", c.id());
                                }
                                Ok(Proc::Container {
                                    container: Box::new(c),
                                    runtime: kl.containers.clone(),
                                })
                            }
                            Err(e) => Err(e.to_string()),
                        }
                    }
                },
            };
            let restarting = had_instance;
            had_instance = true;
            match spawned {
                Ok(p) => {
                    let started_at = now_rfc3339();
                    let sa = started_at.clone();
                    ctx.update(w, |c| {
                        if restarting {
                            c.restart_count += 1;
                        }
                        c.state = State::Running { started_at: sa };
                        c.ready = false;
                        c.started = false;
                    });
                    ctx.event(false, "Created", &format!("Created container: {name}"));
                    ctx.event(false, "Started", &format!("Started container {name}"));
                    let count = ctx.snapshot(w).restart_count;
                    let row = ProcessRow {
                        id: id.clone(),
                        pid: i64::from(p.pid()),
                        start_ticks: p.start_ticks(),
                        pod_uid: ctx.uid.clone(),
                        data: json!({
                            "hostPorts": ports::render(&ctx.ports()),
                            "restartCount": count,
                            "startedAt": started_at,
                            "imageID": ready.image_id,
                            "rootfs": ready.rootfs,
                            "logs": {"current": current_log, "previous": previous_log},
                            "container": p.container_id(),
                        }),
                    };
                    kl.record_process(&row);
                    (p, exec, started_at)
                }
                Err(msg) => {
                    let t = Terminated {
                        exit_code: 128,
                        signal: None,
                        reason: "StartError".into(),
                        message: Some(msg.clone()),
                        started_at: None,
                        finished_at: now_rfc3339(),
                    };
                    ctx.update(w, |c| {
                        if restarting {
                            c.restart_count += 1;
                        }
                    });
                    ctx.event(
                        true,
                        "Failed",
                        &format!("Error: failed to start container {name:?}: {msg}"),
                    );
                    match after_exit(ctx, w, &name, &policy, t, Duration::ZERO, &mut backoff).await
                    {
                        Some(o) => return o,
                        None => continue,
                    }
                }
            }
        };

        let ending = monitor(ctx, w, &mut proc, &exec, resumed).await;
        let (exit, stopping) = match ending {
            Ending::Exited(e) => {
                proc.reap_group();
                (e, false)
            }
            Ending::Kill { kind, grace } => {
                ctx.event(
                    false,
                    "Killing",
                    &format!(
                        "Container {name} failed {} probe, will be restarted",
                        kind.title().to_lowercase()
                    ),
                );
                let grace = grace.unwrap_or_else(|| ctx.pod_grace());
                (proc.terminate(grace).await, false)
            }
            Ending::Stop => {
                ctx.event(false, "Killing", &format!("Stopping container {name}"));
                (proc.terminate(ctx.grace()).await, true)
            }
        };
        // The container is gone now: free its runc state, cgroups and rootfs (its exit
        // and OOM count were read above).
        proc.remove().await;
        let reason = if !exit.known {
            "ContainerStatusUnknown"
        } else if exit.oom_killed && exit.code != 0 {
            "OOMKilled"
        } else if exit.code == 0 {
            "Completed"
        } else {
            "Error"
        };
        let t = Terminated {
            exit_code: exit.code,
            signal: exit.signal,
            reason: reason.into(),
            message: (!exit.known).then(|| {
                "The container's exit code could not be read: it was re-adopted after a daemon restart".to_string()
            }),
            started_at: Some(started_at),
            finished_at: now_rfc3339(),
        };
        let _ = kl.forget_process(&id, &ctx.uid);
        if stopping {
            ctx.update(w, |c| {
                c.state = State::Terminated(t);
                c.ready = false;
                c.started = false;
            });
            return Outcome::Stopped;
        }
        match after_exit(ctx, w, &name, &policy, t, started.elapsed(), &mut backoff).await {
            Some(o) => return o,
            None => continue,
        }
    }
}

/// Records an exit and decides what follows: `Some` when the container is done,
/// `None` to start it again (after the back-off, already waited).
async fn after_exit(
    ctx: &PodCtx,
    w: Which,
    name: &str,
    policy: &str,
    t: Terminated,
    ran_for: Duration,
    backoff: &mut Backoff,
) -> Option<Outcome> {
    let code = t.exit_code;
    if !should_restart(policy, code) {
        ctx.update(w, |c| {
            c.state = State::Terminated(t);
            c.ready = w.init && code == 0;
            c.started = false;
        });
        return Some(if code == 0 {
            Outcome::Succeeded
        } else {
            Outcome::Failed
        });
    }
    let delay = backoff.next(ran_for);
    let t2 = t.clone();
    ctx.update(w, |c| {
        c.last = Some(t2);
        c.state = State::Terminated(t);
        c.ready = false;
        c.started = false;
    });
    if delay.is_zero() {
        return if ctx.stop.is_cancelled() {
            Some(Outcome::Stopped)
        } else {
            None
        };
    }
    let message = format!(
        "back-off {} restarting failed container={name} pod={}",
        status::go_duration(delay),
        ctx.pod_ref
    );
    ctx.update(w, |c| {
        c.state = State::waiting("CrashLoopBackOff", Some(message))
    });
    ctx.event(
        true,
        "BackOff",
        &format!(
            "Back-off restarting failed container {name} in pod {}",
            ctx.pod_ref
        ),
    );
    if sleep_or_stop(ctx, delay).await {
        None
    } else {
        Some(Outcome::Stopped)
    }
}

/// Watches a running container until it exits, a probe condemns it, or it is stopped.
async fn monitor(
    ctx: &PodCtx,
    w: Which,
    proc: &mut Proc,
    exec: &ExecContext,
    resumed: bool,
) -> Ending {
    if w.init {
        return tokio::select! {
            biased;
            _ = ctx.stop.cancelled() => Ending::Stop,
            e = proc.wait() => Ending::Exited(e),
        };
    }
    let c = ctx.container(w);
    let hp = ctx.ports();
    let startup = probe::parse(Kind::Startup, c, &hp);
    let liveness = probe::parse(Kind::Liveness, c, &hp);
    let readiness = probe::parse(Kind::Readiness, c, &hp);
    // A re-adopted container keeps what the previous daemon knew about it.
    let prev = ctx.snapshot(w);
    let already_started = resumed && prev.started;
    let was_ready = resumed && prev.ready;
    // Initial delays count from the container's start, long past for an adopted one.
    let t0 = if resumed {
        Instant::now()
            .checked_sub(Duration::from_secs(3600))
            .unwrap_or_else(Instant::now)
    } else {
        Instant::now()
    };
    let (started_tx, started_rx) = watch::channel(false);
    if startup.is_none() || already_started {
        ctx.update(w, |c| c.started = true);
        let _ = started_tx.send(true);
    }
    let startup_run = async {
        match (&startup, already_started) {
            (Some(p), false) => {
                if let Some(k) = probe_loop(ctx, w, Kind::Startup, p, exec, t0, None).await {
                    return k;
                }
                ctx.update(w, |c| c.started = true);
                let _ = started_tx.send(true);
                std::future::pending().await
            }
            _ => std::future::pending().await,
        }
    };
    let liveness_run = async {
        let Some(p) = &liveness else {
            return std::future::pending().await;
        };
        let mut rx = started_rx.clone();
        if rx.wait_for(|s| *s).await.is_err() {
            return std::future::pending().await;
        }
        match probe_loop(ctx, w, Kind::Liveness, p, exec, t0, Some(true)).await {
            Some(k) => k,
            None => std::future::pending().await,
        }
    };
    let readiness_run = async {
        let mut rx = started_rx.clone();
        if rx.wait_for(|s| *s).await.is_err() {
            return std::future::pending::<()>().await;
        }
        match &readiness {
            None => {
                ctx.update(w, |c| c.ready = true);
            }
            Some(p) => {
                if was_ready {
                    ctx.update(w, |c| c.ready = true);
                }
                probe_loop(ctx, w, Kind::Readiness, p, exec, t0, Some(was_ready)).await;
            }
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        biased;
        _ = ctx.stop.cancelled() => Ending::Stop,
        e = proc.wait() => Ending::Exited(e),
        k = startup_run => k,
        k = liveness_run => k,
        _ = readiness_run => Ending::Stop,
    }
}

/// Runs a probe every period from `t0 + initialDelaySeconds` (or now, if later),
/// applying its thresholds. Readiness results go to the container's `ready`; a failed
/// liveness or startup probe returns the kill; a startup probe's success returns `None`.
async fn probe_loop(
    ctx: &PodCtx,
    w: Which,
    kind: Kind,
    p: &Probe,
    exec: &ExecContext,
    t0: Instant,
    initial: Option<bool>,
) -> Option<Ending> {
    let first = (t0 + p.initial_delay).max(Instant::now());
    let mut tick = tokio::time::interval_at(first, p.period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut verdict = initial;
    let mut last: Option<bool> = None;
    let mut run = 0u32;
    loop {
        tick.tick().await;
        let result = probe::check(&p.action, p.timeout, exec).await;
        let ok = result.is_ok();
        if let Err(msg) = &result {
            ctx.event(
                true,
                "Unhealthy",
                &format!("{} probe failed: {msg}", kind.title()),
            );
        }
        if last == Some(ok) {
            run = run.saturating_add(1);
        } else {
            last = Some(ok);
            run = 1;
        }
        let threshold = if ok {
            p.success_threshold
        } else {
            p.failure_threshold
        };
        if run < threshold || verdict == Some(ok) {
            continue;
        }
        verdict = Some(ok);
        match (kind, ok) {
            (Kind::Readiness, ready) => ctx.update(w, |c| c.ready = ready),
            (Kind::Startup, true) => return None,
            (Kind::Liveness, true) => {}
            (Kind::Startup | Kind::Liveness, false) => {
                return Some(Ending::Kill {
                    kind,
                    grace: p.grace,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_immediate_then_doubles_to_the_cap() {
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(300));
        let got: Vec<u64> = (0..8).map(|_| b.next(Duration::ZERO).as_secs()).collect();
        assert_eq!(got, vec![0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(
            b.next(BACKOFF_RESET),
            Duration::ZERO,
            "a long run resets the back-off"
        );
        assert_eq!(b.next(Duration::ZERO), Duration::from_secs(10));
    }

    #[test]
    fn restart_policy_decides() {
        assert!(should_restart("Always", 0));
        assert!(should_restart("OnFailure", 1));
        assert!(!should_restart("OnFailure", 0));
        assert!(!should_restart("Never", 1));
    }
}
