//! Deployment controller: one ReplicaSet per pod template (named by its hash), rolled
//! with `maxSurge`/`maxUnavailable`, gated on availability (`minReadySeconds`), with
//! Kubernetes' `Available`/`Progressing` conditions and `ProgressDeadlineExceeded`.

use std::time::SystemTime;

use ferry_core::Object;
use serde_json::{Value, json};

use super::{MANAGER, children, condition, int_at, make_condition, owner_ref};
use crate::Result;
use crate::cluster::{Cluster, Propagation};

/// Label carrying the hash of a pod template.
pub const HASH_LABEL: &str = "pod-template-hash";
/// Annotation carrying a ReplicaSet's revision.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Annotation carrying the Deployment's `spec.replicas` when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// Annotation carrying the Deployment's `spec.replicas` + maxSurge when the ReplicaSet was
/// last scaled: the base of its proportion when the Deployment is scaled mid-rollout.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

/// The hash of a pod template, as a short label-safe string (FNV-1a, Kubernetes' alphabet).
pub fn pod_template_hash(template: &Value) -> String {
    let mut t = template.clone();
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(HASH_LABEL);
    }
    let mut h: u32 = 0x811c_9dc5;
    for b in t.to_string().bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut out = String::new();
    let mut n = h;
    while out.len() < 10 {
        out.push(ALPHABET[(n % ALPHABET.len() as u32) as usize] as char);
        n /= ALPHABET.len() as u32;
        if n == 0 && out.len() >= 6 {
            break;
        }
    }
    out
}

/// Resolves an int-or-percent against `total`, rounding up or down.
pub fn int_or_percent(v: Option<&Value>, total: i64, default: &str, round_up: bool) -> i64 {
    let s = match v {
        Some(Value::Number(n)) => return n.as_i64().unwrap_or(0).max(0),
        Some(Value::String(s)) => s.as_str(),
        _ => default,
    };
    match s
        .strip_suffix('%')
        .and_then(|p| p.trim().parse::<f64>().ok())
    {
        Some(p) => {
            let x = p * total as f64 / 100.0;
            (if round_up { x.ceil() } else { x.floor() }) as i64
        }
        None => s.trim().parse::<i64>().unwrap_or(0).max(0),
    }
}

fn revision(rs: &Object) -> i64 {
    rs.annotation(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn spec_replicas(rs: &Object) -> i64 {
    int_at(rs.value(), "/spec/replicas", 0)
}

fn status_of(rs: &Object, field: &str) -> i64 {
    int_at(rs.value(), &format!("/status/{field}"), 0)
}

/// The Deployment's size a ReplicaSet is annotated with whenever it is scaled.
#[derive(Clone, Copy)]
struct Sizes {
    /// `spec.replicas`.
    desired: i64,
    /// `spec.replicas` + maxSurge (maxSurge is 0 for `Recreate`).
    max: i64,
}

fn int_annotation(rs: &Object, key: &str) -> Option<i64> {
    rs.annotation(key).and_then(|a| a.parse().ok())
}

/// Scales `rs` when its size differs (Kubernetes' `scaleReplicaSetAndRecordEvent`).
fn scale(cluster: &Cluster, rs: &Object, replicas: i64, sizes: Sizes) -> Result<Object> {
    if spec_replicas(rs) == replicas {
        return Ok(rs.clone());
    }
    set_replicas(cluster, rs, replicas, sizes)
}

/// Sets `rs`'s size and its desired/max-replicas annotations, writing only when one of
/// them changed (Kubernetes' `scaleReplicaSet`).
fn set_replicas(cluster: &Cluster, rs: &Object, replicas: i64, sizes: Sizes) -> Result<Object> {
    if spec_replicas(rs) == replicas
        && int_annotation(rs, DESIRED_REPLICAS) == Some(sizes.desired)
        && int_annotation(rs, MAX_REPLICAS) == Some(sizes.max)
    {
        return Ok(rs.clone());
    }
    let mut next = rs.clone();
    next.value_mut()["spec"]["replicas"] = json!(replicas);
    next.set_meta_entry("annotations", DESIRED_REPLICAS, &sizes.desired.to_string());
    next.set_meta_entry("annotations", MAX_REPLICAS, &sizes.max.to_string());
    cluster.update_as(&next, MANAGER)
}

/// The (max surge, max unavailable) of a Deployment with `replicas`.
pub fn surge_and_unavailable(d: &Value, replicas: i64) -> (i64, i64) {
    let ru = d.pointer("/spec/strategy/rollingUpdate");
    let surge = int_or_percent(ru.and_then(|r| r.get("maxSurge")), replicas, "25%", true);
    let mut unavailable = int_or_percent(
        ru.and_then(|r| r.get("maxUnavailable")),
        replicas,
        "25%",
        false,
    );
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

/// One reconcile pass.
pub fn reconcile(cluster: &Cluster, d: &Object, now: SystemTime) -> Result<()> {
    if d.is_being_deleted() {
        return Ok(());
    }
    let v = d.value();
    let replicas = int_at(v, "/spec/replicas", 1).max(0);
    let paused = v
        .pointer("/spec/paused")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let template = v
        .pointer("/spec/template")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let hash = pod_template_hash(&template);
    let mut all = children(cluster, d, "ReplicaSet");
    all.sort_by_key(revision);
    let max_revision = all.iter().map(revision).max().unwrap_or(0);
    let mut new_rs = all
        .iter()
        .find(|rs| rs.label(HASH_LABEL) == Some(hash.as_str()))
        .cloned();
    let mut old: Vec<Object> = all
        .iter()
        .filter(|rs| rs.label(HASH_LABEL) != Some(hash.as_str()))
        .cloned()
        .collect();
    let (surge, max_unavailable) = surge_and_unavailable(v, replicas);
    let recreate = v.pointer("/spec/strategy/type").and_then(Value::as_str) == Some("Recreate");
    let sizes = Sizes {
        desired: replicas,
        max: replicas + if recreate { 0 } else { surge },
    };
    // As Kubernetes' `syncDeployment`: a paused Deployment, or one whose size changed
    // since its active ReplicaSets were last scaled, is only scaled (`sync`), not rolled;
    // the rollout resumes on the next pass.
    let scaling = paused || is_scaling_event(new_rs.as_ref(), &old, replicas);
    let mut created = None;

    // The newest template gets the newest revision, also when it is an old one come back (undo).
    if let Some(rs) = &new_rs
        && revision(rs) < max_revision
    {
        let mut next = rs.clone();
        next.set_meta_entry("annotations", REVISION, &(max_revision + 1).to_string());
        new_rs = Some(cluster.update_as(&next, MANAGER)?);
    }
    if scaling {
        let status_replicas = int_at(v, "/status/replicas", 0);
        sync_scale(
            cluster,
            d,
            &mut new_rs,
            &mut old,
            sizes,
            !recreate,
            status_replicas,
        )?;
    } else {
        if new_rs.is_none() {
            let old_total: i64 = old.iter().map(spec_replicas).sum();
            let initial = if recreate {
                if old
                    .iter()
                    .any(|rs| status_of(rs, "replicas") > 0 || spec_replicas(rs) > 0)
                {
                    0
                } else {
                    replicas
                }
            } else if old_total == 0 {
                replicas
            } else {
                (replicas + surge - old_total).clamp(0, replicas)
            };
            let rs = new_replicaset(d, &template, &hash, initial, max_revision + 1, sizes)?;
            let rs = cluster.create(&rs, MANAGER)?;
            cluster.record_event(
                &d.key(),
                false,
                "ScalingReplicaSet",
                &format!("Scaled up replica set {} to {initial}", rs.name()),
            );
            created = Some(rs.name().to_string());
            new_rs = Some(rs);
        }
        let new = new_rs.clone().expect("set above");
        if recreate {
            for rs in old.iter_mut() {
                *rs = scale(cluster, rs, 0, sizes)?;
            }
            let old_pods: i64 = old.iter().map(|rs| status_of(rs, "replicas")).sum();
            if old_pods == 0 {
                new_rs = Some(scale(cluster, &new, replicas, sizes)?);
            }
        } else {
            // Scale up the new ReplicaSet within the surge budget.
            let total: i64 = all_spec(&new, &old);
            let budget = (replicas + surge - total).max(0);
            let target = if spec_replicas(&new) > replicas {
                replicas
            } else {
                (spec_replicas(&new) + budget).min(replicas)
            };
            let before = spec_replicas(&new);
            let new = scale(cluster, &new, target, sizes)?;
            if target != before {
                let verb = if target > before { "up" } else { "down" };
                cluster.record_event(
                    &d.key(),
                    false,
                    "ScalingReplicaSet",
                    &format!("Scaled {verb} replica set {} to {target}", new.name()),
                );
            }
            // Scale down old ReplicaSets within the unavailability budget.
            let min_available = replicas - max_unavailable;
            let new_unavailable =
                (spec_replicas(&new) - status_of(&new, "availableReplicas")).max(0);
            let mut cleanup_budget =
                (all_spec(&new, &old) - min_available - new_unavailable).max(0);
            for rs in old.iter_mut() {
                let unhealthy = (spec_replicas(rs) - status_of(rs, "availableReplicas")).max(0);
                let cut = unhealthy.min(cleanup_budget);
                if cut > 0 {
                    cleanup_budget -= cut;
                    *rs = scale(cluster, rs, spec_replicas(rs) - cut, sizes)?;
                }
            }
            let available: i64 = status_of(&new, "availableReplicas")
                + old
                    .iter()
                    .map(|rs| status_of(rs, "availableReplicas").min(spec_replicas(rs)))
                    .sum::<i64>();
            let mut can = (available - min_available).max(0);
            for rs in old.iter_mut() {
                let cut = spec_replicas(rs).min(can);
                if cut > 0 {
                    can -= cut;
                    let to = spec_replicas(rs) - cut;
                    *rs = scale(cluster, rs, to, sizes)?;
                    cluster.record_event(
                        &d.key(),
                        false,
                        "ScalingReplicaSet",
                        &format!("Scaled down replica set {} to {to}", rs.name()),
                    );
                }
            }
            new_rs = Some(new);
        }
    }
    if !paused {
        // Keep at most revisionHistoryLimit old, empty ReplicaSets.
        let limit = int_at(v, "/spec/revisionHistoryLimit", 10).max(0) as usize;
        let empty: Vec<&Object> = old
            .iter()
            .filter(|rs| spec_replicas(rs) == 0 && status_of(rs, "replicas") == 0)
            .collect();
        if empty.len() > limit {
            for rs in &empty[..empty.len() - limit] {
                cluster.delete(&rs.key(), Propagation::Background)?;
            }
        }
    }
    // Kubernetes mirrors the current revision onto the Deployment itself.
    if let Some(rev) = new_rs.as_ref().map(revision).filter(|r| *r > 0)
        && d.annotation(REVISION) != Some(rev.to_string().as_str())
    {
        cluster.patch_metadata(&d.key(), |meta| {
            let ann = meta.entry("annotations").or_insert_with(|| json!({}));
            if let Some(a) = ann.as_object_mut() {
                a.insert(REVISION.into(), Value::String(rev.to_string()));
            }
        })?;
    }
    write_status(
        cluster,
        d,
        new_rs.as_ref(),
        &old,
        replicas,
        max_unavailable,
        paused,
        created,
        now,
    )
}

/// Whether an active ReplicaSet was last scaled for another Deployment size
/// (Kubernetes' `isScalingEvent`); ReplicaSets without the annotation do not count.
fn is_scaling_event(new_rs: Option<&Object>, old: &[Object], replicas: i64) -> bool {
    new_rs
        .into_iter()
        .chain(old)
        .filter(|rs| spec_replicas(rs) > 0)
        .any(|rs| int_annotation(rs, DESIRED_REPLICAS).is_some_and(|want| want != replicas))
}

/// Orders ReplicaSets by age: creation time, then revision (creation times have second
/// resolution), then name as Kubernetes' `ReplicaSetsByCreationTimestamp` does.
fn age_key(rs: &Object) -> (String, i64, String) {
    let created = rs
        .value()
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    (created, revision(rs), rs.name().to_string())
}

/// Scales a Deployment's ReplicaSets to its new size without rolling (Kubernetes'
/// `DeploymentController.scale`). With at most one active ReplicaSet, that one (or the
/// newest) takes the whole size. Otherwise, when the new ReplicaSet is saturated the old
/// ones go to zero, and for a RollingUpdate the change is spread over the active ones in
/// proportion to their sizes, so a rollout stuck on a broken template keeps serving from
/// the old pods instead of giving every added replica to the new one.
fn sync_scale(
    cluster: &Cluster,
    d: &Object,
    new_rs: &mut Option<Object>,
    old: &mut [Object],
    sizes: Sizes,
    rolling: bool,
    status_replicas: i64,
) -> Result<()> {
    let replicas = sizes.desired;
    let record = |rs: &Object, before: i64| {
        let after = spec_replicas(rs);
        if after != before {
            let verb = if after > before { "up" } else { "down" };
            cluster.record_event(
                &d.key(),
                false,
                "ScalingReplicaSet",
                &format!("Scaled {verb} replica set {} to {after}", rs.name()),
            );
        }
    };
    let has_new = new_rs.is_some();
    let mut all: Vec<&mut Object> = new_rs.iter_mut().chain(old.iter_mut()).collect();
    let active = all.iter().filter(|rs| spec_replicas(rs) > 0).count();
    if active <= 1 {
        // The only active ReplicaSet, else the new one, else the newest old one.
        let target = if active == 1 {
            all.iter().position(|rs| spec_replicas(rs) > 0)
        } else if has_new {
            Some(0)
        } else {
            (0..all.len()).max_by_key(|&i| age_key(all[i]))
        };
        // Kubernetes leaves a ReplicaSet already at size alone; refreshing its annotations
        // too keeps a stale desired-replicas from making every pass a scaling event.
        if let Some(i) = target {
            let before = spec_replicas(all[i]);
            *all[i] = set_replicas(cluster, all[i], replicas, sizes)?;
            record(all[i], before);
        }
        return Ok(());
    }
    let saturated = has_new && {
        let new = &*all[0];
        spec_replicas(new) == replicas
            && int_annotation(new, DESIRED_REPLICAS) == Some(replicas)
            && status_of(new, "availableReplicas") == replicas
    };
    if saturated {
        // Adopted old ReplicaSets beside a saturated new one are scaled away.
        for rs in all.iter_mut().skip(1).filter(|rs| spec_replicas(rs) > 0) {
            let before = spec_replicas(rs);
            **rs = scale(cluster, rs, 0, sizes)?;
            record(rs, before);
        }
        return Ok(());
    }
    if !rolling {
        return Ok(());
    }
    all.retain(|rs| spec_replicas(rs) > 0);
    let allowed = if replicas > 0 { sizes.max } else { 0 };
    let to_add = allowed - all.iter().map(|rs| spec_replicas(rs)).sum::<i64>();
    // Largest first; among equals, scale up the newer and scale down the older first.
    if to_add > 0 {
        all.sort_by(|a, b| {
            spec_replicas(b)
                .cmp(&spec_replicas(a))
                .then_with(|| age_key(b).cmp(&age_key(a)))
        });
    } else if to_add < 0 {
        all.sort_by(|a, b| {
            spec_replicas(b)
                .cmp(&spec_replicas(a))
                .then_with(|| age_key(a).cmp(&age_key(b)))
        });
    }
    let mut added = 0;
    let mut targets: Vec<i64> = Vec::with_capacity(all.len());
    for rs in &all {
        let share = proportion(rs, sizes, status_replicas, to_add, added);
        added += share;
        targets.push(spec_replicas(rs) + share);
    }
    // The rounding leftover goes to (or comes from) the first, largest ReplicaSet.
    if let Some(first) = targets.first_mut() {
        *first = (*first + to_add - added).max(0);
    }
    for (rs, target) in all.into_iter().zip(targets) {
        let before = spec_replicas(rs);
        *rs = set_replicas(cluster, rs, target, sizes)?;
        record(rs, before);
    }
    Ok(())
}

/// How many of the `to_add` replicas (negative: to remove) `rs` takes, given `added`
/// so far (Kubernetes' `GetProportion`): its size scaled by the Deployment's new
/// replicas + maxSurge over the value it was last scaled for (its max-replicas
/// annotation, else the Deployment's current `status.replicas`), never past what is left.
fn proportion(rs: &Object, sizes: Sizes, status_replicas: i64, to_add: i64, added: i64) -> i64 {
    let size = spec_replicas(rs);
    if size == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = if sizes.desired == 0 {
        -size
    } else {
        let before = int_annotation(rs, MAX_REPLICAS)
            .filter(|m| *m != 0)
            .unwrap_or(status_replicas);
        if before == 0 {
            0
        } else {
            (size as f64 / before as f64 * sizes.max as f64).round() as i64 - size
        }
    };
    let left = to_add - added;
    if to_add > 0 {
        fraction.min(left)
    } else {
        fraction.max(left)
    }
}

fn all_spec(new: &Object, old: &[Object]) -> i64 {
    spec_replicas(new) + old.iter().map(spec_replicas).sum::<i64>()
}

fn new_replicaset(
    d: &Object,
    template: &Value,
    hash: &str,
    replicas: i64,
    revision: i64,
    sizes: Sizes,
) -> Result<Object> {
    let mut template = template.clone();
    template["metadata"]["labels"][HASH_LABEL] = Value::String(hash.to_string());
    let mut selector = d
        .value()
        .pointer("/spec/selector")
        .cloned()
        .unwrap_or_else(|| json!({}));
    selector["matchLabels"][HASH_LABEL] = Value::String(hash.to_string());
    let mut labels = template
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or_else(|| json!({}));
    labels[HASH_LABEL] = Value::String(hash.to_string());
    let rs = json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": format!("{}-{hash}", d.name()),
            "namespace": d.namespace(),
            "labels": labels,
            "annotations": {
                REVISION: revision.to_string(),
                DESIRED_REPLICAS: sizes.desired.to_string(),
                MAX_REPLICAS: sizes.max.to_string(),
            },
            "ownerReferences": [owner_ref(d)],
        },
        "spec": {
            "replicas": replicas,
            "minReadySeconds": int_at(d.value(), "/spec/minReadySeconds", 0),
            "selector": selector,
            "template": template,
        }
    });
    Object::from_value(rs).map_err(|e| crate::Error::Invalid(e.to_string()))
}

#[allow(clippy::too_many_arguments)]
fn write_status(
    cluster: &Cluster,
    d: &Object,
    new_rs: Option<&Object>,
    old: &[Object],
    replicas: i64,
    max_unavailable: i64,
    paused: bool,
    created: Option<String>,
    now: SystemTime,
) -> Result<()> {
    let v = d.value();
    let now_s = humantime::format_rfc3339_seconds(now).to_string();
    let all: Vec<&Object> = new_rs.into_iter().chain(old.iter()).collect();
    let sum = |f: &str| all.iter().map(|rs| status_of(rs, f)).sum::<i64>();
    let updated = new_rs.map(|rs| status_of(rs, "replicas")).unwrap_or(0);
    let (total, ready, available) = (
        sum("replicas"),
        sum("readyReplicas"),
        sum("availableReplicas"),
    );
    let old_pods: i64 = old.iter().map(|rs| status_of(rs, "replicas")).sum();
    let prev_status = v.get("status");
    let progress_made = prev_status.is_none_or(|s| {
        [
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
            "replicas",
        ]
        .iter()
        .zip([updated, ready, available, total])
        .any(|(f, x)| s.get(*f).and_then(Value::as_i64).unwrap_or(-1) != x)
    });
    let rs_name = new_rs.map(|rs| rs.name().to_string()).unwrap_or_default();
    let prev_avail = condition(v, "Available");
    let prev_prog = condition(v, "Progressing");
    let available_cond = if available >= replicas - max_unavailable {
        make_condition(
            prev_avail,
            "Available",
            true,
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            &now_s,
        )
    } else {
        make_condition(
            prev_avail,
            "Available",
            false,
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            &now_s,
        )
    };
    let deadline = int_at(v, "/spec/progressDeadlineSeconds", 600);
    let complete =
        updated == replicas && available == replicas && old_pods == 0 && total == replicas;
    let progressing_cond = if paused {
        let mut c = make_condition(
            prev_prog,
            "Progressing",
            false,
            "DeploymentPaused",
            "Deployment is paused",
            &now_s,
        );
        c["status"] = json!("Unknown");
        c
    } else if complete {
        make_condition(
            prev_prog,
            "Progressing",
            true,
            "NewReplicaSetAvailable",
            &format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
            &now_s,
        )
    } else if let Some(name) = created {
        make_condition(
            prev_prog,
            "Progressing",
            true,
            "NewReplicaSetCreated",
            &format!("Created new replica set \"{name}\""),
            &now_s,
        )
    } else if progress_made || prev_prog.is_none() {
        let mut c = make_condition(
            prev_prog,
            "Progressing",
            true,
            "ReplicaSetUpdated",
            &format!("ReplicaSet \"{rs_name}\" is progressing."),
            &now_s,
        );
        c["lastUpdateTime"] = json!(now_s);
        c
    } else {
        let prev = prev_prog.cloned().unwrap_or(Value::Null);
        let last = prev
            .get("lastUpdateTime")
            .and_then(Value::as_str)
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok());
        let timed_out = last.is_some_and(|t| {
            now.duration_since(t)
                .map(|d| d.as_secs() as i64 > deadline)
                .unwrap_or(false)
        });
        let already =
            prev.get("reason").and_then(Value::as_str) == Some("ProgressDeadlineExceeded");
        if timed_out && !already {
            make_condition(
                prev_prog,
                "Progressing",
                false,
                "ProgressDeadlineExceeded",
                &format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
                &now_s,
            )
        } else {
            prev
        }
    };
    let status = json!({
        "observedGeneration": int_at(v, "/metadata/generation", 1),
        "replicas": total,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
        "unavailableReplicas": (replicas - available).max(0),
        "conditions": [available_cond, progressing_cond],
    });
    cluster.update_status(&d.key(), status)?;
    Ok(())
}
