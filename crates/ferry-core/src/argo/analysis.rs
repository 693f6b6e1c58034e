//! Argo Rollouts `AnalysisTemplate`, `ClusterAnalysisTemplate` and `AnalysisRun`:
//! metrics measured during a rollout and the conditions that pass or fail it.
//! ferry measures through Prometheus, web requests and Jobs; other providers are
//! reported as not supported.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::application::ObjectMeta;
use super::rollout::{DryRun, FieldRef, MeasurementRetention};
use super::validate::Checker;
use super::{ArgoResource, IntOrString, is_false, parse_duration};

/// An Argo Rollouts `AnalysisTemplate`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AnalysisTemplate {
    /// `argoproj.io/v1alpha1`.
    pub api_version: String,
    /// `AnalysisTemplate` (or `ClusterAnalysisTemplate`).
    pub kind: String,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Metrics and arguments.
    pub spec: AnalysisTemplateSpec,
}

impl ArgoResource for AnalysisTemplate {
    const KIND: &'static str = "AnalysisTemplate";
}

/// An Argo Rollouts `ClusterAnalysisTemplate`: an [`AnalysisTemplate`] usable from
/// every namespace. Same shape, different kind.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ClusterAnalysisTemplate {
    /// `argoproj.io/v1alpha1`.
    pub api_version: String,
    /// `ClusterAnalysisTemplate`.
    pub kind: String,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Metrics and arguments.
    pub spec: AnalysisTemplateSpec,
}

impl ArgoResource for ClusterAnalysisTemplate {
    const KIND: &'static str = "ClusterAnalysisTemplate";
}

impl From<ClusterAnalysisTemplate> for AnalysisTemplate {
    /// The same metrics and arguments, so that one code path runs both kinds.
    fn from(t: ClusterAnalysisTemplate) -> Self {
        AnalysisTemplate {
            api_version: t.api_version,
            kind: t.kind,
            metadata: t.metadata,
            spec: t.spec,
        }
    }
}

/// `AnalysisTemplate.spec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AnalysisTemplateSpec {
    /// The metrics (at least one).
    pub metrics: Vec<Metric>,
    /// Arguments the metrics use as `{{args.NAME}}`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Argument>,
    /// Metrics whose failures do not fail the run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<DryRun>,
    /// How many measurements to keep per metric.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub measurement_retention: Vec<MeasurementRetention>,
}

/// An Argo Rollouts `AnalysisRun`: a template instantiated by a rollout.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AnalysisRun {
    /// `argoproj.io/v1alpha1`.
    pub api_version: String,
    /// `AnalysisRun`.
    pub kind: String,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// What to measure.
    pub spec: AnalysisRunSpec,
    /// Status as Argo Rollouts wrote it, if the document carries one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
}

impl ArgoResource for AnalysisRun {
    const KIND: &'static str = "AnalysisRun";
}

/// `AnalysisRun.spec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AnalysisRunSpec {
    /// The metrics (at least one).
    pub metrics: Vec<Metric>,
    /// Argument values.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Argument>,
    /// Stop the run early.
    #[serde(skip_serializing_if = "is_false")]
    pub terminate: bool,
    /// Metrics whose failures do not fail the run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<DryRun>,
    /// How many measurements to keep per metric.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub measurement_retention: Vec<MeasurementRetention>,
}

/// A template argument.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Argument {
    /// Name, used as `{{args.NAME}}`.
    pub name: String,
    /// Default (or, in a run, actual) value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Where the value comes from instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_from: Option<AnalysisArgumentValueFrom>,
}

/// Where a template argument's value comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AnalysisArgumentValueFrom {
    /// A key of a Secret in the template's namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
    /// A field of the rollout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<FieldRef>,
}

/// A key of a Secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    pub name: String,
    /// Key.
    pub key: String,
}

/// One metric: what to measure, how often, and what passes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Metric {
    /// Name, unique in the template.
    pub name: String,
    /// Time between measurements, a Go duration; none means one measurement.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub interval: String,
    /// Wait before the first measurement, a Go duration.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub initial_delay: String,
    /// Measurements to take (default 1 without interval, unlimited with one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<IntOrString>,
    /// Expression over `result` that makes a measurement successful.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_condition: Option<String>,
    /// Expression over `result` that makes a measurement failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_condition: Option<String>,
    /// Failed measurements allowed before the metric fails (default 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_limit: Option<IntOrString>,
    /// Inconclusive measurements allowed before the metric is inconclusive (default 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inconclusive_limit: Option<IntOrString>,
    /// Errors in a row allowed before the metric errors (default 4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_error_limit: Option<IntOrString>,
    /// Successes in a row that end the metric successfully.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_success_limit: Option<IntOrString>,
    /// Where measurements come from.
    pub provider: MetricProvider,
}

/// Where a metric's measurements come from: exactly one field is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MetricProvider {
    /// A Prometheus query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusMetric>,
    /// An HTTP request returning JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web: Option<WebMetric>,
    /// A Job whose success or failure is the measurement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<JobMetric>,
}

/// A Prometheus query.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PrometheusMetric {
    /// Server URL; empty means ferry's own metrics.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub address: String,
    /// PromQL.
    pub query: String,
    /// Query timeout in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    /// Skip TLS verification.
    #[serde(skip_serializing_if = "is_false")]
    pub insecure: bool,
    /// Extra request headers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<WebMetricHeader>,
}

/// An HTTP request whose JSON response is the measurement.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct WebMetric {
    /// `GET` (default), `POST` or `PUT`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub method: String,
    /// URL.
    pub url: String,
    /// Request headers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<WebMetricHeader>,
    /// Request body, as text.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub body: String,
    /// Request body, as JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json_body: Option<Value>,
    /// Request timeout in seconds (default 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i64>,
    /// JSONPath (`{$.data.ok}`) selecting the result; empty means the whole body.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub json_path: String,
    /// Skip TLS verification.
    #[serde(skip_serializing_if = "is_false")]
    pub insecure: bool,
}

/// One request header.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct WebMetricHeader {
    /// Header name.
    pub key: String,
    /// Header value.
    pub value: String,
}

/// A Job run as a measurement.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct JobMetric {
    /// Job metadata (labels, annotations), kept as JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// The Job spec, kept as JSON.
    pub spec: Value,
}

/// Every provider Argo Rollouts has; only `prometheus`, `web` and `job` are read.
const PROVIDERS: &[&str] = &[
    "prometheus",
    "web",
    "job",
    "datadog",
    "newRelic",
    "wavefront",
    "kayenta",
    "cloudWatch",
    "graphite",
    "influxdb",
    "skywalking",
    "plugin",
];

impl AnalysisTemplate {
    pub(crate) fn check(&self, c: &mut Checker) {
        check_template_spec(&self.spec.metrics, &self.spec.args, &self.spec.dry_run, c);
    }
}

impl ClusterAnalysisTemplate {
    pub(crate) fn check(&self, c: &mut Checker) {
        check_template_spec(&self.spec.metrics, &self.spec.args, &self.spec.dry_run, c);
    }
}

impl AnalysisRun {
    pub(crate) fn check(&self, c: &mut Checker) {
        check_template_spec(&self.spec.metrics, &self.spec.args, &self.spec.dry_run, c);
    }
}

fn check_template_spec(metrics: &[Metric], args: &[Argument], dry_run: &[DryRun], c: &mut Checker) {
    if !c.present("spec") {
        c.error("spec", "required");
        return;
    }
    if metrics.is_empty() {
        c.error("spec.metrics", "required: list at least one metric");
    }
    let mut names: Vec<&str> = Vec::new();
    for (i, m) in metrics.iter().enumerate() {
        let p = format!("spec.metrics[{i}]");
        if m.name.trim().is_empty() {
            c.error(&format!("{p}.name"), "required");
        } else if names.contains(&m.name.as_str()) {
            c.error(
                &format!("{p}.name"),
                format!("metric {:?} is defined twice", m.name),
            );
        }
        names.push(&m.name);
        check_metric(m, c, &p);
    }
    let mut arg_names: Vec<&str> = Vec::new();
    for (i, a) in args.iter().enumerate() {
        let p = format!("spec.args[{i}]");
        if a.name.trim().is_empty() {
            c.error(&format!("{p}.name"), "required");
        } else if arg_names.contains(&a.name.as_str()) {
            c.error(
                &format!("{p}.name"),
                format!("argument {:?} is declared twice", a.name),
            );
        }
        arg_names.push(&a.name);
        if a.value.is_some() && a.value_from.is_some() {
            c.error(&p, "set value or valueFrom, not both");
        }
        if let Some(from) = &a.value_from {
            match (&from.secret_key_ref, &from.field_ref) {
                (Some(_), Some(_)) => c.error(
                    &format!("{p}.valueFrom"),
                    "set secretKeyRef or fieldRef, not both",
                ),
                (None, None) => c.error(&format!("{p}.valueFrom"), "set secretKeyRef or fieldRef"),
                (Some(s), None) => {
                    if s.name.is_empty() {
                        c.error(&format!("{p}.valueFrom.secretKeyRef.name"), "required");
                    }
                    if s.key.is_empty() {
                        c.error(&format!("{p}.valueFrom.secretKeyRef.key"), "required");
                    }
                }
                (None, Some(f)) => {
                    if f.field_path.is_empty() {
                        c.error(&format!("{p}.valueFrom.fieldRef.fieldPath"), "required");
                    }
                }
            }
        }
    }
    for (i, d) in dry_run.iter().enumerate() {
        if d.metric_name.is_empty() {
            c.error(&format!("spec.dryRun[{i}].metricName"), "required");
        }
    }
}

fn check_metric(m: &Metric, c: &mut Checker, p: &str) {
    let pp = format!("{p}.provider");
    if !c.present(&pp) {
        c.error(&pp, "required: set one of prometheus, web, job");
    } else {
        let set: Vec<&str> = c
            .raw(&pp)
            .and_then(Value::as_object)
            .map(|o| {
                o.iter()
                    .filter(|(k, v)| PROVIDERS.contains(&k.as_str()) && !v.is_null())
                    .map(|(k, _)| k.as_str())
                    .collect()
            })
            .unwrap_or_default();
        match set.len() {
            0 => c.error(&pp, "set one of prometheus, web, job"),
            1 => {}
            _ => c.error(&pp, format!("set one provider, found {}", set.join(", "))),
        }
    }
    for (field, value) in [
        ("interval", &m.interval),
        ("initialDelay", &m.initial_delay),
    ] {
        if !value.is_empty() && !super::is_template(value) && parse_duration(value).is_none() {
            c.error(
                &format!("{p}.{field}"),
                format!("{value:?} is not a Go duration (such as 30s, 5m, 1h)"),
            );
        }
    }
    for (field, value) in [
        ("count", &m.count),
        ("failureLimit", &m.failure_limit),
        ("inconclusiveLimit", &m.inconclusive_limit),
        ("consecutiveErrorLimit", &m.consecutive_error_limit),
        ("consecutiveSuccessLimit", &m.consecutive_success_limit),
    ] {
        if let Some(v) = value {
            c.non_negative_int(&format!("{p}.{field}"), v);
        }
    }
    let count = m.count.as_ref().and_then(IntOrString::as_int);
    if let Some(n) = count {
        if n > 1 && m.interval.is_empty() {
            c.error(
                &format!("{p}.interval"),
                "required when count is more than 1",
            );
        }
        for (field, limit) in [
            ("failureLimit", &m.failure_limit),
            ("inconclusiveLimit", &m.inconclusive_limit),
        ] {
            if let Some(l) = limit.as_ref().and_then(IntOrString::as_int)
                && n > 0
                && l > n
            {
                c.error(
                    &format!("{p}.{field}"),
                    format!("{field} ({l}) must not exceed count ({n})"),
                );
            }
        }
    }
    for (field, cond) in [
        ("successCondition", &m.success_condition),
        ("failureCondition", &m.failure_condition),
    ] {
        if let Some(cond) = cond
            && let Err(why) = check_condition(cond)
        {
            c.error(&format!("{p}.{field}"), why);
        }
    }
    if let Some(prom) = &m.provider.prometheus {
        if prom.query.trim().is_empty() {
            c.error(&format!("{pp}.prometheus.query"), "required");
        }
        c.non_negative(&format!("{pp}.prometheus.timeout"), prom.timeout);
    }
    if let Some(web) = &m.provider.web {
        let wp = format!("{pp}.web");
        if web.url.trim().is_empty() {
            c.error(&format!("{wp}.url"), "required");
        }
        let method = if web.method.is_empty() {
            "GET"
        } else {
            web.method.as_str()
        };
        if !["GET", "POST", "PUT"].contains(&method) {
            c.error(
                &format!("{wp}.method"),
                format!("must be GET, POST or PUT, not {method:?}"),
            );
        } else if method == "GET" && (!web.body.is_empty() || web.json_body.is_some()) {
            c.error(&format!("{wp}.body"), "a GET request cannot have a body");
        }
        if !web.body.is_empty() && web.json_body.is_some() {
            c.error(&format!("{wp}.jsonBody"), "set body or jsonBody, not both");
        }
        c.non_negative(&format!("{wp}.timeoutSeconds"), web.timeout_seconds);
        if !web.json_path.is_empty()
            && !web.json_path.contains('$')
            && !web.json_path.starts_with('{')
        {
            c.error(
                &format!("{wp}.jsonPath"),
                format!(
                    "{:?} is not a JSONPath such as {{$.data.ok}}",
                    web.json_path
                ),
            );
        }
        for (i, h) in web.headers.iter().enumerate() {
            if h.key.trim().is_empty() {
                c.error(&format!("{wp}.headers[{i}].key"), "required");
            }
        }
    }
    if let Some(job) = &m.provider.job {
        let jp = format!("{pp}.job.spec");
        if !job.spec.is_object() {
            c.error(&jp, "required: a Job spec");
        } else if job
            .spec
            .pointer("/template/spec/containers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
        {
            c.error(
                &format!("{jp}.template.spec.containers"),
                "required: list at least one container",
            );
        }
    }
}

/// Light syntax checks of a condition expression (it is compiled later): not empty,
/// quotes closed, brackets balanced and properly nested.
pub(crate) fn check_condition(expr: &str) -> Result<(), String> {
    if expr.trim().is_empty() {
        return Err("must not be empty (omit the field instead)".into());
    }
    let mut stack: Vec<char> = Vec::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for ch in expr.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if ch == '\\' && q != '`' {
                escaped = true;
            } else if ch == q {
                quote = None;
            }
            continue;
        }
        match ch {
            '"' | '\'' | '`' => quote = Some(ch),
            '(' | '[' | '{' => stack.push(ch),
            ')' | ']' | '}' => {
                let open = match ch {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if stack.pop() != Some(open) {
                    return Err(format!("unbalanced {ch:?} in {expr:?}"));
                }
            }
            _ => {}
        }
    }
    if let Some(q) = quote {
        return Err(format!("unclosed {q} quote in {expr:?}"));
    }
    if let Some(open) = stack.pop() {
        return Err(format!("unclosed {open:?} in {expr:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_condition;

    #[test]
    fn conditions() {
        assert!(check_condition("result[0] >= 0.95").is_ok());
        assert!(check_condition("len(result) > 0 && result[0] < 0.01").is_ok());
        assert!(check_condition("result == ')'").is_ok());
        assert!(check_condition("{{args.cond}}").is_ok());
        assert!(check_condition("").is_err());
        assert!(check_condition("  ").is_err());
        assert!(check_condition("result[0 >= 1").is_err());
        assert!(check_condition("(result > 1").is_err());
        assert!(check_condition("result > 1)").is_err());
        assert!(check_condition("(result[0)]").is_err());
        assert!(check_condition("result == 'x").is_err());
    }
}
