//! `managedFieldsManagers`: fields that named managers own in the live object's
//! `metadata.managedFields` (FieldsV1) are taken from live into the prediction, so
//! that what those managers changed is not a difference.

use serde_json::{Map, Value};

/// One node of a FieldsV1 set: the children it names and whether the node itself
/// (`.`) is owned.
#[derive(Debug, Default)]
struct Owned {
    this: bool,
    children: Vec<(Seg, Owned)>,
}

#[derive(Debug)]
enum Seg {
    /// `f:name`: a map field.
    Field(String),
    /// `k:{"name":"x"}`: the list item whose key fields have these values.
    Key(Map<String, Value>),
    /// `v:"x"`: a set item by value.
    Value(Value),
    /// `i:0`: a list item by index.
    Index(usize),
}

impl Owned {
    fn parse(v: &Value) -> Self {
        let mut node = Owned::default();
        let Some(map) = v.as_object() else {
            return node;
        };
        for (k, child) in map {
            let seg = if k == "." {
                node.this = true;
                continue;
            } else if let Some(f) = k.strip_prefix("f:") {
                Seg::Field(f.to_string())
            } else if let Some(j) = k.strip_prefix("k:") {
                match serde_json::from_str(j) {
                    Ok(m) => Seg::Key(m),
                    Err(_) => continue,
                }
            } else if let Some(j) = k.strip_prefix("v:") {
                match serde_json::from_str(j) {
                    Ok(v) => Seg::Value(v),
                    Err(_) => continue,
                }
            } else if let Some(i) = k.strip_prefix("i:").and_then(|i| i.parse().ok()) {
                Seg::Index(i)
            } else {
                continue;
            };
            node.children.push((seg, Owned::parse(child)));
        }
        node
    }

    /// A leaf owns its whole value (`{}` or only `{".": {}}`).
    fn is_leaf(&self) -> bool {
        self.children.is_empty()
    }
}

/// For each `managedFields` entry of `live_raw` whose manager is in `managers`, copies
/// the fields it owns from `live` into `predicted`.
pub(crate) fn take_owned(
    predicted: &mut Value,
    live: &Value,
    live_raw: &Value,
    managers: &[String],
) {
    let Some(entries) = live_raw
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return;
    };
    for entry in entries {
        let manager = entry
            .get("manager")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !managers.iter().any(|m| m == manager) {
            continue;
        }
        if let Some(fields) = entry.get("fieldsV1") {
            apply(predicted, live, &Owned::parse(fields));
        }
    }
}

fn item_matches(item: &Value, key: &Map<String, Value>) -> bool {
    item.as_object()
        .is_some_and(|m| key.iter().all(|(k, v)| m.get(k) == Some(v)))
}

fn apply(pred: &mut Value, live: &Value, node: &Owned) {
    for (seg, child) in &node.children {
        match seg {
            Seg::Field(name) => {
                let (Some(pm), Some(lm)) = (pred.as_object_mut(), live.as_object()) else {
                    continue;
                };
                let Some(lv) = lm.get(name) else {
                    if child.is_leaf() {
                        pm.shift_remove(name);
                    }
                    continue;
                };
                if child.is_leaf() {
                    pm.insert(name.clone(), lv.clone());
                    continue;
                }
                let pv = pm.entry(name.clone()).or_insert_with(|| match lv {
                    Value::Array(_) => Value::Array(Vec::new()),
                    _ => Value::Object(Map::new()),
                });
                apply(pv, lv, child);
            }
            Seg::Key(key) => {
                let (Some(pa), Some(la)) = (pred.as_array_mut(), live.as_array()) else {
                    continue;
                };
                let Some(li) = la.iter().position(|i| item_matches(i, key)) else {
                    continue;
                };
                match pa.iter().position(|i| item_matches(i, key)) {
                    Some(pi) if child.is_leaf() => pa[pi] = la[li].clone(),
                    Some(pi) => apply(&mut pa[pi], &la[li], child),
                    // The manager added the whole item (a sidecar a webhook injected).
                    None if child.this || child.is_leaf() => {
                        let at = li.min(pa.len());
                        pa.insert(at, la[li].clone());
                    }
                    None => {}
                }
            }
            Seg::Value(v) => {
                let (Some(pa), Some(la)) = (pred.as_array_mut(), live.as_array()) else {
                    continue;
                };
                if la.contains(v) && !pa.contains(v) {
                    pa.push(v.clone());
                }
            }
            Seg::Index(i) => {
                let (Some(pa), Some(la)) = (pred.as_array_mut(), live.as_array()) else {
                    continue;
                };
                if let (Some(p), Some(l)) = (pa.get_mut(*i), la.get(*i)) {
                    if child.is_leaf() {
                        *p = l.clone();
                    } else {
                        apply(p, l, child);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn live() -> Value {
        json!({
            "metadata": {"name": "web", "managedFields": [
                {"manager": "argocd-controller", "operation": "Apply", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                     "k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}}},
                {"manager": "kube-controller-manager", "operation": "Update", "subresource": "scale", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:spec": {"f:replicas": {}}}},
                {"manager": "istio-injector", "operation": "Update", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {"f:finalizers": {"v:\"istio/cleanup\"": {}}},
                   "f:spec": {"f:template": {"f:spec": {"f:containers": {
                     "k:{\"name\":\"app\"}": {"f:env": {"k:{\"name\":\"ISTIO\"}": {".": {}, "f:name": {}, "f:value": {}}}},
                     "k:{\"name\":\"istio-proxy\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}}}
            ], "finalizers": ["istio/cleanup"]},
            "spec": {"replicas": 5, "template": {"spec": {"containers": [
                {"name": "app", "image": "app:1", "env": [{"name": "ISTIO", "value": "on"}]},
                {"name": "istio-proxy", "image": "istio:1"}
            ]}}}
        })
    }

    #[test]
    fn owned_scalar_is_taken_from_live() {
        let live = live();
        let mut pred = json!({"metadata": {"name": "web"}, "spec": {"replicas": 3}});
        take_owned(&mut pred, &live, &live, &["kube-controller-manager".into()]);
        assert_eq!(pred["spec"]["replicas"], 5);
        // Other managers' fields are left alone.
        let mut pred = json!({"spec": {"replicas": 3}});
        take_owned(&mut pred, &live, &live, &["someone-else".into()]);
        assert_eq!(pred["spec"]["replicas"], 3);
    }

    #[test]
    fn keyed_items_and_set_values() {
        let live = live();
        let mut pred = json!({"metadata": {"name": "web"}, "spec": {"replicas": 5, "template": {"spec": {"containers": [
            {"name": "app", "image": "app:2"}
        ]}}}});
        take_owned(&mut pred, &live, &live, &["istio-injector".into()]);
        assert_eq!(pred["metadata"]["finalizers"], json!(["istio/cleanup"]));
        let containers = &pred["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["image"], "app:2", "not owned by the injector");
        assert_eq!(
            containers[0]["env"],
            json!([{"name": "ISTIO", "value": "on"}])
        );
        assert_eq!(
            containers[1],
            json!({"name": "istio-proxy", "image": "istio:1"})
        );
    }
}
