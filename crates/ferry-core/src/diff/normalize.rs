//! Normalisation: remove what the API server fills in (bookkeeping, status, and
//! fields it defaults when they are unset) so that only what a user wrote is compared.
//!
//! A defaulted field is removed only when it holds the default value: a user's
//! explicit non-default value stays and is compared.

use serde_json::{Map, Value};

use crate::object::split_api_version;

/// Metadata fields the server writes.
const SERVER_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "selfLink",
];
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Empty maps under these keys mean something (`emptyDir: {}` is a volume,
/// `podSelector: {}` selects every pod), so they are not dropped as "empty".
const MEANINGFUL_EMPTY: &[&str] = &[
    "emptyDir",
    "podSelector",
    "namespaceSelector",
    "labelSelector",
];

/// A copy of `value` without `status` and `metadata.managedFields`, which are the bulk
/// of a live object and never compared, so they are never copied.
pub(crate) fn clone_stripped(value: &Value) -> Value {
    let Some(map) = value.as_object() else {
        return value.clone();
    };
    let mut out = Map::with_capacity(map.len());
    for (k, v) in map {
        match k.as_str() {
            "status" => {}
            "metadata" => {
                let meta = match v.as_object() {
                    Some(m) => Value::Object(
                        m.iter()
                            .filter(|(k, _)| *k != "managedFields")
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    ),
                    None => v.clone(),
                };
                out.insert(k.clone(), meta);
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// Normalises an object in place (see the module doc). Idempotent.
pub(crate) fn normalize_in_place(value: &mut Value) {
    let Some(obj) = value.as_object_mut() else {
        return;
    };
    let group = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .map(|v| split_api_version(v).0.to_string())
        .unwrap_or_default();
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    obj.shift_remove("status");
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata(meta);
    }
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        match (group.as_str(), kind.as_str()) {
            ("apps" | "extensions", "Deployment") => {
                workload(spec, 10);
                drop_eq(spec, "progressDeadlineSeconds", 600);
                deployment_strategy(spec);
                template(spec, true);
            }
            ("argoproj.io", "Rollout") => {
                workload(spec, 10);
                drop_eq(spec, "progressDeadlineSeconds", 600);
                template(spec, true);
            }
            ("apps", "StatefulSet") => {
                workload(spec, 10);
                drop_str(spec, "podManagementPolicy", "OrderedReady");
                update_strategy(
                    spec,
                    &Value::Object(Map::from_iter([("partition".into(), 0.into())])),
                );
                if let Some(p) = map_at(spec, "persistentVolumeClaimRetentionPolicy") {
                    drop_str(p, "whenDeleted", "Retain");
                    drop_str(p, "whenScaled", "Retain");
                }
                if let Some(Value::Array(vcts)) = spec.get_mut("volumeClaimTemplates") {
                    for vct in vcts.iter_mut().filter_map(Value::as_object_mut) {
                        vct.shift_remove("status");
                        vct.shift_remove("apiVersion");
                        vct.shift_remove("kind");
                        if let Some(meta) = map_at(vct, "metadata") {
                            meta.shift_remove("creationTimestamp");
                        }
                        if let Some(s) = map_at(vct, "spec") {
                            drop_str(s, "volumeMode", "Filesystem");
                        }
                    }
                }
                template(spec, true);
            }
            ("apps", "DaemonSet") => {
                workload(spec, 10);
                let default = Value::Object(Map::from_iter([
                    ("maxSurge".into(), 0.into()),
                    ("maxUnavailable".into(), 1.into()),
                ]));
                update_strategy(spec, &default);
                template(spec, true);
            }
            ("apps", "ReplicaSet") => template(spec, true),
            ("batch", "Job") => job(spec),
            ("batch", "CronJob") => {
                drop_str(spec, "concurrencyPolicy", "Allow");
                drop_bool(spec, "suspend", false);
                drop_eq(spec, "successfulJobsHistoryLimit", 3);
                drop_eq(spec, "failedJobsHistoryLimit", 1);
                if let Some(jt) = map_at(spec, "jobTemplate") {
                    if let Some(meta) = map_at(jt, "metadata") {
                        meta.shift_remove("creationTimestamp");
                    }
                    if let Some(js) = map_at(jt, "spec") {
                        job(js);
                    }
                }
            }
            ("", "Pod") => {
                pod_spec(spec, true);
                drop_eq(spec, "priority", 0);
                drop_str(spec, "preemptionPolicy", "PreemptLowerPriority");
                drop_bool(spec, "enableServiceLinks", true);
            }
            ("", "PodTemplate") => {}
            ("", "Service") => service(spec),
            ("", "PersistentVolumeClaim") => drop_str(spec, "volumeMode", "Filesystem"),
            ("", "Namespace")
                if spec.get("finalizers") == Some(&Value::Array(vec!["kubernetes".into()])) =>
            {
                spec.shift_remove("finalizers");
            }
            _ => {}
        }
    }
    match (group.as_str(), kind.as_str()) {
        ("", "PodTemplate") => template(obj, true),
        ("", "Secret") => drop_str(obj, "type", "Opaque"),
        _ => {}
    }
    strip_empty(value);
}

fn metadata(meta: &mut Map<String, Value>) {
    for f in SERVER_METADATA {
        meta.shift_remove(*f);
    }
    if let Some(ann) = map_at(meta, "annotations") {
        ann.shift_remove(LAST_APPLIED);
    }
}

fn map_at<'a>(map: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    map.get_mut(key).and_then(Value::as_object_mut)
}

fn drop_eq(map: &mut Map<String, Value>, key: &str, default: i64) {
    if map.get(key).and_then(Value::as_i64) == Some(default) {
        map.shift_remove(key);
    }
}

fn drop_str(map: &mut Map<String, Value>, key: &str, default: &str) {
    if map.get(key).and_then(Value::as_str) == Some(default) {
        map.shift_remove(key);
    }
}

fn drop_bool(map: &mut Map<String, Value>, key: &str, default: bool) {
    if map.get(key).and_then(Value::as_bool) == Some(default) {
        map.shift_remove(key);
    }
}

fn workload(spec: &mut Map<String, Value>, history: i64) {
    drop_eq(spec, "revisionHistoryLimit", history);
}

/// An int-or-string field equal to `default` (`25%`, or `0`/`1`).
fn int_or_string_eq(v: Option<&Value>, default: &Value) -> bool {
    v == Some(default)
}

fn deployment_strategy(spec: &mut Map<String, Value>) {
    let Some(strategy) = map_at(spec, "strategy") else {
        return;
    };
    let ty = strategy
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("RollingUpdate")
        .to_string();
    if ty == "Recreate" {
        // The server refuses rollingUpdate with Recreate; one left over from live is noise.
        strategy.shift_remove("rollingUpdate");
        return;
    }
    let pct = Value::String("25%".into());
    if let Some(ru) = map_at(strategy, "rollingUpdate") {
        if int_or_string_eq(ru.get("maxSurge"), &pct) {
            ru.shift_remove("maxSurge");
        }
        if int_or_string_eq(ru.get("maxUnavailable"), &pct) {
            ru.shift_remove("maxUnavailable");
        }
    }
    drop_str(strategy, "type", "RollingUpdate");
}

/// `updateStrategy` of StatefulSets and DaemonSets: `RollingUpdate` with the given
/// `rollingUpdate` defaults.
fn update_strategy(spec: &mut Map<String, Value>, rolling_default: &Value) {
    let Some(us) = map_at(spec, "updateStrategy") else {
        return;
    };
    if us
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| t == "OnDelete")
    {
        return;
    }
    if let (Some(ru), Some(def)) = (map_at(us, "rollingUpdate"), rolling_default.as_object()) {
        for (k, d) in def {
            if ru.get(k) == Some(d) {
                ru.shift_remove(k);
            }
        }
    }
    drop_str(us, "type", "RollingUpdate");
}

fn job(spec: &mut Map<String, Value>) {
    drop_eq(spec, "backoffLimit", 6);
    drop_eq(spec, "completions", 1);
    drop_eq(spec, "parallelism", 1);
    drop_str(spec, "completionMode", "NonIndexed");
    drop_bool(spec, "suspend", false);
    drop_str(spec, "podReplacementPolicy", "TerminatingOrFailed");
    drop_bool(spec, "manualSelector", false);
    // A Job's pods have no defaulted restartPolicy: it must be Never or OnFailure.
    template(spec, false);
}

/// `spec.template` of a workload (or a `PodTemplate`'s `template`).
fn template(parent: &mut Map<String, Value>, restart_always_default: bool) {
    let Some(tpl) = map_at(parent, "template") else {
        return;
    };
    if let Some(meta) = map_at(tpl, "metadata") {
        // Live templates carry `creationTimestamp: null`.
        meta.shift_remove("creationTimestamp");
    }
    if let Some(spec) = map_at(tpl, "spec") {
        pod_spec(spec, restart_always_default);
    }
}

fn pod_spec(spec: &mut Map<String, Value>, restart_always_default: bool) {
    drop_str(spec, "dnsPolicy", "ClusterFirst");
    drop_str(spec, "schedulerName", "default-scheduler");
    drop_eq(spec, "terminationGracePeriodSeconds", 30);
    if restart_always_default {
        drop_str(spec, "restartPolicy", "Always");
    }
    // `serviceAccount` is the deprecated alias the server keeps equal to the name.
    if spec.get("serviceAccountName").is_some_and(Value::is_string) {
        spec.shift_remove("serviceAccount");
    }
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        if let Some(Value::Array(cs)) = spec.get_mut(list) {
            cs.iter_mut()
                .filter_map(Value::as_object_mut)
                .for_each(container);
        }
    }
    if let Some(Value::Array(vols)) = spec.get_mut("volumes") {
        for vol in vols.iter_mut().filter_map(Value::as_object_mut) {
            for source in ["configMap", "secret", "downwardAPI", "projected"] {
                if let Some(s) = map_at(vol, source) {
                    drop_eq(s, "defaultMode", 0o644);
                }
            }
            if let Some(hp) = map_at(vol, "hostPath") {
                drop_str(hp, "type", "");
            }
        }
    }
}

/// The pull policy the server defaults from the image reference: `Always` for
/// `:latest` or no tag, `IfNotPresent` otherwise.
fn default_pull_policy(image: &str) -> &'static str {
    let (name, digest) = match image.split_once('@') {
        Some((n, _)) => (n, true),
        None => (image, false),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.split_once(':') {
        Some((_, "latest")) => "Always",
        Some(_) => "IfNotPresent",
        None if digest => "IfNotPresent",
        None => "Always",
    }
}

fn container(c: &mut Map<String, Value>) {
    drop_str(c, "terminationMessagePath", "/dev/termination-log");
    drop_str(c, "terminationMessagePolicy", "File");
    if let Some(image) = c.get("image").and_then(Value::as_str) {
        let default = default_pull_policy(image);
        drop_str(c, "imagePullPolicy", default);
    }
    if let Some(Value::Array(ports)) = c.get_mut("ports") {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            drop_str(p, "protocol", "TCP");
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = map_at(c, probe) {
            drop_eq(p, "timeoutSeconds", 1);
            drop_eq(p, "periodSeconds", 10);
            drop_eq(p, "successThreshold", 1);
            drop_eq(p, "failureThreshold", 3);
            if let Some(h) = map_at(p, "httpGet") {
                drop_str(h, "scheme", "HTTP");
            }
        }
    }
    if let Some(lc) = map_at(c, "lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = map_at(lc, hook).and_then(|h| map_at(h, "httpGet")) {
                drop_str(h, "scheme", "HTTP");
            }
        }
    }
    if let Some(Value::Array(env)) = c.get_mut("env") {
        for e in env.iter_mut().filter_map(Value::as_object_mut) {
            if let Some(fr) = map_at(e, "valueFrom").and_then(|vf| map_at(vf, "fieldRef")) {
                drop_str(fr, "apiVersion", "v1");
            }
        }
    }
}

fn service(spec: &mut Map<String, Value>) {
    let none = Value::String("None".into());
    // Server-assigned addresses; a headless `None` is the user's choice and stays.
    if spec.get("clusterIP").is_some_and(|v| *v != none) {
        spec.shift_remove("clusterIP");
    }
    if spec
        .get("clusterIPs")
        .and_then(Value::as_array)
        .is_some_and(|ips| !ips.contains(&none))
    {
        spec.shift_remove("clusterIPs");
    }
    if spec.get("ipFamilies") == Some(&Value::Array(vec!["IPv4".into()])) {
        spec.shift_remove("ipFamilies");
    }
    drop_str(spec, "ipFamilyPolicy", "SingleStack");
    drop_str(spec, "sessionAffinity", "None");
    drop_str(spec, "internalTrafficPolicy", "Cluster");
    drop_str(spec, "externalTrafficPolicy", "Cluster");
    drop_str(spec, "type", "ClusterIP");
    drop_bool(spec, "allocateLoadBalancerNodePorts", true);
    if let Some(Value::Array(ports)) = spec.get_mut("ports") {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            drop_str(p, "protocol", "TCP");
            if p.get("targetPort").is_some() && p.get("targetPort") == p.get("port") {
                p.shift_remove("targetPort");
            }
        }
    }
}

/// Drops nulls, empty lists and empty maps from every map, bottom-up, so that
/// `labels: {}` and an absent `labels` compare equal.
fn strip_empty(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, v| {
                strip_empty(v);
                match v {
                    Value::Null => false,
                    Value::Array(a) => !a.is_empty(),
                    Value::Object(m) => !m.is_empty() || MEANINGFUL_EMPTY.contains(&k.as_str()),
                    _ => true,
                }
            });
        }
        Value::Array(items) => items.iter_mut().for_each(strip_empty),
        _ => {}
    }
}

/// A Kubernetes resource quantity as an exact decimal `(mantissa, exponent)` with no
/// trailing zeros in the mantissa, so equal quantities compare equal.
fn quantity(v: &Value) -> Option<(i128, i32)> {
    let text = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let (sign, s) = match text.as_bytes().first()? {
        b'-' => (-1, &text[1..]),
        b'+' => (1, &text[1..]),
        _ => (1, &text[..]),
    };
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(num_end);
    if num.is_empty() || num == "." || num.matches('.').count() > 1 {
        return None;
    }
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let digits = format!("{int}{frac}");
    if digits.len() > 30 {
        return None;
    }
    let mut mantissa: i128 = digits.parse().ok()?;
    let mut exp = -i32::try_from(frac.len()).ok()?;
    let binary = |p: u32| mantissa.checked_mul(1i128 << (10 * p));
    match suffix {
        "" => {}
        "n" => exp -= 9,
        "u" => exp -= 6,
        "m" => exp -= 3,
        "k" => exp += 3,
        "M" => exp += 6,
        "G" => exp += 9,
        "T" => exp += 12,
        "P" => exp += 15,
        "E" => exp += 18,
        "Ki" => mantissa = binary(1)?,
        "Mi" => mantissa = binary(2)?,
        "Gi" => mantissa = binary(3)?,
        "Ti" => mantissa = binary(4)?,
        "Pi" => mantissa = binary(5)?,
        "Ei" => mantissa = binary(6)?,
        s if s.starts_with(['e', 'E']) => exp += s[1..].parse::<i32>().ok()?,
        _ => return None,
    }
    if mantissa == 0 {
        return Some((0, 0));
    }
    while mantissa % 10 == 0 {
        mantissa /= 10;
        exp += 1;
    }
    Some((sign * mantissa, exp))
}

/// Keys whose values are maps of resource quantities, or a quantity.
const QUANTITY_MAPS: &[&str] = &["limits", "requests", "hard", "capacity"];
const QUANTITY_FIELDS: &[&str] = &["sizeLimit"];

/// Where the prediction writes a quantity differently from live but means the same
/// amount (`cpu: 0.5` and `500m`, `memory: 1024Mi` and `1Gi`), take live's spelling.
pub(crate) fn align_quantities(pred: &mut Value, live: &Value, parent: &str) {
    match (pred, live) {
        (Value::Object(p), Value::Object(l)) => {
            let in_map = QUANTITY_MAPS.contains(&parent);
            for (k, pv) in p.iter_mut() {
                let Some(lv) = l.get(k) else { continue };
                if pv == lv {
                    continue;
                }
                if (in_map || QUANTITY_FIELDS.contains(&k.as_str()))
                    && !pv.is_object()
                    && quantity(pv).is_some()
                    && quantity(pv) == quantity(lv)
                {
                    *pv = lv.clone();
                } else {
                    align_quantities(pv, lv, k);
                }
            }
        }
        (Value::Array(p), Value::Array(l)) => {
            for (pv, lv) in p.iter_mut().zip(l) {
                align_quantities(pv, lv, parent);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn norm(v: Value) -> Value {
        let mut v = v;
        normalize_in_place(&mut v);
        v
    }

    #[test]
    fn pull_policy_default_follows_the_tag() {
        assert_eq!(default_pull_policy("nginx"), "Always");
        assert_eq!(default_pull_policy("nginx:latest"), "Always");
        assert_eq!(default_pull_policy("nginx:1.27"), "IfNotPresent");
        assert_eq!(default_pull_policy("registry:5000/team/app"), "Always");
        assert_eq!(
            default_pull_policy("registry:5000/team/app:v2"),
            "IfNotPresent"
        );
        assert_eq!(default_pull_policy("app@sha256:abcd"), "IfNotPresent");
    }

    #[test]
    fn only_default_values_are_dropped() {
        let v = norm(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "w", "uid": "u", "labels": {}, "annotations": {LAST_APPLIED: "{}"}},
            "spec": {"revisionHistoryLimit": 5, "progressDeadlineSeconds": 600,
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
                     "template": {"metadata": {"creationTimestamp": null}, "spec": {
                        "restartPolicy": "Always", "dnsPolicy": "None",
                        "containers": [{"name": "a", "image": "a:1", "imagePullPolicy": "Always",
                                        "terminationMessagePath": "/dev/termination-log", "resources": {}}],
                        "volumes": [{"name": "c", "emptyDir": {}}]}}},
            "status": {"replicas": 1}
        }));
        assert_eq!(
            v,
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"},
                "spec": {"revisionHistoryLimit": 5, "strategy": {"rollingUpdate": {"maxUnavailable": 0}},
                         "template": {"spec": {"dnsPolicy": "None",
                            "containers": [{"name": "a", "image": "a:1", "imagePullPolicy": "Always"}],
                            "volumes": [{"name": "c", "emptyDir": {}}]}}}
            })
        );
    }

    #[test]
    fn job_templates_keep_restart_policy() {
        let v = norm(
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
            "spec": {"backoffLimit": 6, "template": {"spec": {"restartPolicy": "Never", "containers": []}}}}),
        );
        assert_eq!(
            v["spec"],
            json!({"template": {"spec": {"restartPolicy": "Never"}}})
        );
    }

    #[test]
    fn quantities_compare_by_amount() {
        let q = |s: &str| quantity(&json!(s));
        assert_eq!(q("500m"), quantity(&json!(0.5)));
        assert_eq!(q("1"), q("1000m"));
        assert_eq!(q("1Gi"), q("1024Mi"));
        assert_eq!(q("1Gi"), q("1073741824"));
        assert_eq!(q("1k"), q("1e3"));
        assert_eq!(q("0"), q("0m"));
        assert_ne!(q("1G"), q("1Gi"));
        assert_ne!(q("100m"), q("1"));
        assert_eq!(q("abc"), None);
        assert_eq!(q("1Zi"), None);
        let mut pred = json!({"resources": {"limits": {"cpu": 1, "memory": "1024Mi"}, "requests": {"cpu": "0.25"}}});
        let live = json!({"resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "200m"}}});
        align_quantities(&mut pred, &live, "");
        assert_eq!(
            pred,
            json!({"resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "0.25"}}})
        );
    }
}
