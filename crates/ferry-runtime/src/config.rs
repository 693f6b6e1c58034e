//! Settings of the embedded runtime.

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::resource::{Resource, getrlimit};

/// Settings of the embedded runtime; every path derives from `home` (`FERRY_HOME`).
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// `FERRY_HOME`.
    pub home: PathBuf,
    /// First restart back-off (Kubernetes: 10 s); tests shorten it.
    pub backoff_base: Duration,
    /// Longest restart back-off (Kubernetes: 300 s).
    pub backoff_max: Duration,
    /// Host ports handed to pods and to Services without a usable port, inclusive.
    pub port_range: (u16, u16),
    /// Registries reached over plain HTTP (besides 127.0.0.1 and localhost).
    pub insecure_registries: Vec<String>,
    /// Timeouts and connection caps of every Service port's proxy listener.
    pub proxy_limits: ConnectionLimits,
    /// How pods' containers run: real containers through runc, or host processes.
    /// Decided once at start (`ferry_container::detect`, by the daemon); the default
    /// is processes.
    pub isolation: ferry_container::Decision,
}

impl RuntimeConfig {
    /// Defaults under `home`; `FERRY_BACKOFF_BASE_MS` and `FERRY_BACKOFF_MAX_MS`
    /// shorten the restart back-off (for tests and demos).
    pub fn new(home: impl Into<PathBuf>) -> Self {
        let ms = |var: &str, default: u64| {
            std::env::var(var)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_millis)
                .unwrap_or(Duration::from_millis(default))
        };
        Self {
            home: home.into(),
            backoff_base: ms("FERRY_BACKOFF_BASE_MS", 10_000),
            backoff_max: ms("FERRY_BACKOFF_MAX_MS", 300_000),
            port_range: (30000, 32767),
            insecure_registries: std::env::var("FERRY_INSECURE_REGISTRIES")
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            proxy_limits: ConnectionLimits::services().with_env("FERRY_PROXY"),
            isolation: ferry_container::Decision {
                isolation: ferry_container::Isolation::Process,
                reason: "process isolation: the default".into(),
            },
        }
    }

    /// `home/ferry.db`.
    pub fn db_path(&self) -> PathBuf {
        self.home.join("ferry.db")
    }

    /// `home/images`: the OCI image layout.
    pub fn images_dir(&self) -> PathBuf {
        self.home.join("images")
    }

    /// `home/rootfs`: unpacked images, one directory per manifest digest.
    pub fn rootfs_dir(&self) -> PathBuf {
        self.home.join("rootfs")
    }

    /// `home/logs`: container logs.
    pub fn logs_dir(&self) -> PathBuf {
        self.home.join("logs")
    }
}

/// How long a listener waits for clients and how many it holds: what keeps slow
/// or idle clients from taking all of the process's file descriptors (which are
/// shared by the API, every Service port, pods' pipes and the state database).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a client may take to send a whole request head: counted from the
    /// accept for the first request, and from its first byte for later ones.
    pub header_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request's first
    /// byte. Never applies while a response is being sent (a watch, a followed
    /// log).
    pub idle_timeout: Duration,
    /// Connections held at once; more are accepted and closed at once.
    pub max_connections: usize,
    /// Connections held at once from one IP address beyond loopback (a local
    /// client can exhaust the machine anyway; remote ones should not).
    pub max_connections_per_ip: usize,
}

/// Default [`ConnectionLimits::header_timeout`].
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`ConnectionLimits::idle_timeout`].
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Open files kept back from connection caps, at least: the runtime's own files,
/// pods' pipes and log files, endpoint connections, the state database.
const FD_RESERVE: u64 = 1024;

impl ConnectionLimits {
    /// The daemon's API: half of the open-files budget (see [`fd_budget`]),
    /// 256 connections per remote IP.
    pub fn api() -> Self {
        Self {
            header_timeout: HEADER_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            max_connections: cap(fd_budget() / 2, 65_536),
            max_connections_per_ip: 256,
        }
    }

    /// One Service port's proxy: a quarter of the open-files budget (a proxied
    /// request also holds an endpoint connection), 1,024 per remote IP.
    pub fn services() -> Self {
        Self {
            header_timeout: HEADER_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            max_connections: cap(fd_budget() / 4, 32_768),
            max_connections_per_ip: 1024,
        }
    }

    /// These limits with `PREFIX_HEADER_TIMEOUT_MS`, `PREFIX_IDLE_TIMEOUT_MS`,
    /// `PREFIX_MAX_CONNECTIONS` and `PREFIX_MAX_CONNECTIONS_PER_IP` from the
    /// environment where set to a number (a value of 0 is ignored).
    pub fn with_env(mut self, prefix: &str) -> Self {
        let num = |name: &str| {
            std::env::var(format!("{prefix}_{name}"))
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|n| *n > 0)
        };
        if let Some(ms) = num("HEADER_TIMEOUT_MS") {
            self.header_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = num("IDLE_TIMEOUT_MS") {
            self.idle_timeout = Duration::from_millis(ms);
        }
        if let Some(n) = num("MAX_CONNECTIONS") {
            self.max_connections = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(n) = num("MAX_CONNECTIONS_PER_IP") {
            self.max_connections_per_ip = usize::try_from(n).unwrap_or(usize::MAX);
        }
        self
    }
}

/// At least 64 (a listener that takes nothing is no use), at most `max` (each
/// held connection costs memory too).
fn cap(n: u64, max: usize) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX).clamp(64, max)
}

/// The process's open-files limit (`RLIMIT_NOFILE`, soft) less a reserve of an
/// eighth of it, at least [`FD_RESERVE`]: what connections may take.
pub fn fd_budget() -> u64 {
    let soft = getrlimit(Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024);
    budget_of(soft)
}

fn budget_of(soft: u64) -> u64 {
    soft.saturating_sub((soft / 8).max(FD_RESERVE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_caps_leave_a_reserve_of_the_open_files_limit() {
        assert_eq!(budget_of(1024), 0);
        assert_eq!(budget_of(20_000), 17_500);
        assert_eq!(budget_of(1 << 20), (1 << 20) - (1 << 17));
        // Never nothing, never unbounded.
        assert_eq!(cap(budget_of(1024) / 2, 65_536), 64);
        assert_eq!(cap(budget_of(1 << 20) / 2, 65_536), 65_536);
        assert_eq!(cap(budget_of(20_000) / 2, 65_536), 8_750);
    }
}
