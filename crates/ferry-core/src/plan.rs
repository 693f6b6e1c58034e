//! Sync planning: which objects are applied in which phase and wave, in what order,
//! and what is pruned — Argo CD's rules, read from the objects' annotations.
//!
//! Order within a sync: phases PreSync → Sync → PostSync (SyncFail only when the sync
//! fails); within a phase, waves ascending (`argocd.argoproj.io/sync-wave`, default 0,
//! negatives allowed); within a wave, Argo's kind order (Namespace first, custom
//! resources last); then name. Pruning runs in the reverse of that order.

use std::cmp::Ordering;
use std::fmt;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::object::Object;

/// Annotation naming a hook's phases.
pub const HOOK: &str = "argocd.argoproj.io/hook";
/// Annotation holding a hook's deletion policies.
pub const HOOK_DELETE_POLICY: &str = "argocd.argoproj.io/hook-delete-policy";
/// Annotation holding an object's wave.
pub const SYNC_WAVE: &str = "argocd.argoproj.io/sync-wave";
/// Annotation holding per-object sync options (`Prune=false,Delete=false,…`).
pub const SYNC_OPTIONS: &str = "argocd.argoproj.io/sync-options";
const HELM_HOOK: &str = "helm.sh/hook";
const HELM_HOOK_WEIGHT: &str = "helm.sh/hook-weight";
const HELM_HOOK_DELETE_POLICY: &str = "helm.sh/hook-delete-policy";

/// A sync phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Phase {
    /// Before the app's resources: migrations, checks.
    PreSync,
    /// The app's resources (and `Sync` hooks).
    Sync,
    /// After every Sync-phase resource is healthy: smoke tests, notifications.
    PostSync,
    /// Only when the sync failed: clean-up, alerts.
    SyncFail,
}

impl Phase {
    /// The name Argo uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::PreSync => "PreSync",
            Phase::Sync => "Sync",
            Phase::PostSync => "PostSync",
            Phase::SyncFail => "SyncFail",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a hook object is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum HookDeletePolicy {
    /// Delete the previous hook object before creating it again (Argo's default).
    BeforeHookCreation,
    /// Delete once the hook succeeded.
    HookSucceeded,
    /// Delete once the hook failed.
    HookFailed,
}

/// Per-object sync options from `argocd.argoproj.io/sync-options`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObjectOptions {
    /// `Prune=false` keeps the object when it leaves Git.
    pub prune: bool,
    /// `Delete=false` keeps the object when the app is deleted.
    pub delete: bool,
    /// `Replace=true` replaces instead of applying.
    pub replace: bool,
    /// `Force=true` deletes and recreates when a replace is refused.
    pub force: bool,
    /// `ServerSideApply=true`.
    pub server_side_apply: bool,
    /// `SkipDryRunOnMissingResource=true`.
    pub skip_dry_run_on_missing_resource: bool,
}

impl Default for ObjectOptions {
    fn default() -> Self {
        Self {
            prune: true,
            delete: true,
            replace: false,
            force: false,
            server_side_apply: false,
            skip_dry_run_on_missing_resource: false,
        }
    }
}

impl ObjectOptions {
    /// Reads the options of one object; unknown options are returned as warnings.
    pub fn of(obj: &Object) -> (Self, Vec<String>) {
        let mut opts = Self::default();
        let mut warnings = Vec::new();
        let Some(raw) = obj.annotation(SYNC_OPTIONS) else {
            return (opts, warnings);
        };
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (k, v) = item.split_once('=').unwrap_or((item, "true"));
            let flag = v.trim().eq_ignore_ascii_case("true");
            match k.trim() {
                "Prune" => opts.prune = flag || v.trim() == "confirm",
                "Delete" => opts.delete = flag || v.trim() == "confirm",
                "Replace" => opts.replace = flag,
                "Force" => opts.force = flag,
                "ServerSideApply" => opts.server_side_apply = flag,
                "SkipDryRunOnMissingResource" => opts.skip_dry_run_on_missing_resource = flag,
                "Validate"
                | "PruneLast"
                | "ApplyOutOfSyncOnly"
                | "RespectIgnoreDifferences"
                | "CreateNamespace"
                | "PrunePropagationPolicy"
                | "FailOnSharedResource" => {}
                other => warnings.push(format!(
                    "{}: {SYNC_OPTIONS}: unknown sync option {other:?}",
                    obj.origin()
                )),
            }
        }
        (opts, warnings)
    }
}

/// One object to apply, where and when.
#[derive(Clone, Debug)]
pub struct Task {
    /// Index of the object in the input slice.
    pub index: usize,
    /// Its phase.
    pub phase: Phase,
    /// Its wave.
    pub wave: i32,
    /// Whether it is a hook (re-created on each sync, not tracked for pruning).
    pub hook: bool,
    /// Hook deletion policies (empty for non-hooks).
    pub delete_policies: Vec<HookDeletePolicy>,
    /// Its sync options.
    pub options: ObjectOptions,
    kind_rank: usize,
    kind: String,
    name: String,
    namespace: String,
}

impl Task {
    fn sort_key(&self) -> (Phase, i32, usize, &str, &str, &str) {
        (
            self.phase,
            self.wave,
            self.kind_rank,
            self.kind.as_str(),
            self.namespace.as_str(),
            self.name.as_str(),
        )
    }
}

/// The order of a sync.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Objects to apply, in order. A hook in several phases appears once per phase.
    pub tasks: Vec<Task>,
    /// Objects marked `argocd.argoproj.io/hook: Skip`: never applied.
    pub skipped: Vec<usize>,
    /// Unknown sync options and similar findings, each naming its object.
    pub warnings: Vec<String>,
}

impl Plan {
    /// The tasks of one phase, in order.
    pub fn phase(&self, phase: Phase) -> impl Iterator<Item = &Task> {
        self.tasks.iter().filter(move |t| t.phase == phase)
    }

    /// The distinct waves of one phase, ascending.
    pub fn waves(&self, phase: Phase) -> Vec<i32> {
        let mut w: Vec<i32> = self.phase(phase).map(|t| t.wave).collect();
        w.dedup();
        w
    }
}

/// Argo CD's kind order within a wave (gitops-engine's `kindOrder`): kinds not listed
/// (custom resources among them) come after all of these.
pub const KIND_ORDER: &[&str] = &[
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
];

/// Rank of a kind in [`KIND_ORDER`]; unknown kinds rank last.
pub fn kind_rank(kind: &str) -> usize {
    KIND_ORDER
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(KIND_ORDER.len())
}

/// The wave of an object: `argocd.argoproj.io/sync-wave`, else (for Helm hooks)
/// `helm.sh/hook-weight`, else 0.
pub fn wave(obj: &Object) -> Result<i32> {
    let raw = obj.annotation(SYNC_WAVE).or_else(|| {
        obj.annotation(HELM_HOOK_WEIGHT)
            .filter(|_| obj.annotation(HELM_HOOK).is_some())
    });
    match raw {
        None => Ok(0),
        Some(s) => s.trim().parse::<i32>().map_err(|_| Error::Invalid {
            at: obj.source().cloned().map(Box::new),
            message: format!(
                "{}: annotation {SYNC_WAVE}: {s:?} is not an integer wave",
                obj.key()
            ),
        }),
    }
}

/// The phases of an object (`None` for `Skip`), and whether it is a hook.
fn phases(obj: &Object) -> Result<Option<(Vec<Phase>, bool)>> {
    if let Some(raw) = obj.annotation(HOOK) {
        let mut out = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item {
                "PreSync" => out.push(Phase::PreSync),
                "Sync" => out.push(Phase::Sync),
                "PostSync" => out.push(Phase::PostSync),
                "SyncFail" => out.push(Phase::SyncFail),
                "Skip" => return Ok(None),
                other => {
                    return Err(Error::Invalid {
                        at: obj.source().cloned().map(Box::new),
                        message: format!(
                            "{}: annotation {HOOK}: unknown hook {other:?} (expected PreSync, Sync, PostSync, SyncFail or Skip)",
                            obj.key()
                        ),
                    });
                }
            }
        }
        if !out.is_empty() {
            return Ok(Some((out, true)));
        }
    }
    if let Some(raw) = obj.annotation(HELM_HOOK) {
        // Argo maps Helm's hooks onto its phases; the rest (test, delete, rollback) are skipped.
        let mut out = Vec::new();
        for item in raw.split(',').map(str::trim) {
            match item {
                "pre-install" | "pre-upgrade" => out.push(Phase::PreSync),
                "post-install" | "post-upgrade" => out.push(Phase::PostSync),
                _ => {}
            }
        }
        out.dedup();
        return Ok(if out.is_empty() {
            None
        } else {
            Some((out, true))
        });
    }
    Ok(Some((vec![Phase::Sync], false)))
}

fn delete_policies(obj: &Object) -> Vec<HookDeletePolicy> {
    let raw = obj
        .annotation(HOOK_DELETE_POLICY)
        .or_else(|| obj.annotation(HELM_HOOK_DELETE_POLICY));
    let mut out: Vec<HookDeletePolicy> = raw
        .unwrap_or_default()
        .split(',')
        .filter_map(|p| match p.trim() {
            "HookSucceeded" | "hook-succeeded" => Some(HookDeletePolicy::HookSucceeded),
            "HookFailed" | "hook-failed" => Some(HookDeletePolicy::HookFailed),
            "BeforeHookCreation" | "before-hook-creation" => {
                Some(HookDeletePolicy::BeforeHookCreation)
            }
            _ => None,
        })
        .collect();
    if out.is_empty() {
        out.push(HookDeletePolicy::BeforeHookCreation);
    }
    out
}

/// Plans the sync of `objects`: every task in apply order.
pub fn plan(objects: &[Object]) -> Result<Plan> {
    let mut plan = Plan::default();
    for (index, obj) in objects.iter().enumerate() {
        let Some((phases, hook)) = phases(obj)? else {
            plan.skipped.push(index);
            continue;
        };
        let wave = wave(obj)?;
        let (options, warnings) = ObjectOptions::of(obj);
        plan.warnings.extend(warnings);
        let policies = if hook {
            delete_policies(obj)
        } else {
            Vec::new()
        };
        for phase in phases {
            plan.tasks.push(Task {
                index,
                phase,
                wave,
                hook,
                delete_policies: policies.clone(),
                options: options.clone(),
                kind_rank: kind_rank(obj.kind()),
                kind: obj.kind().to_string(),
                name: obj.name().to_string(),
                namespace: obj.namespace().to_string(),
            });
        }
    }
    plan.tasks.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    Ok(plan)
}

/// Compares two objects in apply order (wave, kind order, namespace, name).
pub fn apply_order(a: &Object, b: &Object) -> Ordering {
    let wa = wave(a).unwrap_or(0);
    let wb = wave(b).unwrap_or(0);
    (wa, kind_rank(a.kind()), a.kind(), a.namespace(), a.name()).cmp(&(
        wb,
        kind_rank(b.kind()),
        b.kind(),
        b.namespace(),
        b.name(),
    ))
}

/// The objects to prune, in prune order (the reverse of apply order), leaving out those
/// marked `Prune=false`. Returns (indices to prune, indices kept because of `Prune=false`).
pub fn prune_order(live_extraneous: &[Object]) -> (Vec<usize>, Vec<usize>) {
    let mut prune = Vec::new();
    let mut kept = Vec::new();
    for (i, obj) in live_extraneous.iter().enumerate() {
        if ObjectOptions::of(obj).0.prune {
            prune.push(i);
        } else {
            kept.push(i);
        }
    }
    prune.sort_by(|a, b| apply_order(&live_extraneous[*b], &live_extraneous[*a]));
    (prune, kept)
}

/// The objects to delete when the app is deleted, in deletion order, leaving out
/// those marked `Delete=false`. Returns (indices to delete, indices kept).
pub fn delete_order(live: &[Object]) -> (Vec<usize>, Vec<usize>) {
    let mut delete = Vec::new();
    let mut kept = Vec::new();
    for (i, obj) in live.iter().enumerate() {
        if ObjectOptions::of(obj).0.delete {
            delete.push(i);
        } else {
            kept.push(i);
        }
    }
    delete.sort_by(|a, b| apply_order(&live[*b], &live[*a]));
    (delete, kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(kind: &str, name: &str, ann: serde_json::Value) -> Object {
        Object::from_value(json!({
            "apiVersion": "v1", "kind": kind,
            "metadata": {"name": name, "annotations": ann}
        }))
        .unwrap()
    }

    #[test]
    fn kind_order_puts_namespace_first_and_custom_last() {
        assert!(kind_rank("Namespace") < kind_rank("ConfigMap"));
        assert!(kind_rank("ConfigMap") < kind_rank("Deployment"));
        assert!(kind_rank("Deployment") < kind_rank("Job"));
        assert!(kind_rank("Job") < kind_rank("Rollout"));
    }

    #[test]
    fn bad_wave_names_the_object() {
        let o = obj("ConfigMap", "c", json!({SYNC_WAVE: "soon"}));
        let err = plan(&[o]).unwrap_err().to_string();
        assert!(err.contains("ConfigMap") && err.contains("soon"), "{err}");
    }

    #[test]
    fn default_hook_delete_policy_is_before_hook_creation() {
        let o = obj("Pod", "p", json!({HOOK: "PreSync"}));
        let p = plan(&[o]).unwrap();
        assert_eq!(
            p.tasks[0].delete_policies,
            vec![HookDeletePolicy::BeforeHookCreation]
        );
    }
}
