//! The container's cgroups as the kernel shows them: where runc put them (v1: one
//! directory per mounted hierarchy; v2: one in the unified tree), whether the OOM
//! killer struck there, and removing what a crashed runc left behind.
//!
//! runc creates and deletes the cgroups; this module only reads them, plus an `rmdir`
//! of the container's own leaf directories when runc's state is gone.

use std::path::{Path, PathBuf};

use crate::procfs;

/// A mounted cgroup hierarchy.
#[derive(Clone, Debug)]
struct Hierarchy {
    mount_point: PathBuf,
    /// v1 controllers (`memory`, `cpu`, `name=systemd` …); empty for v2.
    controllers: Vec<String>,
    v2: bool,
}

fn hierarchies() -> Vec<Hierarchy> {
    procfs::mounts()
        .into_iter()
        .filter_map(|m| match m.fstype.as_str() {
            "cgroup" => Some(Hierarchy {
                mount_point: m.mount_point,
                controllers: m
                    .super_options
                    .split(',')
                    .filter(|o| !matches!(*o, "rw" | "ro") && !o.starts_with("release_agent"))
                    .map(str::to_string)
                    .collect(),
                v2: false,
            }),
            "cgroup2" => Some(Hierarchy {
                mount_point: m.mount_point,
                controllers: Vec::new(),
                v2: true,
            }),
            _ => None,
        })
        .collect()
}

/// `cgroups_path` (absolute, as in `config.json`) inside `mount_point`.
fn join(mount_point: &Path, cgroups_path: &str) -> PathBuf {
    mount_point.join(cgroups_path.trim_start_matches('/'))
}

/// The container's cgroup directories that exist now, in every hierarchy.
pub fn dirs(cgroups_path: &str) -> Vec<PathBuf> {
    hierarchies()
        .into_iter()
        .map(|h| join(&h.mount_point, cgroups_path))
        .filter(|p| p.is_dir())
        .collect()
}

/// How many processes the OOM killer has killed in the container's cgroup, if the
/// cgroup (still) exists. cgroup v1: `memory.oom_control`'s `oom_kill` line;
/// v2: `memory.events`' `oom_kill`.
pub fn oom_kills(cgroups_path: &str) -> Option<u64> {
    let all = hierarchies();
    // A pure v1 memory hierarchy wins: on hybrid hosts the unified tree has no memory
    // controller.
    if let Some(h) = all
        .iter()
        .find(|h| !h.v2 && h.controllers.iter().any(|c| c == "memory"))
    {
        let text =
            std::fs::read_to_string(join(&h.mount_point, cgroups_path).join("memory.oom_control"))
                .ok()?;
        return field(&text, "oom_kill");
    }
    let h = all.iter().find(|h| h.v2)?;
    let text =
        std::fs::read_to_string(join(&h.mount_point, cgroups_path).join("memory.events")).ok()?;
    field(&text, "oom_kill")
}

fn field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Removes the container's leaf cgroup directories that are left (runc normally does
/// this on delete). Only `rmdir`: a cgroup with processes or children stays, and
/// nothing but the container's own directories is touched.
pub fn remove(cgroups_path: &str) -> Vec<PathBuf> {
    let mut left = Vec::new();
    for dir in dirs(cgroups_path) {
        if std::fs::remove_dir(&dir).is_err() && dir.is_dir() {
            left.push(dir);
        }
    }
    left
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_oom_kill_fields() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(field(v1, "oom_kill"), Some(3));
        let v2 = "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(field(v2, "oom_kill"), Some(1));
        assert_eq!(field("under_oom 0\n", "oom_kill"), None);
    }

    #[test]
    fn joins_absolute_paths_inside_the_mount() {
        assert_eq!(
            join(Path::new("/sys/fs/cgroup/memory"), "/ferry/c1"),
            PathBuf::from("/sys/fs/cgroup/memory/ferry/c1")
        );
    }
}
