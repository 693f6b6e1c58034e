//! Registry credentials and `WWW-Authenticate` challenges.
//!
//! Credentials come, first match wins, from:
//! 1. `FERRY_REGISTRY_AUTH`: either inline JSON or the path of a JSON file, in the
//!    format of Docker's `config.json` (`{"auths": {"HOST": {"auth": base64("user:pass")}}}`;
//!    `username`/`password` fields are accepted too);
//! 2. `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json` (`auths` only;
//!    credential helpers are not run).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::error::{Error, Result};

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// User name.
    pub username: String,
    /// Password or access token.
    pub password: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credential {
    /// The `Authorization: Basic …` value.
    pub fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", self.username, self.password))
        )
    }
}

/// Credentials by registry host.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    by_host: BTreeMap<String, Credential>,
}

impl Credentials {
    /// No credentials.
    pub fn none() -> Self {
        Self::default()
    }

    /// Reads `FERRY_REGISTRY_AUTH`, else Docker's config file (see the module docs).
    /// A malformed `FERRY_REGISTRY_AUTH` is an error; a missing Docker config is not.
    pub fn from_env() -> Result<Self> {
        if let Some(v) = std::env::var_os("FERRY_REGISTRY_AUTH").filter(|v| !v.is_empty()) {
            let v = v.to_string_lossy().into_owned();
            if v.trim_start().starts_with('{') {
                return Self::from_docker_config(&v, "FERRY_REGISTRY_AUTH");
            }
            let raw = std::fs::read_to_string(&v).map_err(|e| Error::io(&v, e))?;
            return Self::from_docker_config(&raw, &v);
        }
        let path = match std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
            Some(d) => PathBuf::from(d).join("config.json"),
            None => match std::env::var_os("HOME") {
                Some(h) => PathBuf::from(h).join(".docker/config.json"),
                None => return Ok(Self::none()),
            },
        };
        match std::fs::read_to_string(&path) {
            Ok(raw) => Self::from_docker_config(&raw, &path.display().to_string()),
            Err(_) => Ok(Self::none()),
        }
    }

    /// Parses Docker's `config.json` format; `what` names the source in errors.
    pub fn from_docker_config(raw: &str, what: &str) -> Result<Self> {
        #[derive(serde::Deserialize)]
        struct File {
            #[serde(default)]
            auths: BTreeMap<String, Entry>,
        }
        #[derive(serde::Deserialize)]
        struct Entry {
            auth: Option<String>,
            username: Option<String>,
            password: Option<String>,
        }
        let file: File = serde_json::from_str(raw).map_err(|e| Error::json(what, e))?;
        let mut out = Self::none();
        for (host, e) in file.auths {
            let cred = match (e.auth.filter(|a| !a.is_empty()), e.username, e.password) {
                (Some(a), _, _) => {
                    let bad = || Error::Credentials {
                        origin: what.to_string(),
                        reason: format!("auths.{host}.auth must be base64 of user:password"),
                    };
                    let decoded = STANDARD.decode(a.trim()).map_err(|_| bad())?;
                    let text = String::from_utf8(decoded).map_err(|_| bad())?;
                    let (u, p) = text.split_once(':').ok_or_else(bad)?;
                    Credential {
                        username: u.to_string(),
                        password: p.to_string(),
                    }
                }
                (None, Some(u), Some(p)) => Credential {
                    username: u,
                    password: p,
                },
                _ => continue,
            };
            out.insert(&host, cred);
        }
        Ok(out)
    }

    /// Adds or replaces the credential for `host` (any of Docker's key spellings).
    pub fn insert(&mut self, host: &str, cred: Credential) {
        self.by_host.insert(normalise_host(host), cred);
    }

    /// The credential for a registry host, if any.
    pub fn get(&self, host: &str) -> Option<&Credential> {
        self.by_host.get(&normalise_host(host))
    }
}

/// `https://index.docker.io/v1/` → `docker.io`; `http://h:5000/` → `h:5000`.
fn normalise_host(key: &str) -> String {
    let k = key.trim();
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    let k = k.split('/').next().unwrap_or(k);
    match k {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        other => other.to_ascii_lowercase(),
    }
}

/// A parsed `WWW-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// `basic` or `bearer` (lowercased).
    pub scheme: String,
    /// Parameters (`realm`, `service`, `scope`, `error`, …), keys lowercased.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// Parses `Scheme k="v", k2=v2`. Quoted values may contain commas.
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = match header.split_once(char::is_whitespace) {
            Some((s, r)) => (s, r),
            None => (header, ""),
        };
        if scheme.is_empty() {
            return None;
        }
        let mut params = BTreeMap::new();
        let mut chars = rest.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
                chars.next();
            }
            let key: String =
                std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',')).collect();
            if key.trim().is_empty() {
                break;
            }
            if chars.next() != Some('=') {
                break;
            }
            let mut value = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                value.push(n);
                            }
                        }
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                value = std::iter::from_fn(|| chars.next_if(|c| *c != ','))
                    .collect::<String>()
                    .trim()
                    .to_string();
            }
            params.insert(key.trim().to_ascii_lowercase(), value);
        }
        Some(Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.example/token");
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
        let c = Challenge::parse(r#"Basic realm="basic-realm""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params["realm"], "basic-realm");
    }

    #[test]
    fn reads_docker_config() {
        let raw = r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYTpzcw=="},"127.0.0.1:5000":{"username":"a","password":"b"}}}"#;
        let c = Credentials::from_docker_config(raw, "test").unwrap();
        let hub = c.get("docker.io").unwrap();
        assert_eq!(
            (hub.username.as_str(), hub.password.as_str()),
            ("user", "pa:ss")
        );
        assert_eq!(c.get("127.0.0.1:5000").unwrap().username, "a");
        assert!(c.get("other").is_none());
        assert!(!format!("{hub:?}").contains("pa:ss"));
        assert!(Credentials::from_docker_config(r#"{"auths":{"h":{"auth":"!!"}}}"#, "t").is_err());
    }
}
