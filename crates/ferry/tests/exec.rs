//! `ferry exec` end to end: the real binary and daemon, a pod run as host processes
//! (process isolation) and one run through runc (container isolation, skipped with the
//! reason printed where the test is not root or runc or a static busybox is missing).

mod util;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use util::{Daemon, ferry_command, serial};

const BUSYBOX: &str = "/bin/busybox";

fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not running as root".into());
    }
    let runc = ["/usr/sbin/runc", "/usr/bin/runc", "/sbin/runc"];
    if !runc.iter().any(|p| Path::new(p).is_file()) {
        return Some("runc is not installed (Debian package runc)".into());
    }
    let head = std::fs::read(BUSYBOX).unwrap_or_default();
    if head.is_empty() || head.windows(7).take(8192).any(|w| w == b"ld-linu") {
        return Some(format!(
            "{BUSYBOX} is missing or not static (Debian package busybox-static)"
        ));
    }
    None
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `ferry ARGS` with `input` on its standard input.
fn ferry_with_stdin(d: &Daemon, args: &[&str], input: &str) -> Output {
    let mut child = ferry_command(d.home(), args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `POST path` with the daemon's bearer token and a JSON body: status and body.
fn post(d: &Daemon, path: &str, body: &str) -> (u16, Value) {
    let token = std::fs::read_to_string(d.home().join("token")).unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        d.port,
        token.trim(),
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer to POST {path}: {text:?}"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let v = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body:?}"));
    (status, v)
}

/// Applies `yaml` from a file in the daemon's home.
fn apply(d: &Daemon, name: &str, yaml: &str) {
    let file = d.home().join(name);
    std::fs::write(&file, yaml).unwrap();
    d.ok(&["apply", "-f", file.to_str().unwrap()]);
}

/// The name of the one running pod whose name starts with `prefix`.
fn running_pod(d: &Daemon, prefix: &str) -> String {
    d.eventually(&format!("a running {prefix} pod"), 60, || {
        let v: Value = serde_json::from_str(&d.ok(&["get", "pods", "-o", "json"])).ok()?;
        let items = v.get("items").and_then(Value::as_array)?;
        items.iter().find_map(|p| {
            let name = p.pointer("/metadata/name")?.as_str()?;
            let running = p.pointer("/status/phase")?.as_str()? == "Running"
                && p.pointer("/status/containerStatuses")?
                    .as_array()?
                    .iter()
                    .all(|c| c.pointer("/state/running").is_some());
            (name.starts_with(prefix) && running).then(|| name.to_string())
        })
    })
}

#[test]
fn exec_in_process_isolation_sees_the_pods_env_and_workdir_and_exits_with_the_commands_code() {
    let _serial = serial();
    let d = Daemon::start(&["--addr", "127.0.0.1:0"]);
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("data.txt"), "from the image\n").unwrap();
    d.ok(&[
        "image",
        "build",
        ctx.path().to_str().unwrap(),
        "--tag",
        "idle:1",
        "--cmd",
        "sleep",
        "--cmd",
        "3600",
    ]);
    apply(
        &d,
        "web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      terminationGracePeriodSeconds: 2\n      containers:\n      - name: app\n        image: idle:1\n        env:\n        - {name: MY_VAR, value: hello-from-the-pod}\n      - name: side\n        image: idle:1\n",
    );
    let pod = running_pod(&d, "web-");

    // The pod's variable, kubectl's default-container note and exit-code message, and
    // the command's exit code as ours.
    let out = d.ferry(&["exec", &pod, "--", "sh", "-c", "echo $MY_VAR; exit 3"]);
    assert_eq!(stdout(&out), "hello-from-the-pod\n", "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Defaulted container \"app\" out of: app, side"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("command terminated with exit code 3"),
        "{}",
        stderr(&out)
    );
    assert_eq!(out.status.code(), Some(3));

    // The working directory is the container's, inside its image; success is silent.
    let out = d.ferry(&["exec", &pod, "-c", "app", "--", "cat", "data.txt"]);
    assert_eq!(stdout(&out), "from the image\n", "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    assert_eq!(out.status.code(), Some(0));
    let out = d.ferry(&[
        "exec",
        &pod,
        "-c",
        "side",
        "--",
        "sh",
        "-c",
        "echo ${MY_VAR:-unset}",
    ]);
    assert_eq!(
        stdout(&out),
        "unset\n",
        "each container has its own environment"
    );

    // Standard input with -i.
    let out = ferry_with_stdin(
        &d,
        &["exec", &pod, "-c", "app", "-i", "--", "tr", "a-z", "A-Z"],
        "piped text\n",
    );
    assert_eq!(stdout(&out), "PIPED TEXT\n", "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(0));

    // What cannot be done: exit 2, kubectl's words.
    let out = d.ferry(&["exec", &pod, "-c", "nope", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!("container nope is not valid for pod {pod}")),
        "{}",
        stderr(&out)
    );
    let out = d.ferry(&["exec", "no-such-pod", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("pods \"no-such-pod\" not found"),
        "{}",
        stderr(&out)
    );
    let out = d.ferry(&[
        "exec",
        &pod,
        "-c",
        "app",
        "--timeout",
        "1s",
        "--",
        "sh",
        "-c",
        "echo started; sleep 60",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out), "started\n");
    assert!(stderr(&out).contains("--timeout"), "{}", stderr(&out));

    // A pod that has completed: kubectl's refusal.
    apply(
        &d,
        "done.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: done\nspec:\n  restartPolicy: Never\n  containers:\n  - name: once\n    image: idle:1\n    command: ['true']\n",
    );
    d.eventually("the pod done to succeed", 30, || {
        let v: Value = serde_json::from_str(&d.ok(&["get", "pod", "done", "-o", "json"])).ok()?;
        (v.pointer("/status/phase")?.as_str()? == "Succeeded").then_some(())
    });
    let out = d.ferry(&["exec", "done", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(
            "cannot exec into a container in a completed pod; current phase is Succeeded"
        ),
        "{}",
        stderr(&out)
    );

    // The API itself: JSON in, JSON out, with the bearer token.
    let path = format!("/api/v1/namespaces/default/pods/{pod}/exec");
    let (code, v) = post(
        &d,
        &path,
        r#"{"container": "app", "command": ["sh", "-c", "cat; echo oops >&2; exit 7"], "stdin": "in\n", "timeoutSeconds": 20}"#,
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["stdout"], "in\n");
    assert_eq!(v["stderr"], "oops\n");
    assert_eq!(v["exitCode"], 7);
    let (code, v) = post(
        &d,
        "/api/v1/namespaces/default/pods/gone/exec",
        r#"{"command": ["true"]}"#,
    );
    assert_eq!(code, 404, "{v}");
    let (code, v) = post(&d, &path, r#"{"command": []}"#);
    assert_eq!(code, 400, "{v}");
    assert_eq!(
        v["error"],
        "you must specify at least one command for the container"
    );
}

#[test]
fn exec_in_container_isolation_enters_the_container() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let _serial = serial();
    let mut d = Daemon::new();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(ctx.path().join("bin")).unwrap();
    std::fs::create_dir_all(ctx.path().join("etc")).unwrap();
    std::fs::copy(BUSYBOX, ctx.path().join("bin/busybox")).unwrap();
    for a in ["sh", "hostname", "sleep", "cat", "tr", "test", "id", "pwd"] {
        std::os::unix::fs::symlink("busybox", ctx.path().join("bin").join(a)).unwrap();
    }
    std::fs::write(
        ctx.path().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n",
    )
    .unwrap();
    d.ok(&[
        "image",
        "build",
        ctx.path().to_str().unwrap(),
        "--tag",
        "box:1",
        "--cmd",
        "sh",
    ]);
    d.spawn(&["--addr", "127.0.0.1:0", "--isolation", "container"]);
    apply(
        &d,
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: boxed\nspec:\n  terminationGracePeriodSeconds: 2\n  containers:\n  - name: app\n    image: box:1\n    workingDir: /etc\n    command: [sleep, '3600']\n    env:\n    - {name: MY_VAR, value: inside}\n",
    );
    let pod = running_pod(&d, "boxed");

    let out = d.ferry(&["exec", &pod, "--", "hostname"]);
    assert_eq!(stdout(&out), "boxed\n", "{}{}", stderr(&out), d.log_tail());
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stderr(&out), "", "one container: no default-container note");
    // The container's PID namespace: its pid 1 is the pod's command.
    let out = d.ferry(&["exec", &pod, "--", "cat", "/proc/1/cmdline"]);
    assert_eq!(stdout(&out), "sleep\u{0}3600\u{0}", "{}", stderr(&out));
    // Its files, not the host's; its environment and working directory.
    let out = d.ferry(&[
        "exec",
        &pod,
        "--",
        "sh",
        "-c",
        "cat /etc/passwd; test -e /usr/bin || echo no-usr; echo $MY_VAR; pwd; exit 4",
    ]);
    assert_eq!(
        stdout(&out),
        "root:x:0:0:root:/root:/bin/sh\nno-usr\ninside\n/etc\n",
        "{}",
        stderr(&out)
    );
    assert_eq!(out.status.code(), Some(4));
    assert!(stderr(&out).contains("command terminated with exit code 4"));

    let out = ferry_with_stdin(
        &d,
        &["exec", &pod, "-i", "--", "tr", "a-z", "A-Z"],
        "into the box\n",
    );
    assert_eq!(stdout(&out), "INTO THE BOX\n", "{}", stderr(&out));

    let out = d.ferry(&["exec", &pod, "-c", "nope", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("container nope is not valid for pod boxed"),
        "{}",
        stderr(&out)
    );
    let out = d.ferry(&["exec", &pod, "--", "no-such-program"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no-such-program"), "{}", stderr(&out));

    // A command out of time is killed inside the container too.
    let out = d.ferry(&["exec", &pod, "--timeout", "1s", "--", "sleep", "300"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let left = d.ferry(&[
        "exec",
        &pod,
        "--",
        "sh",
        "-c",
        "cat /proc/[0-9]*/cmdline | tr '\\0' ' '",
    ]);
    assert!(!stdout(&left).contains("sleep 300"), "{}", stdout(&left));
    d.down();
}
