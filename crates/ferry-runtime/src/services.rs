//! The service controller: every Service port gets a host listener and a proxy over
//! the ready endpoints its selector picks, with traffic weights per pod-template hash.
//!
//! Host ports are chosen once — the `nodePort` if set, else the Service port itself if
//! it is free and ≥ 1024, else one from the runtime's range — and recorded on the
//! Service (`ferry.dev/host-ports`), so they stay the same across daemon restarts.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ferry_core::{Object, ObjectKey};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::controller::{pod_ready, selector_matches};
use crate::kubelet::{HOST_PORTS_ANNOTATION, Kubelet};
use crate::proxy::{self, Backends, Endpoint, Metrics, Protocol, ProxyHandle, ServiceId};
use crate::{Cluster, Result, RuntimeConfig};

/// Annotation on a Service holding traffic weights by version (pod-template hash):
/// `{"5d9c7f": 80, "7b8d9e": 20}`.
pub const WEIGHTS_ANNOTATION: &str = "ferry.dev/traffic-weights";

struct Listener {
    handle: ProxyHandle,
    backends: Arc<Backends>,
    host_port: u16,
}

/// Runs the proxies of every Service.
pub struct ServiceManager {
    cluster: Arc<Cluster>,
    metrics: Arc<Metrics>,
    config: RuntimeConfig,
    listeners: Mutex<HashMap<(String, String, u16), Listener>>,
}

fn service_ports(svc: &Object) -> Vec<Value> {
    svc.value()
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn port_of(p: &Value) -> Option<u16> {
    p.get("port")
        .and_then(Value::as_u64)
        .and_then(|n| u16::try_from(n).ok())
}

fn recorded_ports(svc: &Object) -> BTreeMap<u16, u16> {
    svc.annotation(HOST_PORTS_ANNOTATION)
        .and_then(|s| serde_json::from_str::<BTreeMap<String, u16>>(s).ok())
        .map(|m| {
            m.into_iter()
                .filter_map(|(k, v)| Some((k.parse().ok()?, v)))
                .collect()
        })
        .unwrap_or_default()
}

/// What protocol a Service port speaks: `appProtocol` or the port name's prefix when
/// given (as Istio and Kubernetes conventions go), else sniffed per connection.
fn protocol(p: &Value) -> Protocol {
    let app = p
        .get("appProtocol")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let name = p
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let l4 = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
    if l4 != "TCP" {
        return Protocol::Tcp;
    }
    let says = if app.is_empty() {
        name.split('-').next().unwrap_or_default().to_string()
    } else {
        app
    };
    match says.as_str() {
        "http" | "http2" | "h2c" | "grpc" | "kubernetes.io/h2c" | "web" => Protocol::Http,
        "tcp" | "tls" | "https" | "mysql" | "postgres" | "redis" | "mongo" | "amqp" => {
            Protocol::Tcp
        }
        _ => Protocol::Auto,
    }
}

async fn bind(port: u16) -> Option<TcpListener> {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .ok()
}

impl ServiceManager {
    /// A manager publishing into `metrics`.
    pub fn new(cluster: Arc<Cluster>, metrics: Arc<Metrics>, config: RuntimeConfig) -> Arc<Self> {
        Arc::new(Self {
            cluster,
            metrics,
            config,
            listeners: Mutex::new(HashMap::new()),
        })
    }

    /// Reconciles on every change until cancelled, then stops every listener.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut changed = self.cluster.changed();
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            if let Err(e) = self.sync().await {
                tracing::warn!("services: {e}");
            }
            tokio::select! {
                _ = changed.changed() => {}
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => break,
            }
        }
        self.stop_all().await;
    }

    /// Stops every listener.
    pub async fn stop_all(&self) {
        let mut listeners = self.listeners.lock().await;
        for (_, l) in listeners.drain() {
            l.handle.shutdown().await;
        }
    }

    /// The host port of a Service port, once it is listening.
    pub async fn host_port(&self, namespace: &str, name: &str, port: u16) -> Option<u16> {
        self.listeners
            .lock()
            .await
            .get(&(namespace.to_string(), name.to_string(), port))
            .map(|l| l.host_port)
    }

    /// The endpoints a Service port currently routes to.
    pub async fn endpoints(&self, namespace: &str, name: &str, port: u16) -> Vec<Endpoint> {
        self.listeners
            .lock()
            .await
            .get(&(namespace.to_string(), name.to_string(), port))
            .map(|l| l.backends.endpoints())
            .unwrap_or_default()
    }

    /// One pass: listeners for new Service ports, none for removed ones, fresh
    /// endpoints and weights for all.
    pub async fn sync(&self) -> Result<()> {
        let services = self.cluster.list(Some("Service"), None);
        let pods = self.cluster.list(Some("Pod"), None);
        let mut listeners = self.listeners.lock().await;
        let mut wanted = HashSet::new();
        let mut in_use: HashSet<u16> = listeners.values().map(|l| l.host_port).collect();
        for svc in &services {
            if svc.is_being_deleted()
                || svc.value().pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName")
            {
                continue;
            }
            let ns = svc.namespace().to_string();
            let name = svc.name().to_string();
            let mut recorded = recorded_ports(svc);
            let before = recorded.clone();
            for p in service_ports(svc) {
                let Some(port) = port_of(&p) else { continue };
                let id = (ns.clone(), name.clone(), port);
                wanted.insert(id.clone());
                if !listeners.contains_key(&id) {
                    let node_port = p
                        .get("nodePort")
                        .and_then(Value::as_u64)
                        .and_then(|n| u16::try_from(n).ok());
                    let Some((listener, host_port)) = self
                        .listen(node_port, recorded.get(&port).copied(), port, &in_use)
                        .await
                    else {
                        self.cluster.record_event(
                            &svc.key(),
                            true,
                            "FailedToListen",
                            &format!("no free host port for port {port}"),
                        );
                        continue;
                    };
                    in_use.insert(host_port);
                    recorded.insert(port, host_port);
                    let backends = Backends::new();
                    let handle = proxy::serve_limited(
                        listener,
                        ServiceId::new(&ns, &name, port),
                        protocol(&p),
                        backends.clone(),
                        self.metrics.clone(),
                        &self.config.proxy_limits,
                    )
                    .await;
                    self.cluster.record_event(
                        &svc.key(),
                        false,
                        "Listening",
                        &format!("port {port} on 127.0.0.1:{host_port}"),
                    );
                    listeners.insert(
                        id.clone(),
                        Listener {
                            handle,
                            backends,
                            host_port,
                        },
                    );
                }
                let l = &listeners[&id];
                l.backends.set_endpoints(endpoints_for(svc, &p, &pods));
                l.backends.set_weights(weights(svc));
            }
            if recorded != before {
                let value = serde_json::to_string(
                    &recorded
                        .iter()
                        .map(|(k, v)| (k.to_string(), *v))
                        .collect::<BTreeMap<_, _>>(),
                )
                .unwrap_or_default();
                self.cluster.patch_metadata(&svc.key(), |meta| {
                    let ann = meta.entry("annotations").or_insert_with(|| json!({}));
                    if let Some(a) = ann.as_object_mut() {
                        a.insert(HOST_PORTS_ANNOTATION.into(), Value::String(value));
                    }
                })?;
            }
            if svc.value().pointer("/spec/type").and_then(Value::as_str) == Some("LoadBalancer") {
                self.cluster.update_status(
                    &svc.key(),
                    json!({"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}),
                )?;
            }
        }
        let gone: Vec<_> = listeners
            .keys()
            .filter(|k| !wanted.contains(*k))
            .cloned()
            .collect();
        for k in gone {
            if let Some(l) = listeners.remove(&k) {
                l.handle.shutdown().await;
            }
        }
        Ok(())
    }

    async fn listen(
        &self,
        node_port: Option<u16>,
        recorded: Option<u16>,
        port: u16,
        in_use: &HashSet<u16>,
    ) -> Option<(TcpListener, u16)> {
        let mut candidates: Vec<u16> = Vec::new();
        candidates.extend(node_port);
        candidates.extend(recorded);
        if port >= 1024 {
            candidates.push(port);
        }
        for c in candidates {
            if !in_use.contains(&c)
                && let Some(l) = bind(c).await
            {
                return Some((l, c));
            }
        }
        // Pods take host ports from the bottom of the range; Services from the top, so
        // the two never race for the same free port.
        let (lo, hi) = self.config.port_range;
        for c in (lo..=hi).rev() {
            if !in_use.contains(&c)
                && let Some(l) = bind(c).await
            {
                return Some((l, c));
            }
        }
        None
    }
}

fn weights(svc: &Object) -> Option<BTreeMap<String, u32>> {
    svc.annotation(WEIGHTS_ANNOTATION)
        .and_then(|s| serde_json::from_str(s).ok())
}

/// The version of a pod: its pod-template hash (Deployments and Rollouts), or empty.
pub fn pod_version(pod: &Object) -> String {
    pod.label("pod-template-hash")
        .or_else(|| pod.label("rollouts-pod-template-hash"))
        .unwrap_or_default()
        .to_string()
}

/// The endpoints of one Service port among `pods`.
fn endpoints_for(svc: &Object, port: &Value, pods: &[Object]) -> Vec<Endpoint> {
    let Some(selector) = svc
        .value()
        .pointer("/spec/selector")
        .and_then(Value::as_object)
    else {
        return Vec::new();
    };
    if selector.is_empty() {
        return Vec::new();
    }
    let selector = json!({"matchLabels": selector});
    let target = port
        .get("targetPort")
        .cloned()
        .or_else(|| port.get("port").cloned())
        .unwrap_or(Value::Null);
    pods.iter()
        .filter(|p| p.namespace() == svc.namespace() && !p.is_being_deleted())
        .filter(|p| {
            selector_matches(
                &selector,
                p.value()
                    .pointer("/metadata/labels")
                    .and_then(Value::as_object),
            )
        })
        .filter_map(|p| {
            let container_port = match &target {
                Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
                Value::String(name) => named_port(p, name),
                _ => None,
            }?;
            let host = Kubelet::host_port_for(p, container_port)?;
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, host));
            let ep = if pod_ready(p) {
                Endpoint::ready(addr, pod_version(p), p.name())
            } else {
                Endpoint::not_ready(addr, pod_version(p), p.name())
            };
            Some(ep)
        })
        .collect()
}

fn named_port(pod: &Object, name: &str) -> Option<u16> {
    if let Ok(n) = name.parse::<u16>() {
        return Some(n);
    }
    pod.value()
        .pointer("/spec/containers")
        .and_then(Value::as_array)?
        .iter()
        .flat_map(|c| {
            c.get("ports")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
        .and_then(|p| p.get("containerPort").and_then(Value::as_u64))
        .and_then(|n| u16::try_from(n).ok())
}

/// Sets (or clears, with `None`) the traffic weights of a Service.
pub fn set_weights(
    cluster: &Cluster,
    service: &ObjectKey,
    weights: Option<&BTreeMap<String, u32>>,
) -> Result<bool> {
    let value = weights.map(|w| serde_json::to_string(w).unwrap_or_default());
    Ok(cluster
        .patch_metadata(service, |meta| {
            let ann = meta.entry("annotations").or_insert_with(|| json!({}));
            if let Some(a) = ann.as_object_mut() {
                match &value {
                    Some(v) => {
                        a.insert(WEIGHTS_ANNOTATION.into(), Value::String(v.clone()));
                    }
                    None => {
                        a.remove(WEIGHTS_ANNOTATION);
                    }
                }
            }
        })?
        .is_some())
}
