//! What the user sees when the program a format needs is not installed.

use std::ffi::OsString;

use ferry_render::{Error, RenderOptions, render_with};

use crate::util::{Tree, fixture, toolchain};

#[test]
fn kustomize_without_kustomize_or_kubectl_on_path_names_both_and_the_dir() {
    let empty = Tree::new();
    let path: OsString = empty.path().into();
    let tools = toolchain(&[("PATH", &path)]);
    let dir = fixture("kustomize/overlays/prod");
    let err = render_with(&dir, &RenderOptions::default(), &tools).unwrap_err();
    assert!(matches!(err, Error::ToolMissing { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "neither kustomize nor kubectl is on PATH; install one to render {}",
            dir.display()
        )),
        "{msg}"
    );
}

#[test]
fn kustomize_overrides_pointing_nowhere_count_as_missing_and_are_named() {
    let tools = toolchain(&[
        ("PATH", &"/usr/bin:/bin".into()),
        ("FERRY_KUSTOMIZE", &"/nonexistent/kustomize".into()),
        ("FERRY_KUBECTL", &"/nonexistent/kubectl".into()),
    ]);
    let err = render_with(
        &fixture("kustomize/legacy"),
        &RenderOptions::default(),
        &tools,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("neither kustomize nor kubectl is on PATH"),
        "{err}"
    );
    assert!(
        err.contains("FERRY_KUSTOMIZE=/nonexistent/kustomize is not an executable file"),
        "{err}"
    );
    assert!(
        err.contains("FERRY_KUBECTL=/nonexistent/kubectl is not an executable file"),
        "{err}"
    );
}

#[test]
fn helm_without_helm_on_path_names_the_chart() {
    let t = Tree::new();
    t.write(
        "chart/Chart.yaml",
        "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    );
    let empty: OsString = t.path().join("chart/templates").into();
    let tools = toolchain(&[("PATH", &empty)]);
    let dir = t.path().join("chart");
    let err = render_with(&dir, &RenderOptions::default(), &tools).unwrap_err();
    assert!(matches!(err, Error::ToolMissing { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!(
            "helm is not on PATH; install helm to render the chart at {}",
            dir.display()
        )),
        "{err}"
    );
}

#[test]
fn helm_override_to_a_nonexistent_path_is_missing_and_named() {
    let t = Tree::new();
    t.write(
        "chart/Chart.yaml",
        "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    );
    let tools = toolchain(&[("FERRY_HELM", &"/nonexistent/helm".into())]);
    let err = render_with(&t.path().join("chart"), &RenderOptions::default(), &tools)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("helm is not on PATH"), "{err}");
    assert!(
        err.contains("FERRY_HELM=/nonexistent/helm is not an executable file"),
        "{err}"
    );
}

#[test]
fn plain_sources_need_no_tools_at_all() {
    let tools = toolchain(&[]);
    let out = render_with(&fixture("plain/small"), &RenderOptions::default(), &tools).unwrap();
    assert_eq!(
        out.objects.len(),
        1,
        "non-recursive by default: only namespace.yaml"
    );
}
