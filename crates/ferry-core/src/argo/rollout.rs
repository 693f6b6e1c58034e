//! Argo Rollouts `Rollout`: a Deployment that updates by canary steps or blue-green.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::application::ObjectMeta;
use super::validate::Checker;
use super::{ArgoResource, IntOrString, is_false, parse_seconds_or_duration};

/// An Argo Rollouts `Rollout`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Rollout {
    /// `argoproj.io/v1alpha1`.
    pub api_version: String,
    /// `Rollout`.
    pub kind: String,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// The desired state.
    pub spec: RolloutSpec,
    /// Status as Argo Rollouts wrote it, if the document carries one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
}

impl ArgoResource for Rollout {
    const KIND: &'static str = "Rollout";
}

/// `Rollout.spec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RolloutSpec {
    /// Desired pods (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Which pods belong to the rollout; must match the template's labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// The pod template (`metadata` and `spec`), kept as JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<Value>,
    /// Seconds a new pod must be ready before it counts as available.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i32>,
    /// How to update.
    pub strategy: RolloutStrategy,
    /// Old ReplicaSets to keep (default 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i32>,
    /// Pause the rollout where it is.
    #[serde(skip_serializing_if = "is_false")]
    pub paused: bool,
    /// Seconds without progress before the rollout is Degraded (default 600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<i32>,
    /// Abort, rather than only report, when the progress deadline passes.
    #[serde(skip_serializing_if = "is_false")]
    pub progress_deadline_abort: bool,
    /// How many finished AnalysisRuns to keep.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisRunStrategy>,
}

impl RolloutSpec {
    /// Desired replicas (default 1).
    pub fn replicas(&self) -> i32 {
        self.replicas.unwrap_or(1)
    }

    /// Progress deadline (default 600 s).
    pub fn progress_deadline(&self) -> Duration {
        Duration::from_secs(self.progress_deadline_seconds.unwrap_or(600).max(0) as u64)
    }
}

/// A Kubernetes label selector.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels that must match exactly.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One set-based selector requirement.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    /// Label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// Values for `In` and `NotIn`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// `spec.strategy`: exactly one of `canary` and `blueGreen`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RolloutStrategy {
    /// Canary: shift traffic step by step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStrategy>,
    /// Blue-green: bring up the new version beside the old, then switch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenStrategy>,
}

/// `strategy.canary`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CanaryStrategy {
    /// Service that selects only canary pods.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub canary_service: String,
    /// Service that selects only stable pods.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stable_service: String,
    /// The steps; none means straight to 100%.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<CanaryStep>,
    /// Traffic routing. ferry routes through its own proxy; of Argo's routers only
    /// `maxTrafficWeight` is read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic_routing: Option<RolloutTrafficRouting>,
    /// Most pods unavailable during the update: a count or a percentage (default 25%).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// Most pods above the desired count: a count or a percentage (default 25%).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,
    /// Analysis that runs in the background through the steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis: Option<RolloutAnalysisBackground>,
    /// Labels and annotations for canary pods while they are the canary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary_metadata: Option<PodTemplateMetadata>,
    /// Labels and annotations for stable pods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stable_metadata: Option<PodTemplateMetadata>,
    /// Seconds before the old ReplicaSet is scaled down after promotion (default 30).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_seconds: Option<i32>,
    /// Seconds before the canary is scaled down after an abort (default 30; 0 keeps it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort_scale_down_delay_seconds: Option<i32>,
}

/// `canary.trafficRouting`, as far as ferry reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RolloutTrafficRouting {
    /// The weight that means 100% (default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_traffic_weight: Option<i32>,
}

/// One canary step: exactly one field is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CanaryStep {
    /// Send this percentage of traffic to the canary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_weight: Option<i32>,
    /// Wait, for a duration or until promoted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause: Option<RolloutPause>,
    /// Run an analysis and wait for its result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis: Option<RolloutAnalysis>,
    /// Scale the canary independently of its traffic weight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_canary_scale: Option<SetCanaryScale>,
}

/// A pause step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RolloutPause {
    /// Seconds (a number or a numeric string) or a Go duration; none means until promoted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<IntOrString>,
}

impl RolloutPause {
    /// `Some(d)` for a timed pause, `None` for a pause until promoted (or when the
    /// duration does not parse, which validation reports).
    pub fn duration(&self) -> Option<Duration> {
        match self.duration.as_ref()? {
            IntOrString::Int(n) => u64::try_from(*n).ok().map(Duration::from_secs),
            IntOrString::Str(s) => parse_seconds_or_duration(s),
        }
    }
}

/// A `setCanaryScale` step: at most one of `weight`, `replicas`, `matchTrafficWeight`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SetCanaryScale {
    /// Canary replicas as a percentage of `spec.replicas`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    /// Canary replicas as a count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Go back to scaling the canary with its traffic weight.
    #[serde(skip_serializing_if = "is_false")]
    pub match_traffic_weight: bool,
}

/// An analysis run by a step, or before or after a blue-green promotion.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RolloutAnalysis {
    /// Templates whose metrics make up the run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<RolloutAnalysisTemplate>,
    /// Arguments for the templates.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<AnalysisRunArgument>,
    /// Metrics whose failures do not fail the run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<DryRun>,
    /// How many measurements to keep per metric.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub measurement_retention: Vec<MeasurementRetention>,
    /// Labels and annotations for the AnalysisRun.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis_run_metadata: Option<AnalysisRunMetadata>,
}

/// A background analysis: a [`RolloutAnalysis`] that starts at a given step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RolloutAnalysisBackground {
    /// Templates whose metrics make up the run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<RolloutAnalysisTemplate>,
    /// Arguments for the templates.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<AnalysisRunArgument>,
    /// Metrics whose failures do not fail the run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<DryRun>,
    /// How many measurements to keep per metric.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub measurement_retention: Vec<MeasurementRetention>,
    /// Labels and annotations for the AnalysisRun.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis_run_metadata: Option<AnalysisRunMetadata>,
    /// The step index at which the analysis starts (default 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starting_step: Option<i32>,
}

impl RolloutAnalysisBackground {
    /// The analysis itself, without `startingStep`.
    pub fn analysis(&self) -> RolloutAnalysis {
        RolloutAnalysis {
            templates: self.templates.clone(),
            args: self.args.clone(),
            dry_run: self.dry_run.clone(),
            measurement_retention: self.measurement_retention.clone(),
            analysis_run_metadata: self.analysis_run_metadata.clone(),
        }
    }
}

/// A reference to an `AnalysisTemplate` (or `ClusterAnalysisTemplate`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RolloutAnalysisTemplate {
    /// Template name.
    pub template_name: String,
    /// Look for a `ClusterAnalysisTemplate` instead.
    #[serde(skip_serializing_if = "is_false")]
    pub cluster_scope: bool,
}

/// An argument passed to an analysis.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AnalysisRunArgument {
    /// Argument name, as the template declares it.
    pub name: String,
    /// A literal value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A value taken from the rollout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ArgumentValueFrom>,
}

/// Where a rollout analysis argument's value comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ArgumentValueFrom {
    /// `Stable` or `Latest`: that ReplicaSet's pod-template hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_template_hash_value: Option<String>,
    /// A field of the Rollout, e.g. `metadata.labels['app']`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<FieldRef>,
}

/// A reference to a field of an object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct FieldRef {
    /// The field's path.
    pub field_path: String,
}

/// A metric run in dry-run mode.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DryRun {
    /// Metric name, or a regular expression such as `.*`.
    pub metric_name: String,
}

/// How many measurements of a metric to keep.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MeasurementRetention {
    /// Metric name, or a regular expression.
    pub metric_name: String,
    /// Measurements to keep.
    pub limit: i32,
}

/// Labels and annotations added to an AnalysisRun.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AnalysisRunMetadata {
    /// Labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Labels and annotations added to pods while they play a role.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PodTemplateMetadata {
    /// Labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// `strategy.blueGreen`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BlueGreenStrategy {
    /// Service switched to the new version on promotion (required).
    pub active_service: String,
    /// Service that points at the new version before promotion.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub preview_service: String,
    /// Replicas of the new version before promotion (default: all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview_replica_count: Option<i32>,
    /// Promote without waiting for a person (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_promotion_enabled: Option<bool>,
    /// Seconds to wait before promoting automatically.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_promotion_seconds: Option<i32>,
    /// Most pods unavailable while scaling: a count or a percentage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// Seconds before the old version is scaled down after promotion (default 30).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_seconds: Option<i32>,
    /// Analysis that must pass before promotion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_promotion_analysis: Option<RolloutAnalysis>,
    /// Analysis that must pass after promotion, or the rollout goes back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_promotion_analysis: Option<RolloutAnalysis>,
    /// Labels and annotations for preview pods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview_metadata: Option<PodTemplateMetadata>,
    /// Labels and annotations for active pods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_metadata: Option<PodTemplateMetadata>,
    /// Seconds before the preview is scaled down after an abort (default 30).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort_scale_down_delay_seconds: Option<i32>,
}

impl BlueGreenStrategy {
    /// Whether promotion is automatic (default true).
    pub fn auto_promotion(&self) -> bool {
        self.auto_promotion_enabled.unwrap_or(true)
    }
}

/// `spec.analysis`: how many finished AnalysisRuns to keep.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AnalysisRunStrategy {
    /// Successful runs to keep (default 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub successful_run_history_limit: Option<i32>,
    /// Failed, errored or inconclusive runs to keep (default 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsuccessful_run_history_limit: Option<i32>,
}

/// Canary step kinds Argo Rollouts has and ferry does not run.
const UNSUPPORTED_STEPS: &[&str] = &["experiment", "setHeaderRoute", "setMirrorRoute", "plugin"];
/// Canary step kinds ferry runs.
const STEPS: &[&str] = &["setWeight", "pause", "analysis", "setCanaryScale"];

impl Rollout {
    pub(crate) fn check(&self, c: &mut Checker) {
        let s = &self.spec;
        if !c.present("spec") {
            c.error("spec", "required");
            return;
        }
        let uses_workload_ref = c.present("spec.workloadRef");
        for (field, value) in [
            ("replicas", s.replicas),
            ("minReadySeconds", s.min_ready_seconds),
            ("revisionHistoryLimit", s.revision_history_limit),
        ] {
            c.non_negative(&format!("spec.{field}"), value.map(i64::from));
        }
        if s.progress_deadline_seconds
            .is_some_and(|d| d <= s.min_ready_seconds.unwrap_or(0))
        {
            c.error(
                "spec.progressDeadlineSeconds",
                "must be greater than minReadySeconds",
            );
        }
        if let Some(a) = &s.analysis {
            c.non_negative(
                "spec.analysis.successfulRunHistoryLimit",
                a.successful_run_history_limit.map(i64::from),
            );
            c.non_negative(
                "spec.analysis.unsuccessfulRunHistoryLimit",
                a.unsuccessful_run_history_limit.map(i64::from),
            );
        }
        if !uses_workload_ref {
            check_selector_and_template(s, c);
        }
        match (&s.strategy.canary, &s.strategy.blue_green) {
            (Some(_), Some(_)) => c.error("spec.strategy", "set canary or blueGreen, not both"),
            (None, None) => c.error("spec.strategy", "set canary or blueGreen"),
            (Some(canary), None) => check_canary(canary, c),
            (None, Some(bg)) => check_blue_green(bg, c),
        }
    }
}

fn check_selector_and_template(s: &RolloutSpec, c: &mut Checker) {
    match &s.selector {
        None => c.error("spec.selector", "required"),
        Some(sel) => {
            if sel.match_labels.is_empty() && sel.match_expressions.is_empty() {
                c.error(
                    "spec.selector",
                    "must select something (matchLabels or matchExpressions)",
                );
            }
            for (i, e) in sel.match_expressions.iter().enumerate() {
                let p = format!("spec.selector.matchExpressions[{i}]");
                if e.key.is_empty() {
                    c.error(&format!("{p}.key"), "required");
                }
                match e.operator.as_str() {
                    "In" | "NotIn" => {
                        if e.values.is_empty() {
                            c.error(
                                &format!("{p}.values"),
                                format!("required with operator {}", e.operator),
                            );
                        }
                    }
                    "Exists" | "DoesNotExist" => {
                        if !e.values.is_empty() {
                            c.error(
                                &format!("{p}.values"),
                                format!("must be empty with operator {}", e.operator),
                            );
                        }
                    }
                    other => c.error(
                        &format!("{p}.operator"),
                        format!("must be In, NotIn, Exists or DoesNotExist, not {other:?}"),
                    ),
                }
            }
        }
    }
    let Some(template) = &s.template else {
        c.error("spec.template", "required");
        return;
    };
    if !template.is_object() {
        c.error("spec.template", "expected a mapping (a pod template)");
        return;
    }
    let containers = template.pointer("/spec/containers");
    if containers
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        c.error(
            "spec.template.spec.containers",
            "required: list at least one container",
        );
    }
    if let Some(sel) = &s.selector {
        let labels = template
            .pointer("/metadata/labels")
            .and_then(Value::as_object);
        let mismatched: Vec<&str> = sel
            .match_labels
            .iter()
            .filter(|(k, v)| {
                labels
                    .and_then(|l| l.get(k.as_str()))
                    .and_then(Value::as_str)
                    != Some(v.as_str())
            })
            .map(|(k, _)| k.as_str())
            .collect();
        if !mismatched.is_empty() {
            c.error(
                "spec.selector.matchLabels",
                format!(
                    "does not match spec.template.metadata.labels ({})",
                    mismatched.join(", ")
                ),
            );
        }
    }
}

fn check_canary(canary: &CanaryStrategy, c: &mut Checker) {
    let base = "spec.strategy.canary";
    for (i, step) in canary.steps.iter().enumerate() {
        let p = format!("{base}.steps[{i}]");
        let kinds: Vec<&str> = c
            .raw(&p)
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter(|(k, v)| {
                        (STEPS.contains(&k.as_str()) || UNSUPPORTED_STEPS.contains(&k.as_str()))
                            && !v.is_null()
                    })
                    .map(|(k, _)| k.as_str())
                    .collect()
            })
            .unwrap_or_default();
        match kinds.len() {
            0 => c.error(&p, "set one of setWeight, pause, analysis, setCanaryScale"),
            1 => {}
            _ => c.error(
                &p,
                format!("set one action per step, found {}", kinds.join(", ")),
            ),
        }
        percent(c, &format!("{p}.setWeight"), step.set_weight);
        if let Some(pause) = &step.pause {
            check_pause(pause, c, &format!("{p}.pause.duration"));
        }
        if let Some(a) = &step.analysis {
            check_analysis_ref(&a.templates, &a.args, c, &format!("{p}.analysis"));
        }
        if let Some(scale) = &step.set_canary_scale {
            let sp = format!("{p}.setCanaryScale");
            let set = [
                scale.weight.is_some(),
                scale.replicas.is_some(),
                scale.match_traffic_weight,
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if set != 1 {
                c.error(&sp, "set one of weight, replicas, matchTrafficWeight");
            }
            percent(c, &format!("{sp}.weight"), scale.weight);
            c.non_negative(&format!("{sp}.replicas"), scale.replicas.map(i64::from));
        }
    }
    check_surge(
        c,
        base,
        canary.max_surge.as_ref(),
        canary.max_unavailable.as_ref(),
    );
    if let Some(a) = &canary.analysis {
        let ap = format!("{base}.analysis");
        check_analysis_ref(&a.templates, &a.args, c, &ap);
        if let Some(start) = a.starting_step
            && (start < 0 || start as usize >= canary.steps.len().max(1))
        {
            c.error(
                &format!("{ap}.startingStep"),
                format!(
                    "must be a step index (0 to {}), got {start}",
                    canary.steps.len().saturating_sub(1)
                ),
            );
        }
    }
    if !canary.canary_service.is_empty() && canary.canary_service == canary.stable_service {
        c.error(
            &format!("{base}.stableService"),
            "must differ from canaryService",
        );
    }
    if let Some(w) = canary
        .traffic_routing
        .as_ref()
        .and_then(|t| t.max_traffic_weight)
        && w < 1
    {
        c.error(
            &format!("{base}.trafficRouting.maxTrafficWeight"),
            format!("must be at least 1, got {w}"),
        );
    }
    c.non_negative(
        &format!("{base}.scaleDownDelaySeconds"),
        canary.scale_down_delay_seconds.map(i64::from),
    );
    c.non_negative(
        &format!("{base}.abortScaleDownDelaySeconds"),
        canary.abort_scale_down_delay_seconds.map(i64::from),
    );
}

fn check_blue_green(bg: &BlueGreenStrategy, c: &mut Checker) {
    let base = "spec.strategy.blueGreen";
    if bg.active_service.trim().is_empty() {
        c.error(&format!("{base}.activeService"), "required");
    } else if bg.active_service == bg.preview_service {
        c.error(
            &format!("{base}.previewService"),
            "must differ from activeService",
        );
    }
    for (field, value) in [
        ("previewReplicaCount", bg.preview_replica_count),
        ("autoPromotionSeconds", bg.auto_promotion_seconds),
        ("scaleDownDelaySeconds", bg.scale_down_delay_seconds),
        (
            "abortScaleDownDelaySeconds",
            bg.abort_scale_down_delay_seconds,
        ),
    ] {
        c.non_negative(&format!("{base}.{field}"), value.map(i64::from));
    }
    if let Some(mu) = &bg.max_unavailable {
        check_count_or_percent(c, &format!("{base}.maxUnavailable"), mu);
    }
    for (field, analysis) in [
        ("prePromotionAnalysis", &bg.pre_promotion_analysis),
        ("postPromotionAnalysis", &bg.post_promotion_analysis),
    ] {
        if let Some(a) = analysis {
            check_analysis_ref(&a.templates, &a.args, c, &format!("{base}.{field}"));
        }
    }
}

fn check_pause(pause: &RolloutPause, c: &mut Checker, path: &str) {
    match &pause.duration {
        None => {}
        Some(IntOrString::Int(n)) if *n < 0 => {
            c.error(path, format!("must not be negative, got {n}"));
        }
        Some(IntOrString::Str(s))
            if !super::is_template(s) && parse_seconds_or_duration(s).is_none() =>
        {
            c.error(
                path,
                format!(
                    "{s:?} is not a duration (use seconds, or a Go duration such as 30s, 5m, 1h)"
                ),
            );
        }
        Some(_) => {}
    }
}

/// An error unless an optional weight is between 0 and 100.
fn percent(c: &mut Checker, path: &str, value: Option<i32>) {
    if let Some(w) = value
        && !(0..=100).contains(&w)
    {
        c.error(path, format!("must be between 0 and 100, got {w}"));
    }
}

fn check_analysis_ref(
    templates: &[RolloutAnalysisTemplate],
    args: &[AnalysisRunArgument],
    c: &mut Checker,
    path: &str,
) {
    if templates.is_empty() {
        c.error(
            &format!("{path}.templates"),
            "required: name at least one template",
        );
    }
    for (i, t) in templates.iter().enumerate() {
        if t.template_name.trim().is_empty() {
            c.error(&format!("{path}.templates[{i}].templateName"), "required");
        }
    }
    let mut names: Vec<&str> = Vec::new();
    for (i, a) in args.iter().enumerate() {
        let p = format!("{path}.args[{i}]");
        if a.name.is_empty() {
            c.error(&format!("{p}.name"), "required");
        } else if names.contains(&a.name.as_str()) {
            c.error(
                &format!("{p}.name"),
                format!("argument {:?} is given twice", a.name),
            );
        }
        names.push(&a.name);
        if a.value.is_some() && a.value_from.is_some() {
            c.error(&p, "set value or valueFrom, not both");
        }
        if let Some(from) = &a.value_from {
            match (&from.pod_template_hash_value, &from.field_ref) {
                (Some(_), Some(_)) => c.error(
                    &format!("{p}.valueFrom"),
                    "set podTemplateHashValue or fieldRef, not both",
                ),
                (None, None) => c.error(
                    &format!("{p}.valueFrom"),
                    "set podTemplateHashValue or fieldRef",
                ),
                (Some(h), None) => {
                    if h != "Stable" && h != "Latest" {
                        c.error(
                            &format!("{p}.valueFrom.podTemplateHashValue"),
                            format!("must be Stable or Latest, not {h:?}"),
                        );
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
}

fn check_surge(
    c: &mut Checker,
    base: &str,
    surge: Option<&IntOrString>,
    unavailable: Option<&IntOrString>,
) {
    if let Some(v) = surge {
        check_count_or_percent(c, &format!("{base}.maxSurge"), v);
    }
    if let Some(v) = unavailable {
        check_count_or_percent(c, &format!("{base}.maxUnavailable"), v);
    }
    let zero = |v: Option<&IntOrString>| {
        v.is_some_and(|v| v.as_int() == Some(0) || v.as_percent() == Some(0))
    };
    if zero(surge) && zero(unavailable) {
        c.error(
            &format!("{base}.maxUnavailable"),
            "maxSurge and maxUnavailable cannot both be 0",
        );
    }
}

fn check_count_or_percent(c: &mut Checker, path: &str, v: &IntOrString) {
    match v {
        IntOrString::Int(n) if *n < 0 => c.error(path, format!("must not be negative, got {n}")),
        IntOrString::Int(_) => {}
        IntOrString::Str(s) => {
            if v.is_template() {
                return;
            }
            match v.as_percent() {
                Some(p) if (0..=100).contains(&p) => {}
                Some(p) => c.error(path, format!("must be between 0% and 100%, got {p}%")),
                None => c.error(
                    path,
                    format!("{s:?} is not a count or a percentage such as 25%"),
                ),
            }
        }
    }
}
