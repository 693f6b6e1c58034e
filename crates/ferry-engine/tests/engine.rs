//! The engine end to end: real Git repositories, the runtime's object store with its
//! controllers and a fake kubelet as the target, and the engine's controller running.

mod harness;

use std::time::Duration;

use ferry_core::ObjectKey;
use ferry_core::health::HealthStatus;
use ferry_core::target::{ApplyOptions, Target};
use ferry_engine::{
    COMPARISON_ERROR, OperationPhase, OperationState, ResultCode, SHARED_RESOURCE_WARNING,
    SYNC_ATTEMPT, SyncCode, SyncRequest, TRACKING_ID, WaitFor,
};
use harness::{World, config_map, deployment, eventually, fixture};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(20);

fn manual_sync(prune: bool) -> SyncRequest {
    SyncRequest {
        prune,
        ..SyncRequest::default()
    }
}

fn synced_healthy() -> WaitFor {
    WaitFor {
        sync: true,
        health: true,
        operation: true,
    }
}

fn automated(extra: Value) -> Value {
    let mut auto = json!({"prune": true, "selfHeal": true});
    if let (Some(a), Some(e)) = (auto.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            a.insert(k.clone(), v.clone());
        }
    }
    json!({"automated": auto})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_then_sync_makes_the_app_synced_and_healthy_with_one_history_entry() {
    let dep = deployment(1, "registry.local/web:1");
    let w = World::new(&[
        ("apps/web/deployment.yaml", &dep),
        ("apps/web/service.yaml", &fixture("service.yaml")),
    ]);
    let warnings = w
        .engine
        .create_app(w.app("web", "apps/web", Value::Null), false)
        .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let v = w.engine.refresh("web", false).await.unwrap();
    assert_eq!(v.status.status.sync.status, SyncCode::OutOfSync);
    assert_eq!(v.status.status.health.status, HealthStatus::Missing);
    assert_eq!(v.status.status.resources.len(), 2);
    assert!(
        w.live("Deployment", "web").is_none(),
        "nothing applied before sync"
    );

    let op = w.engine.sync("web", manual_sync(false)).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Succeeded, "{}", op.message);
    let v = w.engine.wait("web", synced_healthy(), T).await.unwrap();
    assert_eq!(v.status.status.health.status, HealthStatus::Healthy);
    let history = &v.status.history;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].id, 1);
    assert_eq!(history[0].trigger, "manual");
    assert_eq!(history[0].result, OperationPhase::Succeeded);
    assert_eq!(history[0].revision, v.status.status.sync.revision);
    let live = w.live("Deployment", "web").unwrap();
    assert_eq!(live.label("app.kubernetes.io/instance"), Some("web"));
    assert_eq!(
        live.annotation(TRACKING_ID),
        Some("web:apps/Deployment:shop/web")
    );
    // The view is an Argo CD Application.
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["apiVersion"], "argoproj.io/v1alpha1");
    assert_eq!(json["kind"], "Application");
    assert_eq!(json["status"]["sync"]["status"], "Synced");
    assert_eq!(json["status"]["health"]["status"], "Healthy");
    assert_eq!(json["status"]["operationState"]["phase"], "Succeeded");
    assert_eq!(json["status"]["history"][0]["id"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_commit_shows_out_of_sync_with_its_diff_and_automated_sync_applies_it_once() {
    let w = World::new(&[(
        "web/deployment.yaml",
        &deployment(1, "registry.local/web:1"),
    )]);
    w.engine
        .create_app(w.app("web", "web", Value::Null), false)
        .unwrap();
    let op = w.engine.sync("web", manual_sync(false)).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Succeeded, "{}", op.message);

    w.repo.commit(
        &[(
            "web/deployment.yaml",
            &deployment(3, "registry.local/web:1"),
        )],
        &[],
        "scale to 3",
    );
    let v = w.engine.refresh("web", false).await.unwrap();
    assert_eq!(v.status.status.sync.status, SyncCode::OutOfSync);
    let diffs = w.engine.diff("web").await.unwrap();
    let changed: Vec<String> = diffs
        .iter()
        .filter(|d| !d.is_synced())
        .map(|d| d.unified())
        .collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert!(
        changed[0].contains("-  replicas: 1") && changed[0].contains("+  replicas: 3"),
        "{}",
        changed[0]
    );
    assert_eq!(w.replicas("web"), Some(1), "a refresh applies nothing");

    let mut app = w.app("web", "web", automated(json!({})));
    app.spec
        .sync_policy
        .as_mut()
        .unwrap()
        .automated
        .as_mut()
        .unwrap()
        .self_heal = false;
    w.engine.update_app(app).unwrap();
    eventually("automated sync to 3 replicas", T, || async {
        (w.replicas("web") == Some(3)).then_some(())
    })
    .await;
    w.engine.wait("web", synced_healthy(), T).await.unwrap();
    // Several reconciliation periods later the commit has still been synced once.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let history = w.engine.history("web").unwrap();
    let triggers: Vec<&str> = history.iter().map(|h| h.trigger.as_str()).collect();
    assert_eq!(triggers, ["manual", "automated"]);
    assert_eq!(history[1].id, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waves_apply_in_order_and_each_waits_for_the_previous_to_be_healthy() {
    fn wave(w: &str) -> [(&'static str, &str); 1] {
        [("argocd.argoproj.io/sync-wave", w)]
    }
    let mut dep = deployment(2, "registry.local/web:1");
    dep = dep.replace(
        "  labels:\n    app: web\nspec:",
        "  labels:\n    app: web\n  annotations:\n    argocd.argoproj.io/sync-wave: \"0\"\nspec:",
    );
    let w = World::new(&[
        (
            "app/settings.yaml",
            &config_map("settings", "a", &wave("-1")),
        ),
        ("app/deployment.yaml", &dep),
        ("app/after.yaml", &config_map("after", "b", &wave("1"))),
    ]);
    w.engine
        .create_app(w.app("web", "app", Value::Null), false)
        .unwrap();
    let op = w.engine.sync("web", manual_sync(false)).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Succeeded, "{}", op.message);
    let log = w.target.log();
    assert_eq!(
        log,
        [
            "apply ConfigMap/settings",
            "apply Deployment/web",
            "apply ConfigMap/after"
        ]
    );
    // Wave 1 started only once the Deployment of wave 0 was available, although
    // kind order alone would have put both ConfigMaps first.
    let events = w.target.events.lock().unwrap().clone();
    assert_eq!(
        events[2],
        harness::Event::Apply("ConfigMap/after".into(), true)
    );
    let waves: Vec<(String, i32)> = op
        .sync_result
        .unwrap()
        .resources
        .iter()
        .map(|r| (r.name.clone(), r.sync_wave))
        .collect();
    assert_eq!(
        waves,
        [
            ("settings".into(), -1),
            ("web".into(), 0),
            ("after".into(), 1)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn while_an_automated_sync_waits_for_a_rollout_the_app_is_already_synced_and_progressing() {
    // minReadySeconds keeps the rollout going for a while after the apply.
    let dep = deployment(2, "registry.local/web:1").replace(
        "spec:\n  replicas: 2",
        "spec:\n  minReadySeconds: 3\n  replicas: 2",
    );
    let w = World::new(&[("app/deployment.yaml", &dep)]);
    w.engine
        .create_app(w.app("web", "app", automated(json!({}))), false)
        .unwrap();
    // As in Argo CD: the app is Synced as soon as everything is applied, and its
    // health follows the rollout while the operation still runs (an automated sync
    // runs inside the controller's pass over the app, which used to freeze its status
    // until the sync ended).
    eventually("Synced and Progressing during the sync", T, || async {
        let v = w.view("web");
        let running = v
            .status
            .operation_state
            .as_ref()
            .is_some_and(|o| o.phase == OperationPhase::Running);
        (running
            && v.status.status.sync.status == SyncCode::Synced
            && v.status.status.health.status == HealthStatus::Progressing)
            .then_some(())
    })
    .await;
    w.engine
        .wait("web", synced_healthy(), T)
        .await
        .expect("the sync ends Synced and Healthy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_presync_job_hook_runs_first_and_is_deleted_once_it_succeeded() {
    let w = World::new(&[
        (
            "app/deployment.yaml",
            &deployment(1, "registry.local/web:1"),
        ),
        ("app/migrate.yaml", &fixture("presync-job.yaml")),
    ]);
    w.engine
        .create_app(w.app("web", "app", Value::Null), false)
        .unwrap();
    let op = w.engine.sync("web", manual_sync(false)).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Succeeded, "{}", op.message);
    let applies: Vec<String> = w
        .target
        .log()
        .into_iter()
        .filter(|l| l.starts_with("apply"))
        .collect();
    assert_eq!(applies, ["apply Job/migrate", "apply Deployment/web"]);
    let rows = op.sync_result.unwrap().resources;
    let hook = rows.iter().find(|r| r.name == "migrate").unwrap();
    assert_eq!(hook.hook_phase.as_deref(), Some("Succeeded"));
    assert_eq!(hook.sync_phase, "PreSync");
    assert!(
        w.live("Job", "migrate").is_none(),
        "HookSucceeded deletes the Job"
    );
    // Hooks are not part of the app's sync status.
    let v = w.engine.wait("web", synced_healthy(), T).await.unwrap();
    assert!(
        v.status
            .status
            .resources
            .iter()
            .all(|r| r.name != "migrate")
    );

    // A second sync runs the hook again.
    w.target.clear();
    let op = w.engine.sync("web", manual_sync(false)).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Succeeded, "{}", op.message);
    assert_eq!(w.target.log()[0], "apply Job/migrate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_presync_hook_fails_the_sync_before_anything_else_is_applied() {
    let job = fixture("presync-job.yaml").replace("migrate:1", "migrate:fail");
    let w = World::new(&[
        (
            "app/deployment.yaml",
            &deployment(1, "registry.local/web:1"),
        ),
        ("app/migrate.yaml", &job),
    ]);
    w.engine
        .create_app(w.app("web", "app", Value::Null), false)
        .unwrap();
    let op = w.engine.sync("web", manual_sync(false)).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Failed);
    assert!(
        op.message.contains("hook Job migrate failed"),
        "{}",
        op.message
    );
    assert!(w.live("Deployment", "web").is_none());
    // The failed Job is kept for inspection (its policy only deletes on success).
    assert!(w.live("Job", "migrate").is_some());
    let v = w.view("web");
    assert!(v.status.status.condition("SyncError").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prune_happens_only_when_asked_never_for_prune_false_and_prune_last_goes_last() {
    let post = config_map("notify", "done", &[("argocd.argoproj.io/hook", "PostSync")]);
    let w = World::new(&[
        ("app/keep.yaml", &config_map("keep", "k", &[])),
        ("app/a.yaml", &config_map("a", "1", &[])),
        (
            "app/b.yaml",
            &config_map(
                "b",
                "2",
                &[("argocd.argoproj.io/sync-options", "Prune=false")],
            ),
        ),
        (
            "app/c.yaml",
            &config_map(
                "c",
                "3",
                &[("argocd.argoproj.io/sync-options", "PruneLast=true")],
            ),
        ),
        ("app/notify.yaml", &post),
    ]);
    w.engine
        .create_app(w.app("web", "app", Value::Null), false)
        .unwrap();
    let op = w.engine.sync("web", manual_sync(true)).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Succeeded, "{}", op.message);
    w.repo.commit(
        &[],
        &["app/a.yaml", "app/b.yaml", "app/c.yaml"],
        "remove a, b, c",
    );
    let v = w.engine.refresh("web", false).await.unwrap();
    let pruning: Vec<&str> = v
        .status
        .status
        .resources
        .iter()
        .filter(|r| r.requires_pruning)
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(pruning.len(), 3, "{pruning:?}");
    assert_eq!(v.status.status.sync.status, SyncCode::OutOfSync);

    // Without prune nothing is deleted.
    let op = w.engine.sync("web", manual_sync(false)).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Succeeded, "{}", op.message);
    let skipped = op
        .sync_result
        .unwrap()
        .resources
        .iter()
        .filter(|r| r.status == ResultCode::PruneSkipped)
        .count();
    assert_eq!(skipped, 3);
    for name in ["a", "b", "c"] {
        assert!(w.live("ConfigMap", name).is_some(), "{name} kept");
    }

    // With prune: a goes with the Sync phase, c after the PostSync hook, b stays.
    w.target.clear();
    let op = w.engine.sync("web", manual_sync(true)).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Succeeded, "{}", op.message);
    let log = w.target.log();
    let at = |e: &str| {
        log.iter()
            .position(|l| l == e)
            .unwrap_or_else(|| panic!("{e} in {log:?}"))
    };
    assert!(
        at("delete ConfigMap/a") < at("apply ConfigMap/notify"),
        "{log:?}"
    );
    assert!(
        at("apply ConfigMap/notify") < at("delete ConfigMap/c"),
        "{log:?}"
    );
    assert!(!log.contains(&"delete ConfigMap/b".to_string()), "{log:?}");
    assert!(w.live("ConfigMap", "a").is_none());
    assert!(w.live("ConfigMap", "c").is_none());
    assert!(w.live("ConfigMap", "b").is_some(), "Prune=false keeps it");
    let rows = op.sync_result.unwrap().resources;
    let b = rows.iter().find(|r| r.name == "b").unwrap();
    assert_eq!(b.status, ResultCode::PruneSkipped);
    assert!(b.message.contains("Prune=false"), "{}", b.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_empty_commit_never_prunes_everything_without_allow_empty() {
    let w = World::new(&[
        ("app/README.md", "manifests live here\n"),
        ("app/a.yaml", &config_map("a", "1", &[])),
        ("app/b.yaml", &config_map("b", "2", &[])),
    ]);
    w.engine
        .create_app(w.app("web", "app", automated(json!({}))), false)
        .unwrap();
    w.engine.wait("web", synced_healthy(), T).await.unwrap();
    let rev = w
        .repo
        .commit(&[], &["app/a.yaml", "app/b.yaml"], "empty the app");
    let op = eventually("an automated sync of the empty commit", T, || async {
        let v = w.view("web");
        let op = v.status.operation_state?;
        (op.phase.is_completed() && op.sync_result.as_ref()?.revision == rev).then_some(op)
    })
    .await;
    let rows = op.sync_result.unwrap().resources;
    assert!(
        rows.iter()
            .all(|r| r.status == ResultCode::PruneSkipped && r.message.contains("render is empty")),
        "{rows:?}"
    );
    assert!(w.live("ConfigMap", "a").is_some());
    assert!(w.live("ConfigMap", "b").is_some());

    // With allowEmpty, the same commit may prune.
    w.engine
        .update_app(w.app("web", "app", automated(json!({"allowEmpty": true}))))
        .unwrap();
    let op = w.engine.sync("web", manual_sync(true)).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Succeeded, "{}", op.message);
    assert!(w.live("ConfigMap", "a").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn self_heal_takes_back_a_change_made_on_the_target() {
    let w = World::new(&[(
        "web/deployment.yaml",
        &deployment(1, "registry.local/web:1"),
    )]);
    w.engine
        .create_app(w.app("web", "web", automated(json!({}))), false)
        .unwrap();
    w.engine.wait("web", synced_healthy(), T).await.unwrap();
    assert_eq!(w.replicas("web"), Some(1));
    // `ferry scale`: another field manager takes spec.replicas.
    let mut live = w.live("Deployment", "web").unwrap();
    live.value_mut()["spec"]["replicas"] = json!(4);
    let scale = ApplyOptions {
        field_manager: "ferry-scale".into(),
        force: true,
        dry_run: false,
    };
    let patch = ferry_core::Object::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"replicas": 4}
    }))
    .unwrap();
    w.target.apply(&patch, &scale).await.unwrap();
    assert_eq!(w.replicas("web"), Some(4));
    eventually("self-heal back to 1 replica", T, || async {
        (w.replicas("web") == Some(1)).then_some(())
    })
    .await;
    w.engine.wait("web", synced_healthy(), T).await.unwrap();
    let history = w.engine.history("web").unwrap();
    let triggers: Vec<&str> = history.iter().map(|h| h.trigger.as_str()).collect();
    assert_eq!(triggers, ["automated", "self-heal"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rollback_restores_an_old_revision_and_pauses_automated_sync_until_the_next_commit() {
    let w = World::new(&[(
        "web/deployment.yaml",
        &deployment(1, "registry.local/web:1"),
    )]);
    w.engine
        .create_app(w.app("web", "web", automated(json!({}))), false)
        .unwrap();
    w.engine.wait("web", synced_healthy(), T).await.unwrap();
    let image = |w: &World| {
        w.live("Deployment", "web").and_then(|d| {
            d.value()
                .pointer("/spec/template/spec/containers/0/image")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
    };
    w.repo.commit(
        &[(
            "web/deployment.yaml",
            &deployment(1, "registry.local/web:2"),
        )],
        &[],
        "web 2",
    );
    eventually("web:2 live", T, || async {
        (image(&w).as_deref() == Some("registry.local/web:2")).then_some(())
    })
    .await;
    w.engine.wait("web", synced_healthy(), T).await.unwrap();
    let first = w.engine.history("web").unwrap()[0].clone();
    assert_eq!(first.id, 1);

    let op = w.engine.rollback("web", 1).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Succeeded, "{}", op.message);
    assert_eq!(image(&w).as_deref(), Some("registry.local/web:1"));
    let v = w.view("web");
    assert!(v.status.status.auto_sync_paused);
    let reason = v.status.status.auto_sync_paused_reason.unwrap();
    assert!(
        reason.contains(&format!("rolled back to revision {}", &first.revision[..7])),
        "{reason}"
    );
    assert_eq!(
        w.engine.history("web").unwrap().last().unwrap().trigger,
        "rollback"
    );
    // Several reconciliation periods later it is still rolled back.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(image(&w).as_deref(), Some("registry.local/web:1"));
    assert_eq!(w.view("web").status.status.sync.status, SyncCode::OutOfSync);

    w.repo.commit(
        &[(
            "web/deployment.yaml",
            &deployment(1, "registry.local/web:3"),
        )],
        &[],
        "web 3",
    );
    eventually("web:3 live", T, || async {
        (image(&w).as_deref() == Some("registry.local/web:3")).then_some(())
    })
    .await;
    let v = w.engine.wait("web", synced_healthy(), T).await.unwrap();
    assert!(!v.status.status.auto_sync_paused);
    assert_eq!(v.status.status.auto_sync_paused_reason, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_malformed_commit_is_a_comparison_error_naming_file_and_line_and_changes_nothing() {
    let w = World::new(&[
        (
            "app/deployment.yaml",
            &deployment(1, "registry.local/web:1"),
        ),
        ("app/settings.yaml", &config_map("settings", "hello", &[])),
    ]);
    w.engine
        .create_app(w.app("web", "app", automated(json!({}))), false)
        .unwrap();
    w.engine.wait("web", synced_healthy(), T).await.unwrap();
    let before = w.live("ConfigMap", "settings").unwrap();
    let dep_before = w.live("Deployment", "web").unwrap();

    w.repo.commit(
        &[
            ("app/settings.yaml", &fixture("broken.yaml")),
            (
                "app/deployment.yaml",
                &deployment(5, "registry.local/web:9"),
            ),
        ],
        &[],
        "broken",
    );
    let v = w.engine.refresh("web", false).await.unwrap();
    let cond = v
        .status
        .status
        .condition(COMPARISON_ERROR)
        .expect("condition");
    assert!(cond.message.contains("settings.yaml:7"), "{}", cond.message);
    assert_eq!(v.status.status.sync.status, SyncCode::Unknown);
    let op = w.engine.sync("web", manual_sync(true)).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Failed);
    assert!(op.message.contains("settings.yaml:7"), "{}", op.message);
    assert!(op.message.contains("nothing was applied"), "{}", op.message);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(w.live("ConfigMap", "settings").unwrap(), before);
    assert_eq!(
        w.live("Deployment", "web").unwrap().value()["spec"],
        dep_before.value()["spec"]
    );
    assert_eq!(
        w.engine.history("web").unwrap().len(),
        1,
        "no history for a render failure"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_repo_keeps_the_last_state_and_prunes_nothing() {
    let w = World::new(&[
        ("app/a.yaml", &config_map("a", "1", &[])),
        ("app/b.yaml", &config_map("b", "2", &[])),
    ]);
    w.engine
        .create_app(w.app("web", "app", Value::Null), false)
        .unwrap();
    let op = w.engine.sync("web", manual_sync(true)).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Succeeded, "{}", op.message);
    // `b` leaves Git and the engine sees it; then the remote goes away.
    w.repo.commit(&[], &["app/b.yaml"], "drop b");
    let before = w.engine.refresh("web", false).await.unwrap();
    assert_eq!(before.status.status.sync.status, SyncCode::OutOfSync);
    w.repo.break_remote();
    let v = w.engine.refresh("web", true).await.unwrap();
    let cond = v
        .status
        .status
        .condition(COMPARISON_ERROR)
        .expect("condition");
    assert!(cond.message.contains("unreachable"), "{}", cond.message);
    assert_eq!(
        v.status.status.sync, before.status.status.sync,
        "last state kept"
    );
    assert_eq!(v.status.status.resources, before.status.status.resources);
    // The condition stays while the controller keeps comparing without fetching.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        w.view("web")
            .status
            .status
            .condition(COMPARISON_ERROR)
            .is_some()
    );
    let op = w.engine.sync("web", manual_sync(true)).await.unwrap();
    let rows = op.sync_result.unwrap().resources;
    let b = rows
        .iter()
        .find(|r| r.name == "b")
        .expect("b in the result");
    assert_eq!(b.status, ResultCode::PruneSkipped);
    assert!(b.message.contains("unreachable"), "{}", b.message);
    assert!(w.live("ConfigMap", "a").is_some());
    assert!(
        w.live("ConfigMap", "b").is_some(),
        "never pruned while unreachable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_copy_made_by_hand_keeps_the_label_but_is_never_pruned() {
    let w = World::new(&[("app/a.yaml", &config_map("a", "1", &[]))]);
    w.engine
        .create_app(w.app("web", "app", Value::Null), false)
        .unwrap();
    let op = w.engine.sync("web", manual_sync(true)).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Succeeded, "{}", op.message);
    let mut copy = w.live("ConfigMap", "a").unwrap();
    let meta = copy.metadata_mut();
    meta.insert("name".into(), json!("a-copy"));
    for f in [
        "uid",
        "resourceVersion",
        "managedFields",
        "creationTimestamp",
    ] {
        meta.remove(f);
    }
    let by_hand = ApplyOptions {
        field_manager: "kubectl".into(),
        ..ApplyOptions::default()
    };
    w.target.apply(&copy, &by_hand).await.unwrap();
    assert_eq!(copy.label("app.kubernetes.io/instance"), Some("web"));

    let v = w.engine.refresh("web", false).await.unwrap();
    assert_eq!(v.status.status.sync.status, SyncCode::Synced);
    assert!(v.status.status.resources.iter().all(|r| r.name != "a-copy"));
    let op = w.engine.sync("web", manual_sync(true)).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Succeeded, "{}", op.message);
    assert!(w.live("ConfigMap", "a-copy").is_some());
    // Deleting the app with cascade leaves the copy too.
    let deleted = w.engine.delete_app("web", true).await.unwrap();
    assert_eq!(deleted.deleted, ["/ConfigMap:shop/a"]);
    assert!(w.live("ConfigMap", "a").is_none());
    assert!(w.live("ConfigMap", "a-copy").is_some());
    assert!(w.engine.get_app("web").unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_object_rendered_by_two_apps_warns_on_both_and_neither_prunes_it() {
    let shared = config_map("shared", "s", &[]);
    let w = World::new(&[
        ("one/shared.yaml", &shared),
        ("one/own.yaml", &config_map("one", "1", &[])),
        ("two/shared.yaml", &shared),
        ("two/own.yaml", &config_map("two", "2", &[])),
    ]);
    for name in ["one", "two"] {
        w.engine
            .create_app(w.app(name, name, Value::Null), false)
            .unwrap();
    }
    for name in ["one", "two"] {
        let op = w.engine.sync(name, manual_sync(true)).await.unwrap();
        assert_eq!(op.phase, OperationPhase::Succeeded, "{}", op.message);
    }
    for (name, other) in [("one", "two"), ("two", "one")] {
        let cond = eventually("SharedResourceWarning", T, || async {
            w.view(name)
                .status
                .status
                .condition(SHARED_RESOURCE_WARNING)
                .cloned()
        })
        .await;
        assert!(
            cond.message.contains("shared") && cond.message.contains(other),
            "{}",
            cond.message
        );
    }
    // Both see the shared object as Synced, whoever applied it last.
    for name in ["one", "two"] {
        let v = w.engine.refresh(name, false).await.unwrap();
        assert_eq!(v.status.status.sync.status, SyncCode::Synced, "{name}");
    }
    // `two` stops rendering it and prunes: `one` still renders it, so it stays.
    w.repo.commit(&[], &["two/shared.yaml"], "two drops shared");
    let op = w.engine.sync("two", manual_sync(true)).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Succeeded, "{}", op.message);
    assert!(w.live("ConfigMap", "shared").is_some());
    let op = w.engine.sync("one", manual_sync(true)).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Succeeded, "{}", op.message);
    assert!(w.live("ConfigMap", "shared").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operation_left_running_by_a_killed_daemon_is_retried_once_on_restart() {
    let w = World::new(&[("app/a.yaml", &config_map("a", "1", &[]))]);
    w.engine
        .create_app(w.app("web", "app", Value::Null), false)
        .unwrap();
    let op = w.engine.sync("web", manual_sync(false)).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Succeeded, "{}", op.message);
    // The daemon died in the middle of an automated sync, before it had resolved
    // its revision or changed anything (as an older ferry recorded it, too).
    let mut running = serde_json::to_value(&op).unwrap();
    running["phase"] = json!("Running");
    running["message"] = json!("rendering and validating");
    running["operation"]["initiatedBy"] = json!({"automated": true});
    running["operation"]["trigger"] = json!("automated");
    for field in ["finishedAt", "syncResult", "historyId", "attempt", "hooks"] {
        running.as_object_mut().unwrap().remove(field);
    }
    w.db.put_app_operation("web", "Running", &running).unwrap();

    let w = w.restart();
    let op = eventually("the interrupted sync retried", T, || async {
        w.view("web")
            .status
            .operation_state
            .filter(|o| o.phase != OperationPhase::Running)
    })
    .await;
    assert_eq!(op.phase, OperationPhase::Succeeded, "{}", op.message);
    assert!(
        op.message
            .ends_with("(retried after the daemon stopped during the sync)"),
        "{}",
        op.message
    );
    assert_eq!(op.restarts, 1);
    assert!(op.finished_at.is_some());
    let history = w.engine.history("web").unwrap();
    assert_eq!(
        history
            .iter()
            .map(|h| (h.id, h.result, h.trigger.as_str()))
            .collect::<Vec<_>>(),
        [
            (1, OperationPhase::Succeeded, "manual"),
            (2, OperationPhase::Succeeded, "automated")
        ]
    );
    assert_eq!(
        w.db.app_operation("web").unwrap().unwrap().phase,
        "Succeeded"
    );
    assert_eq!(w.view("web").status.status.sync.status, SyncCode::Synced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pod_in_image_pull_back_off_makes_the_app_degraded_at_once() {
    let w = World::new(&[(
        "web/deployment.yaml",
        &deployment(1, "registry.local/web:bad"),
    )]);
    w.engine
        .create_app(w.app("web", "web", Value::Null), false)
        .unwrap();
    let started = std::time::Instant::now();
    let op = w.engine.sync("web", manual_sync(false)).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Failed);
    assert!(op.message.contains("ImagePullBackOff"), "{}", op.message);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "failed at once, not at the {:?} timeout",
        harness::config().sync_timeout
    );
    let v = w.engine.refresh("web", false).await.unwrap();
    assert_eq!(v.status.status.health.status, HealthStatus::Degraded);
    assert!(
        v.status.status.health.message.contains("ImagePullBackOff"),
        "{}",
        v.status.status.health.message
    );
    let history = w.engine.history("web").unwrap();
    assert_eq!(history[0].result, OperationPhase::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commit_whose_automated_sync_failed_is_not_synced_again_in_a_loop() {
    // The Deployment fails in wave 0, so the ConfigMap of wave 1 stays Missing and
    // the app OutOfSync: only Argo's rule stops another attempt.
    let w = World::new(&[
        (
            "web/deployment.yaml",
            &deployment(1, "registry.local/web:bad"),
        ),
        (
            "web/after.yaml",
            &config_map("after", "1", &[("argocd.argoproj.io/sync-wave", "1")]),
        ),
    ]);
    w.engine
        .create_app(w.app("web", "web", automated(json!({}))), false)
        .unwrap();
    let op = eventually("the automated sync to fail", T, || async {
        let op = w.view("web").status.operation_state?;
        (op.phase == OperationPhase::Failed).then_some(op)
    })
    .await;
    assert!(op.message.contains("ImagePullBackOff"), "{}", op.message);
    // Several reconciliation and self-heal periods later: still one attempt.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let history = w.engine.history("web").unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].result, OperationPhase::Failed);
    assert_eq!(w.view("web").status.status.sync.status, SyncCode::OutOfSync);
    assert!(w.live("ConfigMap", "after").is_none());
    // A fixing commit is synced.
    w.repo.commit(
        &[(
            "web/deployment.yaml",
            &deployment(1, "registry.local/web:2"),
        )],
        &[],
        "fix the image",
    );
    let v = w.engine.wait("web", synced_healthy(), T).await.unwrap();
    assert_eq!(v.status.history.len(), 2);
    assert_eq!(
        v.status.history[1].result,
        OperationPhase::Succeeded,
        "{:?}",
        v.status.history[1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_sync_is_retried_as_the_retry_policy_says() {
    let w = World::new(&[(
        "web/deployment.yaml",
        &deployment(1, "registry.local/web:bad"),
    )]);
    let app = w.app(
        "web",
        "web",
        json!({"retry": {"limit": 2, "backoff": {"duration": "0.05s", "factor": 2, "maxDuration": "1s"}}}),
    );
    w.engine.create_app(app, false).unwrap();
    let op = w.engine.sync("web", manual_sync(false)).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Failed);
    assert_eq!(op.retry_count, 2);
    assert!(op.message.contains("ImagePullBackOff"), "{}", op.message);
    // One operation, one history entry, however many attempts it took.
    assert_eq!(w.engine.history("web").unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refresh_that_finds_nothing_new_writes_nothing() {
    let w = World::new(&[("app/a.yaml", &config_map("a", "1", &[]))]);
    w.engine
        .create_app(w.app("web", "app", Value::Null), false)
        .unwrap();
    let op = w.engine.sync("web", manual_sync(false)).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Succeeded, "{}", op.message);
    let v = w.engine.refresh("web", false).await.unwrap();
    let stored = w.db.app("web").unwrap().unwrap().status;
    let trees = w.repos.stats().trees_written;
    // reconciledAt has one-second precision: let it move.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = w.engine.refresh("web", false).await.unwrap();
    assert_ne!(
        again.status.status.reconciled_at,
        v.status.status.reconciled_at
    );
    assert_eq!(
        w.db.app("web").unwrap().unwrap().status,
        stored,
        "status row not rewritten"
    );
    assert_eq!(
        w.repos.stats().trees_written,
        trees,
        "same commit, no new checkout"
    );
    // A hard refresh renders again but still finds nothing to write.
    w.engine.refresh("web", true).await.unwrap();
    assert_eq!(w.db.app("web").unwrap().unwrap().status, stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dry_run_reports_what_would_change_and_applies_nothing() {
    let w = World::new(&[
        (
            "app/deployment.yaml",
            &deployment(1, "registry.local/web:1"),
        ),
        ("app/a.yaml", &config_map("a", "1", &[])),
    ]);
    w.engine
        .create_app(w.app("web", "app", Value::Null), false)
        .unwrap();
    let op = w
        .engine
        .sync(
            "web",
            SyncRequest {
                dry_run: true,
                ..SyncRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(op.phase, OperationPhase::Succeeded, "{}", op.message);
    assert!(op.message.contains("2 to apply"), "{}", op.message);
    assert!(w.target.log().is_empty(), "{:?}", w.target.log());
    assert!(w.live("Deployment", "web").is_none());
    assert!(w.engine.history("web").unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resource_filter_limits_the_sync_to_those_objects() {
    let w = World::new(&[
        ("app/a.yaml", &config_map("a", "1", &[])),
        ("app/b.yaml", &config_map("b", "2", &[])),
    ]);
    w.engine
        .create_app(w.app("web", "app", Value::Null), false)
        .unwrap();
    let op = w
        .engine
        .sync(
            "web",
            SyncRequest {
                resources: vec![":ConfigMap:shop/b".parse().unwrap()],
                ..SyncRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(op.phase, OperationPhase::Succeeded, "{}", op.message);
    assert!(w.live("ConfigMap", "a").is_none());
    assert!(w.live("ConfigMap", "b").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_namespace_and_delete_false_are_honoured() {
    let w = World::new(&[
        ("app/a.yaml", &config_map("a", "1", &[])),
        (
            "app/keep.yaml",
            &config_map(
                "keep",
                "k",
                &[("argocd.argoproj.io/sync-options", "Delete=false")],
            ),
        ),
    ]);
    let app = w.app(
        "web",
        "app",
        json!({"syncOptions": ["CreateNamespace=true"], "managedNamespaceMetadata": {"labels": {"team": "shop"}}}),
    );
    w.engine.create_app(app, false).unwrap();
    let op = w.engine.sync("web", manual_sync(false)).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Succeeded, "{}", op.message);
    assert_eq!(w.target.log()[0], "apply Namespace/shop");
    let ns = w
        .target
        .cluster
        .get(&ferry_core::ObjectKey::new("", "Namespace", "", "shop"))
        .unwrap();
    assert_eq!(ns.label("team"), Some("shop"));
    let deleted = w.engine.delete_app("web", true).await.unwrap();
    assert_eq!(deleted.kept, ["/ConfigMap:shop/keep"]);
    assert!(w.live("ConfigMap", "a").is_none());
    assert!(w.live("ConfigMap", "keep").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_applications_are_refused_and_unread_fields_warned_about() {
    let w = World::new(&[("app/a.yaml", &config_map("a", "1", &[]))]);
    let mut app = w.app("web", "app", Value::Null);
    app.spec.destination.server = "https://prod.example.com".into();
    app.spec.destination.name.clear();
    let err = w.engine.create_app(app, false).unwrap_err().to_string();
    assert!(err.contains("spec.destination"), "{err}");
    let mut bad = w.app(
        "web",
        "app",
        json!({"syncOptions": ["CreateNamespace=maybe"]}),
    );
    bad.spec.revision_history_limit = Some(3);
    let err = w.engine.create_app(bad, false).unwrap_err().to_string();
    assert!(err.contains("CreateNamespace"), "{err}");
    w.engine
        .create_app(w.app("web", "app", Value::Null), false)
        .unwrap();
    // Same spec again: fine; another spec without upsert: refused.
    w.engine
        .create_app(w.app("web", "app", Value::Null), false)
        .unwrap();
    let other = w.app("web", "other", Value::Null);
    assert!(matches!(
        w.engine.create_app(other.clone(), false),
        Err(ferry_engine::Error::AlreadyExists { .. })
    ));
    w.engine.create_app(other, true).unwrap();
    assert_eq!(w.view("web").spec.source.unwrap().path, "other");
    // From a document: fields ferry does not read are warnings naming them.
    let doc = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: docs\nspec:\n  source:\n    repoURL: {}\n    path: app\n    plugin:\n      name: cmp\n  destination:\n    name: in-cluster\n    namespace: shop\n",
        w.repo.url()
    );
    let obj = ferry_core::parse::parse_str(&doc, "docs.yaml")
        .unwrap()
        .remove(0);
    let warnings = w.engine.create_app_from_object(&obj, false).unwrap();
    assert!(
        warnings.iter().any(|w| w.contains("spec.source.plugin")),
        "{warnings:?}"
    );
    assert!(w.engine.get_app("docs").unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apply_out_of_sync_only_and_replace_change_how_objects_are_applied() {
    let replace = [("argocd.argoproj.io/sync-options", "Replace=true")];
    let w = World::new(&[
        ("app/a.yaml", &config_map("a", "1", &[])),
        ("app/b.yaml", &config_map("b", "1", &[])),
        ("app/r.yaml", &config_map("r", "1", &replace)),
    ]);
    let app = w.app(
        "web",
        "app",
        json!({"syncOptions": ["ApplyOutOfSyncOnly=true"]}),
    );
    w.engine.create_app(app, false).unwrap();
    let op = w.engine.sync("web", manual_sync(false)).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Succeeded, "{}", op.message);
    let uid = |w: &World| w.live("ConfigMap", "r").unwrap().value()["metadata"]["uid"].clone();
    let first_uid = uid(&w);
    w.repo.commit(
        &[
            ("app/b.yaml", &config_map("b", "2", &[])),
            ("app/r.yaml", &config_map("r", "2", &replace)),
        ],
        &[],
        "change b and r",
    );
    w.target.clear();
    let op = w.engine.sync("web", manual_sync(false)).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Succeeded, "{}", op.message);
    assert_eq!(
        w.target.log(),
        [
            "apply ConfigMap/b",
            "delete ConfigMap/r",
            "apply ConfigMap/r"
        ],
        "a is in sync and left alone; r is replaced"
    );
    assert_ne!(uid(&w), first_uid, "Replace=true deletes and creates");
    let rows = op.sync_result.unwrap().resources;
    let r = rows.iter().find(|r| r.name == "r").unwrap();
    assert_eq!(r.message, "replaced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sync_fail_hooks_run_only_when_the_sync_fails() {
    let on_fail = config_map("on-fail", "x", &[("argocd.argoproj.io/hook", "SyncFail")]);
    let w = World::new(&[
        (
            "app/deployment.yaml",
            &deployment(1, "registry.local/web:1"),
        ),
        ("app/on-fail.yaml", &on_fail),
    ]);
    w.engine
        .create_app(w.app("web", "app", Value::Null), false)
        .unwrap();
    let op = w.engine.sync("web", manual_sync(false)).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Succeeded, "{}", op.message);
    assert!(
        !w.target
            .log()
            .contains(&"apply ConfigMap/on-fail".to_string())
    );
    w.repo.commit(
        &[(
            "app/deployment.yaml",
            &deployment(1, "registry.local/web:bad"),
        )],
        &[],
        "bad image",
    );
    let op = w.engine.sync("web", manual_sync(false)).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Failed);
    let log = w.target.log();
    assert_eq!(
        log.last().map(String::as_str),
        Some("apply ConfigMap/on-fail"),
        "{log:?}"
    );
    let rows = op.sync_result.unwrap().resources;
    let hook = rows.iter().find(|r| r.name == "on-fail").unwrap();
    assert_eq!(hook.hook_type.as_deref(), Some("SyncFail"));
    assert_eq!(hook.hook_phase.as_deref(), Some("Succeeded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_keeps_revision_history_limit_entries_with_increasing_ids() {
    let w = World::new(&[("app/a.yaml", &config_map("a", "0", &[]))]);
    let mut app = w.app("web", "app", Value::Null);
    app.spec.revision_history_limit = Some(2);
    w.engine.create_app(app, false).unwrap();
    for i in 1..=3 {
        w.repo.commit(
            &[("app/a.yaml", &config_map("a", &i.to_string(), &[]))],
            &[],
            "bump",
        );
        let op = w.engine.sync("web", manual_sync(false)).await.unwrap();
        assert_eq!(op.phase, OperationPhase::Succeeded, "{}", op.message);
    }
    let ids: Vec<i64> = w
        .engine
        .history("web")
        .unwrap()
        .iter()
        .map(|h| h.id)
        .collect();
    assert_eq!(ids, [2, 3]);
    let err = w.engine.rollback("web", 1).await.unwrap_err();
    assert!(
        matches!(err, ferry_engine::Error::HistoryNotFound { id: 1, .. }),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hook_with_generate_name_gets_a_fresh_name_each_sync() {
    let smoke = fixture("presync-job.yaml")
        .replace("  name: migrate\n", "  generateName: smoke-\n")
        .replace("hook: PreSync", "hook: PostSync")
        .replace("HookSucceeded", "HookFailed");
    let w = World::new(&[
        ("app/a.yaml", &config_map("a", "1", &[])),
        ("app/smoke.yaml", &smoke),
    ]);
    w.engine
        .create_app(w.app("web", "app", Value::Null), false)
        .unwrap();
    let mut names = Vec::new();
    for _ in 0..2 {
        let op = w.engine.sync("web", manual_sync(false)).await.unwrap();
        assert_eq!(op.phase, OperationPhase::Succeeded, "{}", op.message);
        let rows = op.sync_result.unwrap().resources;
        let hook = rows.iter().find(|r| r.kind == "Job").unwrap();
        assert!(hook.name.starts_with("smoke-"), "{}", hook.name);
        assert_eq!(hook.sync_phase, "PostSync");
        names.push(hook.name.clone());
    }
    assert_ne!(names[0], names[1]);
    // Kept (HookFailed only deletes failures), tracked, and shown as hooks.
    let v = w.engine.refresh("web", false).await.unwrap();
    let hooks: Vec<&str> = v
        .status
        .status
        .resources
        .iter()
        .filter(|r| r.hook)
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(hooks.len(), 2, "{hooks:?}");
    assert_eq!(v.status.status.sync.status, SyncCode::Synced);
    let deleted = w.engine.delete_app("web", true).await.unwrap();
    assert_eq!(deleted.deleted.len(), 3, "{deleted:?}");
}

/// A Pod named `../../../victim2`, the name that once made the runtime write and
/// prune outside its home.
const DOTDOT_POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: ../../../victim2\nspec:\n  containers:\n    - name: c\n      image: registry.local/web:1\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn regression_pod_named_dotdot_in_git_is_a_comparison_error_with_file_line_and_field() {
    let w = World::new(&[("app/a.yaml", &config_map("a", "1", &[]))]);
    w.engine
        .create_app(w.app("web", "app", Value::Null), false)
        .unwrap();
    let op = w.engine.sync("web", manual_sync(true)).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Succeeded, "{}", op.message);
    let before = w.live("ConfigMap", "a").unwrap();
    // The bad Pod is the second document of its file, from its `---` on line 7; a good
    // ConfigMap beside it must not be applied either.
    let file = format!("{}---\n{DOTDOT_POD}", config_map("b", "2", &[]));
    w.repo.commit(
        &[
            ("app/pods.yaml", &file),
            ("app/a.yaml", &config_map("a", "changed", &[])),
        ],
        &[],
        "a pod named ../../../victim2",
    );
    let v = w.engine.refresh("web", false).await.unwrap();
    let cond = v
        .status
        .status
        .condition(COMPARISON_ERROR)
        .expect("a ComparisonError");
    for want in [
        "app/pods.yaml:7: ",
        "Pod \"../../../victim2\" is invalid: metadata.name: Invalid value: \"../../../victim2\": a lowercase RFC 1123 subdomain",
    ] {
        assert!(cond.message.contains(want), "{want:?} in {}", cond.message);
    }
    assert_eq!(v.status.status.sync.status, SyncCode::Unknown);
    let op = w.engine.sync("web", manual_sync(true)).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Failed);
    assert!(op.message.contains("app/pods.yaml:7"), "{}", op.message);
    assert!(op.message.contains("nothing was applied"), "{}", op.message);
    assert_eq!(
        w.live("ConfigMap", "a").unwrap(),
        before,
        "live state untouched"
    );
    assert!(w.live("ConfigMap", "b").is_none());
    assert!(w.live("Pod", "../../../victim2").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn regression_an_application_with_an_invalid_name_or_namespace_is_refused() {
    let w = World::new(&[("app/a.yaml", &config_map("a", "1", &[]))]);
    let err = w
        .engine
        .create_app(w.app("../../x", "app", Value::Null), false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("metadata.name: Invalid value: \"../../x\": a lowercase RFC 1123 subdomain"),
        "{err}"
    );
    let mut app = w.app("web", "app", Value::Null);
    app.spec.destination.namespace = "../../../x".into();
    let err = w.engine.create_app(app, false).unwrap_err().to_string();
    assert!(
        err.contains(
            "spec.destination.namespace: Invalid value: \"../../../x\": a lowercase RFC 1123 label"
        ),
        "{err}"
    );
    assert!(w.engine.list_apps().unwrap().is_empty());
}

/// A PreSync hook Job kept after it ran (so that a restarted daemon can find it).
fn kept_presync_job() -> String {
    fixture("presync-job.yaml").replace(
        "hook-delete-policy: HookSucceeded",
        "hook-delete-policy: BeforeHookCreation",
    )
}

/// Syncs `web` once (a ConfigMap and a PreSync hook), then rewrites its finished
/// operation as a killed daemon leaves it: `Running`, waiting for the hook whose
/// record is `hook_phase`. Returns the world restarted, as the next daemon.
async fn killed_while_the_hook_ran(hook: String, hook_phase: &str) -> World {
    let w = World::new(&[
        ("app/a.yaml", &config_map("a", "1", &[])),
        ("app/migrate.yaml", &hook),
    ]);
    w.engine
        .create_app(w.app("web", "app", Value::Null), false)
        .unwrap();
    let op = w.engine.sync("web", manual_sync(false)).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Succeeded, "{}", op.message);
    assert_eq!(op.history_id, Some(1));
    assert_eq!(op.hooks.len(), 1, "{:?}", op.hooks);
    assert_eq!(op.hooks[0].phase, "Succeeded");
    // The daemon died while the hook ran: the Sync phase (the ConfigMap) not reached.
    let mut running = serde_json::to_value(&op).unwrap();
    running["phase"] = json!("Running");
    running["message"] = json!("PreSync wave 0: waiting for 1 resource(s) to become healthy");
    running["hooks"][0]["phase"] = json!(hook_phase);
    running["syncResult"]["resources"] = json!([]);
    running.as_object_mut().unwrap().remove("finishedAt");
    w.db.put_app_operation("web", "Running", &running).unwrap();
    let cm = ObjectKey::new("", "ConfigMap", "shop", "a");
    w.target
        .cluster
        .delete(&cm, ferry_runtime::cluster::Propagation::Background)
        .unwrap();
    w.restart()
}

/// The resumed operation once finished, checked: Succeeded, saying it was resumed,
/// the ConfigMap applied, the one history entry completed (no second one), and the
/// hook neither deleted nor created again.
async fn assert_resumed_without_running_the_hook_again(w: &World) -> OperationState {
    let op = eventually("the interrupted sync resumed", T, || async {
        w.view("web")
            .status
            .operation_state
            .filter(|o| o.phase != OperationPhase::Running)
    })
    .await;
    assert_eq!(op.phase, OperationPhase::Succeeded, "{}", op.message);
    assert!(
        op.message
            .ends_with("(resumed after the daemon stopped during the sync)"),
        "{}",
        op.message
    );
    assert_eq!(op.restarts, 1);
    let log = w.target.log();
    assert!(
        !log.iter().any(|l| l.ends_with("Job/migrate")),
        "the hook is not run again: {log:?}"
    );
    assert!(log.contains(&"apply ConfigMap/a".to_string()), "{log:?}");
    assert!(w.live("ConfigMap", "a").is_some());
    let history = w.engine.history("web").unwrap();
    assert_eq!(history.len(), 1, "one entry for the one sync: {history:?}");
    assert_eq!(history[0].id, 1);
    assert_eq!(history[0].result, OperationPhase::Succeeded);
    assert_eq!(history[0].message, op.message);
    assert_eq!(w.view("web").status.status.sync.status, SyncCode::Synced);
    op
}

/// Regression test: a daemon killed while a PreSync hook ran started it again on
/// restart (the next sync deleted the running hook and created a new one), so a
/// migration ran twice for one sync. The hook is now recorded before it is created,
/// and the next daemon resumes the sync, adopting the hook it finds (by the
/// attempt's annotation) instead of creating it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn regression_a_resumed_sync_adopts_the_running_hook_instead_of_starting_it_again() {
    let w = killed_while_the_hook_ran(kept_presync_job(), "Running").await;
    let op = assert_resumed_without_running_the_hook_again(&w).await;
    let job = w.live("Job", "migrate").expect("the hook Job kept");
    assert_eq!(job.annotation(SYNC_ATTEMPT), Some(op.attempt.as_str()));
    let rows = op.sync_result.unwrap().resources;
    let hook = rows.iter().find(|r| r.name == "migrate").unwrap();
    assert!(hook.message.contains("adopted"), "{}", hook.message);
    assert_eq!(hook.hook_phase.as_deref(), Some("Succeeded"));
}

/// A hook that finished (and was deleted, as `HookSucceeded` says) before the crash
/// is not run again when the sync resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hook_that_finished_before_the_crash_is_not_run_again_when_the_sync_resumes() {
    let w = killed_while_the_hook_ran(fixture("presync-job.yaml"), "Succeeded").await;
    assert!(w.live("Job", "migrate").is_none());
    let op = assert_resumed_without_running_the_hook_again(&w).await;
    let rows = op.sync_result.unwrap().resources;
    let hook = rows.iter().find(|r| r.name == "migrate").unwrap();
    assert!(hook.message.contains("not run again"), "{}", hook.message);
}

/// A hook recorded as started whose Job is not there (the daemon died between the
/// record and the create) is created once when the sync resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hook_recorded_but_never_created_is_created_once_when_the_sync_resumes() {
    let w = killed_while_the_hook_ran(fixture("presync-job.yaml"), "Starting").await;
    let op = eventually("the interrupted sync resumed", T, || async {
        w.view("web")
            .status
            .operation_state
            .filter(|o| o.phase != OperationPhase::Running)
    })
    .await;
    assert_eq!(op.phase, OperationPhase::Succeeded, "{}", op.message);
    let applies: Vec<String> = w
        .target
        .log()
        .into_iter()
        .filter(|l| l.starts_with("apply"))
        .collect();
    assert_eq!(applies, ["apply Job/migrate", "apply ConfigMap/a"]);
    assert_eq!(w.engine.history("web").unwrap().len(), 1);
}

/// An operation interrupted again and again is given up, not taken up forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operation_interrupted_too_often_is_given_up_with_its_history_entry_failed() {
    let w = World::new(&[("app/a.yaml", &config_map("a", "1", &[]))]);
    w.engine
        .create_app(w.app("web", "app", Value::Null), false)
        .unwrap();
    let op = w.engine.sync("web", manual_sync(false)).await.unwrap();
    let mut running = serde_json::to_value(&op).unwrap();
    running["phase"] = json!("Running");
    running["restarts"] = json!(3);
    running.as_object_mut().unwrap().remove("finishedAt");
    w.db.put_app_operation("web", "Running", &running).unwrap();
    let w = w.restart();
    let op = w.view("web").status.operation_state.unwrap();
    assert_eq!(op.phase, OperationPhase::Failed);
    assert!(op.message.contains("4 times"), "{}", op.message);
    assert!(op.message.contains("run the sync again"), "{}", op.message);
    let history = w.engine.history("web").unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].result, OperationPhase::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn regression_a_kustomization_reaching_outside_the_repository_is_a_comparison_error() {
    let has_kubectl = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("kubectl").is_file()));
    if !has_kubectl {
        eprintln!("SKIPPED: kubectl is not on PATH");
        return;
    }
    // An overlay reaching its base inside the repository renders and syncs.
    let w = World::new(&[
        (
            "overlays/prod/kustomization.yaml",
            "resources:\n  - ../../base\n",
        ),
        ("base/kustomization.yaml", "resources:\n  - cm.yaml\n"),
        ("base/cm.yaml", &config_map("settings", "hello", &[])),
    ]);
    w.engine
        .create_app(w.app("web", "overlays/prod", Value::Null), false)
        .unwrap();
    let op = w.engine.sync("web", manual_sync(true)).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Succeeded, "{}", op.message);
    let before = w.live("ConfigMap", "settings").unwrap();

    // A commit whose kustomization climbs out of the checkout to a directory on the
    // host (as far up as it takes: `..` stops at `/`) renders nothing of it.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(
        outside.path().join("kustomization.yaml"),
        "resources:\n  - cm.yaml\n",
    )
    .unwrap();
    std::fs::write(
        outside.path().join("cm.yaml"),
        config_map("stolen", "from the host", &[]),
    )
    .unwrap();
    let escape = format!(
        "{}{}",
        "../".repeat(64),
        outside.path().display().to_string().trim_start_matches('/')
    );
    w.repo.commit(
        &[
            (
                "overlays/prod/kustomization.yaml",
                &format!("resources:\n  - ../../base\n  - {escape}\n"),
            ),
            ("base/cm.yaml", &config_map("settings", "changed", &[])),
        ],
        &[],
        "reach outside",
    );
    let v = w.engine.refresh("web", false).await.unwrap();
    let cond = v
        .status
        .status
        .condition(COMPARISON_ERROR)
        .expect("a ComparisonError");
    let want = format!(
        "overlays/prod/kustomization.yaml: resources[1] {escape:?} points outside the repository"
    );
    assert!(cond.message.contains(&want), "{want:?} in {}", cond.message);
    assert_eq!(v.status.status.sync.status, SyncCode::Unknown);
    let op = w.engine.sync("web", manual_sync(true)).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Failed);
    assert!(op.message.contains("nothing was applied"), "{}", op.message);
    assert!(w.live("ConfigMap", "stolen").is_none());
    assert_eq!(
        w.live("ConfigMap", "settings").unwrap(),
        before,
        "live state untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn regression_a_misspelt_field_is_a_render_warning_and_bad_secret_data_a_comparison_error() {
    // `replica` for `replicas`: applied as written by Kubernetes' lenient decoders,
    // so the app must say so rather than run one replica in silence.
    let dep =
        deployment(1, "registry.local/web:1").replace("replicas: 1", "replica: 3\n  replicas: 1");
    let w = World::new(&[("app/deployment.yaml", &dep)]);
    w.engine
        .create_app(w.app("web", "app", Value::Null), false)
        .unwrap();
    let v = w.engine.refresh("web", false).await.unwrap();
    let warning = v
        .status
        .status
        .condition(ferry_engine::RENDER_WARNING)
        .expect("a render warning");
    assert!(
        warning
            .message
            .contains("app/deployment.yaml:1: Deployment \"web\": unknown field \"spec.replica\""),
        "{}",
        warning.message
    );
    // A Secret whose data is not base64 would be refused by the store mid-sync:
    // the render refuses it first, naming the key, and nothing is applied.
    w.repo.commit(
        &[(
            "app/secret.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ndata:\n  password: not base64!\n",
        )],
        &[],
        "a secret with clear text under data",
    );
    let v = w.engine.refresh("web", false).await.unwrap();
    let cond = v
        .status
        .status
        .condition(COMPARISON_ERROR)
        .expect("a ComparisonError");
    assert!(
        cond.message.contains("app/secret.yaml:1: Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data")
            && cond.message.contains("data[password]"),
        "{}",
        cond.message
    );
    let op = w.engine.sync("web", manual_sync(true)).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Failed, "{}", op.message);
    assert!(w.live("Deployment", "web").is_none(), "nothing applied");
}
