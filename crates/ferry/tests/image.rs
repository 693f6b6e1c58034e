//! `ferry image …` end to end: the real binary, a real registry (`docker-registry`)
//! and `skopeo` as an independent reader.

#[path = "../../ferry-oci/tests/util/registry.rs"]
mod registry;

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;
use registry::{Registry, require_tool};
use serde_json::Value;

/// A FERRY_HOME of its own, so tests never share a store.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn ferry(&self, args: &[&str]) -> Output {
        self.ferry_env(args, &[])
    }

    fn ferry_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::cargo_bin("ferry").unwrap();
        cmd.env("FERRY_HOME", self.dir.path())
            .env("HOME", self.dir.path())
            .env_remove("FERRY_REGISTRY_AUTH")
            .env_remove("FERRY_INSECURE_REGISTRIES")
            .env_remove("FERRY_CHUNK_SIZE")
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("DOCKER_CONFIG")
            .arg("image")
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        self.ok_env(args, &[])
    }

    fn ok_env(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self.ferry_env(args, env);
        assert!(
            out.status.success(),
            "ferry image {args:?} failed ({:?}):\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }
}

fn context(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, content) in files {
        let p = d.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    d
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn build_digest(home: &Home, dir: &Path, tag: &str, extra: &[&str]) -> String {
    let mut args = vec!["build", path(dir), "--tag", tag, "-o", "json"];
    args.extend_from_slice(extra);
    home.json(&args)["digest"].as_str().unwrap().to_string()
}

#[test]
fn build_is_reproducible_across_homes() {
    let ctx = context(&[("server.py", "print('hi')\n"), ("static/a.css", "body{}")]);
    let flags = [
        "--cmd",
        "python3 server.py",
        "--env",
        "PORT=8080",
        "--expose",
        "8080",
        "--label",
        "team=web",
    ];
    let a = build_digest(&Home::new(), ctx.path(), "web:1", &flags);
    let b = build_digest(&Home::new(), ctx.path(), "web:1", &flags);
    assert_eq!(a, b);
    assert!(a.starts_with("sha256:") && a.len() == 71, "{a}");

    let f = std::fs::File::options()
        .write(true)
        .open(ctx.path().join("server.py"))
        .unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
        .unwrap();
    drop(f);
    assert_eq!(
        build_digest(&Home::new(), ctx.path(), "web:1", &flags),
        a,
        "mtime must not matter"
    );

    std::fs::write(ctx.path().join("server.py"), "print('bye')\n").unwrap();
    assert_ne!(
        build_digest(&Home::new(), ctx.path(), "web:1", &flags),
        a,
        "content must matter"
    );

    let home = Home::new();
    let out = home.ok_env(
        &["build", path(ctx.path()), "--tag", "web:2", "-o", "json"],
        &[("SOURCE_DATE_EPOCH", "1700000000")],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let inspect = home.json(&["inspect", "web:2"]);
    assert_eq!(inspect["config"]["created"], "2023-11-14T22:13:20Z");
    assert_eq!(inspect["digest"], v["digest"]);
}

#[test]
fn ls_tag_inspect_rm() {
    let home = Home::new();
    let ctx = context(&[("a.txt", "a")]);
    let digest = build_digest(
        &home,
        ctx.path(),
        "web:1",
        &["--entrypoint", "/bin/app", "--workdir", "/srv"],
    );
    home.ok(&["tag", "web:1", "registry.example:5000/team/web:prod"]);

    let ls = home.json(&["ls", "-o", "json"]);
    let rows = ls.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["name"], "registry.example:5000/team/web");
    assert_eq!(rows[0]["tag"], "prod");
    assert_eq!(rows[1]["name"], "web");
    assert!(rows.iter().all(|r| r["digest"] == digest.as_str()));

    let table = home.ok(&["ls"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("REPOSITORY")
            && lines[0].contains("DIGEST")
            && lines[0].contains("CREATED"),
        "{table}"
    );
    let short = &digest["sha256:".len().."sha256:".len() + 12];
    assert!(
        lines[2].starts_with("web ") && lines[2].contains(short) && lines[2].contains("1970-01-01"),
        "{table}"
    );

    let inspect = home.json(&["inspect", "web:1"]);
    assert_eq!(
        inspect["manifest"]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        inspect["config"]["config"]["Entrypoint"],
        serde_json::json!(["/bin/app"])
    );
    assert_eq!(inspect["config"]["config"]["WorkingDir"], "/srv");

    assert_eq!(home.ok(&["rm", "web:1"]).trim(), "removed web:1");
    let ls = home.json(&["ls", "-o", "json"]);
    assert_eq!(ls.as_array().unwrap().len(), 1);
    home.ok(&["rm", &digest]);
    assert_eq!(home.json(&["ls", "-o", "json"]), serde_json::json!([]));

    let out = home.ferry(&["rm", "web:1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("web:1 not found in the local store"));
}

#[test]
fn push_pull_and_base_against_a_real_registry() {
    require_tool("skopeo", "skopeo");
    let reg = Registry::start();
    let home = Home::new();
    let base_ctx = context(&[("usr/share/base.txt", "base")]);
    let base = format!("{}/base:1", reg.host());
    let base_digest = build_digest(
        &home,
        base_ctx.path(),
        &base,
        &[
            "--entrypoint",
            "/usr/bin/base",
            "--cmd",
            "--serve",
            "--env",
            "A=1",
        ],
    );

    let push = home.json(&["push", &base, "-o", "json"]);
    assert_eq!(push["blobs_uploaded"], 2);
    assert_eq!(push["digest"], base_digest.as_str());
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", &format!("docker://{base}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let skopeo: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(skopeo["Digest"], base_digest.as_str());

    let again = home.json(&["push", &base, "-o", "json"]);
    assert_eq!(
        (
            again["blobs_uploaded"].as_u64(),
            again["blobs_skipped"].as_u64()
        ),
        (Some(0), Some(2))
    );

    // Another machine: building on the registry base pulls it.
    let other = Home::new();
    let app_ctx = context(&[("app.py", "print(1)")]);
    let child = build_digest(
        &other,
        app_ctx.path(),
        "app:1",
        &["--base", &base, "--cmd", "app.py"],
    );
    let inspect = other.json(&["inspect", "app:1"]);
    assert_eq!(inspect["digest"], child.as_str());
    assert_eq!(inspect["manifest"]["layers"].as_array().unwrap().len(), 2);
    assert_eq!(
        inspect["config"]["config"]["Entrypoint"],
        serde_json::json!(["/usr/bin/base"])
    );
    assert_eq!(
        inspect["config"]["config"]["Cmd"],
        serde_json::json!(["app.py"])
    );
    assert_eq!(
        inspect["config"]["config"]["Env"],
        serde_json::json!(["A=1"])
    );
    let names: Vec<String> = other
        .json(&["ls", "-o", "json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.contains(&format!("{}/base", reg.host())), "{names:?}");

    // Push under another name, pull it into a third home.
    let app_dest = format!("{}/team/app:1", reg.host());
    other.ok(&["push", "app:1", &app_dest]);
    let third = Home::new();
    let pulled = third.json(&["pull", &app_dest, "-o", "json"]);
    assert_eq!(pulled["info"]["digest"], child.as_str());
    assert_eq!(pulled["blobs_downloaded"], 3);
    // Inspect of something not in the store asks the registry.
    let remote = Home::new().json(&["inspect", &app_dest]);
    assert_eq!(remote["source"], "registry");
    assert_eq!(remote["digest"], child.as_str());
}

#[test]
fn tags_are_not_moved_without_force_and_big_layers_go_in_chunks() {
    let reg = Registry::start();
    let home = Home::new();
    let dest = format!("{}/svc:v1", reg.host());
    let one = context(&[("v", "1")]);
    // Incompressible content so that the layer is bigger than the chunk size.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let noise: String = (0..200_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'!' + (x % 90) as u8)
        })
        .collect();
    let two = context(&[("v", "2"), ("noise.txt", &noise)]);
    build_digest(&home, one.path(), "svc:1", &[]);
    let second = build_digest(&home, two.path(), "svc:2", &[]);
    home.ok(&["push", "svc:1", &dest]);

    let out = home.ferry(&["push", "svc:2", &dest]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("tag {dest} already points to")) && err.contains("--force"),
        "{err}"
    );

    let forced = home.ok_env(
        &["push", "svc:2", &dest, "--force", "-o", "json"],
        &[("FERRY_CHUNK_SIZE", "32768")],
    );
    let v: Value = serde_json::from_str(&forced).unwrap();
    assert_eq!(v["tag_overwritten"], true);
    assert_eq!(v["chunked_blobs"], 1, "{v}");
    assert!(v["chunks"].as_u64().unwrap() >= 4, "{v}");
    assert!(
        reg.requests().iter().any(|l| l.method == "PATCH"),
        "registry saw no PATCH"
    );
    let pulled = Home::new().json(&["pull", &dest, "-o", "json"]);
    assert_eq!(pulled["info"]["digest"], second.as_str());
}

#[test]
fn errors_are_clear_and_exit_2() {
    let reg = Registry::start();
    let home = Home::new();
    let nope = format!("{}/web:nope", reg.host());
    let out = home.ferry(&["pull", &nope]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "manifest unknown: {nope} not found in the registry"
        )),
        "{err}"
    );

    let out = home.ferry(&["push", "web:1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("web:1 not found in the local store"));

    let ctx = context(&[("f", "1")]);
    build_digest(&home, ctx.path(), "web:1", &[]);
    let out = home.ferry(&["push", "web:1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("web:1 names no registry"));

    let out = home.ferry(&["build", "/definitely/not/here", "--tag", "x:1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/definitely/not/here"));

    let out = home.ferry(&["build", ".", "--tag", "Bad:Name"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid image reference"));

    // Credentials from a Docker config file are used (and bad ones reported).
    let out = home.ferry_env(&["pull", &nope], &[("FERRY_REGISTRY_AUTH", "{not json")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FERRY_REGISTRY_AUTH"));
}

/// Why a Dockerfile with `RUN` cannot be built here, if it cannot.
fn dockerfile_run_skip_reason() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        != 0
    {
        return Some("not running as root".into());
    }
    let path = std::env::var("PATH").unwrap_or_default();
    let runc = std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into(), "/sbin".into()])
        .any(|d| d.join("runc").is_file());
    if !runc {
        return Some("runc is not installed (Debian package runc)".into());
    }
    let head = std::fs::read("/bin/busybox").unwrap_or_default();
    if head.is_empty() || head.windows(7).take(8192).any(|w| w == b"ld-linu") {
        return Some(
            "/bin/busybox is missing or not static (Debian package busybox-static)".into(),
        );
    }
    None
}

#[test]
fn dockerfile_build_runs_steps_caches_them_and_names_a_failing_line() {
    if let Some(why) = dockerfile_run_skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let home = Home::new();
    let base = home.dir.path().join("base");
    std::fs::create_dir_all(base.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", base.join("bin/busybox")).unwrap();
    for a in ["sh", "echo", "cat"] {
        std::os::unix::fs::symlink("busybox", base.join("bin").join(a)).unwrap();
    }
    home.ok(&["build", base.to_str().unwrap(), "-t", "bb:test"]);

    let ctx = home.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("x.txt"), "x\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM bb:test\nARG GREETING=hello\nRUN echo $GREETING > /hi\nCOPY x.txt /x.txt\nCMD [\"cat\", \"/hi\"]\n",
    )
    .unwrap();
    let dir = ctx.to_str().unwrap();
    let out = home.ferry(&[
        "build",
        dir,
        "-t",
        "app:1",
        "-t",
        "app:2",
        "--build-arg",
        "GREETING=hi",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("] RUN echo $GREETING > /hi"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let digest = stdout.split_whitespace().nth(1).unwrap().to_string();
    assert!(stdout.contains(&format!("app:2 {digest}")), "{stdout}");

    // Nothing changed: every step from the cache, the same image.
    let out = home.ferry(&[
        "build",
        dir,
        "-t",
        "app:1",
        "--build-arg",
        "GREETING=hi",
        "-o",
        "json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("CACHED RUN echo $GREETING"), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["digest"], digest.as_str());
    assert_eq!(report["steps_run"], 0);

    // A failing RUN names its line and exit code; the tag stays where it was.
    std::fs::write(
        ctx.join("Bad.Dockerfile"),
        "FROM bb:test\n\nRUN echo broken; exit 3\n",
    )
    .unwrap();
    let bad = ctx.join("Bad.Dockerfile");
    let out = home.ferry(&["build", dir, "-f", bad.to_str().unwrap(), "-t", "app:1"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Bad.Dockerfile:3: RUN echo broken; exit 3 exited with 3"),
        "{stderr}"
    );
    let inspect: Value = serde_json::from_str(&home.ok(&["inspect", "app:1"])).unwrap();
    assert!(inspect.to_string().contains(&digest), "{inspect}");
}

#[test]
fn a_killed_dockerfile_build_moves_no_tag_and_the_next_build_cleans_up() {
    if let Some(why) = dockerfile_run_skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let home = Home::new();
    let base = home.dir.path().join("base");
    std::fs::create_dir_all(base.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", base.join("bin/busybox")).unwrap();
    for a in ["sh", "echo", "sleep"] {
        std::os::unix::fs::symlink("busybox", base.join("bin").join(a)).unwrap();
    }
    home.ok(&["build", base.to_str().unwrap(), "-t", "bb:test"]);
    let ctx = home.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM bb:test\nRUN echo first > /f\n",
    )
    .unwrap();
    let dir = ctx.to_str().unwrap();
    let first = home.ok(&["build", dir, "-t", "app:1"]);

    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM bb:test\nRUN echo begun-$((1+1)); sleep 30\n",
    )
    .unwrap();
    let log = home.dir.path().join("build.log");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin!("ferry"))
        .env("FERRY_HOME", home.dir.path())
        .args(["image", "build", dir, "-t", "app:1"])
        .stderr(std::fs::File::create(&log).unwrap())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("begun-2")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the RUN never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // The store is consistent and the tag where it was.
    let ls = home.ok(&["ls"]);
    assert!(ls.contains("app"), "{ls}");
    let inspect = home.ok(&["inspect", "app:1"]);
    assert!(
        inspect.contains(first.split_whitespace().nth(1).unwrap()),
        "{inspect}"
    );

    // The next build reaps the killed one's directory and container.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM bb:test\nRUN echo again > /g\n",
    )
    .unwrap();
    let out = home.ferry(&["build", dir, "-t", "app:2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("warning: cleaning up"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(home.dir.path().join("build"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn ctrl_c_stops_a_running_dockerfile_build_and_leaves_nothing() {
    if let Some(why) = dockerfile_run_skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let home = Home::new();
    let base = home.dir.path().join("base");
    std::fs::create_dir_all(base.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", base.join("bin/busybox")).unwrap();
    for a in ["sh", "echo", "sleep"] {
        std::os::unix::fs::symlink("busybox", base.join("bin").join(a)).unwrap();
    }
    home.ok(&["build", base.to_str().unwrap(), "-t", "bb:test"]);
    let ctx = home.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM bb:test\nRUN echo begun-$((1+1)); sleep 30\n",
    )
    .unwrap();
    let log = home.dir.path().join("build.log");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin!("ferry"))
        .env("FERRY_HOME", home.dir.path())
        .args(["image", "build", ctx.to_str().unwrap(), "-t", "app:1"])
        .stderr(std::fs::File::create(&log).unwrap())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("begun-2")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the RUN never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("Dockerfile:2: the build was interrupted here"),
        "{stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(home.dir.path().join("build"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
    let out = home.ferry(&["inspect", "app:1"]);
    assert!(!out.status.success(), "no image was tagged");
}

/// `ferry image import -` reads a root filesystem tarball (made by the real `tar`)
/// from standard input; `export -o FILE` writes an OCI archive that imports back to
/// the same digest under the same name, one line per image.
#[test]
fn import_stdin_rootfs_then_export_and_reimport() {
    let home = Home::new();
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("etc")).unwrap();
    std::fs::write(src.path().join("etc/motd"), "from a tarball\n").unwrap();
    let tarball = std::process::Command::new("tar")
        .args(["-C", &src.path().display().to_string(), "-c", "."])
        .output()
        .unwrap();
    assert!(tarball.status.success());

    let mut cmd = Command::cargo_bin("ferry").unwrap();
    let out = cmd
        .env("FERRY_HOME", home.dir.path())
        .env("HOME", home.dir.path())
        .args([
            "image",
            "import",
            "-",
            "-t",
            "base:1",
            "--cmd",
            "cat /etc/motd",
        ])
        .args(["--env", "LANG=C.UTF-8", "-o", "json"])
        .write_stdin(tarball.stdout)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "rootfs");
    assert_eq!(v["images"][0]["reference"], "base:1");
    assert_eq!(v["images"][0]["layers"], 1);
    let digest = v["images"][0]["digest"].as_str().unwrap().to_string();
    let inspect: Value = serde_json::from_str(&home.ok(&["inspect", "base:1"])).unwrap();
    let text = inspect.to_string();
    assert!(
        text.contains("cat") && text.contains("LANG=C.UTF-8"),
        "{text}"
    );

    let file = src.path().join("base.oci.tar");
    let line = home.ok(&["export", "base:1", "-o", &file.display().to_string()]);
    assert!(line.starts_with("exported base:1 (sha256:"), "{line}");
    home.ok(&["rm", "base:1"]);
    let line = home.ok(&["import", &file.display().to_string()]);
    assert_eq!(
        line.lines().count(),
        1,
        "one line per imported image: {line}"
    );
    assert!(
        line.starts_with(&format!("imported base:1 ({digest}, 1 layer, ")),
        "{line}"
    );

    // A rootfs without -t is refused with what to do.
    let bare = src.path().join("bare.tar");
    std::fs::write(&bare, b"").unwrap();
    let out = home.ferry(&["import", &bare.display().to_string()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("-t NAME:TAG"), "{err}");
}
