//! Field ownership for server-side apply: the set of leaf paths an applied
//! configuration sets, kept per manager in `metadata.managedFields` (FieldsV1).
//!
//! Lists whose items all carry a `name` (containers, env, volumes) — or, failing that,
//! a `mountPath`, `containerPort` or `port` — are merged item by item, keyed by it, as
//! Kubernetes does for its associative lists; other lists are atomic.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// One step of a field path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Seg {
    /// A map key: `f:name`.
    Field(String),
    /// A list item by its key fields: `k:{"name":"web"}` (the JSON object, compact).
    Key(String),
}

/// A path from the object's root to a leaf.
pub type Path = Vec<Seg>;

const LIST_KEYS: &[&str] = &["name", "mountPath", "containerPort", "port"];

/// The key field of an associative list, if the list is one.
pub fn list_key(items: &[Value]) -> Option<&'static str> {
    if items.is_empty() {
        return None;
    }
    LIST_KEYS.iter().copied().find(|k| {
        items
            .iter()
            .all(|i| i.get(k).is_some_and(|v| v.is_string() || v.is_number()))
    })
}

fn item_key(item: &Value, key: &str) -> String {
    let mut m = Map::new();
    if let Some(v) = item.get(key) {
        m.insert(key.to_string(), v.clone());
    }
    Value::Object(m).to_string()
}

/// Whether a top-level or metadata field is the server's, never owned by a manager.
fn server_owned(path: &[Seg]) -> bool {
    match path {
        [Seg::Field(f)] => matches!(f.as_str(), "apiVersion" | "kind" | "status"),
        [Seg::Field(m), Seg::Field(f)] if m == "metadata" => matches!(
            f.as_str(),
            "name"
                | "namespace"
                | "uid"
                | "resourceVersion"
                | "generation"
                | "creationTimestamp"
                | "managedFields"
                | "deletionTimestamp"
                | "deletionGracePeriodSeconds"
                | "selfLink"
        ),
        _ => false,
    }
}

/// Every leaf path `value` sets.
pub fn paths(value: &Value) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    let mut cur = Vec::new();
    walk(value, &mut cur, &mut out);
    out
}

fn walk(value: &Value, cur: &mut Path, out: &mut BTreeSet<Path>) {
    if server_owned(cur) {
        return;
    }
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                cur.push(Seg::Field(k.clone()));
                walk(v, cur, out);
                cur.pop();
            }
        }
        Value::Array(items) => match list_key(items) {
            Some(key) => {
                for item in items {
                    cur.push(Seg::Key(item_key(item, key)));
                    walk(item, cur, out);
                    cur.pop();
                }
            }
            None => {
                out.insert(cur.clone());
            }
        },
        _ => {
            if !cur.is_empty() {
                out.insert(cur.clone());
            }
        }
    }
}

/// The value at `path`, if any.
pub fn get<'a>(value: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    let mut cur = value;
    for seg in path {
        cur = match (seg, cur) {
            (Seg::Field(f), Value::Object(m)) => m.get(f)?,
            (Seg::Key(k), Value::Array(items)) => find_item(items, k)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn find_item<'a>(items: &'a [Value], key: &str) -> Option<&'a Value> {
    let want: Value = serde_json::from_str(key).ok()?;
    let (k, v) = want.as_object()?.iter().next()?;
    items.iter().find(|i| i.get(k) == Some(v))
}

/// Removes the leaf at `path`; removes maps and list items left empty by it.
pub fn remove(value: &mut Value, path: &[Seg]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    match (first, value) {
        (Seg::Field(f), Value::Object(m)) => {
            if rest.is_empty() {
                m.remove(f);
            } else if let Some(child) = m.get_mut(f) {
                remove(child, rest);
                if child.as_object().is_some_and(Map::is_empty) {
                    m.remove(f);
                }
            }
        }
        (Seg::Key(k), Value::Array(items)) => {
            let Ok(Value::Object(want)) = serde_json::from_str::<Value>(k) else {
                return;
            };
            let Some((kk, kv)) = want.iter().next() else {
                return;
            };
            if let Some(pos) = items.iter().position(|i| i.get(kk) == Some(kv)) {
                if rest.is_empty() {
                    items.remove(pos);
                } else {
                    remove(&mut items[pos], rest);
                    // Only the key itself left: the item is gone.
                    if items[pos].as_object().is_some_and(|m| m.len() <= 1) {
                        items.remove(pos);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Overlays `applied` onto `live`: maps merge, associative lists merge by key (applied
/// items first, in applied order, then live-only items), everything else is replaced.
pub fn merge(live: &mut Value, applied: &Value) {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) => {
            for (k, av) in a {
                match l.get_mut(k) {
                    Some(lv) => merge(lv, av),
                    None => {
                        l.insert(k.clone(), av.clone());
                    }
                }
            }
        }
        (Value::Array(l), Value::Array(a)) => {
            let key = list_key(a).filter(|k| l.iter().all(|i| i.get(k).is_some()));
            match key {
                Some(key) => {
                    let mut out = Vec::with_capacity(a.len().max(l.len()));
                    let mut used = vec![false; l.len()];
                    for ai in a {
                        let pos = l.iter().position(|li| li.get(key) == ai.get(key));
                        match pos {
                            Some(p) => {
                                used[p] = true;
                                let mut item = l[p].clone();
                                merge(&mut item, ai);
                                out.push(item);
                            }
                            None => out.push(ai.clone()),
                        }
                    }
                    for (i, li) in l.iter().enumerate() {
                        if !used[i] {
                            out.push(li.clone());
                        }
                    }
                    *l = out;
                }
                None => *l = a.clone(),
            }
        }
        (l, a) => *l = a.clone(),
    }
}

/// Encodes paths as a FieldsV1 object, as Kubernetes writes it: a leaf is an empty map
/// (`{"f:spec": {"f:replicas": {}}}`).
pub fn to_fields_v1(paths: &BTreeSet<Path>) -> Value {
    let mut root = Map::new();
    for p in paths {
        let mut cur = &mut root;
        for seg in p {
            let name = match seg {
                Seg::Field(f) => format!("f:{f}"),
                Seg::Key(k) => format!("k:{k}"),
            };
            let entry = cur.entry(name).or_insert_with(|| Value::Object(Map::new()));
            cur = match entry {
                Value::Object(m) => m,
                _ => unreachable!("fields entries are maps"),
            };
        }
    }
    Value::Object(root)
}

/// Decodes a FieldsV1 object back into leaf paths.
pub fn from_fields_v1(fields: &Value) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    let mut cur = Vec::new();
    decode(fields, &mut cur, &mut out);
    out
}

/// A node naming no child is a leaf: `{}` as Kubernetes writes it, or `{".": {}}` as
/// ferry wrote leaves before. A `.` beside children (the map itself) adds nothing: the
/// children are the paths.
fn decode(v: &Value, cur: &mut Path, out: &mut BTreeSet<Path>) {
    let Some(map) = v.as_object() else { return };
    let mut children = false;
    for (k, child) in map {
        if k == "." {
            continue;
        }
        let seg = if let Some(f) = k.strip_prefix("f:") {
            Seg::Field(f.to_string())
        } else if let Some(key) = k.strip_prefix("k:") {
            Seg::Key(key.to_string())
        } else {
            continue;
        };
        children = true;
        cur.push(seg);
        decode(child, cur, out);
        cur.pop();
    }
    if !children && !cur.is_empty() {
        out.insert(cur.clone());
    }
}

/// `.spec.template.spec.containers[name=web].image`, for conflict messages.
pub fn display(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            Seg::Key(k) => {
                let v: Value = serde_json::from_str(k).unwrap_or(Value::Null);
                match v.as_object().and_then(|m| m.iter().next()) {
                    Some((kk, vv)) => {
                        let vv = vv
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| vv.to_string());
                        s.push_str(&format!("[{kk}={vv}]"));
                    }
                    None => s.push_str("[?]"),
                }
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_are_keyed_by_name_and_args_are_atomic() {
        let v = json!({"spec": {"containers": [{"name": "web", "image": "a", "args": ["x"]}]}});
        let p: Vec<String> = paths(&v).iter().map(|p| display(p)).collect();
        assert_eq!(
            p,
            vec![
                ".spec.containers[name=web].args",
                ".spec.containers[name=web].image",
                ".spec.containers[name=web].name"
            ]
        );
    }

    #[test]
    fn fields_v1_round_trip() {
        let v = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"replicas": 2, "ports": [{"port": 80}]}});
        let p = paths(&v);
        let f = to_fields_v1(&p);
        assert_eq!(f.pointer("/f:spec/f:replicas"), Some(&json!({})));
        assert_eq!(from_fields_v1(&f), p);
        // What earlier versions stored, with `.` under each leaf, reads the same.
        let old = json!({"f:metadata": {"f:labels": {"f:a": {".": {}}}},
                         "f:spec": {"f:replicas": {".": {}},
                                    "f:ports": {"k:{\"port\":80}": {"f:port": {".": {}}}}}});
        assert_eq!(from_fields_v1(&old), p);
        // As Kubernetes writes a keyed item: `.` beside the item's fields.
        let k8s =
            json!({"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}}}}});
        assert_eq!(
            from_fields_v1(&k8s)
                .iter()
                .map(|p| display(p))
                .collect::<Vec<_>>(),
            [".spec.containers[name=web].image"]
        );
    }

    #[test]
    fn merge_and_remove() {
        let mut live = json!({"spec": {"replicas": 1, "containers": [{"name": "a", "image": "1", "tty": true}, {"name": "b", "image": "2"}]}});
        merge(
            &mut live,
            &json!({"spec": {"containers": [{"name": "a", "image": "3"}]}}),
        );
        assert_eq!(
            live["spec"]["containers"][0],
            json!({"name": "a", "image": "3", "tty": true})
        );
        assert_eq!(live["spec"]["containers"][1]["name"], "b");
        let p = paths(&json!({"spec": {"containers": [{"name": "b", "image": "2"}]}}));
        for path in &p {
            remove(&mut live, path);
        }
        assert_eq!(live["spec"]["containers"].as_array().unwrap().len(), 1);
    }
}
