//! Sync planning over a fixture app with hooks, waves and sync options.

use ferry_core::plan::{self, HookDeletePolicy, Phase};

use crate::util::load;

fn describe(objs: &[ferry_core::Object], t: &plan::Task) -> String {
    let o = &objs[t.index];
    format!("{} {} {}/{}", t.phase, t.wave, o.kind(), o.name())
}

#[test]
fn plan_orders_phases_waves_and_kinds_like_argo() {
    let objs = load("plan/app.yaml");
    let p = plan::plan(&objs).unwrap();
    let order: Vec<String> = p.tasks.iter().map(|t| describe(&objs, t)).collect();
    assert_eq!(
        order,
        vec![
            "PreSync -5 Job/helm-pre",
            "PreSync 0 Job/migrate-",
            "Sync -1 ConfigMap/config",
            "Sync -1 Rollout/api",
            "Sync 0 Namespace/shop",
            "Sync 0 Secret/creds",
            "Sync 0 Service/web",
            "Sync 0 Deployment/web",
            "Sync 5 ConfigMap/late",
            "PostSync 0 Job/smoke-test",
            "SyncFail 0 Pod/page-oncall",
        ]
    );
    assert_eq!(p.skipped.len(), 1);
    assert_eq!(objs[p.skipped[0]].name(), "local-only");
    assert_eq!(p.waves(Phase::Sync), vec![-1, 0, 5]);
    let smoke = p
        .tasks
        .iter()
        .find(|t| objs[t.index].name() == "smoke-test")
        .unwrap();
    assert!(smoke.hook);
    assert_eq!(
        smoke.delete_policies,
        vec![
            HookDeletePolicy::HookSucceeded,
            HookDeletePolicy::HookFailed
        ]
    );
    let late = p
        .tasks
        .iter()
        .find(|t| objs[t.index].name() == "late")
        .unwrap();
    assert!(!late.options.prune && !late.options.delete);
    assert!(
        !p.tasks
            .iter()
            .find(|t| objs[t.index].kind() == "Deployment")
            .unwrap()
            .hook
    );
}

#[test]
fn prune_runs_in_reverse_order_and_honours_prune_false() {
    let objs: Vec<_> = load("plan/app.yaml")
        .into_iter()
        .filter(|o| o.annotation(plan::HOOK).is_none() && o.annotation("helm.sh/hook").is_none())
        .collect();
    let (prune, kept) = plan::prune_order(&objs);
    let names: Vec<String> = prune
        .iter()
        .map(|i| format!("{}/{}", objs[*i].kind(), objs[*i].name()))
        .collect();
    assert_eq!(
        names,
        vec![
            "Deployment/web",
            "Service/web",
            "Secret/creds",
            "Namespace/shop",
            "Rollout/api",
            "ConfigMap/config",
        ]
    );
    assert_eq!(kept.len(), 1);
    assert_eq!(objs[kept[0]].name(), "late");
    let (delete, kept) = plan::delete_order(&objs);
    assert_eq!(delete.len(), 6);
    assert_eq!(objs[kept[0]].name(), "late");
}

#[test]
fn unknown_sync_option_is_a_warning_naming_the_object() {
    let objs = ferry_core::parse::parse_str(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  annotations:\n    argocd.argoproj.io/sync-options: Prune=false,Frobnicate=true\n",
        "c.yaml",
    )
    .unwrap();
    let p = plan::plan(&objs).unwrap();
    assert_eq!(p.warnings.len(), 1);
    assert!(
        p.warnings[0].contains("c.yaml:1") && p.warnings[0].contains("Frobnicate"),
        "{}",
        p.warnings[0]
    );
}
