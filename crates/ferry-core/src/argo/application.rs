//! Argo CD `Application`: where manifests come from, where they go, how they sync.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::validate::Checker;
use super::{ArgoResource, IntOrString, is_false, parse_seconds_or_duration};
use crate::diff::IgnoreDifferences;

/// Kubernetes object metadata, as Argo resources carry it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ObjectMeta {
    /// `name`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// `generateName`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub generate_name: String,
    /// `namespace`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// `labels`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `annotations`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// `finalizers`, e.g. `resources-finalizer.argocd.argoproj.io` (cascade delete).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
    /// `uid` (set by the API server).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// `resourceVersion` (set by the API server).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    /// `generation` (set by the API server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// `creationTimestamp` (set by the API server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    /// `deletionTimestamp` (set by the API server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    /// `deletionGracePeriodSeconds` (set by the API server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_grace_period_seconds: Option<i64>,
    /// `ownerReferences`, kept as JSON.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub owner_references: Vec<Value>,
    /// `managedFields`, kept as JSON.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub managed_fields: Vec<Value>,
    /// `selfLink` (deprecated, set by old API servers).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub self_link: String,
}

/// An Argo CD `Application`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Application {
    /// `argoproj.io/v1alpha1`.
    pub api_version: String,
    /// `Application`.
    pub kind: String,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// The desired state.
    pub spec: ApplicationSpec,
    /// Status as Argo CD wrote it, if the document carries one; ferry keeps its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
}

impl ArgoResource for Application {
    const KIND: &'static str = "Application";
}

/// `Application.spec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ApplicationSpec {
    /// The one source of manifests (or use `sources`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<ApplicationSource>,
    /// Several sources, rendered together (or use `source`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<ApplicationSource>,
    /// Where the manifests are applied.
    pub destination: ApplicationDestination,
    /// The `AppProject`; empty means `default`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub project: String,
    /// When and how to sync.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_policy: Option<SyncPolicy>,
    /// Differences to ignore when comparing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignore_differences: Vec<IgnoreDifferences>,
    /// Extra information shown with the app.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub info: Vec<Info>,
    /// How many history entries to keep (default 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i64>,
}

impl ApplicationSpec {
    /// The sources: `sources` when set, else `source`.
    pub fn all_sources(&self) -> Vec<&ApplicationSource> {
        if self.sources.is_empty() {
            self.source.iter().collect()
        } else {
            self.sources.iter().collect()
        }
    }

    /// The `AppProject` name, `default` when unset.
    pub fn project_name(&self) -> &str {
        if self.project.is_empty() {
            "default"
        } else {
            &self.project
        }
    }

    /// The effective `revisionHistoryLimit` (default 10).
    pub fn history_limit(&self) -> i64 {
        self.revision_history_limit.unwrap_or(10)
    }
}

/// Where an application's manifests come from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ApplicationSource {
    /// Git repository (or Helm repository) URL.
    #[serde(rename = "repoURL")]
    pub repo_url: String,
    /// Directory within the repository.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Branch, tag or commit (Git), or chart version (Helm). Empty means `HEAD`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub target_revision: String,
    /// Helm chart name, for sources that are Helm repositories.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub chart: String,
    /// Name other sources use to refer to this one (`$name/values.yaml`).
    #[serde(rename = "ref", skip_serializing_if = "String::is_empty")]
    pub ref_name: String,
    /// Display name in multi-source applications.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Helm options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub helm: Option<ApplicationSourceHelm>,
    /// Kustomize options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kustomize: Option<ApplicationSourceKustomize>,
    /// Plain-directory options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory: Option<ApplicationSourceDirectory>,
}

impl ApplicationSource {
    /// The revision to resolve: `targetRevision`, or `HEAD` when empty.
    pub fn revision(&self) -> &str {
        if self.target_revision.is_empty() {
            "HEAD"
        } else {
            &self.target_revision
        }
    }
}

/// `source.helm`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ApplicationSourceHelm {
    /// Release name (default: the application's name).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub release_name: String,
    /// Values files, relative to the source path (or `$ref/...`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub value_files: Vec<String>,
    /// Values as a YAML string.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub values: String,
    /// Values as an object; takes precedence over `values`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values_object: Option<Value>,
    /// `--set` parameters.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<HelmParameter>,
    /// `--set-file` parameters.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub file_parameters: Vec<HelmFileParameter>,
    /// Skip values files that do not exist.
    #[serde(skip_serializing_if = "is_false")]
    pub ignore_missing_value_files: bool,
    /// `--skip-crds`.
    #[serde(skip_serializing_if = "is_false")]
    pub skip_crds: bool,
    /// `--skip-tests`.
    #[serde(skip_serializing_if = "is_false")]
    pub skip_tests: bool,
    /// `--skip-schema-validation`.
    #[serde(skip_serializing_if = "is_false")]
    pub skip_schema_validation: bool,
    /// Namespace to template with (default: the destination namespace).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// `--kube-version`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kube_version: String,
    /// `--api-versions`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub api_versions: Vec<String>,
}

/// One Helm `--set` parameter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HelmParameter {
    /// Parameter path, e.g. `image.tag`.
    pub name: String,
    /// Its value.
    pub value: String,
    /// `--set-string` instead of `--set`.
    #[serde(skip_serializing_if = "is_false")]
    pub force_string: bool,
}

/// One Helm `--set-file` parameter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HelmFileParameter {
    /// Parameter path.
    pub name: String,
    /// File whose content is the value, relative to the source path.
    pub path: String,
}

/// `source.kustomize`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ApplicationSourceKustomize {
    /// `namePrefix`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name_prefix: String,
    /// `nameSuffix`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name_suffix: String,
    /// Image overrides, `[old=]name[:tag|@digest]`, as `kustomize edit set image`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// Labels added to every object.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub common_labels: BTreeMap<String, String>,
    /// Annotations added to every object.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub common_annotations: BTreeMap<String, String>,
    /// Overwrite labels the manifests already set.
    #[serde(skip_serializing_if = "is_false")]
    pub force_common_labels: bool,
    /// Overwrite annotations the manifests already set.
    #[serde(skip_serializing_if = "is_false")]
    pub force_common_annotations: bool,
    /// Add `commonLabels` without touching selectors.
    #[serde(skip_serializing_if = "is_false")]
    pub label_without_selector: bool,
    /// Namespace set on every namespaced object.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Replica overrides.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<KustomizeReplica>,
    /// Patches.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<KustomizePatch>,
    /// Components to add.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<String>,
    /// Skip components that do not exist.
    #[serde(skip_serializing_if = "is_false")]
    pub ignore_missing_components: bool,
}

/// One Kustomize replica override.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct KustomizeReplica {
    /// Deployment or StatefulSet name.
    pub name: String,
    /// Replica count (a number, or a string holding one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<IntOrString>,
}

/// One Kustomize patch: inline (`patch`) or from a file (`path`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct KustomizePatch {
    /// Patch file.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Inline patch (strategic merge or JSON 6902, as YAML).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub patch: String,
    /// Which objects to patch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<KustomizeSelector>,
    /// Patch options (`allowNameChange`, `allowKindChange`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, bool>,
}

/// A Kustomize patch target.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct KustomizeSelector {
    /// API group.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// API version.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Kind.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Name (a regular expression).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Namespace.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Annotation selector.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub annotation_selector: String,
    /// Label selector.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub label_selector: String,
}

/// `source.directory`: plain YAML/JSON manifests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ApplicationSourceDirectory {
    /// Read subdirectories too.
    #[serde(skip_serializing_if = "is_false")]
    pub recurse: bool,
    /// Glob of files to read (`*.yaml`, `{a.yaml,b.yaml}`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub include: String,
    /// Glob of files to skip.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub exclude: String,
}

/// `spec.destination`: a cluster (by `server` URL or by `name`) and a namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ApplicationDestination {
    /// API server URL, e.g. `https://kubernetes.default.svc`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub server: String,
    /// Cluster name, e.g. `in-cluster`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Namespace for namespaced objects that set none.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// `spec.syncPolicy`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SyncPolicy {
    /// Sync on every change, when set (and `enabled` is not false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automated: Option<SyncPolicyAutomated>,
    /// `Key=Value` options, e.g. `CreateNamespace=true`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sync_options: Vec<String>,
    /// Retry of failed syncs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryStrategy>,
    /// Labels and annotations for a namespace made by `CreateNamespace=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub managed_namespace_metadata: Option<ManagedNamespaceMetadata>,
}

impl SyncPolicy {
    /// The value of one sync option (`Key=Value`), the last one when repeated.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.sync_options
            .iter()
            .rev()
            .filter_map(|o| o.split_once('='))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim())
    }

    /// Whether a boolean sync option is set to `true`.
    pub fn option_is_true(&self, key: &str) -> bool {
        self.option(key)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// Whether automated sync is on.
    pub fn is_automated(&self) -> bool {
        self.automated
            .as_ref()
            .is_some_and(|a| a.enabled.unwrap_or(true))
    }
}

/// `syncPolicy.automated`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SyncPolicyAutomated {
    /// Delete objects that left Git.
    #[serde(skip_serializing_if = "is_false")]
    pub prune: bool,
    /// Undo changes made outside Git.
    #[serde(skip_serializing_if = "is_false")]
    pub self_heal: bool,
    /// Allow syncing to zero objects.
    #[serde(skip_serializing_if = "is_false")]
    pub allow_empty: bool,
    /// Turn automated sync off without removing the block (default on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// `syncPolicy.retry`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RetryStrategy {
    /// Most retries; negative means no limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// Back-off between retries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
}

/// `retry.backoff`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Backoff {
    /// First delay: a Go duration, or whole seconds (default `5s`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub duration: String,
    /// Multiplier per retry (default 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub factor: Option<i64>,
    /// Longest delay (default `3m`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub max_duration: String,
}

impl Backoff {
    /// The first delay (default 5 s); `None` when the value does not parse.
    pub fn duration(&self) -> Option<Duration> {
        if self.duration.is_empty() {
            Some(Duration::from_secs(5))
        } else {
            parse_seconds_or_duration(&self.duration)
        }
    }

    /// The multiplier (default 2).
    pub fn factor(&self) -> i64 {
        self.factor.unwrap_or(2)
    }

    /// The longest delay (default 3 min); `None` when the value does not parse.
    pub fn max_duration(&self) -> Option<Duration> {
        if self.max_duration.is_empty() {
            Some(Duration::from_secs(180))
        } else {
            parse_seconds_or_duration(&self.max_duration)
        }
    }
}

/// `syncPolicy.managedNamespaceMetadata`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ManagedNamespaceMetadata {
    /// Labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// One `spec.info` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Info {
    /// Label.
    pub name: String,
    /// Text or URL.
    pub value: String,
}

/// The sync options ferry knows, with the values each accepts (`None`: true/false).
const SYNC_OPTIONS: &[(&str, Option<&[&str]>)] = &[
    ("CreateNamespace", None),
    ("PruneLast", None),
    ("ApplyOutOfSyncOnly", None),
    ("Prune", None),
    ("Delete", None),
    ("Replace", None),
    ("ServerSideApply", None),
    ("Validate", None),
    ("RespectIgnoreDifferences", None),
    ("FailOnSharedResource", None),
    ("SkipDryRunOnMissingResource", None),
    (
        "PrunePropagationPolicy",
        Some(&["foreground", "background", "orphan"]),
    ),
];

/// Sync options Argo has that ferry does not act on.
const UNSUPPORTED_SYNC_OPTIONS: &[&str] = &["Force", "ClientSideApplyMigration"];

/// Checks a list of `Key=Value` sync options (also used for the
/// `argocd.argoproj.io/sync-options` annotation's entries).
pub(crate) fn check_sync_options(c: &mut Checker, path: &str, options: &[String]) {
    for (i, option) in options.iter().enumerate() {
        let p = format!("{path}[{i}]");
        if super::is_template(option) {
            continue;
        }
        let Some((key, value)) = option.split_once('=') else {
            c.error(&p, format!("{option:?} is not of the form Key=Value"));
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if UNSUPPORTED_SYNC_OPTIONS.contains(&key) {
            c.warn(&p, format!("sync option {key} is not supported"));
            continue;
        }
        let Some((_, allowed)) = SYNC_OPTIONS.iter().find(|(k, _)| *k == key) else {
            c.warn(&p, format!("unknown sync option {key}"));
            continue;
        };
        match allowed {
            None => {
                if (key == "Prune" || key == "Delete") && value == "confirm" {
                    c.warn(&p, format!("{key}=confirm is not supported"));
                } else if value != "true" && value != "false" {
                    c.error(&p, format!("{key} must be true or false, not {value:?}"));
                }
            }
            Some(values) => {
                if !values.contains(&value) {
                    c.error(
                        &p,
                        format!("{key} must be one of {}, not {value:?}", values.join(", ")),
                    );
                }
            }
        }
    }
}

impl Application {
    pub(crate) fn check(&self, c: &mut Checker) {
        check_spec(&self.spec, c, "spec");
    }
}

/// Checks an application spec at `path`: an `Application`'s, or an `ApplicationSet`'s
/// template (whose templated strings, `{{...}}`, are left for after rendering).
pub(crate) fn check_spec(spec: &ApplicationSpec, c: &mut Checker, path: &str) {
    if !c.present(path) {
        c.error(path, "required");
        return;
    }
    let dest = format!("{path}.destination");
    if !c.present(&dest) {
        c.error(&dest, "required: set server or name (and namespace)");
    } else {
        let d = &spec.destination;
        match (d.server.is_empty(), d.name.is_empty()) {
            (true, true) => c.error(&dest, "set server or name"),
            (false, false) => c.error(&dest, "set server or name, not both"),
            _ => {}
        }
    }
    let has_source = c.present(&format!("{path}.source"));
    let has_sources = c.present(&format!("{path}.sources"));
    let has_hydrator = c.present(&format!("{path}.sourceHydrator"));
    if has_source && has_sources {
        c.error(
            &format!("{path}.sources"),
            "set source or sources, not both",
        );
    } else if !has_source && !has_sources && !has_hydrator {
        c.error(&format!("{path}.source"), "required: set source or sources");
    }
    if let Some(source) = &spec.source {
        check_source(source, c, &format!("{path}.source"), false);
    }
    if has_sources && spec.sources.is_empty() {
        c.error(&format!("{path}.sources"), "must list at least one source");
    }
    let mut refs: Vec<&str> = Vec::new();
    for (i, source) in spec.sources.iter().enumerate() {
        let p = format!("{path}.sources[{i}]");
        check_source(source, c, &p, true);
        if !source.ref_name.is_empty() {
            if refs.contains(&source.ref_name.as_str()) {
                c.error(
                    &format!("{p}.ref"),
                    format!("ref {:?} is used by an earlier source", source.ref_name),
                );
            }
            refs.push(&source.ref_name);
        }
    }
    if let Some(policy) = &spec.sync_policy {
        check_sync_policy(policy, c, &format!("{path}.syncPolicy"));
    }
    for (i, entry) in spec.ignore_differences.iter().enumerate() {
        check_ignore_difference(entry, c, &format!("{path}.ignoreDifferences[{i}]"));
    }
    c.non_negative(
        &format!("{path}.revisionHistoryLimit"),
        spec.revision_history_limit,
    );
}

fn check_source(source: &ApplicationSource, c: &mut Checker, path: &str, multi: bool) {
    if source.repo_url.trim().is_empty() {
        c.error(&format!("{path}.repoURL"), "required");
    } else if has_userinfo(&source.repo_url) && !super::is_template(&source.repo_url) {
        // Never echo the URL: the message would carry the secret it is about.
        c.error(
            &format!("{path}.repoURL"),
            "holds a user name or password (https://user:secret@host/…); anyone who can read the Application can read it: remove it from the URL, rotate it, and give it with `ferry repo add URL --username … --password …`",
        );
    }
    let app_path = source.path.trim();
    if !app_path.is_empty() && !super::is_template(app_path) {
        if app_path.starts_with('/') {
            c.error(
                &format!("{path}.path"),
                format!(
                    "{app_path:?}: app path is absolute; give it relative to the repository root"
                ),
            );
        } else if escapes_root(app_path) {
            c.error(
                &format!("{path}.path"),
                format!("{app_path:?}: app path is outside the repository root"),
            );
        }
    }
    if !source.chart.is_empty() && source.target_revision.trim().is_empty() {
        c.error(
            &format!("{path}.targetRevision"),
            "required when chart is set (the chart version, such as 1.2.3 or 1.*)",
        );
    }
    if !multi && !source.ref_name.is_empty() {
        c.warn(
            &format!("{path}.ref"),
            "only has a meaning in spec.sources; ignored",
        );
    }
    let kinds = [
        source.helm.is_some(),
        source.kustomize.is_some(),
        source.directory.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() > 1 {
        c.error(path, "set at most one of helm, kustomize and directory");
    }
    if !source.chart.is_empty() && (source.kustomize.is_some() || source.directory.is_some()) {
        c.error(
            &format!("{path}.chart"),
            "a Helm chart source cannot have kustomize or directory options",
        );
    }
    if let Some(helm) = &source.helm {
        let hp = format!("{path}.helm");
        for (i, p) in helm.parameters.iter().enumerate() {
            if p.name.is_empty() {
                c.error(&format!("{hp}.parameters[{i}].name"), "required");
            }
        }
        for (i, p) in helm.file_parameters.iter().enumerate() {
            if p.name.is_empty() {
                c.error(&format!("{hp}.fileParameters[{i}].name"), "required");
            }
            if p.path.is_empty() {
                c.error(&format!("{hp}.fileParameters[{i}].path"), "required");
            }
        }
        if helm.values_object.as_ref().is_some_and(|o| !o.is_object()) {
            c.error(&format!("{hp}.valuesObject"), "must be a mapping");
        }
    }
    if let Some(k) = &source.kustomize {
        let kp = format!("{path}.kustomize");
        for (i, r) in k.replicas.iter().enumerate() {
            let rp = format!("{kp}.replicas[{i}]");
            if r.name.is_empty() {
                c.error(&format!("{rp}.name"), "required");
            }
            match &r.count {
                None => c.error(&format!("{rp}.count"), "required"),
                Some(count) => c.non_negative_int(&format!("{rp}.count"), count),
            }
        }
        for (i, p) in k.patches.iter().enumerate() {
            if p.path.is_empty() == p.patch.is_empty() {
                c.error(
                    &format!("{kp}.patches[{i}]"),
                    "set exactly one of path and patch",
                );
            }
        }
        for (i, image) in k.images.iter().enumerate() {
            if image.trim().is_empty() {
                c.error(&format!("{kp}.images[{i}]"), "must not be empty");
            }
        }
    }
}

/// Whether an `http(s)` URL carries `user[:password]@` in its authority.
fn has_userinfo(url: &str) -> bool {
    let Some((scheme, rest)) = url.trim().split_once("://") else {
        return false;
    };
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
        return false;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    rest[..end].contains('@')
}

/// Whether a relative path climbs above where it starts (`../x`, `a/../../x`).
fn escapes_root(path: &str) -> bool {
    let mut depth: i64 = 0;
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

fn check_sync_policy(policy: &SyncPolicy, c: &mut Checker, path: &str) {
    check_sync_options(c, &format!("{path}.syncOptions"), &policy.sync_options);
    if let Some(limit) = policy.retry.as_ref().and_then(|r| r.limit)
        && limit < -1
    {
        c.error(
            &format!("{path}.retry.limit"),
            format!("must be -1 (retry without limit) or more, got {limit}"),
        );
    }
    if let Some(backoff) = policy.retry.as_ref().and_then(|r| r.backoff.as_ref()) {
        {
            let bp = format!("{path}.retry.backoff");
            for (field, value) in [
                ("duration", &backoff.duration),
                ("maxDuration", &backoff.max_duration),
            ] {
                if !value.is_empty()
                    && !super::is_template(value)
                    && parse_seconds_or_duration(value).is_none()
                {
                    c.error(
                        &format!("{bp}.{field}"),
                        format!(
                            "{value:?} is not a duration (use a Go duration such as 5s, 3m, 1h2m, or whole seconds)"
                        ),
                    );
                }
            }
            if let Some(factor) = backoff.factor
                && factor < 1
            {
                c.error(
                    &format!("{bp}.factor"),
                    format!("must be at least 1, got {factor}"),
                );
            }
            if let (Some(d), Some(max)) = (backoff.duration(), backoff.max_duration())
                && !backoff.max_duration.is_empty()
                && max < d
            {
                c.error(
                    &format!("{bp}.maxDuration"),
                    "must not be shorter than duration",
                );
            }
        }
    }
}

/// Checks one `ignoreDifferences` entry: a kind to match, and expressions the diff
/// module can compile (each checked alone, so the error names the bad one).
fn check_ignore_difference(entry: &IgnoreDifferences, c: &mut Checker, path: &str) {
    if entry.kind.is_empty() {
        c.error(
            &format!("{path}.kind"),
            "required (use \"*\" for every kind)",
        );
    }
    let alone = |pointers: &[String], jq: &[String]| IgnoreDifferences {
        json_pointers: pointers.to_vec(),
        jq_path_expressions: jq.to_vec(),
        ..IgnoreDifferences::default()
    };
    for (i, p) in entry.json_pointers.iter().enumerate() {
        if let Err(e) = alone(std::slice::from_ref(p), &[]).validate() {
            c.error(&format!("{path}.jsonPointers[{i}]"), e.to_string());
        }
    }
    for (i, q) in entry.jq_path_expressions.iter().enumerate() {
        if let Err(e) = alone(&[], std::slice::from_ref(q)).validate() {
            c.error(&format!("{path}.jqPathExpressions[{i}]"), e.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::validate::findings;
    use super::super::{Finding, Severity};

    /// A valid Application with `patch` merged into its `spec` (a null removes a field).
    fn app(patch: Value) -> Value {
        let mut v = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": "web"},
            "spec": {"project": "default",
                     "source": {"repoURL": "https://git.example/apps.git", "path": "web"},
                     "destination": {"name": "in-cluster", "namespace": "web"}}});
        json_patch_merge(&mut v["spec"], patch);
        v
    }

    fn json_patch_merge(target: &mut Value, patch: Value) {
        match patch {
            Value::Object(m) => {
                for (k, p) in m {
                    if p.is_null() {
                        if let Some(t) = target.as_object_mut() {
                            t.remove(&k);
                        }
                    } else {
                        json_patch_merge(&mut target[k.as_str()], p);
                    }
                }
            }
            other => *target = other,
        }
    }

    fn of(f: &[Finding], severity: Severity) -> Vec<String> {
        f.iter()
            .filter(|f| f.severity == severity)
            .map(|f| format!("{}: {}", f.path, f.message))
            .collect()
    }

    /// Each rule Argo CD checks: (what, spec patch, error at this path or `None` for
    /// no error, a word the message must hold).
    #[test]
    fn argo_validation_rules_table() {
        let cases: &[(&str, Value, Option<&str>, &str)] = &[
            ("valid", json!({}), None, ""),
            (
                "retry limit -1 means forever",
                json!({"syncPolicy": {"retry": {"limit": -1}}}),
                None,
                "",
            ),
            (
                "retry limit below -1",
                json!({"syncPolicy": {"retry": {"limit": -2}}}),
                Some("spec.syncPolicy.retry.limit"),
                "-2",
            ),
            (
                "backoff duration unparsable",
                json!({"syncPolicy": {"retry": {"backoff": {"duration": "5 parsecs"}}}}),
                Some("spec.syncPolicy.retry.backoff.duration"),
                "not a duration",
            ),
            (
                "backoff factor below 1",
                json!({"syncPolicy": {"retry": {"backoff": {"factor": 0}}}}),
                Some("spec.syncPolicy.retry.backoff.factor"),
                "at least 1",
            ),
            (
                "source and sources",
                json!({"sources": [{"repoURL": "https://git.example/b.git", "path": "b"}]}),
                Some("spec.sources"),
                "not both",
            ),
            (
                "neither source nor sources",
                json!({"source": null}),
                Some("spec.source"),
                "required",
            ),
            (
                "server and name",
                json!({"destination": {"server": "https://kubernetes.default.svc"}}),
                Some("spec.destination"),
                "not both",
            ),
            (
                "neither server nor name",
                json!({"destination": {"name": null}}),
                Some("spec.destination"),
                "server or name",
            ),
            (
                "revisionHistoryLimit negative",
                json!({"revisionHistoryLimit": -1}),
                Some("spec.revisionHistoryLimit"),
                "negative",
            ),
            (
                "sync option with a bad value",
                json!({"syncPolicy": {"syncOptions": ["Prune=maybe"]}}),
                Some("spec.syncPolicy.syncOptions[0]"),
                "true or false",
            ),
            (
                "sync option not Key=Value",
                json!({"syncPolicy": {"syncOptions": ["CreateNamespace"]}}),
                Some("spec.syncPolicy.syncOptions[0]"),
                "Key=Value",
            ),
            (
                "password in repoURL",
                json!({"source": {"repoURL": "https://bob:hunter2@git.example/apps.git"}}),
                Some("spec.source.repoURL"),
                "ferry repo add",
            ),
            (
                "token as user in repoURL",
                json!({"source": {"repoURL": "https://ghp_token@git.example/apps.git"}}),
                Some("spec.source.repoURL"),
                "user name or password",
            ),
            (
                "ssh login user is fine",
                json!({"source": {"repoURL": "ssh://git@git.example/apps.git"}}),
                None,
                "",
            ),
            (
                "absolute app path",
                json!({"source": {"path": "/etc"}}),
                Some("spec.source.path"),
                "absolute",
            ),
            (
                "app path outside the repository",
                json!({"source": {"path": "web/../../x"}}),
                Some("spec.source.path"),
                "outside",
            ),
            (
                "app path inside after ..",
                json!({"source": {"path": "a/../web"}}),
                None,
                "",
            ),
            (
                "chart without targetRevision",
                json!({"source": {"path": null, "chart": "nginx"}}),
                Some("spec.source.targetRevision"),
                "chart",
            ),
            (
                "no repoURL",
                json!({"source": {"repoURL": ""}}),
                Some("spec.source.repoURL"),
                "required",
            ),
        ];
        for (what, patch, at, word) in cases {
            let v = app(patch.clone());
            let found = findings(&v);
            let errors = of(&found, Severity::Error);
            match at {
                None => assert!(errors.is_empty(), "{what}: {errors:?}"),
                Some(at) => assert!(
                    errors
                        .iter()
                        .any(|e| e.starts_with(&format!("{at}: ")) && e.contains(word)),
                    "{what}: expected an error at {at} mentioning {word:?}, got {errors:?}"
                ),
            }
            for e in &errors {
                assert!(
                    !e.contains("hunter2") && !e.contains("ghp_token"),
                    "{what}: {e}"
                );
            }
        }
    }
}
