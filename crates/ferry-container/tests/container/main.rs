//! Containers through the real runc, on a busybox image. Each test skips (saying
//! why) where it cannot run: not root, no runc, no busybox-static.

mod util;

use std::path::PathBuf;
use std::time::Duration;

use ferry_container::{
    Error, ExecOptions, Isolation, Mount, Resources, RootfsKind, RootfsMode, Runtime, Status,
    UserSpec, cgroup, detect,
};
use util::{Harness, bounded, eventually, log_line, snapshot};

#[tokio::test]
async fn runs_in_its_own_namespaces_with_volumes() {
    let Some(h) = Harness::new() else { return };
    let marker = h.tmp.path().join("host-marker");
    std::fs::write(&marker, "host").unwrap();
    let ro = h.tmp.path().join("ro");
    let rw = h.tmp.path().join("rw");
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::create_dir_all(&rw).unwrap();
    std::fs::write(ro.join("hello"), "from the host").unwrap();
    let script = format!(
        "echo host=$(hostname); echo pid=$$; echo cmdline=$(tr '\\0' ' ' < /proc/1/cmdline); \
         test -e {} && echo marker=visible || echo marker=hidden; \
         echo ro=$(cat /ro/hello); touch /ro/x 2>/dev/null && echo ro-write=ok || echo ro-write=refused; \
         echo data > /rw/out && echo rw-write=ok; \
         echo tmpfs=$(stat -c %a /scratch); echo etc-hostname=$(cat /etc/hostname); \
         echo uid=$(id -u)",
        marker.display()
    );
    let mut spec = h.sh("web-0", &script);
    spec.mounts = vec![
        Mount::Bind {
            source: ro.clone(),
            destination: "/ro".into(),
            read_only: true,
        },
        Mount::Bind {
            source: rw.clone(),
            destination: "/rw".into(),
            read_only: false,
        },
        Mount::Tmpfs {
            destination: "/scratch".into(),
            size_bytes: Some(1 << 20),
            mode: Some(0o750),
        },
    ];
    let log = h.log(&spec.id);
    let mut c = h.runtime.run(&spec, &log).await.unwrap();
    assert!(c.pid() > 0);
    assert_eq!(
        c.rootfs_kind(),
        RootfsKind::Overlay,
        "{:?}",
        c.rootfs_note()
    );
    let exit = bounded("exit", c.wait()).await;
    let out = std::fs::read_to_string(&log).unwrap();
    assert_eq!(exit.code, 0, "{out}");
    assert!(exit.known && !exit.oom_killed);
    for line in [
        "host=web-0",
        "pid=1",
        "marker=hidden",
        "ro=from the host",
        "ro-write=refused",
        "rw-write=ok",
        "tmpfs=750",
        "etc-hostname=web-0",
        "uid=0",
    ] {
        assert!(out.lines().any(|l| l == line), "{line:?} not in:\n{out}");
    }
    assert!(
        out.lines()
            .any(|l| l.starts_with("cmdline=sh -c echo host")),
        "PID 1 is the command:\n{out}"
    );
    assert_eq!(std::fs::read_to_string(rw.join("out")).unwrap(), "data\n");
    assert!(!ro.join("x").exists());
    h.finish().await;
}

#[tokio::test]
async fn users_resolve_through_the_images_passwd_and_group() {
    let Some(h) = Harness::new() else { return };
    let mut spec = h.sh("user", "echo $(id -u) $(id -g) $(id -G) home=$HOME");
    spec.user = UserSpec {
        user: Some("app".into()),
        ..UserSpec::default()
    };
    let log = h.log(&spec.id);
    let mut c = h.runtime.run(&spec, &log).await.unwrap();
    assert_eq!(bounded("exit", c.wait()).await.code, 0);
    let out = std::fs::read_to_string(&log).unwrap();
    assert_eq!(out.trim(), "1000 1000 1000 10 home=/home/app");

    // runAsUser/runAsGroup override the image's USER.
    let mut spec = h.sh("user", "echo $(id -u) $(id -g)");
    spec.user = UserSpec {
        user: Some("app".into()),
        uid: Some(4242),
        gid: Some(4343),
        supplemental_groups: vec![],
    };
    let log = h.log(&spec.id);
    let mut c = h.runtime.run(&spec, &log).await.unwrap();
    assert_eq!(bounded("exit", c.wait()).await.code, 0);
    assert_eq!(std::fs::read_to_string(&log).unwrap().trim(), "4242 4343");

    // An unknown name fails before anything runs, naming the container and the user.
    let mut spec = h.sh("user", "true");
    spec.user.user = Some("ghost".into());
    let err = h.runtime.run(&spec, &h.log(&spec.id)).await.unwrap_err();
    assert!(matches!(err, Error::UnknownUser { .. }), "{err}");
    assert!(err.to_string().contains(&spec.id) && err.to_string().contains("ghost"));
    assert!(!h.runtime.container_dir(&spec.id).exists());
    h.finish().await;
}

#[tokio::test]
async fn writes_go_to_the_upper_layer_never_to_the_image() {
    let Some(h) = Harness::new() else { return };
    let before = snapshot(&h.image);
    let script = "echo new > /etc/newfile && echo 'evil:x:0:0::/:/bin/sh' >> /etc/passwd \
                  && rm /bin/ls && mkdir -p /var/data && echo ok";
    for mode in [RootfsMode::Auto, RootfsMode::Copy] {
        let runtime = h.runtime.clone().with_rootfs_mode(mode);
        let spec = h.sh("writes", script);
        let log = h.log(&spec.id);
        let mut c = runtime.run(&spec, &log).await.unwrap();
        let exit = bounded("exit", c.wait()).await;
        assert_eq!(exit.code, 0, "{}", std::fs::read_to_string(&log).unwrap());
        let dir = runtime.container_dir(&spec.id);
        match c.rootfs_kind() {
            RootfsKind::Overlay => {
                assert_eq!(
                    std::fs::read_to_string(dir.join("upper/etc/newfile")).unwrap(),
                    "new\n"
                );
                assert!(
                    std::fs::read_to_string(dir.join("upper/etc/passwd"))
                        .unwrap()
                        .contains("evil")
                );
            }
            RootfsKind::Bind => unreachable!("Bind is never asked for here"),
            RootfsKind::Copy => {
                assert_eq!(mode, RootfsMode::Copy);
                assert!(
                    std::fs::read_to_string(dir.join("rootfs/etc/passwd"))
                        .unwrap()
                        .contains("evil")
                );
            }
        }
        assert_eq!(
            snapshot(&h.image),
            before,
            "the shared image changed ({mode:?})"
        );
        runtime.delete(&spec.id).await.unwrap();
        assert!(!dir.exists());
    }

    // readOnlyRootFilesystem: / refuses writes, volumes and /tmp-as-tmpfs still work.
    let mut spec = h.sh(
        "readonly",
        "touch /x 2>/dev/null && echo root=rw || echo root=ro; touch /tmp/y && echo tmp=rw",
    );
    spec.read_only_rootfs = true;
    spec.mounts = vec![Mount::Tmpfs {
        destination: "/tmp".into(),
        size_bytes: None,
        mode: None,
    }];
    let log = h.log(&spec.id);
    let mut c = h.runtime.run(&spec, &log).await.unwrap();
    bounded("exit", c.wait()).await;
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "root=ro\ntmp=rw\n");
    assert_eq!(snapshot(&h.image), before);
    h.finish().await;
}

#[tokio::test]
async fn exit_codes_and_start_errors() {
    let Some(h) = Harness::new() else { return };
    for (script, code) in [("exit 0", 0), ("exit 3", 3), ("false", 1)] {
        let spec = h.sh("exit", script);
        let mut c = h.runtime.run(&spec, &h.log(&spec.id)).await.unwrap();
        let exit = bounded("exit", c.wait()).await;
        assert_eq!(
            (exit.code, exit.known, exit.signal),
            (code, true, None),
            "{script}"
        );
        // The exit stays readable through a fresh handle until the container is deleted.
        let mut again = h.runtime.adopt(&spec.id).await.unwrap().unwrap();
        assert_eq!(bounded("adopted exit", again.wait()).await.code, code);
        let info = h.runtime.state(&spec.id).await.unwrap().unwrap();
        assert_eq!(info.status, Status::Stopped);
    }
    let mut spec = h.sh("missing", "true");
    spec.args = vec!["/no/such/program".into()];
    let err = h.runtime.run(&spec, &h.log(&spec.id)).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Start { .. }), "{msg}");
    assert!(
        msg.contains(&spec.id) && msg.contains("/no/such/program"),
        "{msg}"
    );
    assert!(
        h.runtime.state(&spec.id).await.unwrap().is_none(),
        "a failed start leaves nothing"
    );
    assert!(!h.runtime.container_dir(&spec.id).exists());
    h.finish().await;
}

#[tokio::test]
async fn stop_sends_term_then_kill_after_the_grace_period() {
    let Some(h) = Harness::new() else { return };
    // A process that handles SIGTERM ends with its own code.
    let spec = h.sh(
        "graceful",
        "trap 'echo term; exit 7' TERM; echo ready; sleep 1000 & wait",
    );
    let log = h.log(&spec.id);
    let mut c = h.runtime.run(&spec, &log).await.unwrap();
    log_line(&log, "ready").await;
    let exit = bounded("stop", c.stop(Duration::from_secs(20))).await;
    assert_eq!((exit.code, exit.known), (7, true));
    assert!(std::fs::read_to_string(&log).unwrap().contains("term"));

    // PID 1 without a handler ignores SIGTERM: SIGKILL ends it after the grace period.
    let mut spec = h.sh("stubborn", "unused");
    spec.args = vec!["sleep".into(), "1000".into()];
    let mut c = h.runtime.run(&spec, &h.log(&spec.id)).await.unwrap();
    let pid = c.pid();
    eventually("sleep to run", || {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()
            .filter(|s| s.trim() == "sleep")
    })
    .await;
    let exit = bounded("stop", c.stop(Duration::from_millis(300))).await;
    assert_eq!((exit.code, exit.signal, exit.known), (137, Some(9), true));
    assert!(!exit.oom_killed);
    h.finish().await;
}

#[tokio::test]
async fn a_memory_limit_ends_in_an_oom_kill() {
    let Some(h) = Harness::new() else { return };
    let mut spec = h.sh(
        "oom",
        "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived",
    );
    spec.resources = Resources {
        memory_limit: Some(32 << 20),
        cpu_limit_millis: Some(1000),
        cpu_request_millis: Some(100),
        pids_limit: Some(64),
    };
    let log = h.log(&spec.id);
    let mut c = h.runtime.run(&spec, &log).await.unwrap();
    let exit = bounded("oom", c.wait()).await;
    let out = std::fs::read_to_string(&log).unwrap();
    assert!(exit.oom_killed, "{exit:?} {out}");
    assert_eq!(exit.code, 137, "{out}");
    assert!(!out.contains("survived"));
    h.finish().await;
}

#[tokio::test]
async fn exec_returns_output_and_exit_code() {
    let Some(h) = Harness::new() else { return };
    let mut spec = h.sh("exec", "unused");
    spec.args = vec!["sleep".into(), "1000".into()];
    spec.env.insert("GREETING".into(), "hello".into());
    let mut c = h.runtime.run(&spec, &h.log(&spec.id)).await.unwrap();
    let sh = |s: &str| vec!["sh".to_string(), "-c".to_string(), s.to_string()];
    let out = bounded(
        "exec",
        h.runtime.exec(
            &spec.id,
            &sh("echo $GREETING $(hostname); echo oops >&2; exit 5"),
            &ExecOptions::default(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(out.code, 5);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello exec\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");

    let opts = ExecOptions {
        env: [("EXTRA".to_string(), "1".to_string())].into(),
        cwd: Some("/etc".into()),
        stdin: Some(b"piped in".to_vec()),
    };
    let out = bounded(
        "exec",
        h.runtime
            .exec(&spec.id, &sh("cat; echo \" $EXTRA $(pwd)\""), &opts),
    )
    .await
    .unwrap();
    assert_eq!(
        (out.code, String::from_utf8_lossy(&out.stdout).as_ref()),
        (0, "piped in 1 /etc\n")
    );

    // The exec'd process shares the container's PID namespace: it sees sleep as PID 1.
    let out = bounded(
        "exec",
        h.runtime
            .exec(&spec.id, &sh("cat /proc/1/comm"), &ExecOptions::default()),
    )
    .await
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "sleep\n");

    c.stop(Duration::from_millis(100)).await;
    let err = h
        .runtime
        .exec(&spec.id, &sh("true"), &ExecOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotRunning { .. }), "{err}");
    assert!(err.to_string().contains(&spec.id));
    let err = h
        .runtime
        .exec("nope", &sh("true"), &ExecOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    h.finish().await;
}

/// Env var naming the runtime directory for [`daemon_that_gets_killed`].
const DAEMON_DIR: &str = "FERRY_CONTAINER_TEST_DAEMON_DIR";

/// Not a test of its own: run as a separate process by
/// `survives_the_daemons_death_and_is_readopted`, it plays a daemon that starts a
/// container and is then killed with SIGKILL.
#[tokio::test]
#[ignore = "helper process for survives_the_daemons_death_and_is_readopted"]
async fn daemon_that_gets_killed() {
    let Some(dir) = std::env::var_os(DAEMON_DIR) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let image = dir.join("image");
    let runtime = Runtime::new(dir.join("runc")).with_cgroup_parent(util::CGROUP_PARENT);
    let spec = ferry_container::ContainerSpec {
        id: std::env::var("FERRY_CONTAINER_TEST_ID").unwrap(),
        image_rootfs: image,
        args: vec![
            "sh".into(),
            "-c".into(),
            "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.05; done".into(),
        ],
        annotations: [("ferry.dev/pod".to_string(), "default/survivor".to_string())].into(),
        ..Default::default()
    };
    let c = runtime.run(&spec, &dir.join("survivor.log")).await.unwrap();
    println!("started {}", c.pid());
    // Stay alive until killed.
    tokio::time::sleep(Duration::from_secs(600)).await;
}

#[tokio::test]
async fn survives_the_daemons_death_and_is_readopted() {
    let Some(h) = Harness::new() else { return };
    let id = h.id("survivor");
    let log = h.tmp.path().join("survivor.log");
    let mut daemon = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "daemon_that_gets_killed",
            "--ignored",
            "--nocapture",
        ])
        .env(DAEMON_DIR, h.tmp.path())
        .env("FERRY_CONTAINER_TEST_ID", &id)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Killed only once `run` has returned: the daemon has recorded the container.
    let stdout = daemon.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    bounded("the daemon to start its container", async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with("started ") {
                return;
            }
        }
        panic!("the daemon exited without starting its container");
    })
    .await;
    log_line(&log, "tick 3").await;
    daemon.start_kill().unwrap();
    bounded("daemon death", daemon.wait()).await.unwrap();

    // The container runs on, and keeps logging.
    let lines = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let seen = lines();
    eventually("more output after the daemon died", || {
        (lines() > seen + 2).then_some(())
    })
    .await;

    // A new daemon finds it through runc's state, annotations and all.
    let runtime = h.runtime.clone();
    let all = runtime.list().await.unwrap();
    let info = all.iter().find(|c| c.id == id).expect("listed");
    assert_eq!(info.status, Status::Running);
    assert_eq!(info.annotations["ferry.dev/pod"], "default/survivor");
    assert_eq!(info.log.as_deref(), Some(log.as_path()));
    let mut c = runtime.adopt(&id).await.unwrap().expect("adopted");
    assert_eq!(c.pid(), info.pid);
    assert_eq!(Some(c.start_ticks()), info.start_ticks);
    assert!(c.is_running());
    // sh as PID 1 ignores SIGTERM: killed after the grace period, and the code is
    // known although the daemon that started it is gone.
    let exit = bounded("stop", c.stop(Duration::from_millis(200))).await;
    assert_eq!((exit.code, exit.known), (137, true));
    assert!(
        !cgroup::dirs(&runtime.cgroups_path(&id)).is_empty(),
        "kept until delete"
    );
    h.finish().await;
}

#[tokio::test]
async fn isolation_is_detected() {
    let Some(h) = Harness::new() else { return };
    let d = bounded("detect", detect(Isolation::Auto, &h.runtime))
        .await
        .unwrap();
    assert!(d.containers(), "{}", d.reason);
    assert!(
        d.reason.starts_with("container isolation: runc version"),
        "{}",
        d.reason
    );
    let d = detect(Isolation::Process, &h.runtime).await.unwrap();
    assert_eq!(d.reason, "process isolation: requested");
    // A runc that does not exist: auto falls back, container is an error.
    let broken = h.runtime.clone().with_runc("/nonexistent/runc");
    let d = detect(Isolation::Auto, &broken).await.unwrap();
    assert!(!d.containers());
    assert!(
        d.reason.starts_with("process isolation: runc does not run"),
        "{}",
        d.reason
    );
    let err = detect(Isolation::Container, &broken).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    h.finish().await;
}
