//! Validation: reading a document into its typed spec (collecting wrong types and
//! fields ferry does not read), then checking values the types cannot express.
//!
//! What ferry supports is decided here, in one table: an Argo field that the typed
//! structs do not declare is either listed in [`UNSUPPORTED`] (a warning, `not
//! supported`) or not an Argo field at all (a warning, `unknown field`).

use std::cell::RefCell;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::de::{self, Sink};
use super::{
    API_VERSION, AnalysisRun, AnalysisTemplate, AppProject, Application, ApplicationSet,
    ArgoResource, ClusterAnalysisTemplate, Finding, GROUP, IntOrString, KINDS, Rollout, Severity,
};

/// Argo fields ferry does not act on, by the Rust struct that would hold them.
const UNSUPPORTED: &[(&str, &[&str])] = &[
    // Argo CD
    ("Application", &["operation"]),
    ("ApplicationSpec", &["sourceHydrator"]),
    ("ApplicationSource", &["plugin"]),
    ("ApplicationSourceDirectory", &["jsonnet"]),
    ("ApplicationSourceHelm", &["version", "passCredentials"]),
    (
        "ApplicationSourceKustomize",
        &[
            "version",
            "commonAnnotationsEnvsubst",
            "kubeVersion",
            "apiVersions",
        ],
    ),
    ("RetryStrategy", &["refresh"]),
    (
        "AppProjectSpec",
        &[
            "roles",
            "syncWindows",
            "orphanedResources",
            "signatureKeys",
            "sourceNamespaces",
            "permitOnlyProjectScopedClusters",
            "destinationServiceAccounts",
        ],
    ),
    ("GroupKind", &["name"]),
    (
        "ApplicationSetSpec",
        &[
            "strategy",
            "templatePatch",
            "preservedFields",
            "ignoreApplicationDifferences",
            "applyNestedSelectors",
        ],
    ),
    (
        "ApplicationSetGenerator",
        &[
            "clusters",
            "matrix",
            "merge",
            "scmProvider",
            "clusterDecisionResource",
            "pullRequest",
            "plugin",
            "selector",
        ],
    ),
    ("ListGenerator", &["elementsYaml"]),
    // Argo Rollouts
    (
        "RolloutSpec",
        &["workloadRef", "rollbackWindow", "restartAt"],
    ),
    (
        "CanaryStrategy",
        &[
            "antiAffinity",
            "pingPong",
            "dynamicStableScale",
            "minPodsPerReplicaSet",
            "scaleDownDelayRevisionLimit",
        ],
    ),
    (
        "RolloutTrafficRouting",
        &[
            "istio",
            "nginx",
            "alb",
            "smi",
            "ambassador",
            "appMesh",
            "traefik",
            "apisix",
            "managedRoutes",
            "plugins",
        ],
    ),
    (
        "CanaryStep",
        &["experiment", "setHeaderRoute", "setMirrorRoute", "plugin"],
    ),
    (
        "BlueGreenStrategy",
        &["antiAffinity", "scaleDownDelayRevisionLimit"],
    ),
    (
        "MetricProvider",
        &[
            "datadog",
            "newRelic",
            "wavefront",
            "kayenta",
            "cloudWatch",
            "graphite",
            "influxdb",
            "skywalking",
            "plugin",
        ],
    ),
    ("PrometheusMetric", &["authentication", "rangeQuery"]),
    ("WebMetric", &["authentication"]),
];

/// Whether `field` of `owner` is an Argo field ferry does not support.
pub(crate) fn is_unsupported(owner: &str, field: &str) -> bool {
    UNSUPPORTED
        .iter()
        .any(|(o, fields)| *o == owner && fields.contains(&field))
}

/// Every finding for one document.
pub(crate) fn findings(value: &Value) -> Vec<Finding> {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !KINDS.contains(&kind) {
        return vec![Finding::error(
            "kind",
            format!("kind {kind} is not an Argo CD or Argo Rollouts resource ferry reads"),
        )];
    }
    let mut out = Vec::new();
    if api_version != API_VERSION {
        let hint = if api_version.starts_with(&format!("{GROUP}/")) {
            String::new()
        } else {
            format!(" ({kind} is an Argo resource)")
        };
        out.push(Finding::error(
            "apiVersion",
            format!("must be {API_VERSION}, not {api_version}{hint}"),
        ));
    }
    out.extend(match kind {
        "Application" => run::<Application>(value, Application::check).1,
        "AppProject" => run::<AppProject>(value, AppProject::check).1,
        "ApplicationSet" => run::<ApplicationSet>(value, ApplicationSet::check).1,
        "Rollout" => run::<Rollout>(value, Rollout::check).1,
        "AnalysisTemplate" => run::<AnalysisTemplate>(value, AnalysisTemplate::check).1,
        "ClusterAnalysisTemplate" => {
            run::<ClusterAnalysisTemplate>(value, ClusterAnalysisTemplate::check).1
        }
        "AnalysisRun" => run::<AnalysisRun>(value, AnalysisRun::check).1,
        _ => Vec::new(),
    });
    // Report in document order, whichever pass found what.
    out.sort_by_cached_key(|f| order_key(value, &f.path));
    out
}

/// Reads `value` as `T` and returns it with every finding for the document.
pub(crate) fn read_checked<T: ArgoResource>(value: &Value) -> (Option<T>, Vec<Finding>) {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind != T::KIND {
        return (
            None,
            vec![Finding::error(
                "kind",
                format!("expected kind {}, found {kind}", T::KIND),
            )],
        );
    }
    let all = findings(value);
    let sink = RefCell::new(Sink::default());
    let typed = de::read::<T>(value, &sink, is_unsupported).ok();
    (typed, all)
}

/// Reads `value` as `T` and runs `check` over it.
fn run<T: DeserializeOwned>(
    value: &Value,
    check: fn(&T, &mut Checker),
) -> (Option<T>, Vec<Finding>) {
    let sink = RefCell::new(Sink::default());
    match de::read::<T>(value, &sink, is_unsupported) {
        Ok(typed) => {
            let Sink {
                findings,
                type_errors,
            } = sink.into_inner();
            let mut c = Checker {
                raw: value,
                findings,
                type_errors,
            };
            check(&typed, &mut c);
            (Some(typed), c.findings)
        }
        Err(e) => {
            let mut findings = sink.into_inner().findings;
            findings.push(Finding::error("", format!("could not be read: {e}")));
            (None, findings)
        }
    }
}

/// Collects findings for one document, with the raw document at hand.
pub(crate) struct Checker<'a> {
    raw: &'a Value,
    findings: Vec<Finding>,
    type_errors: Vec<String>,
}

impl Checker<'_> {
    /// An error at `path`, unless a value at, above or below `path` already had the
    /// wrong type: that one error is enough for one bad value.
    pub fn error(&mut self, path: &str, message: impl Into<String>) {
        let overlaps = self
            .type_errors
            .iter()
            .any(|t| related(t, path) || related(path, t));
        if !overlaps {
            self.findings.push(Finding::error(path, message));
        }
    }

    /// A warning at `path`.
    pub fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.findings.push(Finding {
            severity: Severity::Warning,
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// The raw value at `path` (`spec.sources[1].repoURL`), if any.
    pub fn raw(&self, path: &str) -> Option<&Value> {
        lookup(self.raw, path)
    }

    /// Whether the document sets `path` to something other than null.
    pub fn present(&self, path: &str) -> bool {
        self.raw(path).is_some_and(|v| !v.is_null())
    }

    /// An error when an optional integer is negative.
    pub fn non_negative(&mut self, path: &str, value: Option<i64>) {
        if let Some(n) = value
            && n < 0
        {
            self.error(path, format!("must not be negative, got {n}"));
        }
    }

    /// An error unless the value is a non-negative integer, a string holding one, or a
    /// template filled in later (`{{args.count}}`).
    pub fn non_negative_int(&mut self, path: &str, value: &IntOrString) {
        if value.is_template() {
            return;
        }
        match value.as_int() {
            Some(n) if n >= 0 => {}
            Some(n) => self.error(path, format!("must not be negative, got {n}")),
            None => self.error(
                path,
                format!(
                    "expected a non-negative integer, found {:?}",
                    value.to_string()
                ),
            ),
        }
    }
}

/// Whether `inner` is `outer` or inside it.
fn related(outer: &str, inner: &str) -> bool {
    inner == outer
        || outer.is_empty()
        || (inner.starts_with(outer)
            && matches!(inner.as_bytes().get(outer.len()), Some(b'.') | Some(b'[')))
}

/// One step of a finding path.
enum Seg {
    Key(String),
    Index(usize),
}

/// Splits a path as written in findings, `a.b[2]["x.y"].c`, into its steps.
fn segments(path: &str) -> Option<Vec<Seg>> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            rest = r;
        }
        if let Some(r) = rest.strip_prefix('[') {
            if r.starts_with('"') {
                // A quoted key: find its closing quote, honouring escapes.
                let bytes = r.as_bytes();
                let mut i = 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                out.push(Seg::Key(serde_json::from_str(r.get(..=i)?).ok()?));
                rest = r.get(i + 1..)?.strip_prefix(']')?;
            } else {
                let end = r.find(']')?;
                out.push(Seg::Index(r[..end].parse().ok()?));
                rest = &r[end + 1..];
            }
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            out.push(Seg::Key(rest[..end].to_string()));
            rest = &rest[end..];
        }
    }
    Some(out)
}

/// Follows a path as written in findings: `a.b[2]["x.y"].c`.
fn lookup<'v>(root: &'v Value, path: &str) -> Option<&'v Value> {
    segments(path)?.iter().try_fold(root, |cur, seg| match seg {
        Seg::Key(k) => cur.get(k.as_str()),
        Seg::Index(i) => cur.get(*i),
    })
}

/// Where a path falls in the document: the position of each step among its siblings.
/// A step the document does not have sorts after every sibling that it has.
fn order_key(root: &Value, path: &str) -> Vec<usize> {
    let mut key = Vec::new();
    let mut cur = Some(root);
    for seg in segments(path).unwrap_or_default() {
        let pos = match (&seg, cur) {
            (Seg::Key(k), Some(Value::Object(m))) => m.keys().position(|x| x == k),
            (Seg::Index(i), Some(Value::Array(a))) if *i < a.len() => Some(*i),
            _ => None,
        };
        match pos {
            Some(p) => {
                key.push(p);
                cur = match seg {
                    Seg::Key(k) => cur.and_then(|c| c.get(k.as_str())),
                    Seg::Index(i) => cur.and_then(|c| c.get(i)),
                };
            }
            None => {
                key.push(usize::MAX);
                cur = None;
            }
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lookup_follows_finding_paths() {
        let v = json!({"spec": {"sources": [{"repoURL": "a"}, {"repoURL": "b"}],
                       "labels": {"app.kubernetes.io/name": "x", "q\"uote": 1}}});
        assert_eq!(lookup(&v, "spec.sources[1].repoURL"), Some(&json!("b")));
        assert_eq!(
            lookup(&v, "spec.labels[\"app.kubernetes.io/name\"]"),
            Some(&json!("x"))
        );
        let quoted = de::child("spec.labels", "q\"uote");
        assert_eq!(lookup(&v, &quoted), Some(&json!(1)));
        assert_eq!(lookup(&v, "spec.sources[2]"), None);
        assert_eq!(lookup(&v, "spec.nope"), None);
        assert_eq!(lookup(&v, ""), Some(&v));
    }

    #[test]
    fn order_follows_the_document() {
        let v = json!({"a": 1, "b": {"x": [0, {"y": 1, "z": 2}]}, "c": 3});
        assert!(order_key(&v, "a") < order_key(&v, "b"));
        assert!(order_key(&v, "b.x[1].z") < order_key(&v, "c"));
        assert!(order_key(&v, "b.x[1].y") < order_key(&v, "b.x[1].z"));
        assert!(order_key(&v, "b.x[1].z") < order_key(&v, "b.missing"));
        assert!(order_key(&v, "b.missing") < order_key(&v, "c"));
        assert!(order_key(&v, "c") < order_key(&v, "missing"));
    }

    #[test]
    fn related_paths() {
        assert!(related("spec.a", "spec.a"));
        assert!(related("spec.a", "spec.a.b"));
        assert!(related("spec.a", "spec.a[0]"));
        assert!(!related("spec.a", "spec.ab"));
        assert!(!related("spec.a.b", "spec.a"));
    }

    #[test]
    fn every_unsupported_owner_is_a_real_struct_and_no_field_is_also_declared() {
        // A field both declared and listed would never be reported; an owner name that
        // matches no struct would never match. Check both against the typed specs by
        // feeding each listed field to its owner through a document that reaches it.
        for (owner, fields) in UNSUPPORTED {
            assert!(!fields.is_empty(), "{owner}");
        }
        let app = json!({"apiVersion": API_VERSION, "kind": "Application",
            "metadata": {"name": "a"}, "operation": {},
            "spec": {"destination": {"server": "s"}, "sourceHydrator": {},
                     "source": {"repoURL": "r", "plugin": {}, "directory": {"jsonnet": {}}}}});
        let got: Vec<_> = findings(&app)
            .into_iter()
            .filter(|f| f.message == "not supported")
            .map(|f| f.path)
            .collect();
        assert_eq!(
            got,
            [
                "operation",
                "spec.sourceHydrator",
                "spec.source.plugin",
                "spec.source.directory.jsonnet"
            ]
        );
    }
}
