//! `ferry image import`/`export` against real files: root filesystem tarballs,
//! `docker save`-shaped archives and OCI archives made here, hostile archives, and
//! `skopeo` as an independent reader and writer when it is installed.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;

use ferry_oci::digest::Digest;
use ferry_oci::spec::{self, ConfigFile, Index};
use ferry_oci::{Error, ImportOptions, Store, export, import};

fn new_store() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path().join("images")).unwrap();
    (d, s)
}

fn opts(tag: Option<&str>) -> ImportOptions {
    ImportOptions {
        tag: tag.map(str::to_string),
        ..ImportOptions::default()
    }
}

fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// One tar entry: path, kind, mode, owner, content or link target.
struct E<'a>(&'a str, tar::EntryType, u32, u64, &'a [u8]);

fn tar_of(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for E(path, kind, mode, owner, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(*mode);
        h.set_uid(*owner);
        h.set_gid(*owner);
        h.set_mtime(1_700_000_000);
        match kind {
            tar::EntryType::Symlink | tar::EntryType::Link => {
                h.set_size(0);
                b.append_link(&mut h, path, std::str::from_utf8(data).unwrap())
                    .unwrap();
            }
            _ => {
                h.set_size(data.len() as u64);
                // append_data refuses `..`; hostile names are written raw.
                if path.contains("..") {
                    let name = h.as_old_mut();
                    name.name[..path.len()].copy_from_slice(path.as_bytes());
                    h.set_cksum();
                    b.append(&h, *data).unwrap();
                } else {
                    b.append_data(&mut h, path, *data).unwrap();
                }
            }
        }
    }
    b.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn sha(bytes: &[u8]) -> Digest {
    Digest::of(bytes)
}

/// An outer archive from `(name, bytes)` members.
fn archive_of(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

const F: tar::EntryType = tar::EntryType::Regular;
const D: tar::EntryType = tar::EntryType::Directory;
const L: tar::EntryType = tar::EntryType::Symlink;

/// A root filesystem tarball, plain and gzip, imports with its config options and
/// unpacks to the same content, modes and (as root) owners.
#[test]
fn rootfs_tarball_imports_and_unpacks_the_same() {
    let t = tempfile::tempdir().unwrap();
    let rootfs = tar_of(&[
        E("./", D, 0o755, 0, b""),
        E("./etc/", D, 0o755, 0, b""),
        E("./etc/os-release", F, 0o644, 0, b"ID=test\n"),
        E("./usr/bin/", D, 0o755, 0, b""),
        E("./usr/bin/tool", F, 0o755, 0, b"#!/bin/sh\necho hi\n"),
        E("./bin", L, 0o777, 0, b"usr/bin"),
        E("./home/app/", D, 0o700, 1000, b""),
        E("./home/app/notes", F, 0o600, 1000, b"secret"),
    ]);
    let plain = t.path().join("rootfs.tar");
    fs::write(&plain, &rootfs).unwrap();
    let gz = t.path().join("rootfs.tar.gz");
    fs::write(&gz, gzip(&rootfs)).unwrap();

    let (_d, store) = new_store();
    let mut o = opts(Some("base:1"));
    o.cmd = Some(vec!["python3".into()]);
    o.env = vec!["LANG=C.UTF-8".into()];
    o.workdir = Some("/home/app".into());
    o.user = Some("1000".into());
    let res = import(&store, &plain, &o).unwrap();
    assert_eq!(res.images.len(), 1);
    assert_eq!(res.images[0].reference, "base:1");
    assert_eq!(res.images[0].layers, 1);
    let info = store.get("base:1").unwrap();
    assert_eq!(info.digest, res.images[0].digest);
    let cfg = store.config(&info.digest).unwrap();
    assert_eq!(cfg.cmd, vec!["python3"]);
    assert!(cfg.env.contains(&"LANG=C.UTF-8".to_string()));
    assert!(cfg.env.iter().any(|e| e.starts_with("PATH=")));
    assert_eq!(cfg.working_dir, "/home/app");
    assert_eq!(cfg.user.as_deref(), Some("1000"));
    assert_eq!(
        format!("{}/{}", cfg.os, cfg.architecture),
        spec::Platform::host().to_string()
    );
    // Reproducible: the same file gives the same image.
    let again = import(&store, &plain, &o).unwrap();
    assert_eq!(again.images[0].digest, res.images[0].digest);

    // The gzip file is kept as it is: its digest is the layer's.
    let res_gz = import(&store, &gz, &opts(Some("base:gz"))).unwrap();
    let gz_info = store.get("base:gz").unwrap();
    assert_eq!(gz_info.layers, vec![sha(&fs::read(&gz).unwrap())]);
    assert_eq!(res_gz.images[0].layers, 1);

    for reference in ["base:1", "base:gz"] {
        let root = store.unpack(reference, &t.path().join("rootfs")).unwrap();
        assert_eq!(fs::read(root.join("etc/os-release")).unwrap(), b"ID=test\n");
        assert_eq!(
            fs::read(root.join("bin/tool")).unwrap(),
            b"#!/bin/sh\necho hi\n"
        );
        assert_eq!(
            fs::read_link(root.join("bin")).unwrap(),
            PathBuf::from("usr/bin")
        );
        let mode = |p: &str| fs::symlink_metadata(root.join(p)).unwrap().mode() & 0o7777;
        assert_eq!(mode("usr/bin/tool"), 0o755);
        assert_eq!(mode("home/app/notes"), 0o600);
        if is_root() {
            assert_eq!(mode("home/app"), 0o700);
            let m = fs::metadata(root.join("home/app")).unwrap();
            assert_eq!((m.uid(), m.gid()), (1000, 1000));
            let m = fs::metadata(root.join("home/app/notes")).unwrap();
            assert_eq!((m.uid(), m.gid()), (1000, 1000));
        } else {
            eprintln!("not root: owners cannot be given away, not checking them");
        }
    }
}

/// A `docker save` archive: `<id>.json` config, `<id>/layer.tar` layers,
/// manifest.json with RepoTags.
fn docker_save(layers: &[Vec<u8>], repo_tags: &[&str]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha(l).to_string()).collect();
    let config = serde_json::json!({
        "architecture": spec::Platform::host().architecture,
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config_raw = serde_json::to_vec(&config).unwrap();
    let config_name = format!("{}.json", sha(&config_raw).hex());
    let mut members = vec![];
    let mut layer_names = vec![];
    for l in layers {
        let name = format!("{}/layer.tar", sha(l).hex());
        members.push((name.clone(), l.clone()));
        layer_names.push(name);
    }
    members.push((config_name.clone(), config_raw));
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": repo_tags,
        "Layers": layer_names,
    }]);
    // docker save writes manifest.json last.
    members.push((
        "manifest.json".to_string(),
        serde_json::to_vec(&manifest).unwrap(),
    ));
    archive_of(&members)
}

#[test]
fn docker_save_archive_imports_with_whiteouts() {
    let t = tempfile::tempdir().unwrap();
    let l1 = tar_of(&[
        E("etc/", D, 0o755, 0, b""),
        E("etc/keep", F, 0o644, 0, b"keep"),
        E("etc/gone", F, 0o644, 0, b"gone"),
    ]);
    let l2 = tar_of(&[
        E("etc/.wh.gone", F, 0o644, 0, b""),
        E("etc/new", F, 0o644, 0, b"new"),
    ]);
    let file = t.path().join("save.tar");
    fs::write(
        &file,
        docker_save(&[l1, l2], &["team/app:1", "team/app:latest"]),
    )
    .unwrap();
    let (_d, store) = new_store();
    let res = import(&store, &file, &opts(None)).unwrap();
    let refs: Vec<&str> = res.images.iter().map(|i| i.reference.as_str()).collect();
    assert_eq!(refs, ["team/app:1", "team/app:latest"]);
    assert_eq!(res.images[0].layers, 2);
    assert_eq!(res.images[0].digest, res.images[1].digest);
    let cfg = store.config(&res.images[0].digest).unwrap();
    assert_eq!(cfg.cmd, vec!["/bin/sh"]);
    let root = store
        .unpack("team/app:1", &t.path().join("rootfs"))
        .unwrap();
    assert_eq!(fs::read(root.join("etc/keep")).unwrap(), b"keep");
    assert_eq!(fs::read(root.join("etc/new")).unwrap(), b"new");
    assert!(!root.join("etc/gone").exists());

    // -t renames the single image.
    let res = import(&store, &file, &opts(Some("other:2"))).unwrap();
    assert_eq!(res.images.len(), 1);
    assert_eq!(res.images[0].reference, "other:2");
    // Options that only a root filesystem can take are refused for an archive.
    let mut o = opts(None);
    o.cmd = Some(vec!["x".into()]);
    let err = import(&store, &file, &o).unwrap_err().to_string();
    assert!(err.contains("root filesystem tarballs only"), "{err}");
}

#[test]
fn export_reimports_to_the_same_digest() {
    let t = tempfile::tempdir().unwrap();
    let (_d, store) = new_store();
    let rootfs = tar_of(&[E("hello", F, 0o644, 0, b"world")]);
    let file = t.path().join("rootfs.tar");
    fs::write(&file, rootfs).unwrap();
    let mut o = opts(Some("hello:1"));
    o.entrypoint = Some(vec!["/hello".into()]);
    let imported = import(&store, &file, &o).unwrap();
    let out = t.path().join("hello.oci.tar");
    let exported = export(&store, "hello:1", &out).unwrap();
    assert_eq!(exported.digest, imported.images[0].digest);
    assert_eq!(exported.reference, "hello:1");
    assert_eq!(exported.bytes, fs::metadata(&out).unwrap().len());
    // Export is deterministic.
    let out2 = t.path().join("again.tar");
    export(&store, "hello:1", &out2).unwrap();
    assert_eq!(fs::read(&out).unwrap(), fs::read(&out2).unwrap());

    let (_d2, other) = new_store();
    let res = import(&other, &out, &opts(None)).unwrap();
    assert_eq!(res.images.len(), 1);
    assert_eq!(res.images[0].reference, "hello:1");
    assert_eq!(res.images[0].digest, imported.images[0].digest);
    assert_eq!(
        other.config(&res.images[0].digest).unwrap().entrypoint,
        vec!["/hello"]
    );
    // And under another name.
    let res = import(&other, &out, &opts(Some("renamed:2"))).unwrap();
    assert_eq!(res.images[0].digest, imported.images[0].digest);
}

/// Everything in the store: index.json and the blob names.
fn snapshot(store: &Store) -> (String, Vec<String>) {
    let index = fs::read_to_string(store.root().join("index.json")).unwrap();
    let mut blobs: Vec<String> = fs::read_dir(store.root().join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    blobs.sort();
    let tmp: Vec<_> = fs::read_dir(store.root().join(".tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(tmp.is_empty(), "temp files left behind: {tmp:?}");
    (index, blobs)
}

#[test]
fn hostile_archives_are_refused_naming_the_entry() {
    let t = tempfile::tempdir().unwrap();
    let (_d, store) = new_store();
    // Something already tagged, to see that nothing moves.
    let base = t.path().join("base.tar");
    fs::write(&base, tar_of(&[E("a", F, 0o644, 0, b"a")])).unwrap();
    import(&store, &base, &opts(Some("victim:1"))).unwrap();
    let before = snapshot(&store);

    let climb = tar_of(&[
        E("ok", F, 0o644, 0, b"fine"),
        E("../../x", F, 0o644, 0, b"evil"),
    ]);
    let through_link = tar_of(&[
        E("etc", L, 0o777, 0, b"/etc"),
        E("etc/cron.d/evil", F, 0o644, 0, b"* * * * * root sh"),
    ]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("climb.tar", climb.clone(), "../../x"),
        ("link.tar", through_link.clone(), "etc/cron.d/evil"),
        ("climb.tar.gz", gzip(&climb), "../../x"),
        // In a docker save archive, as the second layer of an image.
        (
            "save.tar",
            docker_save(
                &[tar_of(&[E("a", F, 0o644, 0, b"a")]), through_link],
                &["victim:1"],
            ),
            "etc/cron.d/evil",
        ),
    ];
    for (name, bytes, entry) in cases {
        let f = t.path().join(name);
        fs::write(&f, bytes).unwrap();
        let err = import(&store, &f, &opts(Some("victim:1"))).unwrap_err();
        assert!(matches!(err, Error::UnsafePath { .. }), "{name}: {err}");
        let msg = err.to_string();
        assert!(msg.contains(entry), "{name}: {msg}");
        assert_eq!(snapshot(&store), before, "{name} changed the store");
    }
    // Through the symlink the message names the link too.
    let err = import(&store, &t.path().join("link.tar"), &opts(Some("x:1")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("etc -> /etc"), "{err}");
}

#[test]
fn corrupt_digests_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let (_d, store) = new_store();
    let rootfs = t.path().join("r.tar");
    fs::write(&rootfs, tar_of(&[E("f", F, 0o644, 0, b"content")])).unwrap();
    import(&store, &rootfs, &opts(Some("good:1"))).unwrap();
    let good = t.path().join("good.tar");
    export(&store, "good:1", &good).unwrap();
    let before = snapshot(&store);

    // Flip a byte of the layer blob inside the OCI archive: same length, other hash.
    let info = store.get("good:1").unwrap();
    let layer = store.read_blob(&info.layers[0]).unwrap();
    let mut members: Vec<(String, Vec<u8>)> = Vec::new();
    let mut a = tar::Archive::new(fs::File::open(&good).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = e.path().unwrap().display().to_string();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        if data == layer {
            let last = data.len() - 1;
            data[last] ^= 0xff;
        }
        members.push((name, data));
    }
    let bad = t.path().join("bad.tar");
    fs::write(&bad, archive_of(&members)).unwrap();
    let err = import(&store, &bad, &opts(Some("good:1"))).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(info.layers[0].as_str()), "{err}");
    assert_eq!(snapshot(&store), before);

    // A docker save layer whose content does not match its diff id in the config.
    let l = tar_of(&[E("x", F, 0o644, 0, b"x")]);
    let mut save = docker_save(std::slice::from_ref(&l), &["d:1"]);
    // The layer's one file holds `x`, right after its 512-byte header.
    let at = find(&save, &l).unwrap() + 512;
    assert_eq!(save[at], b'x');
    save[at] = b'y';
    let f = t.path().join("save.tar");
    fs::write(&f, save).unwrap();
    let err = import(&store, &f, &opts(None)).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert_eq!(snapshot(&store), before);
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn skopeo_missing() -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("skopeo").is_file()))
        .unwrap_or(false);
    if !found {
        eprintln!("skipping: `skopeo` is not installed (apt-get install skopeo)");
    }
    !found
}

fn skopeo(args: &[&str]) {
    let out = Command::new("skopeo")
        .args(["--insecure-policy"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// skopeo reads ferry's export, and ferry imports what skopeo writes as
/// `docker-archive:` and `oci-archive:`.
#[test]
fn skopeo_reads_exports_and_writes_importable_archives() {
    if skopeo_missing() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (_d, store) = new_store();
    let rootfs = t.path().join("r.tar");
    fs::write(
        &rootfs,
        tar_of(&[
            E("etc/", D, 0o755, 0, b""),
            E("etc/motd", F, 0o644, 0, b"hello from ferry"),
        ]),
    )
    .unwrap();
    let mut o = opts(Some("motd:1"));
    o.cmd = Some(vec!["cat".into(), "/etc/motd".into()]);
    let imported = import(&store, &rootfs, &o).unwrap();
    let digest = imported.images[0].digest.clone();
    let oci_file = t.path().join("motd.tar");
    export(&store, "motd:1", &oci_file).unwrap();

    // skopeo copies ferry's archive into a layout; the manifest is kept byte for byte.
    let dir = t.path().join("layout");
    skopeo(&[
        "copy",
        &format!("oci-archive:{}", oci_file.display()),
        &format!("oci:{}:copied", dir.display()),
    ]);
    let idx: Index = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(idx.manifests[0].digest, digest);

    // skopeo's docker-archive: and oci-archive: files import.
    let docker_file = t.path().join("docker.tar");
    skopeo(&[
        "copy",
        &format!("oci-archive:{}", oci_file.display()),
        &format!("docker-archive:{}:team/motd:2", docker_file.display()),
    ]);
    let skopeo_oci = t.path().join("skopeo-oci.tar");
    skopeo(&[
        "copy",
        &format!("oci:{}:copied", dir.display()),
        &format!("oci-archive:{}:team/motd:3", skopeo_oci.display()),
    ]);
    let (_d2, other) = new_store();
    let res = import(&other, &docker_file, &opts(None)).unwrap();
    assert_eq!(res.images[0].reference, "team/motd:2");
    let res = import(&other, &skopeo_oci, &opts(None)).unwrap();
    assert_eq!(res.images[0].reference, "team/motd:3");
    assert_eq!(res.images[0].digest, digest);
    for reference in ["team/motd:2", "team/motd:3"] {
        let cfg = other.config(&other.get(reference).unwrap().digest).unwrap();
        assert_eq!(cfg.cmd, vec!["cat", "/etc/motd"]);
        let root = other.unpack(reference, &t.path().join("rootfs")).unwrap();
        assert_eq!(
            fs::read(root.join("etc/motd")).unwrap(),
            b"hello from ferry"
        );
        let config: ConfigFile = other
            .config_file(&other.get(reference).unwrap().config_digest)
            .unwrap();
        assert_eq!(config.rootfs.diff_ids.len(), 1);
    }
}

/// `docker save` of two images that share a layer writes it once and links the
/// second copy; both import, and `-t` (one name) is refused for two images.
#[test]
fn docker_save_with_two_images_and_a_linked_layer() {
    let t = tempfile::tempdir().unwrap();
    let shared = tar_of(&[E("shared", F, 0o644, 0, b"both")]);
    let own = tar_of(&[E("own", F, 0o644, 0, b"second")]);
    let config = |layers: &[&Vec<u8>], cmd: &str| {
        let diff_ids: Vec<String> = layers.iter().map(|l| sha(l).to_string()).collect();
        serde_json::to_vec(&serde_json::json!({
            "architecture": spec::Platform::host().architecture,
            "os": "linux",
            "config": {"Cmd": [cmd]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap()
    };
    let c1 = config(&[&shared], "one");
    let c2 = config(&[&shared, &own], "two");
    let manifest = serde_json::json!([
        {"Config": format!("{}.json", sha(&c1).hex()), "RepoTags": ["docker.io/library/one:1"], "Layers": ["aaa/layer.tar"]},
        {"Config": format!("{}.json", sha(&c2).hex()), "RepoTags": ["two:1"], "Layers": ["bbb/layer.tar", "ccc/layer.tar"]},
    ]);
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, data).unwrap();
    };
    add("aaa/layer.tar", &shared);
    add("ccc/layer.tar", &own);
    add(&format!("{}.json", sha(&c1).hex()), &c1);
    add(&format!("{}.json", sha(&c2).hex()), &c2);
    add("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o777);
    h.set_size(0);
    b.append_link(&mut h, "bbb/layer.tar", "../aaa/layer.tar")
        .unwrap();
    let file = t.path().join("two.tar");
    fs::write(&file, b.into_inner().unwrap()).unwrap();

    let (_d, store) = new_store();
    let err = import(&store, &file, &opts(Some("x:1")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("holds 2"), "{err}");
    let res = import(&store, &file, &opts(None)).unwrap();
    let refs: Vec<&str> = res.images.iter().map(|i| i.reference.as_str()).collect();
    assert_eq!(refs, ["one:1", "two:1"]);
    assert_eq!(res.images[1].layers, 2);
    let root = store.unpack("two:1", &t.path().join("rootfs")).unwrap();
    assert_eq!(fs::read(root.join("shared")).unwrap(), b"both");
    assert_eq!(fs::read(root.join("own")).unwrap(), b"second");
    assert_eq!(
        store.config(&res.images[0].digest).unwrap().cmd,
        vec!["one"]
    );
}
