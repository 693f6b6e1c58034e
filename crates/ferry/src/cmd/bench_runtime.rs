//! `ferry bench runtime`: apply-to-Ready latency and the runtime's memory with many pods.
//!
//! The runtime runs in this process (as it does inside `ferry serve`), against a
//! temporary `FERRY_HOME`, with real processes: a tiny Python HTTP server from an image
//! built into the temporary store, ready as soon as it listens.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use ferry_core::Object;
use ferry_runtime::{ApplyOptions, Runtime, RuntimeConfig};
use serde_json::{Value, json};

use crate::output;

/// `ferry bench runtime`.
#[derive(Args, Debug)]
pub struct RuntimeBench {
    /// Pods applied one at a time to time apply → Ready (the median is reported).
    #[arg(long, default_value_t = 21)]
    pub samples: usize,
    /// Pods running together for the memory figure.
    #[arg(long, default_value_t = 50)]
    pub pods: usize,
    /// Services in front of them.
    #[arg(long, default_value_t = 10)]
    pub services: usize,
}

const SERVER: &str = r#"
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

/// A pod of the bench image; with `probe`, a TCP readiness probe every second,
/// without, Ready as soon as its process runs (Kubernetes' rule for probe-less pods).
fn pod(name: &str, app: &str, probe: bool) -> anyhow::Result<Object> {
    let mut container =
        json!({"name": "web", "image": "bench:1", "ports": [{"containerPort": 8080}]});
    if probe {
        container["readinessProbe"] = json!({"tcpSocket": {"port": 8080}, "periodSeconds": 1});
    }
    Ok(Object::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "bench", "labels": {"app": app}},
        "spec": {"containers": [container]}
    }))?)
}

fn ready(o: &Object) -> bool {
    o.value()
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Resident memory of this process in kB.
fn rss_kb() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("VmRSS not found in /proc/self/status")
}

async fn wait_ready(
    rt: &Runtime,
    key: &ferry_core::ObjectKey,
    deadline: Duration,
) -> anyhow::Result<()> {
    let mut changed = rt.cluster.changed();
    let until = Instant::now() + deadline;
    loop {
        if rt.cluster.get(key).is_some_and(|o| ready(&o)) {
            return Ok(());
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("{key} not Ready within {deadline:?}");
        }
        let _ = tokio::time::timeout(left, changed.changed()).await;
    }
}

/// Runs the benchmark.
pub fn run(b: RuntimeBench) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(bench(b))
}

async fn bench(b: RuntimeBench) -> anyhow::Result<u8> {
    let home = tempfile::tempdir()?;
    let app = home.path().join("app");
    std::fs::create_dir_all(&app)?;
    std::fs::write(app.join("server.py"), SERVER)?;
    let mut config = RuntimeConfig::new(home.path().join("state"));
    config.port_range = (41000, 43999);
    std::fs::create_dir_all(config.images_dir())?;
    let store = ferry_oci::Store::open(config.images_dir())?;
    ferry_oci::build(
        &store,
        &ferry_oci::BuildOptions {
            context: app,
            tag: "bench:1".into(),
            cmd: Some(vec!["python3".into(), "server.py".into()]),
            ..Default::default()
        },
    )?;
    let baseline = rss_kb()?;
    let runtime = Runtime::start(config).await?;
    let opts = ApplyOptions::default();

    // Apply → Ready, one pod at a time (the image is unpacked by the first one).
    let warm = pod("warm", "warm", false)?;
    runtime.apply(&warm, &opts)?;
    wait_ready(
        &runtime,
        &ferry_runtime::Cluster::canonical_key(&warm),
        Duration::from_secs(30),
    )
    .await?;
    let mut times = Vec::new();
    for i in 0..b.samples {
        let p = pod(&format!("sample-{i}"), "sample", false)?;
        let key = ferry_runtime::Cluster::canonical_key(&p);
        let t = Instant::now();
        runtime.apply(&p, &opts)?;
        wait_ready(&runtime, &key, Duration::from_secs(30)).await?;
        times.push(t.elapsed());
        runtime
            .cluster
            .delete(&key, ferry_runtime::Propagation::Background)?;
    }
    times.sort();
    let median = times[times.len() / 2];

    // Memory with many pods and Services.
    for i in 0..b.pods {
        runtime.apply(
            &pod(
                &format!("p-{i}"),
                &format!("app-{}", i % b.services.max(1)),
                true,
            )?,
            &opts,
        )?;
    }
    for s in 0..b.services {
        let svc = Object::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": format!("app-{s}"), "namespace": "bench"},
            "spec": {"selector": {"app": format!("app-{s}")}, "ports": [{"name": "http", "port": 8080, "targetPort": 8080}]}
        }))?;
        runtime.apply(&svc, &opts)?;
    }
    for i in 0..b.pods {
        let key = ferry_core::ObjectKey::new("", "Pod", "bench", format!("p-{i}"));
        wait_ready(&runtime, &key, Duration::from_secs(120)).await?;
    }
    // Let probes and proxies run a few periods before reading memory.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss = rss_kb()?;
    let running = runtime
        .cluster
        .list(Some("Pod"), Some("bench"))
        .iter()
        .filter(|p| ready(p))
        .count();
    output::emit(&format!(
        "apply → Ready, pod ready at once (image unpacked), {} samples:\n  median {:.1} ms   min {:.1} ms   max {:.1} ms\n",
        times.len(),
        median.as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
    ))?;
    output::emit(&format!(
        "runtime memory with {running} running pods and {} Services:\n  RSS {:.1} MB (process before the runtime started: {:.1} MB)\n",
        b.services,
        rss as f64 / 1024.0,
        baseline as f64 / 1024.0,
    ))?;
    runtime.down().await;
    Ok(0)
}
