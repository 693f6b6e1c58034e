//! Who the container's process runs as: the image's `USER` (`name`, `uid`,
//! `name:group`, `uid:gid`) resolved through the image's own `/etc/passwd` and
//! `/etc/group`, overridden by the pod's numeric `runAsUser`/`runAsGroup`, with the
//! user's groups from `/etc/group` and the pod's supplemental groups as extra gids —
//! as Docker and containerd do it.

use std::path::Path;

use crate::error::{Error, Result};

/// The user a container asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserSpec {
    /// The image's `USER` (or Docker's `--user`): `name`, `uid`, `name:group`,
    /// `uid:gid`; empty or `None` for root.
    pub user: Option<String>,
    /// A numeric uid that overrides `user` (Kubernetes `runAsUser`).
    pub uid: Option<u32>,
    /// A numeric gid that overrides the primary group (Kubernetes `runAsGroup`).
    pub gid: Option<u32>,
    /// Extra groups (Kubernetes `supplementalGroups`).
    pub supplemental_groups: Vec<u32>,
}

/// A resolved user: what goes into `config.json`'s `process.user`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvedUser {
    /// The uid.
    pub uid: u32,
    /// The primary gid.
    pub gid: u32,
    /// Supplementary gids, without the primary one, sorted.
    pub additional_gids: Vec<u32>,
    /// The user's name if the image knows it.
    pub name: Option<String>,
    /// The home directory from `/etc/passwd` (for `HOME`), else `/`.
    pub home: String,
}

struct Passwd {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct Group {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// A regular file under `rootfs/etc/`, never through a symlink (an image's symlink
/// would be read on the host, outside the image).
fn read_etc(rootfs: &Path, name: &str) -> Option<String> {
    let etc = rootfs.join("etc");
    if !std::fs::symlink_metadata(&etc).ok()?.is_dir() {
        return None;
    }
    let path = etc.join(name);
    if !std::fs::symlink_metadata(&path).ok()?.is_file() {
        return None;
    }
    std::fs::read_to_string(path).ok()
}

fn passwd(rootfs: &Path) -> Vec<Passwd> {
    read_etc(rootfs, "passwd")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(Passwd {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f.get(5).map(|s| s.to_string()).unwrap_or_default(),
            })
        })
        .collect()
}

fn groups(rootfs: &Path) -> Vec<Group> {
    read_etc(rootfs, "group")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(Group {
                name: f.first()?.to_string(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Resolves `spec` against the image at `rootfs` for container `id`.
pub fn resolve(id: &str, rootfs: &Path, spec: &UserSpec) -> Result<ResolvedUser> {
    let users = passwd(rootfs);
    let groups = groups(rootfs);
    let text = spec.user.clone().unwrap_or_default();
    let (user_part, group_part) = match text.split_once(':') {
        Some((u, g)) => (u.to_string(), Some(g.to_string())),
        None => (text.clone(), None),
    };
    let unknown = |reason: &str| Error::UnknownUser {
        id: id.to_string(),
        user: text.clone(),
        reason: reason.to_string(),
    };

    // The user: runAsUser, else the image's USER, else root.
    let entry: Option<&Passwd>;
    let uid = if let Some(uid) = spec.uid {
        entry = users.iter().find(|p| p.uid == uid);
        uid
    } else if user_part.is_empty() {
        entry = users.iter().find(|p| p.uid == 0);
        0
    } else if let Ok(uid) = user_part.parse::<u32>() {
        entry = users.iter().find(|p| p.uid == uid);
        uid
    } else {
        entry = users.iter().find(|p| p.name == user_part);
        match entry {
            Some(p) => p.uid,
            None => return Err(unknown("is not in the image's /etc/passwd")),
        }
    };

    // The primary group: runAsGroup, else the USER's group part, else the passwd entry's.
    let gid = if let Some(gid) = spec.gid {
        gid
    } else if let Some(g) = group_part.as_deref().filter(|g| !g.is_empty()) {
        match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => match groups.iter().find(|gr| gr.name == g) {
                Some(gr) => gr.gid,
                None => {
                    return Err(unknown(
                        "names a group that is not in the image's /etc/group",
                    ));
                }
            },
        }
    } else {
        entry.map(|p| p.gid).unwrap_or(0)
    };

    let name = entry.map(|p| p.name.clone());
    let mut additional: Vec<u32> = spec.supplemental_groups.clone();
    // Docker adds the groups that list the user, unless the group was given explicitly.
    if group_part.is_none()
        && let Some(n) = &name
    {
        additional.extend(
            groups
                .iter()
                .filter(|g| g.members.iter().any(|m| m == n))
                .map(|g| g.gid),
        );
    }
    additional.retain(|g| *g != gid);
    additional.sort_unstable();
    additional.dedup();
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids: additional,
        home: entry
            .map(|p| p.home.clone())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "/".to_string()),
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        std::fs::write(
            t.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:App:/home/app:/bin/sh\nnobody:x:65534:65534::/nonexistent:/bin/false\n",
        )
        .unwrap();
        std::fs::write(
            t.path().join("etc/group"),
            "root:x:0:\napp:x:1000:\nwheel:x:10:app,other\naudio:x:29:app\nstaff:x:50:\n",
        )
        .unwrap();
        t
    }

    fn user(s: &str) -> UserSpec {
        UserSpec {
            user: Some(s.to_string()),
            ..UserSpec::default()
        }
    }

    #[test]
    fn names_resolve_through_passwd_and_group() {
        let t = image();
        let u = resolve("c", t.path(), &user("app")).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        assert_eq!(u.additional_gids, vec![10, 29]);
        assert_eq!(u.home, "/home/app");
        let u = resolve("c", t.path(), &user("app:staff")).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 50));
        assert!(u.additional_gids.is_empty());
        let u = resolve("c", t.path(), &user("4242:7")).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (4242, 7, "/"));
        let u = resolve("c", t.path(), &user("")).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/root"));
    }

    #[test]
    fn run_as_overrides_the_image_user() {
        let t = image();
        let spec = UserSpec {
            user: Some("app".into()),
            uid: Some(65534),
            gid: None,
            supplemental_groups: vec![99, 65534],
        };
        let u = resolve("c", t.path(), &spec).unwrap();
        assert_eq!((u.uid, u.gid), (65534, 65534));
        assert_eq!(u.additional_gids, vec![99]);
    }

    #[test]
    fn unknown_names_are_errors_that_say_what_to_do() {
        let t = image();
        let e = resolve("web", t.path(), &user("ghost")).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("web") && msg.contains("ghost") && msg.contains("runAsUser"),
            "{msg}"
        );
        assert!(resolve("web", t.path(), &user("app:nogroup")).is_err());
    }

    #[test]
    fn symlinked_passwd_is_not_followed() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", t.path().join("etc/passwd")).unwrap();
        assert!(resolve("c", t.path(), &user("root")).is_err());
    }
}
