//! A render stays inside its repository: kustomizations, symlinks and Helm value
//! files that lead outside the root are refused before any tool runs, and legitimate
//! paths inside it (an overlay's `../../base`) still render.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use ferry_render::{Error, Format, HelmOptions, RenderOptions, render, render_with};

use crate::util::{Tree, config_map, kubectl, names, toolchain};

/// Options confined to `root`.
fn confined(root: &Path) -> RenderOptions {
    RenderOptions {
        confine_to: Some(root.to_path_buf()),
        ..RenderOptions::default()
    }
}

/// A directory outside the repository holding a ConfigMap (what an attacker wants
/// rendered), and the path to it from `from` inside `repo`, as a relative path.
fn outside(repo: &Tree, from: &str) -> (tempfile::TempDir, String) {
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("cm.yaml"), config_map("stolen")).unwrap();
    std::fs::write(
        out.path().join("kustomization.yaml"),
        "resources:\n  - cm.yaml\n",
    )
    .unwrap();
    std::fs::write(out.path().join("secret.txt"), "hunter2\n").unwrap();
    let depth = from.split('/').filter(|p| !p.is_empty()).count();
    let up = "../".repeat(depth + repo.path().components().count() - 1);
    let rel = format!(
        "{up}{}",
        out.path().to_str().unwrap().trim_start_matches('/')
    );
    (out, rel)
}

fn outside_root(err: &Error) -> String {
    assert!(
        matches!(err, Error::OutsideRoot { .. }),
        "expected OutsideRoot, got {err:?}"
    );
    err.to_string()
}

#[test]
fn regression_kustomize_resources_outside_the_repository_are_refused() {
    let repo = Tree::new();
    let (_out, rel) = outside(&repo, "apps/web");
    repo.write(
        "apps/web/kustomization.yaml",
        &format!("resources:\n  - {rel}\n"),
    );
    let err = render(&repo.path().join("apps/web"), &confined(repo.path())).unwrap_err();
    let msg = outside_root(&err);
    assert_eq!(
        msg,
        format!(
            "apps/web/kustomization.yaml: resources[0] {rel:?} points outside the repository; only paths inside it can be rendered"
        )
    );
}

#[test]
fn an_absolute_resource_path_is_refused() {
    let repo = Tree::new();
    let (out, _) = outside(&repo, "");
    repo.write(
        "kustomization.yaml",
        &format!("resources:\n  - {}\n", out.path().display()),
    );
    let msg = outside_root(&render(repo.path(), &confined(repo.path())).unwrap_err());
    assert!(
        msg.starts_with("kustomization.yaml: resources[0] "),
        "{msg}"
    );
}

#[test]
fn a_symlinked_directory_leading_outside_is_refused() {
    let repo = Tree::new();
    let (out, _) = outside(&repo, "");
    repo.write("app/kustomization.yaml", "resources:\n  - vendored\n");
    std::os::unix::fs::symlink(out.path(), repo.path().join("app/vendored")).unwrap();
    let msg = outside_root(&render(&repo.path().join("app"), &confined(repo.path())).unwrap_err());
    assert!(
        msg.starts_with("app/kustomization.yaml: resources[0] \"vendored\" points outside"),
        "{msg}"
    );
}

#[test]
fn an_unreferenced_symlink_leading_outside_is_refused_too() {
    // As Argo CD refuses a repository with out-of-bounds symlinks: kustomize may
    // follow one through a path that does not look like it.
    let repo = Tree::new();
    let (out, _) = outside(&repo, "");
    repo.write("app/kustomization.yaml", "resources:\n  - cm.yaml\n")
        .write("app/cm.yaml", &config_map("ok"));
    std::os::unix::fs::symlink(out.path().join("secret.txt"), repo.path().join("app/x.txt"))
        .unwrap();
    let msg = outside_root(&render(&repo.path().join("app"), &confined(repo.path())).unwrap_err());
    assert!(msg.starts_with("app/x.txt: symlink "), "{msg}");
}

#[test]
fn a_config_map_generator_file_outside_is_refused() {
    let repo = Tree::new();
    let (_out, rel) = outside(&repo, "app");
    repo.write(
        "app/kustomization.yaml",
        &format!(
            "configMapGenerator:\n  - name: leak\n    files:\n      - local.txt\n      - password={rel}/secret.txt\n"
        ),
    )
    .write("app/local.txt", "fine\n");
    let msg = outside_root(&render(&repo.path().join("app"), &confined(repo.path())).unwrap_err());
    assert!(
        msg.starts_with(&format!(
            "app/kustomization.yaml: configMapGenerator[0].files[1] \"{rel}/secret.txt\" points outside"
        )),
        "{msg}"
    );
}

#[test]
fn every_field_that_names_a_path_is_checked() {
    // `REL` is replaced by the path from `app/` to a directory outside the tree.
    for (body, field) in [
        ("components:\n  - REL\n", "components[0]"),
        ("bases:\n  - REL\n", "bases[0]"),
        ("patches:\n  - path: REL/cm.yaml\n", "patches[0].path"),
        (
            "patchesStrategicMerge:\n  - REL/cm.yaml\n",
            "patchesStrategicMerge[0]",
        ),
        (
            "patchesJson6902:\n  - path: REL/cm.yaml\n    target: {kind: ConfigMap, name: x}\n",
            "patchesJson6902[0].path",
        ),
        (
            "secretGenerator:\n  - name: s\n    envs:\n      - REL/secret.txt\n",
            "secretGenerator[0].envs[0]",
        ),
        (
            "secretGenerator:\n  - name: s\n    env: REL/secret.txt\n",
            "secretGenerator[0].env",
        ),
        ("crds:\n  - REL/cm.yaml\n", "crds[0]"),
        ("generators:\n  - REL\n", "generators[0]"),
        ("transformers:\n  - REL\n", "transformers[0]"),
        ("validators:\n  - REL\n", "validators[0]"),
        ("configurations:\n  - REL/cm.yaml\n", "configurations[0]"),
        (
            "replacements:\n  - path: REL/cm.yaml\n",
            "replacements[0].path",
        ),
        ("openapi:\n  path: REL/cm.yaml\n", "openapi.path"),
        ("helmGlobals:\n  chartHome: REL\n", "helmGlobals.chartHome"),
        (
            "helmCharts:\n  - name: c\n    valuesFile: REL/cm.yaml\n",
            "helmCharts[0].valuesFile",
        ),
        (
            "helmCharts:\n  - name: c\n    additionalValuesFiles: [REL/cm.yaml]\n",
            "helmCharts[0].additionalValuesFiles[0]",
        ),
    ] {
        let t = Tree::new();
        let (_out, rel) = outside(&t, "app");
        t.write("app/kustomization.yaml", &body.replace("REL", &rel));
        let err = render(&t.path().join("app"), &confined(t.path())).unwrap_err();
        let msg = outside_root(&err);
        assert!(
            msg.starts_with(&format!("app/kustomization.yaml: {field} ")),
            "{field}: {msg}"
        );
    }
}

#[test]
fn a_nested_kustomization_whose_base_escapes_is_refused_naming_the_base() {
    let repo = Tree::new();
    let (_out, rel) = outside(&repo, "base");
    repo.write(
        "overlays/prod/kustomization.yaml",
        "resources:\n  - ../../base\n",
    )
    .write(
        "base/kustomization.yaml",
        &format!("resources:\n  - cm.yaml\n  - {rel}\n"),
    )
    .write("base/cm.yaml", &config_map("base"));
    let err = render(&repo.path().join("overlays/prod"), &confined(repo.path())).unwrap_err();
    let msg = outside_root(&err);
    assert!(
        msg.starts_with(&format!("base/kustomization.yaml: resources[1] {rel:?}")),
        "{msg}"
    );
}

#[test]
fn file_urls_and_remote_bases_are_refused() {
    for (entry, says) in [
        ("file:///etc/passwd", "a file:// URL"),
        ("FILE://localhost/etc", "a file:// URL"),
        (
            "https://github.com/org/repo//deploy?ref=v1",
            "a remote base",
        ),
        ("git@github.com:org/repo.git", "a remote base"),
        ("github.com/org/repo/deploy?ref=main", "a remote base"),
        ("example.com/org/repo", "a remote base"),
    ] {
        let repo = Tree::new();
        repo.write(
            "kustomization.yaml",
            &format!("resources:\n  - {entry:?}\n"),
        );
        let err = render(repo.path(), &confined(repo.path())).unwrap_err();
        assert!(matches!(err, Error::Remote { .. }), "{entry}: {err:?}");
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!(
                "kustomization.yaml: resources[0] {entry:?} is {says}"
            )),
            "{msg}"
        );
    }
}

#[test]
fn an_overlay_reaching_its_base_inside_the_repository_still_renders() {
    if kubectl().is_none() {
        eprintln!("SKIPPED: kubectl is not on PATH");
        return;
    }
    let repo = Tree::new();
    repo.write(
        "overlays/prod/kustomization.yaml",
        "namePrefix: prod-\nresources:\n  - ../../base\nconfigMapGenerator:\n  - name: env\n    files:\n      - region=region.txt\n",
    )
    .write("overlays/prod/region.txt", "eu\n")
    .write("base/kustomization.yaml", "resources:\n  - cm.yaml\n")
    .write("base/cm.yaml", &config_map("web"));
    // A symlink inside the repository is fine.
    std::os::unix::fs::symlink("../base", repo.path().join("overlays/base-link")).unwrap();
    let out = render(&repo.path().join("overlays/prod"), &confined(repo.path())).unwrap();
    assert_eq!(out.format, Format::Kustomize);
    let mut got = names(&out.objects);
    got.sort();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].starts_with("ConfigMap//prod-env-"), "{got:?}");
    assert_eq!(got[1], "ConfigMap//prod-web");

    // Without a root, the render is confined to the source itself: `../../base` is
    // then outside, and the message says so.
    let err = render(
        &repo.path().join("overlays/prod"),
        &RenderOptions::default(),
    )
    .unwrap_err();
    let msg = outside_root(&err);
    assert!(
        msg.starts_with("kustomization.yaml: resources[0] \"../../base\" points outside"),
        "{msg}"
    );
}

#[test]
fn plain_directories_refuse_symlinks_leading_outside() {
    let repo = Tree::new();
    let (out, _) = outside(&repo, "");
    repo.write("app/own.yaml", &config_map("own"))
        .write("shared/shared.yaml", &config_map("shared"));
    std::os::unix::fs::symlink("../shared", repo.path().join("app/shared")).unwrap();
    let opts = RenderOptions {
        format: Format::Plain,
        directory: ferry_render::DirectoryOptions {
            recurse: true,
            ..Default::default()
        },
        ..confined(repo.path())
    };
    let ok = render(&repo.path().join("app"), &opts).unwrap();
    assert_eq!(
        names(&ok.objects),
        ["ConfigMap//own", "ConfigMap//shared"],
        "a link inside the repository is followed"
    );

    std::os::unix::fs::symlink(
        out.path().join("cm.yaml"),
        repo.path().join("app/stolen.yaml"),
    )
    .unwrap();
    let msg = outside_root(&render(&repo.path().join("app"), &opts).unwrap_err());
    assert!(msg.starts_with("app/stolen.yaml: symlink "), "{msg}");
    std::fs::remove_file(repo.path().join("app/stolen.yaml")).unwrap();

    std::os::unix::fs::symlink(out.path(), repo.path().join("app/dir")).unwrap();
    let msg = outside_root(&render(&repo.path().join("app"), &opts).unwrap_err());
    assert!(msg.starts_with("app/dir: symlink "), "{msg}");
}

#[test]
fn a_source_path_outside_the_root_is_refused() {
    let repo = Tree::new();
    let (out, _) = outside(&repo, "");
    let err = render(out.path(), &confined(repo.path())).unwrap_err();
    let msg = outside_root(&err);
    assert!(msg.contains("source path"), "{msg}");
}

/// A chart named `web` in `repo`, and a toolchain whose helm does not exist: the
/// checks come before helm is looked for.
fn chart(repo: &Tree) -> (PathBuf, ferry_render::Toolchain) {
    repo.write(
        "charts/web/Chart.yaml",
        "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    )
    .write("charts/web/values-prod.yaml", "replicaCount: 3\n");
    let missing: OsString = repo.path().join("no-helm").into();
    (
        repo.path().join("charts/web"),
        toolchain(&[("FERRY_HELM", &missing)]),
    )
}

#[test]
fn helm_value_files_and_chart_symlinks_must_stay_inside() {
    let repo = Tree::new();
    let (out, rel) = outside(&repo, "charts/web");
    let (dir, tools) = chart(&repo);
    for (file, escapes) in [
        (format!("{rel}/secret.txt"), true),
        ("/etc/passwd".to_string(), true),
        ("../../charts/web/values-prod.yaml".to_string(), false),
    ] {
        let opts = RenderOptions {
            helm: HelmOptions {
                value_files: vec!["values-prod.yaml".into(), file.clone()],
                ..HelmOptions::default()
            },
            ..confined(repo.path())
        };
        let err = render_with(&dir, &opts, &tools).unwrap_err();
        if escapes {
            let msg = outside_root(&err);
            assert_eq!(
                msg,
                format!(
                    "charts/web: helm.valueFiles[1] {file:?} points outside the repository; only paths inside it can be rendered"
                )
            );
        } else {
            assert!(matches!(err, Error::ToolMissing { .. }), "{err:?}");
        }
    }
    let opts = RenderOptions {
        helm: HelmOptions {
            value_files: vec!["file:///etc/passwd".into()],
            ..HelmOptions::default()
        },
        ..confined(repo.path())
    };
    let err = render_with(&dir, &opts, &tools).unwrap_err();
    assert!(matches!(err, Error::Remote { .. }), "{err:?}");

    std::os::unix::fs::symlink(out.path(), dir.join("templates")).unwrap();
    let err = render_with(&dir, &confined(repo.path()), &tools).unwrap_err();
    let msg = outside_root(&err);
    assert!(msg.starts_with("charts/web/templates: symlink "), "{msg}");
}
