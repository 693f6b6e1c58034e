//! `ferry bench containers`: pods as runc containers through a real daemon.
//!
//! A `ferry serve --isolation container` (a child of this process, on a temporary
//! `FERRY_HOME`) runs a busybox image built here with `ferry image build` (`FROM
//! scratch`, Debian's static busybox, its applets installed). Three figures:
//!
//! - apply → Ready of a Pod whose process is ready at once (`httpd -f -p $PORT`), the
//!   image already unpacked, with a `tcpSocket` readiness probe and without a probe
//!   (Ready once running); the time runs from the `POST /api/v1/apply` that `ferry
//!   apply` makes to the first `GET` that sees the Ready condition (polled every ms);
//! - the same server as a bare `runc run -d` of an equivalent bundle (`runc spec`, the
//!   same busybox, the host's network as ferry's containers have), from the start of
//!   `runc` to the port answering: ferry's overhead is the ratio of the two;
//! - the daemon's resident memory with N containers running, and apart from it the
//!   containers' own processes (each has a `sh` supervisor, a foreground `runc` and
//!   the workload): RSS and PSS (shared pages split among their users).
//!
//! The daemon is brought down (which stops and deletes its containers) and anything
//! runc still lists under the temporary home is killed and deleted before returning.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::{Value, json};

use super::bench_build::which;
use crate::output::{self, Format};

/// `ferry bench containers`.
#[derive(Args, Debug)]
pub struct ContainersBench {
    /// Pods applied one at a time for each start-up figure (the median is reported).
    #[arg(long, default_value_t = 20)]
    pub samples: usize,
    /// Containers running together for the memory figure.
    #[arg(long, default_value_t = 50)]
    pub containers: usize,
    /// The static busybox the image is made of (Debian's `busybox-static`).
    #[arg(long, default_value = "/bin/busybox")]
    pub busybox: PathBuf,
    /// Give up on any one wait after this long.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "120s")]
    pub timeout: Duration,
    /// Output: table or json.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

const IMAGE: &str = "bench-busybox:1";
const NS: &str = "default";
/// Between two polls of the daemon or of a port.
const POLL: Duration = Duration::from_millis(1);

const DOCKERFILE: &str = r#"FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
"#;

fn missing(busybox: &Path) -> Option<String> {
    let mut lack = Vec::new();
    if !super::bench_build::is_root() {
        lack.push("root (containers run through runc)".to_string());
    }
    if which("runc").is_none() {
        lack.push("runc (apt-get install runc)".to_string());
    }
    if !busybox.is_file() {
        lack.push(format!(
            "a static busybox at {} (apt-get install busybox-static, or pass --busybox)",
            busybox.display()
        ));
    }
    (!lack.is_empty()).then(|| lack.join(", "))
}

/// Runs the benchmark.
pub fn run(b: ContainersBench) -> anyhow::Result<u8> {
    if let Some(what) = missing(&b.busybox) {
        eprintln!("ferry bench containers needs {what}");
        return Ok(2);
    }
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let result = bench(&b, tmp.path());
    super::bench_build::clean(tmp.path());
    result
}

fn bench(b: &ContainersBench, tmp: &Path) -> anyhow::Result<u8> {
    let home = tmp.join("home");
    let ctx = tmp.join("context");
    std::fs::create_dir_all(&home)?;
    std::fs::create_dir_all(&ctx)?;
    std::fs::copy(&b.busybox, ctx.join("busybox"))
        .with_context(|| format!("copying {}", b.busybox.display()))?;
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE)?;
    eprintln!("building {IMAGE} …");
    let out = Command::new(std::env::current_exe().context("finding this executable")?)
        .args(["image", "build", "--progress", "plain", "-t", IMAGE])
        .arg(&ctx)
        .env("FERRY_HOME", &home)
        .stdin(Stdio::null())
        .output()
        .context("running ferry image build")?;
    if !out.status.success() {
        bail!(
            "ferry image build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The bare runc peer first, while nothing else of this bench runs.
    eprintln!("timing bare runc run -d, {} samples …", b.samples);
    let bare = bare_runc(tmp, &b.busybox, b.samples.max(1), b.timeout)?;

    eprintln!("starting ferry serve --isolation container …");
    let daemon = Daemon::start(&home, b.timeout)?;
    let idle_rss = rss_kb(daemon.pid)?;
    // Once, uncounted: the first container unpacks the image.
    start_one(&daemon, "warm", true, b.timeout)?;
    delete_one(&daemon, "warm", b.timeout)?;
    let mut probed = Vec::new();
    let mut unprobed = Vec::new();
    eprintln!("timing apply → Ready, {} samples each …", b.samples);
    for i in 0..b.samples.max(1) {
        let name = format!("probed-{i}");
        probed.push(start_one(&daemon, &name, true, b.timeout)?);
        delete_one(&daemon, &name, b.timeout)?;
        let name = format!("bare-{i}");
        unprobed.push(start_one(&daemon, &name, false, b.timeout)?);
        delete_one(&daemon, &name, b.timeout)?;
    }

    eprintln!("starting {} containers …", b.containers);
    let items: Vec<Value> = (0..b.containers)
        .map(|i| pod(&format!("mem-{i}"), true))
        .collect();
    daemon.apply(items)?;
    let deadline = Instant::now() + b.timeout;
    let ready_count = loop {
        let list = daemon.get(&format!("/api/v1/namespaces/{NS}/pods"))?;
        let n = list["items"]
            .as_array()
            .map(|items| items.iter().filter(|p| ready(p)).count())
            .unwrap_or(0);
        if n >= b.containers {
            break n;
        }
        if Instant::now() >= deadline {
            bail!(
                "only {n} of {} pods Ready within {:?}; the daemon's log ends:\n{}",
                b.containers,
                b.timeout,
                daemon.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Let the probes run a few periods before reading memory.
    std::thread::sleep(Duration::from_secs(3));
    let daemon_rss = rss_kb(daemon.pid)?;
    let procs = descendants(daemon.pid);
    let mut groups: std::collections::BTreeMap<&str, (usize, u64, u64)> = Default::default();
    for p in &procs {
        let group = match p.comm.as_str() {
            "sh" => "supervisors (sh)",
            "runc" => "runc (foreground, one per container)",
            _ => "workloads",
        };
        let e = groups.entry(group).or_default();
        e.0 += 1;
        e.1 += p.rss_kb;
        e.2 += p.pss_kb;
    }
    drop(daemon);
    cleanup_runc(&home);

    let report = Report {
        samples: b.samples.max(1),
        probed: Stats::of(probed),
        unprobed: Stats::of(unprobed),
        bare: Stats::of(bare),
        containers: ready_count,
        idle_rss_kb: idle_rss,
        daemon_rss_kb: daemon_rss,
        groups: groups
            .into_iter()
            .map(|(k, (n, rss, pss))| (k.to_string(), n, rss, pss))
            .collect(),
        runc_version: version_line("runc"),
    };
    match b.output {
        Format::Table => output::emit(&report.table())?,
        f => output::print_data(&report.json(), f)?,
    }
    Ok(0)
}

/// A Pod of the busybox image serving on its `PORT`; with `probe`, a `tcpSocket`
/// readiness probe (the kubelet runs the first one as the container starts).
fn pod(name: &str, probe: bool) -> Value {
    let mut c = json!({
        "name": "web", "image": IMAGE,
        "command": ["/bin/httpd", "-f", "-p", "$(PORT)", "-h", "/"],
        "ports": [{"containerPort": 8080}],
    });
    if probe {
        c["readinessProbe"] = json!({"tcpSocket": {"port": 8080}, "periodSeconds": 1});
    }
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": "bench"}},
        // httpd is the container's PID 1 and ignores SIGTERM: do not wait 30 s for it.
        "spec": {"terminationGracePeriodSeconds": 0, "containers": [c]}
    })
}

fn ready(p: &Value) -> bool {
    p.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Applies one pod and times it to Ready.
fn start_one(d: &Daemon, name: &str, probe: bool, timeout: Duration) -> anyhow::Result<Duration> {
    let path = format!("/api/v1/namespaces/{NS}/pods/{name}");
    let t = Instant::now();
    d.apply(vec![pod(name, probe)])?;
    loop {
        if let Some(p) = d.get_opt(&path)?
            && ready(&p)
        {
            return Ok(t.elapsed());
        }
        if t.elapsed() >= timeout {
            bail!(
                "pod {name} not Ready within {timeout:?}; the daemon's log ends:\n{}",
                d.log_tail()
            );
        }
        std::thread::sleep(POLL);
    }
}

/// Deletes one pod and waits until it is gone (its container stopped and deleted).
fn delete_one(d: &Daemon, name: &str, timeout: Duration) -> anyhow::Result<()> {
    let path = format!("/api/v1/namespaces/{NS}/pods/{name}");
    d.request("DELETE", &path, None)?;
    let until = Instant::now() + timeout;
    while d.get_opt(&path)?.is_some() {
        if Instant::now() >= until {
            bail!("pod {name} still there {timeout:?} after its deletion");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// `runc run -d` of a bundle made with `runc spec` and the same busybox, the host's
/// network (as ferry's containers have), timed from the start of runc to the port
/// answering.
fn bare_runc(
    tmp: &Path,
    busybox: &Path,
    samples: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<Duration>> {
    let bundle = tmp.join("bare-bundle");
    let state = tmp.join("bare-state");
    std::fs::create_dir_all(bundle.join("rootfs/bin"))?;
    std::fs::create_dir_all(&state)?;
    std::fs::copy(busybox, bundle.join("rootfs/bin/busybox"))?;
    let spec = Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(&bundle)
        .output()
        .context("running runc spec")?;
    if !spec.status.success() {
        bail!("runc spec: {}", String::from_utf8_lossy(&spec.stderr));
    }
    let port = free_port()?;
    let config_path = bundle.join("config.json");
    let mut config: Value = serde_json::from_slice(&std::fs::read(&config_path)?)?;
    config["process"]["terminal"] = json!(false);
    config["process"]["args"] = json!([
        "/bin/busybox",
        "httpd",
        "-f",
        "-p",
        port.to_string(),
        "-h",
        "/"
    ]);
    // Raising RLIMIT_NOFILE fails on these hosts' runc; ferry's bundles leave it out.
    if let Some(p) = config["process"].as_object_mut() {
        p.remove("rlimits");
    }
    if let Some(ns) = config
        .pointer_mut("/linux/namespaces")
        .and_then(Value::as_array_mut)
    {
        ns.retain(|n| n["type"] != "network");
    }
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let runc = |args: &[&str]| {
        Command::new("runc")
            .arg("--root")
            .arg(&state)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
    };
    let mut times = Vec::new();
    // One uncounted run first, as ferry gets a warm-up pod.
    for i in 0..=samples {
        let id = format!("ferry-bench-bare-{}-{i}", std::process::id());
        let t = Instant::now();
        let out = Command::new("runc")
            .arg("--root")
            .arg(&state)
            .args(["run", "-d", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // The detached container inherits runc's stdio: a pipe here would never
            // reach EOF while it runs.
            .stderr(Stdio::null())
            .status()
            .context("running runc run -d")?;
        if !out.success() {
            bail!("runc run -d {id} failed ({out}); try it by hand with the bundle of `runc spec`");
        }
        let answered = loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                break Some(t.elapsed());
            }
            if t.elapsed() >= timeout {
                break None;
            }
            std::thread::sleep(POLL);
        };
        let _ = runc(&["kill", &id, "KILL"]);
        let _ = runc(&["delete", "-f", &id]);
        let Some(took) = answered else {
            bail!("the bare runc container {id} did not answer on {addr} within {timeout:?}");
        };
        if i > 0 {
            times.push(took);
        }
    }
    Ok(times)
}

fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// Kills and deletes whatever runc still lists under the bench's home (nothing, when
/// `ferry down` did its work).
fn cleanup_runc(home: &Path) {
    let state = home.join("runc/state");
    let Ok(out) = Command::new("runc")
        .arg("--root")
        .arg(&state)
        .args(["list", "-q"])
        .output()
    else {
        return;
    };
    for id in String::from_utf8_lossy(&out.stdout).lines() {
        eprintln!("container {id} outlived ferry down; killing it");
        let _ = Command::new("runc")
            .arg("--root")
            .arg(&state)
            .args(["delete", "-f", id])
            .output();
    }
}

fn version_line(tool: &str) -> String {
    Command::new(tool)
        .arg("--version")
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default()
}

/// A field of `/proc/PID/status` or `smaps_rollup`, in kB.
fn proc_kb(file: &str, field: &str) -> Option<u64> {
    std::fs::read_to_string(file)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn rss_kb(pid: u32) -> anyhow::Result<u64> {
    proc_kb(&format!("/proc/{pid}/status"), "VmRSS:")
        .with_context(|| format!("reading the memory of process {pid}"))
}

struct Proc {
    comm: String,
    rss_kb: u64,
    pss_kb: u64,
}

/// Every process below `root` (not itself), with its memory.
fn descendants(root: u32) -> Vec<Proc> {
    let mut parent = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // The command name is in parentheses and may hold spaces.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if let Some(ppid) = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok())
        {
            parent.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parent.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found
        .into_iter()
        .skip(1)
        .map(|pid| Proc {
            comm: std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .unwrap_or_default()
                .trim()
                .to_string(),
            rss_kb: proc_kb(&format!("/proc/{pid}/status"), "VmRSS:").unwrap_or(0),
            pss_kb: proc_kb(&format!("/proc/{pid}/smaps_rollup"), "Pss:").unwrap_or(0),
        })
        .collect()
}

struct Stats {
    median: Duration,
    min: Duration,
    max: Duration,
}

impl Stats {
    fn of(mut v: Vec<Duration>) -> Stats {
        v.sort();
        Stats {
            median: v[v.len() / 2],
            min: v[0],
            max: v[v.len() - 1],
        }
    }

    fn json(&self) -> Value {
        json!({
            "median_ms": self.median.as_secs_f64() * 1e3,
            "min_ms": self.min.as_secs_f64() * 1e3,
            "max_ms": self.max.as_secs_f64() * 1e3,
        })
    }

    fn cells(&self) -> Vec<String> {
        [self.median, self.min, self.max]
            .iter()
            .map(|d| format!("{:.1} ms", d.as_secs_f64() * 1e3))
            .collect()
    }
}

struct Report {
    samples: usize,
    probed: Stats,
    unprobed: Stats,
    bare: Stats,
    containers: usize,
    idle_rss_kb: u64,
    daemon_rss_kb: u64,
    /// (group, processes, RSS kB, PSS kB).
    groups: Vec<(String, usize, u64, u64)>,
    runc_version: String,
}

const START_TARGET: Duration = Duration::from_millis(150);
const RSS_TARGET_KB: u64 = 40 * 1024;

impl Report {
    fn overhead(&self, s: &Stats) -> f64 {
        s.median.as_secs_f64() / self.bare.median.as_secs_f64()
    }

    fn json(&self) -> Value {
        json!({
            "samples": self.samples,
            "apply_to_ready_tcp_probe": self.probed.json(),
            "apply_to_ready_no_probe": self.unprobed.json(),
            "bare_runc_run_to_answering": self.bare.json(),
            "ratio_probe_over_bare_runc": self.overhead(&self.probed),
            "ratio_no_probe_over_bare_runc": self.overhead(&self.unprobed),
            "target_start_met": self.probed.median <= START_TARGET,
            "containers": self.containers,
            "daemon_rss_idle_kb": self.idle_rss_kb,
            "daemon_rss_kb": self.daemon_rss_kb,
            "target_rss_met": self.daemon_rss_kb <= RSS_TARGET_KB,
            "container_processes": self.groups.iter().map(|(g, n, rss, pss)| json!({
                "group": g, "processes": n, "rss_kb": rss, "pss_kb": pss,
            })).collect::<Vec<_>>(),
            "runc": self.runc_version,
        })
    }

    fn table(&self) -> String {
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        let start = |what: &str, s: &Stats, ratio: String, target: String| {
            let mut row = vec![what.to_string()];
            row.extend(s.cells());
            row.push(ratio);
            row.push(target);
            row
        };
        let rows = vec![
            start(
                "ferry: apply → Ready (tcpSocket probe)",
                &self.probed,
                format!("{:.2}x", self.overhead(&self.probed)),
                format!("≤ 150 ms: {}", verdict(self.probed.median <= START_TARGET)),
            ),
            start(
                "ferry: apply → Ready (no probe)",
                &self.unprobed,
                format!("{:.2}x", self.overhead(&self.unprobed)),
                String::new(),
            ),
            start(
                "bare runc run -d → port answers",
                &self.bare,
                "1x".into(),
                String::new(),
            ),
        ];
        let mut out = format!(
            "container start, busybox httpd (image unpacked), {} samples each\n{}\n",
            self.samples,
            output::table(&["", "median", "min", "max", "vs runc", "target"], &rows)
        );
        let mb = |kb: u64| format!("{:.1} MB", kb as f64 / 1024.0);
        let mut mem = vec![vec![
            "ferry serve (the daemon)".to_string(),
            "1".to_string(),
            mb(self.daemon_rss_kb),
            String::new(),
            format!("≤ 40 MB: {}", verdict(self.daemon_rss_kb <= RSS_TARGET_KB)),
        ]];
        for (g, n, rss, pss) in &self.groups {
            mem.push(vec![
                g.clone(),
                n.to_string(),
                mb(*rss),
                mb(*pss),
                String::new(),
            ]);
        }
        out.push_str(&format!(
            "memory with {} running containers (daemon idle before them: {})\n{}\nrunc: {}\n",
            self.containers,
            mb(self.idle_rss_kb),
            output::table(&["", "processes", "RSS", "PSS", "target"], &mem),
            self.runc_version
        ));
        out
    }
}

/// `ferry serve --isolation container` on `home`, a child of this process. Dropping
/// it brings it down (`POST /api/v1/down`), which stops and deletes its containers.
struct Daemon {
    child: Option<Child>,
    pid: u32,
    log: PathBuf,
    addr: SocketAddr,
    token: String,
}

impl Daemon {
    fn start(home: &Path, timeout: Duration) -> anyhow::Result<Self> {
        let log = home.join("serve.log");
        let child = Command::new(std::env::current_exe().context("finding this executable")?)
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--reconciliation",
                "600s",
                "--isolation",
                "container",
            ])
            .env("FERRY_HOME", home)
            .env("RUST_LOG", "warn")
            .env_remove("FERRY_SERVER")
            .env_remove("FERRY_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(&log)
                    .with_context(|| format!("creating {}", log.display()))?,
            )
            .spawn()
            .context("starting ferry serve")?;
        let pid = child.id();
        let mut d = Daemon {
            child: Some(child),
            pid,
            log,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: String::new(),
        };
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(info) = ferry_server::daemon::read_info(home)
                && info.pid == pid
                && let Ok(addr) = info.addr.parse()
            {
                // Written before daemon.json.
                d.token = ferry_server::auth::read_token(home)
                    .context("the daemon started but left no API token")?;
                d.addr = addr;
                return Ok(d);
            }
            if let Some(c) = d.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                bail!("ferry serve exited ({status}):\n{}", d.log_tail());
            }
            if Instant::now() >= deadline {
                bail!(
                    "ferry serve did not start within {timeout:?}:\n{}",
                    d.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> anyhow::Result<(u16, String)> {
        http(
            self.addr,
            method,
            path,
            body,
            &self.token,
            Duration::from_secs(30),
        )
        .with_context(|| {
            format!(
                "no answer from the daemon to {method} {path}; its log ends:\n{}",
                self.log_tail()
            )
        })
    }

    /// What `ferry apply` sends: a List to `/api/v1/apply`.
    fn apply(&self, items: Vec<Value>) -> anyhow::Result<()> {
        let body = json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string();
        let (code, text) = self.request(
            "POST",
            "/api/v1/apply?fieldManager=ferry&force=false&dryRun=false",
            Some(&body),
        )?;
        if !(200..300).contains(&code) {
            bail!("apply: the daemon answered {code}: {}", text.trim());
        }
        Ok(())
    }

    fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.get_opt(path)?
            .with_context(|| format!("GET {path}: not found"))
    }

    fn get_opt(&self, path: &str) -> anyhow::Result<Option<Value>> {
        let (code, text) = self.request("GET", path, None)?;
        match code {
            200 => Ok(Some(
                serde_json::from_str(&text).with_context(|| format!("GET {path}: not JSON"))?,
            )),
            404 => Ok(None),
            _ => bail!("GET {path}: the daemon answered {code}: {}", text.trim()),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(None)) {
            let _ = self.request("POST", "/api/v1/down", Some("{}"));
            let deadline = Instant::now() + Duration::from_secs(60);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// One HTTP/1.1 request with every step bounded by `timeout`.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: &str,
    timeout: Duration,
) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    s.set_nodelay(true).ok()?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_string()
    };
    Some((code, body))
}

fn dechunk(mut rest: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let n = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if n == 0 {
            return Some(out);
        }
        out.push_str(after.get(..n)?);
        rest = after.get(n..)?.strip_prefix("\r\n")?;
    }
}
