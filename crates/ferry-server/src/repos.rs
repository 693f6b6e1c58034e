//! Repository credentials kept in `FERRY_HOME/repos.json` (mode 0600), as
//! `ferry repo add` writes them; the daemon hands them to the engine at start.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// One repository's credentials.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RepoEntry {
    /// The repository URL, as Applications name it in `repoURL`.
    pub url: String,
    /// HTTP(S) user name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// HTTP(S) password or token. Never printed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Skip TLS certificate verification.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
}

impl std::fmt::Debug for RepoEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoEntry")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("insecure", &self.insecure)
            .finish()
    }
}

impl From<RepoEntry> for ferry_git::Credentials {
    fn from(e: RepoEntry) -> Self {
        ferry_git::Credentials {
            username: e.username,
            password: e.password,
            ssh_private_key: None,
            insecure: e.insecure,
        }
    }
}

/// `FERRY_HOME/repos.json`.
pub fn path(home: &Path) -> PathBuf {
    home.join("repos.json")
}

/// Every stored repository, keyed by URL; none when the file does not exist.
pub fn load(home: &Path) -> Result<Vec<(String, RepoEntry)>, Error> {
    let path = path(home);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Io {
                what: "reading",
                path,
                source,
            });
        }
    };
    let entries: Vec<RepoEntry> = serde_json::from_str(&text).map_err(|e| Error::Io {
        what: "parsing (fix or remove it)",
        path: path.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })?;
    Ok(entries.into_iter().map(|e| (e.url.clone(), e)).collect())
}

/// Writes `entries` to `repos.json`, readable by its owner only.
pub fn save(home: &Path, entries: &[RepoEntry]) -> Result<(), Error> {
    let path = path(home);
    let tmp = home.join(".repos.json.tmp");
    let body = serde_json::to_string_pretty(entries).unwrap_or_default() + "\n";
    let io = |source| Error::Io {
        what: "writing",
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(home).map_err(io)?;
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::File::options()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(body.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn saved_credentials_are_private_and_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let e = RepoEntry {
            url: "https://git.example/x.git".into(),
            username: Some("u".into()),
            password: Some("s3cret".into()),
            insecure: false,
        };
        save(dir.path(), std::slice::from_ref(&e)).unwrap();
        let mode = std::fs::metadata(path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load(dir.path()).unwrap(), vec![(e.url.clone(), e.clone())]);
        assert!(!format!("{e:?}").contains("s3cret"));
    }
}
