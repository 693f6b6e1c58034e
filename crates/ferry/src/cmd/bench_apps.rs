//! `ferry bench apps`: many apps from one repository on the embedded runtime — the
//! first sync of all of them, then a steady-state refresh of all (no new commit).
//!
//! Runtime and engine run in this process, as inside `ferry serve`, on a temporary
//! `FERRY_HOME` and a real git repository made here.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use ferry_core::Object;
use ferry_engine::{Engine, EngineConfig};
use ferry_runtime::target::LocalTarget;
use ferry_runtime::{Runtime, RuntimeConfig};
use serde_json::json;

use crate::output;

/// `ferry bench apps`.
#[derive(Args, Debug)]
pub struct AppsBench {
    /// Apps, each from its own path in one repository.
    #[arg(long, default_value_t = 1000)]
    pub apps: usize,
    /// ConfigMaps per app.
    #[arg(long, default_value_t = 10)]
    pub objects: usize,
    /// Timed steady-state refreshes of all apps (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Give up when the first sync of all apps takes longer.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15m")]
    pub sync_timeout: Duration,
}

fn git(dir: &std::path::Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("git")
        .args(["-c", "user.name=bench", "-c", "user.email=bench@localhost"])
        .args(args)
        .current_dir(dir)
        .output()
        .context("running git")?;
    if !out.status.success() {
        bail!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Runs the benchmark.
pub fn run(b: AppsBench) -> anyhow::Result<u8> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(bench(b))
}

async fn bench(b: AppsBench) -> anyhow::Result<u8> {
    let tmp = tempfile::tempdir()?;
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work)?;
    eprintln!(
        "writing {} apps × {} ConfigMaps into a git repository…",
        b.apps, b.objects
    );
    for a in 0..b.apps {
        let dir = work.join(format!("apps/app-{a:04}"));
        std::fs::create_dir_all(&dir)?;
        let docs: Vec<_> = (0..b.objects)
            .map(|i| {
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": format!("app-{a:04}-cm-{i}")},
                       "data": {"app": format!("app-{a:04}"), "index": i.to_string(), "settings": "log: info\nport: 8080\n"}})
            })
            .collect();
        std::fs::write(
            dir.join("config.yaml"),
            ferry_core::parse::to_yaml_stream(docs.iter()),
        )?;
    }
    git(&work, &["init", "-q", "-b", "main"])?;
    git(&work, &["add", "."])?;
    git(&work, &["commit", "-q", "-m", "apps"])?;
    let repo = format!("file://{}", work.display());

    let mut config = RuntimeConfig::new(tmp.path().join("state"));
    config.port_range = (44000, 44999);
    let runtime = Runtime::start(config.clone()).await?;
    let db = runtime
        .cluster
        .db()
        .cloned()
        .context("the runtime has a database")?;
    let target = Arc::new(LocalTarget::new(runtime.clone()));
    let repos = Arc::new(ferry_git::RepoCache::new(config.home.join("repos")));
    let engine_config = EngineConfig {
        reconciliation: Duration::from_secs(3600),
        jitter: Duration::ZERO,
        ..EngineConfig::default()
    };
    let engine = Arc::new(Engine::new(db, target, repos, engine_config)?);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let run = tokio::spawn(engine.clone().run(shutdown.clone()));
    let before = rss_kb();

    let t = Instant::now();
    for a in 0..b.apps {
        let app = Object::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": format!("app-{a:04}")},
            "spec": {
                "project": "default",
                "source": {"repoURL": repo, "path": format!("apps/app-{a:04}"), "targetRevision": "main"},
                "destination": {"name": "local", "namespace": format!("ns-{}", a % 20)},
                "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]}
            }
        }))?;
        engine.create_app_from_object(&app, true)?;
    }
    let deadline = Instant::now() + b.sync_timeout;
    loop {
        let apps = engine.list_apps()?;
        let synced = apps
            .iter()
            .filter(|a| {
                let v = serde_json::to_value(a).unwrap_or_default();
                v["status"]["sync"]["status"] == "Synced"
            })
            .count();
        if synced == b.apps {
            break;
        }
        if Instant::now() > deadline {
            let stuck = apps
                .iter()
                .map(|a| serde_json::to_value(a).unwrap_or_default())
                .find(|v| v["status"]["sync"]["status"] != "Synced")
                .map(|v| serde_json::to_string(&v["status"]).unwrap_or_default())
                .unwrap_or_default();
            bail!(
                "only {synced} of {} apps synced within {:?}; one that is not: {stuck}",
                b.apps,
                b.sync_timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first_sync = t.elapsed();
    let objects = runtime.cluster.count(Some("ConfigMap"));

    let mut times = Vec::new();
    for _ in 0..b.runs.max(1) {
        let t = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for a in 0..b.apps {
            let e = engine.clone();
            set.spawn(async move { e.refresh(&format!("app-{a:04}"), false).await.map(|_| ()) });
        }
        while let Some(r) = set.join_next().await {
            r??;
        }
        times.push(t.elapsed());
    }
    times.sort();
    let refresh = times[times.len() / 2];
    let rss = rss_kb();
    output::emit(&format!(
        "{} apps × {} ConfigMaps from one repository ({objects} objects live)\n  first automated sync of all apps: {:>8.2} s\n  steady-state refresh of all apps (fetch, resolve, render cache, compare), median of {}: {:>8.3} s\n  RSS: {:.1} MB (runtime and engine; {:.1} MB before the apps)\n",
        b.apps,
        b.objects,
        first_sync.as_secs_f64(),
        times.len(),
        refresh.as_secs_f64(),
        rss as f64 / 1024.0,
        before as f64 / 1024.0,
    ))?;
    shutdown.cancel();
    let _ = run.await;
    runtime.down().await;
    Ok(0)
}
