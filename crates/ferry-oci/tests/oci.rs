//! ferry-oci against real components: a real registry (`docker-registry`), `skopeo`
//! and `umoci` as independent readers and writers of images.

#[path = "util/registry.rs"]
mod registry;
#[path = "util/scripted.rs"]
mod scripted;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use ferry_oci::spec::{self, ConfigFile, Descriptor, Index, Manifest, RootFs};
use ferry_oci::{
    BuildOptions, Credential, Credentials, Digest, Error, Platform, Reference, RegistryClient,
    RegistryOptions, Store, build,
};
use registry::{Registry, TokenProxy, require_tool};

fn write_files(dir: &Path, files: &[(&str, &[u8])]) {
    for (name, content) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
}

fn context(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    write_files(d.path(), files);
    d
}

fn build_opts(ctx: &Path, tag: &str) -> BuildOptions {
    BuildOptions {
        context: ctx.to_path_buf(),
        tag: tag.to_string(),
        ..BuildOptions::default()
    }
}

fn new_store() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path().join("images")).unwrap();
    (d, s)
}

fn client() -> RegistryClient {
    RegistryClient::new(RegistryOptions::default()).unwrap()
}

fn client_with(f: impl FnOnce(&mut RegistryOptions)) -> RegistryClient {
    let mut o = RegistryOptions::default();
    f(&mut o);
    RegistryClient::new(o).unwrap()
}

fn r(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

/// Bytes that gzip cannot shrink, so a layer is as big as its content.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn skopeo(args: &[&str]) -> String {
    require_tool("skopeo", "skopeo");
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn build_is_reproducible_and_content_addressed() {
    let ctx = context(&[
        ("app/main.py", b"print('hi')\n"),
        ("static/index.html", b"<h1>hi</h1>"),
        ("z", b""),
    ]);
    std::os::unix::fs::symlink("app/main.py", ctx.path().join("entry")).unwrap();
    let (_a, s1) = new_store();
    let (_b, s2) = new_store();
    let opts = BuildOptions {
        cmd: Some(vec!["python3".into(), "app/main.py".into()]),
        ..build_opts(ctx.path(), "web:1")
    };
    let first = build(&s1, &opts).unwrap();
    let second = build(&s2, &opts).unwrap();
    assert_eq!(
        first.info.digest, second.info.digest,
        "same input, same digest"
    );
    assert_eq!(first.info.created.as_deref(), Some("1970-01-01T00:00:00Z"));

    // mtimes do not matter
    let f = std::fs::File::options()
        .write(true)
        .open(ctx.path().join("z"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(86_400))
        .unwrap();
    drop(f);
    assert_eq!(
        build(&s1, &opts).unwrap().info.digest,
        first.info.digest,
        "mtime changed the digest"
    );

    // content does
    write_files(ctx.path(), &[("z", b"changed")]);
    let changed = build(&s1, &opts).unwrap();
    assert_ne!(changed.info.digest, first.info.digest);

    // SOURCE_DATE_EPOCH is honoured
    let dated = build(
        &s2,
        &BuildOptions {
            source_date_epoch: 1_700_000_000,
            ..opts.clone()
        },
    )
    .unwrap();
    assert_eq!(dated.info.created.as_deref(), Some("2023-11-14T22:13:20Z"));

    // The layer's headers carry nothing from this machine.
    let raw = std::fs::File::open(s1.blob_path(&changed.layer.digest)).unwrap();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(raw));
    let mut names = Vec::new();
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        assert_eq!(h.mtime().unwrap(), 0);
        assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
        assert_eq!(h.username().unwrap(), Some(""));
        assert!(
            matches!(h.mode().unwrap(), 0o644 | 0o755 | 0o777),
            "mode {:o}",
            h.mode().unwrap()
        );
        names.push(e.path().unwrap().display().to_string());
    }
    assert_eq!(
        names,
        [
            "app/",
            "app/main.py",
            "entry",
            "static/",
            "static/index.html",
            "z"
        ]
    );
    assert_eq!(
        Digest::of(&std::fs::read(s1.blob_path(&changed.layer.digest)).unwrap()),
        changed.layer.digest
    );
}

#[test]
fn store_tag_list_remove_and_gc() {
    let (_d, store) = new_store();
    let ctx = context(&[("a", b"1")]);
    let built = build(&store, &build_opts(ctx.path(), "web:1")).unwrap();
    let tagged = store.tag("web:1", "127.0.0.1:5000/team/web:prod").unwrap();
    assert_eq!(tagged.digest, built.info.digest);
    let names: Vec<String> = store
        .list()
        .unwrap()
        .iter()
        .map(|i| i.reference())
        .collect();
    assert_eq!(names, ["127.0.0.1:5000/team/web:prod", "web:1"]);
    assert_eq!(
        store
            .resolve(built.info.digest.short())
            .unwrap()
            .unwrap()
            .digest,
        built.info.digest
    );
    assert_eq!(
        store
            .resolve(built.info.digest.as_str())
            .unwrap()
            .unwrap()
            .digest,
        built.info.digest
    );
    assert!(store.resolve("web:2").unwrap().is_none());

    // The layout is one skopeo can read.
    let out = skopeo(&["inspect", &format!("oci:{}:web:1", store.root().display())]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Digest"], built.info.digest.as_str());

    // A damaged entry is reported by ls and can still be removed.
    let broken = build(
        &store,
        &build_opts(context(&[("b", b"2")]).path(), "broken:1"),
    )
    .unwrap();
    std::fs::remove_file(store.blob_path(&broken.info.config_digest)).unwrap();
    let err = store.list().unwrap_err();
    assert!(matches!(err, Error::BlobMissing { .. }), "{err}");
    assert!(err.to_string().contains("broken:1"), "{err}");
    assert_eq!(store.remove("broken:1").unwrap(), ["broken:1"]);
    assert!(!store.has_blob(&broken.layer.digest));

    assert_eq!(store.remove("web:1").unwrap(), ["web:1"]);
    assert!(
        store.has_blob(&built.layer.digest),
        "still used by the other tag"
    );
    assert_eq!(
        store.remove("127.0.0.1:5000/team/web:prod").unwrap().len(),
        1
    );
    assert!(
        !store.has_blob(&built.layer.digest),
        "unreferenced blobs are collected"
    );
    assert!(matches!(store.remove("web:1"), Err(Error::NotFound { .. })));
}

/// Writes an image made of hand-written plain-tar layers into the store.
fn store_layers(store: &Store, tag: &str, layers: Vec<Vec<u8>>) {
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        let d = store.write_blob(&l).unwrap();
        diff_ids.push(d.clone());
        descs.push(Descriptor {
            media_type: spec::OCI_LAYER_TAR.into(),
            digest: d,
            size: l.len() as u64,
            platform: None,
            annotations: BTreeMap::new(),
        });
    }
    let config = ConfigFile {
        architecture: "amd64".into(),
        os: "linux".into(),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids,
        },
        ..ConfigFile::default()
    };
    let craw = serde_json::to_vec(&config).unwrap();
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(spec::OCI_MANIFEST.into()),
        config: Descriptor {
            media_type: spec::OCI_CONFIG.into(),
            digest: store.write_blob(&craw).unwrap(),
            size: craw.len() as u64,
            platform: None,
            annotations: BTreeMap::new(),
        },
        layers: descs,
        annotations: BTreeMap::new(),
    };
    let mraw = serde_json::to_vec(&manifest).unwrap();
    let desc = Descriptor {
        media_type: spec::OCI_MANIFEST.into(),
        digest: store.write_blob(&mraw).unwrap(),
        size: mraw.len() as u64,
        platform: None,
        annotations: BTreeMap::new(),
    };
    store.set_tag(&r(tag), &desc, None).unwrap();
}

enum E<'a> {
    Dir(&'a str),
    File(&'a str, &'a str),
    Sym(&'a str, &'a str),
    Hard(&'a str, &'a str),
    /// A raw name, bypassing the tar crate's own `..` check.
    RawFile(&'a str, &'a str),
}

fn layer(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        match e {
            E::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, p, std::io::empty()).unwrap();
            }
            E::File(p, c) => {
                h.set_size(c.len() as u64);
                b.append_data(&mut h, p, c.as_bytes()).unwrap();
            }
            E::Sym(p, t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, p, t).unwrap();
            }
            E::Hard(p, t) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                b.append_link(&mut h, p, t).unwrap();
            }
            E::RawFile(p, c) => {
                h.set_size(c.len() as u64);
                h.as_old_mut().name[..p.len()].copy_from_slice(p.as_bytes());
                h.set_cksum();
                b.append(&h, c.as_bytes()).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

#[test]
fn unpack_applies_whiteouts_and_stays_inside_the_root() {
    let (_d, store) = new_store();
    let rootfs = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let outside_abs = outside.path().display().to_string();
    store_layers(
        &store,
        "layers:1",
        vec![
            layer(&[
                E::Dir("etc/"),
                E::File("etc/a", "a"),
                E::File("etc/b", "b"),
                E::Dir("d/"),
                E::File("d/old", "old"),
                E::Sym("abs", &outside_abs),
                E::Sym("up", "../../../../.."),
                E::Sym("bin", "usr/bin"),
                E::Dir("usr/bin/"),
            ]),
            layer(&[
                E::File("etc/.wh.a", ""),
                E::File("d/new", "new"),
                E::File("d/.wh..wh..opq", ""),
                E::File("abs/planted", "x"),
                E::File("up/planted-too", "y"),
                E::File("bin/tool", "tool"),
                E::Hard("hl", "etc/b"),
            ]),
        ],
    );
    let dir = store.unpack("layers:1", rootfs.path()).unwrap();
    let info = store.get("layers:1").unwrap();
    assert_eq!(dir, rootfs.path().join(info.digest.hex()));
    assert!(!dir.join("etc/a").exists(), "whiteout removes etc/a");
    assert_eq!(std::fs::read_to_string(dir.join("etc/b")).unwrap(), "b");
    assert!(
        !dir.join("d/old").exists(),
        "opaque dir hides lower content"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("d/new")).unwrap(),
        "new",
        "opaque keeps this layer's files"
    );
    assert_eq!(
        std::fs::read_link(dir.join("abs"))
            .unwrap()
            .display()
            .to_string(),
        outside_abs,
        "links are made as written"
    );
    assert!(
        !outside.path().join("planted").exists(),
        "an absolute symlink was followed out of the root"
    );
    assert!(
        dir.join(outside_abs.trim_start_matches('/'))
            .join("planted")
            .exists(),
        "resolved inside the root"
    );
    assert!(
        dir.join("planted-too").exists(),
        ".. through a symlink stops at the root"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("usr/bin/tool")).unwrap(),
        "tool",
        "usrmerge-style links work"
    );
    assert_eq!(std::fs::read_to_string(dir.join("hl")).unwrap(), "b");

    // Once per digest: a second call finds the directory and leaves it alone.
    std::fs::write(dir.join("marker"), "m").unwrap();
    assert_eq!(
        store.unpack(info.digest.as_str(), rootfs.path()).unwrap(),
        dir
    );
    assert!(dir.join("marker").exists());

    // A layer that climbs out with .. is refused, and leaves nothing behind.
    store_layers(
        &store,
        "evil:1",
        vec![layer(&[E::File("ok", "1"), E::RawFile("../../evil", "x")])],
    );
    let evil_root = outside.path().join("a/b");
    let err = store.unpack("evil:1", &evil_root).unwrap_err();
    assert!(matches!(err, Error::UnsafePath { .. }), "{err}");
    assert!(err.to_string().contains("../../evil"), "{err}");
    assert!(!outside.path().join("evil").exists() && !outside.path().join("a/evil").exists());
    assert_eq!(
        std::fs::read_dir(&evil_root).unwrap().count(),
        0,
        "temp dir removed"
    );
}

#[tokio::test]
async fn push_is_readable_by_skopeo_and_second_push_sends_no_blobs() {
    let reg = Registry::start();
    let (_d, store) = new_store();
    let ctx = context(&[
        ("index.html", b"hello"),
        ("bin/run", b"#!/bin/sh\necho hi\n"),
    ]);
    let built = build(&store, &build_opts(ctx.path(), "web:1")).unwrap();
    let dest = r(&format!("{}/team/web:1", reg.host()));
    let c = client();

    let stats = c.push(&store, "web:1", &dest, false).await.unwrap();
    assert_eq!(
        (stats.blobs_uploaded, stats.blobs_skipped, stats.chunks),
        (2, 0, 0),
        "{stats:?}"
    );
    let out = skopeo(&["inspect", "--tls-verify=false", &format!("docker://{dest}")]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Digest"], built.info.digest.as_str());

    let before = reg.requests().len();
    let again = c.push(&store, "web:1", &dest, false).await.unwrap();
    assert_eq!(
        (again.blobs_uploaded, again.blobs_skipped),
        (0, 2),
        "{again:?}"
    );
    let log = reg.requests();
    let second: Vec<_> = log[before..].iter().map(|l| l.method.as_str()).collect();
    assert!(
        !second.contains(&"POST") && !second.contains(&"PATCH"),
        "second push sent blobs: {second:?}"
    );
    assert_eq!(
        second.iter().filter(|m| **m == "HEAD").count(),
        2,
        "{second:?}"
    );

    // Push under the local name to another repository by digest only.
    let by_digest = r(&format!("{}/other@{}", reg.host(), built.info.digest));
    c.push(&store, "web:1", &by_digest, false).await.unwrap();
    let (_e, fresh) = new_store();
    let pulled = c.pull(&fresh, &by_digest).await.unwrap();
    assert_eq!(pulled.info.digest, built.info.digest);
    assert_eq!(pulled.info.tag, None);
}

#[tokio::test]
async fn big_layers_are_uploaded_in_chunks() {
    let reg = Registry::start();
    let (_d, store) = new_store();
    let big = noise(300 * 1024, 7);
    let ctx = context(&[("big.bin", &big)]);
    let built = build(&store, &build_opts(ctx.path(), "big:1")).unwrap();
    assert!(built.layer.size > 256 * 1024);
    let dest = r(&format!("{}/big:1", reg.host()));
    let c = client_with(|o| o.chunk_size = 64 * 1024);
    let stats = c.push(&store, "big:1", &dest, false).await.unwrap();
    assert_eq!(stats.chunked_blobs, 1, "{stats:?}");
    assert_eq!(
        stats.chunks as u64,
        built.layer.size.div_ceil(64 * 1024),
        "{stats:?}"
    );
    let patches = reg
        .requests()
        .iter()
        .filter(|l| l.method == "PATCH" && l.status == 202)
        .count();
    assert_eq!(patches, stats.chunks, "the registry saw the chunks");

    let (_e, fresh) = new_store();
    let pulled = client().pull(&fresh, &dest).await.unwrap();
    assert_eq!(pulled.info.digest, built.info.digest);
    assert_eq!(pulled.blobs_downloaded, 2);
    let root = tempfile::tempdir().unwrap();
    let dir = fresh.unpack(&dest.to_string(), root.path()).unwrap();
    assert_eq!(std::fs::read(dir.join("big.bin")).unwrap(), big);
}

#[tokio::test]
async fn moving_a_tag_needs_force() {
    let reg = Registry::start();
    let (_d, store) = new_store();
    let a = build(&store, &build_opts(context(&[("v", b"a")]).path(), "app:a")).unwrap();
    let b = build(&store, &build_opts(context(&[("v", b"b")]).path(), "app:b")).unwrap();
    let dest = r(&format!("{}/app:v1", reg.host()));
    let c = client();
    c.push(&store, "app:a", &dest, false).await.unwrap();
    c.push(&store, "app:a", &dest, false)
        .await
        .expect("re-pushing the same digest is fine");

    let err = c.push(&store, "app:b", &dest, false).await.unwrap_err();
    assert!(matches!(err, Error::TagExists { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&dest.to_string())
            && msg.contains("--force")
            && msg.contains(a.info.digest.as_str()),
        "{msg}"
    );
    assert_eq!(
        c.fetch_manifest(&dest).await.unwrap().unwrap().digest,
        a.info.digest,
        "tag unchanged"
    );

    let stats = c.push(&store, "app:b", &dest, true).await.unwrap();
    assert!(stats.tag_overwritten);
    assert_eq!(
        c.fetch_manifest(&dest).await.unwrap().unwrap().digest,
        b.info.digest
    );
}

#[tokio::test]
async fn pulls_images_made_by_other_tools_oci_and_docker_v2s2() {
    require_tool("umoci", "umoci");
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("L");
    let src = work.path().join("hello.txt");
    std::fs::write(&src, "hello from umoci\n").unwrap();
    let image = format!("{}:base", layout.display());
    let run = |args: &[&str]| {
        let out = Command::new("umoci").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "umoci {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["init", "--layout", &layout.display().to_string()]);
    run(&["new", "--image", &image]);
    run(&[
        "insert",
        "--rootless",
        "--image",
        &image,
        &src.display().to_string(),
        "/opt/hello.txt",
    ]);
    run(&[
        "config",
        "--image",
        &image,
        "--config.cmd=/opt/run",
        "--config.env=FOO=bar",
        "--config.workingdir=/opt",
    ]);

    let oci_ref = format!("{}/foreign:oci", reg.host());
    let v2_ref = format!("{}/foreign:v2s2", reg.host());
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{image}"),
        &format!("docker://{oci_ref}"),
    ]);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--format",
        "v2s2",
        &format!("oci:{image}"),
        &format!("docker://{v2_ref}"),
    ]);

    let (_d, store) = new_store();
    let c = client();
    let root = tempfile::tempdir().unwrap();
    for (reference, media_type) in [
        (&oci_ref, spec::OCI_MANIFEST),
        (&v2_ref, spec::DOCKER_MANIFEST),
    ] {
        let pulled = c.pull(&store, &r(reference)).await.unwrap();
        assert_eq!(pulled.info.media_type, media_type);
        let remote = skopeo(&[
            "inspect",
            "--tls-verify=false",
            &format!("docker://{reference}"),
        ]);
        let v: serde_json::Value = serde_json::from_str(&remote).unwrap();
        assert_eq!(
            v["Digest"],
            pulled.info.digest.as_str(),
            "stored under the registry's digest"
        );
        let cfg = store.config(&pulled.info.digest).unwrap();
        assert_eq!(cfg.cmd, ["/opt/run"]);
        assert!(cfg.env.contains(&"FOO=bar".to_string()));
        assert_eq!(cfg.working_dir, "/opt");
        let dir = store.unpack(reference, root.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("opt/hello.txt")).unwrap(),
            "hello from umoci\n"
        );
    }
    // Same layer both times: the second pull fetched only what differed.
    let again = c.pull(&store, &r(&v2_ref)).await.unwrap();
    assert_eq!(again.blobs_downloaded, 0);
}

#[tokio::test]
async fn pull_of_an_index_picks_the_platform() {
    let reg = Registry::start();
    let (_d, store) = new_store();
    let c = client();
    let mut index = Index {
        schema_version: 2,
        media_type: Some(spec::OCI_INDEX.into()),
        ..Index::default()
    };
    let mut digests = BTreeMap::new();
    for arch in ["amd64", "arm64"] {
        let ctx = context(&[("arch", arch.as_bytes())]);
        let platform = Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: None,
        };
        let opts = BuildOptions {
            platform: Some(platform.clone()),
            ..build_opts(ctx.path(), &format!("multi:{arch}"))
        };
        let built = build(&store, &opts).unwrap();
        c.push(
            &store,
            &format!("multi:{arch}"),
            &r(&format!("{}/multi:{arch}", reg.host())),
            false,
        )
        .await
        .unwrap();
        index.manifests.push(Descriptor {
            platform: Some(platform),
            ..built_desc(&store, &built.info.digest)
        });
        digests.insert(arch, built.info.digest);
    }
    let raw = serde_json::to_vec(&index).unwrap();
    let (status, _, body) = registry::http_with_body(
        &reg.host(),
        "PUT",
        "/v2/multi/manifests/all",
        &[("Content-Type", spec::OCI_INDEX)],
        &raw,
    )
    .unwrap();
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let index_digest = Digest::of(&raw);

    let all = r(&format!("{}/multi:all", reg.host()));
    for arch in ["arm64", "amd64"] {
        let (_e, fresh) = new_store();
        let c = client_with(|o| {
            o.platform = Platform {
                os: "linux".into(),
                architecture: arch.into(),
                variant: None,
            }
        });
        let pulled = c.pull(&fresh, &all).await.unwrap();
        assert_eq!(pulled.info.digest, digests[arch], "{arch}");
        assert_eq!(pulled.source_digest, index_digest);
        assert_eq!(pulled.info.platform, format!("linux/{arch}"));
        let by_index = fresh
            .resolve(&format!("{}/multi@{index_digest}", reg.host()))
            .unwrap()
            .unwrap();
        assert_eq!(
            by_index.digest, digests[arch],
            "resolvable by the index digest it was pulled by"
        );
    }
}

fn built_desc(store: &Store, digest: &Digest) -> Descriptor {
    Descriptor {
        media_type: spec::OCI_MANIFEST.into(),
        digest: digest.clone(),
        size: std::fs::metadata(store.blob_path(digest)).unwrap().len(),
        platform: None,
        annotations: BTreeMap::new(),
    }
}

#[tokio::test]
async fn build_on_a_base_pulled_from_the_registry() {
    let reg = Registry::start();
    let (_d, s1) = new_store();
    let base_ctx = context(&[("usr/lib/base.txt", b"base")]);
    let base_opts = BuildOptions {
        entrypoint: Some(vec!["/usr/bin/base".into()]),
        cmd: Some(vec!["--serve".into()]),
        env: vec!["PATH=/usr/bin".into(), "MODE=base".into()],
        workdir: Some("/srv".into()),
        labels: vec!["from=base".into()],
        ..build_opts(base_ctx.path(), "base:1")
    };
    let base = build(&s1, &base_opts).unwrap();
    let base_ref = format!("{}/base:1", reg.host());
    client()
        .push(&s1, "base:1", &r(&base_ref), false)
        .await
        .unwrap();

    let (_e, s2) = new_store();
    let c = client();
    let got = c.ensure(&s2, &base_ref).await.unwrap();
    assert_eq!(
        got.digest, base.info.digest,
        "pulled because it was missing"
    );
    let child_ctx = context(&[("app.py", b"print(1)")]);
    let child_opts = BuildOptions {
        base: Some(base_ref.clone()),
        entrypoint: Some(vec!["python3".into(), "app.py".into()]),
        env: vec!["MODE=child".into()],
        workdir: Some("app".into()),
        expose: vec!["8080".into()],
        dest: Some("/srv/app".into()),
        ..build_opts(child_ctx.path(), "child:1")
    };
    let child = build(&s2, &child_opts).unwrap();
    assert_eq!(child.info.layers.len(), 2);
    assert_eq!(child.info.layers[0], base.info.layers[0]);
    let cfg = s2.config(&child.info.digest).unwrap();
    assert_eq!(cfg.entrypoint, ["python3", "app.py"]);
    assert!(cfg.cmd.is_empty(), "--entrypoint resets the base's cmd");
    assert_eq!(cfg.env, ["PATH=/usr/bin", "MODE=child"]);
    assert_eq!(cfg.working_dir, "/srv/app");
    assert_eq!(cfg.exposed_ports, ["8080/tcp"]);
    assert_eq!(cfg.labels["from"], "base");
    let root = tempfile::tempdir().unwrap();
    let dir = s2.unpack("child:1", root.path()).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("usr/lib/base.txt")).unwrap(),
        "base"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("srv/app/app.py")).unwrap(),
        "print(1)"
    );
    let child_cfg = s2
        .config_file(&s2.manifest(&child.info.digest).unwrap().config.digest)
        .unwrap();
    assert_eq!(child_cfg.rootfs.diff_ids.len(), 2);
    assert_eq!(child_cfg.history.len(), 2);

    // A missing base in a registry is a clear error.
    let missing = BuildOptions {
        base: Some("nope:1".into()),
        ..build_opts(child_ctx.path(), "x:1")
    };
    let err = build(&s2, &missing).unwrap_err();
    assert!(
        err.to_string()
            .contains("nope:1 not found in the local store"),
        "{err}"
    );
}

#[tokio::test]
async fn missing_tags_and_registries_give_clear_errors() {
    let reg = Registry::start();
    let (_d, store) = new_store();
    let c = client();
    let nope = format!("{}/web:nope", reg.host());
    let err = c.pull(&store, &r(&nope)).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("manifest unknown: {nope} not found in the registry; check the repository and tag")
    );

    let err = c.pull(&store, &r("web:1")).await.unwrap_err();
    assert!(matches!(err, Error::NoRegistry { .. }), "{err}");

    let dead = format!("127.0.0.1:{}/web:1", registry::free_port());
    let err = c.pull(&store, &r(&dead)).await.unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    assert!(
        err.to_string().contains("cannot reach registry 127.0.0.1:"),
        "{err}"
    );
}

#[tokio::test]
async fn basic_auth_against_htpasswd() {
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let reg = Registry::start_with_htpasswd(&format!("ferry:{hash}"));
    let (_d, store) = new_store();
    build(
        &store,
        &build_opts(context(&[("f", b"1")]).path(), "auth:1"),
    )
    .unwrap();
    let dest = r(&format!("{}/auth:1", reg.host()));

    let err = client()
        .push(&store, "auth:1", &dest, false)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("FERRY_REGISTRY_AUTH"), "{err}");

    let wrong = client_with(|o| {
        o.credentials.insert(
            &reg.host(),
            Credential {
                username: "ferry".into(),
                password: "wrong".into(),
            },
        )
    });
    assert!(matches!(
        wrong.push(&store, "auth:1", &dest, false).await,
        Err(Error::Unauthorized { .. })
    ));

    let config = format!(
        r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
        reg.host(),
        base64_of("ferry:s3cret")
    );
    let creds = Credentials::from_docker_config(&config, "test").unwrap();
    let good = client_with(|o| o.credentials = creds);
    let stats = good.push(&store, "auth:1", &dest, false).await.unwrap();
    assert_eq!(stats.blobs_uploaded, 2);
    let (_e, fresh) = new_store();
    good.pull(&fresh, &dest).await.unwrap();
}

fn base64_of(s: &str) -> String {
    use std::io::Write;
    let mut out = Vec::new();
    {
        let mut enc = Base64Writer(&mut out);
        enc.write_all(s.as_bytes()).unwrap();
    }
    String::from_utf8(out).unwrap()
}

/// Tiny base64 (standard alphabet) so the test does not depend on a crate version.
struct Base64Writer<'a>(&'a mut Vec<u8>);
impl std::io::Write for Base64Writer<'_> {
    fn write(&mut self, input: &[u8]) -> std::io::Result<usize> {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for chunk in input.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            self.0.push(T[(n >> 18) as usize & 63]);
            self.0.push(T[(n >> 12) as usize & 63]);
            self.0.push(if chunk.len() > 1 {
                T[(n >> 6) as usize & 63]
            } else {
                b'='
            });
            self.0.push(if chunk.len() > 2 {
                T[n as usize & 63]
            } else {
                b'='
            });
        }
        Ok(input.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn bearer_token_flow() {
    let reg = Registry::start();
    let proxy = TokenProxy::start(&reg.host(), "robot", "t0ken-pass");
    let (_d, store) = new_store();
    let built = build(
        &store,
        &build_opts(context(&[("f", b"bearer")]).path(), "tok:1"),
    )
    .unwrap();
    let dest = r(&format!("{}/tok:1", proxy.host()));

    let anonymous = client();
    let err = anonymous
        .push(&store, "tok:1", &dest, false)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("none are configured"), "{err}");

    let c = client_with(|o| {
        o.credentials.insert(
            &proxy.host(),
            Credential {
                username: "robot".into(),
                password: "t0ken-pass".into(),
            },
        )
    });
    let stats = c.push(&store, "tok:1", &dest, false).await.unwrap();
    assert_eq!(stats.blobs_uploaded, 2);
    let (_e, fresh) = new_store();
    let pulled = c.pull(&fresh, &dest).await.unwrap();
    assert_eq!(pulled.info.digest, built.info.digest);
    assert!(
        proxy
            .token_requests
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 2
    );
    // The token is cached per scope: far fewer challenges than requests.
    assert!(proxy.challenges.load(std::sync::atomic::Ordering::SeqCst) <= 4);
}

#[tokio::test]
async fn regression_registry_credentials_not_sent_across_redirect() {
    // `other` is another origin (another port) posing as a registry: it asks for a
    // bearer token from a realm of its own, which would draw basic credentials out.
    let other = scripted::Scripted::start(|port, req| {
        if req.target.starts_with("/token") {
            return (
                "HTTP/1.1 200 OK\r\nContent-Type: application/json".into(),
                r#"{"token":"t"}"#.into(),
            );
        }
        (
            format!(
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"other\""
            ),
            String::new(),
        )
    });
    let other_host = other.host();
    let expected = format!("Basic {}", base64_of("ferry:s3cret"));
    let want = expected.clone();
    // The registry the credentials are for: asks for them, then sends manifests by a
    // redirect (`pulled`) and blob uploads to a Location on `other` (`pushed`).
    let registered = scripted::Scripted::start(move |_, req| {
        if req.authorization.as_deref() != Some(want.as_str()) {
            return (
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"registry\"".into(),
                String::new(),
            );
        }
        let path = req.target.as_str();
        if path.starts_with("/v2/pulled/manifests/") && req.method == "GET" {
            (
                format!("HTTP/1.1 302 Found\r\nLocation: http://{other_host}{path}"),
                String::new(),
            )
        } else if path.contains("/blobs/uploads/") && req.method == "POST" {
            (
                format!("HTTP/1.1 202 Accepted\r\nLocation: http://{other_host}/upload/1"),
                String::new(),
            )
        } else {
            ("HTTP/1.1 404 Not Found".into(), String::new())
        }
    });
    let client = client_with(|o| {
        o.credentials.insert(
            &registered.host(),
            Credential {
                username: "ferry".into(),
                password: "s3cret".into(),
            },
        )
    });

    // A pull: the manifest GET is redirected to `other`. Twice: the second time the
    // client already holds the registry's basic credentials when `other` poses its
    // bearer challenge, and the realm it names must not get them.
    for round in 0..2 {
        let err = client
            .fetch_manifest(&r(&format!("{}/pulled:1", registered.host())))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains(&other.host()) && msg.contains("another origin"),
            "round {round}: {msg}"
        );
        assert_eq!(
            other.authorizations(),
            Vec::<String>::new(),
            "round {round}: {:?}",
            other.seen()
        );
        assert!(
            !other.seen().iter().any(|s| s.target.starts_with("/token")),
            "round {round}: the realm of another origin was asked for a token: {:?}",
            other.seen()
        );
    }

    // A push: the upload Location points at `other`.
    let (_d, store) = new_store();
    build(
        &store,
        &build_opts(context(&[("f", b"1")]).path(), "leak:1"),
    )
    .unwrap();
    let dest = r(&format!("{}/pushed:1", registered.host()));
    let err = client
        .push(&store, "leak:1", &dest, false)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert_eq!(
        other.authorizations(),
        Vec::<String>::new(),
        "{:?}",
        other.seen()
    );
    assert!(
        other
            .seen()
            .iter()
            .any(|s| s.target.starts_with("/upload/1")),
        "the upload did go to the Location, only without credentials: {:?}",
        other.seen()
    );
    assert!(
        registered.authorizations().iter().all(|a| a == &expected)
            && !registered.authorizations().is_empty(),
        "the registry itself got its credentials"
    );
}
