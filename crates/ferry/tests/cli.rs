//! The offline commands as a user runs them: render, diff, health, validate —
//! their output (snapshots), exit codes and error messages.

use std::path::PathBuf;

use assert_cmd::Command;

fn ferry() -> Command {
    let mut cmd = Command::cargo_bin("ferry").expect("ferry binary");
    cmd.env(
        "FERRY_HOME",
        std::env::temp_dir().join("ferry-cli-tests-unused"),
    );
    cmd
}

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn core_fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../ferry-core/tests/fixtures")
        .join(rel)
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().expect("ran ferry");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn render_prints_objects_in_sync_order() {
    let r = run(ferry().arg("render").arg(fixture("app")));
    assert_eq!(r.code, 0, "{}", r.stderr);
    insta::assert_snapshot!("render_app", r.stdout);
}

#[test]
fn render_plan_and_json() {
    let r = run(ferry().arg("render").arg(fixture("app")).arg("--plan"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    insta::assert_snapshot!("render_app_plan", r.stdout);
    let r = run(ferry().args(["render", "-o", "json"]).arg(fixture("app")));
    let list: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    let kinds: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["Job", "ConfigMap", "Service", "Deployment"]);
}

#[test]
fn render_no_recurse_and_exclude() {
    let r = run(ferry()
        .arg("render")
        .arg(fixture("app"))
        .args(["--no-recurse", "-o", "json"]));
    let list: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        3,
        "nested/ left out"
    );
    let r =
        run(ferry()
            .arg("render")
            .arg(fixture("app"))
            .args(["--exclude", "*.json", "-o", "json"]));
    let list: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["kind"] != "ConfigMap")
    );
}

#[test]
fn malformed_yaml_names_file_and_line_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ok.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [b\n",
    )
    .unwrap();
    let r = run(ferry().arg("render").arg(dir.path()));
    assert_eq!(r.code, 2);
    assert!(
        r.stdout.is_empty(),
        "nothing printed on error: {}",
        r.stdout
    );
    assert!(r.stderr.contains("bad.yaml:"), "{}", r.stderr);
    assert!(r.stderr.contains("document 1"), "{}", r.stderr);
}

#[test]
fn duplicate_objects_name_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: same\n";
    std::fs::write(dir.path().join("a.yaml"), cm).unwrap();
    std::fs::write(dir.path().join("b.yaml"), format!("# copy\n{cm}")).unwrap();
    let r = run(ferry().arg("render").arg(dir.path()));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("a.yaml:1") && r.stderr.contains("b.yaml:"),
        "{}",
        r.stderr
    );
}

#[test]
fn kustomize_missing_tool_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kustomization.yaml"), "resources: []\n").unwrap();
    let empty = tempfile::tempdir().unwrap();
    let r = run(ferry()
        .arg("render")
        .arg(dir.path())
        .env("PATH", empty.path()));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("kustomize") && r.stderr.contains("kubectl"),
        "{}",
        r.stderr
    );
}

#[test]
fn diff_reports_each_object_and_exits_1_when_out_of_sync() {
    let r = run(ferry()
        .arg("diff")
        .arg(fixture("app"))
        .arg("--live")
        .arg(fixture("live/cluster.yaml"))
        .args(["-n", "shop"]));
    assert_eq!(r.code, 1, "{}", r.stderr);
    insta::assert_snapshot!("diff_app", r.stdout);
}

#[test]
fn diff_in_sync_exits_0_and_json() {
    let live = fixture("live/cluster.yaml");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("app/web.yaml"), dir.path().join("web.yaml")).unwrap();
    let text = std::fs::read_to_string(dir.path().join("web.yaml"))
        .unwrap()
        .replace("replicas: 2", "replicas: 3");
    std::fs::write(dir.path().join("web.yaml"), text).unwrap();
    // The live list also holds an extraneous ConfigMap: filter it out by giving only two objects.
    let only = tempfile::NamedTempFile::new().unwrap();
    let objs: serde_json::Value = serde_json::from_str(
        &String::from_utf8(
            ferry()
                .args(["render", "-o", "json"])
                .arg(&live)
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap(),
    )
    .unwrap();
    let kept: Vec<_> = objs["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["kind"] != "ConfigMap")
        .cloned()
        .collect();
    std::fs::write(
        only.path(),
        serde_json::json!({"apiVersion": "v1", "kind": "List", "items": kept}).to_string(),
    )
    .unwrap();
    let r = run(ferry()
        .arg("diff")
        .arg(dir.path())
        .arg("--live")
        .arg(only.path())
        .args(["-n", "shop"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = run(ferry()
        .arg("diff")
        .arg(fixture("app"))
        .arg("--live")
        .arg(&live)
        .args(["-n", "shop", "-o", "json"]));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["synced"], false);
    let statuses: Vec<(&str, &str)> = v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["kind"].as_str().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("ConfigMap", "Missing"),
            ("Service", "Synced"),
            ("Deployment", "OutOfSync"),
            ("ConfigMap", "Extraneous")
        ]
    );
}

#[test]
fn diff_ignore_differences_from_an_application() {
    let app = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        app.path(),
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: web\nspec:\n  ignoreDifferences:\n    - group: apps\n      kind: Deployment\n      jsonPointers: [/spec/replicas]\n",
    )
    .unwrap();
    let r = run(ferry()
        .arg("diff")
        .arg(fixture("app/web.yaml"))
        .arg("--live")
        .arg(fixture("live/cluster.yaml"))
        .args(["-n", "shop", "-o", "json", "--ignore-differences"])
        .arg(app.path()));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let deploy = v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "Deployment")
        .unwrap();
    assert_eq!(deploy["status"], "Synced", "{}", r.stdout);
}

#[test]
fn health_table_json_and_exit_codes() {
    let scenario = core_fixture("health/scenario-deployment-imagepullbackoff.yaml");
    let r = run(ferry().arg("health").arg("-f").arg(&scenario));
    assert_eq!(r.code, 1, "Degraded exits 1");
    insta::assert_snapshot!("health_imagepullbackoff", r.stdout);
    let r = run(ferry()
        .arg("health")
        .arg("-f")
        .arg(&scenario)
        .args(["-o", "json"]));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["status"], "Degraded");
    let deploy = &v["resources"][0];
    assert_eq!(deploy["kind"], "Deployment");
    assert!(
        deploy["message"]
            .as_str()
            .unwrap()
            .starts_with("ImagePullBackOff: ")
    );
    // An object without a health check has a null status and does not count.
    let r = run(ferry()
        .arg("health")
        .arg("-f")
        .arg(fixture("live/cluster.yaml"))
        .args(["-o", "json"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["status"], "Healthy");
    let cm = v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "ConfigMap")
        .unwrap();
    assert!(cm["status"].is_null());
}

#[test]
fn health_reads_stdin() {
    let text = std::fs::read_to_string(core_fixture(
        "health/scenario-deployment-imagepullbackoff.yaml",
    ))
    .unwrap();
    let r = run(ferry()
        .args(["health", "-f", "-", "-o", "yaml"])
        .write_stdin(text));
    assert!(r.stdout.starts_with("status: Degraded"), "{}", r.stdout);
}

#[test]
fn validate_warns_on_unsupported_fields_and_exits_0() {
    let r = run(ferry()
        .arg("validate")
        .arg(fixture("../../../../examples/quickstart/application.yaml")));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("1 document checked: 0 errors"),
        "{}",
        r.stdout
    );
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.yaml");
    std::fs::write(
        &app,
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: web\nspec:\n  project: default\n  source:\n    repoURL: https://git.example/web.git\n    path: deploy\n    plugin:\n      name: sops\n  destination:\n    name: local\n    namespace: web\n",
    )
    .unwrap();
    let r = run(ferry().arg("validate").arg(&app));
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stdout
            .contains("app.yaml:1: Application/web: warning: spec.source.plugin: not supported"),
        "{}",
        r.stdout
    );
}

#[test]
fn validate_errors_exit_1_with_paths() {
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("rollout.yaml");
    std::fs::write(
        &ro,
        "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: web\nspec:\n  replicas: three\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers: [{name: web, image: web:1}]\n  strategy:\n    canary:\n      steps:\n        - setWeight: 150\n",
    )
    .unwrap();
    let r = run(ferry().arg("validate").arg(&ro).args(["-o", "json"]));
    assert_eq!(r.code, 1, "{}", r.stdout);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["valid"], false);
    let paths: Vec<&str> = v["documents"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "Error")
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["spec.replicas", "spec.strategy.canary.steps[0].setWeight"],
        "{}",
        r.stdout
    );
}

#[test]
fn validate_malformed_yaml_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: [web\n",
    )
    .unwrap();
    let r = run(ferry().arg("validate").arg(&bad));
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("bad.yaml:4:") || r.stdout.contains("bad.yaml:5:"),
        "{}",
        r.stdout
    );
    let r = run(ferry().arg("validate").arg(dir.path().join("missing.yaml")));
    assert_eq!(
        r.code, 2,
        "a file that cannot be read is an error, not a finding"
    );
}
