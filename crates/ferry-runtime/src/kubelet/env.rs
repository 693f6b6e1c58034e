//! A container's environment, built as the kubelet builds it: Service variables, then
//! `envFrom`, then `env` (each `value` expanded with `$(VAR)` over what came before),
//! with Secrets and ConfigMaps read from the object store. A missing Secret, ConfigMap
//! or key gives the exact message Kubernetes gives with `CreateContainerConfigError`.

use std::collections::BTreeMap;

use base64::Engine;
use ferry_core::{Object, ObjectKey};
use serde_json::Value;

use super::expand::expand;
use super::ports;
use super::status::LOCAL_IP;
use crate::Cluster;

/// The node name pods see in `spec.nodeName`.
pub(crate) const NODE_NAME: &str = "ferry";

/// Whether `name` is a valid environment variable name for Kubernetes (`envFrom`
/// skips the keys that are not).
fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '-' | '.' | '_'))
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

/// A Secret's or ConfigMap's contents.
enum Source {
    Secret,
    ConfigMap,
}

impl Source {
    fn kind(&self) -> &'static str {
        match self {
            Source::Secret => "Secret",
            Source::ConfigMap => "ConfigMap",
        }
    }

    fn lower(&self) -> &'static str {
        match self {
            Source::Secret => "secret",
            Source::ConfigMap => "configmap",
        }
    }
}

/// Reads every key of a Secret (`data` base64-decoded, `stringData` as is) or a
/// ConfigMap (`data`, `binaryData` decoded).
fn read(
    cluster: &Cluster,
    source: &Source,
    ns: &str,
    name: &str,
) -> Option<BTreeMap<String, String>> {
    let obj = cluster.get(&ObjectKey::new("", source.kind(), ns, name))?;
    let v = obj.value();
    let mut out = BTreeMap::new();
    let decode = |s: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .ok()
    };
    let (encoded, plain) = match source {
        Source::Secret => ("data", "stringData"),
        Source::ConfigMap => ("binaryData", "data"),
    };
    if let Some(m) = v.get(encoded).and_then(Value::as_object) {
        for (k, val) in m {
            if let Some(s) = val.as_str().and_then(decode) {
                out.insert(k.clone(), s);
            }
        }
    }
    if let Some(m) = v.get(plain).and_then(Value::as_object) {
        for (k, val) in m {
            let s = match val {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.insert(k.clone(), s);
        }
    }
    Some(out)
}

/// One key of a Secret or ConfigMap: `Ok(None)` when optional and absent.
fn key_ref(
    cluster: &Cluster,
    source: Source,
    ns: &str,
    r: &Value,
) -> Result<Option<String>, String> {
    let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
    let key = r.get("key").and_then(Value::as_str).unwrap_or_default();
    let optional = r.get("optional").and_then(Value::as_bool).unwrap_or(false);
    let Some(data) = read(cluster, &source, ns, name) else {
        return if optional {
            Ok(None)
        } else {
            Err(format!("{} {name:?} not found", source.lower()))
        };
    };
    match data.get(key) {
        Some(v) => Ok(Some(v.clone())),
        None if optional => Ok(None),
        None => Err(format!(
            "couldn't find key {key} in {} {ns}/{name}",
            source.kind()
        )),
    }
}

/// `metadata.labels['x']` → `x`.
fn bracketed<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let inner = path
        .strip_prefix(prefix)?
        .strip_prefix('[')?
        .strip_suffix(']')?;
    inner
        .strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
}

/// A `fieldRef` value.
pub(crate) fn field_ref(pod: &Object, path: &str) -> Result<String, String> {
    let v = pod.value();
    let s = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let meta_map = |field: &str| {
        v.pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={:?}", v.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    };
    Ok(match path {
        "metadata.name" => s("/metadata/name"),
        "metadata.namespace" => s("/metadata/namespace"),
        "metadata.uid" => s("/metadata/uid"),
        "metadata.labels" => meta_map("labels"),
        "metadata.annotations" => meta_map("annotations"),
        "spec.nodeName" => NODE_NAME.to_string(),
        "spec.serviceAccountName" => {
            let sa = s("/spec/serviceAccountName");
            if sa.is_empty() { "default".into() } else { sa }
        }
        "status.podIP" | "status.podIPs" | "status.hostIP" | "status.hostIPs" => {
            LOCAL_IP.to_string()
        }
        p => {
            if let Some(k) = bracketed(p, "metadata.labels") {
                pod.label(k).unwrap_or_default().to_string()
            } else if let Some(k) = bracketed(p, "metadata.annotations") {
                pod.annotation(k).unwrap_or_default().to_string()
            } else {
                return Err(format!("unsupported fieldPath: {p}"));
            }
        }
    })
}

/// The Kubernetes service variables for every Service of `ns` whose host ports the
/// service controller has recorded.
pub(crate) fn service_env(cluster: &Cluster, ns: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for svc in cluster.list(Some("Service"), Some(ns)) {
        let spec = svc.value().get("spec").cloned().unwrap_or(Value::Null);
        if spec.get("clusterIP").and_then(Value::as_str) == Some("None") {
            continue;
        }
        let hosts = ports::of(&svc);
        if hosts.is_empty() {
            continue;
        }
        let name = svc.name().to_uppercase().replace('-', "_");
        let svc_ports: Vec<(u16, String, String)> = spec
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let port = p.get("port").and_then(Value::as_u64)?;
                let port = u16::try_from(port).ok()?;
                let pname = p
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let proto = p
                    .get("protocol")
                    .and_then(Value::as_str)
                    .unwrap_or("TCP")
                    .to_string();
                Some((port, pname, proto))
            })
            .filter(|(port, _, _)| hosts.contains_key(port))
            .collect();
        let Some((first, _, first_proto)) = svc_ports.first() else {
            continue;
        };
        let host_of = |p: &u16| hosts.get(p).copied().unwrap_or(*p);
        out.insert(format!("{name}_SERVICE_HOST"), LOCAL_IP.to_string());
        out.insert(format!("{name}_SERVICE_PORT"), host_of(first).to_string());
        out.insert(
            format!("{name}_PORT"),
            format!(
                "{}://{LOCAL_IP}:{}",
                first_proto.to_lowercase(),
                host_of(first)
            ),
        );
        for (port, pname, proto) in &svc_ports {
            let hp = host_of(port);
            if !pname.is_empty() {
                out.insert(
                    format!(
                        "{name}_SERVICE_PORT_{}",
                        pname.to_uppercase().replace('-', "_")
                    ),
                    hp.to_string(),
                );
            }
            let lower = proto.to_lowercase();
            let upper = proto.to_uppercase();
            let prefix = format!("{name}_PORT_{port}_{upper}");
            out.insert(prefix.clone(), format!("{lower}://{LOCAL_IP}:{hp}"));
            out.insert(format!("{prefix}_PROTO"), lower);
            out.insert(format!("{prefix}_PORT"), hp.to_string());
            out.insert(format!("{prefix}_ADDR"), LOCAL_IP.to_string());
        }
    }
    out
}

/// The environment the kubelet gives a container (the image's env comes under it):
/// `HOST`, `PORT`, Service variables, `envFrom`, then `env`. `Err` is the
/// `CreateContainerConfigError` message.
pub(crate) fn container_env(
    cluster: &Cluster,
    pod: &Object,
    container: &Value,
    port: Option<u16>,
) -> Result<BTreeMap<String, String>, String> {
    let ns = pod.namespace();
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert("HOST".into(), LOCAL_IP.to_string());
    if let Some(p) = port {
        env.insert("PORT".into(), p.to_string());
    }
    let links = pod
        .value()
        .pointer("/spec/enableServiceLinks")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    if links {
        env.extend(service_env(cluster, ns));
    }
    for from in container
        .get("envFrom")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let prefix = from
            .get("prefix")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let (source, r) = if let Some(r) = from.get("configMapRef") {
            (Source::ConfigMap, r)
        } else if let Some(r) = from.get("secretRef") {
            (Source::Secret, r)
        } else {
            continue;
        };
        let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
        let optional = r.get("optional").and_then(Value::as_bool).unwrap_or(false);
        match read(cluster, &source, ns, name) {
            Some(data) => {
                for (k, v) in data {
                    let k = format!("{prefix}{k}");
                    if is_env_name(&k) {
                        env.insert(k, v);
                    }
                }
            }
            None if optional => {}
            None => return Err(format!("{} {name:?} not found", source.lower())),
        }
    }
    for e in container
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(name) = e.get("name").and_then(Value::as_str) else {
            continue;
        };
        let value = if let Some(from) = e.get("valueFrom") {
            if let Some(r) = from.get("secretKeyRef") {
                key_ref(cluster, Source::Secret, ns, r)?
            } else if let Some(r) = from.get("configMapKeyRef") {
                key_ref(cluster, Source::ConfigMap, ns, r)?
            } else if let Some(r) = from.get("fieldRef") {
                let path = r
                    .get("fieldPath")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                Some(field_ref(pod, path)?)
            } else {
                // resourceFieldRef and others: not modelled here; leave unset.
                None
            }
        } else {
            let raw = e.get("value").and_then(Value::as_str).unwrap_or_default();
            Some(expand(raw, |k| env.get(k).cloned()))
        };
        if let Some(v) = value {
            env.insert(name.to_string(), v);
        }
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ApplyOptions;
    use serde_json::json;

    fn apply(c: &Cluster, v: Value) -> Object {
        c.apply(&Object::from_value(v).unwrap(), &ApplyOptions::default())
            .unwrap()
    }

    fn pod(c: &Cluster, container: Value) -> (Object, Value) {
        let p = apply(
            c,
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web-1", "labels": {"app": "web"}, "annotations": {"team": "a"}},
                "spec": {"containers": [container.clone()]}}),
        );
        (p, container)
    }

    #[test]
    fn builds_env_like_the_kubelet() {
        let c = Cluster::in_memory();
        apply(
            &c,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                "data": {"password": "czNjcjN0"}, "stringData": {"user": "admin"}}),
        );
        apply(
            &c,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
                "data": {"mode": "fast", "LEVEL": "3"}}),
        );
        apply(
            &c,
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "my-db",
                "annotations": {"ferry.dev/host-ports": "{\"5432\": 31500}"}},
                "spec": {"ports": [{"name": "pg", "port": 5432}]}}),
        );
        let (p, ctr) = pod(
            &c,
            json!({"name": "app", "image": "x",
            "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
            "env": [
                {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                {"name": "USER", "valueFrom": {"secretKeyRef": {"name": "db", "key": "user"}}},
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "URL", "value": "$(USER)@$(MY_DB_SERVICE_HOST):$(MY_DB_SERVICE_PORT)/$(NOPE)"},
                {"name": "ESC", "value": "$$(USER)"},
                {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "none", "key": "k", "optional": true}}},
            ]}),
        );
        let env = container_env(&c, &p, &ctr, Some(31000)).unwrap();
        assert_eq!(env["PASS"], "s3cr3t");
        assert_eq!(env["USER"], "admin");
        assert_eq!(env["MODE"], "fast");
        assert_eq!(env["CFG_LEVEL"], "3");
        assert_eq!(env["POD"], "web-1");
        assert_eq!(env["APP"], "web");
        assert_eq!(env["URL"], "admin@127.0.0.1:31500/$(NOPE)");
        assert_eq!(env["ESC"], "$(USER)");
        assert_eq!(env["PORT"], "31000");
        assert_eq!(env["MY_DB_SERVICE_PORT_PG"], "31500");
        assert_eq!(env["MY_DB_PORT_5432_TCP"], "tcp://127.0.0.1:31500");
        assert!(!env.contains_key("OPT"));
    }

    #[test]
    fn missing_refs_give_kubernetes_messages() {
        let c = Cluster::in_memory();
        apply(
            &c,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "data": {}}),
        );
        apply(
            &c,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {}}),
        );
        let cases = [
            (
                json!({"secretKeyRef": {"name": "nope", "key": "k"}}),
                "secret \"nope\" not found",
            ),
            (
                json!({"secretKeyRef": {"name": "db", "key": "password"}}),
                "couldn't find key password in Secret default/db",
            ),
            (
                json!({"configMapKeyRef": {"name": "nope", "key": "k"}}),
                "configmap \"nope\" not found",
            ),
            (
                json!({"configMapKeyRef": {"name": "cfg", "key": "mode"}}),
                "couldn't find key mode in ConfigMap default/cfg",
            ),
        ];
        for (from, want) in cases {
            let (p, ctr) = pod(
                &c,
                json!({"name": "app", "image": "x", "env": [{"name": "X", "valueFrom": from}]}),
            );
            assert_eq!(container_env(&c, &p, &ctr, None).unwrap_err(), want);
        }
        let (p, ctr) = pod(
            &c,
            json!({"name": "app", "image": "x", "envFrom": [{"secretRef": {"name": "gone"}}]}),
        );
        assert_eq!(
            container_env(&c, &p, &ctr, None).unwrap_err(),
            "secret \"gone\" not found"
        );
    }
}
