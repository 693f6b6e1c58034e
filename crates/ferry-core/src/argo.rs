//! Argo CD and Argo Rollouts resources, read verbatim (`argoproj.io/v1alpha1`): the
//! typed specs the engine and the rollout controller act on, and their validation.
//!
//! Kinds read: `Application`, `AppProject`, `ApplicationSet` (Argo CD) and `Rollout`,
//! `AnalysisTemplate`, `ClusterAnalysisTemplate`, `AnalysisRun` (Argo Rollouts).
//!
//! The typed structs hold exactly the fields ferry acts on. Reading a document
//! ([`validate_object`], [`decode`]) never stops at the first problem: every field ferry
//! does not read becomes a warning (`not supported` for Argo fields ferry leaves aside,
//! `unknown field` for names Argo does not have either), and every invalid value becomes
//! an error naming its path, e.g. `spec.strategy.canary.steps[2].setWeight`.
//!
//! Subtrees that belong to other schemas (pod templates, Job specs, Helm `valuesObject`,
//! list-generator elements, `status`) are kept whole as JSON and not checked here.

mod analysis;
mod application;
mod appset;
mod de;
mod duration;
mod project;
mod rollout;
mod validate;

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::object::Object;

pub use analysis::{
    AnalysisArgumentValueFrom, AnalysisRun, AnalysisRunSpec, AnalysisTemplate,
    AnalysisTemplateSpec, Argument, ClusterAnalysisTemplate, JobMetric, Metric, MetricProvider,
    PrometheusMetric, SecretKeyRef, WebMetric, WebMetricHeader,
};
pub use application::{
    Application, ApplicationDestination, ApplicationSource, ApplicationSourceDirectory,
    ApplicationSourceHelm, ApplicationSourceKustomize, ApplicationSpec, Backoff, HelmFileParameter,
    HelmParameter, Info, KustomizePatch, KustomizeReplica, KustomizeSelector,
    ManagedNamespaceMetadata, ObjectMeta, RetryStrategy, SyncPolicy, SyncPolicyAutomated,
};
pub use appset::{
    ApplicationSet, ApplicationSetGenerator, ApplicationSetSpec, ApplicationSetSyncPolicy,
    ApplicationSetTemplate, ApplicationSetTemplateMeta, GitDirectoryGeneratorItem,
    GitFileGeneratorItem, GitGenerator, ListGenerator,
};
pub use duration::{parse_duration, parse_seconds_or_duration};
pub use project::{AppProject, AppProjectSpec, GroupKind};
pub use rollout::{
    AnalysisRunArgument, AnalysisRunMetadata, AnalysisRunStrategy, ArgumentValueFrom,
    BlueGreenStrategy, CanaryStep, CanaryStrategy, DryRun, FieldRef, LabelSelector,
    LabelSelectorRequirement, MeasurementRetention, PodTemplateMetadata, Rollout, RolloutAnalysis,
    RolloutAnalysisBackground, RolloutAnalysisTemplate, RolloutPause, RolloutSpec, RolloutStrategy,
    RolloutTrafficRouting, SetCanaryScale,
};

/// The API version of every resource this module reads.
pub const API_VERSION: &str = "argoproj.io/v1alpha1";

/// The API group of every resource this module reads.
pub const GROUP: &str = "argoproj.io";

/// The kinds [`validate_object`] reads.
pub const KINDS: &[&str] = &[
    Application::KIND,
    AppProject::KIND,
    ApplicationSet::KIND,
    Rollout::KIND,
    AnalysisTemplate::KIND,
    ClusterAnalysisTemplate::KIND,
    AnalysisRun::KIND,
];

/// One of the Argo resources ferry reads: its kind, for [`decode`].
pub trait ArgoResource: DeserializeOwned {
    /// The `kind` this type reads.
    const KIND: &'static str;
}

/// How bad a [`Finding`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Severity {
    /// A field ferry does not read: the resource still works, without that field.
    Warning,
    /// An invalid value: ferry will not act on the resource.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One problem found in a document.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Finding {
    /// Warning or error.
    pub severity: Severity,
    /// Where, as a dotted path with list indexes: `spec.strategy.canary.steps[0].setWeight`.
    /// Empty for the document as a whole.
    pub path: String,
    /// What is wrong, e.g. `not supported`.
    pub message: String,
}

impl Finding {
    /// A warning at `path`.
    pub fn warning(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            path: path.into(),
            message: message.into(),
        }
    }

    /// An error at `path`.
    pub fn error(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Finding {
    /// `warning: spec.source.plugin: not supported`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.severity, self.message)
        } else {
            write!(f, "{}: {}: {}", self.severity, self.path, self.message)
        }
    }
}

/// The outcome of validating one document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validation {
    /// The file the document was read from (empty when it was not read from a file).
    pub file: String,
    /// 1-based line where the document starts (0 when unknown).
    pub line: usize,
    /// 0-based index of the document within the file.
    pub doc: usize,
    /// The document's `kind`.
    pub kind: String,
    /// The document's `metadata.name`.
    pub name: String,
    /// Every warning and error, in document order.
    pub findings: Vec<Finding>,
}

impl Validation {
    /// Whether the document has no errors (warnings allowed).
    pub fn is_valid(&self) -> bool {
        !self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    /// The errors only.
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
    }

    /// The warnings only.
    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
    }
}

impl fmt::Display for Validation {
    /// One line per finding: `file:line: Kind/name: severity: path: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for finding in &self.findings {
            writeln!(
                f,
                "{}:{}: {}/{}: {}",
                self.file, self.line, self.kind, self.name, finding
            )?;
        }
        Ok(())
    }
}

/// Validates every document of a file. Parse errors are returned as `Err` (they name the
/// file and line); documents that parse get one [`Validation`] each, in file order.
pub fn validate_str(text: &str, file: &str) -> Result<Vec<Validation>> {
    let objects = crate::parse::parse_str(text, file)?;
    Ok(objects.iter().map(validate_object).collect())
}

/// Validates one object. A kind this module does not read gives one error at `kind`.
pub fn validate_object(obj: &Object) -> Validation {
    let (file, line, doc) = match obj.source() {
        Some(s) => (s.file.to_string(), s.line, s.doc),
        None => (String::new(), 0, 0),
    };
    Validation {
        file,
        line,
        doc,
        kind: obj.kind().to_string(),
        name: obj.name().to_string(),
        findings: validate::findings(obj.value()),
    }
}

/// Reads `obj` as `T`, leniently: fields ferry does not read are ignored (see
/// [`validate_object`] for the warnings), and any invalid value is an [`Error::Invalid`]
/// that names the object and lists every error.
pub fn decode<T: ArgoResource>(obj: &Object) -> Result<T> {
    if obj.kind() != T::KIND {
        return Err(invalid(
            obj,
            format!("expected kind {}, found {}", T::KIND, obj.kind()),
        ));
    }
    let (typed, findings) = validate::read_checked::<T>(obj.value());
    let errors: Vec<String> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| {
            if f.path.is_empty() {
                f.message.clone()
            } else {
                format!("{}: {}", f.path, f.message)
            }
        })
        .collect();
    match typed {
        Some(t) if errors.is_empty() => Ok(t),
        _ => Err(invalid(
            obj,
            format!(
                "{} {} is invalid: {}",
                obj.kind(),
                obj.name(),
                if errors.is_empty() {
                    "it could not be read".to_string()
                } else {
                    errors.join("; ")
                }
            ),
        )),
    }
}

fn invalid(obj: &Object, message: String) -> Error {
    Error::Invalid {
        at: obj.source().cloned().map(Box::new),
        message,
    }
}

/// A Kubernetes `IntOrString`: a count, a percentage such as `25%`, or an Argo template
/// such as `{{args.count}}`, resolved later.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum IntOrString {
    /// A number.
    Int(i64),
    /// A string: a percentage, a number written as a string, or a template.
    Str(String),
}

impl Default for IntOrString {
    fn default() -> Self {
        IntOrString::Int(0)
    }
}

impl IntOrString {
    /// The value as an integer: the number itself, or a string that is one (`"3"`).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            IntOrString::Int(i) => Some(*i),
            IntOrString::Str(s) => s.trim().parse().ok(),
        }
    }

    /// A percentage (`"25%"`) as its number.
    pub fn as_percent(&self) -> Option<i64> {
        match self {
            IntOrString::Str(s) => s.trim().strip_suffix('%')?.trim().parse().ok(),
            IntOrString::Int(_) => None,
        }
    }

    /// Whether the value is a template (`{{...}}`) that is filled in later.
    pub fn is_template(&self) -> bool {
        matches!(self, IntOrString::Str(s) if is_template(s))
    }
}

impl fmt::Display for IntOrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntOrString::Int(i) => write!(f, "{i}"),
            IntOrString::Str(s) => f.write_str(s),
        }
    }
}

/// The newtype name [`IntOrString`] announces to deserializers, so that the validating
/// reader can report a wrong type at its path instead of failing the whole document.
pub(crate) const INT_OR_STRING: &str = "IntOrString";

impl Serialize for IntOrString {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            IntOrString::Int(i) => s.serialize_i64(*i),
            IntOrString::Str(v) => s.serialize_str(v),
        }
    }
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = IntOrString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_newtype_struct<D: serde::Deserializer<'de>>(
                self,
                d: D,
            ) -> std::result::Result<IntOrString, D::Error> {
                d.deserialize_any(V)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<IntOrString, E> {
                Ok(IntOrString::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<IntOrString, E> {
                i64::try_from(v)
                    .map(IntOrString::Int)
                    .map_err(|_| E::custom("integer out of range"))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> std::result::Result<IntOrString, E> {
                if v.fract() == 0.0 && v.abs() < 9.0e15 {
                    Ok(IntOrString::Int(v as i64))
                } else {
                    Err(E::custom(format!(
                        "expected an integer or a string, found {v}"
                    )))
                }
            }
            fn visit_str<E: serde::de::Error>(
                self,
                v: &str,
            ) -> std::result::Result<IntOrString, E> {
                Ok(IntOrString::Str(v.to_string()))
            }
        }
        d.deserialize_newtype_struct(INT_OR_STRING, V)
    }
}

/// Whether a string holds an Argo template (`{{args.x}}`, `{{.path.basename}}`) that
/// is filled in later, so its final value cannot be checked here.
pub fn is_template(s: &str) -> bool {
    s.contains("{{")
}

/// Reads a bare JSON value as `T`, with every finding [`validate_object`] would
/// report; the value is `None` only when the document could not be read at all (or is
/// another kind). Use [`decode`] to refuse documents with errors.
pub fn from_value<T: ArgoResource>(value: &Value) -> (Option<T>, Vec<Finding>) {
    validate::read_checked::<T>(value)
}

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn int_or_string() {
        assert_eq!(IntOrString::Int(3).as_int(), Some(3));
        assert_eq!(IntOrString::Str(" 4 ".into()).as_int(), Some(4));
        assert_eq!(IntOrString::Str("25%".into()).as_int(), None);
        assert_eq!(IntOrString::Str("25%".into()).as_percent(), Some(25));
        assert_eq!(IntOrString::Int(25).as_percent(), None);
        assert!(IntOrString::Str("{{args.n}}".into()).is_template());
        assert!(!IntOrString::Str("3".into()).is_template());
        let v: IntOrString = serde_json::from_value(json!(7)).unwrap();
        assert_eq!(v, IntOrString::Int(7));
        let v: IntOrString = serde_json::from_value(json!("7%")).unwrap();
        assert_eq!(serde_json::to_value(&v).unwrap(), json!("7%"));
        assert!(serde_json::from_value::<IntOrString>(json!(true)).is_err());
    }

    #[test]
    fn typed_specs_read_straight_from_yaml_too() {
        // The engine may deserialise with serde-saphyr directly, without validation.
        let pause: RolloutPause = crate::parse::from_yaml("duration: 30s\n", "p.yaml").unwrap();
        assert_eq!(pause.duration(), Some(std::time::Duration::from_secs(30)));
        let pause: RolloutPause = crate::parse::from_yaml("duration: 45\n", "p.yaml").unwrap();
        assert_eq!(pause.duration(), Some(std::time::Duration::from_secs(45)));
        let step: CanaryStep = crate::parse::from_yaml("setWeight: 20\n", "s.yaml").unwrap();
        assert_eq!(step.set_weight, Some(20));
    }

    #[test]
    fn from_value_reads_and_reports() {
        let (app, findings) = from_value::<Application>(&json!({
            "apiVersion": API_VERSION, "kind": "Application", "metadata": {"name": "a"},
            "spec": {"source": {"repoURL": "r", "plugin": {"name": "p"}},
                     "destination": {"server": "s"}}
        }));
        assert_eq!(app.unwrap().spec.source.unwrap().repo_url, "r");
        assert_eq!(
            findings,
            [Finding::warning("spec.source.plugin", "not supported")]
        );
        let (none, findings) = from_value::<Rollout>(&json!({"kind": "Application"}));
        assert!(none.is_none());
        assert_eq!(findings[0].path, "kind");
    }
}
