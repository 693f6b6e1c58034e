//! The shared harness: a tiny image made from Debian's `busybox-static`, a runtime
//! in a temp dir (its own runc `--root`, its own cgroup parent), unique container
//! ids, and a check that nothing is left behind.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ferry_container::{ContainerSpec, Runtime, cgroup, procfs};

/// Every wait in these tests is bounded by this deadline.
pub const DEADLINE: Duration = Duration::from_secs(30);
/// The cgroup parent of test containers, apart from a daemon's `ferry`.
pub const CGROUP_PARENT: &str = "ferry-test";

const BUSYBOX: &str = "/bin/busybox";
const APPLETS: &[&str] = &[
    "sh", "cat", "hostname", "id", "sleep", "head", "tr", "ls", "echo", "touch", "test", "stat",
    "rm", "true", "false", "env", "mkdir",
];

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Why the container tests cannot run here, if they cannot.
fn skip_reason() -> Option<String> {
    if !procfs::is_root() {
        return Some("not running as root".into());
    }
    if !ferry_container::find_runc().is_file() {
        return Some("runc is not installed (Debian package runc)".into());
    }
    // The image has no libc: a dynamically linked busybox names its loader.
    let head = std::fs::read(BUSYBOX).unwrap_or_default();
    let dynamic = head.windows(7).take(8192).any(|w| w == b"ld-linu");
    if head.is_empty() || dynamic {
        return Some(format!(
            "{BUSYBOX} is missing or not static (Debian package busybox-static)"
        ));
    }
    None
}

pub struct Harness {
    pub tmp: tempfile::TempDir,
    pub runtime: Runtime,
    /// The shared, read-only image root.
    pub image: PathBuf,
}

impl Harness {
    /// A harness, or `None` (with the reason printed) where containers cannot run.
    pub fn new() -> Option<Harness> {
        if let Some(why) = skip_reason() {
            eprintln!("skipped: {why}");
            return None;
        }
        let tmp = tempfile::tempdir().expect("temp dir");
        let image = tmp.path().join("image");
        make_image(&image);
        let runtime = Runtime::new(tmp.path().join("runc")).with_cgroup_parent(CGROUP_PARENT);
        Some(Harness {
            tmp,
            runtime,
            image,
        })
    }

    /// A container id unique across test processes (cgroup paths are global).
    pub fn id(&self, name: &str) -> String {
        format!(
            "{name}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// A spec for the busybox image running `sh -c script`.
    pub fn sh(&self, name: &str, script: &str) -> ContainerSpec {
        ContainerSpec {
            id: self.id(name),
            image_rootfs: self.image.clone(),
            args: vec!["sh".into(), "-c".into(), script.into()],
            hostname: name.into(),
            ..ContainerSpec::default()
        }
    }

    pub fn log(&self, id: &str) -> PathBuf {
        self.tmp.path().join("logs").join(format!("{id}.log"))
    }

    /// Deletes every container and checks that no mount, cgroup, runc state or
    /// container directory is left.
    pub async fn finish(self) {
        let all = self.runtime.list().await.expect("list");
        for c in &all {
            self.runtime.delete(&c.id).await.expect("delete");
        }
        for c in &all {
            let path = self.runtime.cgroups_path(&c.id);
            assert!(cgroup::dirs(&path).is_empty(), "cgroups left for {}", c.id);
            assert!(
                !self.runtime.container_dir(&c.id).exists(),
                "dir left for {}",
                c.id
            );
        }
        assert!(self.runtime.list().await.unwrap().is_empty());
        let dirs = self.runtime.container_dir("x");
        let left: Vec<_> = std::fs::read_dir(dirs.parent().unwrap())
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "container directories left: {left:?}");
        assert!(
            mounts_under(self.tmp.path()).is_empty(),
            "mounts left: {:?}",
            mounts_under(self.tmp.path())
        );
    }
}

impl Drop for Harness {
    /// A failed test still must not leave containers or mounts: kill and unmount
    /// (synchronously) what `finish` did not get to.
    fn drop(&mut self) {
        let state = self.runtime.state_dir().to_path_buf();
        if let Ok(out) = std::process::Command::new(self.runtime.runc_path())
            .arg("--root")
            .arg(&state)
            .args(["list", "-q"])
            .output()
        {
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = std::process::Command::new(self.runtime.runc_path())
                    .arg("--root")
                    .arg(&state)
                    .args(["delete", "--force", id])
                    .output();
            }
        }
        for m in mounts_under(self.tmp.path()) {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = dir.display().to_string();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

/// The image: busybox and its applets, a passwd with `app` (1000) in group `wheel`,
/// a sticky `/tmp`, owned as a real image would be.
fn make_image(root: &Path) {
    for d in ["bin", "etc", "tmp", "home/app", "proc", "sys", "dev"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    for a in APPLETS {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:App:/home/app:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        root.join("etc/group"),
        "root:x:0:\nwheel:x:10:app\napp:x:1000:\n",
    )
    .unwrap();
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::os::unix::fs::chown(root.join("home/app"), Some(1000), Some(1000)).unwrap();
}

/// Every file under `root` with its content (symlink targets for links), to compare
/// an image before and after.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if meta.is_dir() {
                todo.push(p);
                out.insert(rel, b"<dir>".to_vec());
            } else if meta.file_type().is_symlink() {
                out.insert(
                    rel,
                    std::fs::read_link(&p)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                );
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Polls `f` until it returns `Some`, or panics with `what` at the deadline.
pub async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for a log line equal to `line`.
pub async fn log_line(log: &Path, line: &str) {
    eventually(&format!("{line:?} in {}", log.display()), || {
        std::fs::read_to_string(log)
            .ok()
            .filter(|t| t.lines().any(|l| l == line))
    })
    .await;
}

/// Bounds a future by the deadline.
pub async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}
