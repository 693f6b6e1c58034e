//! Resource names as kubectl spells them: `pods`/`pod`/`po` → `Pod`, and back to
//! `deployment.apps/web`.

/// One well-known kind: its Kind, API group, and the names kubectl accepts for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindInfo {
    /// `Deployment`.
    pub kind: &'static str,
    /// `apps` (empty for the core group).
    pub group: &'static str,
    /// `deployments`.
    pub plural: &'static str,
    /// Short names and the singular: `deploy`, `deployment`.
    pub aliases: &'static [&'static str],
}

/// The kinds ferry knows by name; any other kind is accepted by its Kind name.
pub const KNOWN: &[KindInfo] = &[
    KindInfo {
        kind: "Pod",
        group: "",
        plural: "pods",
        aliases: &["pod", "po"],
    },
    KindInfo {
        kind: "Deployment",
        group: "apps",
        plural: "deployments",
        aliases: &["deployment", "deploy"],
    },
    KindInfo {
        kind: "ReplicaSet",
        group: "apps",
        plural: "replicasets",
        aliases: &["replicaset", "rs"],
    },
    KindInfo {
        kind: "StatefulSet",
        group: "apps",
        plural: "statefulsets",
        aliases: &["statefulset", "sts"],
    },
    KindInfo {
        kind: "DaemonSet",
        group: "apps",
        plural: "daemonsets",
        aliases: &["daemonset", "ds"],
    },
    KindInfo {
        kind: "Service",
        group: "",
        plural: "services",
        aliases: &["service", "svc"],
    },
    KindInfo {
        kind: "ConfigMap",
        group: "",
        plural: "configmaps",
        aliases: &["configmap", "cm"],
    },
    KindInfo {
        kind: "Secret",
        group: "",
        plural: "secrets",
        aliases: &["secret"],
    },
    KindInfo {
        kind: "Job",
        group: "batch",
        plural: "jobs",
        aliases: &["job"],
    },
    KindInfo {
        kind: "CronJob",
        group: "batch",
        plural: "cronjobs",
        aliases: &["cronjob", "cj"],
    },
    KindInfo {
        kind: "Namespace",
        group: "",
        plural: "namespaces",
        aliases: &["namespace", "ns"],
    },
    KindInfo {
        kind: "Event",
        group: "",
        plural: "events",
        aliases: &["event", "ev"],
    },
    KindInfo {
        kind: "ServiceAccount",
        group: "",
        plural: "serviceaccounts",
        aliases: &["serviceaccount", "sa"],
    },
    KindInfo {
        kind: "PersistentVolumeClaim",
        group: "",
        plural: "persistentvolumeclaims",
        aliases: &["persistentvolumeclaim", "pvc"],
    },
    KindInfo {
        kind: "Ingress",
        group: "networking.k8s.io",
        plural: "ingresses",
        aliases: &["ingress", "ing"],
    },
    KindInfo {
        kind: "Rollout",
        group: "argoproj.io",
        plural: "rollouts",
        aliases: &["rollout", "ro"],
    },
    KindInfo {
        kind: "Application",
        group: "argoproj.io",
        plural: "applications",
        aliases: &["application", "app"],
    },
];

/// The kinds `ferry get all` lists, in kubectl's order.
pub const ALL: &[&str] = &["Pod", "Service", "Deployment", "ReplicaSet", "Job"];

/// The well-known kind `name` names (plural, singular or short name, optionally
/// with `.group`, any case).
pub fn known(name: &str) -> Option<&'static KindInfo> {
    let lower = name.to_ascii_lowercase();
    let base = lower.split_once('.').map_or(lower.as_str(), |(b, _)| b);
    KNOWN.iter().find(|k| {
        k.plural == base || k.aliases.contains(&base) || k.kind.eq_ignore_ascii_case(base)
    })
}

/// The Kind `name` names: a well-known name, else a kind among `present` matched
/// case-insensitively (also as a plural), else `name` itself when it is spelled as a
/// Kind (`FooBar`). `None` when nothing fits.
pub fn resolve<'a>(name: &str, present: impl IntoIterator<Item = &'a str>) -> Option<String> {
    if let Some(k) = known(name) {
        return Some(k.kind.to_string());
    }
    let lower = name.to_ascii_lowercase();
    let base = lower.split_once('.').map_or(lower.as_str(), |(b, _)| b);
    for kind in present {
        let k = kind.to_ascii_lowercase();
        if k == base || format!("{k}s") == base || format!("{k}es") == base {
            return Some(kind.to_string());
        }
    }
    let spelled_as_kind = name.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && name.chars().all(|c| c.is_ascii_alphanumeric());
    spelled_as_kind.then(|| name.to_string())
}

/// The group of a well-known kind (empty when unknown or core).
pub fn group_of(kind: &str) -> &'static str {
    KNOWN
        .iter()
        .find(|k| k.kind == kind)
        .map_or("", |k| k.group)
}

/// The plural resource name of a kind: `deployments`.
pub fn plural_of(kind: &str) -> String {
    match KNOWN.iter().find(|k| k.kind == kind) {
        Some(k) => k.plural.to_string(),
        None => {
            let l = kind.to_ascii_lowercase();
            if l.ends_with('s') {
                format!("{l}es")
            } else {
                format!("{l}s")
            }
        }
    }
}

/// How kubectl names an object in messages: `deployment.apps/web`, `pod/web-1`.
pub fn resource_name(kind: &str, group: &str, name: &str) -> String {
    let k = kind.to_ascii_lowercase();
    if group.is_empty() {
        format!("{k}/{name}")
    } else {
        format!("{k}.{group}/{name}")
    }
}

/// How kubectl names a resource type with a name in "not found" messages:
/// `deployments.apps "web"`.
pub fn quoted_name(kind: &str, name: &str) -> String {
    let group = group_of(kind);
    let plural = plural_of(kind);
    if group.is_empty() {
        format!("{plural} {name:?}")
    } else {
        format!("{plural}.{group} {name:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_names_resolve() {
        for (n, k) in [
            ("po", "Pod"),
            ("pods", "Pod"),
            ("deploy", "Deployment"),
            ("deployments.apps", "Deployment"),
            ("rs", "ReplicaSet"),
            ("svc", "Service"),
            ("cm", "ConfigMap"),
            ("secrets", "Secret"),
            ("jobs", "Job"),
            ("ns", "Namespace"),
            ("ev", "Event"),
            ("Deployment", "Deployment"),
        ] {
            assert_eq!(resolve(n, []).as_deref(), Some(k), "{n}");
        }
    }

    #[test]
    fn other_kinds_resolve_by_kind_name_or_what_is_stored() {
        assert_eq!(resolve("widgets", ["Widget"]).as_deref(), Some("Widget"));
        assert_eq!(resolve("widget", ["Widget"]).as_deref(), Some("Widget"));
        assert_eq!(resolve("Gadget", []).as_deref(), Some("Gadget"));
        assert_eq!(resolve("gadget", []), None);
    }

    #[test]
    fn names_print_like_kubectl() {
        assert_eq!(
            resource_name("Deployment", "apps", "web"),
            "deployment.apps/web"
        );
        assert_eq!(resource_name("Service", "", "web"), "service/web");
        assert_eq!(quoted_name("Deployment", "web"), "deployments.apps \"web\"");
        assert_eq!(quoted_name("Pod", "p"), "pods \"p\"");
    }
}
