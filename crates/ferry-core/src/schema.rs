//! The built-in kinds' schemas, checked as the API server checks them before it
//! stores an object: required fields present, every field of the type the OpenAPI
//! schema gives (through `k8s-openapi`'s generated types), fields the schema does not
//! know reported (kubectl's `--validate=warn`: `unknown field "spec.replica"`), and
//! the few semantic rules the runtime relies on (a pod spec has containers, each
//! with an image; a workload's selector matches its template's labels; a Service
//! has ports).
//!
//! Kinds the table does not know (custom resources, Argo's kinds) pass untouched:
//! their checks live with their own types.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::names::{ErrorType, FieldError};
use crate::object::Object;

/// What checking an object against its kind's schema found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchemaReport {
    /// Errors the API server would refuse the object for.
    pub errors: Vec<FieldError>,
    /// Fields the schema does not have, as paths (`spec.replica`): warnings.
    pub unknown: Vec<String>,
}

type Check = fn(&Value, &mut SchemaReport);

/// The typed check for a built-in `apiVersion`/`kind`, if ferry has its schema.
fn check_for(api_version: &str, kind: &str) -> Option<Check> {
    use k8s_openapi::api::{apps, autoscaling, batch, core, networking, policy, rbac};
    Some(match (api_version, kind) {
        ("v1", "Pod") => typed::<core::v1::Pod>,
        ("v1", "Service") => typed::<core::v1::Service>,
        ("v1", "ConfigMap") => typed::<core::v1::ConfigMap>,
        ("v1", "Secret") => typed::<core::v1::Secret>,
        ("v1", "Namespace") => typed::<core::v1::Namespace>,
        ("v1", "ServiceAccount") => typed::<core::v1::ServiceAccount>,
        ("v1", "PersistentVolumeClaim") => typed::<core::v1::PersistentVolumeClaim>,
        ("v1", "LimitRange") => typed::<core::v1::LimitRange>,
        ("v1", "ResourceQuota") => typed::<core::v1::ResourceQuota>,
        ("apps/v1", "Deployment") => typed::<apps::v1::Deployment>,
        ("apps/v1", "ReplicaSet") => typed::<apps::v1::ReplicaSet>,
        ("apps/v1", "StatefulSet") => typed::<apps::v1::StatefulSet>,
        ("apps/v1", "DaemonSet") => typed::<apps::v1::DaemonSet>,
        ("batch/v1", "Job") => typed::<batch::v1::Job>,
        ("batch/v1", "CronJob") => typed::<batch::v1::CronJob>,
        ("networking.k8s.io/v1", "Ingress") => typed::<networking::v1::Ingress>,
        ("networking.k8s.io/v1", "NetworkPolicy") => typed::<networking::v1::NetworkPolicy>,
        ("autoscaling/v1", "HorizontalPodAutoscaler") => {
            typed::<autoscaling::v1::HorizontalPodAutoscaler>
        }
        ("autoscaling/v2", "HorizontalPodAutoscaler") => {
            typed::<autoscaling::v2::HorizontalPodAutoscaler>
        }
        ("policy/v1", "PodDisruptionBudget") => typed::<policy::v1::PodDisruptionBudget>,
        ("rbac.authorization.k8s.io/v1", "Role") => typed::<rbac::v1::Role>,
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => typed::<rbac::v1::ClusterRole>,
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => typed::<rbac::v1::RoleBinding>,
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            typed::<rbac::v1::ClusterRoleBinding>
        }
        _ => return None,
    })
}

/// Checks `obj` against its kind's schema (see the module doc).
pub fn check(obj: &Object) -> SchemaReport {
    let mut report = SchemaReport::default();
    let v = obj.value();
    if let Some(typed) = check_for(obj.api_version(), obj.kind()) {
        // Base64 under a Secret's `data` (and a ConfigMap's `binaryData`) is judged by
        // `admit`, in the API server's words and naming the key.
        if obj.api_version() == "v1" && matches!(obj.kind(), "Secret" | "ConfigMap") {
            let mut without = v.clone();
            if let Some(m) = without.as_object_mut() {
                m.remove("binaryData");
                if obj.kind() == "Secret" {
                    m.remove("data");
                }
            }
            typed(&without, &mut report);
        } else {
            typed(v, &mut report);
        }
    }
    // Semantic rules only once the shape is right: a wrong type already says enough.
    if report.errors.is_empty() {
        semantics(obj, &mut report);
    }
    report
}

/// The value at a dotted path (`spec.replicas`, `spec.containers[0].name`).
fn value_at<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = root;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (name, index) = match part.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        if !name.is_empty() {
            cur = cur.get(name)?;
        }
        if let Some(i) = index {
            cur = cur.get(i)?;
        }
    }
    Some(cur)
}

fn typed<T: DeserializeOwned>(v: &Value, report: &mut SchemaReport) {
    let mut unknown = Vec::new();
    let mut note = |path: serde_ignored::Path<'_>| {
        // Optional fields show as `?` segments in serde_ignored's paths.
        let p = path.to_string().replace(".?", "").replace("?.", "");
        // `status` is the server's; a manifest copied from `kubectl get -o yaml`
        // carries server-only metadata too: neither is the user's mistake.
        if !p.starts_with("status") {
            unknown.push(p);
        }
    };
    let de = serde_ignored::Deserializer::new(v, &mut note);
    let result: Result<T, _> = serde_path_to_error::deserialize(de);
    unknown.sort();
    report.unknown.extend(unknown);
    let Err(err) = result else {
        return;
    };
    let path = err.path().to_string();
    let path = if path == "." { String::new() } else { path };
    let message = err.into_inner().to_string();
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        let field = if path.is_empty() {
            field.to_string()
        } else {
            format!("{path}.{field}")
        };
        report.errors.push(FieldError {
            field,
            kind: ErrorType::Required,
            value: String::new(),
            detail: String::new(),
        });
        return;
    }
    let shown = value_at(v, &path)
        .map(|x| match x {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default();
    report.errors.push(FieldError {
        field: if path.is_empty() {
            "<root>".into()
        } else {
            path
        },
        kind: ErrorType::Invalid,
        value: shown,
        detail: message,
    });
}

fn required(report: &mut SchemaReport, field: String) {
    report.errors.push(FieldError {
        field,
        kind: ErrorType::Required,
        value: String::new(),
        detail: String::new(),
    });
}

/// A pod spec's rules at `at` (`spec` of a Pod, `spec.template.spec` of a workload).
fn pod_spec(spec: Option<&Value>, at: &str, report: &mut SchemaReport) {
    let containers = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array);
    match containers {
        None => required(report, format!("{at}.containers")),
        Some(list) if list.is_empty() => required(report, format!("{at}.containers")),
        Some(list) => {
            for (i, c) in list.iter().enumerate() {
                let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
                if image.trim().is_empty() {
                    required(report, format!("{at}.containers[{i}].image"));
                }
            }
        }
    }
}

fn semantics(obj: &Object, report: &mut SchemaReport) {
    let v = obj.value();
    let spec = v.get("spec");
    match (obj.group(), obj.kind()) {
        ("", "Pod") => pod_spec(spec, "spec", report),
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") => {
            let template = spec.and_then(|s| s.get("template"));
            pod_spec(
                template.and_then(|t| t.get("spec")),
                "spec.template.spec",
                report,
            );
            selector_matches(spec, template, report);
        }
        ("batch", "Job") => {
            let template = spec.and_then(|s| s.get("template"));
            pod_spec(
                template.and_then(|t| t.get("spec")),
                "spec.template.spec",
                report,
            );
        }
        ("", "Service") => {
            let ty = spec
                .and_then(|s| s.get("type"))
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP");
            let headless = spec
                .and_then(|s| s.get("clusterIP"))
                .and_then(Value::as_str)
                == Some("None");
            let ports = spec
                .and_then(|s| s.get("ports"))
                .and_then(Value::as_array)
                .is_some_and(|p| !p.is_empty());
            if !ports && ty != "ExternalName" && !headless {
                required(report, "spec.ports".into());
            }
        }
        _ => {}
    }
}

/// apps/v1 workloads: the selector's `matchLabels` must all be on the template (what
/// the API server checks as "selector does not match template labels").
fn selector_matches(spec: Option<&Value>, template: Option<&Value>, report: &mut SchemaReport) {
    // k8s-openapi fills a missing required struct with its default, so required
    // fields it cannot see missing are checked here.
    let Some(selector) = spec.and_then(|s| s.get("selector")) else {
        required(report, "spec.selector".into());
        return;
    };
    let want = selector.get("matchLabels").and_then(Value::as_object);
    let has_expressions = selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .is_some_and(|e| !e.is_empty());
    if want.is_none_or(|w| w.is_empty()) && !has_expressions {
        report.errors.push(FieldError {
            field: "spec.selector".into(),
            kind: ErrorType::Invalid,
            value: "{}".into(),
            detail: "empty selector is invalid for deployment".into(),
        });
        return;
    }
    let labels = template
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object);
    let matches = want.is_none_or(|w| {
        w.iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
    });
    if !matches {
        let shown = labels.map_or_else(
            || "{}".to_string(),
            |l| Value::Object(l.clone()).to_string(),
        );
        report.errors.push(FieldError {
            field: "spec.template.metadata.labels".into(),
            kind: ErrorType::Invalid,
            value: shown,
            detail: "`selector` does not match template `labels`".into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Object {
        Object::from_value(v).unwrap()
    }

    fn deploy(spec: Value) -> Object {
        obj(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "web"}, "spec": spec}))
    }

    fn good_spec() -> Value {
        json!({"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
               "template": {"metadata": {"labels": {"app": "web"}},
                            "spec": {"containers": [{"name": "web", "image": "web:1"}]}}})
    }

    #[test]
    fn a_valid_deployment_passes() {
        assert_eq!(check(&deploy(good_spec())), SchemaReport::default());
    }

    #[test]
    fn regression_deployment_cut_off_after_replicas_is_refused() {
        let r = check(&deploy(json!({"replicas": 2})));
        let msgs: Vec<String> = r.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            vec![
                "spec.template.spec.containers: Required value",
                "spec.selector: Required value"
            ],
            "{msgs:?}"
        );
    }

    #[test]
    fn wrong_types_name_the_field_and_the_value() {
        let mut spec = good_spec();
        spec["replicas"] = json!("two");
        let r = check(&deploy(spec));
        let msg = r.errors[0].to_string();
        assert!(
            msg.starts_with("spec.replicas: Invalid value: \"two\": invalid type: string"),
            "{msg}"
        );
        let mut spec = good_spec();
        spec["template"]["spec"]["containers"][0]["ports"] = json!([{"containerPort": "http"}]);
        let msg = check(&deploy(spec)).errors[0].to_string();
        assert!(
            msg.starts_with(
                "spec.template.spec.containers[0].ports[0].containerPort: Invalid value: \"http\""
            ),
            "{msg}"
        );
    }

    #[test]
    fn unknown_fields_are_reported_and_status_is_not() {
        let mut spec = good_spec();
        spec["replica"] = json!(3);
        spec["template"]["spec"]["containers"][0]["imagePullPolice"] = json!("Always");
        let mut d = deploy(spec).value().clone();
        d["status"] = json!({"whatever": 1});
        let r = check(&obj(d));
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(
            r.unknown,
            vec![
                "spec.replica".to_string(),
                "spec.template.spec.containers.0.imagePullPolice".to_string()
            ]
        );
    }

    #[test]
    fn pod_specs_need_containers_with_images() {
        let mut spec = good_spec();
        spec["template"]["spec"]["containers"] = json!([]);
        assert_eq!(
            check(&deploy(spec)).errors[0].to_string(),
            "spec.template.spec.containers: Required value"
        );
        let pod = obj(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                             "spec": {"containers": [{"name": "c"}]}}),
        );
        assert_eq!(
            check(&pod).errors[0].to_string(),
            "spec.containers[0].image: Required value"
        );
    }

    #[test]
    fn a_selector_must_match_the_template() {
        let mut spec = good_spec();
        spec["template"]["metadata"]["labels"] = json!({"app": "other"});
        let msg = check(&deploy(spec)).errors[0].to_string();
        assert_eq!(
            msg,
            "spec.template.metadata.labels: Invalid value: \"{\\\"app\\\":\\\"other\\\"}\": `selector` does not match template `labels`"
        );
    }

    #[test]
    fn services_need_ports_unless_headless_or_external() {
        let svc = |spec: Value| {
            obj(
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": spec}),
            )
        };
        assert_eq!(
            check(&svc(json!({"selector": {"app": "x"}}))).errors[0].to_string(),
            "spec.ports: Required value"
        );
        assert!(check(&svc(json!({"clusterIP": "None"}))).errors.is_empty());
        assert!(
            check(&svc(
                json!({"type": "ExternalName", "externalName": "x.example"})
            ))
            .errors
            .is_empty()
        );
    }

    #[test]
    fn kinds_without_a_schema_pass() {
        let ro = obj(
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                            "metadata": {"name": "r"}, "spec": {"anything": true}}),
        );
        assert_eq!(check(&ro), SchemaReport::default());
    }
}
