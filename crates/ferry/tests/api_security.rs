//! The daemon's API is no unauthenticated shell for whoever reaches its port: other
//! users of the host, and web pages in a browser (cross-site requests, DNS
//! rebinding). Each test is named after the hole it pins, and runs against a real
//! `ferry serve` over real HTTP.

use std::io::{BufRead as _, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

mod util;

use util::{Daemon, run_ferry, serial};

/// A Pod that would run `id` as the daemon's user: what the probe applied.
const POD: &str = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"csrf-probe","namespace":"default"},"spec":{"containers":[{"name":"c","image":"probe:1","command":["id"]}]}}"#;

/// One HTTP/1.1 request to `127.0.0.1:port` with exactly these header lines (no
/// others but Content-Length and Connection); status and body.
fn raw(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Connection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    ));
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer to {method} {path}: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn token(home: &Path) -> String {
    std::fs::read_to_string(home.join("token"))
        .unwrap()
        .trim()
        .to_string()
}

/// The `error` of a JSON error answer.
fn error_of(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    v["error"].as_str().unwrap_or_default().to_string()
}

/// Whether the probe's Pod exists (asked with the token).
fn probe_pod_exists(d: &Daemon) -> bool {
    let host = format!("127.0.0.1:{}", d.port);
    let auth = format!("Bearer {}", token(d.home()));
    let (code, body) = raw(
        d.port,
        "GET",
        "/api/v1/namespaces/default/pods/csrf-probe",
        &[("Host", &host), ("Authorization", &auth)],
        "",
    );
    assert!(code == 200 || code == 404, "{code} {body}");
    code == 200
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn csrf_the_browser_style_apply_from_another_site_is_refused_and_runs_nothing() {
    let _s = serial();
    let d = Daemon::start(&["--addr", "127.0.0.1:0"]);
    let port = d.port.to_string();
    let evil_host = format!("evil.example:{port}");
    let own_host = format!("127.0.0.1:{port}");

    // The probe's request, byte for byte: a page on evil.example re-pointed at
    // 127.0.0.1 posting text/plain (no preflight).
    let (code, body) = raw(
        d.port,
        "POST",
        "/api/v1/apply",
        &[
            ("Host", &evil_host),
            ("Origin", "http://evil.example"),
            ("Content-Type", "text/plain"),
        ],
        POD,
    );
    assert!(code == 403 || code == 401, "{code} {body}");
    // The same form posted straight at 127.0.0.1 (plain CSRF): the Origin gives it away.
    let (code, body) = raw(
        d.port,
        "POST",
        "/api/v1/apply",
        &[
            ("Host", &own_host),
            ("Origin", "http://evil.example"),
            ("Content-Type", "text/plain"),
        ],
        POD,
    );
    assert_eq!(code, 403, "{body}");
    assert!(error_of(&body).contains("origin"), "{body}");
    // With no Origin and no token: 401.
    let (code, body) = raw(
        d.port,
        "POST",
        "/api/v1/apply",
        &[("Host", &own_host), ("Content-Type", "text/plain")],
        POD,
    );
    assert_eq!(code, 401, "{body}");
    // Even with the token, a type any page can send without a preflight is refused.
    let auth = format!("Bearer {}", token(d.home()));
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let (code, body) = raw(
            d.port,
            "POST",
            "/api/v1/apply",
            &[
                ("Host", &own_host),
                ("Authorization", &auth),
                ("Content-Type", ct),
            ],
            POD,
        );
        assert_eq!(code, 415, "{ct}: {body}");
        assert!(error_of(&body).contains("application/json"), "{body}");
    }
    // A body without a type too.
    let (code, body) = raw(
        d.port,
        "POST",
        "/api/v1/apply",
        &[("Host", &own_host), ("Authorization", &auth)],
        POD,
    );
    assert_eq!(code, 415, "{body}");
    assert!(!probe_pod_exists(&d), "a refused request created the Pod");

    // The daemon's own client, for comparison, gets through (JSON, token, own Host).
    let (code, body) = raw(
        d.port,
        "POST",
        "/api/v1/apply?dryRun=true",
        &[
            ("Host", &own_host),
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        POD,
    );
    assert_eq!(code, 200, "{body}");
    assert!(!probe_pod_exists(&d), "a dry run created the Pod");
}

#[test]
fn dns_rebinding_a_foreign_host_is_refused_even_with_the_token() {
    let _s = serial();
    let d = Daemon::start(&["--addr", "127.0.0.1:0"]);
    let auth = format!("Bearer {}", token(d.home()));
    let evil_host = format!("evil.example:{}", d.port);
    let (code, body) = raw(
        d.port,
        "GET",
        "/api/v1/apps",
        &[("Host", &evil_host), ("Authorization", &auth)],
        "",
    );
    assert!(code == 403 || code == 421, "{code} {body}");
    let msg = error_of(&body);
    assert!(
        msg.contains("evil.example") && msg.contains("Host"),
        "{msg}"
    );
    let (code, body) = raw(
        d.port,
        "POST",
        "/api/v1/apply",
        &[
            ("Host", &evil_host),
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        POD,
    );
    assert!(code == 403 || code == 421, "{code} {body}");
    assert!(!probe_pod_exists(&d), "a rebinding request created the Pod");
    // The names a local client uses are fine.
    for host in [
        format!("127.0.0.1:{}", d.port),
        format!("localhost:{}", d.port),
        format!("[::1]:{}", d.port),
    ] {
        let (code, body) = raw(
            d.port,
            "GET",
            "/api/v1/apps",
            &[("Host", &host), ("Authorization", &auth)],
            "",
        );
        assert_eq!(code, 200, "{host}: {body}");
    }
}

#[test]
fn loopback_without_a_token_is_401_and_does_nothing() {
    let _s = serial();
    let d = Daemon::start(&["--addr", "127.0.0.1:0"]);
    let host = format!("127.0.0.1:{}", d.port);
    for (method, path) in [
        ("GET", "/api/v1/apps"),
        ("GET", "/api/v1/namespaces/default/pods"),
        ("GET", "/api/v1/info"),
        ("GET", "/metrics"),
        ("POST", "/api/v1/down"),
    ] {
        let (code, body) = raw(d.port, method, path, &[("Host", &host)], "");
        assert_eq!(code, 401, "{method} {path}: {body}");
        let msg = error_of(&body);
        assert!(
            msg.contains("FERRY_HOME/token") && msg.contains("FERRY_TOKEN"),
            "{msg}"
        );
        assert!(!msg.contains("beyond loopback"), "{msg}");
    }
    // Refused `down` left the daemon running; liveness needs no token.
    assert_eq!(
        raw(d.port, "GET", "/healthz", &[("Host", &host)], ""),
        (200, "ok\n".to_string())
    );
    d.ok(&["get", "pods"]);
}

#[test]
fn a_lowercase_bearer_scheme_is_taken() {
    let _s = serial();
    let d = Daemon::start(&["--addr", "127.0.0.1:0"]);
    let host = format!("127.0.0.1:{}", d.port);
    let t = token(d.home());
    for auth in [format!("bearer {t}"), format!("BEARER {t}")] {
        let (code, body) = raw(
            d.port,
            "GET",
            "/api/v1/apps",
            &[("Host", &host), ("Authorization", &auth)],
            "",
        );
        assert_eq!(code, 200, "{auth}: {body}");
    }
    // What the daemon says about itself is what daemon.json records.
    let (code, body) = raw(
        d.port,
        "GET",
        "/api/v1/info",
        &[("Host", &host), ("Authorization", &format!("bearer {t}"))],
        "",
    );
    assert_eq!(code, 200, "{body}");
    let info: Value = serde_json::from_str(&body).unwrap();
    let recorded: Value =
        serde_json::from_str(&std::fs::read_to_string(d.home().join("daemon.json")).unwrap())
            .unwrap();
    for k in ["id", "home", "pid", "addr", "version"] {
        assert_eq!(info[k], recorded[k], "{k}: {info} vs {recorded}");
    }
    assert_eq!(info["id"].as_str().map(str::len), Some(32), "{info}");
    assert_eq!(info["pid"].as_u64(), d.pid().map(u64::from));
}

#[test]
fn down_for_a_home_whose_daemon_is_gone_exits_2_and_spares_another_homes_daemon() {
    let _s = serial();
    // The home's daemon dies (kill -9: daemon.json stays behind) and another home's
    // daemon takes its port.
    let mut gone = Daemon::start(&["--addr", "127.0.0.1:0"]);
    let port = gone.port;
    let gone_pid = gone.pid().unwrap();
    gone.kill9();
    let decoy = Daemon::start(&["--addr", &format!("127.0.0.1:{port}")]);
    let decoy_pid = decoy.pid().unwrap();

    // Any listener on the old default address must not be reached either.
    let default = std::net::TcpListener::bind("127.0.0.1:7171").ok();
    if let Some(l) = &default {
        l.set_nonblocking(true).unwrap();
    }

    let out = run_ferry(gone.home(), &["down"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "no daemon is running for FERRY_HOME {}",
            gone.home().display()
        )) && err.contains(&format!("pid {gone_pid}"))
            && err.contains("ferry serve"),
        "{err}"
    );
    // A home that never had a daemon: the same, without falling back to 127.0.0.1:7171.
    let empty = tempfile::tempdir().unwrap();
    for args in [&["down"][..], &["get", "pods"]] {
        let out = run_ferry(empty.path(), args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(&format!(
                "no daemon is running for FERRY_HOME {}; start one with 'ferry serve'",
                empty.path().display()
            )),
            "{err}"
        );
    }
    if let Some(l) = &default {
        assert!(
            matches!(l.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "the CLI connected to 127.0.0.1:7171"
        );
    }

    // A daemon.json that names the decoy (its address, its pid, even its token in
    // this home) but another instance: `down` checks the instance and leaves it.
    let copied = tempfile::tempdir().unwrap();
    std::fs::write(
        copied.path().join("daemon.json"),
        serde_json::json!({
            "id": "0123456789abcdef0123456789abcdef",
            "home": copied.path(),
            "addr": format!("127.0.0.1:{port}"),
            "pid": decoy_pid,
            "version": "0",
        })
        .to_string(),
    )
    .unwrap();
    std::fs::copy(decoy.home().join("token"), copied.path().join("token")).unwrap();
    let out = run_ferry(copied.path(), &["down"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("not the one") && err.contains("not stopping it"),
        "{err}"
    );

    // The decoy lived through all of it.
    assert!(
        std::fs::metadata(format!("/proc/{decoy_pid}")).is_ok(),
        "the decoy daemon was stopped\n{}",
        decoy.log_tail()
    );
    decoy.ok(&["get", "pods"]);
    let out = run_ferry(decoy.home(), &["down"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_daemon_that_dies_under_a_streaming_call_is_reported_in_words() {
    let _s = serial();
    let mut d = Daemon::start(&["--addr", "127.0.0.1:0"]);
    let cm = d.home().join("cm.yaml");
    std::fs::write(
        &cm,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  k: v\n",
    )
    .unwrap();
    d.ok(&["apply", "-f", cm.to_str().unwrap()]);
    let mut watch = util::ferry_command(d.home(), &["get", "configmaps", "-w", "-o", "name"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(20));
    assert!(matches!(first, Ok(Ok(_))), "the watch printed {first:?}");
    d.kill9();
    let out = watch.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("the ferry daemon at http://127.0.0.1:{}", d.port))
            && err.contains("went away")
            && err.contains("ferry serve"),
        "{err}"
    );
    for raw_word in [
        "hyper",
        "reqwest",
        "error sending request",
        "error decoding",
    ] {
        assert!(!err.contains(raw_word), "{err}");
    }
    // And the next call knows the daemon is gone.
    let out = d.ferry(&["get", "pods"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no daemon is running for FERRY_HOME"), "{err}");
}
