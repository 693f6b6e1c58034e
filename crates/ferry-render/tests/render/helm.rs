//! Helm charts through a fake `helm` script that records its arguments in a
//! ConfigMap, proving what ferry passes (there is no real helm on this machine).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferry_render::{Error, Format, HelmOptions, RenderOptions, Toolchain, render_with};

use crate::util::{Tree, toolchain};

/// Prints a ConfigMap whose `data.argNN` are its arguments and whose
/// `data.lastValues` is the content of the last `-f` file; logs to stderr.
const FAKE_HELM: &str = r#"#!/bin/sh
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: helm-args\ndata:\n'
i=0
prev=
last=
for a in "$@"; do
  printf '  arg%02d: '"'"'%s'"'"'\n' "$i" "$a"
  i=$((i+1))
  if [ "$prev" = "-f" ]; then last=$a; fi
  prev=$a
done
if [ -n "$last" ] && [ -f "$last" ]; then
  printf '  lastValues: |\n'
  sed 's/^/    /' "$last"
fi
printf -- '---\n# Source: web/crds/crd.yaml\napiVersion: v1\nkind: Secret\nmetadata:\n  name: from-chart\n'
echo 'WARNING: fake helm says hello' >&2
"#;

/// A chart directory named `web` and a toolchain whose helm is the fake.
fn chart_and_fake(script: &str) -> (Tree, PathBuf, Toolchain) {
    let t = Tree::new();
    t.write(
        "charts/web/Chart.yaml",
        "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    )
    .write("charts/web/values.yaml", "replicaCount: 1\n")
    .write("charts/web/values-prod.yaml", "replicaCount: 3\n");
    let helm: OsString = t.script("bin/helm", script).into();
    let tools = toolchain(&[("FERRY_HELM", &helm)]);
    let dir = t.path().join("charts/web");
    (t, dir, tools)
}

fn args_of(out: &ferry_render::Rendered) -> Vec<String> {
    let data = out.objects[0].value()["data"].as_object().unwrap();
    let mut args: Vec<(&String, String)> = data
        .iter()
        .filter(|(k, _)| k.starts_with("arg"))
        .map(|(k, v)| (k, v.as_str().unwrap().to_string()))
        .collect();
    args.sort();
    args.into_iter().map(|(_, v)| v).collect()
}

fn helm_opts(helm: HelmOptions) -> RenderOptions {
    RenderOptions {
        helm,
        ..RenderOptions::default()
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn release_namespace_values_and_set_are_passed_to_helm_template() {
    let (_t, dir, tools) = chart_and_fake(FAKE_HELM);
    let opts = helm_opts(HelmOptions {
        release_name: Some("shop".into()),
        namespace: Some("shop-prod".into()),
        value_files: vec!["values-prod.yaml".into(), s(&dir.join("values.yaml"))],
        values: Some("image:\n  tag: 2.3.1\n".into()),
        set: vec![
            ("replicaCount".into(), "5".into()),
            ("ingress.enabled".into(), "true".into()),
        ],
        skip_crds: false,
    });
    let out = render_with(&dir, &opts, &tools).unwrap();
    assert_eq!(out.format, Format::Helm, "detected from Chart.yaml");
    let args = args_of(&out);
    let inline = &args[10];
    assert!(
        inline.contains("ferry-helm-values-") && inline.ends_with(".yaml"),
        "{args:?}"
    );
    assert_eq!(
        args,
        [
            "template".to_string(),
            "shop".into(),
            s(&dir),
            "--namespace".into(),
            "shop-prod".into(),
            "-f".into(),
            s(&dir.join("values-prod.yaml")),
            "-f".into(),
            s(&dir.join("values.yaml")),
            "-f".into(),
            inline.clone(),
            "--set".into(),
            "replicaCount=5".into(),
            "--set".into(),
            "ingress.enabled=true".into(),
            "--include-crds".into(),
        ]
    );
    assert_eq!(
        out.objects[0].value()["data"]["lastValues"],
        "image:\n  tag: 2.3.1\n"
    );
    assert!(
        !Path::new(inline).exists(),
        "the inline values file is removed afterwards"
    );
    assert_eq!(out.objects[1].name(), "from-chart");
    assert!(
        out.objects[1]
            .source()
            .unwrap()
            .file
            .starts_with("helm template shop ")
    );
    assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
    assert!(
        out.warnings[0].ends_with("WARNING: fake helm says hello"),
        "{:?}",
        out.warnings
    );
}

#[test]
fn release_name_defaults_to_the_directory_and_skip_crds_is_passed() {
    let (_t, dir, tools) = chart_and_fake(FAKE_HELM);
    let opts = RenderOptions {
        format: Format::Helm,
        helm: HelmOptions {
            skip_crds: true,
            ..HelmOptions::default()
        },
        ..RenderOptions::default()
    };
    let out = render_with(&dir, &opts, &tools).unwrap();
    assert_eq!(args_of(&out), ["template", "web", &s(&dir), "--skip-crds"]);
}

#[test]
fn a_failing_helm_reports_its_stderr_and_exit_status() {
    let (_t, dir, tools) = chart_and_fake(
        "#!/bin/sh\necho 'Error: template: web/templates/deploy.yaml:7: unclosed action' >&2\nexit 1\n",
    );
    let err = render_with(&dir, &RenderOptions::default(), &tools).unwrap_err();
    assert!(matches!(err, Error::ToolFailed { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with("`helm template web "), "{msg}");
    assert!(msg.contains("(exit status: 1)"), "{msg}");
    assert!(msg.contains("deploy.yaml:7: unclosed action"), "{msg}");
}

#[test]
fn a_hanging_helm_is_killed_at_the_timeout() {
    let (_t, dir, tools) = chart_and_fake("#!/bin/sh\nsleep 30\n");
    let tools = tools.with_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let err = render_with(&dir, &RenderOptions::default(), &tools).unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        err.to_string().contains("did not finish within 0.3s"),
        "{err}"
    );
}

#[test]
fn helm_output_that_is_not_manifests_names_the_command() {
    let (_t, dir, tools) = chart_and_fake("#!/bin/sh\necho 'replicaCount: 1'\n");
    let err = render_with(&dir, &RenderOptions::default(), &tools)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("helm template web "), "{err}");
}
