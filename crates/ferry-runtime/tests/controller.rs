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

/// The ReplicaSet whose template runs `image`.
fn rs_of(c: &Cluster, image: &str) -> Object {
    c.list(Some("ReplicaSet"), Some("default"))
        .into_iter()
        .find(|rs| {
            rs.value()
                .pointer("/spec/template/spec/containers/0/image")
                .and_then(Value::as_str)
                == Some(image)
        })
        .unwrap_or_else(|| panic!("no ReplicaSet runs {image}"))
}

fn spec_replicas(rs: &Object) -> i64 {
    rs.value()["spec"]["replicas"].as_i64().unwrap()
}

/// (desired-replicas, max-replicas) annotations of a ReplicaSet.
fn size_annotations(rs: &Object) -> (Option<&str>, Option<&str>) {
    (
        rs.annotation(deployment::DESIRED_REPLICAS),
        rs.annotation(deployment::MAX_REPLICAS),
    )
}

fn reconcile_deployment(c: &Cluster, now: SystemTime) -> Object {
    let d = c.list(Some("Deployment"), Some("default")).remove(0);
    deployment::reconcile(c, &d, now).unwrap();
    c.get(&d.key()).unwrap()
}

#[test]
fn replicasets_carry_desired_and_max_replicas() {
    let c = Cluster::in_memory();
    let now = SystemTime::now();
    c.apply(&deploy(2, "web:1", json!({})), &ApplyOptions::default())
        .unwrap();
    settle(&c, now);
    // maxSurge 25% of 2 rounds up to 1.
    assert_eq!(
        size_annotations(&rs_of(&c, "web:1")),
        (Some("2"), Some("3"))
    );
    set_ready(&c, "web:1", true, now);
    settle(&c, now);
    // One active ReplicaSet takes the whole new size.
    c.apply(&deploy(4, "web:1", json!({})), &ApplyOptions::default())
        .unwrap();
    settle(&c, now);
    let rs = rs_of(&c, "web:1");
    assert_eq!(spec_replicas(&rs), 4);
    assert_eq!(size_annotations(&rs), (Some("4"), Some("5")));
    assert_eq!(count_image(&c, "web:1"), 4);
}

/// Scaling a Deployment 2 → 5 while its rollout is stuck (new pods never ready) used
/// to give all three replicas to the broken ReplicaSet: READY 2/5, UP-TO-DATE 5.
/// Kubernetes spreads them over both ReplicaSets by size, so availability recovers.
#[test]
fn scaling_a_stuck_rollout_is_proportional() {
    let c = Cluster::in_memory();
    let now = SystemTime::now();
    c.apply(&deploy(2, "web:1", json!({})), &ApplyOptions::default())
        .unwrap();
    settle(&c, now);
    set_ready(&c, "web:1", true, now);
    settle(&c, now);
    c.apply(&deploy(2, "web:nope", json!({})), &ApplyOptions::default())
        .unwrap();
    settle(&c, now);
    assert_eq!(
        (count_image(&c, "web:1"), count_image(&c, "web:nope")),
        (2, 1)
    );

    // Scale up: allowed 5 + maxSurge 2 = 7, 4 to add over sizes 2 and 1 (max-replicas 3):
    // old round(2/3*7) - 2 = 3, new round(1/3*7) - 1 = 1.
    c.apply(&deploy(5, "web:nope", json!({})), &ApplyOptions::default())
        .unwrap();
    reconcile_deployment(&c, now);
    let (old, new) = (rs_of(&c, "web:1"), rs_of(&c, "web:nope"));
    assert_eq!((spec_replicas(&old), spec_replicas(&new)), (5, 2));
    assert_eq!(size_annotations(&old), (Some("5"), Some("7")));
    assert_eq!(size_annotations(&new), (Some("5"), Some("7")));
    for _ in 0..4 {
        settle(&c, now);
        set_ready(&c, "web:1", true, now);
        let d = reconcile_deployment(&c, now);
        assert!(
            d.value()["status"]["availableReplicas"].as_i64().unwrap() >= 2,
            "available never drops: {}",
            d.value()["status"]
        );
        assert!(pods(&c).len() <= 7, "never more than replicas + maxSurge");
    }
    settle(&c, now);
    // The rollout then goes on as far as maxUnavailable (1) allows.
    assert_eq!(
        (count_image(&c, "web:1"), count_image(&c, "web:nope")),
        (4, 3)
    );
    let d = reconcile_deployment(&c, now);
    assert_eq!(d.value()["status"]["availableReplicas"], 4);
    assert_eq!(cond(&d, "Available")["status"], "True");

    // Scale down: allowed 2 + 1 = 3, 4 to remove over sizes 4 and 3 (max-replicas 7):
    // old round(4/7*3) - 4 = -2, new round(3/7*3) - 3 = -2.
    c.apply(&deploy(2, "web:nope", json!({})), &ApplyOptions::default())
        .unwrap();
    reconcile_deployment(&c, now);
    let (old, new) = (rs_of(&c, "web:1"), rs_of(&c, "web:nope"));
    assert_eq!((spec_replicas(&old), spec_replicas(&new)), (2, 1));
    assert_eq!(size_annotations(&old), (Some("2"), Some("3")));
    settle(&c, now);
    assert_eq!(
        (count_image(&c, "web:1"), count_image(&c, "web:nope")),
        (2, 1)
    );
    let d = reconcile_deployment(&c, now);
    assert_eq!(d.value()["status"]["availableReplicas"], 2);
    assert_eq!(cond(&d, "Available")["status"], "True");
}

#[test]
fn paused_deployment_still_scales() {
    let c = Cluster::in_memory();
    let now = SystemTime::now();
    c.apply(&deploy(1, "web:1", json!({})), &ApplyOptions::default())
        .unwrap();
    settle(&c, now);
    c.apply(
        &deploy(3, "web:2", json!({"paused": true})),
        &ApplyOptions::default(),
    )
    .unwrap();
    settle(&c, now);
    assert_eq!(
        count_image(&c, "web:1"),
        3,
        "the active ReplicaSet is scaled"
    );
    assert_eq!(count_image(&c, "web:2"), 0, "but nothing rolls");
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
