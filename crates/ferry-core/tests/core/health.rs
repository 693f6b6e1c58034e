//! Health assessment over fixtures of live objects in real states (as
//! `kubectl get -o yaml` prints them), one object or one scenario per file.

use ferry_core::Object;
use ferry_core::health::{self, Health, HealthStatus};

use crate::util::{fixture, load};

use HealthStatus::{Degraded, Healthy, Progressing, Suspended};

/// (fixture under `health/`, expected status (`None`: not judged), expected message).
/// An empty expected message means the message must be empty; otherwise it must
/// contain the expected text.
const CASES: &[(&str, Option<HealthStatus>, &str)] = &[
    // Deployment
    ("deployment-healthy.yaml", Some(Healthy), ""),
    (
        "deployment-mid-rollout.yaml",
        Some(Progressing),
        "Waiting for rollout to finish: 1 out of 3 new replicas have been updated...",
    ),
    (
        "deployment-progress-deadline.yaml",
        Some(Degraded),
        "Deployment \"web\" exceeded its progress deadline",
    ),
    (
        "deployment-paused.yaml",
        Some(Suspended),
        "Deployment is paused",
    ),
    (
        "deployment-old-replicas-pending-termination.yaml",
        Some(Progressing),
        "Waiting for rollout to finish: 1 old replicas are pending termination...",
    ),
    (
        "deployment-updated-not-available.yaml",
        Some(Progressing),
        "Waiting for rollout to finish: 2 of 3 updated replicas are available...",
    ),
    (
        "deployment-generation-behind.yaml",
        Some(Progressing),
        "Waiting for rollout to finish: observed deployment generation less than desired generation",
    ),
    (
        "deployment-deleting.yaml",
        Some(Progressing),
        "Pending deletion (finalizers: foregroundDeletion)",
    ),
    // Pod, restartPolicy Always
    ("pod-running-ready.yaml", Some(Healthy), ""),
    (
        "pod-running-not-ready.yaml",
        Some(Progressing),
        "containers with unready status: [web]",
    ),
    (
        "pod-pending-unschedulable.yaml",
        Some(Progressing),
        "Unschedulable: 0/3 nodes are available: 3 Insufficient memory.",
    ),
    (
        "pod-pending-container-creating.yaml",
        Some(Progressing),
        "ContainerCreating",
    ),
    (
        "pod-errimagepull.yaml",
        Some(Degraded),
        "ErrImagePull: failed to pull and unpack image \"registry.example.com/shop/web:nope\"",
    ),
    (
        "pod-imagepullbackoff.yaml",
        Some(Degraded),
        "ImagePullBackOff: Back-off pulling image \"web:nope\"",
    ),
    (
        "pod-crashloopbackoff.yaml",
        Some(Degraded),
        "CrashLoopBackOff: back-off 2m40s restarting failed container=web pod=web-7c9f8d6b5-r5v2c_shop",
    ),
    (
        "pod-createcontainerconfigerror.yaml",
        Some(Degraded),
        "CreateContainerConfigError: couldn't find key password in Secret default/db",
    ),
    (
        "pod-invalidimagename.yaml",
        Some(Degraded),
        "InvalidImageName: Failed to apply default image tag",
    ),
    (
        "pod-init-container-crashloop.yaml",
        Some(Degraded),
        "CrashLoopBackOff: back-off 1m20s restarting failed container=migrate",
    ),
    (
        "pod-restarted-not-ready.yaml",
        Some(Degraded),
        "container \"web\" is not ready: restarted 3 times, last exit code 137 (OOMKilled)",
    ),
    (
        "pod-failed-evicted.yaml",
        Some(Degraded),
        "The node was low on resource: memory.",
    ),
    ("pod-deleting.yaml", Some(Progressing), "Pending deletion"),
    // Pod, restartPolicy Never / OnFailure (hooks, jobs)
    ("pod-never-succeeded.yaml", Some(Healthy), ""),
    (
        "pod-never-failed.yaml",
        Some(Degraded),
        "container \"db-migrate\" failed with exit code 3",
    ),
    (
        "pod-failed-oomkilled.yaml",
        Some(Degraded),
        "container \"db-migrate\" failed with exit code 137 (OOMKilled)",
    ),
    ("pod-never-running.yaml", Some(Progressing), ""),
    ("pod-onfailure-running.yaml", Some(Progressing), ""),
    // A hook pod is not failed by a pull back-off (Argo's rule): it stays Progressing.
    (
        "pod-never-imagepullbackoff.yaml",
        Some(Progressing),
        "ImagePullBackOff: Back-off pulling image \"registry.example.com/shop/migrate:nope\"",
    ),
    (
        "pod-never-container-failed-sidecar-running.yaml",
        Some(Degraded),
        "container \"app\" failed with exit code 42",
    ),
    // ReplicaSet
    ("replicaset-healthy.yaml", Some(Healthy), ""),
    (
        "replicaset-progressing.yaml",
        Some(Progressing),
        "Waiting for rollout to finish: 1 out of 3 new replicas are available...",
    ),
    (
        "replicaset-replica-failure.yaml",
        Some(Degraded),
        "is forbidden: exceeded quota: compute-resources",
    ),
    // StatefulSet
    (
        "statefulset-rolling-complete.yaml",
        Some(Healthy),
        "partitioned roll out complete: 3 new pods have been updated...",
    ),
    (
        "statefulset-partitioned-progressing.yaml",
        Some(Progressing),
        "Waiting for partitioned roll out to finish: 0 out of 2 new pods have been updated...",
    ),
    (
        "statefulset-partitioned-complete.yaml",
        Some(Healthy),
        "partitioned roll out complete: 1 new pods have been updated...",
    ),
    (
        "statefulset-not-ready.yaml",
        Some(Progressing),
        "Waiting for 2 pods to be ready...",
    ),
    (
        "statefulset-generation-behind.yaml",
        Some(Progressing),
        "Waiting for statefulset spec update to be observed...",
    ),
    (
        "statefulset-ondelete.yaml",
        Some(Healthy),
        "statefulset has 3 ready pods",
    ),
    (
        "statefulset-revision-pending.yaml",
        Some(Progressing),
        "waiting for statefulset rolling update to complete 1 pods at revision postgres-7d9a8e0c65...",
    ),
    // DaemonSet
    ("daemonset-healthy.yaml", Some(Healthy), ""),
    (
        "daemonset-rolling.yaml",
        Some(Progressing),
        "Waiting for daemon set \"node-exporter\" rollout to finish: 1 out of 3 new pods have been updated...",
    ),
    (
        "daemonset-unavailable.yaml",
        Some(Progressing),
        "Waiting for daemon set \"node-exporter\" rollout to finish: 2 of 3 updated pods are available...",
    ),
    (
        "daemonset-ondelete.yaml",
        Some(Healthy),
        "daemon set 1 out of 3 new pods have been updated",
    ),
    (
        "daemonset-generation-behind.yaml",
        Some(Progressing),
        "observed daemon set generation less than desired generation",
    ),
    // Job
    (
        "job-running.yaml",
        Some(Progressing),
        "Job is running: 1 active, 0 succeeded, 0 failed",
    ),
    (
        "job-failed-backofflimit.yaml",
        Some(Degraded),
        "Job has reached the specified backoff limit",
    ),
    (
        "job-complete.yaml",
        Some(Healthy),
        "Reached expected number of succeeded pods",
    ),
    ("job-suspended.yaml", Some(Suspended), "Job suspended"),
    (
        "job-suspended-unreconciled.yaml",
        Some(Suspended),
        "Job suspended",
    ),
    (
        "job-resumed.yaml",
        Some(Progressing),
        "Job is running: 1 active",
    ),
    // CronJob
    (
        "cronjob-never-run.yaml",
        Some(Healthy),
        "CronJob has never run",
    ),
    (
        "cronjob-succeeded.yaml",
        Some(Healthy),
        "CronJob has run successfully",
    ),
    (
        "cronjob-active.yaml",
        Some(Progressing),
        "CronJob has active jobs",
    ),
    (
        "cronjob-last-run-failed.yaml",
        Some(Degraded),
        "CronJob has not run successfully",
    ),
    (
        "cronjob-suspended.yaml",
        Some(Suspended),
        "CronJob is suspended",
    ),
    // Service, Ingress
    ("service-clusterip.yaml", Some(Healthy), ""),
    (
        "service-loadbalancer-pending.yaml",
        Some(Progressing),
        "Waiting for the load balancer to be assigned an address",
    ),
    ("service-loadbalancer-ready.yaml", Some(Healthy), ""),
    ("ingress-ready.yaml", Some(Healthy), ""),
    (
        "ingress-pending.yaml",
        Some(Progressing),
        "Waiting for the ingress controller to assign an address",
    ),
    // PersistentVolumeClaim
    ("pvc-bound.yaml", Some(Healthy), ""),
    (
        "pvc-pending.yaml",
        Some(Progressing),
        "Waiting for the claim to be bound",
    ),
    (
        "pvc-lost.yaml",
        Some(Degraded),
        "The claim lost its volume \"pvc-9a0b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d\"",
    ),
    // HorizontalPodAutoscaler
    (
        "hpa-v1-healthy.yaml",
        Some(Healthy),
        "recommended size matches current size",
    ),
    (
        "hpa-v1-no-conditions.yaml",
        Some(Progressing),
        "Waiting to Autoscale",
    ),
    (
        "hpa-v1-degraded.yaml",
        Some(Degraded),
        "failed to get cpu utilization: missing request for cpu in container worker",
    ),
    (
        "hpa-v2-healthy.yaml",
        Some(Healthy),
        "recommended size matches current size",
    ),
    // AbleToScale=True comes first, but a failing metric outranks it.
    (
        "hpa-v2-object-metric-failed.yaml",
        Some(Degraded),
        "unable to get metric messages_ready",
    ),
    (
        "hpa-v2-waiting.yaml",
        Some(Progressing),
        "Waiting to Autoscale",
    ),
    // APIService
    (
        "apiservice-available.yaml",
        Some(Healthy),
        "Passed: all checks passed",
    ),
    (
        "apiservice-unavailable.yaml",
        Some(Progressing),
        "FailedDiscoveryCheck: failing or missing response from https://10.244.1.9:10250",
    ),
    // Argo Rollouts
    ("rollout-healthy.yaml", Some(Healthy), ""),
    ("rollout-paused.yaml", Some(Suspended), "CanaryPauseStep"),
    (
        "rollout-aborted.yaml",
        Some(Degraded),
        "RolloutAborted: Rollout aborted update to revision 4: Metric \"success-rate\" assessed Failed",
    ),
    (
        "rollout-progressing.yaml",
        Some(Progressing),
        "more replicas need to be updated",
    ),
    (
        "rollout-generation-behind.yaml",
        Some(Progressing),
        "Waiting for rollout spec update to be observed",
    ),
    (
        "rollout-legacy-aborted.yaml",
        Some(Degraded),
        "Rollout is aborted",
    ),
    (
        "rollout-legacy-canary-steps.yaml",
        Some(Progressing),
        "Waiting for rollout to finish steps",
    ),
    ("rollout-legacy-bluegreen-healthy.yaml", Some(Healthy), ""),
    // Argo Workflows
    (
        "workflow-failed.yaml",
        Some(Degraded),
        "child 'etl-x7k2p' failed",
    ),
    // Kinds without a health check
    ("configmap.yaml", None, ""),
];

fn check(got: Option<&Health>, status: Option<HealthStatus>, message: &str) -> Result<(), String> {
    match (got, status) {
        (None, None) => Ok(()),
        (Some(h), Some(want)) if h.status == want => {
            let ok = if message.is_empty() {
                h.message.is_empty()
            } else {
                h.message.contains(message)
            };
            if ok {
                Ok(())
            } else {
                Err(format!("message {:?}, want {message:?}", h.message))
            }
        }
        (got, want) => Err(format!("got {got:?}, want {want:?}")),
    }
}

fn one(rel: &str) -> Object {
    let mut objects = load(&format!("health/{rel}"));
    assert_eq!(objects.len(), 1, "{rel}: one object per fixture");
    objects.remove(0)
}

#[test]
fn every_fixture_is_judged_as_argo_does() {
    let mut failures = Vec::new();
    for (file, status, message) in CASES {
        let obj = one(file);
        if let Err(e) = check(health::assess(&obj).as_ref(), *status, message) {
            failures.push(format!("{file}: {e}"));
        }
        // Alone in its context, an object is judged the same way.
        let in_context = health::assess_in(&obj, std::slice::from_ref(&obj));
        if in_context != health::assess(&obj) {
            failures.push(format!("{file}: assess_in alone differs: {in_context:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_fixture_file_is_exercised() {
    let dir = fixture("health");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("fixture dir") {
        let name = entry.expect("dir entry").file_name();
        let name = name.to_string_lossy();
        if !name.starts_with("scenario-") && !CASES.iter().any(|(f, _, _)| *f == name) {
            missing.push(name.into_owned());
        }
    }
    assert!(missing.is_empty(), "fixtures without a case: {missing:?}");
}

/// The health of the object of `kind` named `name` in a scenario.
fn find<'a>(
    objects: &[Object],
    healths: &'a [Option<Health>],
    kind: &str,
    name: &str,
) -> &'a Health {
    let i = objects
        .iter()
        .position(|o| o.kind() == kind && o.name() == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"));
    healths[i]
        .as_ref()
        .unwrap_or_else(|| panic!("{kind} {name} not judged"))
}

fn first<'a>(objects: &'a [Object], kind: &str) -> &'a Object {
    objects
        .iter()
        .find(|o| o.kind() == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

#[test]
fn deployment_with_image_pull_backoff_is_degraded_at_once() {
    let objects = load("health/scenario-deployment-imagepullbackoff.yaml");
    let deploy = first(&objects, "Deployment");

    // Alone, Argo's rules see a rollout in progress...
    let alone = health::assess(deploy).expect("judged");
    assert_eq!(alone.status, Progressing);
    assert_eq!(
        alone.message,
        "Waiting for rollout to finish: 1 out of 3 new replicas have been updated..."
    );
    // ...with its pods at hand, the failing pull is visible now, not in ten minutes.
    let with_pods = health::assess_in(deploy, &objects).expect("judged");
    assert_eq!(with_pods.status, Degraded);
    assert_eq!(
        with_pods.message,
        "ImagePullBackOff: Back-off pulling image \"web:nope\" (pod web-6d8b9c7f4-abcde)"
    );

    let healths = health::assess_all(&objects);
    assert_eq!(healths.len(), objects.len());
    assert_eq!(find(&objects, &healths, "Deployment", "web"), &with_pods);
    let new_rs = find(&objects, &healths, "ReplicaSet", "web-6d8b9c7f4");
    assert_eq!(new_rs.status, Degraded);
    assert!(
        new_rs.message.starts_with("ImagePullBackOff: "),
        "{new_rs:?}"
    );
    let old_rs = find(&objects, &healths, "ReplicaSet", "web-7c9f8d6b5");
    assert_eq!(old_rs.status, Healthy);
    for pod in [
        "web-7c9f8d6b5-4xk2p",
        "web-7c9f8d6b5-9lq7d",
        "web-7c9f8d6b5-zt8wm",
    ] {
        assert_eq!(
            find(&objects, &healths, "Pod", pod).status,
            Healthy,
            "{pod}"
        );
    }
    assert_eq!(
        find(&objects, &healths, "Pod", "web-6d8b9c7f4-abcde"),
        &Health::new(
            Degraded,
            "ImagePullBackOff: Back-off pulling image \"web:nope\""
        )
    );
    assert_eq!(find(&objects, &healths, "Service", "web").status, Healthy);
    assert_eq!(
        health::aggregate(healths.iter().map(Option::as_ref)),
        Degraded
    );
}

#[test]
fn an_already_degraded_deployment_keeps_its_reason_and_names_the_pod() {
    let scenario = load("health/scenario-deployment-imagepullbackoff.yaml");
    let deadline = one("deployment-progress-deadline.yaml");
    let h = health::assess_in(&deadline, &scenario).expect("judged");
    assert_eq!(h.status, Degraded);
    assert_eq!(
        h.message,
        "Deployment \"web\" exceeded its progress deadline; \
         ImagePullBackOff: Back-off pulling image \"web:nope\" (pod web-6d8b9c7f4-abcde)"
    );
}

#[test]
fn pods_of_an_old_replicaset_do_not_fail_the_deployment() {
    let objects = load("health/scenario-deployment-old-replicaset-crashing.yaml");
    let healths = health::assess_all(&objects);
    let deploy = find(&objects, &healths, "Deployment", "web");
    assert_eq!(
        deploy,
        &Health::new(
            Progressing,
            "Waiting for rollout to finish: 1 old replicas are pending termination..."
        )
    );
    // The draining ReplicaSet is judged by its status alone, not by its dying pod.
    let old_rs = find(&objects, &healths, "ReplicaSet", "web-5b7d9f8c6");
    assert_eq!(old_rs.status, Progressing, "{old_rs:?}");
    assert_eq!(
        find(&objects, &healths, "ReplicaSet", "web-7c9f8d6b5").status,
        Healthy
    );
    // The crashing pod itself is still reported.
    let pod = find(&objects, &healths, "Pod", "web-5b7d9f8c6-x8c7v");
    assert_eq!(pod.status, Degraded);
    assert!(
        pod.message.starts_with("CrashLoopBackOff: back-off 5m0s"),
        "{pod:?}"
    );
}

#[test]
fn without_replicasets_pods_are_found_by_selector_in_the_namespace() {
    let objects = load("health/scenario-deployment-pods-by-selector.yaml");
    let deploy = first(&objects, "Deployment");
    assert_eq!(health::assess(deploy).map(|h| h.status), Some(Healthy));

    let h = health::assess_in(deploy, &objects).expect("judged");
    assert_eq!(h.status, Degraded);
    assert!(
        h.message
            .starts_with("CrashLoopBackOff: back-off 10s restarting failed container=web"),
        "{h:?}"
    );
    // Only this pod: the other app's ImagePullBackOff and the same app's pod in
    // `staging` are not this Deployment's.
    assert!(h.message.ends_with("(pod web-7c9f8d6b5-r5v2c)"), "{h:?}");
}

#[test]
fn the_worst_pod_reason_wins_and_the_rest_are_counted() {
    let objects = load("health/scenario-daemonset-pods-failing.yaml");
    let healths = health::assess_all(&objects);
    let ds = find(&objects, &healths, "DaemonSet", "node-exporter");
    assert_eq!(ds.status, Degraded);
    // An image that cannot be pulled outranks a crash loop.
    assert!(
        ds.message
            .starts_with("ErrImagePull: failed to pull and unpack image"),
        "{ds:?}"
    );
    assert!(
        ds.message.ends_with("(pod node-exporter-t5n8w and 1 more)"),
        "{ds:?}"
    );
}

#[test]
fn statefulset_with_a_crash_looping_pod_is_degraded() {
    let objects = load("health/scenario-statefulset-crashloop.yaml");
    let sts = first(&objects, "StatefulSet");
    assert_eq!(
        health::assess(sts),
        Some(Health::new(
            Progressing,
            "Waiting for 2 pods to be ready..."
        ))
    );
    let h = health::assess_in(sts, &objects).expect("judged");
    assert_eq!(h.status, Degraded);
    assert!(
        h.message.starts_with("CrashLoopBackOff: back-off 1m20s"),
        "{h:?}"
    );
    assert!(h.message.ends_with("(pod postgres-1)"), "{h:?}");
}

#[test]
fn rollout_canary_that_cannot_pull_is_degraded() {
    let objects = load("health/scenario-rollout-canary-imagepullbackoff.yaml");
    let healths = health::assess_all(&objects);
    let rollout = first(&objects, "Rollout");
    assert_eq!(health::assess(rollout).map(|h| h.status), Some(Progressing));
    assert_eq!(
        find(&objects, &healths, "Rollout", "checkout"),
        &Health::new(
            Degraded,
            "ImagePullBackOff: Back-off pulling image \
             \"registry.example.com/shop/checkout:2.4.0-rc1\" (pod checkout-7a1e9d8c6b-p9x8z)"
        )
    );
    assert_eq!(
        find(&objects, &healths, "ReplicaSet", "checkout-6f9d8c7b5a").status,
        Healthy
    );
    assert_eq!(
        find(&objects, &healths, "ReplicaSet", "checkout-7a1e9d8c6b").status,
        Degraded
    );
}

#[test]
fn aggregate_is_the_worst_judged_status() {
    let healthy = one("deployment-healthy.yaml");
    let suspended = one("cronjob-suspended.yaml");
    let progressing = one("pvc-pending.yaml");
    let degraded = one("job-failed-backofflimit.yaml");
    let unjudged = one("configmap.yaml");
    let agg = |objs: Vec<Object>| {
        let healths = health::assess_all(&objs);
        health::aggregate(healths.iter().map(Option::as_ref))
    };
    assert_eq!(agg(vec![]), Healthy);
    assert_eq!(agg(vec![unjudged.clone()]), Healthy);
    assert_eq!(agg(vec![healthy.clone(), unjudged.clone()]), Healthy);
    assert_eq!(agg(vec![healthy.clone(), suspended.clone()]), Suspended);
    assert_eq!(
        agg(vec![
            suspended.clone(),
            progressing.clone(),
            healthy.clone()
        ]),
        Progressing
    );
    assert_eq!(
        agg(vec![degraded, suspended, progressing, healthy, unjudged]),
        Degraded
    );
}
