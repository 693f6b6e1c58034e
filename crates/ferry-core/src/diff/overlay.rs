//! The predicted live object: live with the desired object laid over it, the way an
//! apply would change it. Maps merge recursively; lists of keyed items (containers,
//! env, ports, volumes, …) merge item by item in the desired order, dropping live
//! items the desired list does not have; other lists are replaced.

use serde_json::Value;

/// Handlers of a probe or lifecycle hook: setting one replaces the others.
const HANDLERS: &[&str] = &["exec", "httpGet", "tcpSocket", "grpc", "sleep"];
const HANDLER_PARENTS: &[&str] = &[
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "postStart",
    "preStop",
];

/// Lists whose items are replaced field by field: fields of the live item the desired
/// item does not set are dropped (a volume's source, an env var's `value`/`valueFrom`
/// are one-of choices, not additions).
const REPLACE_ITEM_FIELDS: &[&str] = &["volumes", "env"];

/// Lays `desired` over `target` in place. `parent` is the key `target` sits under.
pub(crate) fn overlay(target: &mut Value, desired: &Value, parent: &str) {
    match (target, desired) {
        (Value::Object(t), Value::Object(d)) => {
            if HANDLER_PARENTS.contains(&parent) && HANDLERS.iter().any(|h| d.contains_key(*h)) {
                t.retain(|k, _| !HANDLERS.contains(&k.as_str()) || d.contains_key(k));
            }
            for (k, dv) in d {
                if dv.is_null() {
                    // An explicit null removes the field, as in a merge patch.
                    t.shift_remove(k);
                    continue;
                }
                match t.get_mut(k) {
                    Some(tv) => overlay(tv, dv, k),
                    None => {
                        t.insert(k.clone(), dv.clone());
                    }
                }
            }
        }
        (Value::Array(t), Value::Array(d)) => merge_list(t, d, parent),
        (t, d) => *t = d.clone(),
    }
}

/// How items of a list are identified.
enum MergeKey {
    /// One field, e.g. `name`, `mountPath`.
    Field(&'static str),
    /// A port: its number field and `protocol` (default `TCP`).
    Port(&'static str),
}

impl MergeKey {
    fn for_list(parent: &str, items: &[Value]) -> Option<Self> {
        let all_have = |f: &str| items.iter().all(|i| i.get(f).is_some_and(|v| !v.is_null()));
        if !items.iter().all(Value::is_object) {
            return None;
        }
        let key = match parent {
            "volumeMounts" => MergeKey::Field("mountPath"),
            "volumeDevices" => MergeKey::Field("devicePath"),
            "hostAliases" => MergeKey::Field("ip"),
            "conditions" => MergeKey::Field("type"),
            "ports" if all_have("containerPort") => return Some(MergeKey::Port("containerPort")),
            "ports" if all_have("port") => return Some(MergeKey::Port("port")),
            _ => MergeKey::Field("name"),
        };
        match key {
            MergeKey::Field(f) if all_have(f) => Some(key),
            _ => None,
        }
    }

    fn matches(&self, a: &Value, b: &Value) -> bool {
        match self {
            MergeKey::Field(f) => a.get(f).is_some() && a.get(f) == b.get(f),
            MergeKey::Port(f) => {
                let proto = |v: &Value| {
                    v.get("protocol")
                        .and_then(Value::as_str)
                        .unwrap_or("TCP")
                        .to_string()
                };
                a.get(f).is_some() && a.get(f) == b.get(f) && proto(a) == proto(b)
            }
        }
    }
}

fn merge_list(target: &mut Vec<Value>, desired: &[Value], parent: &str) {
    let Some(key) = MergeKey::for_list(parent, desired) else {
        *target = desired.to_vec();
        return;
    };
    let mut old: Vec<Option<Value>> = std::mem::take(target).into_iter().map(Some).collect();
    target.reserve(desired.len());
    for d in desired {
        let found = old
            .iter_mut()
            .find(|o| o.as_ref().is_some_and(|o| key.matches(o, d)))
            .and_then(Option::take);
        match found {
            Some(mut item) => {
                if REPLACE_ITEM_FIELDS.contains(&parent)
                    && let (Some(im), Some(dm)) = (item.as_object_mut(), d.as_object())
                {
                    im.retain(|k, _| dm.contains_key(k));
                }
                overlay(&mut item, d, parent);
                target.push(item);
            }
            None => target.push(d.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn over(live: Value, desired: Value) -> Value {
        let mut t = live;
        overlay(&mut t, &desired, "");
        t
    }

    #[test]
    fn maps_merge_and_live_only_fields_stay() {
        let p = over(
            json!({"metadata": {"labels": {"a": "1"}, "annotations": {"ctl": "x"}}, "spec": {"replicas": 1, "x": 1}}),
            json!({"metadata": {"labels": {"a": "2", "b": "3"}}, "spec": {"replicas": 2, "x": null}}),
        );
        assert_eq!(
            p,
            json!({"metadata": {"labels": {"a": "2", "b": "3"}, "annotations": {"ctl": "x"}}, "spec": {"replicas": 2}})
        );
    }

    #[test]
    fn containers_merge_by_name_in_desired_order_and_extra_live_items_go() {
        let p = over(
            json!({"containers": [
                {"name": "a", "image": "a:1", "imagePullPolicy": "IfNotPresent", "ports": [{"containerPort": 80, "protocol": "TCP"}]},
                {"name": "b", "image": "b:1"},
                {"name": "c", "image": "c:1"}
            ]}),
            json!({"containers": [
                {"name": "c", "image": "c:2"},
                {"name": "a", "image": "a:1", "ports": [{"containerPort": 80}, {"containerPort": 81, "protocol": "UDP"}]}
            ]}),
        );
        assert_eq!(
            p,
            json!({"containers": [
                {"name": "c", "image": "c:2"},
                {"name": "a", "image": "a:1", "imagePullPolicy": "IfNotPresent",
                 "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 81, "protocol": "UDP"}]}
            ]})
        );
    }

    #[test]
    fn one_of_choices_replace_rather_than_add() {
        let p = over(
            json!({"volumes": [{"name": "v", "emptyDir": {}}], "env": [{"name": "E", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}],
                   "livenessProbe": {"httpGet": {"path": "/"}, "periodSeconds": 10}}),
            json!({"volumes": [{"name": "v", "configMap": {"name": "c"}}], "env": [{"name": "E", "value": "1"}],
                   "livenessProbe": {"tcpSocket": {"port": 80}}}),
        );
        assert_eq!(
            p,
            json!({"volumes": [{"name": "v", "configMap": {"name": "c"}}], "env": [{"name": "E", "value": "1"}],
                   "livenessProbe": {"periodSeconds": 10, "tcpSocket": {"port": 80}}})
        );
    }

    #[test]
    fn unkeyed_lists_are_replaced() {
        let p = over(
            json!({"args": ["a", "b"], "rules": [{"x": 1}]}),
            json!({"args": ["c"], "rules": [{"y": 2}]}),
        );
        assert_eq!(p, json!({"args": ["c"], "rules": [{"y": 2}]}));
    }
}
