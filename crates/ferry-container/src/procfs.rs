//! What `/proc` says about processes and mounts: a process's start time (so a pid is
//! never mistaken for a recycled one), liveness, the effective uid, and the mount table.

use std::path::{Path, PathBuf};

/// `/proc/PID/stat`: the state letter and the start time in clock ticks (field 22).
pub fn proc_stat(pid: u32) -> Option<(char, i64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let ticks = fields.get(19)?.parse().ok()?;
    Some((state, ticks))
}

/// Start time of `pid` in clock ticks since boot, if it is alive.
pub fn start_ticks(pid: u32) -> Option<i64> {
    proc_stat(pid).map(|(_, t)| t)
}

/// Whether `pid` is still the process that started at `start_ticks` and has not exited
/// (a zombie has). A `start_ticks` of 0 means "unknown": any live `pid` matches.
pub fn is_alive(pid: u32, start_ticks: i64) -> bool {
    pid > 0
        && matches!(proc_stat(pid), Some((state, ticks))
            if (start_ticks == 0 || ticks == start_ticks) && state != 'Z' && state != 'X')
}

/// Whether this process runs with an effective uid of 0.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// One line of `/proc/self/mountinfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MountEntry {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// The file system type (`overlay`, `cgroup`, …).
    pub fstype: String,
    /// Per-superblock options (for cgroup v1: the controllers, such as `memory`).
    pub super_options: String,
}

/// Our mount table, in mount order.
pub(crate) fn mounts() -> Vec<MountEntry> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| parse_mountinfo(&t))
        .unwrap_or_default()
}

fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split(' ').nth(4)?;
            let mut right = right.split(' ');
            let fstype = right.next()?.to_string();
            let _source = right.next()?;
            let super_options = right.next().unwrap_or_default().to_string();
            Some(MountEntry {
                mount_point: PathBuf::from(unescape(mount_point)),
                fstype,
                super_options,
            })
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\ooo` octal escapes.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points at or below `dir`, deepest first (the order to unmount them in).
pub(crate) fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = mounts()
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_stat() {
        let me = std::process::id();
        let ticks = start_ticks(me).unwrap();
        assert!(ticks > 0);
        assert!(is_alive(me, ticks));
        assert!(!is_alive(me, ticks + 1));
        assert!(is_alive(me, 0));
    }

    #[test]
    fn parses_mountinfo_with_escapes() {
        let text = "36 35 98:0 /mnt1 /mnt/my\\040dir rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
                    40 25 0:35 / /sys/fs/cgroup/memory rw,relatime shared:17 - cgroup cgroup rw,memory\n";
        let m = parse_mountinfo(text);
        assert_eq!(m[0].mount_point, PathBuf::from("/mnt/my dir"));
        assert_eq!(m[0].fstype, "ext3");
        assert_eq!(m[1].fstype, "cgroup");
        assert_eq!(m[1].super_options, "rw,memory");
    }
}
