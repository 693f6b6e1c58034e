//! Property targets for what ferry-oci reads from registries and image layouts:
//! manifest, index and config JSON, references and digests (digests become file
//! paths), and layer tarballs, whose entries must never reach outside the root
//! filesystem they are unpacked into — not by `..`, an absolute path, a symlink
//! written through, a hard link, or a whiteout.
//!
//! Tarballs are generated entry by entry from a vocabulary of hostile paths, with
//! raw headers (the `tar` crate's builder refuses `..`, which an attacker's does
//! not). After every extraction the whole temporary directory is walked: anything
//! new outside the root is a stray. `PROPTEST_CASES` sets the budget.

use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use ferry_oci::spec::{ConfigFile, Index, Manifest};
use ferry_oci::{Digest, ImageConfig, Platform, Reference};
use proptest::prelude::*;
use proptest::test_runner::Config;

fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

// ---- JSON documents ----------------------------------------------------------

const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7","size":32654,"annotations":{"org.opencontainers.image.title":"a"}}],"annotations":{"x":"y"}}"#;
const INDEX: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f","size":7143,"platform":{"architecture":"amd64","os":"linux","variant":"v8","os.features":["x"]},"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}"#;
const CONFIG: &str = r#"{"architecture":"amd64","os":"linux","config":{"User":"1000:1000","Env":["PATH=/usr/bin","A=b=c","NOEQ"],"Entrypoint":["/bin/sh"],"Cmd":["-c","echo"],"WorkingDir":"/app","ExposedPorts":{"8080/tcp":{}},"Labels":{"a":"b"},"StopSignal":"SIGTERM"},"rootfs":{"type":"layers","diff_ids":["sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7"]},"history":[{"created":"2024-01-01T00:00:00Z","created_by":"RUN x","empty_layer":true}]}"#;

const JSON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "null",
    "-1",
    "1e999",
    "\"sha256:../../etc\"",
    "\"mediaType\":",
    "\"digest\":",
    "\"size\":",
    "18446744073709551616",
    "\\u0000",
    "true",
];

fn mutated_json() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(&[MANIFEST, INDEX, CONFIG][..]),
        prop::collection::vec(
            (
                any::<usize>(),
                0u8..3,
                any::<u8>(),
                prop::sample::select(JSON_TOKENS),
            ),
            0..6,
        ),
    )
        .prop_map(|(seed, edits)| {
            let mut b = seed.as_bytes().to_vec();
            for (i, op, x, t) in edits {
                let i = i % (b.len() + 1);
                match op {
                    0 if i < b.len() => b[i] ^= x.max(1),
                    1 => b.truncate(i),
                    _ => {
                        b.splice(i..i, t.bytes());
                    }
                }
            }
            b
        })
}

proptest! {
    #![proptest_config(config(256))]

    /// Manifests, indexes and configs as a registry might send them.
    #[test]
    fn fuzz_image_json(raw in mutated_json()) {
        if let Ok(m) = serde_json::from_slice::<Manifest>(&raw) {
            for l in &m.layers {
                let _ = Digest::parse(l.digest.as_str());
            }
        }
        let _ = serde_json::from_slice::<Index>(&raw);
        if let Ok(c) = serde_json::from_slice::<ConfigFile>(&raw) {
            let _ = ImageConfig::from(&c).env_pairs();
        }
    }

    /// References and digests: a digest that parses is a file name, never a path.
    #[test]
    fn fuzz_reference_and_digest(s in prop_oneof![
        any::<String>(),
        prop::collection::vec(prop::sample::select(DIGEST_TOKENS), 0..8).prop_map(|t| t.concat()),
    ]) {

        if let Ok(d) = Digest::parse(&s) {
            prop_assert!(!d.hex().is_empty());
            prop_assert!(d.hex().bytes().all(|b| b.is_ascii_hexdigit()), "{s:?}");
            prop_assert!(!d.as_str().contains('/'), "{s:?}");
        }
        if let Ok(r) = Reference::parse(&s) {
            let _ = r.name();
            let _ = r.tagged_name();
            if let Some(d) = r.digest() {
                prop_assert!(d.hex().bytes().all(|b| b.is_ascii_hexdigit()));
            }
        }
        let _ = Platform::parse(&s);
    }
}

const DIGEST_TOKENS: &[&str] = &[
    "sha256:",
    "sha512:",
    "a",
    "0",
    "f",
    "/",
    "..",
    ":",
    "@",
    "localhost:5000",
    "library/",
    "busybox",
    ":v1",
    "@sha256:",
    "A",
    "-",
    "_",
    ".",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
];

// ---- layer tarballs ----------------------------------------------------------

/// One entry of a generated layer.
#[derive(Clone, Debug)]
enum Entry {
    File(String),
    Dir(String),
    Symlink(String, String),
    Hardlink(String, String),
}

/// Path pieces an attacker's layer is made of. `OUT` stands for the absolute path
/// of the sentinel directory beside the root.
const PIECES: &[&str] = &[
    "..",
    ".",
    "a",
    "b",
    "etc",
    "link",
    "up",
    "abs",
    "victim",
    "outside",
    ".wh..",
    ".wh...",
    ".wh.a",
    ".wh.link",
    ".wh..wh..opq",
    ".wh.",
    "",
];
const TARGETS: &[&str] = &[
    "..",
    "../..",
    "../../..",
    "../outside",
    "../../outside",
    "/",
    "/etc",
    "OUT",
    "OUT/victim",
    "a",
    "link",
    "/a/../../..",
    "up/..",
    "abs/victim",
];

fn rel_path() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        prop::collection::vec(prop::sample::select(PIECES), 1..5),
    )
        .prop_map(|(abs, parts)| {
            let p = parts.join("/");
            if abs { format!("/{p}") } else { p }
        })
}

fn target() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(TARGETS).prop_map(str::to_string),
        rel_path(),
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        3 => rel_path().prop_map(Entry::File),
        2 => rel_path().prop_map(Entry::Dir),
        3 => (rel_path(), target()).prop_map(|(p, t)| Entry::Symlink(p, t)),
        2 => (rel_path(), target()).prop_map(|(p, t)| Entry::Hardlink(p, t)),
    ]
}

/// A tar of `entries` with raw names (no checks), `OUT` replaced by `outside`.
fn tarball(entries: &[Entry], outside: &Path) -> Vec<u8> {
    let out = outside.display().to_string();
    let fix = |s: &str| s.replace("OUT", &out);
    let mut tar = Vec::new();
    for e in entries {
        let mut h = tar::Header::new_old();
        let (path, kind, link, data): (&str, tar::EntryType, Option<String>, &[u8]) = match e {
            Entry::File(p) => (p, tar::EntryType::Regular, None, b"PWNED"),
            Entry::Dir(p) => (p, tar::EntryType::Directory, None, b""),
            Entry::Symlink(p, t) => (p, tar::EntryType::Symlink, Some(fix(t)), b""),
            Entry::Hardlink(p, t) => (p, tar::EntryType::Link, Some(fix(t)), b""),
        };
        let name = path.as_bytes();
        if name.len() > 99 || link.as_ref().is_some_and(|l| l.len() > 99) {
            continue;
        }
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name);
        if let Some(l) = &link {
            old.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        h.set_cksum();
        tar.extend_from_slice(h.as_bytes());
        tar.extend_from_slice(data);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    }
    tar.resize(tar.len() + 1024, 0);
    tar
}

/// Every path under `dir` (not following symlinks), sorted.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Applies `layers` one after another to a fresh root and checks that nothing
/// outside it was created, changed or linked to. Returns the extraction results.
fn extract_contained(layers: &[Vec<Entry>], gzip: bool) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&root).unwrap();
    std::fs::create_dir(&outside).unwrap();
    let victim = outside.join("victim");
    std::fs::write(&victim, "keep").unwrap();
    let blobs = tmp.path().join("blobs");
    std::fs::create_dir(&blobs).unwrap();
    let mut results = Vec::new();
    for (i, entries) in layers.iter().enumerate() {
        let raw = tarball(entries, &outside);
        let blob = blobs.join(format!("layer{i}"));
        let bytes = if gzip {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(&raw).unwrap();
            enc.finish().unwrap()
        } else {
            raw
        };
        std::fs::write(&blob, bytes).unwrap();
        let r = ferry_oci::unpack::extract_layer(&blob, &format!("layer{i}"), &root);
        results.push(match r {
            Ok(()) => "ok".to_string(),
            Err(e) => {
                let msg = e.to_string();
                assert!(!msg.is_empty());
                msg
            }
        });
    }
    let mut strays = Vec::new();
    for p in walk(tmp.path()) {
        if p.starts_with(&root) || p.starts_with(&blobs) || p == outside || p == victim {
            continue;
        }
        strays.push(p);
    }
    assert!(
        strays.is_empty(),
        "written outside the root: {strays:?}\nlayers: {layers:?}\nresults: {results:?}"
    );
    let meta = std::fs::symlink_metadata(&victim).expect("the file outside the root was removed");
    assert!(meta.is_file(), "the file outside was replaced: {layers:?}");
    assert_eq!(
        meta.nlink(),
        1,
        "a hard link inside the root reaches the file outside: {layers:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "keep",
        "the file outside the root was written through: {layers:?}"
    );
    // Nothing in the root is a hard link to anything outside it (including the
    // test's own files beside it).
    let outside_inodes: Vec<u64> = walk(tmp.path())
        .iter()
        .filter(|p| !p.starts_with(&root))
        .filter_map(|p| std::fs::symlink_metadata(p).ok())
        .filter(|m| m.is_file())
        .map(|m| m.ino())
        .collect();
    for p in walk(&root) {
        if let Ok(m) = std::fs::symlink_metadata(&p)
            && m.is_file()
        {
            assert!(
                !outside_inodes.contains(&m.ino()),
                "{} is a hard link to a file outside the root: {layers:?}",
                p.display()
            );
        }
    }
    results
}

proptest! {
    #![proptest_config(config(128))]

    /// Layers of hostile entries, one to three applied in turn (a symlink planted by
    /// one, written through by the next), plain or gzip: all stay inside the root.
    #[test]
    fn fuzz_layer_stays_inside_the_root(
        layers in prop::collection::vec(prop::collection::vec(entry(), 1..10), 1..4),
        gzip in any::<bool>(),
    ) {
        extract_contained(&layers, gzip);
    }

    /// Arbitrary bytes as a layer blob: an error or a tree inside the root.
    #[test]
    fn fuzz_layer_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048), tarish in any::<bool>()) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let blob = tmp.path().join("blob");
        let mut data = bytes;
        if tarish {
            // A valid-looking first header with random bytes after it.
            let mut h = tar::Header::new_gnu();
            h.set_path("a/b").unwrap();
            h.set_size(data.len() as u64 / 2);
            h.set_cksum();
            data.splice(0..0, h.as_bytes().iter().copied());
        }
        std::fs::write(&blob, &data).unwrap();
        let _ = ferry_oci::unpack::extract_layer(&blob, "layer", &root);
        for p in walk(tmp.path()) {
            prop_assert!(p.starts_with(&root) || p == blob, "stray {}", p.display());
        }
    }
}

/// The classic escapes, each pinned: every one is refused or lands inside.
#[test]
fn fuzz_regression_known_escapes_stay_inside() {
    let f = |p: &str| Entry::File(p.into());
    let s = |p: &str, t: &str| Entry::Symlink(p.into(), t.into());
    let h = |p: &str, t: &str| Entry::Hardlink(p.into(), t.into());
    let cases: Vec<Vec<Vec<Entry>>> = vec![
        vec![vec![f("../victim")]],
        vec![vec![f("../outside/victim")]],
        vec![vec![f("/../../outside/victim")]],
        vec![vec![s("link", "OUT"), f("link/victim")]],
        vec![vec![s("link", "OUT")], vec![f("link/victim")]],
        vec![vec![s("link", "../outside"), f("link/new")]],
        vec![vec![
            s("up", ".."),
            s("up/link", "OUT"),
            f("up/outside/victim"),
        ]],
        vec![vec![s("victim", "OUT/victim"), f("victim")]],
        vec![vec![h("victim", "OUT/victim")]],
        vec![vec![h("victim", "../outside/victim")]],
        vec![vec![s("link", "OUT"), h("victim", "link/victim")]],
        vec![vec![
            s("link", "OUT"),
            Entry::File("link/.wh.victim".into()),
        ]],
        vec![vec![Entry::File(".wh..".into())]],
        vec![vec![
            s("link", "OUT"),
            Entry::File("link/.wh..wh..opq".into()),
        ]],
        vec![vec![Entry::Dir("../outside/new".into())]],
        vec![vec![s("link", "OUT"), Entry::Dir("link/newdir".into())]],
    ];
    for layers in cases {
        extract_contained(&layers, false);
    }
    // The generator makes real layers: a benign one unpacks whole.
    let benign = vec![vec![
        Entry::Dir("d".into()),
        f("d/a"),
        s("l", "d/a"),
        h("d/b", "d/a"),
    ]];
    assert_eq!(extract_contained(&benign, true), ["ok"]);
}
