//! Argo CD `ApplicationSet`: Applications generated from a template and a list or a
//! Git repository's directories or files. Other generators are reported as not
//! supported.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::application::{ApplicationSpec, ObjectMeta, check_spec};
use super::validate::Checker;
use super::{ArgoResource, is_false};

/// An Argo CD `ApplicationSet`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ApplicationSet {
    /// `argoproj.io/v1alpha1`.
    pub api_version: String,
    /// `ApplicationSet`.
    pub kind: String,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Generators and template.
    pub spec: ApplicationSetSpec,
    /// Status as Argo CD wrote it, if the document carries one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
}

impl ArgoResource for ApplicationSet {
    const KIND: &'static str = "ApplicationSet";
}

/// `ApplicationSet.spec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ApplicationSetSpec {
    /// Templates are Go templates (`{{.path.basename}}`) rather than plain
    /// substitutions (`{{path.basename}}`).
    #[serde(skip_serializing_if = "is_false")]
    pub go_template: bool,
    /// Go template options, e.g. `missingkey=error`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub go_template_options: Vec<String>,
    /// Where the parameter sets come from; each set renders one Application.
    pub generators: Vec<ApplicationSetGenerator>,
    /// The Application each parameter set fills in.
    pub template: ApplicationSetTemplate,
    /// What happens to generated Applications.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_policy: Option<ApplicationSetSyncPolicy>,
}

/// One generator: exactly one of its fields is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ApplicationSetGenerator {
    /// Literal parameter sets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list: Option<ListGenerator>,
    /// Parameter sets from a Git repository's directories or files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git: Option<GitGenerator>,
}

/// The list generator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ListGenerator {
    /// Parameter sets, each a mapping of parameters (values may be nested).
    pub elements: Vec<Value>,
    /// Overrides merged into the set's template for this generator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<ApplicationSetTemplate>,
}

/// The Git generator: one parameter set per matching directory, or per matching JSON
/// or YAML file (its content's keys become parameters).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GitGenerator {
    /// Repository URL.
    #[serde(rename = "repoURL")]
    pub repo_url: String,
    /// Branch, tag or commit; empty means `HEAD`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub revision: String,
    /// Directory globs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub directories: Vec<GitDirectoryGeneratorItem>,
    /// File globs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<GitFileGeneratorItem>,
    /// Prefix for the `path` parameters (`{{prefix.path}}`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path_param_prefix: String,
    /// Extra parameters, under `values.`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, String>,
    /// How often to poll the repository, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requeue_after_seconds: Option<i64>,
    /// Overrides merged into the set's template for this generator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<ApplicationSetTemplate>,
}

/// A Git generator directory glob.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GitDirectoryGeneratorItem {
    /// Glob, e.g. `apps/*`.
    pub path: String,
    /// Exclude the matching directories instead.
    #[serde(skip_serializing_if = "is_false")]
    pub exclude: bool,
}

/// A Git generator file glob.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GitFileGeneratorItem {
    /// Glob, e.g. `clusters/*/config.json`.
    pub path: String,
    /// Exclude the matching files instead.
    #[serde(skip_serializing_if = "is_false")]
    pub exclude: bool,
}

/// The Application template.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ApplicationSetTemplate {
    /// The generated Application's metadata.
    pub metadata: ApplicationSetTemplateMeta,
    /// The generated Application's spec.
    pub spec: ApplicationSpec,
}

/// Metadata of a generated Application.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ApplicationSetTemplateMeta {
    /// Name (usually templated).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Namespace.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Finalizers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
}

/// `ApplicationSet.spec.syncPolicy`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ApplicationSetSyncPolicy {
    /// Keep the generated apps' resources when an Application is deleted.
    #[serde(skip_serializing_if = "is_false")]
    pub preserve_resources_on_deletion: bool,
    /// `create-only`, `create-update`, `create-delete` or `sync` (default).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub applications_sync: String,
}

/// Every generator Argo CD has; only `list` and `git` are read.
const GENERATORS: &[&str] = &[
    "list",
    "git",
    "clusters",
    "matrix",
    "merge",
    "scmProvider",
    "clusterDecisionResource",
    "pullRequest",
    "plugin",
];

const APPLICATIONS_SYNC: &[&str] = &["create-only", "create-update", "create-delete", "sync"];

impl ApplicationSet {
    pub(crate) fn check(&self, c: &mut Checker) {
        let s = &self.spec;
        if !c.present("spec") {
            c.error("spec", "required");
            return;
        }
        if s.generators.is_empty() {
            c.error("spec.generators", "required: list at least one generator");
        }
        for (i, g) in s.generators.iter().enumerate() {
            let gp = format!("spec.generators[{i}]");
            let kinds: Vec<&str> = c
                .raw(&gp)
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter(|(k, v)| GENERATORS.contains(&k.as_str()) && !v.is_null())
                        .map(|(k, _)| k.as_str())
                        .collect()
                })
                .unwrap_or_default();
            match kinds.len() {
                0 => c.error(
                    &gp,
                    "set one generator (ferry reads list and git generators)",
                ),
                1 => {}
                _ => c.error(
                    &gp,
                    format!("set one generator per entry, found {}", kinds.join(", ")),
                ),
            }
            if let Some(list) = &g.list {
                for (j, e) in list.elements.iter().enumerate() {
                    if !e.is_object() {
                        c.error(
                            &format!("{gp}.list.elements[{j}]"),
                            "expected a mapping of parameters",
                        );
                    }
                }
            }
            if let Some(git) = &g.git {
                let p = format!("{gp}.git");
                if git.repo_url.trim().is_empty() {
                    c.error(&format!("{p}.repoURL"), "required");
                }
                match (git.directories.is_empty(), git.files.is_empty()) {
                    (true, true) => c.error(&p, "set directories or files"),
                    (false, false) => c.error(&p, "set directories or files, not both"),
                    _ => {}
                }
                for (field, paths) in [
                    (
                        "directories",
                        git.directories.iter().map(|d| &d.path).collect::<Vec<_>>(),
                    ),
                    ("files", git.files.iter().map(|f| &f.path).collect()),
                ] {
                    for (j, path) in paths.into_iter().enumerate() {
                        if path.trim().is_empty() {
                            c.error(&format!("{p}.{field}[{j}].path"), "required");
                        }
                    }
                }
                c.non_negative(
                    &format!("{p}.requeueAfterSeconds"),
                    git.requeue_after_seconds,
                );
            }
        }
        if !c.present("spec.template") {
            c.error("spec.template", "required");
        } else {
            if s.template.metadata.name.trim().is_empty() {
                c.error("spec.template.metadata.name", "required");
            }
            check_spec(&s.template.spec, c, "spec.template.spec");
        }
        if let Some(policy) = &s.sync_policy {
            let v = policy.applications_sync.as_str();
            if !v.is_empty() && !APPLICATIONS_SYNC.contains(&v) {
                c.error(
                    "spec.syncPolicy.applicationsSync",
                    format!("must be one of {}, not {v:?}", APPLICATIONS_SYNC.join(", ")),
                );
            }
        }
        for (i, o) in s.go_template_options.iter().enumerate() {
            if !o.starts_with("missingkey=") {
                c.warn(
                    &format!("spec.goTemplateOptions[{i}]"),
                    format!("unknown Go template option {o:?}"),
                );
            }
        }
    }
}
