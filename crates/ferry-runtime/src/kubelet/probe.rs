//! Container probes: `httpGet`, `tcpSocket` and `exec`, with Kubernetes' timing fields
//! and failure messages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::command::{RunAs, resolve_program};
use super::ports;
use super::status::LOCAL_IP;

/// Which probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Liveness,
    Readiness,
    Startup,
}

impl Kind {
    /// `Liveness`, as in `Liveness probe failed: …`.
    pub(crate) fn title(self) -> &'static str {
        match self {
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
            Kind::Startup => "Startup",
        }
    }

    /// The field of the container spec.
    pub(crate) fn field(self) -> &'static str {
        match self {
            Kind::Liveness => "livenessProbe",
            Kind::Readiness => "readinessProbe",
            Kind::Startup => "startupProbe",
        }
    }
}

/// What a probe does.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Action {
    Http {
        https: bool,
        host: String,
        port: u16,
        path: String,
        headers: Vec<(String, String)>,
    },
    Tcp {
        host: String,
        port: u16,
    },
    Exec {
        argv: Vec<String>,
    },
    /// A handler ferry does not run (gRPC); it always fails with this message.
    Unsupported(String),
}

/// A parsed probe.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Probe {
    pub action: Action,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    /// Probe-level `terminationGracePeriodSeconds`.
    pub grace: Option<Duration>,
}

fn secs(v: &Value, field: &str, default: u64, min: u64) -> Duration {
    Duration::from_secs(
        v.get(field)
            .and_then(Value::as_u64)
            .unwrap_or(default)
            .max(min),
    )
}

fn threshold(v: &Value, field: &str, default: u32) -> u32 {
    v.get(field)
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(default)
        .max(1)
}

/// A port field: a number, or the name of one of the container's ports; mapped to the
/// pod's host port.
fn port(
    v: Option<&Value>,
    container: &Value,
    host_ports: &BTreeMap<u16, u16>,
) -> Result<u16, String> {
    let container_port = match v {
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .ok_or_else(|| format!("invalid port {n}"))?,
        Some(Value::String(s)) => match s.parse::<u16>() {
            Ok(n) => n,
            Err(_) => container
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|p| p.get("name").and_then(Value::as_str) == Some(s))
                .and_then(|p| p.get("containerPort").and_then(Value::as_u64))
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| {
                    format!(
                        "couldn't find port {s} in container {}",
                        container
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                    )
                })?,
        },
        _ => return Err("probe port is missing".into()),
    };
    Ok(ports::host_port_for(host_ports, container_port))
}

/// The container's probe of `kind`, if it has one.
pub(crate) fn parse(
    kind: Kind,
    container: &Value,
    host_ports: &BTreeMap<u16, u16>,
) -> Option<Probe> {
    let p = container.get(kind.field())?;
    if !p.is_object() {
        return None;
    }
    let action = if let Some(h) = p.get("httpGet") {
        match port(h.get("port"), container, host_ports) {
            Ok(port) => {
                let path = h.get("path").and_then(Value::as_str).unwrap_or("/");
                let path = if path.starts_with('/') {
                    path.to_string()
                } else {
                    format!("/{path}")
                };
                Action::Http {
                    https: h
                        .get("scheme")
                        .and_then(Value::as_str)
                        .is_some_and(|s| s.eq_ignore_ascii_case("HTTPS")),
                    host: h
                        .get("host")
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .unwrap_or(LOCAL_IP)
                        .to_string(),
                    port,
                    path,
                    headers: h
                        .get("httpHeaders")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|hh| {
                            Some((
                                hh.get("name")?.as_str()?.to_string(),
                                hh.get("value")
                                    .and_then(Value::as_str)
                                    .unwrap_or_default()
                                    .to_string(),
                            ))
                        })
                        .collect(),
                }
            }
            Err(e) => Action::Unsupported(e),
        }
    } else if let Some(t) = p.get("tcpSocket") {
        match port(t.get("port"), container, host_ports) {
            Ok(port) => Action::Tcp {
                host: t
                    .get("host")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .unwrap_or(LOCAL_IP)
                    .to_string(),
                port,
            },
            Err(e) => Action::Unsupported(e),
        }
    } else if let Some(e) = p.get("exec") {
        Action::Exec {
            argv: e
                .get("command")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect(),
        }
    } else if p.get("grpc").is_some() {
        Action::Unsupported(
            "gRPC probes are not supported by ferry's runtime; use httpGet, tcpSocket or exec"
                .into(),
        )
    } else {
        return None;
    };
    // Liveness and startup probes must have successThreshold 1.
    let success_threshold = match kind {
        Kind::Readiness => threshold(p, "successThreshold", 1),
        _ => 1,
    };
    Some(Probe {
        action,
        initial_delay: secs(p, "initialDelaySeconds", 0, 0),
        period: secs(p, "periodSeconds", 10, 1),
        timeout: secs(p, "timeoutSeconds", 1, 1),
        success_threshold,
        failure_threshold: threshold(p, "failureThreshold", 3),
        grace: p
            .get("terminationGracePeriodSeconds")
            .and_then(Value::as_u64)
            .map(Duration::from_secs),
    })
}

/// What an exec probe runs in: the container's rootfs, working directory, env and user.
#[derive(Clone, Debug, Default)]
pub(crate) struct ExecContext {
    pub rootfs: PathBuf,
    pub cwd: PathBuf,
    pub env: BTreeMap<String, String>,
    pub run_as: RunAs,
    pub as_root: bool,
    /// For a container: its runtime and id, the probe then runs through `runc exec`.
    pub container: Option<(ferry_container::Runtime, String)>,
}

/// Runs a probe once: `Ok` on success, `Err(message)` as Kubernetes words it.
pub(crate) async fn check(
    action: &Action,
    timeout: Duration,
    ctx: &ExecContext,
) -> Result<(), String> {
    match action {
        Action::Http {
            https,
            host,
            port,
            path,
            headers,
        } => {
            if *https {
                https_get(host, *port, path, headers, timeout).await
            } else {
                http_get(host, *port, path, headers, timeout).await
            }
        }
        Action::Tcp { host, port } => {
            match tokio::time::timeout(timeout, TcpStream::connect((host.as_str(), *port))).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!(
                    "dial tcp {host}:{port}: connect: {}",
                    io_message(&e)
                )),
                Err(_) => Err(format!("dial tcp {host}:{port}: i/o timeout")),
            }
        }
        Action::Exec { argv } => exec(argv, timeout, ctx).await,
        Action::Unsupported(msg) => Err(msg.clone()),
    }
}

/// An I/O error as Go prints it (`connection refused`), without Rust's `(os error N)`.
fn io_message(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_lowercase().chain(c).collect(),
        None => s,
    }
}

async fn http_get(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<(), String> {
    let url = format!("http://{host}:{port}{path}");
    let attempt = async {
        let mut stream = TcpStream::connect((host, port)).await.map_err(|e| {
            format!(
                "Get {url:?}: dial tcp {host}:{port}: connect: {}",
                io_message(&e)
            )
        })?;
        let mut req = format!("GET {path} HTTP/1.1\r\n");
        let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        if !has("host") {
            req.push_str(&format!("Host: {host}:{port}\r\n"));
        }
        if !has("user-agent") {
            req.push_str("User-Agent: kube-probe/1.33\r\n");
        }
        if !has("accept") {
            req.push_str("Accept: */*\r\n");
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("Connection: close\r\n\r\n");
        stream
            .write_all(req.as_bytes())
            .await
            .map_err(|e| format!("Get {url:?}: {}", io_message(&e)))?;
        let mut head = Vec::with_capacity(256);
        let mut buf = [0u8; 256];
        while !head.windows(2).any(|w| w == b"\r\n") {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| format!("Get {url:?}: {}", io_message(&e)))?;
            if n == 0 {
                return Err(format!("Get {url:?}: EOF"));
            }
            head.extend_from_slice(&buf[..n]);
            if head.len() > 8192 {
                break;
            }
        }
        let line = String::from_utf8_lossy(&head);
        let code: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("Get {url:?}: malformed HTTP response"))?;
        if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("HTTP probe failed with statuscode: {code}"))
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "Get {url:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
    }
}

/// HTTPS probes skip certificate verification, as the kubelet's do.
async fn https_get(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<(), String> {
    static CLIENT: OnceLock<Option<reqwest::Client>> = OnceLock::new();
    let url = format!("https://{host}:{port}{path}");
    let client = CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .tls_danger_accept_invalid_certs(true)
                .pool_max_idle_per_host(0)
                .user_agent("kube-probe/1.33")
                .build()
                .ok()
        })
        .as_ref()
        .ok_or_else(|| format!("Get {url:?}: cannot create an HTTPS client"))?;
    let mut req = client.get(&url).timeout(timeout);
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    match req.send().await {
        Ok(resp) if (200..400).contains(&resp.status().as_u16()) => Ok(()),
        Ok(resp) => Err(format!(
            "HTTP probe failed with statuscode: {}",
            resp.status().as_u16()
        )),
        Err(e) if e.is_timeout() => Err(format!(
            "Get {url:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
        Err(e) => Err(format!("Get {url:?}: {e}")),
    }
}

async fn exec(argv: &[String], timeout: Duration, ctx: &ExecContext) -> Result<(), String> {
    let Some(argv0) = argv.first() else {
        return Err("exec probe has no command".into());
    };
    if let Some((rt, id)) = &ctx.container {
        let opts = ferry_container::ExecOptions::default();
        return match tokio::time::timeout(timeout, rt.exec(id, argv, &opts)).await {
            Ok(Ok(out)) if out.code == 0 => Ok(()),
            Ok(Ok(out)) => {
                let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&out.stderr));
                let text = text.trim();
                if text.is_empty() {
                    Err(format!("command {argv:?} exited with {}", out.code))
                } else {
                    Err(text.chars().take(1024).collect())
                }
            }
            Ok(Err(e)) => Err(format!("exec {argv0:?} in container {id}: {e}")),
            Err(_) => Err(format!("command {:?} timed out", argv.join(" "))),
        };
    }
    let program = resolve_program(
        argv0,
        &ctx.rootfs,
        &ctx.cwd,
        ctx.env.get("PATH").map(String::as_str),
    )?;
    let mut cmd = tokio::process::Command::new(&program);
    cmd.arg0(argv0)
        .args(&argv[1..])
        .env_clear()
        .envs(&ctx.env)
        .current_dir(if ctx.cwd.is_dir() {
            ctx.cwd.as_path()
        } else {
            Path::new("/")
        })
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    if ctx.as_root {
        if let Some(g) = ctx.run_as.gid {
            cmd.gid(g);
        }
        if let Some(u) = ctx.run_as.uid {
            cmd.uid(u);
        }
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("exec {argv0:?}: {}", io_message(&e)))?;
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            let text = text.trim();
            let code = out.status.code().unwrap_or(-1);
            if text.is_empty() {
                Err(format!("command {argv:?} exited with {code}"))
            } else {
                Err(text.chars().take(1024).collect())
            }
        }
        Ok(Err(e)) => Err(format!("exec {argv0:?}: {}", io_message(&e))),
        Err(_) => Err(format!("command {:?} timed out", argv.join(" "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_every_timing_field_and_named_ports() {
        let c = json!({"name": "web", "ports": [{"name": "http", "containerPort": 8080}],
            "livenessProbe": {"httpGet": {"path": "healthz", "port": "http",
                "httpHeaders": [{"name": "X-Probe", "value": "1"}]},
                "initialDelaySeconds": 2, "periodSeconds": 3, "timeoutSeconds": 4,
                "successThreshold": 5, "failureThreshold": 6, "terminationGracePeriodSeconds": 7},
            "readinessProbe": {"tcpSocket": {"port": 8080}, "successThreshold": 2},
            "startupProbe": {"exec": {"command": ["true"]}}});
        let mut hp = BTreeMap::new();
        hp.insert(8080, 31000);
        let l = parse(Kind::Liveness, &c, &hp).unwrap();
        assert_eq!(
            l,
            Probe {
                action: Action::Http {
                    https: false,
                    host: "127.0.0.1".into(),
                    port: 31000,
                    path: "/healthz".into(),
                    headers: vec![("X-Probe".into(), "1".into())],
                },
                initial_delay: Duration::from_secs(2),
                period: Duration::from_secs(3),
                timeout: Duration::from_secs(4),
                success_threshold: 1,
                failure_threshold: 6,
                grace: Some(Duration::from_secs(7)),
            }
        );
        let r = parse(Kind::Readiness, &c, &hp).unwrap();
        assert_eq!(
            r.action,
            Action::Tcp {
                host: "127.0.0.1".into(),
                port: 31000
            }
        );
        assert_eq!(
            (
                r.period,
                r.timeout,
                r.success_threshold,
                r.failure_threshold
            ),
            (Duration::from_secs(10), Duration::from_secs(1), 2, 3)
        );
        assert!(matches!(
            parse(Kind::Startup, &c, &hp).unwrap().action,
            Action::Exec { .. }
        ));
        assert!(parse(Kind::Startup, &json!({"name": "x"}), &hp).is_none());
    }

    #[tokio::test]
    async fn http_and_tcp_failures_read_as_kubernetes_writes_them() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let ctx = ExecContext::default();
        let http = Action::Http {
            https: false,
            host: "127.0.0.1".into(),
            port,
            path: "/healthz".into(),
            headers: vec![],
        };
        let err = check(&http, Duration::from_secs(1), &ctx)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            format!(
                "Get \"http://127.0.0.1:{port}/healthz\": dial tcp 127.0.0.1:{port}: connect: connection refused"
            )
        );
        let tcp = Action::Tcp {
            host: "127.0.0.1".into(),
            port,
        };
        let err = check(&tcp, Duration::from_secs(1), &ctx).await.unwrap_err();
        assert_eq!(
            err,
            format!("dial tcp 127.0.0.1:{port}: connect: connection refused")
        );

        let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = server.local_addr().unwrap().port();
        tokio::spawn(async move {
            for status in ["200 OK", "503 Service Unavailable"] {
                let (mut s, _) = server.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let http = Action::Http {
            https: false,
            host: "127.0.0.1".into(),
            port,
            path: "/".into(),
            headers: vec![],
        };
        assert_eq!(check(&http, Duration::from_secs(1), &ctx).await, Ok(()));
        assert_eq!(
            check(&http, Duration::from_secs(1), &ctx)
                .await
                .unwrap_err(),
            "HTTP probe failed with statuscode: 503"
        );
    }

    #[tokio::test]
    async fn exec_probes_use_the_container_env_and_time_out() {
        let dir = tempfile::tempdir().unwrap();
        let mut env = BTreeMap::new();
        env.insert("MODE".to_string(), "ok".to_string());
        env.insert(
            "PATH".to_string(),
            std::env::var("PATH").unwrap_or_default(),
        );
        let ctx = ExecContext {
            rootfs: dir.path().to_path_buf(),
            cwd: dir.path().to_path_buf(),
            env,
            ..ExecContext::default()
        };
        let ok = Action::Exec {
            argv: vec!["sh".into(), "-c".into(), "test \"$MODE\" = ok".into()],
        };
        assert_eq!(check(&ok, Duration::from_secs(2), &ctx).await, Ok(()));
        let bad = Action::Exec {
            argv: vec!["sh".into(), "-c".into(), "echo not ready; exit 1".into()],
        };
        assert_eq!(
            check(&bad, Duration::from_secs(2), &ctx).await.unwrap_err(),
            "not ready"
        );
        let slow = Action::Exec {
            argv: vec!["sleep".into(), "5".into()],
        };
        assert_eq!(
            check(&slow, Duration::from_secs(1), &ctx)
                .await
                .unwrap_err(),
            "command \"sleep 5\" timed out"
        );
    }
}
