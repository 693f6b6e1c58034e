//! Plain directories: file selection as Argo CD's `spec.source.directory`, parsing,
//! sources, duplicates and errors.

use ferry_render::{DirectoryOptions, Error, Format, RenderOptions, render};

use crate::util::{Tree, config_map, fixture, names, origins};

fn plain(recurse: bool, include: Option<&str>, exclude: Option<&str>) -> RenderOptions {
    RenderOptions {
        format: Format::Auto,
        directory: DirectoryOptions {
            recurse,
            include: include.map(str::to_string),
            exclude: exclude.map(str::to_string),
        },
        ..RenderOptions::default()
    }
}

/// A tree with manifests at the top, one and two levels down.
fn nested() -> Tree {
    let t = Tree::new();
    t.write("top.yaml", &config_map("top"))
        .write("b/two.yml", &config_map("b-two"))
        .write("a/one.yaml", &config_map("a-one"))
        .write(
            "a/deep/three.json",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a-deep-three"}}"#,
        )
        .write("z.yaml", &config_map("z"));
    t
}

#[test]
fn without_recurse_only_top_level_files_are_read() {
    let t = nested();
    let out = render(t.path(), &plain(false, None, None)).unwrap();
    assert_eq!(out.format, Format::Plain);
    assert_eq!(names(&out.objects), ["ConfigMap//top", "ConfigMap//z"]);
}

#[test]
fn with_recurse_files_come_in_walk_order_named_relative_to_the_root() {
    let t = nested();
    let out = render(t.path(), &plain(true, None, None)).unwrap();
    assert_eq!(
        origins(&out.objects),
        [
            "a/deep/three.json:1",
            "a/one.yaml:1",
            "b/two.yml:1",
            "top.yaml:1",
            "z.yaml:1"
        ]
    );
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
}

#[test]
fn include_glob_with_braces_selects_files_by_relative_path() {
    let t = nested();
    let out = render(t.path(), &plain(true, Some("{top.yaml,a/*.yaml}"), None)).unwrap();
    // a/deep holds only JSON, so `a/*.yaml` takes a/one.yaml alone.
    assert_eq!(names(&out.objects), ["ConfigMap//a-one", "ConfigMap//top"]);

    // `*` crosses `/` as in Argo CD: `a/*` reaches into a/deep.
    let out = render(t.path(), &plain(true, Some("a/*"), None)).unwrap();
    assert_eq!(
        names(&out.objects),
        ["ConfigMap//a-deep-three", "ConfigMap//a-one"]
    );
}

#[test]
fn exclude_glob_removes_files_and_wins_over_include() {
    let t = nested();
    let out = render(t.path(), &plain(true, None, Some("{a/*,z.yaml}"))).unwrap();
    assert_eq!(names(&out.objects), ["ConfigMap//b-two", "ConfigMap//top"]);

    let out = render(t.path(), &plain(true, Some("*.yaml"), Some("top.yaml"))).unwrap();
    assert_eq!(names(&out.objects), ["ConfigMap//a-one", "ConfigMap//z"]);
}

#[test]
fn an_invalid_glob_is_an_error_naming_the_option() {
    let t = nested();
    let err = render(t.path(), &plain(true, Some("{a,b"), None)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Glob {
                option: "include",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("directory.include \"{a,b\""),
        "{err}"
    );
}

#[test]
fn hidden_directories_and_files_are_skipped() {
    let t = Tree::new();
    t.write("app.yaml", &config_map("app"))
        .write(".git/config.yaml", &config_map("from-git"))
        .write(".github/workflows/ci.yml", "on: push\njobs: {}\n")
        .write(".hidden.yaml", &config_map("hidden"))
        .write("sub/.secret.json", "not even json");
    let out = render(t.path(), &plain(true, None, None)).unwrap();
    assert_eq!(names(&out.objects), ["ConfigMap//app"]);
}

#[test]
fn json_yaml_and_lists_are_all_read_and_other_files_ignored() {
    let out = render(&fixture("plain/small"), &plain(true, None, None)).unwrap();
    assert_eq!(
        names(&out.objects),
        [
            "ConfigMap/shop/web-config",
            "Secret/shop/web-secret",
            "Deployment/shop/web",
            "Service/shop/web",
            "Namespace//shop",
        ]
    );
    // Both List items point at the List's document; a YAML document at its first
    // line (a leading comment counts) or its `---`.
    assert_eq!(
        origins(&out.objects),
        [
            "apps/config.json:1",
            "apps/config.json:1",
            "apps/web.yaml:1",
            "apps/web.yaml:24",
            "namespace.yaml:1",
        ]
    );
    let src = out.objects[3].source().unwrap();
    assert_eq!((&*src.file, src.doc), ("apps/web.yaml", 1));
}

#[test]
fn empty_and_comment_only_files_give_no_objects() {
    let t = Tree::new();
    t.write("empty.yaml", "")
        .write("empty.json", "")
        .write("comments.yaml", "# nothing here yet\n")
        .write("separators.yml", "---\n---\n...\n")
        .write("real.yaml", &format!("---\n{}---\n", config_map("real")));
    let out = render(t.path(), &plain(false, None, None)).unwrap();
    assert_eq!(names(&out.objects), ["ConfigMap//real"]);
    assert_eq!(origins(&out.objects), ["real.yaml:1"]);
}

#[test]
fn regression_empty_directory_renders_nothing() {
    let t = Tree::new();
    let out = render(t.path(), &plain(true, None, None)).unwrap();
    assert!(out.objects.is_empty());
}

#[test]
fn duplicate_objects_name_both_files_and_lines() {
    let t = Tree::new();
    t.write(
        "a.yaml",
        &format!("{}---\n{}", config_map("one"), config_map("shared")),
    )
    .write("sub/b.yaml", &format!("# again\n{}", config_map("shared")));
    let err = render(t.path(), &plain(true, None, None)).unwrap_err();
    assert!(
        matches!(&err, Error::Manifest(e) if matches!(**e, ferry_core::Error::Duplicate { .. })),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "duplicate object /ConfigMap:/shared: defined at a.yaml:7 and again at sub/b.yaml:1"
    );
}

#[test]
fn objects_in_different_namespaces_or_with_generate_name_are_not_duplicates() {
    let t = Tree::new();
    t.write(
        "a.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: b\n",
    )
    .write(
        "jobs.yaml",
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  generateName: migrate-\n---\napiVersion: batch/v1\nkind: Job\nmetadata:\n  generateName: migrate-\n",
    );
    let out = render(t.path(), &plain(false, None, None)).unwrap();
    assert_eq!(out.objects.len(), 4);
}

#[test]
fn a_malformed_file_names_its_relative_path_and_line() {
    let t = Tree::new();
    t.write("ok.yaml", &config_map("ok")).write(
        "apps/broken.yaml",
        &format!(
            "{}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [oops\n",
            config_map("fine")
        ),
    );
    let err = render(t.path(), &plain(true, None, None))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("apps/broken.yaml:"), "{err}");
    let line: usize = err.split(':').nth(1).unwrap().parse().unwrap();
    assert!((10..=11).contains(&line), "{err}");
    assert!(err.contains("document 1"), "{err}");
}

#[test]
fn a_document_that_is_not_an_object_names_file_and_line() {
    let t = Tree::new();
    t.write("values.yaml", "replicaCount: 1\nimage: web\n");
    let err = render(t.path(), &plain(false, None, None))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("values.yaml:1"), "{err}");
    assert!(err.contains("apiVersion"), "{err}");
}

#[test]
fn the_first_bad_file_in_walk_order_is_reported_whatever_the_thread_timing() {
    let t = Tree::new();
    for i in 0..64 {
        t.write(&format!("f{i:03}.yaml"), &config_map(&format!("cm-{i}")));
    }
    t.write("f010.yaml", "kind: [")
        .write("f050.yaml", "kind: [");
    for _ in 0..5 {
        let err = render(t.path(), &plain(false, None, None))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("f010.yaml:"), "{err}");
    }
}

#[test]
fn many_files_keep_file_then_document_order() {
    let t = Tree::new();
    let mut expected = Vec::new();
    for i in 0..120 {
        let docs: Vec<String> = (0..3).map(|d| config_map(&format!("cm-{i}-{d}"))).collect();
        t.write(&format!("d{}/f{i:03}.yaml", i % 7), &docs.join("---\n"));
    }
    for dir in 0..7 {
        for i in (0..120).filter(|i| i % 7 == dir) {
            for d in 0..3 {
                expected.push(format!("ConfigMap//cm-{i}-{d}"));
            }
        }
    }
    let out = render(t.path(), &plain(true, None, None)).unwrap();
    assert_eq!(names(&out.objects), expected);
}

#[test]
fn a_single_file_renders_as_plain_with_its_name_as_given() {
    let path = fixture("plain/small/apps/web.yaml");
    let out = render(&path, &RenderOptions::default()).unwrap();
    assert_eq!(out.format, Format::Plain);
    assert_eq!(out.objects.len(), 2);
    assert_eq!(out.objects[0].origin(), format!("{}:1", path.display()));
}

#[test]
fn a_missing_source_path_is_an_error_naming_it() {
    let t = Tree::new();
    let missing = t.path().join("no-such-app");
    let err = render(&missing, &RenderOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no-such-app"), "{err}");
}

#[test]
fn jsonnet_files_are_skipped_with_a_warning() {
    let t = Tree::new();
    t.write("app.yaml", &config_map("app"))
        .write("lib/app.jsonnet", "{ apiVersion: 'v1' }");
    let out = render(t.path(), &plain(true, None, None)).unwrap();
    assert_eq!(out.objects.len(), 1);
    assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
    assert!(
        out.warnings[0].starts_with("lib/app.jsonnet: skipped"),
        "{:?}",
        out.warnings
    );
}

#[test]
fn helm_options_on_a_plain_source_are_reported_as_ignored() {
    let t = Tree::new();
    t.write("app.yaml", &config_map("app"));
    let mut opts = plain(false, None, None);
    opts.helm.release_name = Some("web".into());
    let out = render(t.path(), &opts).unwrap();
    assert_eq!(out.warnings.len(), 1);
    assert!(
        out.warnings[0].contains("helm options are ignored"),
        "{:?}",
        out.warnings
    );
}

#[test]
fn snapshot_of_a_small_plain_render() {
    let out = render(&fixture("plain/small"), &plain(true, None, None)).unwrap();
    let yaml = ferry_core::parse::to_yaml_stream(out.objects.iter().map(|o| o.value()));
    insta::assert_snapshot!("small_plain_render", yaml);
}
