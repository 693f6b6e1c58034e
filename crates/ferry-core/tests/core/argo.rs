//! Argo CD and Argo Rollouts specs: what `ferry validate` reports for real documents,
//! and the typed values the engine and rollout controller read.

use std::collections::BTreeSet;
use std::time::Duration;

use ferry_core::argo::{
    self, AnalysisTemplate, Application, ApplicationSet, ClusterAnalysisTemplate, IntOrString,
    Rollout, Severity, Validation,
};
use ferry_core::parse::parse_str;

use crate::util::{fixture, load};

const W: Severity = Severity::Warning;
const E: Severity = Severity::Error;

fn validate(rel: &str) -> Vec<Validation> {
    let path = fixture(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    argo::validate_str(&text, rel).unwrap_or_else(|e| panic!("{e}"))
}

fn found(v: &Validation) -> BTreeSet<(Severity, String)> {
    v.findings
        .iter()
        .map(|f| (f.severity, f.path.clone()))
        .collect()
}

#[track_caller]
fn assert_findings(v: &Validation, expected: &[(Severity, &str)]) {
    let expected: BTreeSet<(Severity, String)> =
        expected.iter().map(|(s, p)| (*s, p.to_string())).collect();
    assert_eq!(
        found(v),
        expected,
        "{}/{} (document {}):\n{v}",
        v.kind,
        v.name,
        v.doc
    );
    assert_eq!(
        v.findings.len(),
        expected.len(),
        "one finding per path expected:\n{v}"
    );
}

fn by_name<'a>(vs: &'a [Validation], name: &str) -> &'a Validation {
    vs.iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no document named {name}"))
}

// ---------------------------------------------------------------- Application

#[test]
fn full_application_warns_only_about_what_ferry_does_not_read() {
    let vs = validate("argo/application-full.yaml");
    assert_eq!(vs.len(), 1);
    let v = &vs[0];
    assert!(v.is_valid(), "{v}");
    assert_findings(
        v,
        &[
            (W, "spec.sources[0].helm.version"),
            (W, "spec.sources[0].helm.passCredentials"),
            (W, "spec.sources[1].kustomize.version"),
            (W, "spec.sources[2].directory.jsonnet"),
            (W, "spec.sources[3].plugin"),
        ],
    );
    assert!(v.findings.iter().all(|f| f.message == "not supported"));
    assert_eq!(
        (v.kind.as_str(), v.name.as_str()),
        ("Application", "guestbook")
    );
    assert_eq!(
        (v.file.as_str(), v.line, v.doc),
        ("argo/application-full.yaml", 1, 0)
    );
}

#[test]
fn minimal_application_is_valid_and_silent() {
    let vs = validate("argo/application-minimal.yaml");
    assert_findings(&vs[0], &[]);
    assert!(vs[0].is_valid());
}

#[test]
fn each_invalid_application_names_the_bad_value() {
    let vs = validate("argo/application-invalid.yaml");
    assert_eq!(vs.len(), 8);
    let cases: &[(&str, &[(Severity, &str)])] = &[
        ("both-server-and-name", &[(E, "spec.destination")]),
        ("no-source", &[(E, "spec.source")]),
        (
            "bad-sync-options",
            &[
                (E, "spec.syncPolicy.syncOptions[0]"),
                (E, "spec.syncPolicy.syncOptions[1]"),
                (E, "spec.syncPolicy.syncOptions[2]"),
                (W, "spec.syncPolicy.syncOptions[3]"),
            ],
        ),
        (
            "bad-backoff",
            &[
                (E, "spec.syncPolicy.retry.backoff.duration"),
                (E, "spec.syncPolicy.retry.backoff.factor"),
                (E, "spec.syncPolicy.retry.backoff.maxDuration"),
            ],
        ),
        (
            "wrong-types",
            &[
                (E, "spec.source.targetRevision"),
                (E, "spec.syncPolicy.automated.prune"),
                (E, "spec.revisionHistoryLimit"),
            ],
        ),
        (
            "source-and-sources",
            &[
                (E, "spec.sources"),
                (E, "spec.sources[0].repoURL"),
                (W, "spec.sources[0].targetRevison"),
            ],
        ),
        (
            "wrong-version",
            &[(E, "apiVersion"), (E, "spec.destination")],
        ),
        ("not-argo", &[(E, "kind")]),
    ];
    for (name, expected) in cases {
        let v = by_name(&vs, name);
        assert!(!v.is_valid(), "{name} should be invalid");
        assert_findings(v, expected);
    }
}

#[test]
fn messages_say_what_is_wrong() {
    let vs = validate("argo/application-invalid.yaml");
    let msg = |name: &str, path: &str| {
        by_name(&vs, name)
            .findings
            .iter()
            .find(|f| f.path == path)
            .map(|f| f.message.clone())
            .unwrap_or_else(|| panic!("{name}: nothing at {path}"))
    };
    assert_eq!(
        msg("both-server-and-name", "spec.destination"),
        "set server or name, not both"
    );
    assert_eq!(
        msg("bad-sync-options", "spec.syncPolicy.syncOptions[0]"),
        "CreateNamespace must be true or false, not \"yes\""
    );
    assert_eq!(
        msg("bad-sync-options", "spec.syncPolicy.syncOptions[3]"),
        "unknown sync option AutoMagic"
    );
    assert!(msg("bad-backoff", "spec.syncPolicy.retry.backoff.duration").contains("\"5 seconds\""));
    assert_eq!(
        msg("wrong-types", "spec.syncPolicy.automated.prune"),
        "expected true or false, found \"true\""
    );
    assert_eq!(
        msg("not-argo", "kind"),
        "kind ConfigMap is not an Argo CD or Argo Rollouts resource ferry reads"
    );
    assert_eq!(
        msg("source-and-sources", "spec.sources[0].targetRevison"),
        "unknown field"
    );
    // Findings come in document order, wherever they were found; a missing field
    // sorts after the fields its mapping has.
    let order: Vec<&str> = by_name(&vs, "source-and-sources")
        .findings
        .iter()
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(
        order,
        [
            "spec.sources",
            "spec.sources[0].targetRevison",
            "spec.sources[0].repoURL"
        ]
    );
}

#[test]
fn documents_keep_their_file_line_and_index() {
    let vs = validate("argo/application-invalid.yaml");
    let at: Vec<(usize, usize)> = vs.iter().map(|v| (v.doc, v.line)).collect();
    assert_eq!(at[0], (0, 1));
    assert_eq!(at[1].0, 1);
    assert!(at.windows(2).all(|w| w[0].1 < w[1].1), "{at:?}");
    let text = std::fs::read_to_string(fixture("argo/application-invalid.yaml")).unwrap();
    let line_of_doc7 = text
        .lines()
        .position(|l| l.starts_with("# doc 7"))
        .expect("marker")
        + 1;
    // The document starts at its `---`, the line before the comment.
    assert_eq!(at[7], (7, line_of_doc7 - 1));
    assert!(vs[2].to_string().starts_with(&format!(
        "argo/application-invalid.yaml:{}: Application/bad-sync-options: error: spec.syncPolicy.syncOptions[0]: ",
        vs[2].line
    )));
}

#[test]
fn a_document_that_does_not_parse_is_an_error_naming_file_and_line() {
    let err = argo::validate_str(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: [x\n",
        "apps/bad.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("apps/bad.yaml:"), "{err}");
}

#[test]
fn json_documents_are_read_too() {
    let vs = argo::validate_str(
        r#"{"apiVersion":"argoproj.io/v1alpha1","kind":"Application","metadata":{"name":"j"},
            "spec":{"source":{"repoURL":"https://x/y.git","path":"."},
                    "destination":{"server":"https://kubernetes.default.svc"},
                    "syncPolicy":{"automated":{"selfHeal":1}}}}"#,
        "app.json",
    )
    .unwrap();
    assert_findings(&vs[0], &[(E, "spec.syncPolicy.automated.selfHeal")]);
}

#[test]
fn decoded_application_carries_what_the_engine_needs() {
    let objs = load("argo/application-full.yaml");
    let app: Application = argo::decode(&objs[0]).unwrap();
    let spec = &app.spec;
    assert_eq!(spec.project_name(), "default");
    assert_eq!(spec.history_limit(), 10);
    let sources = spec.all_sources();
    assert_eq!(sources.len(), 5);
    let helm = sources[0].helm.as_ref().unwrap();
    assert_eq!(sources[0].chart, "guestbook");
    assert_eq!(helm.release_name, "guestbook");
    assert_eq!(helm.value_files, ["$values/envs/prod/values.yaml"]);
    assert_eq!(
        helm.parameters[0].name,
        "ingress.annotations.kubernetes\\.io/tls-acme"
    );
    assert!(helm.parameters[0].force_string);
    assert_eq!(
        helm.values_object.as_ref().unwrap()["resources"]["limits"]["memory"],
        "256Mi"
    );
    let k = sources[1].kustomize.as_ref().unwrap();
    assert_eq!(k.name_prefix, "prod-");
    assert_eq!(k.replicas[1].count.as_ref().unwrap().as_int(), Some(1));
    assert_eq!(k.patches[0].target.as_ref().unwrap().kind, "Deployment");
    assert!(sources[2].directory.as_ref().unwrap().recurse);
    assert_eq!(sources[4].ref_name, "values");
    assert_eq!(sources[4].revision(), "main");
    assert_eq!(sources[3].revision(), "HEAD");

    let policy = spec.sync_policy.as_ref().unwrap();
    assert!(policy.is_automated());
    let auto = policy.automated.as_ref().unwrap();
    assert!(auto.prune && auto.self_heal && !auto.allow_empty);
    assert!(policy.option_is_true("CreateNamespace"));
    assert!(!policy.option_is_true("Validate"));
    assert_eq!(policy.option("PrunePropagationPolicy"), Some("foreground"));
    let backoff = policy.retry.as_ref().unwrap().backoff.as_ref().unwrap();
    assert_eq!(backoff.duration(), Some(Duration::from_secs(5)));
    assert_eq!(backoff.factor(), 2);
    assert_eq!(backoff.max_duration(), Some(Duration::from_secs(180)));
    assert_eq!(spec.ignore_differences.len(), 3);
    assert_eq!(spec.ignore_differences[0].json_pointers, ["/spec/replicas"]);
    assert_eq!(
        spec.ignore_differences[2].name.as_deref(),
        Some("guestbook-config")
    );
    assert_eq!(spec.destination.namespace, "guestbook");
    assert_eq!(
        app.metadata.finalizers,
        ["resources-finalizer.argocd.argoproj.io"]
    );
}

#[test]
fn typed_application_round_trips_through_json() {
    let objs = load("argo/application-full.yaml");
    let app: Application = argo::decode(&objs[0]).unwrap();
    let json = serde_json::to_value(&app).unwrap();
    // Fields ferry does not read are gone; everything else is kept.
    assert!(json.pointer("/spec/sources/3/plugin").is_none());
    assert_eq!(
        json["spec"]["sources"][0]["repoURL"],
        "https://charts.example.com/stable"
    );
    assert_eq!(json["spec"]["sources"][4]["ref"], "values");
    let back: Application = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back, app);
    // And what it writes validates clean.
    let obj = ferry_core::Object::from_value(json).unwrap();
    assert_findings(&argo::validate_object(&obj), &[]);
}

#[test]
fn decode_refuses_invalid_documents_and_names_every_error() {
    let objs = load("argo/application-invalid.yaml");
    let wrong = objs.iter().find(|o| o.name() == "wrong-types").unwrap();
    let err = argo::decode::<Application>(wrong).unwrap_err().to_string();
    assert!(err.starts_with("argo/application-invalid.yaml:"), "{err}");
    for path in [
        "spec.source.targetRevision",
        "spec.syncPolicy.automated.prune",
        "spec.revisionHistoryLimit",
    ] {
        assert!(err.contains(path), "{err}");
    }
    let cm = objs.iter().find(|o| o.kind() == "ConfigMap").unwrap();
    assert!(argo::decode::<Application>(cm).is_err());
    // Warnings alone do not stop decoding.
    let full = load("argo/application-full.yaml");
    assert!(argo::decode::<Application>(&full[0]).is_ok());
}

// ---------------------------------------------------------------- AppProject

#[test]
fn app_project_warns_about_rbac_windows_and_namespaces() {
    let vs = validate("argo/project.yaml");
    assert!(vs[0].is_valid());
    assert_findings(
        &vs[0],
        &[
            (W, "spec.orphanedResources"),
            (W, "spec.roles"),
            (W, "spec.syncWindows"),
            (W, "spec.permitOnlyProjectScopedClusters"),
            (W, "spec.sourceNamespaces"),
        ],
    );
    let p: argo::AppProject = argo::decode(&load("argo/project.yaml")[0]).unwrap();
    assert_eq!(p.spec.source_repos.len(), 2);
    assert_eq!(p.spec.destinations[1].name, "in-cluster");
    assert_eq!(p.spec.namespace_resource_whitelist[1].kind, "*");
}

// ---------------------------------------------------------------- ApplicationSet

#[test]
fn list_and_git_application_sets_are_valid() {
    let vs = validate("argo/appset-list.yaml");
    assert_eq!(vs.len(), 2);
    for v in &vs {
        assert_findings(v, &[]);
    }
    let objs = load("argo/appset-list.yaml");
    let set: ApplicationSet = argo::decode(&objs[0]).unwrap();
    assert!(set.spec.go_template);
    let list = set.spec.generators[0].list.as_ref().unwrap();
    assert_eq!(list.elements[1]["replicas"], 3);
    assert_eq!(set.spec.template.metadata.name, "{{.cluster}}-guestbook");
    assert_eq!(set.spec.template.spec.destination.server, "{{.url}}");
    let git: ApplicationSet = argo::decode(&objs[1]).unwrap();
    let dirs = &git.spec.generators[0].git.as_ref().unwrap().directories;
    assert_eq!(
        (dirs[1].path.as_str(), dirs[1].exclude),
        ("addons/legacy", true)
    );
    assert_eq!(
        git.spec.generators[1].git.as_ref().unwrap().files[0].path,
        "clusters/**/config.json"
    );
}

#[test]
fn cluster_generator_is_a_warning_and_broken_sets_are_errors() {
    let vs = validate("argo/appset-cluster.yaml");
    assert!(vs[0].is_valid());
    assert_findings(&vs[0], &[(W, "spec.generators[0].clusters")]);
    assert_findings(
        &vs[1],
        &[
            (E, "spec.generators[0]"),
            (E, "spec.generators[1]"),
            (E, "spec.generators[2].git"),
            (E, "spec.template.metadata.name"),
            (E, "spec.template.spec.syncPolicy.syncOptions[0]"),
            (E, "spec.syncPolicy.applicationsSync"),
        ],
    );
}

// ---------------------------------------------------------------- Rollout

#[test]
fn canary_and_blue_green_rollouts_are_valid() {
    for rel in ["argo/rollout-canary.yaml", "argo/rollout-bluegreen.yaml"] {
        let vs = validate(rel);
        assert_findings(&vs[0], &[]);
    }
}

#[test]
fn decoded_canary_rollout_has_its_steps() {
    let r: Rollout = argo::decode(&load("argo/rollout-canary.yaml")[0]).unwrap();
    assert_eq!(r.spec.replicas(), 5);
    assert_eq!(r.spec.progress_deadline(), Duration::from_secs(300));
    assert_eq!(
        r.spec.selector.as_ref().unwrap().match_labels["app"],
        "checkout"
    );
    assert_eq!(
        r.spec.template.as_ref().unwrap()["spec"]["containers"][0]["image"],
        "registry.example.com/checkout:1.2.0"
    );
    let canary = r.spec.strategy.canary.as_ref().unwrap();
    assert!(r.spec.strategy.blue_green.is_none());
    assert_eq!(canary.max_surge, Some(IntOrString::Str("25%".into())));
    assert_eq!(canary.max_surge.as_ref().unwrap().as_percent(), Some(25));
    assert_eq!(canary.max_unavailable, Some(IntOrString::Int(0)));
    let steps = &canary.steps;
    assert_eq!(steps.len(), 10);
    assert_eq!(
        steps[0].set_canary_scale.as_ref().unwrap().replicas,
        Some(1)
    );
    assert_eq!(steps[1].set_weight, Some(10));
    assert_eq!(
        steps[2].pause.as_ref().unwrap().duration(),
        Some(Duration::from_secs(60))
    );
    assert_eq!(
        steps[6].pause.as_ref().unwrap().duration(),
        Some(Duration::from_secs(90))
    );
    assert_eq!(steps[9].pause.as_ref().unwrap().duration(), None);
    let analysis = steps[4].analysis.as_ref().unwrap();
    assert_eq!(analysis.templates[1].template_name, "global-latency");
    assert!(analysis.templates[1].cluster_scope);
    let from = analysis.args[1].value_from.as_ref().unwrap();
    assert_eq!(from.pod_template_hash_value.as_deref(), Some("Latest"));
    let bg = canary.analysis.as_ref().unwrap();
    assert_eq!(bg.starting_step, Some(2));
    assert_eq!(bg.analysis().templates[0].template_name, "error-rate");

    let b: Rollout = argo::decode(&load("argo/rollout-bluegreen.yaml")[0]).unwrap();
    let bg = b.spec.strategy.blue_green.as_ref().unwrap();
    assert_eq!(bg.active_service, "web-active");
    assert!(!bg.auto_promotion());
    assert_eq!(
        bg.pre_promotion_analysis.as_ref().unwrap().templates[0].template_name,
        "smoke-test"
    );
}

#[test]
fn each_invalid_rollout_names_the_bad_value() {
    let vs = validate("argo/rollout-invalid.yaml");
    let canary = "spec.strategy.canary";
    assert_findings(
        by_name(&vs, "checkout"),
        &[
            (E, "spec.replicas"),
            (W, &format!("{canary}.trafficRouting.istio")),
            (E, &format!("{canary}.steps[0].setWeight")),
            (E, &format!("{canary}.steps[1].pause.duration")),
            (E, &format!("{canary}.steps[2]")),
            (E, &format!("{canary}.steps[3]")),
            (W, &format!("{canary}.steps[4].experiment")),
        ],
    );
    assert_findings(by_name(&vs, "both"), &[(E, "spec.strategy")]);
    assert_findings(
        by_name(&vs, "no-active"),
        &[
            (E, "spec.selector.matchLabels"),
            (E, "spec.strategy.blueGreen.activeService"),
            (E, "spec.strategy.blueGreen.prePromotionAnalysis.templates"),
        ],
    );
    assert_findings(
        by_name(&vs, "empty"),
        &[
            (E, "spec.replicas"),
            (E, "spec.selector"),
            (E, "spec.template"),
            (E, "spec.strategy"),
        ],
    );
    let replicas = &by_name(&vs, "checkout").findings[0];
    assert_eq!(replicas.path, "spec.replicas");
    assert_eq!(replicas.message, "expected an integer, found \"three\"");
}

// ---------------------------------------------------------------- Analysis

#[test]
fn analysis_templates_with_prometheus_web_and_job_are_valid() {
    let vs = validate("argo/analysis.yaml");
    assert_eq!(vs.len(), 2);
    for v in &vs {
        assert_findings(v, &[]);
    }
    let objs = load("argo/analysis.yaml");
    let t: AnalysisTemplate = argo::decode(&objs[0]).unwrap();
    let m = &t.spec.metrics;
    assert_eq!(m[0].interval, "5m");
    assert_eq!(
        argo::parse_duration(&m[0].interval),
        Some(Duration::from_secs(300))
    );
    assert_eq!(m[0].count, Some(IntOrString::Int(3)));
    assert_eq!(m[0].success_condition.as_deref(), Some("result[0] >= 0.95"));
    let prom = m[0].provider.prometheus.as_ref().unwrap();
    assert!(prom.query.contains("istio_requests_total"));
    assert_eq!(prom.timeout, Some(30));
    assert!(m[1].count.as_ref().unwrap().is_template());
    let web = m[1].provider.web.as_ref().unwrap();
    assert_eq!(web.method, "POST");
    assert_eq!(web.headers[0].key, "Authorization");
    assert_eq!(
        web.json_body.as_ref().unwrap()["service"],
        "{{ args.service-name }}"
    );
    assert_eq!(
        t.spec.args[2]
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap()
            .key,
        "apiToken"
    );
    let c: ClusterAnalysisTemplate = argo::decode(&objs[1]).unwrap();
    let job = c.spec.metrics[0].provider.job.as_ref().unwrap();
    assert_eq!(job.spec["backoffLimit"], 1);
    // The wrong kind is refused.
    assert!(argo::decode::<AnalysisTemplate>(&objs[1]).is_err());
}

#[test]
fn invalid_analysis_template_reports_each_metric_problem() {
    let vs = validate("argo/analysis-invalid.yaml");
    assert_findings(
        &vs[0],
        &[
            (E, "spec.metrics[0].provider"),
            (E, "spec.metrics[0].interval"),
            (E, "spec.metrics[0].count"),
            (E, "spec.metrics[0].failureCondition"),
            (E, "spec.metrics[1].name"),
            (E, "spec.metrics[1].provider"),
            (E, "spec.metrics[1].failureLimit"),
            (E, "spec.metrics[1].successCondition"),
            (W, "spec.metrics[2].provider.datadog"),
            (E, "spec.metrics[3].provider.web.body"),
            (W, "spec.metrics[3].provider.web.unknownKnob"),
        ],
    );
}

// ---------------------------------------------------------------- edge cases

fn one(yaml: &str) -> Validation {
    let objs = parse_str(yaml, "inline.yaml").unwrap();
    argo::validate_object(&objs[0])
}

#[test]
fn a_wrong_type_is_reported_once_not_again_by_the_checks_it_breaks() {
    // `destination` is a string: one type error, no "set server or name" on top.
    let v = one(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: a}\nspec:\n  source: {repoURL: r}\n  destination: in-cluster\n",
    );
    assert_findings(&v, &[(E, "spec.destination")]);
    // A bad weight type is one error, not also an out-of-range weight.
    let v = one(
        "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: r}\nspec:\n  selector: {matchLabels: {a: b}}\n  template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}\n  strategy:\n    canary:\n      steps:\n        - setWeight: [1]\n",
    );
    assert_findings(&v, &[(E, "spec.strategy.canary.steps[0].setWeight")]);
}

#[test]
fn opaque_subtrees_are_not_checked_field_by_field() {
    // Pod templates, Helm values and list elements belong to other schemas.
    let v = one(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: a}\nspec:\n  source:\n    repoURL: r\n    helm:\n      valuesObject: {anything: {goes: [1, 2]}}\n  destination: {server: s}\n",
    );
    assert_findings(&v, &[]);
}

#[test]
fn percentages_and_counts_are_checked() {
    let v = one(
        "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: r}\nspec:\n  selector: {matchLabels: {a: b}}\n  template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}\n  strategy:\n    canary:\n      maxSurge: 0\n      maxUnavailable: \"0%\"\n      steps:\n        - setWeight: 20\n        - setCanaryScale: {weight: 101}\n",
    );
    assert_findings(
        &v,
        &[
            (E, "spec.strategy.canary.maxUnavailable"),
            (E, "spec.strategy.canary.steps[1].setCanaryScale.weight"),
        ],
    );
    let v = one(
        "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: r}\nspec:\n  selector: {matchLabels: {a: b}}\n  template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}\n  strategy:\n    canary:\n      maxSurge: lots\n",
    );
    assert_findings(&v, &[(E, "spec.strategy.canary.maxSurge")]);
}

#[test]
fn ignore_differences_expressions_are_compiled() {
    let v = one(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: a}\nspec:\n  source: {repoURL: r}\n  destination: {server: s}\n  ignoreDifferences:\n    - group: apps\n      kind: Deployment\n      jsonPointers: [/spec/replicas, spec/bad]\n      bogus: 1\n    - group: apps\n      jsonPointers: [/spec/replicas]\n",
    );
    assert_findings(
        &v,
        &[
            (E, "spec.ignoreDifferences[0].jsonPointers[1]"),
            (W, "spec.ignoreDifferences[0].bogus"),
            (E, "spec.ignoreDifferences[1].kind"),
        ],
    );
}

#[test]
fn wrong_api_version_and_foreign_kinds() {
    let v = one("apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: w}\n");
    assert_findings(&v, &[(E, "kind")]);
    assert_eq!(
        v.findings[0].message,
        "kind Workflow is not an Argo CD or Argo Rollouts resource ferry reads"
    );
    let v = one(
        "apiVersion: apps/v1\nkind: Rollout\nmetadata: {name: r}\nspec:\n  selector: {matchLabels: {a: b}}\n  template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}\n  strategy: {blueGreen: {activeService: a}}\n",
    );
    assert_findings(&v, &[(E, "apiVersion")]);
}
