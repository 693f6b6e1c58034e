//! What to execute for a container: argv from `command`/`args` or the image's
//! Entrypoint/Cmd, the working directory inside the unpacked image, the executable
//! (a file in the image, else the host's `PATH`), and the user to run as.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use ferry_oci::ImageConfig;
use serde_json::Value;

use super::expand::expand;

fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    v.and_then(Value::as_array).map(|a| {
        a.iter()
            .map(|s| match s {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect()
    })
}

/// argv as Kubernetes builds it: `command` replaces the Entrypoint and drops the Cmd,
/// `args` replaces the Cmd; `$(VAR)` in both is expanded from `env`.
pub(crate) fn argv(
    container: &Value,
    image: &ImageConfig,
    env: &BTreeMap<String, String>,
) -> Vec<String> {
    let command = strings(container.get("command")).filter(|c| !c.is_empty());
    let args = strings(container.get("args")).filter(|a| !a.is_empty());
    let lookup = |k: &str| env.get(k).cloned();
    match (command, args) {
        (Some(c), a) => c
            .iter()
            .chain(a.iter().flatten())
            .map(|s| expand(s, lookup))
            .collect(),
        (None, Some(a)) => image
            .entrypoint
            .iter()
            .cloned()
            .chain(a.iter().map(|s| expand(s, lookup)))
            .collect(),
        (None, None) => image
            .entrypoint
            .iter()
            .chain(image.cmd.iter())
            .cloned()
            .collect(),
    }
}

/// `path` (absolute, as the image sees it) under `rootfs`, never above it.
pub(crate) fn in_rootfs(rootfs: &Path, path: &str) -> PathBuf {
    let mut out = rootfs.to_path_buf();
    let mut depth = 0usize;
    for comp in Path::new(path).components() {
        match comp {
            Component::Normal(c) => {
                out.push(c);
                depth += 1;
            }
            Component::ParentDir if depth > 0 => {
                out.pop();
                depth -= 1;
            }
            _ => {}
        }
    }
    out
}

/// The working directory: `workingDir`, else the image's, inside the rootfs.
pub(crate) fn working_dir(container: &Value, image: &ImageConfig, rootfs: &Path) -> PathBuf {
    let wd = container
        .get("workingDir")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or(image.working_dir.as_str());
    let wd = if wd.is_empty() { "/" } else { wd };
    let wd = if wd.starts_with('/') {
        wd.to_string()
    } else {
        format!("/{wd}")
    };
    in_rootfs(rootfs, &wd)
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn is_file(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file())
}

/// The executable for `argv0`: a path names a file in the image (absolute paths from
/// the rootfs, relative ones from the working directory), falling back to the same
/// path on the host; a bare name is looked up on the host's `PATH`, then on the
/// container's `PATH` inside the image. `Err` is the runtime's message.
pub(crate) fn resolve_program(
    argv0: &str,
    rootfs: &Path,
    cwd: &Path,
    container_path: Option<&str>,
) -> Result<PathBuf, String> {
    if argv0.is_empty() {
        return Err("no command specified".to_string());
    }
    if argv0.contains('/') {
        let inside = if argv0.starts_with('/') {
            in_rootfs(rootfs, argv0)
        } else {
            cwd.join(argv0)
        };
        if is_file(&inside) {
            return Ok(inside);
        }
        if argv0.starts_with('/') && is_file(Path::new(argv0)) {
            return Ok(PathBuf::from(argv0));
        }
        return Err(format!(
            "exec: {argv0:?}: stat {argv0}: no such file or directory"
        ));
    }
    let host_path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&host_path) {
        let cand = dir.join(argv0);
        if is_executable(&cand) {
            return Ok(cand);
        }
    }
    for dir in container_path.unwrap_or_default().split(':') {
        if dir.starts_with('/') {
            let cand = in_rootfs(rootfs, dir).join(argv0);
            if is_executable(&cand) {
                return Ok(cand);
            }
        }
    }
    Err(format!(
        "exec: {argv0:?}: executable file not found in $PATH"
    ))
}

/// The user a container runs as, when it can be told: `(uid, gid)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct RunAs {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

fn sc_u32(v: Option<&Value>, field: &str) -> Option<u32> {
    v.and_then(|sc| sc.get(field))
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
}

fn sc_bool(v: Option<&Value>, field: &str) -> Option<bool> {
    v.and_then(|sc| sc.get(field)).and_then(Value::as_bool)
}

/// Looks a user name up in the image's `/etc/passwd`.
fn passwd_uid(rootfs: &Path, name: &str) -> Option<u32> {
    let text = std::fs::read_to_string(in_rootfs(rootfs, "/etc/passwd")).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name)
            .then(|| f.nth(1)?.parse().ok())
            .flatten()
    })
}

/// `securityContext.runAsUser`/`runAsGroup` (container over pod), checked against
/// `runAsNonRoot` with the image's user as Kubernetes checks it. `Err` is the
/// `CreateContainerConfigError` message.
pub(crate) fn run_as(
    pod_spec: &Value,
    container: &Value,
    image: &ImageConfig,
    rootfs: &Path,
    pod_ref: &str,
) -> Result<RunAs, String> {
    let psc = pod_spec.get("securityContext");
    let csc = container.get("securityContext");
    let name = container
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let uid = sc_u32(csc, "runAsUser").or(sc_u32(psc, "runAsUser"));
    let gid = sc_u32(csc, "runAsGroup").or(sc_u32(psc, "runAsGroup"));
    let non_root = sc_bool(csc, "runAsNonRoot")
        .or(sc_bool(psc, "runAsNonRoot"))
        .unwrap_or(false);
    if non_root {
        match uid {
            Some(0) => {
                return Err(format!(
                    "container's runAsUser breaks non-root policy (pod: \"{pod_ref}\", container: {name})"
                ));
            }
            Some(_) => {}
            None => {
                let user = image
                    .user
                    .as_deref()
                    .map(|u| u.split(':').next().unwrap_or_default())
                    .unwrap_or_default();
                let image_uid = if user.is_empty() {
                    Some(0)
                } else if let Ok(n) = user.parse::<u32>() {
                    Some(n)
                } else {
                    // Kubernetes refuses non-numeric users outright; the image's passwd
                    // tells us more, so use it when it knows the name.
                    match passwd_uid(rootfs, user) {
                        Some(n) => Some(n),
                        None => {
                            return Err(format!(
                                "container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root (pod: \"{pod_ref}\", container: {name})"
                            ));
                        }
                    }
                };
                if image_uid == Some(0) {
                    return Err(format!(
                        "container has runAsNonRoot and image will run as root (pod: \"{pod_ref}\", container: {name})"
                    ));
                }
            }
        }
    }
    Ok(RunAs { uid, gid })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn image(entrypoint: &[&str], cmd: &[&str]) -> ImageConfig {
        ImageConfig {
            entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            working_dir: "/app".into(),
            ..ImageConfig::default()
        }
    }

    #[test]
    fn argv_follows_kubernetes_rules() {
        let img = image(&["/entry"], &["--default"]);
        let mut env = BTreeMap::new();
        env.insert("PORT".to_string(), "31000".to_string());
        let table = [
            (json!({}), vec!["/entry", "--default"]),
            (json!({"command": ["run"]}), vec!["run"]),
            (json!({"command": ["run"], "args": ["a"]}), vec!["run", "a"]),
            (
                json!({"args": ["--port=$(PORT)"]}),
                vec!["/entry", "--port=31000"],
            ),
            (
                json!({"command": ["echo", "$$(PORT)", "$(NOPE)"]}),
                vec!["echo", "$(PORT)", "$(NOPE)"],
            ),
        ];
        for (c, want) in table {
            assert_eq!(argv(&c, &img, &env), want, "{c}");
        }
    }

    #[test]
    fn paths_stay_inside_the_rootfs() {
        let root = Path::new("/r");
        assert_eq!(in_rootfs(root, "/a/../../etc"), PathBuf::from("/r/etc"));
        assert_eq!(in_rootfs(root, "/"), PathBuf::from("/r"));
        let img = image(&[], &[]);
        assert_eq!(working_dir(&json!({}), &img, root), PathBuf::from("/r/app"));
        assert_eq!(
            working_dir(&json!({"workingDir": "/srv"}), &img, root),
            PathBuf::from("/r/srv")
        );
    }

    #[test]
    fn programs_come_from_the_image_then_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("app")).unwrap();
        std::fs::write(root.join("app/run.sh"), "#!/bin/sh\n").unwrap();
        let cwd = root.join("app");
        assert_eq!(
            resolve_program("./run.sh", root, &cwd, None).unwrap(),
            cwd.join("./run.sh")
        );
        assert_eq!(
            resolve_program("/app/run.sh", root, &cwd, None).unwrap(),
            root.join("app/run.sh")
        );
        let sh = resolve_program("sh", root, &cwd, None).unwrap();
        assert!(sh.ends_with("sh"), "{}", sh.display());
        let err = resolve_program("no-such-program-here", root, &cwd, None).unwrap_err();
        assert_eq!(
            err,
            "exec: \"no-such-program-here\": executable file not found in $PATH"
        );
    }

    #[test]
    fn run_as_non_root_is_checked() {
        let img = image(&[], &[]);
        let root = Path::new("/nonexistent");
        let spec = json!({"securityContext": {"runAsNonRoot": true}});
        let c = json!({"name": "web"});
        assert_eq!(
            run_as(&spec, &c, &img, root, "p_ns(u)").unwrap_err(),
            "container has runAsNonRoot and image will run as root (pod: \"p_ns(u)\", container: web)"
        );
        let c = json!({"name": "web", "securityContext": {"runAsUser": 1000}});
        assert_eq!(
            run_as(&spec, &c, &img, root, "p_ns(u)").unwrap(),
            RunAs {
                uid: Some(1000),
                gid: None
            }
        );
        let c = json!({"name": "web", "securityContext": {"runAsUser": 0}});
        assert!(
            run_as(&spec, &c, &img, root, "p")
                .unwrap_err()
                .contains("breaks non-root")
        );
        let mut named = img.clone();
        named.user = Some("app".into());
        assert!(
            run_as(&spec, &json!({"name": "web"}), &named, root, "p")
                .unwrap_err()
                .contains("non-numeric user (app)")
        );
        named.user = Some("1000:1000".into());
        assert!(run_as(&spec, &json!({"name": "web"}), &named, root, "p").is_ok());
    }
}
