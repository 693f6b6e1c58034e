//! `ignoreDifferences` entries, compiled once and matched against objects.

use serde_json::Value;

use super::IgnoreDifferences;
use super::jq::{self, JqPath};
use super::pointer::Pointer;
use crate::error::Result;

/// One compiled `ignoreDifferences` entry.
#[derive(Clone, Debug)]
pub(crate) struct Rule {
    group: String,
    kind: String,
    name: Option<String>,
    namespace: Option<String>,
    pointers: Vec<Pointer>,
    jq: Vec<JqPath>,
    /// `managedFieldsManagers`.
    pub(crate) managers: Vec<String>,
}

/// Every entry of a [`super::DiffOptions`], compiled.
#[derive(Clone, Debug, Default)]
pub(crate) struct Rules {
    rules: Vec<Rule>,
}

impl Rules {
    /// Compiles the entries; the first bad pointer or jq expression is an error.
    pub(crate) fn compile(entries: &[IgnoreDifferences]) -> Result<Self> {
        let rules = entries
            .iter()
            .map(|e| {
                Ok(Rule {
                    group: e.group.clone(),
                    kind: e.kind.clone(),
                    name: e.name.clone().filter(|s| !s.is_empty()),
                    namespace: e.namespace.clone().filter(|s| !s.is_empty()),
                    pointers: e
                        .json_pointers
                        .iter()
                        .map(|p| Pointer::parse(p))
                        .collect::<Result<_>>()?,
                    jq: e
                        .jq_path_expressions
                        .iter()
                        .map(|p| JqPath::parse(p))
                        .collect::<Result<_>>()?,
                    managers: e.managed_fields_managers.clone(),
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self { rules })
    }

    /// Whether there are no rules at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules that apply to an object of this group, kind, namespace and name.
    pub(crate) fn matching<'a>(
        &'a self,
        group: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Vec<&'a Rule> {
        self.rules
            .iter()
            .filter(|r| {
                glob(&r.group, group)
                    && glob(&r.kind, kind)
                    && r.name.as_deref().is_none_or(|n| n == name)
                    && r.namespace.as_deref().is_none_or(|n| n == namespace)
            })
            .collect()
    }
}

impl Rule {
    /// Removes the fields this rule ignores (`jsonPointers`, `jqPathExpressions`).
    pub(crate) fn remove_ignored(&self, value: &mut Value) {
        for p in &self.pointers {
            p.remove(value);
        }
        for e in &self.jq {
            let paths = e.paths(value);
            jq::delete_paths(value, paths);
        }
    }

    /// Whether the rule removes anything by path (as opposed to only naming managers).
    pub(crate) fn has_paths(&self) -> bool {
        !self.pointers.is_empty() || !self.jq.is_empty()
    }
}

/// Argo matches `group` and `kind` as globs: `*` is any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    let Some((first, rest)) = pattern.split_once('*') else {
        return pattern == text;
    };
    let Some(mut remaining) = text.strip_prefix(first) else {
        return false;
    };
    let mut parts: Vec<&str> = rest.split('*').collect();
    let last = parts.pop().unwrap_or_default();
    for part in parts {
        match remaining.find(part) {
            Some(i) => remaining = &remaining[i + part.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("apps", "apps"));
        assert!(!glob("apps", "app"));
        assert!(glob("*", ""));
        assert!(glob("*", "Deployment"));
        assert!(glob("*.k8s.io", "networking.k8s.io"));
        assert!(!glob("*.k8s.io", "apps"));
        assert!(glob("Dep*ment", "Deployment"));
        assert!(!glob("a*a", "a"));
        assert!(glob("", ""));
        assert!(!glob("", "apps"));
    }

    #[test]
    fn matching_by_group_kind_name_namespace() {
        let entry = |name: Option<&str>, ns: Option<&str>| IgnoreDifferences {
            group: "apps".into(),
            kind: "Deployment".into(),
            name: name.map(Into::into),
            namespace: ns.map(Into::into),
            ..Default::default()
        };
        let rules = Rules::compile(&[
            entry(None, None),
            entry(Some("web"), None),
            entry(Some("api"), Some("shop")),
            entry(Some(""), None),
        ])
        .unwrap();
        assert_eq!(rules.matching("apps", "Deployment", "shop", "web").len(), 3);
        assert_eq!(rules.matching("apps", "Deployment", "shop", "api").len(), 3);
        assert_eq!(
            rules.matching("apps", "Deployment", "other", "api").len(),
            2
        );
        assert_eq!(rules.matching("", "Deployment", "shop", "web").len(), 0);
        assert_eq!(
            rules.matching("apps", "StatefulSet", "shop", "web").len(),
            0
        );
    }
}
