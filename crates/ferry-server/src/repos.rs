//! Repository credentials kept in `FERRY_HOME/repos.json` (mode 0600), as
//! `ferry repo add` writes them; the daemon hands them to the engine at start.
//! Passwords are stored encrypted with the state's key ring (see
//! [`ferry_store::crypt`]); a file written in clear by an earlier ferry is
//! re-written encrypted the first time it is read.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
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
    let mut entries: Vec<RepoEntry> = serde_json::from_str(&text).map_err(|e| Error::Io {
        what: "parsing (fix or remove it)",
        path: path.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })?;
    let ring = keyring(home)?;
    let mut in_clear = false;
    for e in &mut entries {
        let Some(stored) = e.password.take() else {
            continue;
        };
        let plain = match ring.decrypt(&stored, e.url.as_bytes()) {
            Ok(Some(bytes)) => String::from_utf8(bytes).map_err(|_| Error::Io {
                what: "decrypting a password in",
                path: path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"),
            })?,
            Ok(None) => {
                in_clear = true;
                stored
            }
            Err(err) => {
                return Err(Error::Io {
                    what: "decrypting a password in",
                    path: path.clone(),
                    source: std::io::Error::new(std::io::ErrorKind::InvalidData, err),
                });
            }
        };
        e.password = Some(plain);
    }
    if in_clear {
        save(home, &entries)?;
        tracing::warn!(
            "{}: repository passwords were stored in clear; they are encrypted now",
            path.display()
        );
    }
    Ok(entries.into_iter().map(|e| (e.url.clone(), e)).collect())
}

fn keyring(home: &Path) -> Result<ferry_store::Keyring, Error> {
    ferry_store::Keyring::load_or_create(home).map_err(|err| Error::Io {
        what: "loading the encryption keys in",
        path: ferry_store::Keyring::dir_of(home),
        source: std::io::Error::other(err),
    })
}

/// Writes `entries` to `repos.json`, readable by its owner only.
pub fn save(home: &Path, entries: &[RepoEntry]) -> Result<(), Error> {
    let path = path(home);
    let tmp = home.join(".repos.json.tmp");
    let io = |source| Error::Io {
        what: "writing",
        path: path.clone(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(home)
        .map_err(io)?;
    let ring = keyring(home)?;
    let sealed: Vec<RepoEntry> = entries
        .iter()
        .map(|e| RepoEntry {
            password: e
                .password
                .as_ref()
                .map(|p| ring.encrypt(p.as_bytes(), e.url.as_bytes())),
            ..e.clone()
        })
        .collect();
    let body = serde_json::to_string_pretty(&sealed).unwrap_or_default() + "\n";
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
        let raw = std::fs::read_to_string(path(dir.path())).unwrap();
        assert!(!raw.contains("s3cret"), "{raw}");
    }

    #[test]
    fn regression_repo_passwords_stored_in_clear_are_encrypted_when_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            path(dir.path()),
            r#"[{"url": "https://git.example/x.git", "username": "u", "password": "old-clear-pw"}]"#,
        )
        .unwrap();
        let loaded = load(dir.path()).unwrap();
        assert_eq!(loaded[0].1.password.as_deref(), Some("old-clear-pw"));
        let raw = std::fs::read_to_string(path(dir.path())).unwrap();
        assert!(!raw.contains("old-clear-pw"), "{raw}");
        assert_eq!(load(dir.path()).unwrap(), loaded);
    }

    #[test]
    fn a_password_moved_to_another_url_does_not_decrypt() {
        let dir = tempfile::tempdir().unwrap();
        let e = RepoEntry {
            url: "https://a.example/x.git".into(),
            password: Some("pw".into()),
            ..RepoEntry::default()
        };
        save(dir.path(), &[e]).unwrap();
        let raw = std::fs::read_to_string(path(dir.path())).unwrap();
        std::fs::write(path(dir.path()), raw.replace("a.example", "evil.example")).unwrap();
        assert!(load(dir.path()).is_err());
    }
}
