//! The Dockerfile executor end to end: real builds into a temporary image store, from
//! a base image made of Debian's `busybox-static`, `RUN` through real runc. Tests
//! that need `RUN` are skipped, with the reason printed, where containers cannot run
//! (not root, no runc, no static busybox).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ferry_build::{BuildOptions, BuildOutput, BuildRequest, Error, build};
use ferry_oci::Store;
use serde_json::Value;

const BUSYBOX: &str = "/bin/busybox";
const APPLETS: &[&str] = &[
    "sh", "cat", "ls", "id", "mkdir", "echo", "rm", "chmod", "touch", "test", "true", "false",
    "env", "stat",
];

/// Why `RUN` cannot be tested here, if it cannot.
fn run_skip_reason() -> Option<String> {
    if !ferry_container::procfs::is_root() {
        return Some("not running as root".into());
    }
    if !ferry_container::find_runc().is_file() {
        return Some("runc is not installed (Debian package runc)".into());
    }
    let head = fs::read(BUSYBOX).unwrap_or_default();
    if head.is_empty() || head.windows(7).take(8192).any(|w| w == b"ld-linu") {
        return Some(format!(
            "{BUSYBOX} is missing or not static (Debian package busybox-static)"
        ));
    }
    None
}

struct H {
    tmp: tempfile::TempDir,
    store: Store,
}

impl H {
    /// A store holding `busybox:test`, or `None` when busybox is missing.
    fn new() -> Option<H> {
        if !Path::new(BUSYBOX).is_file() {
            eprintln!("skipped: {BUSYBOX} is missing (Debian package busybox-static)");
            return None;
        }
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path().join("images")).unwrap();
        let root = tmp.path().join("base");
        for d in ["bin", "etc", "tmp", "home/app"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
        for a in APPLETS {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
        }
        fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:App:/home/app:/bin/sh\n",
        )
        .unwrap();
        fs::write(root.join("etc/group"), "root:x:0:\napp:x:1000:\n").unwrap();
        ferry_oci::build(
            &store,
            &ferry_oci::BuildOptions {
                context: root,
                tag: "busybox:test".into(),
                ..ferry_oci::BuildOptions::default()
            },
        )
        .unwrap();
        Some(H { tmp, store })
    }

    /// Like `new`, but `None` (reason printed) where `RUN` cannot run.
    fn with_run() -> Option<H> {
        if let Some(why) = run_skip_reason() {
            eprintln!("skipped: {why}");
            return None;
        }
        H::new()
    }

    fn context(&self, files: &[(&str, &str)]) -> PathBuf {
        let ctx = self.tmp.path().join("ctx");
        for (name, content) in files {
            let p = ctx.join(name);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, content).unwrap();
        }
        fs::create_dir_all(&ctx).unwrap();
        ctx
    }

    fn request(&self, dockerfile: &str, files: &[(&str, &str)]) -> BuildRequest {
        let ctx = self.context(files);
        fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
        BuildRequest {
            dockerfile: ctx.join("Dockerfile"),
            context: ctx,
            tags: vec!["out:latest".into()],
            options: BuildOptions::default(),
            no_cache: false,
            source_date_epoch: None,
            home: self.tmp.path().join("home"),
            cancel: None,
        }
    }

    async fn build(&self, req: &BuildRequest) -> (Result<BuildOutput, Error>, String) {
        let mut progress = Vec::new();
        let r = build(&self.store, req, None, &mut progress).await;
        let text = String::from_utf8_lossy(&progress).into_owned();
        eprintln!("{text}");
        (r, text)
    }

    async fn ok(&self, req: &BuildRequest) -> (BuildOutput, String) {
        let (r, text) = self.build(req).await;
        match r {
            Ok(o) => (o, text),
            Err(e) => panic!("build failed: {e}\n{text}"),
        }
    }

    fn config(&self, out: &BuildOutput) -> Value {
        serde_json::from_slice(&self.store.read_blob(&out.config_digest).unwrap()).unwrap()
    }

    fn unpack(&self, out: &BuildOutput) -> PathBuf {
        self.store
            .unpack(out.digest.as_str(), &self.tmp.path().join("unpacked"))
            .unwrap()
    }

    /// The names in the image's last layer.
    fn last_layer_names(&self, out: &BuildOutput) -> Vec<String> {
        let m = self.store.manifest(&out.digest).unwrap();
        let blob = self.store.blob_path(&m.layers.last().unwrap().digest);
        let gz = flate2::read::GzDecoder::new(fs::File::open(blob).unwrap());
        let mut a = tar::Archive::new(gz);
        a.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect()
    }
}

#[tokio::test]
async fn multi_stage_build_gives_config_files_owners_and_modes() {
    let Some(h) = H::with_run() else { return };
    let df = "\
FROM busybox:test AS builder
RUN mkdir -p /out && echo built > /out/result && chmod 640 /out/result
FROM busybox:test
COPY --from=builder /out/result /app/result
COPY --chown=app:app hello.txt /app/
COPY --chmod=600 plain.txt /app/
USER app
WORKDIR /app
ENV GREETING=hi
CMD [\"cat\", \"/app/result\"]
EXPOSE 8080
LABEL team=ferry
HEALTHCHECK --interval=5s CMD [\"true\"]
";
    let req = h.request(df, &[("hello.txt", "hello\n"), ("plain.txt", "plain\n")]);
    let (out, progress) = h.ok(&req).await;
    assert!(progress.contains("] RUN mkdir -p /out"), "{progress}");
    let c = h.config(&out);
    let rc = &c["config"];
    let env: Vec<&str> = rc["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env.contains(&"GREETING=hi"), "{env:?}");
    assert!(env.iter().any(|e| e.starts_with("PATH=")), "{env:?}");
    assert_eq!(rc["WorkingDir"], "/app");
    assert_eq!(rc["User"], "app");
    assert_eq!(rc["Cmd"], serde_json::json!(["cat", "/app/result"]));
    assert!(rc["ExposedPorts"].get("8080/tcp").is_some(), "{rc}");
    assert_eq!(rc["Labels"]["team"], "ferry");
    assert_eq!(
        rc["Healthcheck"]["Test"],
        serde_json::json!(["CMD", "true"])
    );
    assert_eq!(rc["Healthcheck"]["Interval"], 5_000_000_000u64);

    let root = h.unpack(&out);
    assert_eq!(
        fs::read_to_string(root.join("app/result")).unwrap(),
        "built\n"
    );
    let m = fs::metadata(root.join("app/result")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o640, 0, 0));
    let m = fs::metadata(root.join("app/hello.txt")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1000, 1000), "--chown=app:app");
    let m = fs::metadata(root.join("app/plain.txt")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o600, 0, 0));
    assert!(
        !root.join("out").exists(),
        "the builder stage's files stay there"
    );
    assert_eq!(
        h.store.get("out:latest").unwrap().digest,
        out.digest,
        "tagged"
    );
    // Nothing of the build is left under FERRY_HOME/build.
    let left: Vec<_> = fs::read_dir(h.tmp.path().join("home/build"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn run_that_deletes_a_base_file_writes_a_whiteout() {
    let Some(h) = H::with_run() else { return };
    let req = h.request("FROM busybox:test\nRUN rm /etc/group\n", &[]);
    let (out, _) = h.ok(&req).await;
    let names = h.last_layer_names(&out);
    assert!(names.iter().any(|n| n == "etc/.wh.group"), "{names:?}");
    // Only the deletion: runc's mount points are no part of the layer.
    assert_eq!(names, ["etc/.wh.group"], "{names:?}");
    let root = h.unpack(&out);
    assert!(!root.join("etc/group").exists());
    assert!(root.join("etc/passwd").exists());
}

#[tokio::test]
async fn dockerignore_excludes_files_and_copy_without_chown_is_root() {
    let Some(h) = H::new() else { return };
    let req = h.request(
        "FROM busybox:test\nCOPY . /ctx/\nCOPY sub /flat/\nCOPY *.txt /one.txt\nCOPY sub/*.txt keep.* /globbed/\n",
        &[
            (".dockerignore", "secret.txt\n*.log\n"),
            ("keep.txt", "k"),
            ("secret.txt", "s"),
            ("debug.log", "l"),
            ("sub/inner.txt", "i"),
        ],
    );
    let (out, _) = h.ok(&req).await;
    let root = h.unpack(&out);
    assert!(root.join("ctx/keep.txt").is_file());
    assert!(root.join("ctx/sub/inner.txt").is_file());
    assert!(!root.join("ctx/secret.txt").exists());
    assert!(!root.join("ctx/debug.log").exists());
    assert!(
        root.join("flat/inner.txt").is_file(),
        "a directory's contents"
    );
    assert_eq!(
        fs::read_to_string(root.join("one.txt")).unwrap(),
        "k",
        "a glob matching one file (the other is ignored) copies to a file name"
    );
    assert!(root.join("globbed/inner.txt").is_file());
    assert!(root.join("globbed/keep.txt").is_file());
    let m = fs::metadata(root.join("ctx/keep.txt")).unwrap();
    assert_eq!((m.uid(), m.gid()), (0, 0));
}

#[tokio::test]
async fn user_app_cannot_write_into_a_root_owned_copy() {
    let Some(h) = H::with_run() else { return };
    let req = h.request(
        "FROM busybox:test\nCOPY data.txt /srv/data.txt\nUSER app\nRUN echo more >> /srv/data.txt\n",
        &[("data.txt", "data\n")],
    );
    h.ok(&{
        let mut r = req.clone();
        r.dockerfile = r.context.join("Dockerfile.ok");
        fs::write(&r.dockerfile, "FROM busybox:test\n").unwrap();
        r
    })
    .await;
    let before = h.store.get("out:latest").unwrap().digest;
    // WORKDIR after USER makes a directory the user owns, as buildkit does.
    let mut own = req.clone();
    own.dockerfile = own.context.join("Dockerfile.own");
    fs::write(
        &own.dockerfile,
        "FROM busybox:test\nUSER app\nWORKDIR /work\nRUN echo mine > /work/f\n",
    )
    .unwrap();
    own.tags = vec!["own:1".into()];
    let (out, _) = h.ok(&own).await;
    let root = h.unpack(&out);
    let m = fs::metadata(root.join("work/f")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1000, 1000));

    let (r, _) = h.build(&req).await;
    let e = r.expect_err("a permission error");
    let msg = e.to_string();
    assert!(msg.starts_with("Dockerfile:4: RUN echo more"), "{msg}");
    assert!(msg.contains("exited with 1"), "{msg}");
    assert!(msg.contains("Permission denied"), "{msg}");
    assert_eq!(
        h.store.get("out:latest").unwrap().digest,
        before,
        "a failed build moves no tag"
    );
}

#[tokio::test]
async fn rebuild_uses_the_cache_and_a_changed_file_reruns_only_later_steps() {
    let Some(h) = H::with_run() else { return };
    let df = "\
FROM busybox:test
COPY a.txt /a.txt
RUN echo ran >> /marker
COPY b.txt /b.txt
RUN cat /b.txt > /b2
";
    let req = h.request(df, &[("a.txt", "a"), ("b.txt", "b1")]);
    let (first, _) = h.ok(&req).await;
    assert_eq!((first.ran, first.cached), (4, 0));

    let (second, progress) = h.ok(&req).await;
    assert_eq!((second.ran, second.cached), (0, 4), "{progress}");
    assert!(
        progress.contains("CACHED RUN echo ran >> /marker"),
        "{progress}"
    );
    assert_eq!(second.digest, first.digest, "nothing changed, same image");

    fs::write(req.context.join("b.txt"), "b2").unwrap();
    let (third, progress) = h.ok(&req).await;
    assert_eq!((third.ran, third.cached), (2, 2), "{progress}");
    assert!(progress.contains("CACHED RUN echo ran"), "{progress}");
    let root = h.unpack(&third);
    assert_eq!(fs::read_to_string(root.join("marker")).unwrap(), "ran\n");
    assert_eq!(fs::read_to_string(root.join("b2")).unwrap(), "b2");

    let mut no_cache = req.clone();
    no_cache.no_cache = true;
    let (fourth, _) = h.ok(&no_cache).await;
    assert_eq!((fourth.ran, fourth.cached), (4, 0), "--no-cache");
}

#[tokio::test]
async fn same_inputs_and_source_date_epoch_give_the_same_digest() {
    let Some(h) = H::with_run() else { return };
    let mut req = h.request(
        "FROM busybox:test\nCOPY f.txt /f.txt\nRUN mkdir /made && echo x > /made/x\nWORKDIR /w\n",
        &[("f.txt", "f")],
    );
    req.no_cache = true;
    req.source_date_epoch = Some(1_700_000_000);
    let (a, _) = h.ok(&req).await;
    let (b, _) = h.ok(&req).await;
    assert_eq!(a.digest, b.digest);
    assert_eq!(h.config(&a)["created"], "2023-11-14T22:13:20Z");
}

#[tokio::test]
async fn target_builds_only_the_needed_stages() {
    let Some(h) = H::new() else { return };
    let df = "\
FROM busybox:test AS a
COPY a.txt /a.txt
FROM busybox:test AS broken
COPY missing.txt /
FROM a AS c
COPY c.txt /c.txt
";
    let mut req = h.request(df, &[("a.txt", "a"), ("c.txt", "c")]);
    req.options.target = Some("c".into());
    let (out, progress) = h.ok(&req).await;
    assert!(!progress.contains("missing.txt"), "{progress}");
    let root = h.unpack(&out);
    assert!(root.join("a.txt").is_file() && root.join("c.txt").is_file());

    req.options.target = Some("broken".into());
    let msg = h.build(&req).await.0.expect_err("missing file").to_string();
    assert!(msg.starts_with("Dockerfile:4: COPY missing.txt"), "{msg}");
    assert!(msg.contains("excluded by .dockerignore"), "{msg}");
}

#[tokio::test]
async fn add_unpacks_local_archives_and_refuses_urls() {
    let Some(h) = H::new() else { return };
    let ctx = h.context(&[]);
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        fs::File::create(ctx.join("arch.tar.gz")).unwrap(),
        flate2::Compression::default(),
    ));
    let mut hd = tar::Header::new_gnu();
    hd.set_size(3);
    hd.set_mode(0o644);
    hd.set_cksum();
    builder
        .append_data(&mut hd, "inner/x.txt", &b"xyz"[..])
        .unwrap();
    builder.into_inner().unwrap().finish().unwrap();
    let req = h.request("FROM busybox:test\nADD arch.tar.gz /opt/\n", &[]);
    let (out, _) = h.ok(&req).await;
    let root = h.unpack(&out);
    assert_eq!(
        fs::read_to_string(root.join("opt/inner/x.txt")).unwrap(),
        "xyz"
    );

    let req = h.request("FROM busybox:test\nADD https://example.com/x /x\n", &[]);
    let msg = h.build(&req).await.0.expect_err("refused").to_string();
    assert!(msg.starts_with("Dockerfile:2: ADD https"), "{msg}");
    assert!(msg.contains("not supported"), "{msg}");
}

#[tokio::test]
async fn a_missing_base_image_names_the_from_line() {
    let Some(h) = H::new() else { return };
    let req = h.request("# base\nFROM nothere:1\n", &[]);
    let msg = h.build(&req).await.0.expect_err("missing").to_string();
    assert!(msg.starts_with("Dockerfile:2: FROM nothere:1"), "{msg}");
    assert!(
        msg.contains("ferry image pull") && msg.contains("ferry image import"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_build_removes_what_a_killed_build_left() {
    let Some(h) = H::new() else { return };
    // Named after a pid above any pid_max: that process is surely gone.
    let stale = h.tmp.path().join("home/build/999999999-1/stage-0/rootfs");
    fs::create_dir_all(&stale).unwrap();
    fs::write(stale.join("junk"), "x").unwrap();
    let req = h.request("FROM busybox:test\nENV A=1\n", &[]);
    h.ok(&req).await;
    assert!(!h.tmp.path().join("home/build/999999999-1").exists());
}

#[tokio::test]
async fn platforms_other_than_the_host_are_refused() {
    let Some(h) = H::new() else { return };
    let mut req = h.request("FROM busybox:test\n", &[]);
    let other = if cfg!(target_arch = "x86_64") {
        "linux/arm64"
    } else {
        "linux/amd64"
    };
    req.options.platform = Some(ferry_build::Platform::parse(other).unwrap());
    let msg = h.build(&req).await.0.expect_err("refused").to_string();
    assert!(msg.contains("only for this machine's platform"), "{msg}");
}

#[tokio::test]
async fn config_instructions_follow_docker() {
    let Some(h) = H::new() else { return };
    ferry_oci::build(
        &h.store,
        &ferry_oci::BuildOptions {
            context: h.context(&[]),
            tag: "withcmd:1".into(),
            base: Some("busybox:test".into()),
            cmd: Some(vec!["sh".into()]),
            ..ferry_oci::BuildOptions::default()
        },
    )
    .unwrap();
    // An ENTRYPOINT resets the CMD inherited from the base.
    let req = h.request("FROM withcmd:1\nENTRYPOINT [\"/bin/echo\"]\n", &[]);
    let (out, _) = h.ok(&req).await;
    let c = h.config(&out);
    assert_eq!(c["config"]["Entrypoint"], serde_json::json!(["/bin/echo"]));
    assert!(c["config"].get("Cmd").is_none(), "{c}");

    // Shell forms go through SHELL; STOPSIGNAL, VOLUME; COPY --from an image.
    let req = h.request(
        "FROM withcmd:1\nSHELL [\"/bin/sh\", \"-ec\"]\nENTRYPOINT run me\nCMD x\nSTOPSIGNAL SIGINT\nVOLUME /data\nCOPY --from=busybox:test /etc/passwd /copied\n",
        &[],
    );
    let (out, _) = h.ok(&req).await;
    let c = h.config(&out);
    let rc = &c["config"];
    assert_eq!(
        rc["Entrypoint"],
        serde_json::json!(["/bin/sh", "-ec", "run me"])
    );
    assert_eq!(rc["Cmd"], serde_json::json!(["/bin/sh", "-ec", "x"]));
    assert_eq!(rc["StopSignal"], "SIGINT");
    assert!(rc["Volumes"].get("/data").is_some(), "{rc}");
    let history: Vec<&str> = c["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["created_by"].as_str())
        .collect();
    assert!(history.contains(&"STOPSIGNAL SIGINT"), "{history:?}");
    let root = h.unpack(&out);
    assert!(
        fs::read_to_string(root.join("copied"))
            .unwrap()
            .contains("app:x:1000")
    );
}
