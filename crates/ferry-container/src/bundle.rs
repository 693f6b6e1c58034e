//! The OCI runtime bundle: [`ContainerSpec`] (ferry's own description of a
//! container) in, `config.json` (built with `oci-spec`) plus the `/etc/hosts`,
//! `/etc/hostname` and `/etc/resolv.conf` files the container sees out.
//!
//! The security defaults are Docker's: its capability set, masked and read-only
//! `/proc` and `/sys` paths, `noNewPrivileges`, a device cgroup that denies all but
//! runc's standard devices. The network is the host's (no network namespace), as for
//! the local runtime's plain processes, so ports work as before.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{
    Capabilities, Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder,
    LinuxDeviceCgroupBuilder, LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxPidsBuilder, LinuxResourcesBuilder, Mount as OciMount, MountBuilder, ProcessBuilder,
    RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use crate::error::{Error, IoContext, Result};
use crate::user::{ResolvedUser, UserSpec};

/// `PATH` when the image and the caller give none (Docker's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The CFS period used for CPU limits (100 ms, as Kubernetes).
pub const CPU_PERIOD_US: u64 = 100_000;

/// What to run and how: ferry's container description, turned into a bundle by
/// [`Runtime::run`](crate::Runtime::run).
#[derive(Clone, Debug, Default)]
pub struct ContainerSpec {
    /// The container's id for runc: unique within the runtime's directory; letters,
    /// digits, `_ - . +`.
    pub id: String,
    /// The image's unpacked layers (`ferry-oci`'s `Store::unpack`): shared and never
    /// written to.
    pub image_rootfs: PathBuf,
    /// argv; `args[0]` is looked up in the container's `PATH` by runc.
    pub args: Vec<String>,
    /// The environment (`PATH`, `HOSTNAME` and `HOME` are added when absent).
    pub env: BTreeMap<String, String>,
    /// The working directory inside the container; empty means `/`.
    pub cwd: String,
    /// Who to run as.
    pub user: UserSpec,
    /// The UTS hostname (the pod's name); empty means the id.
    pub hostname: String,
    /// Volumes: bind mounts and tmpfs.
    pub mounts: Vec<Mount>,
    /// Extra `/etc/hosts` lines (Kubernetes `hostAliases`).
    pub extra_hosts: Vec<HostEntry>,
    /// `/etc/resolv.conf`'s content; `None` copies the host's (host network).
    pub resolv_conf: Option<String>,
    /// `readOnlyRootFilesystem`: `/` is mounted read-only.
    pub read_only_rootfs: bool,
    /// cgroup limits.
    pub resources: Resources,
    /// OCI annotations: kept in runc's state and returned by
    /// [`Runtime::list`](crate::Runtime::list), so a restarted daemon can tell which
    /// pod a container belongs to.
    pub annotations: BTreeMap<String, String>,
}

/// A volume in the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mount {
    /// A host file or directory bind-mounted (recursively) at `destination`.
    Bind {
        /// On the host.
        source: PathBuf,
        /// Absolute path inside the container.
        destination: String,
        /// Mounted read-only.
        read_only: bool,
    },
    /// A fresh tmpfs (`emptyDir: {medium: Memory}`).
    Tmpfs {
        /// Absolute path inside the container.
        destination: String,
        /// Size limit in bytes (`sizeLimit`); the kernel's default (half of RAM) if unset.
        size_bytes: Option<u64>,
        /// Mode of its root directory; 1777 if unset.
        mode: Option<u32>,
    },
}

/// One `/etc/hosts` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostEntry {
    /// The address.
    pub ip: String,
    /// The names for it.
    pub names: Vec<String>,
}

/// cgroup limits, in Kubernetes' units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// `limits.memory` in bytes: the container is OOM-killed above it.
    pub memory_limit: Option<u64>,
    /// `limits.cpu` in millicores: a CFS quota per 100 ms period.
    pub cpu_limit_millis: Option<u64>,
    /// `requests.cpu` in millicores: CPU shares (1024 per core); defaults to the limit.
    pub cpu_request_millis: Option<u64>,
    /// Maximum number of processes.
    pub pids_limit: Option<i64>,
}

/// Docker's default capabilities.
pub const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Docker's masked paths: hidden behind `/dev/null` or an empty read-only tmpfs.
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only paths.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Checks what runc would refuse or what could escape the runtime's directory.
pub(crate) fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 200
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId { id: id.to_string() })
    }
}

/// An absolute path inside the container without `..`.
fn check_destination(id: &str, dest: &str) -> Result<()> {
    let p = Path::new(dest);
    let ok = p.is_absolute()
        && p.components().all(|c| !matches!(c, Component::ParentDir))
        && p.components().count() > 1;
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidSpec {
            id: id.to_string(),
            reason: format!(
                "mount destination {dest:?} must be an absolute path below / without '..'"
            ),
        })
    }
}

fn oci(id: &str, what: &str, e: oci_spec::OciSpecError) -> Error {
    Error::InvalidSpec {
        id: id.to_string(),
        reason: format!("{what}: {e}"),
    }
}

fn mount(
    dest: &str,
    typ: &str,
    source: &str,
    options: &[&str],
) -> Result<OciMount, oci_spec::OciSpecError> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()
}

/// The files the bundle bind-mounts over the image's `/etc`.
pub(crate) struct EtcFiles {
    pub hosts: PathBuf,
    pub hostname: PathBuf,
    pub resolv_conf: PathBuf,
}

impl EtcFiles {
    pub(crate) fn in_dir(dir: &Path) -> EtcFiles {
        EtcFiles {
            hosts: dir.join("hosts"),
            hostname: dir.join("hostname"),
            resolv_conf: dir.join("resolv.conf"),
        }
    }
}

/// The container's hostname: the given one, else its id.
pub(crate) fn hostname(spec: &ContainerSpec) -> &str {
    if spec.hostname.is_empty() {
        &spec.id
    } else {
        &spec.hostname
    }
}

/// Writes `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf` for the container into
/// `dir`.
pub(crate) fn write_etc_files(spec: &ContainerSpec, dir: &Path) -> Result<EtcFiles> {
    let files = EtcFiles::in_dir(dir);
    let name = hostname(spec);
    let mut hosts = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n127.0.1.1\t{name}\n"
    );
    for h in &spec.extra_hosts {
        hosts.push_str(&format!("{}\t{}\n", h.ip, h.names.join(" ")));
    }
    std::fs::write(&files.hosts, hosts).at(&spec.id, &files.hosts)?;
    std::fs::write(&files.hostname, format!("{name}\n")).at(&spec.id, &files.hostname)?;
    let resolv = match &spec.resolv_conf {
        Some(text) => text.clone(),
        // The host network: the host's resolver works as is.
        None => std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
    };
    std::fs::write(&files.resolv_conf, resolv).at(&spec.id, &files.resolv_conf)?;
    Ok(files)
}

/// CPU shares for a request in millicores, as the kubelet computes them.
pub fn cpu_shares(millis: u64) -> u64 {
    (millis.saturating_mul(1024) / 1000).max(2)
}

/// CFS quota (µs per [`CPU_PERIOD_US`]) for a limit in millicores; at least 1 ms.
pub fn cpu_quota(millis: u64) -> i64 {
    i64::try_from(millis.saturating_mul(CPU_PERIOD_US) / 1000)
        .unwrap_or(i64::MAX)
        .max(1000)
}

/// The cgroup path of container `id` under `parent` (absolute: not below the
/// daemon's own cgroup, so a container outlives whatever runs the daemon).
pub fn cgroups_path(parent: &str, id: &str) -> String {
    format!("/{}/{id}", parent.trim_matches('/'))
}

/// Builds `config.json` for `spec`, its root at `rootfs` (relative to the bundle or
/// absolute), the process running as `user`, its `/etc` files from `etc`.
pub(crate) fn build_spec(
    spec: &ContainerSpec,
    user: &ResolvedUser,
    rootfs: &Path,
    etc: &EtcFiles,
    cgroup_parent: &str,
) -> Result<Spec> {
    let id = spec.id.as_str();
    check_id(id)?;
    if spec.args.is_empty() {
        return Err(Error::InvalidSpec {
            id: id.to_string(),
            reason: "no command: set command/args or the image's Entrypoint/Cmd".into(),
        });
    }
    let e = |what: &'static str| move |err| oci(id, what, err);

    let mut env = spec.env.clone();
    env.entry("PATH".into())
        .or_insert_with(|| DEFAULT_PATH.to_string());
    env.entry("HOSTNAME".into())
        .or_insert_with(|| hostname(spec).to_string());
    let home = if user.home.is_empty() {
        "/"
    } else {
        user.home.as_str()
    };
    env.entry("HOME".into()).or_insert_with(|| home.to_string());
    let caps: Capabilities = DEFAULT_CAPABILITIES.into_iter().collect();
    // As containerd does: a non-root user gets the set only as its bounding set, so
    // that it holds no capabilities unless a file capability grants them.
    let capabilities = if user.uid == 0 {
        LinuxCapabilitiesBuilder::default()
            .bounding(caps.clone())
            .effective(caps.clone())
            .permitted(caps)
            .build()
    } else {
        LinuxCapabilitiesBuilder::default()
            .bounding(caps)
            .effective(Capabilities::new())
            .permitted(Capabilities::new())
            .build()
    }
    .map_err(e("capabilities"))?;
    let mut oci_user = UserBuilder::default()
        .uid(user.uid)
        .gid(user.gid)
        .build()
        .map_err(e("user"))?;
    if !user.additional_gids.is_empty() {
        oci_user.set_additional_gids(Some(user.additional_gids.clone()));
    }
    let cwd = if spec.cwd.is_empty() {
        "/"
    } else {
        spec.cwd.as_str()
    };
    if !cwd.starts_with('/') {
        return Err(Error::InvalidSpec {
            id: id.to_string(),
            reason: format!("workingDir {cwd:?} must be an absolute path"),
        });
    }
    let mut process = ProcessBuilder::default()
        .terminal(false)
        .user(oci_user)
        .args(spec.args.clone())
        .env(
            env.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>(),
        )
        .cwd(cwd)
        .capabilities(capabilities)
        .no_new_privileges(true)
        .build()
        .map_err(e("process"))?;
    // Raising RLIMIT_NOFILE is refused on some hosts and lowering it breaks servers:
    // keep the limits runc itself runs with.
    process.set_rlimits(None);

    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
    ]
    .into_iter()
    .collect::<Result<Vec<_>, _>>()
    .map_err(e("mounts"))?;
    let etc_opts = ["rbind", "rprivate", "nosuid", "nodev", "noexec"];
    for (dest, file) in [
        ("/etc/hosts", &etc.hosts),
        ("/etc/hostname", &etc.hostname),
        ("/etc/resolv.conf", &etc.resolv_conf),
    ] {
        mounts.push(mount(dest, "bind", &file.to_string_lossy(), &etc_opts).map_err(e("mounts"))?);
    }
    for m in &spec.mounts {
        let built = match m {
            Mount::Bind {
                source,
                destination,
                read_only,
            } => {
                check_destination(id, destination)?;
                if !source.is_absolute() {
                    return Err(Error::InvalidSpec {
                        id: id.to_string(),
                        reason: format!(
                            "bind mount source {} must be an absolute host path",
                            source.display()
                        ),
                    });
                }
                let rw = if *read_only { "ro" } else { "rw" };
                mount(
                    destination,
                    "bind",
                    &source.to_string_lossy(),
                    &["rbind", "rprivate", rw],
                )
            }
            Mount::Tmpfs {
                destination,
                size_bytes,
                mode,
            } => {
                check_destination(id, destination)?;
                let mut opts = vec![
                    "nosuid".to_string(),
                    "nodev".to_string(),
                    format!("mode={:o}", mode.unwrap_or(0o1777)),
                ];
                if let Some(size) = size_bytes {
                    opts.push(format!("size={size}"));
                }
                MountBuilder::default()
                    .destination(destination.as_str())
                    .typ("tmpfs")
                    .source("tmpfs")
                    .options(opts)
                    .build()
            }
        }
        .map_err(e("volume mounts"))?;
        mounts.push(built);
    }

    let namespaces = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ]
    .into_iter()
    .map(|t| LinuxNamespaceBuilder::default().typ(t).build())
    .collect::<Result<Vec<_>, _>>()
    .map_err(e("namespaces"))?;

    let mut resources = LinuxResourcesBuilder::default().devices(vec![
        LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .map_err(e("devices"))?,
    ]);
    let r = &spec.resources;
    if let Some(limit) = r.memory_limit {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut memory = LinuxMemoryBuilder::default().limit(limit);
        // memory+swap = memory: the limit is not escaped into swap (Kubernetes
        // runs without swap). Only where the kernel accounts swap.
        if swap_accounted() {
            memory = memory.swap(limit);
        }
        resources = resources.memory(memory.build().map_err(e("memory"))?);
    }
    let request = r.cpu_request_millis.or(r.cpu_limit_millis);
    if request.is_some() || r.cpu_limit_millis.is_some() {
        let mut cpu = LinuxCpuBuilder::default();
        if let Some(req) = request {
            cpu = cpu.shares(cpu_shares(req));
        }
        if let Some(limit) = r.cpu_limit_millis {
            cpu = cpu.quota(cpu_quota(limit)).period(CPU_PERIOD_US);
        }
        resources = resources.cpu(cpu.build().map_err(e("cpu"))?);
    }
    if let Some(pids) = r.pids_limit {
        resources = resources.pids(
            LinuxPidsBuilder::default()
                .limit(pids)
                .build()
                .map_err(e("pids"))?,
        );
    }
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(cgroups_path(cgroup_parent, id))
        .resources(resources.build().map_err(e("resources"))?)
        .masked_paths(
            MASKED_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .readonly_paths(
            READONLY_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .build()
        .map_err(e("linux"))?;

    let annotations: HashMap<String, String> = spec.annotations.clone().into_iter().collect();
    let mut built = SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(rootfs)
                .readonly(spec.read_only_rootfs)
                .build()
                .map_err(e("root"))?,
        )
        .hostname(hostname(spec))
        .mounts(mounts)
        .process(process)
        .linux(linux)
        .build()
        .map_err(e("spec"))?;
    if !annotations.is_empty() {
        built.set_annotations(Some(annotations));
    }
    Ok(built)
}

/// Whether cgroup v1 accounts swap (`memory.memsw.*` exists); v2 always can.
fn swap_accounted() -> bool {
    Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
        || Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            id: "web-0".into(),
            image_rootfs: "/img".into(),
            args: vec!["sh".into(), "-c".into(), "true".into()],
            hostname: "web".into(),
            mounts: vec![
                Mount::Bind {
                    source: "/data".into(),
                    destination: "/var/data".into(),
                    read_only: true,
                },
                Mount::Tmpfs {
                    destination: "/cache".into(),
                    size_bytes: Some(1 << 20),
                    mode: Some(0o755),
                },
            ],
            resources: Resources {
                memory_limit: Some(64 << 20),
                cpu_limit_millis: Some(500),
                cpu_request_millis: Some(250),
                pids_limit: None,
            },
            read_only_rootfs: true,
            annotations: [("ferry.dev/pod".to_string(), "default/web".to_string())].into(),
            ..ContainerSpec::default()
        }
    }

    fn json(spec: &ContainerSpec, user: &ResolvedUser) -> Value {
        let etc = EtcFiles::in_dir(Path::new("/c"));
        let s = build_spec(spec, user, Path::new("rootfs"), &etc, "ferry").unwrap();
        serde_json::to_value(&s).unwrap()
    }

    #[test]
    fn config_has_namespaces_limits_and_mounts() {
        let j = json(&spec(), &ResolvedUser::default());
        let ns: Vec<&str> = j["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(ns, ["pid", "ipc", "uts", "mount"], "no network namespace");
        assert_eq!(j["hostname"], "web");
        assert_eq!(j["root"]["readonly"], true);
        assert_eq!(j["linux"]["cgroupsPath"], "/ferry/web-0");
        let res = &j["linux"]["resources"];
        assert_eq!(res["memory"]["limit"], 64 << 20);
        assert_eq!(res["cpu"]["quota"], 50_000);
        assert_eq!(res["cpu"]["period"], 100_000);
        assert_eq!(res["cpu"]["shares"], 256);
        assert!(j["process"].get("rlimits").is_none());
        assert_eq!(j["process"]["noNewPrivileges"], true);
        let env: Vec<&str> = j["process"]["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(
            env.contains(&"HOSTNAME=web") && env.contains(&"HOME=/"),
            "{env:?}"
        );
        let mounts = j["mounts"].as_array().unwrap();
        let find = |d: &str| mounts.iter().find(|m| m["destination"] == d).unwrap();
        assert_eq!(find("/var/data")["options"][2], "ro");
        assert_eq!(find("/cache")["options"][2], "mode=755");
        assert_eq!(find("/cache")["options"][3], "size=1048576");
        assert_eq!(find("/etc/hosts")["source"], "/c/hosts");
        assert_eq!(find("/sys")["options"][3], "ro");
        assert_eq!(j["annotations"]["ferry.dev/pod"], "default/web");
        assert_eq!(j["linux"]["maskedPaths"].as_array().unwrap().len(), 11);
    }

    #[test]
    fn non_root_users_keep_only_the_bounding_set() {
        let user = ResolvedUser {
            uid: 1000,
            gid: 1000,
            additional_gids: vec![10],
            name: Some("app".into()),
            home: "/home/app".into(),
        };
        let j = json(&spec(), &user);
        assert_eq!(j["process"]["user"]["uid"], 1000);
        assert_eq!(j["process"]["user"]["additionalGids"][0], 10);
        let caps = &j["process"]["capabilities"];
        assert_eq!(caps["bounding"].as_array().unwrap().len(), 14);
        assert!(caps["effective"].as_array().unwrap().is_empty());
        let root = json(&spec(), &ResolvedUser::default());
        assert_eq!(
            root["process"]["capabilities"]["effective"]
                .as_array()
                .unwrap()
                .len(),
            14
        );
    }

    #[test]
    fn bad_input_is_refused_with_the_reason() {
        let mut s = spec();
        s.mounts = vec![Mount::Tmpfs {
            destination: "/x/../../etc".into(),
            size_bytes: None,
            mode: None,
        }];
        let etc = EtcFiles::in_dir(Path::new("/c"));
        let err = build_spec(&s, &ResolvedUser::default(), Path::new("r"), &etc, "ferry")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("web-0") && err.contains("/x/../../etc"),
            "{err}"
        );
        for bad in ["", "../x", "a/b", ".hidden", "a b"] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
        check_id("default_web-0.app+1").unwrap();
        assert_eq!(cpu_shares(1), 2);
        assert_eq!(cpu_quota(1), 1000);
    }
}
