//! The object model: a Kubernetes object kept as JSON, plus the key that names it.

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Where an object came from: the file, the 1-based line its document starts on,
/// and the 0-based index of the document within the file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Source {
    /// The file as the user named it (or a pseudo-name such as `<stdin>`).
    pub file: Arc<str>,
    /// 1-based line where the document (or `List` item's document) starts.
    pub line: usize,
    /// 0-based index of the YAML/JSON document within the file.
    pub doc: usize,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{} (document {})", self.file, self.line, self.doc)
    }
}

/// The identity of an object: API group, kind, namespace and name.
///
/// The namespace is empty for cluster-scoped objects and for namespaced objects whose
/// manifest does not set one (the destination namespace fills it in later).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// API group, empty for the core group (`v1`).
    pub group: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Namespace, empty when unset or cluster-scoped.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
}

impl ObjectKey {
    /// Builds a key from its four parts.
    pub fn new(
        group: impl Into<String>,
        kind: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        Self {
            group: group.into(),
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key without its namespace: how cluster-scoped identity and Argo's
    /// `ignoreDifferences` matching see it.
    pub fn group_kind(&self) -> (&str, &str) {
        (&self.group, &self.kind)
    }
}

impl fmt::Display for ObjectKey {
    /// `group/Kind:namespace/name`, the form used in tracking ids.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}:{}/{}",
            self.group, self.kind, self.namespace, self.name
        )
    }
}

/// Built-in and well-known kinds that live outside namespaces.
pub const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "Node",
    "PersistentVolume",
    "StorageClass",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "APIService",
    "IngressClass",
    "PriorityClass",
    "RuntimeClass",
    "CSIDriver",
    "VolumeAttachment",
    "ClusterAnalysisTemplate",
    "ClusterIssuer",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// Whether objects of `kind` live in a namespace (unknown kinds are assumed to).
pub fn is_namespaced(kind: &str) -> bool {
    !CLUSTER_SCOPED.contains(&kind)
}

/// Splits an `apiVersion` into group and version: `apps/v1` → (`apps`, `v1`), `v1` → (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.rsplit_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    }
}

/// A Kubernetes object: its JSON body (always a map with `apiVersion`, `kind` and
/// `metadata.name`) and, when it was read from a file, where.
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    value: Value,
    source: Option<Source>,
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = value;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

impl Object {
    /// Wraps a JSON value, checking that it looks like a Kubernetes object.
    pub fn from_value(value: Value) -> Result<Self> {
        Self::with_source(value, None)
    }

    /// Wraps a JSON value read from `source`; errors name the source.
    pub fn with_source(value: Value, source: Option<Source>) -> Result<Self> {
        let problem = match &value {
            Value::Object(map) => {
                if !matches!(map.get("apiVersion"), Some(Value::String(s)) if !s.is_empty()) {
                    Some("missing or empty `apiVersion`")
                } else if !matches!(map.get("kind"), Some(Value::String(s)) if !s.is_empty()) {
                    Some("missing or empty `kind`")
                } else if !map.get("metadata").is_some_and(Value::is_object) {
                    Some("missing `metadata`")
                } else if str_at(&value, &["metadata", "name"]).is_none_or(str::is_empty)
                    && str_at(&value, &["metadata", "generateName"]).is_none_or(str::is_empty)
                {
                    Some("missing `metadata.name`")
                } else {
                    None
                }
            }
            _ => Some("a document must be a mapping (a Kubernetes object)"),
        };
        if let Some(problem) = problem {
            return Err(Error::Invalid {
                at: source.map(Box::new),
                message: problem.to_string(),
            });
        }
        Ok(Self { value, source })
    }

    /// The JSON body.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The JSON body, mutable. Keep `apiVersion`, `kind` and `metadata.name` intact.
    pub fn value_mut(&mut self) -> &mut Value {
        &mut self.value
    }

    /// The JSON body, by value.
    pub fn into_value(self) -> Value {
        self.value
    }

    /// Where the object was read from, if it was read from a file.
    pub fn source(&self) -> Option<&Source> {
        self.source.as_ref()
    }

    /// Sets where the object came from.
    pub fn set_source(&mut self, source: Option<Source>) {
        self.source = source;
    }

    /// `apiVersion`.
    pub fn api_version(&self) -> &str {
        str_at(&self.value, &["apiVersion"]).unwrap_or_default()
    }

    /// API group (empty for the core group).
    pub fn group(&self) -> &str {
        split_api_version(self.api_version()).0
    }

    /// `kind`.
    pub fn kind(&self) -> &str {
        str_at(&self.value, &["kind"]).unwrap_or_default()
    }

    /// `metadata.name` (or `generateName` when no name is set).
    pub fn name(&self) -> &str {
        str_at(&self.value, &["metadata", "name"])
            .or_else(|| str_at(&self.value, &["metadata", "generateName"]))
            .unwrap_or_default()
    }

    /// `metadata.namespace`, empty when unset.
    pub fn namespace(&self) -> &str {
        str_at(&self.value, &["metadata", "namespace"]).unwrap_or_default()
    }

    /// Sets `metadata.namespace`.
    pub fn set_namespace(&mut self, namespace: &str) {
        self.metadata_mut()
            .insert("namespace".into(), Value::String(namespace.into()));
    }

    /// The object's key.
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(self.group(), self.kind(), self.namespace(), self.name())
    }

    /// `metadata`.
    pub fn metadata(&self) -> Option<&Map<String, Value>> {
        self.value.get("metadata").and_then(Value::as_object)
    }

    /// `metadata`, created if absent.
    pub fn metadata_mut(&mut self) -> &mut Map<String, Value> {
        let map = self
            .value
            .as_object_mut()
            .expect("Object invariant: body is a map");
        let meta = map
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if !meta.is_object() {
            *meta = Value::Object(Map::new());
        }
        meta.as_object_mut().expect("just made a map")
    }

    /// One annotation's value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        str_at(&self.value, &["metadata", "annotations", key])
    }

    /// One label's value.
    pub fn label(&self, key: &str) -> Option<&str> {
        str_at(&self.value, &["metadata", "labels", key])
    }

    /// Sets one entry of `metadata.labels` or `metadata.annotations` (`field`).
    pub fn set_meta_entry(&mut self, field: &str, key: &str, value: &str) {
        let meta = self.metadata_mut();
        let entry = meta
            .entry(field)
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        entry
            .as_object_mut()
            .expect("just made a map")
            .insert(key.into(), Value::String(value.into()));
    }

    /// Whether `metadata.deletionTimestamp` is set.
    pub fn is_being_deleted(&self) -> bool {
        self.value
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|v| !v.is_null())
    }

    /// `file:line` of the object for messages, or its key when it has no source.
    pub fn origin(&self) -> String {
        match &self.source {
            Some(s) => format!("{}:{}", s.file, s.line),
            None => self.key().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_uses_group_from_api_version() {
        let o = Object::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"}
        }))
        .unwrap();
        assert_eq!(o.key(), ObjectKey::new("apps", "Deployment", "shop", "web"));
        assert_eq!(o.key().to_string(), "apps/Deployment:shop/web");
    }

    #[test]
    fn rejects_objects_without_kind_or_name() {
        let err = Object::from_value(json!({"apiVersion": "v1", "metadata": {"name": "x"}}));
        assert!(err.unwrap_err().to_string().contains("kind"));
        let err =
            Object::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}));
        assert!(err.unwrap_err().to_string().contains("metadata.name"));
        assert!(Object::from_value(json!([1, 2])).is_err());
    }
}
