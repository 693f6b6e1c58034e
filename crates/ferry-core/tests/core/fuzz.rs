//! Property targets for every outside input ferry-core reads: manifest files
//! (YAML/JSON), Argo specs, `ignoreDifferences` expressions (jq paths and JSON
//! pointers), names, and the schema and admission checks a write goes through.
//!
//! Inputs are this crate's fixtures mutated (bytes flipped, cut, spliced,
//! duplicated) and arbitrary text. Each target asserts that nothing panics and that
//! a refusal says where. `PROPTEST_CASES` sets the budget (`bench/fuzz.sh`); the
//! default keeps the whole set to a few seconds in CI.

use std::path::Path;
use std::sync::OnceLock;

use ferry_core::argo::{self, AnalysisTemplate, AppProject, Application, ApplicationSet, Rollout};
use ferry_core::diff::{self, DiffOptions, IgnoreDifferences};
use ferry_core::names::{self, NameRule};
use ferry_core::{Object, admit, parse, schema};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Value, json};

use crate::util::fixture;

/// The file name errors must carry.
const FILE: &str = "fuzz/input.yaml";

/// Cases per target: `PROPTEST_CASES`, else a CI-sized default.
fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(64);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Every fixture file of this crate, as bytes: the seed corpus.
fn corpus() -> &'static [Vec<u8>] {
    static CORPUS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let mut out = Vec::new();
        collect(&fixture(""), &mut out);
        assert!(out.len() > 20, "the fixtures are the seed corpus");
        out
    })
}

fn collect(dir: &Path, out: &mut Vec<Vec<u8>>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "json") {
            out.push(std::fs::read(&p).unwrap());
        }
    }
}

/// The Argo fixtures only.
fn argo_corpus() -> &'static [Vec<u8>] {
    static CORPUS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let mut out = Vec::new();
        collect(&fixture("argo"), &mut out);
        out
    })
}

/// One edit of a seed.
#[derive(Clone, Debug)]
enum Edit {
    /// XOR one byte.
    Flip(usize, u8),
    /// Cut the input at a point.
    Truncate(usize),
    /// Insert a slice of another seed.
    Splice(usize, usize, usize, usize),
    /// Repeat a range in place.
    Duplicate(usize, usize),
    /// Insert bytes of YAML's and JSON's syntax.
    Insert(usize, &'static str),
}

/// Bytes that move a YAML or JSON parser into its rarer states.
const TOKENS: &[&str] = &[
    "\n",
    "\n---\n",
    ": ",
    "- ",
    "&a ",
    "*a",
    "<<: ",
    "!!binary ",
    "!!str ",
    "{",
    "}",
    "[",
    "]",
    ",",
    "\"",
    "'",
    "|\n",
    ">-\n",
    "\t",
    "  ",
    "#",
    "? ",
    "%YAML 1.2\n",
    "\u{feff}",
    "\\u0000",
    "~",
    "null",
    "0x1F",
    "1e400",
    "-.inf",
    ".nan",
    "kind: List\nitems:\n",
    "apiVersion: v1\n",
    "metadata: {name: x}\n",
    "\r\n",
    "...\n",
    "@",
    "`",
];

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(i, b)| Edit::Flip(i, b)),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), any::<usize>(), any::<usize>(), 0usize..400)
            .prop_map(|(at, seed, from, len)| Edit::Splice(at, seed, from, len)),
        (any::<usize>(), 0usize..200).prop_map(|(i, n)| Edit::Duplicate(i, n)),
        (any::<usize>(), prop::sample::select(TOKENS)).prop_map(|(i, t)| Edit::Insert(i, t)),
    ]
}

fn apply_edits(seeds: &[Vec<u8>], seed: usize, edits: &[Edit]) -> Vec<u8> {
    let mut b = seeds[seed % seeds.len()].clone();
    for e in edits {
        let at = |i: usize, b: &Vec<u8>| if b.is_empty() { 0 } else { i % (b.len() + 1) };
        match *e {
            Edit::Flip(i, x) if !b.is_empty() => {
                let i = i % b.len();
                b[i] ^= x;
            }
            Edit::Flip(..) => {}
            Edit::Truncate(i) => {
                let i = at(i, &b);
                b.truncate(i);
            }
            Edit::Splice(i, s, from, len) => {
                let other = &seeds[s % seeds.len()];
                let from = if other.is_empty() {
                    0
                } else {
                    from % other.len()
                };
                let piece = other[from..(from + len).min(other.len())].to_vec();
                let i = at(i, &b);
                b.splice(i..i, piece);
            }
            Edit::Duplicate(i, n) => {
                let i = at(i, &b);
                let piece = b[i..(i + n).min(b.len())].to_vec();
                b.splice(i..i, piece);
            }
            Edit::Insert(i, t) => {
                let i = at(i, &b);
                b.splice(i..i, t.bytes());
            }
        }
    }
    b
}

/// A fixture of `seeds`, mutated by up to eight edits.
fn mutated(seeds: fn() -> &'static [Vec<u8>]) -> impl Strategy<Value = String> {
    (any::<usize>(), prop::collection::vec(edit(), 1..8)).prop_map(move |(seed, edits)| {
        String::from_utf8_lossy(&apply_edits(seeds(), seed, &edits)).into_owned()
    })
}

/// Arbitrary text, biased towards the syntax the parsers care about.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(prop::sample::select(TOKENS), 0..40).prop_map(|t| t.concat()),
        "[ -~\n]{0,200}",
    ]
}

/// A parse's refusal must say which file it was reading.
fn assert_names_file(r: &ferry_core::Result<Vec<Object>>, input: &str) {
    if let Err(e) = r {
        let msg = e.to_string();
        assert!(
            msg.contains(FILE),
            "error without the file name: {msg}\ninput: {input:?}"
        );
    }
}

/// Everything ferry-core does to an object that came from outside: names, schema,
/// admission, every Argo decoder, and a diff against itself.
fn exercise_object(obj: &Object) {
    let _ = names::validate_object(obj);
    let _ = names::field_errors(obj);
    let _ = schema::check(obj);
    let mut v = obj.value().clone();
    let _ = admit::admit(&mut v);
    let _ = argo::validate_object(obj);
    let _ = argo::decode::<Application>(obj);
    let _ = argo::decode::<ApplicationSet>(obj);
    let _ = argo::decode::<AppProject>(obj);
    let _ = argo::decode::<Rollout>(obj);
    let _ = argo::decode::<AnalysisTemplate>(obj);
    // Live never holds a Secret's `stringData` (the API server folds it into `data`),
    // so a Secret that has it is no fixed point of the diff; every other object is.
    let folded = obj.kind() == "Secret" && obj.value().get("stringData").is_some();
    if let Ok(d) = diff::diff(obj, Some(obj), &DiffOptions::default())
        && !folded
    {
        assert!(d.is_synced(), "an object differs from itself: {obj:?}");
    }
}

proptest! {
    #![proptest_config(config())]

    /// Mutated manifests: parsed or refused with the file named, never a panic; what
    /// parses goes through every check a write meets.
    #[test]
    fn fuzz_parse_mutated_fixtures(input in mutated(corpus)) {
        let r = parse::parse_str(&input, FILE);
        assert_names_file(&r, &input);
        for obj in r.iter().flatten() {
            exercise_object(obj);
        }
    }

    /// Arbitrary text as a manifest file.
    #[test]
    fn fuzz_parse_arbitrary_text(input in text()) {
        let r = parse::parse_str(&input, FILE);
        assert_names_file(&r, &input);
        for obj in r.iter().flatten() {
            exercise_object(obj);
        }
    }

    /// Mutated Argo specs through `ferry validate`'s path.
    #[test]
    fn fuzz_argo_validate_mutated(input in mutated(argo_corpus)) {
        if let Ok(validations) = argo::validate_str(&input, FILE) {
            for v in &validations {
                // Every finding is reported against the file it came from.
                assert_eq!(v.file, FILE);
            }
        }
        if let Ok(objects) = parse::parse_str(&input, FILE) {
            for obj in &objects {
                exercise_object(obj);
            }
        }
    }

    /// Any string as a jq path expression and as a JSON pointer: compiled or refused
    /// with an expression error; what compiles is evaluated on real objects.
    #[test]
    fn fuzz_ignore_differences_expressions(expr in jq_text(), pointer in pointer_text()) {
        let entry = IgnoreDifferences {
            kind: "*".into(),
            group: "*".into(),
            jq_path_expressions: vec![expr.clone()],
            json_pointers: vec![pointer.clone()],
            ..IgnoreDifferences::default()
        };
        let jq_ok = IgnoreDifferences { json_pointers: vec![], ..entry.clone() }.validate();
        if let Err(e) = &jq_ok {
            let msg = e.to_string();
            assert!(msg.contains("jqPathExpressions"), "{msg}");
        }
        let ptr_ok = IgnoreDifferences { jq_path_expressions: vec![], ..entry.clone() }.validate();
        if jq_ok.is_ok() && ptr_ok.is_ok() {
            let opts = DiffOptions { ignore: vec![entry] };
            for (desired, live) in diff_pairs() {
                let d = diff::diff(desired, live.as_ref(), &opts);
                prop_assert!(d.is_ok(), "validated expressions failed to apply: {d:?}");
            }
        }
    }

    /// Any string through every name rule.
    #[test]
    fn fuzz_name_validators(s in text()) {
        let _ = names::is_dns1123_label(&s);
        let _ = names::is_dns1123_subdomain(&s);
        let _ = names::is_dns1035_label(&s);
        let _ = names::is_qualified_name(&s);
        let _ = names::is_valid_label_value(&s);
        let _ = names::is_valid_port_name(&s);
        let _ = names::is_valid_path_segment_name(&s);
        let _ = names::go_quote(&s);
        for rule in [NameRule::Subdomain, NameRule::Label, NameRule::Dns1035Label] {
            let errs = rule.check(&s, false);
            // A name the rules accept is one safe path segment.
            if errs.is_empty() {
                prop_assert!(!s.is_empty() && !s.contains('/') && s != "." && s != "..", "{s:?}");
            }
            let _ = rule.check(&s, true);
        }
    }

    /// Objects of the kinds the schema and admission know, with arbitrary values in
    /// their fields.
    #[test]
    fn fuzz_schema_and_admit(obj in shaped_object()) {
        if let Ok(o) = Object::from_value(obj) {
            exercise_object(&o);
        }
    }
}

/// Text that looks like a jq path some of the time.
fn jq_text() -> impl Strategy<Value = String> {
    const JQ: &[&str] = &[
        ".",
        ".spec",
        ".metadata",
        ".labels",
        ".containers",
        "[]",
        "[0]",
        "[-1]",
        "[99999999999]",
        "[\"a.b\"]",
        ".[\"x\"]",
        " | ",
        "select(",
        ")",
        ".name",
        " == ",
        " != ",
        " < ",
        " >= ",
        "\"web\"",
        "1",
        "null",
        "true",
        " and ",
        " or ",
        " | not",
        "startswith(\"a\")",
        "endswith(",
        "contains(\"b\")",
        "has(\"c\")",
        "(",
        "\"",
        "\\",
        ".image",
        ".env[]",
    ];
    prop_oneof![
        any::<String>(),
        prop::collection::vec(prop::sample::select(JQ), 1..16).prop_map(|t| t.concat()),
    ]
}

/// Text that looks like an RFC 6901 pointer some of the time.
fn pointer_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(
            prop::sample::select(
                &[
                    "/", "spec", "~0", "~1", "~", "~2", "0", "-", "metadata", "replicas", ""
                ][..]
            ),
            0..10
        )
        .prop_map(|t| t.concat()),
    ]
}

/// Desired/live pairs from the diff fixtures.
fn diff_pairs() -> &'static [(Object, Option<Object>)] {
    static PAIRS: OnceLock<Vec<(Object, Option<Object>)>> = OnceLock::new();
    PAIRS.get_or_init(|| {
        let load = |f: &str| crate::util::load(&format!("diff/{f}")).remove(0);
        vec![
            (
                load("deployment-desired.yaml"),
                Some(load("deployment-live.yaml")),
            ),
            (
                load("service-desired.yaml"),
                Some(load("service-live.yaml")),
            ),
            (load("secret-desired.yaml"), Some(load("secret-live.yaml"))),
            (load("deployment-desired-image.yaml"), None),
        ]
    })
}

/// Arbitrary JSON, small.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    text(),
                    prop::sample::select(FIELDS).prop_map(str::to_string)
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Field names of the kinds the checks know, so arbitrary values land where they look.
const FIELDS: &[&str] = &[
    "data",
    "binaryData",
    "stringData",
    "type",
    "spec",
    "template",
    "containers",
    "ports",
    "replicas",
    "selector",
    "matchLabels",
    "name",
    "image",
    "env",
    "value",
    "valueFrom",
    "immutable",
    "labels",
    "annotations",
    "finalizers",
    "ownerReferences",
    "targetPort",
];

/// An object of a known kind whose body is arbitrary.
fn shaped_object() -> impl Strategy<Value = Value> {
    const KINDS: &[(&str, &str)] = &[
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("v1", "Service"),
        ("v1", "Pod"),
        ("v1", "Namespace"),
        ("apps/v1", "Deployment"),
        ("batch/v1", "Job"),
        ("argoproj.io/v1alpha1", "Application"),
        ("argoproj.io/v1alpha1", "Rollout"),
        ("argoproj.io/v1alpha1", "AnalysisTemplate"),
    ];
    (
        prop::sample::select(KINDS),
        text(),
        prop::collection::btree_map(prop::sample::select(FIELDS), json_value(), 0..5),
        prop::collection::btree_map(text(), json_value(), 0..3),
    )
        .prop_map(|((api, kind), name, body, meta)| {
            let mut m = serde_json::Map::new();
            m.insert("apiVersion".into(), api.into());
            m.insert("kind".into(), kind.into());
            let mut md: serde_json::Map<String, Value> = meta.into_iter().collect();
            md.insert("name".into(), name.into());
            m.insert("metadata".into(), Value::Object(md));
            for (k, v) in body {
                m.insert(k.to_string(), v);
            }
            Value::Object(m)
        })
}

/// Deeply nested input is refused by the depth limit, not by the stack.
#[test]
fn fuzz_regression_deep_nesting_is_refused_not_a_stack_overflow() {
    for depth in [200, 5_000, 100_000] {
        let json = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let r = parse::parse_str(&format!("{{\"a\":{json}}}"), FILE);
        assert!(r.is_err(), "depth {depth} accepted");
        assert_names_file(&r, "deep json");

        let flow = format!("a: {}{}\n", "[".repeat(depth), "]".repeat(depth));
        let r = parse::parse_str(&flow, FILE);
        assert!(r.is_err(), "flow depth {depth} accepted");
        assert_names_file(&r, "deep yaml flow");

        let mut block = String::new();
        for i in 0..depth.min(5_000) {
            block.push_str(&" ".repeat(i));
            block.push_str("a:\n");
        }
        let r = parse::parse_str(&block, FILE);
        assert!(r.is_err(), "block depth {depth} accepted");
        assert_names_file(&r, "deep yaml block");
    }
}

/// The billion laughs: aliases that expand to 10^9 nodes are refused by the budget,
/// not expanded.
#[test]
fn fuzz_regression_billion_laughs_is_refused() {
    let mut yaml = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lol}\n");
    yaml.push_str("a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for i in 1..10 {
        let p = i - 1;
        yaml.push_str(&format!(
            "a{i}: &a{i} [*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p}]\n"
        ));
    }
    let r = parse::parse_str(&yaml, FILE);
    assert!(r.is_err(), "10^9 nodes of aliases accepted");
    assert_names_file(&r, "billion laughs");
}

/// A multi-document file of thousands of tiny documents parses or is refused, and
/// every object keeps the document it came from.
#[test]
fn fuzz_regression_many_documents_keep_their_lines() {
    let mut yaml = String::new();
    for i in 0..2_000 {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}}}\n"
        ));
    }
    let objects = parse::parse_str(&yaml, FILE).unwrap();
    assert_eq!(objects.len(), 2_000);
    let last = objects.last().unwrap().source().unwrap();
    assert_eq!(last.line, 1 + 4 * 1_999, "the line of its `---`");
}
