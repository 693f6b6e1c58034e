//! Hostile input through the real `ferry` binary and daemon: object names can never
//! reach outside FERRY_HOME. Each test is named after the hole it pins.

use std::path::Path;

use serde_json::Value;

mod util;

use util::{Daemon, git, serial};

/// A directory name no one else uses, beside the daemon's home, where a `../../../`
/// name would have landed (`logs/NS/../../../NAME` is the home's parent's `NAME`).
fn victim(d: &Daemon) -> (String, std::path::PathBuf) {
    let name = format!(
        "victim-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let outside = d.home().parent().unwrap().join(&name);
    (name, outside)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `ferry apply -f FILE` with `text`; the run's output.
fn apply(d: &Daemon, file: &str, text: &str) -> std::process::Output {
    let path = d.home().join(file);
    std::fs::write(&path, text).unwrap();
    d.ferry(&["apply", "-f", path.to_str().unwrap()])
}

fn pod(ns: &str, name: &str, container: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name:?}\n  namespace: {ns:?}\nspec:\n  containers:\n    - name: {container:?}\n      image: web:1\n      command: [sleep, \"600\"]\n"
    )
}

const SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

#[test]
fn regression_pod_namespace_and_container_names_with_dotdot_are_refused_by_ferry_apply() {
    let _s = serial();
    let d = Daemon::start(&["--addr", "127.0.0.1:0"]);
    let (name, outside) = victim(&d);
    let bad = format!("../../../{name}");

    let out = apply(&d, "pod.yaml", &pod("default", &bad, "c"));
    assert!(!out.status.success(), "applied: {}", d.log_tail());
    assert!(
        stderr(&out).contains(&format!(
            "Pod \"{bad}\" is invalid: metadata.name: Invalid value: \"{bad}\": {SUBDOMAIN}"
        )),
        "{}",
        stderr(&out)
    );

    let out = apply(
        &d,
        "ns.yaml",
        &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: \"../../../{name}\"\n"),
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Namespace \"../../../victim-")
            && stderr(&out).contains("is invalid: metadata.name: Invalid value: ")
            && stderr(&out).contains("a lowercase RFC 1123 label"),
        "{}",
        stderr(&out)
    );
    let out = apply(
        &d,
        "in-ns.yaml",
        &pod(&format!("../../../{name}"), "web", "c"),
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("metadata.namespace: Invalid value: \"../../../victim-"),
        "{}",
        stderr(&out)
    );

    let out = apply(&d, "container.yaml", &pod("default", "web", "../../x"));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "Pod \"web\" is invalid: spec.containers[0].name: Invalid value: \"../../x\": a lowercase RFC 1123 label"
        ),
        "{}",
        stderr(&out)
    );

    let pods: Value = serde_json::from_str(&d.ok(&["get", "pods", "-A", "-o", "json"])).unwrap();
    assert_eq!(pods["items"].as_array().map(Vec::len), Some(0), "{pods}");
    assert!(!outside.exists(), "{} was created", outside.display());
    assert!(
        !d.home()
            .parent()
            .unwrap()
            .join("x")
            .join("current.log")
            .exists()
    );
}

#[test]
fn regression_deleting_an_object_by_a_dotdot_name_is_a_clear_error_not_405() {
    let _s = serial();
    let d = Daemon::start(&["--addr", "127.0.0.1:0"]);
    for target in ["pod/../../../victim2", "deploy/a/b"] {
        let out = d.ferry(&["delete", target]);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(!err.contains("405"), "{target}: {err}");
        assert!(
            err.contains("is not a valid name") && err.contains("Invalid value"),
            "{target}: {err}"
        );
    }
    let out = d.ferry(&["get", "pod", "../x"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is not a valid name"),
        "{}",
        stderr(&out)
    );
}

/// A Git repository at `dir` with `manifests/` holding `files`, committed.
fn repo(dir: &Path, files: &[(&str, &str)]) {
    std::fs::create_dir_all(dir.join("manifests")).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join("manifests").join(name), text).unwrap();
    }
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "manifests"]);
}

#[test]
fn regression_pod_named_dotdot_in_git_is_a_comparison_error_and_nothing_is_applied() {
    let _s = serial();
    let d = Daemon::start(&["--addr", "127.0.0.1:0", "--reconciliation", "1s"]);
    let (name, outside) = victim(&d);
    let gitops = d.home().join("gitops");
    let config =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: \"1\"\n";
    repo(
        &gitops,
        &[
            ("config.yaml", config),
            (
                "pod.yaml",
                &format!(
                    "# a hostile name\n{}",
                    pod("shop", &format!("../../../{name}"), "c")
                ),
            ),
        ],
    );
    d.create_app("shop", &gitops, true);
    let app = d.eventually("a ComparisonError on the app", 30, || {
        let app = d.app("shop");
        let conds = app["status"]["conditions"].as_array()?.clone();
        conds
            .iter()
            .any(|c| c["type"] == "ComparisonError")
            .then_some(app)
    });
    let message = app["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "ComparisonError")
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    for want in [
        "manifests/pod.yaml:1: ",
        "metadata.name: Invalid value: \"../../../victim-",
        "a lowercase RFC 1123 subdomain",
    ] {
        assert!(message.contains(want), "{want:?} in {message}");
    }
    let out = d.ferry(&["app", "sync", "shop"]);
    assert!(!out.status.success());
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(said.contains("manifests/pod.yaml:1"), "{said}");
    // Nothing of the app was applied: not even its valid ConfigMap, nor its namespace.
    let out = d.ferry(&["get", "configmap", "settings", "-n", "shop"]);
    assert!(!out.status.success(), "the ConfigMap was applied");
    assert!(!outside.exists(), "{} was created", outside.display());
}

#[test]
fn regression_an_application_named_dotdot_is_refused() {
    let _s = serial();
    let d = Daemon::start(&["--addr", "127.0.0.1:0"]);
    let file = d.home().join("app.yaml");
    std::fs::write(
        &file,
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: ../../x\nspec:\n  project: default\n  source:\n    repoURL: /nowhere\n    path: manifests\n  destination:\n    name: in-cluster\n    namespace: shop\n",
    )
    .unwrap();
    let out = d.ferry(&["app", "create", "-f", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out)
            .contains("metadata.name: Invalid value: \"../../x\": a lowercase RFC 1123 subdomain"),
        "{}",
        stderr(&out)
    );
    let apps = d.ok(&["app", "list", "-o", "json"]);
    assert!(!apps.contains("../../x"), "{apps}");
}
