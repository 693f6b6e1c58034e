//! Diff: desired objects from Git against live objects as the API server returns them.

use ferry_core::diff::{self, DiffOptions, IgnoreDifferences, SyncStatus};
use ferry_core::{Error, Object};

use crate::util::load;

fn one(rel: &str) -> Object {
    let mut objs = load(&format!("diff/{rel}"));
    assert_eq!(objs.len(), 1, "{rel}: expected one object");
    objs.remove(0)
}

fn deployment_rule() -> IgnoreDifferences {
    IgnoreDifferences {
        group: "apps".into(),
        kind: "Deployment".into(),
        ..Default::default()
    }
}

fn pointers(p: &[&str]) -> Vec<IgnoreDifferences> {
    vec![IgnoreDifferences {
        json_pointers: p.iter().map(|s| s.to_string()).collect(),
        ..deployment_rule()
    }]
}

fn jq(e: &[&str]) -> Vec<IgnoreDifferences> {
    vec![IgnoreDifferences {
        jq_path_expressions: e.iter().map(|s| s.to_string()).collect(),
        ..deployment_rule()
    }]
}

fn managers(m: &[&str]) -> Vec<IgnoreDifferences> {
    vec![IgnoreDifferences {
        managed_fields_managers: m.iter().map(|s| s.to_string()).collect(),
        ..deployment_rule()
    }]
}

struct Case {
    /// Also the snapshot name for OutOfSync cases.
    name: &'static str,
    desired: &'static str,
    live: &'static str,
    ignore: Vec<IgnoreDifferences>,
    want: SyncStatus,
}

fn case(
    name: &'static str,
    desired: &'static str,
    live: &'static str,
    ignore: Vec<IgnoreDifferences>,
    want: SyncStatus,
) -> Case {
    Case {
        name,
        desired,
        live,
        ignore,
        want,
    }
}

const SIDECAR_IMAGE: &str =
    r#".spec.template.spec.containers[] | select(.name == "sidecar") | .image"#;

fn cases() -> Vec<Case> {
    use SyncStatus::{OutOfSync, Synced};
    let none = Vec::new;
    vec![
        case(
            "deployment_as_applied",
            "deployment-desired.yaml",
            "deployment-live.yaml",
            none(),
            Synced,
        ),
        case(
            "deployment_replicas_changed",
            "deployment-desired-replicas.yaml",
            "deployment-live.yaml",
            none(),
            OutOfSync,
        ),
        case(
            "deployment_image_changed",
            "deployment-desired-image.yaml",
            "deployment-live.yaml",
            none(),
            OutOfSync,
        ),
        case(
            "deployment_live_only_annotation",
            "deployment-desired.yaml",
            "deployment-live-restarted.yaml",
            none(),
            Synced,
        ),
        case(
            "deployment_label_not_live",
            "deployment-desired-label.yaml",
            "deployment-live.yaml",
            none(),
            OutOfSync,
        ),
        case(
            "deployment_container_removed",
            "deployment-desired-no-sidecar.yaml",
            "deployment-live.yaml",
            none(),
            OutOfSync,
        ),
        case(
            "service_as_applied",
            "service-desired.yaml",
            "service-live.yaml",
            none(),
            Synced,
        ),
        case(
            "service_port_changed",
            "service-desired-port.yaml",
            "service-live.yaml",
            none(),
            OutOfSync,
        ),
        // ignoreDifferences: each rule against a control without it, and a rule that
        // must not hide more than it names.
        case(
            "deployment_scaled_by_hpa",
            "deployment-desired.yaml",
            "deployment-live-scaled.yaml",
            none(),
            OutOfSync,
        ),
        case(
            "ignore_pointer_replicas",
            "deployment-desired.yaml",
            "deployment-live-scaled.yaml",
            pointers(&["/spec/replicas"]),
            Synced,
        ),
        case(
            "ignore_pointer_other_name",
            "deployment-desired.yaml",
            "deployment-live-scaled.yaml",
            vec![IgnoreDifferences {
                name: Some("api".into()),
                ..pointers(&["/spec/replicas"]).remove(0)
            }],
            OutOfSync,
        ),
        case(
            "ignore_pointer_other_field",
            "deployment-desired.yaml",
            "deployment-live-scaled.yaml",
            pointers(&["/spec/paused"]),
            OutOfSync,
        ),
        case(
            "ignore_managers_hpa",
            "deployment-desired.yaml",
            "deployment-live-scaled.yaml",
            managers(&["kube-controller-manager"]),
            Synced,
        ),
        case(
            "ignore_managers_other",
            "deployment-desired.yaml",
            "deployment-live-scaled.yaml",
            managers(&["kubectl-client-side-apply"]),
            OutOfSync,
        ),
        case(
            "deployment_sidecar_image_drift",
            "deployment-desired.yaml",
            "deployment-live-sidecar-image.yaml",
            none(),
            OutOfSync,
        ),
        case(
            "ignore_jq_sidecar_image",
            "deployment-desired.yaml",
            "deployment-live-sidecar-image.yaml",
            jq(&[SIDECAR_IMAGE]),
            Synced,
        ),
        case(
            "ignore_jq_app_image_only",
            "deployment-desired.yaml",
            "deployment-live-sidecar-image.yaml",
            jq(&[r#".spec.template.spec.containers[] | select(.name == "app") | .image"#]),
            OutOfSync,
        ),
        case(
            "ignore_jq_sidecar_keeps_app_change",
            "deployment-desired-image.yaml",
            "deployment-live-sidecar-image.yaml",
            jq(&[SIDECAR_IMAGE]),
            OutOfSync,
        ),
        case(
            "ignore_jq_not_equal",
            "deployment-desired.yaml",
            "deployment-live-sidecar-image.yaml",
            jq(&[r#".spec.template.spec.containers[] | select(.name != "app") | .image"#]),
            Synced,
        ),
        case(
            "secret_string_data_equals_data",
            "secret-desired.yaml",
            "secret-live.yaml",
            none(),
            Synced,
        ),
        case(
            "secret_value_changed",
            "secret-desired-changed.yaml",
            "secret-live.yaml",
            none(),
            OutOfSync,
        ),
    ]
}

#[test]
fn table() {
    let mut failures = Vec::new();
    for c in cases() {
        let desired = one(c.desired);
        let live = one(c.live);
        let opts = DiffOptions { ignore: c.ignore };
        let d =
            diff::diff(&desired, Some(&live), &opts).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        let unified = d.unified();
        if d.status != c.want {
            failures.push(format!(
                "{}: want {:?}, got {:?}\n{unified}",
                c.name, c.want, d.status
            ));
            continue;
        }
        assert_eq!(
            d.key.to_string(),
            format!("{}/{}:shop/{}", live.group(), live.kind(), live.name()),
            "{}",
            c.name
        );
        match d.status {
            SyncStatus::Synced => assert_eq!(unified, "", "{}", c.name),
            _ => {
                assert!(unified.starts_with("--- live "), "{}: {unified}", c.name);
                insta::assert_snapshot!(c.name, unified);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every secret value of the fixtures, in plaintext and base64.
const SECRET_VALUES: &[&str] = &[
    "s3cr3t-Pa55",
    "czNjcjN0LVBhNTU=",
    "n3w-r0tated-Pw",
    "bjN3LXIwdGF0ZWQtUHc=",
    "shop_app",
    "c2hvcF9hcHA=",
];

fn assert_no_secret(what: &str, text: &str) {
    for v in SECRET_VALUES {
        assert!(!text.contains(v), "{what} leaks {v:?}:\n{text}");
    }
}

#[test]
fn secret_values_never_leave_the_diff() {
    let live = one("secret-live.yaml");
    for desired in ["secret-desired.yaml", "secret-desired-changed.yaml"] {
        let d = diff::diff(&one(desired), Some(&live), &DiffOptions::default()).unwrap();
        assert_no_secret(desired, &d.unified());
        assert_no_secret(desired, &format!("{d:?}"));
        let pred = d.predicted_live.as_ref().unwrap();
        assert_eq!(
            pred["data"]["username"], "++++++++",
            "unchanged value: the first mask"
        );
        assert!(pred.get("stringData").is_none());
    }
    let changed = diff::diff(
        &one("secret-desired-changed.yaml"),
        Some(&live),
        &DiffOptions::default(),
    )
    .unwrap();
    assert_eq!(
        changed.normalized_live.as_ref().unwrap()["data"]["password"],
        "++++++++"
    );
    assert_eq!(
        changed.predicted_live.as_ref().unwrap()["data"]["password"],
        "+++++++++"
    );
    // Missing and Extraneous secrets are masked too.
    let r = diff::compare(
        &[one("secret-desired.yaml")],
        &[],
        "shop",
        &DiffOptions::default(),
    )
    .unwrap();
    assert_eq!(r[0].status, SyncStatus::Missing);
    assert_no_secret("missing", &format!("{}{:?}", r[0].unified(), r[0]));
    let r = diff::compare(&[], &[live], "shop", &DiffOptions::default()).unwrap();
    assert_eq!(r[0].status, SyncStatus::Extraneous);
    assert_no_secret("extraneous", &format!("{}{:?}", r[0].unified(), r[0]));
    insta::assert_snapshot!("secret_extraneous", r[0].unified());
}

#[test]
fn invalid_expressions_are_errors() {
    let desired = one("deployment-desired.yaml");
    let live = one("deployment-live.yaml");
    for (ignore, want) in [
        (
            jq(&[".spec.template.spec.containers[] | select(.name == \"x\""]),
            "jqPathExpressions",
        ),
        (jq(&[".metadata.annotations.a-b"]), "jqPathExpressions"),
        (jq(&[".spec | del(.replicas)"]), "jqPathExpressions"),
        (pointers(&["spec/replicas"]), "jsonPointers"),
    ] {
        let expr = ignore[0]
            .jq_path_expressions
            .first()
            .or(ignore[0].json_pointers.first())
            .unwrap()
            .clone();
        let opts = DiffOptions { ignore };
        let err = diff::diff(&desired, Some(&live), &opts).unwrap_err();
        assert!(
            matches!(&err, Error::Expression { expr: e, .. } if *e == expr),
            "{err:?}"
        );
        assert!(err.to_string().contains(want), "{err}");
        assert!(opts.validate().is_err());
        assert!(
            diff::compare(&[], &[], "", &opts).is_err(),
            "compare validates even with nothing to compare"
        );
    }
}

#[test]
fn compare_reports_missing_and_extraneous() {
    let mut desired = load("diff/compare-desired.yaml");
    desired.push(one("deployment-desired-replicas.yaml"));
    desired.push(one("service-desired.yaml"));
    let mut live = vec![one("secret-live.yaml"), one("service-live.yaml")];
    live.extend(load("diff/compare-live.yaml"));
    live.push(one("deployment-live.yaml"));
    let r = diff::compare(&desired, &live, "shop", &DiffOptions::default()).unwrap();
    let got: Vec<(String, SyncStatus)> = r.iter().map(|d| (d.key.to_string(), d.status)).collect();
    let want = [
        ("/ConfigMap:shop/web-config", SyncStatus::Synced),
        ("/ConfigMap:/feature-flags", SyncStatus::Missing),
        ("apps/Deployment:shop/web", SyncStatus::OutOfSync),
        ("/Service:shop/web", SyncStatus::Synced),
        ("/Secret:shop/db", SyncStatus::Extraneous),
        ("/ConfigMap:shop/legacy-flags", SyncStatus::Extraneous),
    ];
    let want: Vec<(String, SyncStatus)> = want.iter().map(|(k, s)| (k.to_string(), *s)).collect();
    assert_eq!(got, want);
    assert!(r[1].normalized_live.is_none() && r[1].predicted_live.is_some());
    assert!(r[5].normalized_live.is_some() && r[5].predicted_live.is_none());
    insta::assert_snapshot!("compare_missing", r[1].unified());
    insta::assert_snapshot!("compare_extraneous", r[5].unified());
    // The wrong default namespace pairs nothing.
    let r = diff::compare(&desired, &live, "default", &DiffOptions::default()).unwrap();
    assert_eq!(
        r.iter().filter(|d| d.status == SyncStatus::Missing).count(),
        desired.len()
    );
}

#[test]
fn normalize_strips_what_the_server_fills_in() {
    let live = one("deployment-live.yaml");
    let n = diff::normalize(live.value());
    for gone in [
        "/status",
        "/metadata/managedFields",
        "/metadata/resourceVersion",
        "/metadata/uid",
        "/metadata/creationTimestamp",
        "/metadata/generation",
        "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
        "/spec/revisionHistoryLimit",
        "/spec/progressDeadlineSeconds",
        "/spec/strategy",
        "/spec/template/metadata/creationTimestamp",
        "/spec/template/spec/dnsPolicy",
        "/spec/template/spec/restartPolicy",
        "/spec/template/spec/schedulerName",
        "/spec/template/spec/securityContext",
        "/spec/template/spec/terminationGracePeriodSeconds",
        "/spec/template/spec/containers/0/imagePullPolicy",
        "/spec/template/spec/containers/0/terminationMessagePath",
        "/spec/template/spec/containers/0/terminationMessagePolicy",
        "/spec/template/spec/containers/0/ports/0/protocol",
        "/spec/template/spec/containers/0/readinessProbe/periodSeconds",
        "/spec/template/spec/containers/0/env/1/valueFrom/fieldRef/apiVersion",
        "/spec/template/spec/containers/1/resources",
        "/spec/template/spec/volumes/0/configMap/defaultMode",
    ] {
        assert!(
            n.pointer(gone).is_none(),
            "{gone} should be normalised away"
        );
    }
    for kept in [
        "/metadata/annotations/deployment.kubernetes.io~1revision",
        "/spec/replicas",
        "/spec/template/spec/volumes/1/emptyDir",
    ] {
        assert!(n.pointer(kept).is_some(), "{kept} should stay");
    }
    // Idempotent, and the input is untouched.
    assert_eq!(diff::normalize(&n), n);
    assert!(live.value().pointer("/status").is_some());
    let svc = diff::normalize(one("service-live.yaml").value());
    assert_eq!(
        svc["spec"],
        serde_json::json!({"ports": [{"name": "http", "port": 80, "targetPort": "http"}, {"name": "metrics", "port": 9090}],
                           "selector": {"app.kubernetes.io/name": "web"}})
    );
}
