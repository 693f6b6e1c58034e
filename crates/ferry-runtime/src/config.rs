//! Settings of the embedded runtime.

use std::path::PathBuf;
use std::time::Duration;

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
