//! Compare: the app's live objects against what Git wants, per resource and as a
//! whole, with health judged from the live objects and the pods they own.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use ferry_core::argo::ApplicationSpec;
use ferry_core::diff::{DiffOptions, ResourceDiff, SyncStatus, compare};
use ferry_core::health::{Health, HealthStatus, assess_all};
use ferry_core::object::split_api_version;
use ferry_core::plan::{Plan, plan};
use ferry_core::target::{Selector, Target};
use ferry_core::{Object, ObjectKey};
use serde_json::Value;

use crate::status::{HealthInfo, ResourceStatus, SyncCode};
use crate::tracking::{self, INSTANCE_LABEL};

/// The outcome of comparing one app.
#[derive(Clone, Debug)]
pub(crate) struct Comparison {
    /// The sync plan of the desired objects.
    pub plan: Plan,
    /// One diff per desired non-hook object, then one per extraneous live object.
    pub diffs: Vec<ResourceDiff>,
    /// The live object of each diff that has one, by the diff's key.
    pub live: HashMap<ObjectKey, Object>,
    /// Per-resource status rows (hooks included).
    pub resources: Vec<ResourceStatus>,
    /// Synced iff every non-hook resource is.
    pub sync: SyncCode,
    /// Worst health of the non-hook resources.
    pub health: HealthInfo,
    /// Resources another app renders too, with those apps.
    pub shared: Vec<(ObjectKey, Vec<String>)>,
    /// Container images of the live workloads.
    pub images: Vec<String>,
}

impl Comparison {
    /// The live objects that left Git and belong to this app alone (prune candidates).
    pub(crate) fn extraneous(&self) -> Vec<Object> {
        self.diffs
            .iter()
            .filter(|d| d.status == SyncStatus::Extraneous)
            .filter_map(|d| self.live.get(&d.key).cloned())
            .collect()
    }

    /// The diff of one key.
    pub(crate) fn diff_of(&self, key: &ObjectKey) -> Option<&ResourceDiff> {
        self.diffs.iter().find(|d| &d.key == key)
    }
}

/// Workload kinds whose pods (and ReplicaSets) count towards their health.
const POD_OWNERS: &[&str] = &[
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Rollout",
    "Job",
];

fn uid(obj: &Object) -> &str {
    obj.value()
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn owned_by_any(obj: &Object, uids: &HashSet<String>) -> bool {
    obj.value()
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter().any(|r| {
                r.get("uid")
                    .and_then(Value::as_str)
                    .is_some_and(|u| uids.contains(u))
            })
        })
}

/// The ReplicaSets and pods the app's workloads own, so that a pod that cannot start
/// shows on its Deployment at once.
pub(crate) async fn related(target: &dyn Target, live: &[&Object]) -> Result<Vec<Object>, String> {
    let owners: Vec<&&Object> = live
        .iter()
        .filter(|o| POD_OWNERS.contains(&o.kind()))
        .collect();
    if owners.is_empty() {
        return Ok(Vec::new());
    }
    let mut uids: HashSet<String> = owners.iter().map(|o| uid(o).to_string()).collect();
    let namespaces: BTreeSet<&str> = owners.iter().map(|o| o.namespace()).collect();
    let mut out = Vec::new();
    for ns in namespaces {
        let list = |kind: &str| Selector {
            kind: Some(kind.to_string()),
            namespace: Some(ns.to_string()),
            labels: BTreeMap::new(),
        };
        let rs_sel = list("ReplicaSet");
        let replica_sets = target
            .list(&rs_sel)
            .await
            .map_err(|e| format!("listing ReplicaSets in {ns}: {e}"))?;
        for rs in replica_sets {
            if owned_by_any(&rs, &uids) {
                uids.insert(uid(&rs).to_string());
                out.push(rs);
            }
        }
        let pod_sel = list("Pod");
        let pods = target
            .list(&pod_sel)
            .await
            .map_err(|e| format!("listing Pods in {ns}: {e}"))?;
        out.extend(pods.into_iter().filter(|p| owned_by_any(p, &uids)));
    }
    Ok(out)
}

/// Compares `desired` (placed and tracked) with what the target holds for `app`.
/// `claims` names, for each key another app renders, those apps.
pub(crate) async fn compare_app(
    target: &dyn Target,
    app: &str,
    spec: &ApplicationSpec,
    desired: &[Object],
    claims: &crate::refresh::Claims<'_>,
) -> Result<Comparison, String> {
    let plan = plan(desired).map_err(|e| e.to_string())?;
    let mut not_resource: HashSet<usize> = plan.skipped.iter().copied().collect();
    not_resource.extend(plan.tasks.iter().filter(|t| t.hook).map(|t| t.index));
    let wanted: Vec<&Object> = desired
        .iter()
        .enumerate()
        .filter(|(i, _)| !not_resource.contains(i))
        .map(|(_, o)| o)
        .collect();
    let wanted_keys: HashSet<ObjectKey> = wanted.iter().map(|o| o.key()).collect();

    let selector = Selector {
        labels: BTreeMap::from([(INSTANCE_LABEL.to_string(), app.to_string())]),
        ..Selector::default()
    };
    let labelled = target
        .list(&selector)
        .await
        .map_err(|e| format!("listing the app's live objects: {e}"))?;
    let mut live_hooks = Vec::new();
    let mut live: Vec<Object> = Vec::new();
    for o in labelled {
        if !tracking::owned_by(&o, app) {
            continue;
        }
        if tracking::is_hook(&o) {
            live_hooks.push(o);
        } else if wanted_keys.contains(&o.key()) || claims.others(&o.key()).is_none() {
            // An object this app no longer renders but another one does is that app's now.
            live.push(o);
        }
    }
    let live_keys: HashSet<ObjectKey> = live.iter().map(Object::key).collect();
    // Desired objects live without this app's tracking id: made by hand, or by another app.
    for d in &wanted {
        let key = d.key();
        if live_keys.contains(&key) {
            continue;
        }
        match target.get(&key).await {
            Ok(Some(o)) => live.push(o),
            Ok(None) => {}
            Err(e) => return Err(format!("reading {key}: {e}")),
        }
    }

    let mut shared = Vec::new();
    for d in &wanted {
        if let Some(apps) = claims.others(&d.key()) {
            shared.push((d.key(), apps));
        }
    }
    let shared_keys: HashSet<&ObjectKey> = shared.iter().map(|(k, _)| k).collect();
    let untrack = |o: &Object| {
        if shared_keys.contains(&o.key()) {
            tracking::untracked(o)
        } else {
            o.clone()
        }
    };
    let desired_cmp: Vec<Object> = wanted.iter().map(|o| untrack(o)).collect();
    let live_cmp: Vec<Object> = live.iter().map(untrack).collect();
    let dest_ns = if spec.destination.namespace.is_empty() {
        "default"
    } else {
        &spec.destination.namespace
    };
    let opts = DiffOptions {
        ignore: spec.ignore_differences.clone(),
    };
    let diffs = compare(&desired_cmp, &live_cmp, dest_ns, &opts).map_err(|e| e.to_string())?;
    let live: HashMap<ObjectKey, Object> = live.into_iter().map(|o| (o.key(), o)).collect();

    // Health: the live objects in the context of their pods and ReplicaSets.
    let live_refs: Vec<&Object> = live.values().chain(live_hooks.iter()).collect();
    let related = related(target, &live_refs).await?;
    let mut judged: Vec<Object> = live_refs.iter().map(|o| (*o).clone()).collect();
    let n = judged.len();
    judged.extend(related);
    let healths: HashMap<ObjectKey, Health> = assess_all(&judged)
        .into_iter()
        .take(n)
        .zip(&judged)
        .filter_map(|(h, o)| h.map(|h| (o.key(), h)))
        .collect();

    let version_of = |key: &ObjectKey| {
        live.get(key)
            .map(|o| o.api_version().to_string())
            .or_else(|| {
                wanted
                    .iter()
                    .find(|o| &o.key() == key)
                    .map(|o| o.api_version().to_string())
            })
            .map(|v| split_api_version(&v).1.to_string())
            .unwrap_or_default()
    };
    let mut resources = Vec::new();
    let mut worst: Option<(HealthStatus, String)> = None;
    let mut all_synced = true;
    for d in &diffs {
        let health = match d.status {
            SyncStatus::Missing => Some(HealthInfo {
                status: HealthStatus::Missing,
                message: String::new(),
            }),
            _ => healths.get(&d.key).map(|h| HealthInfo {
                status: h.status,
                message: h.message.clone(),
            }),
        };
        if d.status != SyncStatus::Synced {
            all_synced = false;
        }
        if d.status != SyncStatus::Extraneous
            && let Some(h) = &health
            && worst.as_ref().is_none_or(|(w, _)| h.status > *w)
        {
            let message = if h.message.is_empty() {
                String::new()
            } else {
                format!("{} {}: {}", d.key.kind, d.key.name, h.message)
            };
            worst = Some((h.status, message));
        }
        resources.push(ResourceStatus {
            group: d.key.group.clone(),
            version: version_of(&d.key),
            kind: d.key.kind.clone(),
            namespace: d.key.namespace.clone(),
            name: d.key.name.clone(),
            status: if d.status == SyncStatus::Synced {
                SyncCode::Synced
            } else {
                SyncCode::OutOfSync
            },
            health,
            hook: false,
            requires_pruning: d.status == SyncStatus::Extraneous,
        });
    }
    for h in &live_hooks {
        let key = h.key();
        resources.push(ResourceStatus {
            group: key.group.clone(),
            version: split_api_version(h.api_version()).1.to_string(),
            kind: key.kind.clone(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            status: SyncCode::Synced,
            health: healths.get(&key).map(|h| HealthInfo {
                status: h.status,
                message: h.message.clone(),
            }),
            hook: true,
            requires_pruning: false,
        });
    }
    let health = match worst {
        Some((status, message)) => HealthInfo { status, message },
        None => HealthInfo {
            status: HealthStatus::Healthy,
            message: String::new(),
        },
    };
    let mut images: Vec<String> = live.values().flat_map(images_of).collect();
    images.sort();
    images.dedup();
    Ok(Comparison {
        plan,
        diffs,
        live,
        resources,
        sync: if all_synced {
            SyncCode::Synced
        } else {
            SyncCode::OutOfSync
        },
        health,
        shared,
        images,
    })
}

/// Container images a workload or pod runs.
fn images_of(obj: &Object) -> Vec<String> {
    let v = obj.value();
    let spec = match obj.kind() {
        "Pod" => v.get("spec"),
        "CronJob" => v.pointer("/spec/jobTemplate/spec/template/spec"),
        _ => v.pointer("/spec/template/spec"),
    };
    let Some(spec) = spec else {
        return Vec::new();
    };
    ["containers", "initContainers"]
        .iter()
        .filter_map(|f| spec.get(f).and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c.get("image").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}
