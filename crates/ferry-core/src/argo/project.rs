//! Argo CD `AppProject`: which repositories, destinations and kinds an app may use.

use serde::{Deserialize, Serialize};

use super::ArgoResource;
use super::application::{ApplicationDestination, ObjectMeta};
use super::validate::Checker;

/// An Argo CD `AppProject`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AppProject {
    /// `argoproj.io/v1alpha1`.
    pub api_version: String,
    /// `AppProject`.
    pub kind: String,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// What the project allows.
    pub spec: AppProjectSpec,
    /// Status as Argo CD wrote it, if the document carries one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

impl ArgoResource for AppProject {
    const KIND: &'static str = "AppProject";
}

/// `AppProject.spec`. Empty lists allow nothing, as in Argo CD, except the
/// namespace-scoped whitelist, where empty allows every kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AppProjectSpec {
    /// Free text.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Repository URLs apps may use; globs (`*`, `https://github.com/org/*`) and
    /// negations (`!https://...`) as Argo CD.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_repos: Vec<String>,
    /// Destinations apps may use; `server`, `name` and `namespace` may be globs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<ApplicationDestination>,
    /// Cluster-scoped kinds apps may create (empty: none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cluster_resource_whitelist: Vec<GroupKind>,
    /// Cluster-scoped kinds apps may not create.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cluster_resource_blacklist: Vec<GroupKind>,
    /// Namespaced kinds apps may create (empty: all).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub namespace_resource_whitelist: Vec<GroupKind>,
    /// Namespaced kinds apps may not create.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub namespace_resource_blacklist: Vec<GroupKind>,
}

/// An API group and kind; either may be `*`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GroupKind {
    /// API group, `""` for the core group.
    pub group: String,
    /// Kind.
    pub kind: String,
}

impl AppProject {
    pub(crate) fn check(&self, c: &mut Checker) {
        let s = &self.spec;
        for (i, repo) in s.source_repos.iter().enumerate() {
            if repo.trim().is_empty() {
                c.error(&format!("spec.sourceRepos[{i}]"), "must not be empty");
            }
        }
        for (i, d) in s.destinations.iter().enumerate() {
            if d.server.is_empty() && d.name.is_empty() {
                c.error(&format!("spec.destinations[{i}]"), "set server or name");
            }
        }
        for (field, list) in [
            ("clusterResourceWhitelist", &s.cluster_resource_whitelist),
            ("clusterResourceBlacklist", &s.cluster_resource_blacklist),
            (
                "namespaceResourceWhitelist",
                &s.namespace_resource_whitelist,
            ),
            (
                "namespaceResourceBlacklist",
                &s.namespace_resource_blacklist,
            ),
        ] {
            for (i, gk) in list.iter().enumerate() {
                if gk.kind.is_empty() {
                    c.error(
                        &format!("spec.{field}[{i}].kind"),
                        "required (use \"*\" for every kind)",
                    );
                }
            }
        }
    }
}
