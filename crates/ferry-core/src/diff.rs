//! Normalisation and diff: is a live object what the desired one would make it?
//!
//! The model is Argo CD's (gitops-engine `pkg/diff`): the desired object is laid over
//! the live one to predict what live would become after a sync ("predicted live");
//! both are normalised (server bookkeeping and server defaults removed), Argo CD's
//! `ignoreDifferences` are applied, Secret values are masked, and the two are
//! compared. A field the desired object sets that live lacks or holds differently is
//! a difference; a field only live has (a controller's annotation, a defaulted field)
//! is not.

mod ignore;
mod jq;
mod managed;
pub(crate) mod mask;
mod normalize;
mod overlay;
mod pointer;

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Result;
use crate::object::{Object, ObjectKey};
use ignore::{Rule, Rules};

/// Argo CD's `spec.ignoreDifferences[]` entry (field names as in Argo CD).
///
/// `group` and `kind` match as globs (`*`); `name` and `namespace`, when set, must
/// equal the object's. `jsonPointers` (RFC 6901) and `jqPathExpressions` (a jq path
/// subset) name fields removed from both sides before comparing;
/// `managedFieldsManagers` names managers whose fields in live are never a difference.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IgnoreDifferences {
    /// API group, `""` for the core group.
    #[serde(default)]
    pub group: String,
    /// Kind, e.g. `Deployment`.
    #[serde(default)]
    pub kind: String,
    /// Only the object with this name, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Only objects in this namespace, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// RFC 6901 pointers such as `/spec/replicas`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub json_pointers: Vec<String>,
    /// jq path expressions such as `.spec.template.spec.containers[] | select(.name == "x") | .image`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jq_path_expressions: Vec<String>,
    /// Field managers (as in `metadata.managedFields[].manager`) whose fields are ignored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_fields_managers: Vec<String>,
}

impl IgnoreDifferences {
    /// Checks every pointer and jq expression; the first bad one is an
    /// [`Error::Expression`](crate::Error::Expression).
    pub fn validate(&self) -> Result<()> {
        Rules::compile(std::slice::from_ref(self)).map(drop)
    }
}

/// How to compare.
#[derive(Clone, Debug, Default)]
pub struct DiffOptions {
    /// Argo CD `ignoreDifferences` entries.
    pub ignore: Vec<IgnoreDifferences>,
}

impl DiffOptions {
    /// Checks every `ignoreDifferences` expression, so that an Application can be
    /// rejected before anything is compared.
    pub fn validate(&self) -> Result<()> {
        Rules::compile(&self.ignore).map(drop)
    }
}

/// The state of one resource, as Argo CD names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SyncStatus {
    /// Live matches desired.
    Synced,
    /// Live exists and differs from desired.
    OutOfSync,
    /// Desired, but not live: a sync creates it.
    Missing,
    /// Live, but no longer desired: a sync with pruning deletes it.
    Extraneous,
}

impl fmt::Display for SyncStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The comparison of one resource.
///
/// For Secrets, every `data` value in both objects is already masked (`++++++++`):
/// nothing here holds a secret value.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceDiff {
    /// The resource: live's key when live exists, else the desired object's.
    pub key: ObjectKey,
    /// Synced, OutOfSync, Missing or Extraneous.
    pub status: SyncStatus,
    /// Live, normalised; `None` when Missing.
    pub normalized_live: Option<Value>,
    /// What live would be after a sync, normalised; `None` when Extraneous.
    pub predicted_live: Option<Value>,
}

impl ResourceDiff {
    /// Whether live matches desired.
    pub fn is_synced(&self) -> bool {
        self.status == SyncStatus::Synced
    }

    /// A unified diff of the normalised live and predicted objects as YAML, with
    /// `--- live <key>` and `+++ desired <key>` headers; empty when Synced.
    pub fn unified(&self) -> String {
        if self.status == SyncStatus::Synced {
            return String::new();
        }
        let to_yaml = |v: &Option<Value>| v.as_ref().map(crate::parse::to_yaml).unwrap_or_default();
        let old = to_yaml(&self.normalized_live);
        let new = to_yaml(&self.predicted_live);
        let key = self.key.to_string();
        similar::TextDiff::from_lines(&old, &new)
            .unified_diff()
            .context_radius(3)
            .header(&format!("live {key}"), &format!("desired {key}"))
            .to_string()
    }
}

/// Removes what a server fills in: status, bookkeeping metadata, the last-applied
/// annotation, and fields that hold the value the server defaults them to; empty maps
/// and lists are dropped (`labels: {}` is the same as no labels).
pub fn normalize(value: &Value) -> Value {
    let mut v = normalize::clone_stripped(value);
    normalize::normalize_in_place(&mut v);
    v
}

/// Compares one desired object with its live counterpart (`None`: not live, Missing).
///
/// An invalid `ignoreDifferences` expression is an [`Error::Expression`](crate::Error::Expression).
pub fn diff(desired: &Object, live: Option<&Object>, opts: &DiffOptions) -> Result<ResourceDiff> {
    let rules = Rules::compile(&opts.ignore)?;
    Ok(diff_compiled(desired, live, &rules))
}

/// Pairs desired and live objects by key and compares each pair.
///
/// A desired object without a namespace matches a live one in `default_namespace`
/// (or one without a namespace: cluster-scoped); a namespaced desired object also
/// matches a cluster-scoped live one of the same name. The result has one entry per
/// desired object in input order, then one Extraneous entry per unmatched live object
/// in input order. Missing entries keep the desired key as written.
pub fn compare(
    desired: &[Object],
    live: &[Object],
    default_namespace: &str,
    opts: &DiffOptions,
) -> Result<Vec<ResourceDiff>> {
    let rules = Rules::compile(&opts.ignore)?;
    let mut index: HashMap<(&str, &str, &str, &str), usize> = HashMap::with_capacity(live.len());
    for (i, l) in live.iter().enumerate() {
        index
            .entry((l.group(), l.kind(), l.namespace(), l.name()))
            .or_insert(i);
    }
    let mut used = vec![false; live.len()];
    let mut out = Vec::with_capacity(desired.len() + live.len() / 8);
    for d in desired {
        let (group, kind, ns, name) = (d.group(), d.kind(), d.namespace(), d.name());
        let mut candidates = [(group, kind, ns, name), (group, kind, "", name)];
        if ns.is_empty() {
            candidates[0].2 = default_namespace;
        }
        let found = candidates
            .iter()
            .filter_map(|k| index.get(k).copied())
            .find(|i| !used[*i]);
        if let Some(i) = found {
            used[i] = true;
        }
        out.push(diff_compiled(d, found.map(|i| &live[i]), &rules));
    }
    for (l, _) in live.iter().zip(&used).filter(|(_, used)| !**used) {
        out.push(extraneous(l, &rules));
    }
    Ok(out)
}

/// Removes ignored paths from `value` for every matching rule.
fn remove_ignored(value: &mut Value, rules: &[&Rule]) {
    for r in rules.iter().filter(|r| r.has_paths()) {
        r.remove_ignored(value);
    }
}

fn matching<'a>(rules: &'a Rules, key: &ObjectKey) -> Vec<&'a Rule> {
    if rules.is_empty() {
        return Vec::new();
    }
    rules.matching(&key.group, &key.kind, &key.namespace, &key.name)
}

fn diff_compiled(desired: &Object, live: Option<&Object>, rules: &Rules) -> ResourceDiff {
    let Some(live) = live else {
        let key = desired.key();
        let matched = matching(rules, &key);
        let mut pred = normalize::clone_stripped(desired.value());
        let secret = mask::is_secret(&pred);
        if secret {
            mask::fold_string_data(&mut pred);
        }
        remove_ignored(&mut pred, &matched);
        normalize::normalize_in_place(&mut pred);
        if secret {
            mask::mask([Some(&mut pred), None]);
        }
        return ResourceDiff {
            key,
            status: SyncStatus::Missing,
            normalized_live: None,
            predicted_live: Some(pred),
        };
    };
    let key = live.key();
    let matched = matching(rules, &key);
    let mut nl = normalize::clone_stripped(live.value());
    let mut pred = nl.clone();
    overlay::overlay(&mut pred, desired.value(), "");
    let secret = mask::is_secret(&pred) || mask::is_secret(&nl);
    if secret {
        mask::fold_string_data(&mut pred);
        mask::fold_string_data(&mut nl);
    }
    for r in &matched {
        if !r.managers.is_empty() {
            managed::take_owned(&mut pred, &nl, live.value(), &r.managers);
        }
    }
    remove_ignored(&mut pred, &matched);
    remove_ignored(&mut nl, &matched);
    normalize::normalize_in_place(&mut pred);
    normalize::normalize_in_place(&mut nl);
    if pred != nl {
        normalize::align_quantities(&mut pred, &nl, "");
    }
    if secret {
        mask::mask([Some(&mut nl), Some(&mut pred)]);
    }
    let status = if pred == nl {
        SyncStatus::Synced
    } else {
        SyncStatus::OutOfSync
    };
    ResourceDiff {
        key,
        status,
        normalized_live: Some(nl),
        predicted_live: Some(pred),
    }
}

fn extraneous(live: &Object, rules: &Rules) -> ResourceDiff {
    let key = live.key();
    let matched = matching(rules, &key);
    let mut nl = normalize::clone_stripped(live.value());
    let secret = mask::is_secret(&nl);
    if secret {
        mask::fold_string_data(&mut nl);
    }
    remove_ignored(&mut nl, &matched);
    normalize::normalize_in_place(&mut nl);
    if secret {
        mask::mask([Some(&mut nl), None]);
    }
    ResourceDiff {
        key,
        status: SyncStatus::Extraneous,
        normalized_live: Some(nl),
        predicted_live: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Object {
        Object::from_value(v).unwrap()
    }

    fn cm(ns: Option<&str>, name: &str, data: Value) -> Object {
        let mut meta = json!({"name": name});
        if let Some(ns) = ns {
            meta["namespace"] = json!(ns);
        }
        obj(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}))
    }

    #[test]
    fn live_only_fields_are_not_differences() {
        let desired = cm(None, "a", json!({"k": "v"}));
        let live = obj(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "ns", "uid": "1", "resourceVersion": "7", "annotations": {"ctl": "x"}},
            "data": {"k": "v"}}));
        let d = diff(&desired, Some(&live), &DiffOptions::default()).unwrap();
        assert_eq!(d.status, SyncStatus::Synced, "{}", d.unified());
        assert_eq!(d.key, ObjectKey::new("", "ConfigMap", "ns", "a"));
        assert_eq!(d.unified(), "");
    }

    #[test]
    fn explicit_non_default_values_are_compared() {
        let live = obj(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "w", "namespace": "ns"},
            "spec": {"revisionHistoryLimit": 10, "template": {"spec": {"dnsPolicy": "ClusterFirst",
                "containers": [{"name": "a", "image": "a:1", "imagePullPolicy": "IfNotPresent"}]}}}}));
        let status = |spec: Value| {
            let desired = obj(
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"}, "spec": spec}),
            );
            diff(&desired, Some(&live), &DiffOptions::default())
                .unwrap()
                .status
        };
        assert_eq!(
            status(json!({"revisionHistoryLimit": 10})),
            SyncStatus::Synced
        );
        assert_eq!(
            status(json!({"revisionHistoryLimit": 3})),
            SyncStatus::OutOfSync
        );
        assert_eq!(
            status(json!({"template": {"spec": {"dnsPolicy": "None"}}})),
            SyncStatus::OutOfSync
        );
        let containers = |c: Value| json!({"template": {"spec": {"containers": [c]}}});
        assert_eq!(
            status(containers(json!({"name": "a", "image": "a:1"}))),
            SyncStatus::Synced
        );
        assert_eq!(
            status(containers(
                json!({"name": "a", "image": "a:1", "imagePullPolicy": "Always"})
            )),
            SyncStatus::OutOfSync
        );
    }

    #[test]
    fn empty_maps_equal_absent_ones() {
        let desired = obj(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {}}, "data": {}}),
        );
        let live = cm(Some("ns"), "a", json!(null));
        assert!(
            diff(&desired, Some(&live), &DiffOptions::default())
                .unwrap()
                .is_synced()
        );
    }

    #[test]
    fn compare_pairs_by_key_and_default_namespace() {
        let desired = [
            cm(None, "a", json!({"k": "1"})),
            cm(Some("other"), "b", json!({})),
            cm(None, "new", json!({})),
        ];
        let live = [
            cm(Some("other"), "b", json!({})),
            cm(Some("ns"), "gone", json!({})),
            cm(Some("ns"), "a", json!({"k": "2"})),
        ];
        let r = compare(&desired, &live, "ns", &DiffOptions::default()).unwrap();
        let got: Vec<_> = r.iter().map(|d| (d.key.name.as_str(), d.status)).collect();
        assert_eq!(
            got,
            [
                ("a", SyncStatus::OutOfSync),
                ("b", SyncStatus::Synced),
                ("new", SyncStatus::Missing),
                ("gone", SyncStatus::Extraneous)
            ]
        );
        // A desired object without namespace does not match one in another namespace.
        let r = compare(
            &[cm(None, "b", json!({}))],
            &[cm(Some("x"), "b", json!({}))],
            "ns",
            &DiffOptions::default(),
        )
        .unwrap();
        assert_eq!(
            r.iter().map(|d| d.status).collect::<Vec<_>>(),
            [SyncStatus::Missing, SyncStatus::Extraneous]
        );
    }

    #[test]
    fn ignore_differences_deserialises_argo_fields() {
        let e: IgnoreDifferences = serde_json::from_value(json!({
            "kind": "Deployment", "jsonPointers": ["/spec/replicas"],
            "jqPathExpressions": [".a"], "managedFieldsManagers": ["kube-controller-manager"]
        }))
        .unwrap();
        assert_eq!(e.group, "");
        assert_eq!(e.json_pointers, ["/spec/replicas"]);
        assert_eq!(e.managed_fields_managers, ["kube-controller-manager"]);
        assert!(e.validate().is_ok());
        let bad = IgnoreDifferences {
            jq_path_expressions: vec![".a[".into()],
            ..e
        };
        assert!(bad.validate().is_err());
    }
}
