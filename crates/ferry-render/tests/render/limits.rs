//! Size limits: a file over the per-file limit, or files over the per-render budget,
//! are refused before they are read; a tool printing without end is cut off at the
//! budget. Big files here are sparse, so the tests cost no disk and no memory.

use std::ffi::OsString;

use ferry_core::parse::{MAX_FILE_BYTES, MAX_RENDER_BYTES};
use ferry_render::{Error, RenderOptions, render, render_with};

use crate::util::{Tree, config_map, toolchain};

/// A file of `len` bytes that takes no disk space (and would be NULs if read).
fn sparse(t: &Tree, rel: &str, len: u64) {
    t.write(rel, "");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(t.path().join(rel))
        .unwrap();
    f.set_len(len).unwrap();
}

#[test]
fn regression_a_manifest_file_over_the_limit_is_refused_before_it_is_read() {
    let t = Tree::new();
    t.write("a.yaml", &config_map("a"));
    sparse(&t, "b-huge.yaml", MAX_FILE_BYTES as u64 + 1);
    sparse(&t, "c-huge.yaml", 60_000_000);
    let err = render(t.path(), &RenderOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(&err, Error::Manifest(e) if matches!(**e, ferry_core::Error::TooLarge { .. })),
        "{msg}"
    );
    assert!(
        msg.starts_with("b-huge.yaml: "),
        "names the first big file: {msg}"
    );
    assert!(
        msg.contains(&MAX_FILE_BYTES.to_string()),
        "names the limit: {msg}"
    );
}

#[test]
fn regression_many_files_each_under_the_limit_are_refused_at_the_render_budget() {
    let t = Tree::new();
    let each = MAX_FILE_BYTES as u64 - 1;
    let fit = (MAX_RENDER_BYTES as u64 / each) as usize;
    for i in 0..=fit {
        sparse(&t, &format!("part-{i:02}.yaml"), each);
    }
    let err = render(t.path(), &RenderOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::OverBudget { .. }), "{msg}");
    assert!(
        msg.starts_with(&format!("part-{fit:02}.yaml: ")),
        "names the file that crosses the budget: {msg}"
    );
    assert!(msg.contains(&MAX_RENDER_BYTES.to_string()), "{msg}");
}

#[test]
fn regression_a_tool_printing_without_end_is_cut_off_at_the_render_budget() {
    let t = Tree::new();
    t.write(
        "charts/web/Chart.yaml",
        "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    );
    let helm: OsString = t
        .script(
            "bin/helm",
            "#!/bin/sh\nexec yes 'a: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb'\n",
        )
        .into();
    let tools = toolchain(&[("FERRY_HELM", &helm)]);
    let err = render_with(
        &t.path().join("charts/web"),
        &RenderOptions::default(),
        &tools,
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::OverBudget { .. }), "{msg}");
    assert!(msg.contains("helm template"), "names the command: {msg}");
}
