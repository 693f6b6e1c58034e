//! Kustomize sources rendered through the real `kubectl kustomize`, compared with
//! what kubectl itself prints.

use std::ffi::OsString;
use std::process::Command;

use ferry_render::{Error, Format, RenderOptions, render, render_with};

use crate::util::{Tree, by_key, fixture, kubectl, names, toolchain};

/// The overlay's objects as `kubectl kustomize` prints them, parsed.
fn kubectl_kustomize(dir: &std::path::Path) -> Vec<ferry_core::Object> {
    let kubectl = kubectl().expect("kubectl on PATH");
    let out = Command::new(kubectl)
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ferry_core::parse::parse_str(&String::from_utf8(out.stdout).unwrap(), "expected").unwrap()
}

#[test]
fn multi_base_overlay_renders_exactly_what_kubectl_kustomize_prints() {
    if kubectl().is_none() {
        eprintln!("SKIPPED: kubectl is not on PATH");
        return;
    }
    let dir = fixture("kustomize/overlays/prod");
    let opts = RenderOptions {
        confine_to: Some(fixture("kustomize")),
        ..RenderOptions::default()
    };
    let out = render(&dir, &opts).unwrap();
    assert_eq!(out.format, Format::Kustomize);
    let expected = kubectl_kustomize(&dir);
    assert_eq!(by_key(&out.objects), by_key(&expected));

    // And the overlay really did its work: a cheap guard against comparing two
    // equally wrong renders.
    let mut got = names(&out.objects);
    got.sort();
    assert_eq!(got.len(), 5, "{got:?}");
    assert!(
        got.contains(&"Deployment/shop-prod/prod-web".to_string()),
        "{got:?}"
    );
    assert!(
        got.contains(&"Deployment/shop-prod/prod-worker".to_string()),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|n| n.starts_with("ConfigMap/shop-prod/prod-web-env-")),
        "{got:?}"
    );
    let web = out
        .objects
        .iter()
        .find(|o| o.name() == "prod-web" && o.kind() == "Deployment")
        .unwrap();
    let v = web.value();
    assert_eq!(v["spec"]["replicas"], 3, "strategic merge patch");
    assert_eq!(
        v["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example.com/shop/web-prod:2.3.1"
    );
    assert_eq!(v["metadata"]["labels"]["env"], "prod");
    let worker = out
        .objects
        .iter()
        .find(|o| o.name() == "prod-worker")
        .unwrap();
    assert_eq!(worker.value()["spec"]["replicas"], 4, "JSON 6902 patch");
    let src = web.source().unwrap();
    assert!(
        src.file.contains("kustomize") && src.file.ends_with("overlays/prod"),
        "{src}"
    );
}

#[test]
fn deprecation_warnings_on_stderr_become_render_warnings() {
    if kubectl().is_none() {
        eprintln!("SKIPPED: kubectl is not on PATH");
        return;
    }
    let dir = fixture("kustomize/legacy");
    let opts = RenderOptions {
        confine_to: Some(fixture("kustomize")),
        ..RenderOptions::default()
    };
    let out = render(&dir, &opts).unwrap();
    assert_eq!(names(&out.objects), ["Deployment/jobs/worker"]);
    assert!(
        out.warnings
            .iter()
            .any(|w| w.contains("'commonLabels' is deprecated")),
        "{:?}",
        out.warnings
    );
}

#[test]
fn a_broken_kustomization_fails_with_the_tools_stderr_and_status() {
    if kubectl().is_none() {
        eprintln!("SKIPPED: kubectl is not on PATH");
        return;
    }
    let t = Tree::new();
    t.write("kustomization.yaml", "resources:\n  - missing.yaml\n");
    let err = render(t.path(), &RenderOptions::default()).unwrap_err();
    assert!(matches!(err, Error::ToolFailed { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("kustomize"), "{msg}");
    assert!(msg.contains("exit status: 1"), "{msg}");
    assert!(msg.contains("missing.yaml"), "{msg}");
}

#[test]
fn kustomize_is_preferred_to_kubectl_and_called_as_kustomize_build() {
    let t = Tree::new();
    t.write("app/kustomization.yaml", "resources: []\n");
    let fake = t.script(
        "bin/kustomize",
        "#!/bin/sh\nprintf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: args\\ndata:\\n  argv: \"%s\"\\n' \"$*\"\necho 'note from kustomize' >&2\n",
    );
    let bin: OsString = t.path().join("bin").into();
    let tools = toolchain(&[("PATH", &bin), ("FERRY_KUBECTL", &"/nonexistent".into())]);
    assert_eq!(tools.kustomize(), Some(fake.as_path()));
    let dir = t.path().join("app");
    let out = render_with(&dir, &RenderOptions::default(), &tools).unwrap();
    assert_eq!(
        out.objects[0].value()["data"]["argv"],
        format!("build {}", dir.display())
    );
    assert_eq!(
        out.warnings,
        [format!(
            "kustomize build {}: note from kustomize",
            dir.display()
        )]
    );
}

#[test]
fn asking_for_kustomize_on_a_single_file_is_an_error() {
    let path = fixture("plain/small/namespace.yaml");
    let opts = RenderOptions {
        format: Format::Kustomize,
        ..RenderOptions::default()
    };
    let err = render(&path, &opts).unwrap_err().to_string();
    assert!(
        err.contains("namespace.yaml: rendering with kustomize needs a directory"),
        "{err}"
    );
}
