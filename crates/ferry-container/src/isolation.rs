//! Choosing how workloads run: real containers when the daemon is root and runc
//! works here (checked once, by running a trivial container through the same path
//! every container takes), plain processes otherwise — with the reason in words, for
//! the daemon to say once at start.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::bundle::{ContainerSpec, Mount, Resources};
use crate::container::Runtime;
use crate::error::{Error, Result};
use crate::procfs;

/// How long the trial container may take, start to exit.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// The isolation asked for (`--isolation`, a config field).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Isolation {
    /// Containers where they work, else processes.
    #[default]
    Auto,
    /// Containers, or fail.
    Container,
    /// Host processes (the image's files run with the host's kernel view).
    Process,
}

impl FromStr for Isolation {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Isolation, String> {
        match s {
            "auto" => Ok(Isolation::Auto),
            "container" => Ok(Isolation::Container),
            "process" => Ok(Isolation::Process),
            other => Err(format!(
                "unknown isolation {other:?}: use auto, container or process"
            )),
        }
    }
}

impl std::fmt::Display for Isolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Isolation::Auto => "auto",
            Isolation::Container => "container",
            Isolation::Process => "process",
        })
    }
}

/// What [`detect`] chose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// [`Isolation::Container`] or [`Isolation::Process`].
    pub isolation: Isolation,
    /// Why, in words: "container isolation: runc version 1.1.5" or
    /// "process isolation: not running as root".
    pub reason: String,
}

impl Decision {
    fn process(why: &str) -> Decision {
        Decision {
            isolation: Isolation::Process,
            reason: format!("process isolation: {why}"),
        }
    }

    /// Whether containers were chosen.
    pub fn containers(&self) -> bool {
        self.isolation == Isolation::Container
    }
}

/// Decides between containers and processes for `requested`, trying `runtime`'s runc:
/// `runc --version`, then one trivial container (host binaries bind-mounted read-only,
/// running `true` with a memory limit) through [`Runtime::run`]. `container` that
/// cannot work is an [`Error::Unavailable`]; `auto` falls back to processes.
pub async fn detect(requested: Isolation, runtime: &Runtime) -> Result<Decision> {
    if requested == Isolation::Process {
        return Ok(Decision::process("requested"));
    }
    let outcome = probe(runtime).await;
    match (outcome, requested) {
        (Ok(reason), _) => Ok(Decision {
            isolation: Isolation::Container,
            reason: format!("container isolation: {reason}"),
        }),
        (Err(why), Isolation::Container) => Err(Error::Unavailable { reason: why }),
        (Err(why), _) => Ok(Decision::process(&why)),
    }
}

/// Ok(what works) or Err(why not).
async fn probe(runtime: &Runtime) -> std::result::Result<String, String> {
    if !procfs::is_root() {
        return Err("not running as root".into());
    }
    let version = runtime.runc_version().await.map_err(|e| {
        format!(
            "runc does not run ({}): install Debian's runc; {e}",
            runtime.runc_path().display()
        )
    })?;
    let id = format!("ferry-probe-{}", std::process::id());
    let scratch = runtime.container_dir(&format!("{id}.rootfs"));
    let result = trial(runtime, &id, &scratch).await;
    let _ = runtime.delete(&id).await;
    let _ = std::fs::remove_dir_all(&scratch);
    let how = result?;
    Ok(format!("{version}, {how}"))
}

async fn trial(runtime: &Runtime, id: &str, scratch: &Path) -> std::result::Result<String, String> {
    let rootfs = scratch.join("root");
    let (mounts, binary) =
        host_binaries(&rootfs).map_err(|e| format!("preparing a test root: {e}"))?;
    let spec = ContainerSpec {
        id: id.to_string(),
        image_rootfs: rootfs,
        args: vec![binary],
        mounts,
        resources: Resources {
            memory_limit: Some(64 << 20),
            cpu_limit_millis: Some(500),
            ..Resources::default()
        },
        ..ContainerSpec::default()
    };
    let log = scratch.join("probe.log");
    let mut c = runtime
        .run(&spec, &log)
        .await
        .map_err(|e| format!("a test container failed to start: {e}"))?;
    let exit = tokio::time::timeout(PROBE_TIMEOUT, c.wait())
        .await
        .map_err(|_| {
            format!(
                "a test container did not finish within {}s",
                PROBE_TIMEOUT.as_secs()
            )
        })?;
    if exit.code != 0 {
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        return Err(format!(
            "a test container exited with {}: {}",
            exit.code,
            crate::runc::last_lines(&said, 3)
        ));
    }
    Ok(format!(
        "{} root filesystems",
        match c.rootfs_kind() {
            crate::RootfsKind::Overlay => "overlayfs",
            crate::RootfsKind::Copy => "copied",
            crate::RootfsKind::Bind => "bind-mounted",
        }
    ))
}

/// A root with the host's `/usr` (and `/bin`, `/lib*` as the host has them: symlinks
/// on merged-/usr systems, else more read-only binds), and the path of `true` in it.
fn host_binaries(rootfs: &Path) -> std::io::Result<(Vec<Mount>, String)> {
    std::fs::create_dir_all(rootfs)?;
    let mut mounts = Vec::new();
    for name in ["usr", "bin", "sbin", "lib", "lib64", "lib32"] {
        let host = PathBuf::from("/").join(name);
        let Ok(meta) = std::fs::symlink_metadata(&host) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&host)?, rootfs.join(name))?;
        } else if meta.is_dir() {
            mounts.push(Mount::Bind {
                source: host,
                destination: format!("/{name}"),
                read_only: true,
            });
        }
    }
    let binary = ["/usr/bin/true", "/bin/true"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .ok_or_else(|| std::io::Error::other("the host has no `true` binary"))?;
    Ok((mounts, binary.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_isolation() {
        assert_eq!("auto".parse::<Isolation>().unwrap(), Isolation::Auto);
        assert_eq!(
            "container".parse::<Isolation>().unwrap(),
            Isolation::Container
        );
        assert!(
            "vm".parse::<Isolation>()
                .unwrap_err()
                .contains("auto, container or process")
        );
        assert_eq!(Isolation::Process.to_string(), "process");
    }

    #[tokio::test]
    async fn process_is_taken_when_asked() {
        let t = tempfile::tempdir().unwrap();
        let d = detect(Isolation::Process, &Runtime::new(t.path()))
            .await
            .unwrap();
        assert_eq!(d.reason, "process isolation: requested");
        assert!(!d.containers());
    }
}
