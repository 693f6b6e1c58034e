//! `ferry bench …`: the performance figures of docs/benchmarks.md, measured against a
//! peer in the same run where one exists.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::output;
use clap::{Args, Subcommand};
use ferry_core::{Object, diff, health, parse};
use serde_json::{Value, json};

/// Benchmarks.
#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// Render a plain directory of generated objects; compare with `kubectl kustomize` of the same files.
    Render(RenderBench),
    /// Parse, normalise + diff, and judge the health of generated live objects.
    Core(CoreBench),
    /// Embedded runtime: apply → Ready latency, and memory with many pods and Services.
    Runtime(super::bench_runtime::RuntimeBench),
    /// GitOps engine: first sync and steady-state refresh of many apps from one repository.
    Apps(super::bench_apps::AppsBench),
    /// GitOps end to end: a `git push` to a hooked bare repository → the app Synced, and
    /// → Healthy after a rolling update of the quickstart, against a real `ferry serve`.
    Push(super::bench_push::PushBench),
    /// Dockerfile builds (cold, and a rebuild with nothing changed) against buildah on
    /// the same Dockerfile and context.
    Build(super::bench_build::BuildBench),
    /// Pods as runc containers: apply → Ready against a bare `runc run`, and the
    /// daemon's memory with many containers running.
    Containers(super::bench_containers::ContainersBench),
}

/// `ferry bench render`.
#[derive(Args, Debug)]
pub struct RenderBench {
    /// Objects in all (a third each Deployments, Services, ConfigMaps).
    #[arg(long, default_value_t = 5000)]
    pub objects: usize,
    /// Files they are spread over.
    #[arg(long, default_value_t = 500)]
    pub files: usize,
    /// Timed runs of ferry's render (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Skip the peer (kubectl kustomize), e.g. when kubectl is not installed.
    #[arg(long)]
    pub no_peer: bool,
}

/// `ferry bench core`.
#[derive(Args, Debug)]
pub struct CoreBench {
    /// Desired/live pairs and live objects.
    #[arg(long, default_value_t = 10_000)]
    pub objects: usize,
    /// Timed runs (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
}

/// Runs a benchmark.
pub fn run(cmd: BenchCmd) -> anyhow::Result<u8> {
    match cmd {
        BenchCmd::Render(b) => render(b),
        BenchCmd::Core(b) => core(b),
        BenchCmd::Runtime(b) => super::bench_runtime::run(b),
        BenchCmd::Apps(b) => super::bench_apps::run(b),
        BenchCmd::Push(b) => super::bench_push::run(b),
        BenchCmd::Build(b) => super::bench_build::run(b),
        BenchCmd::Containers(b) => super::bench_containers::run(b),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> anyhow::Result<T>) -> anyhow::Result<(Duration, T)> {
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let out = f()?;
        times.push(t.elapsed());
        last = Some(out);
    }
    Ok((median(times), last.expect("at least one run")))
}

/// The i-th generated Deployment, Service or ConfigMap as it sits in Git.
fn desired(i: usize) -> Value {
    let name = format!("app-{i}");
    match i % 3 {
        0 => json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "bench", "labels": {"app": name, "tier": "web"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{
                        "name": "web", "image": format!("registry.local/web:{}", i % 7),
                        "ports": [{"containerPort": 8080}],
                        "env": [{"name": "GREETING", "value": "hello"}, {"name": "INDEX", "value": i.to_string()}],
                        "readinessProbe": {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 5},
                        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}
                    }]}
                }
            }
        }),
        1 => json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "bench", "labels": {"app": name}},
            "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
        }),
        _ => json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "bench"},
            "data": {"greeting": "hello", "index": i.to_string(), "config.yaml": "log: info\nport: 8080\n"}
        }),
    }
}

/// The same object as an API server returns it: defaults, status, managedFields.
fn live(i: usize) -> Value {
    let mut v = desired(i);
    let meta = &mut v["metadata"];
    meta["uid"] = json!(format!("00000000-0000-0000-0000-{i:012}"));
    meta["resourceVersion"] = json!((1000 + i).to_string());
    meta["creationTimestamp"] = json!("2026-11-01T10:00:00Z");
    meta["generation"] = json!(1);
    meta["managedFields"] = json!([{"manager": "ferry", "operation": "Apply", "apiVersion": "v1",
        "time": "2026-11-01T10:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {}}}}]);
    match i % 3 {
        0 => {
            v["spec"]["revisionHistoryLimit"] = json!(10);
            v["spec"]["progressDeadlineSeconds"] = json!(600);
            v["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}});
            let pod = &mut v["spec"]["template"]["spec"];
            pod["restartPolicy"] = json!("Always");
            pod["dnsPolicy"] = json!("ClusterFirst");
            pod["schedulerName"] = json!("default-scheduler");
            pod["terminationGracePeriodSeconds"] = json!(30);
            pod["securityContext"] = json!({});
            let c = &mut pod["containers"][0];
            c["imagePullPolicy"] = json!("IfNotPresent");
            c["terminationMessagePath"] = json!("/dev/termination-log");
            c["terminationMessagePolicy"] = json!("File");
            c["ports"][0]["protocol"] = json!("TCP");
            v["status"] = json!({
                "observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2,
                "conditions": [
                    {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."},
                    {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": "ReplicaSet has successfully progressed."}
                ]
            });
            // Every tenth Deployment drifted: someone scaled it by hand.
            if i.is_multiple_of(10) {
                v["spec"]["replicas"] = json!(5);
            }
        }
        1 => {
            v["spec"]["clusterIP"] = json!(format!("10.96.{}.{}", (i / 250) % 250, i % 250));
            v["spec"]["clusterIPs"] = json!([v["spec"]["clusterIP"].clone()]);
            v["spec"]["type"] = json!("ClusterIP");
            v["spec"]["sessionAffinity"] = json!("None");
            v["spec"]["ipFamilies"] = json!(["IPv4"]);
            v["spec"]["ipFamilyPolicy"] = json!("SingleStack");
            v["spec"]["internalTrafficPolicy"] = json!("Cluster");
            v["spec"]["ports"][0]["protocol"] = json!("TCP");
            v["status"] = json!({"loadBalancer": {}});
        }
        _ => {}
    }
    v
}

fn write_files(dir: &Path, objects: usize, files: usize) -> anyhow::Result<Vec<String>> {
    let per_file = objects.div_ceil(files.max(1));
    let mut names = Vec::new();
    for f in 0..files {
        let start = f * per_file;
        if start >= objects {
            break;
        }
        let end = (start + per_file).min(objects);
        let docs: Vec<Value> = (start..end).map(desired).collect();
        let name = format!("res-{f:04}.yaml");
        std::fs::write(dir.join(&name), parse::to_yaml_stream(docs.iter()))?;
        names.push(name);
    }
    Ok(names)
}

fn render(b: RenderBench) -> anyhow::Result<u8> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("plain");
    std::fs::create_dir_all(&dir)?;
    eprintln!(
        "generating {} objects in {} files under {}",
        b.objects,
        b.files,
        dir.display()
    );
    let names = write_files(&dir, b.objects, b.files)?;
    let opts = ferry_render::RenderOptions {
        format: ferry_render::Format::Plain,
        ..Default::default()
    };
    let (ferry_t, rendered) = time(b.runs, || Ok(ferry_render::render(&dir, &opts)?))?;
    let mut out = String::new();
    writeln!(
        out,
        "render of {} objects in {} files (plain directory)",
        rendered.objects.len(),
        names.len()
    )?;
    writeln!(
        out,
        "  ferry render (median of {}): {:>9.3} s",
        b.runs,
        ferry_t.as_secs_f64()
    )?;
    if !b.no_peer {
        let kdir = tmp.path().join("kustomize");
        std::fs::create_dir_all(&kdir)?;
        for n in &names {
            std::fs::copy(dir.join(n), kdir.join(n))?;
        }
        let kust = json!({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": names});
        std::fs::write(kdir.join("kustomization.yaml"), parse::to_yaml(&kust))?;
        eprintln!("running kubectl kustomize on the same files (this peer is slow on big inputs)…");
        let t = Instant::now();
        let output = Command::new("kubectl")
            .arg("kustomize")
            .arg(&kdir)
            .output()
            .context("running kubectl kustomize (install kubectl, or pass --no-peer)")?;
        let peer_t = t.elapsed();
        if !output.status.success() {
            bail!(
                "kubectl kustomize failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let peer = parse::parse_str(
            &String::from_utf8_lossy(&output.stdout),
            "kubectl kustomize",
        )?;
        let same = same_objects(&rendered.objects, &peer);
        writeln!(
            out,
            "  kubectl kustomize (1 run):    {:>9.3} s",
            peer_t.as_secs_f64()
        )?;
        writeln!(
            out,
            "  ratio (kubectl / ferry):      {:>9.1}x",
            peer_t.as_secs_f64() / ferry_t.as_secs_f64()
        )?;
        writeln!(out, "  same objects: {}", if same { "yes" } else { "NO" })?;
        output::emit(&out)?;
        if !same {
            bail!("ferry and kubectl kustomize produced different objects");
        }
        return Ok(0);
    }
    output::emit(&out)?;
    Ok(0)
}

fn same_objects(a: &[Object], b: &[Object]) -> bool {
    let index = |objs: &[Object]| -> std::collections::BTreeMap<String, Value> {
        objs.iter()
            .map(|o| (o.key().to_string(), o.value().clone()))
            .collect()
    };
    index(a) == index(b)
}

fn core(b: CoreBench) -> anyhow::Result<u8> {
    let n = b.objects;
    let desired_text = parse::to_yaml_stream((0..n).map(desired).collect::<Vec<_>>().iter());
    let live_text = parse::to_yaml_stream((0..n).map(live).collect::<Vec<_>>().iter());
    let (parse_t, live_objs) = time(b.runs, || Ok(parse::parse_str(&live_text, "live.yaml")?))?;
    let desired_objs = parse::parse_str(&desired_text, "desired.yaml")?;
    let opts = diff::DiffOptions::default();
    let (diff_t, results) = time(b.runs, || {
        Ok(diff::compare(&desired_objs, &live_objs, "bench", &opts)?)
    })?;
    let out_of_sync = results
        .iter()
        .filter(|r| r.status != diff::SyncStatus::Synced)
        .count();
    let (health_t, healths) = time(b.runs, || Ok(health::assess_all(&live_objs)))?;
    let judged = healths.iter().filter(|h| h.is_some()).count();
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    output::emit(&format!(
        "{n} objects (a third each Deployments, Services, ConfigMaps), median of {} runs\n",
        b.runs
    ))?;
    output::emit(&format!(
        "  parse live YAML:        {:>9.1} ms  {:>10.0} objects/s\n",
        parse_t.as_secs_f64() * 1e3,
        rate(parse_t)
    ))?;
    output::emit(&format!(
        "  normalise + diff pairs: {:>9.1} ms  {:>10.0} objects/s  ({out_of_sync} out of sync)\n",
        diff_t.as_secs_f64() * 1e3,
        rate(diff_t)
    ))?;
    output::emit(&format!(
        "  health of live objects: {:>9.1} ms  {:>10.0} objects/s  ({judged} with a health check)\n",
        health_t.as_secs_f64() * 1e3,
        rate(health_t)
    ))?;
    output::emit(&format!(
        "  diff / parse cost:      {:>9.2}\n",
        diff_t.as_secs_f64() / parse_t.as_secs_f64()
    ))?;
    if diff_t >= parse_t {
        bail!("diffing cost more than parsing the same objects");
    }
    Ok(0)
}
