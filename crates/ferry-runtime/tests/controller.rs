//! Controllers over an in-memory store, with pod readiness set by the test (no processes):
//! rolling updates honour maxSurge/maxUnavailable, a bad rollout keeps the old
//! ReplicaSet serving, deadlines and jobs behave as Kubernetes.

use std::time::{Duration, SystemTime};

use ferry_core::Object;
use ferry_runtime::controller::{self, deployment, job, replicaset};
use ferry_runtime::{ApplyOptions, Cluster};
use serde_json::{Value, json};

fn deploy(replicas: i64, image: &str, extra: Value) -> Object {
    let mut v = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": image}]}}
        }
    });
    if let (Some(spec), Some(extra)) = (v["spec"].as_object_mut(), extra.as_object()) {
        for (k, x) in extra {
            spec.insert(k.clone(), x.clone());
        }
    }
    Object::from_value(v).unwrap()
}

fn pods(c: &Cluster) -> Vec<Object> {
    c.list(Some("Pod"), Some("default"))
        .into_iter()
        .filter(|p| !p.is_being_deleted())
        .collect()
}

/// Marks pods of `image` ready (or not) the way the kubelet would.
fn set_ready(c: &Cluster, image: &str, ready: bool, since: SystemTime) {
    for p in pods(c) {
        let img = p
            .value()
            .pointer("/spec/containers/0/image")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if img != image {
            continue;
        }
        let t = humantime::format_rfc3339_seconds(since).to_string();
        let status = json!({
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}, "lastTransitionTime": t}],
        });
        c.update_status(&p.key(), status).unwrap();
    }
}

/// Removes pods marked for deletion, as the kubelet does once processes stopped.
fn finalize_all(c: &Cluster) {
    for p in c.list(Some("Pod"), None) {
        if p.is_being_deleted() {
            c.finalize(&p.key()).unwrap();
        }
    }
}

fn settle(c: &Cluster, now: SystemTime) {
    for _ in 0..10 {
        for d in c.list(Some("Deployment"), None) {
            deployment::reconcile(c, &d, now).unwrap();
        }
        for rs in c.list(Some("ReplicaSet"), None) {
            replicaset::reconcile(c, &rs, now).unwrap();
        }
        finalize_all(c);
    }
}

fn count_image(c: &Cluster, image: &str) -> usize {
    pods(c)
        .iter()
        .filter(|p| {
            p.value()
                .pointer("/spec/containers/0/image")
                .and_then(Value::as_str)
                == Some(image)
        })
        .count()
}

fn cond<'a>(d: &'a Object, kind: &str) -> &'a Value {
    controller::condition(d.value(), kind).unwrap_or(&Value::Null)
}

#[test]
fn deployment_creates_replicaset_and_pods_and_becomes_available() {
    let c = Cluster::in_memory();
    let now = SystemTime::now();
    let d = c
        .apply(&deploy(3, "web:1", json!({})), &ApplyOptions::default())
        .unwrap();
    settle(&c, now);
    assert_eq!(count_image(&c, "web:1"), 3);
    let rs = c.list(Some("ReplicaSet"), Some("default"));
    assert_eq!(rs.len(), 1);
    assert!(rs[0].name().starts_with("web-"));
    assert!(rs[0].label("pod-template-hash").is_some());
    set_ready(&c, "web:1", true, now);
    settle(&c, now);
    let d = c.get(&d.key()).unwrap();
    assert_eq!(d.value()["status"]["availableReplicas"], 3);
    assert_eq!(cond(&d, "Available")["status"], "True");
    assert_eq!(cond(&d, "Progressing")["reason"], "NewReplicaSetAvailable");
    assert_eq!(
        d.annotation(deployment::REVISION),
        Some("1"),
        "the revision is mirrored onto the Deployment"
    );
}

#[test]
fn rolling_update_respects_surge_and_unavailable() {
    let c = Cluster::in_memory();
    let now = SystemTime::now();
    let strategy = json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}});
    c.apply(
        &deploy(4, "web:1", strategy.clone()),
        &ApplyOptions::default(),
    )
    .unwrap();
    settle(&c, now);
    set_ready(&c, "web:1", true, now);
    settle(&c, now);
    c.apply(&deploy(4, "web:2", strategy), &ApplyOptions::default())
        .unwrap();
    settle(&c, now);
    // maxSurge 1, maxUnavailable 0: one new pod, all four old still there.
    assert_eq!(count_image(&c, "web:2"), 1);
    assert_eq!(count_image(&c, "web:1"), 4);
    for _ in 0..8 {
        set_ready(&c, "web:2", true, now);
        settle(&c, now);
        assert!(pods(&c).len() <= 5, "never more than replicas + maxSurge");
    }
    assert_eq!(count_image(&c, "web:2"), 4);
    assert_eq!(count_image(&c, "web:1"), 0);
    // The old ReplicaSet is kept (scaled to zero) for rollbacks.
    assert_eq!(c.list(Some("ReplicaSet"), Some("default")).len(), 2);
}

#[test]
fn bad_rollout_keeps_old_pods_serving_and_times_out() {
    let c = Cluster::in_memory();
    let t0 = SystemTime::now();
    let spec = json!({"progressDeadlineSeconds": 30});
    let d = c
        .apply(&deploy(2, "web:1", spec.clone()), &ApplyOptions::default())
        .unwrap();
    settle(&c, t0);
    set_ready(&c, "web:1", true, t0);
    settle(&c, t0);
    c.apply(&deploy(2, "web:nope", spec), &ApplyOptions::default())
        .unwrap();
    settle(&c, t0);
    // Default 25%/25% on 2 replicas: surge 1, unavailable 0 → both old pods stay.
    assert_eq!(count_image(&c, "web:1"), 2);
    assert_eq!(count_image(&c, "web:nope"), 1);
    let later = t0 + Duration::from_secs(31);
    settle(&c, later);
    let d = c.get(&d.key()).unwrap();
    assert_eq!(
        cond(&d, "Progressing")["reason"],
        "ProgressDeadlineExceeded",
        "{}",
        d.value()["status"]
    );
    assert_eq!(cond(&d, "Progressing")["status"], "False");
    assert_eq!(count_image(&c, "web:1"), 2, "old pods keep serving");
}

#[test]
fn paused_deployment_does_not_roll() {
    let c = Cluster::in_memory();
    let now = SystemTime::now();
    c.apply(&deploy(1, "web:1", json!({})), &ApplyOptions::default())
        .unwrap();
    settle(&c, now);
    let d = c
        .apply(
            &deploy(1, "web:2", json!({"paused": true})),
            &ApplyOptions::default(),
        )
        .unwrap();
    settle(&c, now);
    assert_eq!(count_image(&c, "web:2"), 0);
    let d = c.get(&d.key()).unwrap();
    assert_eq!(cond(&d, "Progressing")["reason"], "DeploymentPaused");
}

#[test]
fn revision_history_limit_prunes_old_replicasets() {
    let c = Cluster::in_memory();
    let now = SystemTime::now();
    for i in 0..5 {
        c.apply(
            &deploy(1, &format!("web:{i}"), json!({"revisionHistoryLimit": 2})),
            &ApplyOptions::default(),
        )
        .unwrap();
        for _ in 0..4 {
            settle(&c, now);
            set_ready(&c, &format!("web:{i}"), true, now);
        }
        settle(&c, now);
    }
    // The current one plus two old ones.
    assert_eq!(c.list(Some("ReplicaSet"), Some("default")).len(), 3);
}

fn job_obj(extra: Value) -> Object {
    let mut v = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "migrate", "namespace": "default"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "m:1"}]}}}
    });
    if let (Some(spec), Some(extra)) = (v["spec"].as_object_mut(), extra.as_object()) {
        for (k, x) in extra {
            spec.insert(k.clone(), x.clone());
        }
    }
    Object::from_value(v).unwrap()
}

fn set_phase_all(c: &Cluster, phase: &str) {
    for p in pods(c) {
        if p.value().pointer("/status/phase").is_none() {
            c.update_status(&p.key(), json!({"phase": phase})).unwrap();
        }
    }
}

fn run_job(c: &Cluster, now: SystemTime) -> Object {
    for j in c.list(Some("Job"), None) {
        job::reconcile(c, &j, now).unwrap();
    }
    finalize_all(c);
    c.list(Some("Job"), None).remove(0)
}

#[test]
fn job_completes_after_completions() {
    let c = Cluster::in_memory();
    let now = SystemTime::now();
    c.apply(
        &job_obj(json!({"completions": 2})),
        &ApplyOptions::default(),
    )
    .unwrap();
    run_job(&c, now);
    assert_eq!(pods(&c).len(), 1, "parallelism 1");
    assert_eq!(pods(&c)[0].label("job-name"), Some("migrate"));
    set_phase_all(&c, "Succeeded");
    run_job(&c, now);
    set_phase_all(&c, "Succeeded");
    let j = run_job(&c, now);
    assert_eq!(cond(&j, "Complete")["status"], "True");
    assert_eq!(j.value()["status"]["succeeded"], 2);
}

#[test]
fn job_fails_past_backoff_limit() {
    let c = Cluster::in_memory();
    let now = SystemTime::now();
    c.apply(
        &job_obj(json!({"backoffLimit": 1})),
        &ApplyOptions::default(),
    )
    .unwrap();
    for _ in 0..3 {
        run_job(&c, now);
        set_phase_all(&c, "Failed");
    }
    let j = run_job(&c, now);
    assert_eq!(cond(&j, "Failed")["reason"], "BackoffLimitExceeded");
    assert_eq!(j.value()["status"]["failed"], 2);
}

#[test]
fn job_active_deadline() {
    let c = Cluster::in_memory();
    let t0 = SystemTime::now();
    c.apply(
        &job_obj(json!({"activeDeadlineSeconds": 5})),
        &ApplyOptions::default(),
    )
    .unwrap();
    run_job(&c, t0);
    let j = run_job(&c, t0 + Duration::from_secs(6));
    assert_eq!(cond(&j, "Failed")["reason"], "DeadlineExceeded");
    assert!(pods(&c).is_empty(), "active pods are stopped");
}
