//! `ferry bench build`: Dockerfile builds against buildah, same Dockerfile, same
//! context, same run.
//!
//! The Dockerfile has 10 steps over two stages and needs no registry: it starts `FROM
//! scratch`, copies Debian's static busybox in, installs its applets, writes a few MB
//! in RUN steps so that the layers are real, and a second stage copies the first one's
//! files. Each run builds it cold (empty storage) and then again with nothing changed,
//! with `ferry image build` (this binary, on a temporary `FERRY_HOME`) and with
//! `buildah bud --layers` (vfs storage in a temporary `--root`, chroot isolation).
//! buildah's default, without `--layers` (it caches nothing, so it cannot rebuild
//! from a cache), is timed cold too. Both tools are run as child processes, so each
//! time includes its start-up.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::json;

use crate::output::{self, Format};

/// `ferry bench build`.
#[derive(Args, Debug)]
pub struct BuildBench {
    /// Cold builds and rebuilds per tool (medians are reported); runs alternate the
    /// tools so that other load on the machine falls on both.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// The static busybox copied into the image (Debian's `busybox-static`).
    #[arg(long, default_value = "/bin/busybox")]
    pub busybox: std::path::PathBuf,
    /// Output: table or json.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// Ten steps, two stages; the RUNs write 8 MB that no cache can guess.
const DOCKERFILE: &str = r#"FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENV APP_HOME=/app GREETING=hello
WORKDIR /app
COPY data/ ./data/
RUN dd if=/dev/urandom of=/app/blob-1 bs=1024 count=4096 2>/dev/null && echo "$GREETING" > /app/greeting
RUN dd if=/dev/urandom of=/app/blob-2 bs=1024 count=4096 2>/dev/null && ls -lR /app > /app/listing
FROM scratch
COPY --from=base / /
"#;

/// What a machine without the peer or the rights lacks, or `None`.
fn missing(busybox: &Path) -> Option<String> {
    let mut lack = Vec::new();
    if !is_root() {
        lack.push("root (RUN steps run in containers through runc)".to_string());
    }
    for (tool, pkg) in [("runc", "runc"), ("buildah", "buildah")] {
        if which(tool).is_none() {
            lack.push(format!("{tool} (apt-get install {pkg})"));
        }
    }
    if !busybox.is_file() {
        lack.push(format!(
            "a static busybox at {} (apt-get install busybox-static, or pass --busybox)",
            busybox.display()
        ));
    }
    (!lack.is_empty()).then(|| lack.join(", "))
}

/// Whether this process's effective uid is 0 (from `/proc`, so that the binary's `nix`
/// needs no more features).
pub(crate) fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// The first `tool` on `PATH`.
pub(crate) fn which(tool: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(tool))
            .find(|f| f.is_file())
    })
}

/// Runs the benchmark.
pub fn run(b: BuildBench) -> anyhow::Result<u8> {
    if let Some(what) = missing(&b.busybox) {
        eprintln!("ferry bench build needs {what}");
        return Ok(2);
    }
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let ctx = tmp.path().join("context");
    write_context(&ctx, &b.busybox)?;
    let versions = json!({
        "buildah": version("buildah", &["--version"]),
        "runc": version("runc", &["--version"]),
    });
    let mut t = Times::default();
    for i in 0..b.runs.max(1) {
        eprintln!("run {}/{} …", i + 1, b.runs.max(1));
        // Fresh storage per run, so that every cold build is cold.
        let run_dir = tmp.path().join(format!("run-{i}"));
        let home = run_dir.join("ferry-home");
        std::fs::create_dir_all(&home)?;
        t.ferry_cold.push(ferry_build(&home, &ctx)?);
        t.ferry_rebuild.push(ferry_build(&home, &ctx)?);
        let store = run_dir.join("buildah");
        t.buildah_cold.push(buildah_build(&store, &ctx, true)?);
        t.buildah_rebuild.push(buildah_build(&store, &ctx, true)?);
        let plain = run_dir.join("buildah-nolayers");
        t.buildah_plain_cold
            .push(buildah_build(&plain, &ctx, false)?);
        clean(&run_dir);
    }
    let report = t.report(&versions);
    match b.output {
        Format::Table => output::emit(&t.table(&versions))?,
        f => output::print_data(&report, f)?,
    }
    clean(tmp.path());
    Ok(0)
}

fn write_context(ctx: &Path, busybox: &Path) -> anyhow::Result<()> {
    let data = ctx.join("data");
    std::fs::create_dir_all(&data)?;
    std::fs::copy(busybox, ctx.join("busybox"))
        .with_context(|| format!("copying {}", busybox.display()))?;
    for i in 0..20 {
        let text: String = (0..2000).map(|j| format!("{i}:{j}\n")).collect();
        std::fs::write(data.join(format!("file-{i:02}.txt")), text)?;
    }
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE)?;
    Ok(())
}

/// `ferry image build` of the context on `home`, timed.
fn ferry_build(home: &Path, ctx: &Path) -> anyhow::Result<Duration> {
    let exe = std::env::current_exe().context("finding this executable")?;
    let mut cmd = Command::new(exe);
    cmd.args([
        "image",
        "build",
        "--progress",
        "plain",
        "-t",
        "bench-build:1",
        "-f",
    ])
    .arg(ctx.join("Dockerfile"))
    .arg(ctx)
    .env("FERRY_HOME", home);
    timed("ferry image build", &mut cmd)
}

/// `buildah bud` of the context with its storage under `store`, timed.
fn buildah_build(store: &Path, ctx: &Path, layers: bool) -> anyhow::Result<Duration> {
    let mut cmd = Command::new("buildah");
    cmd.arg("--root")
        .arg(store.join("root"))
        .arg("--runroot")
        .arg(store.join("runroot"))
        .args(["--storage-driver", "vfs", "bud", "--isolation", "chroot"])
        .arg(format!("--layers={layers}"))
        .args(["-t", "bench-build:1", "-f"])
        .arg(ctx.join("Dockerfile"))
        .arg(ctx);
    timed("buildah bud", &mut cmd)
}

fn timed(what: &str, cmd: &mut Command) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("running {what}"))?;
    let took = t.elapsed();
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(took)
}

fn version(tool: &str, args: &[&str]) -> String {
    Command::new(tool)
        .args(args)
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

/// Removes `dir`, first unmounting anything a build may have left mounted under it,
/// so that removing files never reaches through a mount.
pub(crate) fn clean(dir: &Path) {
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return;
    };
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut under: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| Path::new(m).starts_with(&dir))
        .collect();
    // Deepest first.
    under.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in under {
        let _ = Command::new("umount").args(["-l", m]).status();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[derive(Default)]
struct Times {
    ferry_cold: Vec<Duration>,
    ferry_rebuild: Vec<Duration>,
    buildah_cold: Vec<Duration>,
    buildah_rebuild: Vec<Duration>,
    buildah_plain_cold: Vec<Duration>,
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

impl Times {
    fn ratios(&self) -> (f64, f64, f64) {
        let f = |a: &[Duration], b: &[Duration]| median(a).as_secs_f64() / median(b).as_secs_f64();
        (
            f(&self.buildah_cold, &self.ferry_cold),
            f(&self.buildah_plain_cold, &self.ferry_cold),
            f(&self.buildah_rebuild, &self.ferry_rebuild),
        )
    }

    fn report(&self, versions: &serde_json::Value) -> serde_json::Value {
        let (cold, plain, rebuild) = self.ratios();
        let ms = |v: &[Duration]| median(v).as_secs_f64() * 1e3;
        json!({
            "runs": self.ferry_cold.len(),
            "steps": 10,
            "versions": versions,
            "median_ms": {
                "ferry_cold": ms(&self.ferry_cold),
                "ferry_rebuild": ms(&self.ferry_rebuild),
                "buildah_layers_cold": ms(&self.buildah_cold),
                "buildah_layers_rebuild": ms(&self.buildah_rebuild),
                "buildah_no_layers_cold": ms(&self.buildah_plain_cold),
            },
            "ratio_cold_buildah_layers_over_ferry": cold,
            "ratio_cold_buildah_no_layers_over_ferry": plain,
            "ratio_rebuild_buildah_over_ferry": rebuild,
            "target_cold_met": cold >= 1.0,
            "target_rebuild_met": rebuild >= 5.0,
        })
    }

    fn table(&self, versions: &serde_json::Value) -> String {
        let (cold, plain, rebuild) = self.ratios();
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        let rows = vec![
            vec![
                "cold build".to_string(),
                secs(median(&self.ferry_cold)),
                secs(median(&self.buildah_cold)),
                format!("{cold:.2}x"),
                format!("≥ 1x: {}", verdict(cold >= 1.0)),
            ],
            vec![
                "cold build (buildah without --layers)".to_string(),
                secs(median(&self.ferry_cold)),
                secs(median(&self.buildah_plain_cold)),
                format!("{plain:.2}x"),
                String::new(),
            ],
            vec![
                "rebuild, nothing changed".to_string(),
                secs(median(&self.ferry_rebuild)),
                secs(median(&self.buildah_rebuild)),
                format!("{rebuild:.1}x"),
                format!("≥ 5x: {}", verdict(rebuild >= 5.0)),
            ],
        ];
        format!(
            "10-step two-stage Dockerfile (FROM scratch + static busybox, 8 MB written by RUN), median of {} runs\n{}\nbuildah: {}\nrunc: {}\n",
            self.ferry_cold.len(),
            output::table(
                &["build", "ferry", "buildah", "buildah/ferry", "target"],
                &rows
            ),
            versions["buildah"].as_str().unwrap_or(""),
            versions["runc"].as_str().unwrap_or(""),
        )
    }
}
