//! Which live objects belong to which app: the instance label every applied object
//! carries, and the tracking id annotation that alone decides ownership.

use ferry_core::object::is_namespaced;
use ferry_core::plan::{HOOK, SYNC_OPTIONS};
use ferry_core::{Object, ObjectKey};

/// Label naming the app an object was applied by.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// Annotation `<app>:<group>/<kind>:<namespace>/<name>`: the object belongs to `<app>`
/// only when this names the app and the object's own key.
pub const TRACKING_ID: &str = "ferry.dev/tracking-id";
/// The field manager of every apply the engine makes.
pub const FIELD_MANAGER: &str = "ferry";

/// The tracking id of `key` in `app`.
pub fn tracking_id(app: &str, key: &ObjectKey) -> String {
    format!("{app}:{key}")
}

/// The key under which a target stores `obj`: namespaced kinds get `default_ns` when
/// they set no namespace, cluster-scoped kinds have none.
pub fn placed_key(obj: &Object, default_ns: &str) -> ObjectKey {
    let mut key = obj.key();
    if is_namespaced(&key.kind) {
        if key.namespace.is_empty() {
            key.namespace = default_ns.to_string();
        }
    } else {
        key.namespace.clear();
    }
    key
}

/// Whether the live object `obj` belongs to `app`: its tracking id names the app and
/// the object itself. A copy made by hand keeps the label but not a matching id.
pub fn owned_by(obj: &Object, app: &str) -> bool {
    obj.annotation(TRACKING_ID) == Some(tracking_id(app, &obj.key()).as_str())
}

/// Whether an object is a hook (Argo or Helm annotation).
pub fn is_hook(obj: &Object) -> bool {
    obj.annotation(HOOK).is_some_and(|h| !h.trim().is_empty())
        || obj
            .annotation("helm.sh/hook")
            .is_some_and(|h| !h.trim().is_empty())
}

/// Whether an object's own sync options hold `Key=true`.
pub fn object_option(obj: &Object, key: &str) -> bool {
    obj.annotation(SYNC_OPTIONS).is_some_and(|raw| {
        raw.split(',').any(|item| {
            item.split_once('=')
                .is_some_and(|(k, v)| k.trim() == key && v.trim().eq_ignore_ascii_case("true"))
        })
    })
}

/// Makes rendered objects ready to apply for `app`: namespaced objects without a
/// namespace get `default_ns`, cluster-scoped ones lose a stray namespace, and each
/// gets the instance label and its tracking id.
pub fn prepare(app: &str, default_ns: &str, objects: &[Object]) -> Vec<Object> {
    objects
        .iter()
        .map(|o| {
            let mut o = o.clone();
            let key = placed_key(&o, default_ns);
            if key.namespace != o.namespace() {
                if key.namespace.is_empty() {
                    o.metadata_mut().remove("namespace");
                } else {
                    o.set_namespace(&key.namespace);
                }
            }
            o.set_meta_entry("labels", INSTANCE_LABEL, app);
            o.set_meta_entry("annotations", TRACKING_ID, &tracking_id(app, &key));
            o
        })
        .collect()
}

/// A copy of `obj` without ferry's tracking label and annotation: how objects two apps
/// share are compared, so that neither sees the other's id as drift.
pub fn untracked(obj: &Object) -> Object {
    let mut o = obj.clone();
    let meta = o.metadata_mut();
    for (field, key) in [("labels", INSTANCE_LABEL), ("annotations", TRACKING_ID)] {
        if let Some(map) = meta.get_mut(field).and_then(|m| m.as_object_mut()) {
            map.remove(key);
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: serde_json::Value) -> Object {
        Object::from_value(v).unwrap()
    }

    #[test]
    fn prepare_places_and_tracks() {
        let objs = [
            obj(
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}),
            ),
            obj(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "namespace": "x"}}),
            ),
        ];
        let out = prepare("shop", "shop", &objs);
        assert_eq!(out[0].namespace(), "shop");
        assert_eq!(out[0].label(INSTANCE_LABEL), Some("shop"));
        assert_eq!(
            out[0].annotation(TRACKING_ID),
            Some("shop:apps/Deployment:shop/web")
        );
        assert!(owned_by(&out[0], "shop"));
        assert!(!owned_by(&out[0], "other"));
        assert_eq!(out[1].namespace(), "");
        assert_eq!(
            out[1].annotation(TRACKING_ID),
            Some("shop:/Namespace:/shop")
        );
        // A copy under another name keeps the label but not a matching id.
        let mut copy = out[0].clone();
        copy.metadata_mut().insert("name".into(), json!("web-copy"));
        assert!(!owned_by(&copy, "shop"));
        let bare = untracked(&out[0]);
        assert_eq!(bare.label(INSTANCE_LABEL), None);
        assert_eq!(bare.annotation(TRACKING_ID), None);
    }

    #[test]
    fn object_options_read_from_annotation() {
        let o = obj(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "annotations": {SYNC_OPTIONS: "Prune=false, PruneLast=true"}}}));
        assert!(object_option(&o, "PruneLast"));
        assert!(!object_option(&o, "Replace"));
    }
}
