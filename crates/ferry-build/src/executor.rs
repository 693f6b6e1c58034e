//! The executor: builds a Dockerfile's stages into an image in the local store, with
//! no daemon. Each stage's root file system is a plain directory under
//! `FERRY_HOME/build/<id>/`; `RUN` executes in it through runc (the directory is
//! bind-mounted as the container's writable root, host network); `COPY`/`ADD` write
//! into it directly. Every step that changes the file system becomes one layer (the
//! [`layer`](crate::layer) diff of the directory before and after), cached by
//! [`cache`](crate::cache). Blobs are written first and tags moved last, so a failed
//! or killed build moves no tag.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_container::{ContainerSpec, Mount, RootfsMode, Runtime, UserSpec};
use ferry_oci::spec::{self, Descriptor, Manifest, OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST};
use ferry_oci::{Reference, RegistryClient, Store};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use crate::cache::{self, Cache, Record};
use crate::context::{ContextEntry, EntryKind, list_context, load_ignore_file};
use crate::dockerfile::{CommandLine, Healthcheck, RunScript, parse};
use crate::error::{Error, Result, Warning};
use crate::evaluator::{CopyStep, RunStep, Step, StepKind};
use crate::layer::{self, Kind};
use crate::stage::{Base, BuildOptions, CopySource, DEFAULT_PATH, Plan, plan};

/// What to build.
#[derive(Clone, Debug, Default)]
pub struct BuildRequest {
    /// The build context directory.
    pub context: PathBuf,
    /// The Dockerfile (or Containerfile).
    pub dockerfile: PathBuf,
    /// The names to give the image, `NAME[:TAG]`.
    pub tags: Vec<String>,
    /// Build arguments, target, platform.
    pub options: BuildOptions,
    /// Run every step, using no cached result (results are still cached).
    pub no_cache: bool,
    /// `SOURCE_DATE_EPOCH`: mtimes in layers are clamped to it and it is the image's
    /// creation time, so the same inputs give the same digest.
    pub source_date_epoch: Option<u64>,
    /// `FERRY_HOME`: stage root file systems go under `build/`, the cache under
    /// `build-cache/`.
    pub home: PathBuf,
    /// Set (by a Ctrl-C handler) to stop the build: a running `RUN` is stopped and
    /// removed, nothing is tagged.
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// What a build made.
#[derive(Clone, Debug)]
pub struct BuildOutput {
    /// The image manifest's digest.
    pub digest: ferry_oci::Digest,
    /// The config's digest.
    pub config_digest: ferry_oci::Digest,
    /// The tags moved to it.
    pub tags: Vec<String>,
    /// Steps executed.
    pub ran: usize,
    /// Steps taken from the cache.
    pub cached: usize,
    /// The frontend's warnings.
    pub warnings: Vec<Warning>,
}

/// The state of a stage being built.
#[derive(Clone, Debug)]
struct StageState {
    rootfs: PathBuf,
    /// The whole image config document.
    config: Value,
    layers: Vec<Descriptor>,
    diff_ids: Vec<String>,
    /// Identifies the file-system state: the base, then each step's cache key.
    chain: String,
    env: Vec<(String, String)>,
    /// Time of the newest layer, when known.
    created: Option<u64>,
}

/// Lines of a failed `RUN`'s output quoted in the error.
const TAIL_LINES: usize = 10;
/// How often a running step's output is copied to the progress stream.
const PUMP_EVERY: Duration = Duration::from_millis(100);
/// Paths runc creates as mount points when an image lacks them; they are no part
/// of what `RUN` did.
const MOUNT_POINTS: &[&str] = &[
    "etc/hosts",
    "etc/hostname",
    "etc/resolv.conf",
    "proc",
    "sys",
    "dev",
    "etc",
];

/// Builds `req` into `store`. Progress (step headers, `RUN` output, `CACHED`) goes
/// to `progress`. A base image missing from the store is pulled through `registry`
/// when one is given.
pub async fn build(
    store: &Store,
    req: &BuildRequest,
    registry: Option<&RegistryClient>,
    progress: &mut dyn Write,
) -> Result<BuildOutput> {
    let mut tags = Vec::new();
    for t in &req.tags {
        let r = Reference::parse(t).map_err(|source| Error::Image {
            what: format!("tag {t:?}"),
            source: Box::new(source),
        })?;
        if r.digest().is_some() || r.tag().is_none() {
            return Err(Error::Image {
                what: format!("tag {t:?}"),
                source: Box::new(ferry_oci::Error::Build(
                    "a tag must be NAME[:TAG], without a digest".into(),
                )),
            });
        }
        tags.push(r);
    }
    let text = fs::read_to_string(&req.dockerfile).map_err(|source| Error::Io {
        path: req.dockerfile.clone(),
        source,
    })?;
    let name = req
        .dockerfile
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "Dockerfile".into());
    let df = parse(&name, &text)?;
    let plan = plan(&df, &req.options)?;
    let host = crate::platform::Platform::host();
    if plan.platform != host {
        // RUN would execute the host's binaries, and no emulation is set up.
        return Err(Error::Image {
            what: format!("--platform {}", plan.platform),
            source: Box::new(ferry_oci::Error::Build(format!(
                "ferry builds Dockerfiles only for this machine's platform ({host}); leave --platform out"
            ))),
        });
    }
    for w in &plan.warnings {
        let _ = writeln!(progress, "warning: {w}");
    }
    for w in reap_stale(&req.home.join("build")).await {
        let _ = writeln!(progress, "warning: cleaning up after a killed build: {w}");
    }
    let work = req.home.join("build").join(format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    fs::create_dir_all(&work).map_err(|source| Error::Io {
        path: work.clone(),
        source,
    })?;
    let _guard = store.ingest_guard().map_err(|source| Error::Image {
        what: "locking the image store".into(),
        source: Box::new(source),
    })?;
    let mut b = Builder {
        store,
        req,
        registry,
        progress,
        total: plan
            .order
            .iter()
            .map(|i| plan.stages[*i].instructions.len() + 1)
            .sum(),
        plan,
        runtime: Runtime::new(work.join("runc"))
            .with_rootfs_mode(RootfsMode::Bind)
            .with_cgroup_parent("ferry-build"),
        work: work.clone(),
        cache: Cache::new(req.home.join("build-cache")),
        context: None,
        trees: BTreeMap::new(),
        stages: BTreeMap::new(),
        step_no: 0,
        ran: 0,
        cached: 0,
        seq: 0,
    };
    let result = b.build_all(&tags).await;
    let _ = fs::remove_dir_all(&work);
    result
}

/// Removes what killed builds left under `build_root`: directories named after a
/// process that is gone, their stopped `RUN` containers deleted (and unmounted)
/// through the runtime first. Best effort: a leftover costs disk space, not
/// correctness.
async fn reap_stale(build_root: &Path) -> Vec<String> {
    let mut warnings = Vec::new();
    let Ok(entries) = fs::read_dir(build_root) else {
        return warnings;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let dir = e.path();
        let rt = Runtime::new(dir.join("runc"));
        if dir.join("runc").is_dir() {
            // Those runc knows, and those killed before runc ever saw them (their
            // root file system already bind-mounted): delete unmounts both.
            let mut ids: Vec<String> = rt
                .list()
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.id)
                .collect();
            if let Ok(dirs) = fs::read_dir(dir.join("runc").join("containers")) {
                ids.extend(
                    dirs.flatten()
                        .map(|d| d.file_name().to_string_lossy().into_owned()),
                );
            }
            ids.sort();
            ids.dedup();
            for id in ids {
                if let Err(e) = rt.delete(&id).await {
                    warnings.push(format!("deleting the container {id}: {e}"));
                }
            }
        }
        // Never delete through a mount that is still there.
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let prefix = dir.display().to_string();
        let mounted = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .any(|m| m.starts_with(&prefix));
        if mounted {
            warnings.push(format!(
                "{} still has mounts; unmount them and remove it",
                dir.display()
            ));
            continue;
        }
        // The killed build's container supervisor may still be writing its exit
        // file as it dies: retry until the directory is gone, within a deadline.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while fs::remove_dir_all(&dir).is_err()
            && dir.exists()
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if let Err(e) = fs::remove_dir_all(&dir)
            && dir.exists()
        {
            warnings.push(format!("removing {}: {e}", dir.display()));
        }
    }
    warnings
}

struct Builder<'a> {
    store: &'a Store,
    req: &'a BuildRequest,
    registry: Option<&'a RegistryClient>,
    progress: &'a mut dyn Write,
    plan: Plan,
    runtime: Runtime,
    work: PathBuf,
    cache: Cache,
    /// The build context's entries after `.dockerignore`, read on first use.
    context: Option<Vec<ContextEntry>>,
    /// Listings of other stages' and images' root file systems for `COPY --from`.
    trees: BTreeMap<String, (PathBuf, Vec<ContextEntry>)>,
    stages: BTreeMap<usize, StageState>,
    /// Steps of the stages built (each FROM counts), for `[n/total]`.
    total: usize,
    step_no: usize,
    ran: usize,
    cached: usize,
    seq: usize,
}

fn short(original: &str) -> String {
    let one: String = original.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() > 80 {
        format!("{}…", one.chars().take(79).collect::<String>())
    } else {
        one
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn hash_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn rc(config: &mut Value) -> &mut Map<String, Value> {
    if !config.get("config").is_some_and(Value::is_object) {
        config["config"] = json!({});
    }
    match config.get_mut("config") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("just made an object"),
    }
}

fn str_vec(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn abs_path(workdir: &str, p: &str) -> String {
    let joined = if p.starts_with('/') {
        p.to_string()
    } else {
        format!("{}/{p}", workdir.trim_end_matches('/'))
    };
    crate::ignore::clean(&joined)
}

impl Builder<'_> {
    fn say(&mut self, line: &str) {
        let _ = writeln!(self.progress, "{line}");
        let _ = self.progress.flush();
    }

    fn step_err(&self, step: &Step, message: String) -> Error {
        Error::Step {
            file: self.plan.file.clone(),
            line: step.start_line,
            instruction: short(&step.original),
            message,
        }
    }

    async fn build_all(&mut self, tags: &[Reference]) -> Result<BuildOutput> {
        let order = self.plan.order.clone();
        for idx in order {
            let st = self.build_stage(idx).await?;
            self.stages.insert(idx, st);
        }
        let target = self.plan.target;
        let st = self.stages.get(&target).cloned().ok_or_else(|| Error::Io {
            path: self.work.clone(),
            source: std::io::Error::other("the target stage was not built"),
        })?;
        self.commit(st, tags)
    }

    /// Writes the config and manifest, then moves the tags.
    fn commit(&mut self, mut st: StageState, tags: &[Reference]) -> Result<BuildOutput> {
        let env: Vec<Value> = st
            .env
            .iter()
            .map(|(k, v)| Value::String(format!("{k}={v}")))
            .collect();
        rc(&mut st.config).insert("Env".into(), Value::Array(env));
        if let Some(t) = self.req.source_date_epoch.or(st.created) {
            st.config["created"] = json!(ferry_oci::build::rfc3339(t));
        }
        st.config["rootfs"] = json!({"type": "layers", "diff_ids": st.diff_ids});
        let oci = |source| Error::Image {
            what: "writing the image".into(),
            source: Box::new(source),
        };
        let config_raw = serde_json::to_vec(&st.config).map_err(|e| Error::Io {
            path: self.work.clone(),
            source: std::io::Error::other(e),
        })?;
        let config_digest = self.store.write_blob(&config_raw).map_err(oci)?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.to_string()),
            config: Descriptor {
                media_type: OCI_CONFIG.to_string(),
                digest: config_digest.clone(),
                size: config_raw.len() as u64,
                platform: None,
                annotations: BTreeMap::new(),
            },
            layers: st.layers.clone(),
            annotations: BTreeMap::new(),
        };
        let raw = serde_json::to_vec(&manifest).map_err(|e| Error::Io {
            path: self.work.clone(),
            source: std::io::Error::other(e),
        })?;
        let digest = self.store.write_blob(&raw).map_err(oci)?;
        let desc = Descriptor {
            media_type: OCI_MANIFEST.to_string(),
            digest: digest.clone(),
            size: raw.len() as u64,
            platform: None,
            annotations: BTreeMap::new(),
        };
        let mut names = Vec::new();
        for t in tags {
            self.store.set_tag(t, &desc, None).map_err(oci)?;
            names.push(t.to_string());
        }
        Ok(BuildOutput {
            digest,
            config_digest,
            tags: names,
            ran: self.ran,
            cached: self.cached,
            warnings: self.plan.warnings.clone(),
        })
    }

    /// Finds an image in the store, pulling it when missing and a registry is given.
    async fn image(&mut self, name: &str, line: usize, what: &str) -> Result<ferry_oci::ImageInfo> {
        let file = self.plan.file.clone();
        let store_err = |source| Error::Image {
            what: format!("{file}:{line}: {what} {name}"),
            source: Box::new(source),
        };
        if let Some(info) = self.store.resolve(name).map_err(store_err)? {
            return Ok(info);
        }
        let local = Reference::parse(name).map(|r| r.is_local()).unwrap_or(true);
        match self.registry {
            Some(client) if !local => {
                self.say(&format!("pulling {name}"));
                client.ensure(self.store, name).await.map_err(store_err)
            }
            _ => Err(Error::Step {
                file: self.plan.file.clone(),
                line,
                instruction: format!("{what} {name}"),
                message: format!(
                    "image {name} is not in the local store; pull it with `ferry image pull REGISTRY/{name}` or import it with `ferry image import`"
                ),
            }),
        }
    }

    async fn build_stage(&mut self, idx: usize) -> Result<StageState> {
        let stage = self.plan.stages[idx].clone();
        self.step_no += 1;
        let from = match &stage.base {
            Base::Scratch => "scratch".to_string(),
            Base::Image(i) => i.clone(),
            Base::Stage(s) => self.plan.stages[*s].display_name(),
        };
        let header = format!(
            "[{}/{}] FROM {from}{}",
            self.step_no,
            self.total,
            stage
                .name
                .as_ref()
                .map(|n| format!(" AS {n}"))
                .unwrap_or_default()
        );
        self.say(&header);
        let rootfs = self.work.join(format!("stage-{idx}")).join("rootfs");
        fs::create_dir_all(&rootfs).map_err(|source| Error::Io {
            path: rootfs.clone(),
            source,
        })?;
        let mut st = match &stage.base {
            Base::Scratch => {
                let p = self.plan.platform.to_string();
                let (os, arch) = p.split_once('/').unwrap_or(("linux", "amd64"));
                let arch = arch.split('/').next().unwrap_or(arch);
                StageState {
                    rootfs,
                    config: json!({"architecture": arch, "os": os, "config": {}, "rootfs": {"type": "layers", "diff_ids": []}}),
                    layers: Vec::new(),
                    diff_ids: Vec::new(),
                    chain: "scratch".into(),
                    env: vec![("PATH".into(), DEFAULT_PATH.into())],
                    created: None,
                }
            }
            Base::Stage(s) => {
                let mut st = self.stages.get(s).cloned().ok_or_else(|| Error::Stage {
                    file: self.plan.file.clone(),
                    line: stage.line,
                    message: format!("stage {s} was not built before stage {idx}"),
                    hint: None,
                })?;
                st.rootfs = rootfs;
                for l in &st.layers {
                    layer::apply(self.store, &l.digest, &st.rootfs)?;
                }
                st
            }
            Base::Image(name) => {
                let info = self.image(name, stage.line, "FROM").await?;
                let oci = |source| Error::Image {
                    what: format!("{}:{}: FROM {name}", self.plan.file, stage.line),
                    source: Box::new(source),
                };
                let manifest = self.store.manifest(&info.digest).map_err(oci)?;
                let raw = self.store.read_blob(&info.config_digest).map_err(oci)?;
                let config: Value = serde_json::from_slice(&raw).map_err(|e| Error::Image {
                    what: format!("{}:{}: FROM {name}", self.plan.file, stage.line),
                    source: Box::new(ferry_oci::Error::Build(format!(
                        "its config is not JSON: {e}"
                    ))),
                })?;
                let layers: Vec<Descriptor> = manifest
                    .layers
                    .into_iter()
                    .map(|mut l| {
                        // The manifest is OCI: Docker's layer types get their OCI names.
                        if l.media_type == spec::DOCKER_LAYER_GZIP {
                            l.media_type = OCI_LAYER_GZIP.to_string();
                        } else if l.media_type == "application/vnd.docker.image.rootfs.diff.tar" {
                            l.media_type = spec::OCI_LAYER_TAR.to_string();
                        }
                        l
                    })
                    .collect();
                for l in &layers {
                    layer::apply(self.store, &l.digest, &rootfs)?;
                }
                let env = str_vec(config.get("config").and_then(|c| c.get("Env")))
                    .into_iter()
                    .map(|kv| match kv.split_once('=') {
                        Some((k, v)) => (k.to_string(), v.to_string()),
                        None => (kv, String::new()),
                    })
                    .collect();
                let diff_ids = str_vec(config.get("rootfs").and_then(|r| r.get("diff_ids")));
                StageState {
                    rootfs,
                    config,
                    layers,
                    diff_ids,
                    chain: format!("image:{}", info.digest),
                    env,
                    created: None,
                }
            }
        };
        // buildkit gives an image whose base sets no PATH the default one.
        if !st.env.iter().any(|(k, _)| k == "PATH") {
            st.env.insert(0, ("PATH".into(), DEFAULT_PATH.into()));
        }
        let (steps, env) = self.plan.steps(idx, &st.env)?;
        let mut cmd_set = false;
        for step in &steps {
            self.step(&mut st, step, &mut cmd_set).await?;
        }
        st.env = env;
        Ok(st)
    }

    fn history(&self, st: &mut StageState, step: &Step, created: Option<u64>, empty: bool) {
        let mut h = Map::new();
        if let Some(t) = self.req.source_date_epoch.or(created).or(st.created) {
            h.insert("created".into(), json!(ferry_oci::build::rfc3339(t)));
        }
        let one_line = step
            .original
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        h.insert("created_by".into(), json!(one_line));
        if empty {
            h.insert("empty_layer".into(), json!(true));
        }
        match st.config.get_mut("history").and_then(Value::as_array_mut) {
            Some(a) => a.push(Value::Object(h)),
            None => st.config["history"] = json!([Value::Object(h)]),
        }
    }

    fn cancelled(&self) -> bool {
        self.req
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::SeqCst))
    }

    fn cancel_err(&self, step: &Step) -> Error {
        Error::Cancelled {
            file: self.plan.file.clone(),
            line: step.start_line,
        }
    }

    async fn step(&mut self, st: &mut StageState, step: &Step, cmd_set: &mut bool) -> Result<()> {
        if self.cancelled() {
            return Err(self.cancel_err(step));
        }
        self.step_no += 1;
        let header = format!(
            "[{}/{}] {}",
            self.step_no,
            self.total,
            short(&step.original)
        );
        let workdir = rc(&mut st.config)
            .get("WorkingDir")
            .and_then(Value::as_str)
            .filter(|w| !w.is_empty())
            .unwrap_or("/")
            .to_string();
        let shell_of = |st: &mut StageState| {
            let s = str_vec(rc(&mut st.config).get("Shell"));
            if s.is_empty() {
                vec!["/bin/sh".to_string(), "-c".to_string()]
            } else {
                s
            }
        };
        let cmdline = |st: &mut StageState, c: &CommandLine| -> Vec<String> {
            match c {
                CommandLine::Exec(v) => v.clone(),
                CommandLine::Shell(s) => {
                    let mut v = shell_of(st);
                    v.push(s.clone());
                    v
                }
            }
        };
        match &step.kind {
            StepKind::Arg(_) => {}
            StepKind::Env(kvs) => {
                // The final Env is the evaluator's; RUN steps get theirs from it too.
                for (k, v) in kvs {
                    match st.env.iter_mut().find(|(n, _)| n == k) {
                        Some(slot) => slot.1 = v.clone(),
                        None => st.env.push((k.clone(), v.clone())),
                    }
                }
            }
            StepKind::Label(kvs) => {
                let c = rc(&mut st.config);
                if !c.get("Labels").is_some_and(Value::is_object) {
                    c.insert("Labels".into(), json!({}));
                }
                if let Some(Value::Object(m)) = c.get_mut("Labels") {
                    for (k, v) in kvs {
                        m.insert(k.clone(), json!(v));
                    }
                }
            }
            StepKind::User(u) => {
                rc(&mut st.config).insert("User".into(), json!(u));
            }
            StepKind::StopSignal(s) => {
                rc(&mut st.config).insert("StopSignal".into(), json!(s));
            }
            StepKind::Maintainer(m) => st.config["author"] = json!(m),
            StepKind::Cmd(c) => {
                let v = cmdline(st, c);
                rc(&mut st.config).insert("Cmd".into(), json!(v));
                *cmd_set = true;
            }
            StepKind::Entrypoint(c) => {
                let v = cmdline(st, c);
                let cfg = rc(&mut st.config);
                cfg.insert("Entrypoint".into(), json!(v));
                // Docker: an ENTRYPOINT resets a CMD inherited from the base image.
                if !*cmd_set {
                    cfg.remove("Cmd");
                }
            }
            StepKind::Shell(s) => {
                rc(&mut st.config).insert("Shell".into(), json!(s));
            }
            StepKind::Volume(vs) => {
                let c = rc(&mut st.config);
                if !c.get("Volumes").is_some_and(Value::is_object) {
                    c.insert("Volumes".into(), json!({}));
                }
                if let Some(Value::Object(m)) = c.get_mut("Volumes") {
                    for v in vs {
                        m.insert(v.clone(), json!({}));
                    }
                }
            }
            StepKind::Expose(ps) => {
                let c = rc(&mut st.config);
                if !c.get("ExposedPorts").is_some_and(Value::is_object) {
                    c.insert("ExposedPorts".into(), json!({}));
                }
                if let Some(Value::Object(m)) = c.get_mut("ExposedPorts") {
                    for p in ps {
                        for k in p.keys() {
                            m.insert(k, json!({}));
                        }
                    }
                }
            }
            StepKind::Healthcheck(h) => {
                // Docker's config key; the OCI image spec has no health check, so
                // only Docker-compatible runtimes read it.
                let v = match h {
                    Healthcheck::None => json!({"Test": ["NONE"]}),
                    Healthcheck::Check {
                        test,
                        interval,
                        timeout,
                        start_period,
                        start_interval,
                        retries,
                    } => {
                        let mut m = Map::new();
                        m.insert("Test".into(), json!(test));
                        for (k, d) in [
                            ("Interval", interval),
                            ("Timeout", timeout),
                            ("StartPeriod", start_period),
                            ("StartInterval", start_interval),
                        ] {
                            if let Some(d) = d {
                                m.insert(k.into(), json!(d.as_nanos() as u64));
                            }
                        }
                        if let Some(r) = retries {
                            m.insert("Retries".into(), json!(r));
                        }
                        Value::Object(m)
                    }
                };
                rc(&mut st.config).insert("Healthcheck".into(), v);
            }
            StepKind::Workdir(p) => {
                let path = abs_path(&workdir, p);
                rc(&mut st.config).insert("WorkingDir".into(), json!(path));
                let user = rc(&mut st.config)
                    .get("User")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let key = cache::key(&[&st.chain, "WORKDIR", &path, &user]);
                let rootfs = st.rootfs.clone();
                return self
                    .fs_step(st, step, header, key, |b| {
                        // As buildkit: the directories WORKDIR creates belong to USER.
                        let owner = if user.is_empty() {
                            None
                        } else {
                            let spec = UserSpec {
                                user: Some(user.clone()),
                                ..UserSpec::default()
                            };
                            let u = ferry_container::user::resolve("workdir", &rootfs, &spec)
                                .map_err(|e| b.step_err(step, format!("USER {user}: {e}")))?;
                            Some((u.uid, u.gid))
                        };
                        b.mkdir_p(&rootfs, &path, owner).map(|_| ())
                    })
                    .await;
            }
            StepKind::Copy(c) | StepKind::Add(c) => {
                let is_add = matches!(step.kind, StepKind::Add(_));
                self.source_tree(step, &c.from).await?;
                let items = self.copy_items(st, step, c, &workdir, is_add)?;
                let inputs = inputs_hash(&items)?;
                let kind = format!("{:?}", step.kind);
                let key = cache::key(&[&st.chain, &kind, &workdir, &inputs]);
                let rootfs = st.rootfs.clone();
                let c = c.clone();
                return self
                    .fs_step(st, step, header, key, |b| {
                        b.apply_copy(&rootfs, step, &c, &items)
                    })
                    .await;
            }
            StepKind::Run(r) => {
                let user = rc(&mut st.config)
                    .get("User")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let shell = shell_of(st);
                let key = cache::key(&[
                    &st.chain,
                    &format!("{:?}", r.script),
                    &format!("{:?}", r.env),
                    &user,
                    &workdir,
                    &format!("{shell:?}"),
                ]);
                if let Some(rec) = self.cached_record(&key) {
                    return self.use_cached(st, step, &header, key, rec);
                }
                self.say(&header);
                let before = layer::snapshot(&st.rootfs)?;
                self.run(st, step, r, &workdir, &user, &shell).await?;
                remove_mount_points(&st.rootfs, &before);
                return self.finish_step(st, step, key, &before);
            }
        }
        self.say(&header);
        self.history(st, step, None, true);
        Ok(())
    }

    fn cached_record(&self, key: &str) -> Option<Record> {
        if self.req.no_cache {
            return None;
        }
        self.cache.get(self.store, key)
    }

    fn use_cached(
        &mut self,
        st: &mut StageState,
        step: &Step,
        header: &str,
        key: String,
        rec: Record,
    ) -> Result<()> {
        let line = header.replacen("] ", "] CACHED ", 1);
        self.say(&line);
        self.cached += 1;
        if let Some((desc, diff_id)) = &rec.layer {
            layer::apply(self.store, &desc.digest, &st.rootfs)?;
            st.layers.push(desc.clone());
            st.diff_ids.push(diff_id.to_string());
        }
        st.created = Some(rec.created);
        st.chain = key;
        self.history(st, step, Some(rec.created), rec.layer.is_none());
        Ok(())
    }

    /// A file-system step that runs synchronously (`COPY`, `ADD`, `WORKDIR`).
    async fn fs_step(
        &mut self,
        st: &mut StageState,
        step: &Step,
        header: String,
        key: String,
        action: impl FnOnce(&mut Self) -> Result<()>,
    ) -> Result<()> {
        if let Some(rec) = self.cached_record(&key) {
            return self.use_cached(st, step, &header, key, rec);
        }
        self.say(&header);
        let before = layer::snapshot(&st.rootfs)?;
        action(self)?;
        self.finish_step(st, step, key, &before)
    }

    fn finish_step(
        &mut self,
        st: &mut StageState,
        step: &Step,
        key: String,
        before: &layer::Snapshot,
    ) -> Result<()> {
        self.ran += 1;
        let after = layer::snapshot(&st.rootfs)?;
        let changes = layer::diff(before, &after);
        let created = now();
        let l = if changes.is_empty() {
            None
        } else {
            Some(layer::write_layer(
                self.store,
                &st.rootfs,
                &changes,
                self.req.source_date_epoch,
            )?)
        };
        let rec = Record {
            layer: l.map(|l| (l.descriptor, l.diff_id)),
            created,
        };
        if let Err(e) = self.cache.put(&key, &rec) {
            let line = format!(
                "warning: the build cache in {} could not be written: {e}",
                self.cache.dir().display()
            );
            self.say(&line);
        }
        if let Some((desc, diff_id)) = &rec.layer {
            st.layers.push(desc.clone());
            st.diff_ids.push(diff_id.to_string());
        }
        st.created = Some(created);
        st.chain = key;
        self.history(st, step, Some(created), rec.layer.is_none());
        Ok(())
    }

    /// Creates `path` (absolute, in the image) and its missing parents inside
    /// `rootfs`, owned by `owner` (root when `None`), mode 0755. Returns the host path.
    fn mkdir_p(&self, rootfs: &Path, path: &str, owner: Option<(u32, u32)>) -> Result<PathBuf> {
        let mut cur = String::new();
        for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
            cur = format!("{cur}/{part}");
            let host = scoped(rootfs, &cur)?;
            match fs::symlink_metadata(&host) {
                Ok(m) if m.is_dir() => continue,
                Ok(_) => {
                    return Err(Error::Io {
                        path: host,
                        source: std::io::Error::other(format!(
                            "{cur} exists in the image and is not a directory"
                        )),
                    });
                }
                Err(_) => {
                    fs::create_dir(&host).map_err(|source| Error::Io {
                        path: host.clone(),
                        source,
                    })?;
                    let (u, g) = owner.unwrap_or((0, 0));
                    let _ = std::os::unix::fs::lchown(&host, Some(u), Some(g));
                    let _ = fs::set_permissions(&host, fs::Permissions::from_mode(0o755));
                }
            }
        }
        scoped(rootfs, path)
    }

    async fn run(
        &mut self,
        st: &StageState,
        step: &Step,
        r: &RunStep,
        workdir: &str,
        user: &str,
        shell: &[String],
    ) -> Result<()> {
        let unavailable = |missing: String| Error::RunUnavailable {
            file: self.plan.file.clone(),
            line: step.start_line,
            instruction: short(&step.original),
            missing,
        };
        if !ferry_container::procfs::is_root() {
            return Err(unavailable(
                "root (runc needs it to mount the root file system); run the build as root".into(),
            ));
        }
        let runc = ferry_container::find_runc();
        if !runc.is_file() {
            return Err(unavailable(format!(
                "runc ({} not found; install the runc package or put runc on PATH)",
                runc.display()
            )));
        }
        self.mkdir_p(&st.rootfs, workdir, None)?;
        self.seq += 1;
        let id = format!("ferry-build-{}-{}", std::process::id(), self.seq);
        let mut mounts = Vec::new();
        let args = match &r.script {
            RunScript::Shell(s) => {
                let mut v = shell.to_vec();
                v.push(s.clone());
                v
            }
            RunScript::Exec(v) => v.clone(),
            RunScript::File { name, content } => {
                // As buildkit: the script lives outside the layer, under /dev (a tmpfs
                // of the container's own, so the mount point leaves no trace).
                let dir = self.work.join(format!("script-{}", self.seq));
                let path = dir.join(name);
                fs::create_dir_all(&dir)
                    .and_then(|_| fs::write(&path, content))
                    .and_then(|_| fs::set_permissions(&path, fs::Permissions::from_mode(0o755)))
                    .map_err(|source| Error::Io {
                        path: path.clone(),
                        source,
                    })?;
                mounts.push(Mount::Bind {
                    source: dir,
                    destination: "/dev/pipes".into(),
                    read_only: true,
                });
                vec![format!("/dev/pipes/{name}")]
            }
        };
        let spec = ContainerSpec {
            id: id.clone(),
            image_rootfs: st.rootfs.clone(),
            args,
            env: r.env.iter().cloned().collect(),
            cwd: workdir.to_string(),
            user: UserSpec {
                user: Some(user.to_string()).filter(|u| !u.is_empty()),
                ..UserSpec::default()
            },
            hostname: "buildkitsandbox".into(),
            mounts,
            ..ContainerSpec::default()
        };
        let log = self.work.join(format!("run-{}.log", self.seq));
        let container_err = |source| Error::Container {
            file: self.plan.file.clone(),
            line: step.start_line,
            instruction: short(&step.original),
            source: Box::new(source),
        };
        let mut c = self.runtime.run(&spec, &log).await.map_err(container_err)?;
        let mut offset = 0u64;
        let exit = loop {
            match tokio::time::timeout(PUMP_EVERY, c.wait()).await {
                Ok(exit) => break Some(exit),
                Err(_) => {
                    offset = pump(&log, offset, self.progress);
                    if self.cancelled() {
                        let _ = c.stop(Duration::from_secs(2)).await;
                        break None;
                    }
                }
            }
        };
        pump(&log, offset, self.progress);
        let deleted = self.runtime.delete(&id).await;
        let Some(exit) = exit else {
            return Err(self.cancel_err(step));
        };
        if exit.code != 0 {
            let text = fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
            return Err(Error::Run {
                file: self.plan.file.clone(),
                line: step.start_line,
                instruction: short(&step.original),
                code: exit.code,
                output: tail,
            });
        }
        deleted.map_err(|source| Error::Container {
            file: self.plan.file.clone(),
            line: step.start_line,
            instruction: short(&step.original),
            source: Box::new(source),
        })
    }

    /// The root and listing `COPY --from` reads from.
    async fn source_tree(
        &mut self,
        step: &Step,
        from: &CopySource,
    ) -> Result<(PathBuf, Vec<ContextEntry>)> {
        match from {
            CopySource::Context => {
                if self.context.is_none() {
                    let ignore = load_ignore_file(&self.req.context, Some(&self.req.dockerfile))?;
                    let entries =
                        list_context(&self.req.context, ignore.as_ref().map(|i| &i.matcher))?;
                    self.context = Some(entries);
                }
                Ok((
                    self.req.context.clone(),
                    self.context.clone().unwrap_or_default(),
                ))
            }
            CopySource::Stage(i) => {
                let key = format!("stage:{i}");
                if let Some(t) = self.trees.get(&key) {
                    return Ok(t.clone());
                }
                let root = self
                    .stages
                    .get(i)
                    .map(|s| s.rootfs.clone())
                    .ok_or_else(|| self.step_err(step, format!("stage {i} was not built")))?;
                let entries = list_context(&root, None)?;
                self.trees.insert(key, (root.clone(), entries.clone()));
                Ok((root, entries))
            }
            CopySource::Image(name) => {
                let key = format!("image:{name}");
                if let Some(t) = self.trees.get(&key) {
                    return Ok(t.clone());
                }
                let info = self.image(name, step.start_line, "COPY --from").await?;
                let root = self
                    .store
                    .unpack(info.digest.as_str(), &self.work.join("images"))
                    .map_err(|source| Error::Image {
                        what: format!("{}:{}: unpacking {name}", self.plan.file, step.start_line),
                        source: Box::new(source),
                    })?;
                let entries = list_context(&root, None)?;
                self.trees.insert(key, (root.clone(), entries.clone()));
                Ok((root, entries))
            }
        }
    }
}

impl Builder<'_> {
    fn copy_items(
        &mut self,
        st: &StageState,
        step: &Step,
        c: &CopyStep,
        workdir: &str,
        is_add: bool,
    ) -> Result<Vec<Item>> {
        let _ = st;
        let (root, entries) = prepared_tree(self, step, &c.from)?;
        let from_context = c.from == CopySource::Context;
        let dest_abs = abs_path(workdir, &c.dest);
        let dest_is_dir = c.dest.ends_with('/') || c.dest == "." || c.dest.ends_with("/.");
        // Docker's rule counts what the sources match: a glob matching one file may
        // copy to a file name.
        let matches: usize = c
            .sources
            .iter()
            .map(|s| {
                let pat = crate::ignore::clean(&format!("/{s}"));
                let pat = pat.trim_start_matches('/');
                if has_glob(pat) {
                    entries.iter().filter(|e| glob_match(pat, &e.path)).count()
                } else {
                    1
                }
            })
            .sum();
        let many = matches + c.inline.len() > 1;
        let mut items = Vec::new();
        for f in &c.inline {
            let dest = if dest_is_dir || many {
                format!("{}/{}", dest_abs.trim_end_matches('/'), f.name)
            } else {
                dest_abs.clone()
            };
            items.push(Item {
                src: None,
                content: Some(f.content.clone().into_bytes()),
                src_rel: format!("<<{}", f.name),
                dest,
                kind: Kind::File,
                extract: false,
                from_context,
            });
        }
        let mut matched_any = false;
        for s in &c.sources {
            if is_add && (s.contains("://") || s.starts_with("git@")) {
                return Err(self.step_err(
                    step,
                    format!("ADD of URLs ({s}) is not supported by ferry; download the file in a RUN step (curl/wget) or put it in the build context"),
                ));
            }
            let pat = crate::ignore::clean(&format!("/{s}"));
            let pat = pat.trim_start_matches('/').to_string();
            let matched: Vec<&ContextEntry> = if pat.is_empty() {
                Vec::new()
            } else if has_glob(&pat) {
                entries
                    .iter()
                    .filter(|e| glob_match(&pat, &e.path))
                    .collect()
            } else {
                entries.iter().filter(|e| e.path == pat).collect()
            };
            if pat.is_empty() {
                // The whole source root: its contents.
                matched_any = true;
                push_dir(&mut items, &root, &entries, "", &dest_abs, from_context);
                continue;
            }
            if matched.is_empty() {
                let where_ = if from_context {
                    "in the build context or excluded by .dockerignore".to_string()
                } else {
                    "in the source stage or image".to_string()
                };
                return Err(self.step_err(step, format!("{s}: file not found {where_}")));
            }
            matched_any = true;
            for e in matched {
                let src = root.join(&e.path);
                match e.kind {
                    EntryKind::Dir => push_dir(
                        &mut items,
                        &root,
                        &entries,
                        &e.path,
                        &dest_abs,
                        from_context,
                    ),
                    EntryKind::File | EntryKind::Symlink => {
                        let base = e.path.rsplit('/').next().unwrap_or(&e.path);
                        let extract = is_add && e.kind == EntryKind::File && is_tar(&src);
                        let dest = if extract {
                            dest_abs.clone()
                        } else if dest_is_dir || many {
                            format!("{}/{base}", dest_abs.trim_end_matches('/'))
                        } else {
                            dest_abs.clone()
                        };
                        items.push(Item {
                            src: Some(src),
                            content: None,
                            src_rel: e.path.clone(),
                            dest,
                            kind: if e.kind == EntryKind::File {
                                Kind::File
                            } else {
                                Kind::Symlink
                            },
                            extract,
                            from_context,
                        });
                    }
                }
            }
        }
        if !matched_any && c.inline.is_empty() {
            return Err(self.step_err(step, "no source files were specified".into()));
        }
        if many && !dest_is_dir {
            // Docker's rule, so a Dockerfile that works here works there.
            return Err(self.step_err(
                step,
                "when copying more than one source, the destination must be a directory and end with a /".into(),
            ));
        }
        Ok(items)
    }

    fn apply_copy(
        &mut self,
        rootfs: &Path,
        step: &Step,
        c: &CopyStep,
        items: &[Item],
    ) -> Result<()> {
        let owner = match &c.chown {
            Some(spec) => Some(resolve_chown(rootfs, spec).map_err(|m| self.step_err(step, m))?),
            None => None,
        };
        for it in items {
            let (parent, name) = match it.dest.rsplit_once('/') {
                Some((p, n)) => (if p.is_empty() { "/" } else { p }, n),
                None => ("/", it.dest.as_str()),
            };
            if it.extract {
                let dir = self.mkdir_p(rootfs, &it.dest, owner)?;
                if let Some(src) = &it.src {
                    ferry_oci::unpack::extract_layer(src, &it.src_rel, &dir).map_err(|source| {
                        Error::Image {
                            what: format!(
                                "{}:{}: extracting {}",
                                self.plan.file, step.start_line, it.src_rel
                            ),
                            source: Box::new(source),
                        }
                    })?;
                }
                continue;
            }
            let pdir = self.mkdir_p(rootfs, parent, owner)?;
            if name.is_empty() {
                continue;
            }
            let mut dst = pdir.join(name);
            // `COPY file /existing-dir` copies into the directory, as Docker does.
            if it.kind != Kind::Dir && fs::metadata(&dst).is_ok_and(|m| m.is_dir()) {
                let base = it.src_rel.rsplit('/').next().unwrap_or(&it.src_rel);
                dst = dst.join(base.trim_start_matches("<<"));
            }
            let src_meta = match &it.src {
                Some(s) => Some(fs::symlink_metadata(s).map_err(|source| Error::Io {
                    path: s.clone(),
                    source,
                })?),
                None => None,
            };
            let (uid, gid) = owner.unwrap_or_else(|| match (&src_meta, it.from_context) {
                (Some(m), false) => (m.uid(), m.gid()),
                _ => (0, 0),
            });
            let src_mode = src_meta.as_ref().map(|m| m.mode() & 0o7777);
            let io = |path: &Path, source| Error::Io {
                path: path.to_path_buf(),
                source,
            };
            match it.kind {
                Kind::Dir => {
                    match fs::symlink_metadata(&dst) {
                        Ok(m) if m.is_dir() => {}
                        Ok(_) => {
                            fs::remove_file(&dst).map_err(|e| io(&dst, e))?;
                            fs::create_dir(&dst).map_err(|e| io(&dst, e))?;
                        }
                        Err(_) => fs::create_dir(&dst).map_err(|e| io(&dst, e))?,
                    }
                    std::os::unix::fs::lchown(&dst, Some(uid), Some(gid))
                        .map_err(|e| io(&dst, e))?;
                    let mode = c.chmod.or(src_mode).unwrap_or(0o755);
                    fs::set_permissions(&dst, fs::Permissions::from_mode(mode))
                        .map_err(|e| io(&dst, e))?;
                }
                Kind::File | Kind::Other => {
                    remove_non_dir(&dst)?;
                    match (&it.content, &it.src) {
                        (Some(bytes), _) => fs::write(&dst, bytes).map_err(|e| io(&dst, e))?,
                        (None, Some(s)) => {
                            fs::copy(s, &dst).map_err(|e| io(s, e))?;
                        }
                        (None, None) => {}
                    }
                    std::os::unix::fs::lchown(&dst, Some(uid), Some(gid))
                        .map_err(|e| io(&dst, e))?;
                    let mode = c.chmod.or(src_mode).unwrap_or(0o644);
                    fs::set_permissions(&dst, fs::Permissions::from_mode(mode))
                        .map_err(|e| io(&dst, e))?;
                }
                Kind::Symlink => {
                    remove_non_dir(&dst)?;
                    if let Some(s) = &it.src {
                        let target = fs::read_link(s).map_err(|e| io(s, e))?;
                        std::os::unix::fs::symlink(&target, &dst).map_err(|e| io(&dst, e))?;
                        std::os::unix::fs::lchown(&dst, Some(uid), Some(gid))
                            .map_err(|e| io(&dst, e))?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The source tree [`Builder::source_tree`] prepared (it is async: an image may
/// need pulling; `copy_items` is not).
fn prepared_tree(
    b: &Builder<'_>,
    step: &Step,
    from: &CopySource,
) -> Result<(PathBuf, Vec<ContextEntry>)> {
    let key = match from {
        CopySource::Context => {
            return Ok((b.req.context.clone(), b.context.clone().unwrap_or_default()));
        }
        CopySource::Stage(i) => format!("stage:{i}"),
        CopySource::Image(n) => format!("image:{n}"),
    };
    b.trees
        .get(&key)
        .cloned()
        .ok_or_else(|| b.step_err(step, format!("{key} was not prepared")))
}

/// One thing to copy.
#[derive(Clone, Debug)]
struct Item {
    src: Option<PathBuf>,
    /// Inline (heredoc) content.
    content: Option<Vec<u8>>,
    src_rel: String,
    /// Absolute path in the image.
    dest: String,
    kind: Kind,
    /// ADD of a local archive: unpack into `dest`.
    extract: bool,
    from_context: bool,
}

fn push_dir(
    items: &mut Vec<Item>,
    root: &Path,
    entries: &[ContextEntry],
    dir: &str,
    dest: &str,
    from_context: bool,
) {
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    // The destination directory itself.
    items.push(Item {
        src: None,
        content: None,
        src_rel: format!("{dir}/"),
        dest: format!("{}/", dest.trim_end_matches('/')),
        kind: Kind::Dir,
        extract: false,
        from_context,
    });
    for e in entries.iter().filter(|e| e.path.starts_with(&prefix)) {
        let rel = &e.path[prefix.len()..];
        items.push(Item {
            src: Some(root.join(&e.path)),
            content: None,
            src_rel: e.path.clone(),
            dest: format!("{}/{rel}", dest.trim_end_matches('/')),
            kind: match e.kind {
                EntryKind::Dir => Kind::Dir,
                EntryKind::File => Kind::File,
                EntryKind::Symlink => Kind::Symlink,
            },
            extract: false,
            from_context,
        });
    }
}

/// A hash of what a COPY/ADD reads: paths, kinds, modes, owners, contents.
fn inputs_hash(items: &[Item]) -> Result<String> {
    let mut h = Sha256::new();
    for it in items {
        h.update(
            format!(
                "{}\0{}\0{:?}\0{}\0",
                it.src_rel, it.dest, it.kind, it.extract
            )
            .as_bytes(),
        );
        if let Some(c) = &it.content {
            h.update(hash_hex(c).as_bytes());
        }
        if let Some(s) = &it.src {
            let m = fs::symlink_metadata(s).map_err(|source| Error::Io {
                path: s.clone(),
                source,
            })?;
            h.update(format!("{:o}\0{}\0{}\0", m.mode() & 0o7777, m.uid(), m.gid()).as_bytes());
            if m.file_type().is_symlink() {
                let t = fs::read_link(s).map_err(|source| Error::Io {
                    path: s.clone(),
                    source,
                })?;
                h.update(t.as_os_str().as_encoded_bytes());
            } else if m.is_file() {
                let mut f = fs::File::open(s).map_err(|source| Error::Io {
                    path: s.clone(),
                    source,
                })?;
                let mut fh = Sha256::new();
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = f.read(&mut buf).map_err(|source| Error::Io {
                        path: s.clone(),
                        source,
                    })?;
                    if n == 0 {
                        break;
                    }
                    fh.update(&buf[..n]);
                }
                h.update(fh.finalize());
            }
        }
    }
    Ok(hex::encode(h.finalize()))
}

fn remove_non_dir(p: &Path) -> Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(_) => Ok(()),
    }
    .map_err(|source| Error::Io {
        path: p.to_path_buf(),
        source,
    })
}

/// `--chown=user[:group]` through the image's passwd and group files. Without a
/// group, the gid is the uid, as Docker documents.
fn resolve_chown(rootfs: &Path, spec: &str) -> std::result::Result<(u32, u32), String> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let uid = match u.parse::<u32>() {
        Ok(n) => n,
        Err(_) => {
            ferry_container::user::resolve(
                "chown",
                rootfs,
                &UserSpec {
                    user: Some(u.to_string()),
                    ..UserSpec::default()
                },
            )
            .map_err(|e| format!("--chown={spec}: {e}"))?
            .uid
        }
    };
    let gid = match g {
        None | Some("") => uid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                ferry_container::user::resolve(
                    "chown",
                    rootfs,
                    &UserSpec {
                        user: Some(format!("0:{g}")),
                        ..UserSpec::default()
                    },
                )
                .map_err(|e| format!("--chown={spec}: {e}"))?
                .gid
            }
        },
    };
    Ok((uid, gid))
}

/// Resolves the absolute image path `path` inside `rootfs`, following symlinks of
/// its directories as the image would see them (never out of the root). The last
/// component is not followed.
fn scoped(rootfs: &Path, path: &str) -> Result<PathBuf> {
    let mut todo: std::collections::VecDeque<String> = path
        .split('/')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    let mut cur: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(part) = todo.pop_front() {
        match part.as_str() {
            "." => continue,
            ".." => {
                cur.pop();
                continue;
            }
            _ => {}
        }
        let host = cur
            .iter()
            .fold(rootfs.to_path_buf(), |p, c| p.join(c))
            .join(&part);
        let is_link = fs::symlink_metadata(&host).is_ok_and(|m| m.file_type().is_symlink());
        if is_link && !todo.is_empty() {
            hops += 1;
            if hops > 40 {
                return Err(Error::Io {
                    path: host,
                    source: std::io::Error::other("too many levels of symbolic links"),
                });
            }
            let target = fs::read_link(&host).map_err(|source| Error::Io {
                path: host.clone(),
                source,
            })?;
            let t = target.to_string_lossy();
            if t.starts_with('/') {
                cur.clear();
            }
            for p in t.split('/').filter(|p| !p.is_empty()).rev() {
                todo.push_front(p.to_string());
            }
            continue;
        }
        cur.push(part);
    }
    Ok(cur.iter().fold(rootfs.to_path_buf(), |p, c| p.join(c)))
}

/// Removes the mount points runc created in a root that lacked them.
fn remove_mount_points(rootfs: &Path, before: &layer::Snapshot) {
    for p in MOUNT_POINTS {
        if before.contains_key(*p) {
            continue;
        }
        let host = rootfs.join(p);
        match fs::symlink_metadata(&host) {
            Ok(m) if m.is_dir() => {
                let _ = fs::remove_dir(&host); // only when empty
            }
            Ok(m) if m.is_file() && m.len() == 0 => {
                let _ = fs::remove_file(&host);
            }
            _ => {}
        }
    }
}

/// Copies what the log gained since `offset` to `out`; returns the new offset.
fn pump(log: &Path, offset: u64, out: &mut dyn Write) -> u64 {
    let Ok(mut f) = fs::File::open(log) else {
        return offset;
    };
    if f.seek(SeekFrom::Start(offset)).is_err() {
        return offset;
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let _ = out.write_all(&buf);
    let _ = out.flush();
    offset + buf.len() as u64
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Go's `filepath.Match` over whole paths: `*` and `?` never cross a `/`.
fn glob_match(pattern: &str, path: &str) -> bool {
    let pp: Vec<&str> = pattern.split('/').collect();
    let sp: Vec<&str> = path.split('/').collect();
    pp.len() == sp.len()
        && pp
            .iter()
            .zip(&sp)
            .all(|(p, s)| component_match(p.as_bytes(), s.as_bytes()))
}

fn component_match(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|i| component_match(&p[1..], &s[i..])),
        Some(b'?') => !s.is_empty() && component_match(&p[1..], &s[1..]),
        Some(b'[') => {
            let Some(end) = p.iter().position(|c| *c == b']') else {
                return false;
            };
            let Some(c) = s.first() else {
                return false;
            };
            let mut class = &p[1..end];
            let negate = class.first().is_some_and(|c| *c == b'^' || *c == b'!');
            if negate {
                class = &class[1..];
            }
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= class[i] <= *c && *c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == *c;
                    i += 1;
                }
            }
            hit != negate && component_match(&p[end + 1..], &s[1..])
        }
        Some(b'\\') if p.len() > 1 => s.first() == Some(&p[1]) && component_match(&p[2..], &s[1..]),
        Some(c) => s.first() == Some(c) && component_match(&p[1..], &s[1..]),
    }
}

/// Whether `path` is a tar archive (plain or gzip) that `ADD` unpacks.
fn is_tar(path: &Path) -> bool {
    let Ok(mut f) = fs::File::open(path) else {
        return false;
    };
    let mut head = [0u8; 512];
    let Ok(n) = f.read(&mut head) else {
        return false;
    };
    if n >= 2 && head[..2] == [0x1f, 0x8b] {
        return true;
    }
    n >= 262 && &head[257..262] == b"ustar"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_go() {
        assert!(glob_match("*.txt", "a.txt"));
        assert!(!glob_match("*.txt", "d/a.txt"));
        assert!(glob_match("d/*.txt", "d/a.txt"));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("[a-c]x", "bx"));
        assert!(!glob_match("[^a-c]x", "bx"));
    }

    #[test]
    fn paths_resolve_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("usr/bin")).unwrap();
        std::os::unix::fs::symlink("/usr/bin", t.path().join("bin")).unwrap();
        std::os::unix::fs::symlink("../../..", t.path().join("usr/up")).unwrap();
        assert_eq!(
            scoped(t.path(), "/bin/x").unwrap(),
            t.path().join("usr/bin/x")
        );
        assert_eq!(
            scoped(t.path(), "/usr/up/etc/x").unwrap(),
            t.path().join("etc/x")
        );
        assert_eq!(abs_path("/app", "sub/"), "/app/sub");
        assert_eq!(abs_path("/app", "/x"), "/x");
    }
}
