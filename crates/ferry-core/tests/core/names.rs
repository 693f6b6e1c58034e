//! Kubernetes' name rules, over apimachinery's own test tables
//! (`pkg/util/validation/validation_test.go`, `pkg/api/validation/path/name_test.go`),
//! and whole objects answered in the API server's words.

use ferry_core::Object;
use ferry_core::names::{self, NameRule};
use serde_json::{Value, json};

fn a(n: usize) -> String {
    "a".repeat(n)
}

/// Each good value passes, each bad one fails, with `check`.
fn table(what: &str, check: fn(&str) -> Vec<String>, good: &[String], bad: &[String]) {
    for v in good {
        let errs = check(v);
        assert!(errs.is_empty(), "{what}: {v:?} should pass: {errs:?}");
    }
    for v in bad {
        assert!(!check(v).is_empty(), "{what}: {v:?} should fail");
    }
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn dns1123_labels_as_apimachinery_tests_them() {
    let mut good = strs(&[
        "a",
        "ab",
        "abc",
        "a1",
        "a-1",
        "a--1--2--b",
        "0",
        "01",
        "012",
        "1a",
        "1-a",
        "1--a--b--2",
    ]);
    good.push(a(63));
    let mut bad = strs(&[
        "", "A", "ABC", "aBc", "A1", "A-1", "1-A", "-", "a-", "-a", "1-", "-1", "_", "a_", "_a",
        "a_b", "1_", "_1", "1_2", ".", "a.", ".a", "a.b", "1.", ".1", "1.2", " ", "a ", " a",
        "a b", "1 ", " 1", "1 2",
    ]);
    bad.push(a(64));
    table("IsDNS1123Label", names::is_dns1123_label, &good, &bad);
}

#[test]
fn dns1123_subdomains_as_apimachinery_tests_them() {
    let mut good = strs(&[
        "a",
        "ab",
        "abc",
        "a1",
        "a-1",
        "a--1--2--b",
        "0",
        "01",
        "012",
        "1a",
        "1-a",
        "1--a--b--2",
        "a.a",
        "ab.a",
        "abc.a",
        "a1.a",
        "a-1.a",
        "a--1--2--b.a",
        "a.1",
        "ab.1",
        "abc.1",
        "a1.1",
        "a-1.1",
        "a--1--2--b.1",
        "0.a",
        "01.a",
        "012.a",
        "1a.a",
        "1-a.a",
        "1--a--b--2",
        "0.1",
        "01.1",
        "012.1",
        "1a.1",
        "1-a.1",
        "1--a--b--2.1",
        "a.b.c.d.e",
        "aa.bb.cc.dd.ee",
        "1.2.3.4.5",
        "11.22.33.44.55",
    ]);
    good.push(a(253));
    let mut bad = strs(&[
        "",
        "A",
        "ABC",
        "aBc",
        "A1",
        "A-1",
        "1-A",
        "-",
        "a-",
        "-a",
        "1-",
        "-1",
        "_",
        "a_",
        "_a",
        "a_b",
        "1_",
        "_1",
        "1_2",
        ".",
        "a.",
        ".a",
        "a..b",
        "1.",
        ".1",
        "1..2",
        " ",
        "a ",
        " a",
        "a b",
        "1 ",
        " 1",
        "1 2",
        "A.a",
        "aB.a",
        "ab.A",
        "A1.a",
        "a1.A",
        "A.1",
        "aB.1",
        "A1.1",
        "1A.1",
        "0.A",
        "01.A",
        "012.A",
        "1A.a",
        "1a.A",
        "A.B.C.D.E",
        "AA.BB.CC.DD.EE",
        "a.B.c.d.e",
        "aa.bB.cc.dd.ee",
        "a@b",
        "a,b",
        "a_b",
        "a;b",
        "a:b",
        "a%b",
        "a?b",
        "a$b",
        // The holes this module closes.
        "../../../victim2",
        "..",
        "a/b",
    ]);
    bad.push(a(254));
    table(
        "IsDNS1123Subdomain",
        names::is_dns1123_subdomain,
        &good,
        &bad,
    );
}

#[test]
fn dns1035_labels_as_apimachinery_tests_them() {
    let mut good = strs(&["a", "ab", "abc", "a1", "a-1", "a--1--2--b"]);
    good.push(a(63));
    let mut bad = strs(&[
        "0",
        "01",
        "012",
        "1a",
        "1-a",
        "1--a--b--2",
        "",
        "A",
        "ABC",
        "aBc",
        "A1",
        "A-1",
        "1-A",
        "-",
        "a-",
        "-a",
        "1-",
        "-1",
        "_",
        "a_",
        "_a",
        "a_b",
        "1_",
        "_1",
        "1_2",
        ".",
        "a.",
        ".a",
        "a.b",
        "1.",
        ".1",
        "1.2",
        " ",
        "a ",
        " a",
        "a b",
        "1 ",
        " 1",
        "1 2",
    ]);
    bad.push(a(64));
    table("IsDNS1035Label", names::is_dns1035_label, &good, &bad);
}

#[test]
fn qualified_names_as_apimachinery_tests_them() {
    let mut good = strs(&[
        "simple",
        "now-with-dashes",
        "1-starts-with-num",
        "1234",
        "simple/simple",
        "now-with-dashes/simple",
        "now-with-dashes/now-with-dashes",
        "now.with.dots/simple",
        "now-with.dashes-and.dots/simple",
        "1-num.2-num/3-num",
        "1234/5678",
        "1.2.3.4/5678",
        "Uppercase_Is_OK_123",
        "example.com/Uppercase_Is_OK_123",
        "requests.storage-foo",
    ]);
    good.push(a(63));
    good.push(format!("{}/{}", a(253), "b".repeat(63)));
    let mut bad = strs(&[
        "nospecialchars%^=@",
        "cantendwithadash-",
        "-cantstartwithadash-",
        "only/one/slash",
        "Example.com/abc",
        "example_com/abc",
        "example.com/",
        "/simple",
    ]);
    bad.push(a(64));
    bad.push(format!("{}/abc", a(254)));
    table("IsQualifiedName", names::is_qualified_name, &good, &bad);
}

#[test]
fn label_values_as_apimachinery_tests_them() {
    let mut good = strs(&[
        "simple",
        "now-with-dashes",
        "1-starts-with-num",
        "end-with-num-1",
        "1234",
        "",
    ]);
    good.push(a(63));
    let mut bad = strs(&[
        "nospecialchars%^=@",
        "Tama-nui-te-rā.is.Māori.sun",
        "\\backslashes\\are\\bad",
        "-starts-with-dash",
        "ends-with-dash-",
        ".starts.with.dot",
        "ends.with.dot.",
    ]);
    bad.push(a(64));
    table(
        "IsValidLabelValue",
        names::is_valid_label_value,
        &good,
        &bad,
    );
}

#[test]
fn port_names_as_apimachinery_tests_them() {
    let good = strs(&[
        "telnet",
        "re-mail-ck",
        "pop3",
        "a",
        "a-1",
        "1-a",
        "a-1-b-2-c",
        "1-a-2-b-3",
    ]);
    let mut bad = strs(&[
        "longerthan15characters",
        "",
        "12345",
        "1-2-3-4",
        "-begin",
        "end-",
        "two--hyphens",
        "whois++",
    ]);
    bad.push(a(16));
    table("IsValidPortName", names::is_valid_port_name, &good, &bad);
}

#[test]
fn path_segment_names_as_apimachinery_words_them() {
    assert_eq!(names::is_valid_path_segment_name("."), ["may not be '.'"]);
    assert_eq!(names::is_valid_path_segment_name(".."), ["may not be '..'"]);
    assert_eq!(
        names::is_valid_path_segment_name("../a%b"),
        ["may not contain '/'", "may not contain '%'"]
    );
    assert!(names::is_valid_path_segment_name("..a").is_empty());
    assert!(names::is_valid_path_segment_name("a.b").is_empty());
}

#[test]
fn messages_are_the_api_servers() {
    assert_eq!(
        names::is_dns1123_label("a.b"),
        ["must not contain dots"],
        "a valid subdomain that is not a label"
    );
    assert_eq!(
        names::is_dns1123_label(&a(64)),
        ["must be no more than 63 characters"]
    );
    assert_eq!(
        names::is_dns1123_label("A"),
        [
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        ]
    );
    assert_eq!(
        names::is_dns1035_label("1a"),
        [
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
        ]
    );
    assert_eq!(
        names::is_qualified_name("example.com/"),
        [
            "name part must be non-empty",
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        ]
    );
    assert_eq!(
        names::is_qualified_name("/simple"),
        ["prefix part must be non-empty"]
    );
    assert_eq!(
        names::is_valid_label_value("-x"),
        [
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        ]
    );
    assert_eq!(
        names::is_valid_port_name("12345"),
        ["must contain at least one letter (a-z)"]
    );
}

#[test]
fn kinds_name_rules() {
    assert_eq!(NameRule::of("", "Namespace"), NameRule::Label);
    assert_eq!(NameRule::of("", "Service"), NameRule::Dns1035Label);
    assert_eq!(NameRule::of("", "Pod"), NameRule::Subdomain);
    assert_eq!(
        NameRule::of("argoproj.io", "Application"),
        NameRule::Subdomain
    );
    // A generateName prefix may end in '-': the generated suffix follows.
    assert!(NameRule::Subdomain.check("web-", true).is_empty());
    assert!(!NameRule::Subdomain.check("web-", false).is_empty());
    assert!(!NameRule::Subdomain.check("../web-", true).is_empty());
}

fn obj(v: Value) -> Object {
    Object::from_value(v).unwrap()
}

fn message(o: &Object) -> String {
    names::validate_object(o).unwrap_err().to_string()
}

const SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

#[test]
fn regression_pod_name_with_dotdot_is_refused_in_the_api_servers_words() {
    let pod = obj(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "../../../victim2"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}));
    assert_eq!(
        message(&pod),
        format!(
            "Pod \"../../../victim2\" is invalid: metadata.name: Invalid value: \"../../../victim2\": {SUBDOMAIN}"
        )
    );
}

#[test]
fn regression_namespace_with_dotdot_is_refused() {
    let ns =
        obj(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "../../../x"}}));
    assert_eq!(
        message(&ns),
        format!(
            "Namespace \"../../../x\" is invalid: metadata.name: Invalid value: \"../../../x\": {LABEL}"
        )
    );
    let cm = obj(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "../../../x"}}));
    assert_eq!(
        message(&cm),
        format!(
            "ConfigMap \"c\" is invalid: metadata.namespace: Invalid value: \"../../../x\": {LABEL}"
        )
    );
}

#[test]
fn regression_container_name_with_dotdot_is_refused() {
    let d = obj(
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "../../x", "image": "i"}]}}}}),
    );
    assert_eq!(
        message(&d),
        format!(
            "Deployment.apps \"web\" is invalid: spec.template.spec.containers[0].name: Invalid value: \"../../x\": {LABEL}"
        )
    );
}

#[test]
fn every_field_error_of_an_object_is_collected() {
    let pod = obj(json!({"apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "Web", "labels": {"app": "-x", "a/b/c": "ok"},
        "annotations": {"ok.example.com/Key": "v", "bad key": "v"}},
    "spec": {
        "initContainers": [{"name": "web", "image": "i"}],
        "containers": [
            {"name": "web", "image": "i", "ports": [{"name": "http", "containerPort": 80}, {"name": "HTTP_1", "containerPort": 81}]},
            {"image": "i"}
        ],
        "volumes": [{"name": "data"}, {"name": "data"}, {"name": "a.b"}]
    }}));
    let errs: Vec<String> = names::field_errors(&pod)
        .iter()
        .map(ToString::to_string)
        .collect();
    let fields: Vec<&str> = errs.iter().map(|e| e.split_once(": ").unwrap().0).collect();
    assert_eq!(
        fields,
        [
            "metadata.name",
            "metadata.labels",
            "metadata.labels",
            "metadata.annotations",
            "spec.containers[0].ports[1].name",
            "spec.containers[0].ports[1].name",
            "spec.containers[1].name",
            "spec.initContainers[0].name",
            "spec.volumes[1].name",
            "spec.volumes[2].name",
        ],
        "{errs:#?}"
    );
    assert!(errs.contains(&"spec.containers[1].name: Required value".to_string()));
    assert!(errs.contains(&"spec.initContainers[0].name: Duplicate value: \"web\"".to_string()));
    assert!(errs.contains(
        &"spec.volumes[2].name: Invalid value: \"a.b\": must not contain dots".to_string()
    ));
    let whole = message(&pod);
    assert!(
        whole.starts_with("Pod \"Web\" is invalid: [metadata.name: Invalid value: \"Web\": "),
        "{whole}"
    );
    assert!(whole.ends_with(']'), "{whole}");
    assert_eq!(whole.matches(", spec.").count(), 6, "{whole}");
}

#[test]
fn valid_workloads_of_every_templated_kind_pass() {
    for (api, kind) in [
        ("apps/v1", "Deployment"),
        ("apps/v1", "StatefulSet"),
        ("batch/v1", "Job"),
        ("argoproj.io/v1alpha1", "Rollout"),
    ] {
        let o = obj(json!({"apiVersion": api, "kind": kind,
            "metadata": {"name": "web.v2", "namespace": "shop", "labels": {"app.kubernetes.io/instance": "shop"},
                "annotations": {"argocd.argoproj.io/sync-wave": "1"}},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "i", "ports": [{"name": "http", "containerPort": 80}]}]}}}}));
        assert!(
            names::validate_object(&o).is_ok(),
            "{kind}: {:?}",
            names::validate_object(&o)
        );
        let mut bad = o.clone();
        bad.value_mut()["spec"]["template"]["metadata"]["labels"]["app"] = json!("-web");
        assert!(
            message(&bad).contains("spec.template.metadata.labels: Invalid value: \"-web\""),
            "{kind}: {}",
            message(&bad)
        );
    }
    let cron = obj(
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly"},
        "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "Run", "image": "i"}]}}}}}}),
    );
    assert!(message(&cron).contains("spec.jobTemplate.spec.template.spec.containers[0].name"));
}

#[test]
fn service_names_are_dns1035_labels_and_their_ports_labels() {
    let svc = obj(
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "1web"},
        "spec": {"ports": [{"name": "web_http", "port": 80}]}}),
    );
    let m = message(&svc);
    assert!(
        m.starts_with(
            "Service \"1web\" is invalid: [metadata.name: Invalid value: \"1web\": a DNS-1035 label"
        ),
        "{m}"
    );
    assert!(
        m.contains("spec.ports[0].name: Invalid value: \"web_http\""),
        "{m}"
    );
}

#[test]
fn argo_objects_names_are_subdomains() {
    for kind in ["Application", "AppProject", "ApplicationSet"] {
        let o = obj(json!({"apiVersion": "argoproj.io/v1alpha1", "kind": kind,
            "metadata": {"name": "../evil"}, "spec": {}}));
        assert_eq!(
            message(&o),
            format!(
                "{kind}.argoproj.io \"../evil\" is invalid: metadata.name: Invalid value: \"../evil\": {SUBDOMAIN}"
            )
        );
    }
}

#[test]
fn generate_name_and_oversized_annotations() {
    let ok = obj(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "web-"},
        "spec": {"containers": [{"name": "c", "image": "i"}]}}),
    );
    assert!(names::validate_object(&ok).is_ok());
    let bad = obj(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "../web-"},
        "spec": {"containers": [{"name": "c", "image": "i"}]}}),
    );
    assert!(message(&bad).contains("metadata.generateName: Invalid value: \"../web-\""));
    let big = obj(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "annotations": {"a": "x".repeat(256 * 1024)}}}));
    assert_eq!(
        message(&big),
        "ConfigMap \"c\" is invalid: metadata.annotations: Too long: may not be more than 262144 bytes"
    );
}

#[test]
fn values_are_quoted_as_go_quotes_them() {
    assert_eq!(names::go_quote("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\x01\"");
    assert_eq!(names::go_quote("rā"), "\"rā\"");
}
