//! Finding the external programs rendering runs: `kustomize`, `kubectl`, `helm`.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::exec::DEFAULT_TIMEOUT;

/// One program: where it is, or why it was not found.
#[derive(Clone, Debug)]
struct Located {
    program: Option<PathBuf>,
    /// Where we looked, for the "not installed" message.
    searched: String,
}

/// The external programs rendering may run, and how long each may take.
///
/// Each program is `FERRY_KUSTOMIZE`, `FERRY_KUBECTL` or `FERRY_HELM` when that
/// variable is set (a path; if nothing executable is there, the program counts as
/// missing), else the first executable of that name on `PATH`. The time limit is
/// `FERRY_RENDER_TIMEOUT` seconds, default [`DEFAULT_TIMEOUT`].
#[derive(Clone, Debug)]
pub struct Toolchain {
    kustomize: Located,
    kubectl: Located,
    helm: Located,
    timeout: Duration,
}

impl Toolchain {
    /// Finds the programs through this process's environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var_os(name))
    }

    /// Finds the programs through `lookup`, which answers for environment variables
    /// (`PATH`, `FERRY_KUSTOMIZE`, …). Tests use it to simulate another environment
    /// without touching the process's own.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Self {
        let path = lookup("PATH").unwrap_or_default();
        let find = |name: &str, var: &str| locate(name, var, lookup(var), &path);
        let timeout = lookup("FERRY_RENDER_TIMEOUT")
            .and_then(|v| v.to_str()?.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map_or(DEFAULT_TIMEOUT, Duration::from_secs_f64);
        Self {
            kustomize: find("kustomize", "FERRY_KUSTOMIZE"),
            kubectl: find("kubectl", "FERRY_KUBECTL"),
            helm: find("helm", "FERRY_HELM"),
            timeout,
        }
    }

    /// The same toolchain with another time limit per program run.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long one program run may take before it is killed.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The `kustomize` binary, if found.
    pub fn kustomize(&self) -> Option<&Path> {
        self.kustomize.program.as_deref()
    }

    /// The `kubectl` binary, if found.
    pub fn kubectl(&self) -> Option<&Path> {
        self.kubectl.program.as_deref()
    }

    /// The `helm` binary, if found.
    pub fn helm(&self) -> Option<&Path> {
        self.helm.program.as_deref()
    }

    /// Where `kustomize` and `kubectl` were looked for.
    pub(crate) fn kustomize_search(&self) -> String {
        format!("{}; {}", self.kustomize.searched, self.kubectl.searched)
    }

    /// Where `helm` was looked for.
    pub(crate) fn helm_search(&self) -> &str {
        &self.helm.searched
    }
}

fn locate(name: &str, var: &str, over: Option<OsString>, path: &OsString) -> Located {
    if let Some(over) = over.filter(|v| !v.is_empty()) {
        let candidate = PathBuf::from(&over);
        return if is_executable(&candidate) {
            Located {
                program: Some(candidate),
                searched: format!("{var}={}", candidate_display(&over)),
            }
        } else {
            Located {
                program: None,
                searched: format!(
                    "{var}={} is not an executable file",
                    candidate_display(&over)
                ),
            }
        };
    }
    let program = std::env::split_paths(path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|c| is_executable(c));
    Located {
        program,
        searched: format!("no {name} on PATH"),
    }
}

fn candidate_display(v: &OsString) -> String {
    v.to_string_lossy().into_owned()
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_path_finds_nothing_and_timeout_parses() {
        let t = Toolchain::from_lookup(|k| match k {
            "PATH" => Some("".into()),
            "FERRY_RENDER_TIMEOUT" => Some("2.5".into()),
            _ => None,
        });
        assert!(t.kustomize().is_none() && t.kubectl().is_none() && t.helm().is_none());
        assert_eq!(t.timeout(), Duration::from_millis(2500));
    }

    #[test]
    fn override_to_missing_file_counts_as_missing() {
        let t = Toolchain::from_lookup(|k| (k == "FERRY_HELM").then(|| "/nonexistent/helm".into()));
        assert!(t.helm().is_none());
        assert!(t.helm_search().contains("FERRY_HELM=/nonexistent/helm"));
    }
}
