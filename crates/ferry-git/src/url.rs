//! Repository URLs: the forms Argo CD accepts, normalised, with credentials split off.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// How a repository is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `https://host/org/repo.git`
    Https,
    /// `http://host/org/repo.git`
    Http,
    /// `ssh://[user@]host[:port]/path` or scp-like `git@host:org/repo.git`
    Ssh,
    /// `git://host/path` (the unauthenticated git daemon protocol)
    Git,
    /// `file:///path`
    File,
    /// A plain local path such as `/srv/git/app.git` or `../app` (made absolute)
    Local,
}

/// A repository URL, normalised, with any password or token from its user-info removed.
///
/// Credentials found in an `https://user:secret@host/…` URL are kept apart (see
/// [`RepoUrl::url_credentials`]) and never appear in [`RepoUrl::display`], in the cache
/// directory name, or in any error.
#[derive(Clone, PartialEq, Eq)]
pub struct RepoUrl {
    scheme: Scheme,
    /// What is handed to transports and shown to users; holds no secret.
    display: String,
    url_user: Option<String>,
    url_password: Option<String>,
}

impl fmt::Debug for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RepoUrl")
            .field("scheme", &self.scheme)
            .field("url", &self.display)
            .field("has_url_credentials", &self.url_password.is_some())
            .finish()
    }
}

impl fmt::Display for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

impl RepoUrl {
    /// Parse and normalise `url`: a URL (`https`, `http`, `ssh`, `git`, `file`), an
    /// scp-like address (`git@host:org/repo.git`) or a local path, which is made absolute
    /// against the current directory.
    pub fn parse(url: &str) -> Result<Self> {
        let raw = url.trim();
        if raw.is_empty() {
            return Err(invalid(raw, "the URL is empty"));
        }
        if raw.contains(['\n', '\r', '\0']) {
            return Err(invalid(raw, "the URL contains a control character"));
        }
        if let Some((scheme, rest)) = raw.split_once("://") {
            return parse_with_scheme(raw, scheme, rest);
        }
        if is_scp_like(raw) {
            // `[user[:password]@]host:path` — keep the login user, drop any password.
            let (userinfo, hostpath) = match raw.rsplit_once('@') {
                Some((u, h)) if !u.contains('/') => (Some(u), h),
                _ => (None, raw),
            };
            let user = userinfo.map(|u| u.split_once(':').map_or(u, |(u, _)| u));
            let display = match user {
                Some(u) if !u.is_empty() => format!("{u}@{hostpath}"),
                _ => hostpath.to_string(),
            };
            return Ok(RepoUrl {
                scheme: Scheme::Ssh,
                display,
                url_user: None,
                url_password: None,
            });
        }
        let path = absolute(Path::new(raw)).map_err(|e| invalid(raw, &e.to_string()))?;
        let display = path
            .to_str()
            .ok_or_else(|| invalid(raw, "the path is not valid UTF-8"))?
            .to_string();
        Ok(RepoUrl {
            scheme: Scheme::Local,
            display,
            url_user: None,
            url_password: None,
        })
    }

    /// How the repository is reached.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The URL without password or token: safe for logs, errors and UIs, and the form
    /// handed to transports. A local path is shown absolute.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// The user name and password (or token) that were written into an `http(s)` URL, if any.
    pub fn url_credentials(&self) -> Option<(Option<&str>, Option<&str>)> {
        if self.url_user.is_none() && self.url_password.is_none() {
            return None;
        }
        Some((self.url_user.as_deref(), self.url_password.as_deref()))
    }

    /// `scheme://host[:port]` of an `http(s)` URL, lowercased, user-info left out: the
    /// only origin its credentials are ever sent to. `None` for other schemes.
    pub(crate) fn http_origin(&self) -> Option<String> {
        if !matches!(self.scheme, Scheme::Http | Scheme::Https) {
            return None;
        }
        origin_of(&self.display)
    }

    /// The name of this repository's mirror directory: readable, filesystem-safe, unique
    /// per normalised URL, and free of credentials.
    pub fn cache_dir_name(&self) -> String {
        let without_scheme = self
            .display
            .split_once("://")
            .map_or(self.display.as_str(), |(_, r)| r);
        let mut readable: String = without_scheme
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        readable = readable.trim_matches(['_', '.']).to_string();
        // Keep the tail: the repository name lives at the end of a URL.
        if readable.len() > 60 {
            readable = readable[readable.len() - 60..]
                .trim_start_matches(['_', '.'])
                .to_string();
        }
        if readable.is_empty() {
            readable.push_str("repo");
        }
        let hash = hex::encode(Sha256::digest(self.display.as_bytes()));
        format!("{readable}-{}", &hash[..12])
    }
}

fn invalid(url: &str, reason: &str) -> Error {
    Error::InvalidUrl {
        url: strip_userinfo(url),
        reason: reason.to_string(),
    }
}

/// `scheme://host[:port]` of a URL, lowercased and without user-info; the default
/// port of the scheme (80, 443) is left out, so `https://h:443/x` and `https://h/x`
/// are one origin.
pub(crate) fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host_port = host_port.to_ascii_lowercase();
    let default = match scheme.as_str() {
        "http" => Some(":80"),
        "https" => Some(":443"),
        _ => None,
    };
    let host_port = match default {
        Some(d) => host_port.strip_suffix(d).unwrap_or(&host_port).to_string(),
        None => host_port,
    };
    if host_port.is_empty() {
        return None;
    }
    Some(format!("{scheme}://{host_port}"))
}

/// `url` with any `user:password@` removed, for every message, log line and UI that
/// shows a URL as it was written: `https://u:p@host/x.git` → `https://host/x.git`.
/// Anything that is not a `scheme://` URL is returned as it is.
pub fn redact(url: &str) -> String {
    strip_userinfo(url)
}

/// Splits the user-info off an `http(s)` URL as written: the URL without it (otherwise
/// unchanged, so it still matches what an Application names) and the percent-decoded
/// user name and password. `None` when the URL is not `http(s)` or carries no user-info.
pub fn split_userinfo(url: &str) -> Option<(String, Option<String>, Option<String>)> {
    let (scheme, rest) = url.trim().split_once("://")?;
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest[..end].rfind('@')?;
    let userinfo = &rest[..at];
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (percent_decode(u), Some(percent_decode(p))),
        None => (percent_decode(userinfo), None),
    };
    let stripped = format!("{scheme}://{}", &rest[at + 1..]);
    Some((
        stripped,
        Some(user).filter(|u| !u.is_empty()),
        password.filter(|p| !p.is_empty()),
    ))
}

/// Remove `user:password@` from anything that looks like a URL, for messages.
pub(crate) fn strip_userinfo(s: &str) -> String {
    let Some((scheme, rest)) = s.split_once("://") else {
        return s.to_string();
    };
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => s.to_string(),
    }
}

fn parse_with_scheme(raw: &str, scheme: &str, rest: &str) -> Result<RepoUrl> {
    let scheme_lc = scheme.to_ascii_lowercase();
    let scheme = match scheme_lc.as_str() {
        "https" => Scheme::Https,
        "http" => Scheme::Http,
        "ssh" | "git+ssh" | "ssh+git" => Scheme::Ssh,
        "git" => Scheme::Git,
        "file" => Scheme::File,
        other => {
            return Err(invalid(
                raw,
                &format!(
                    "unsupported scheme {other:?} (use https, http, ssh, git, file or a local path)"
                ),
            ));
        }
    };
    if scheme == Scheme::File {
        if !rest.starts_with('/') {
            return Err(invalid(
                raw,
                "a file URL needs an absolute path: file:///path",
            ));
        }
        let path = rest.trim_end_matches('/');
        return Ok(RepoUrl {
            scheme,
            display: format!("file://{}", if path.is_empty() { "/" } else { path }),
            url_user: None,
            url_password: None,
        });
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (userinfo, host) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    if host.is_empty() {
        return Err(invalid(raw, "the URL has no host"));
    }
    let (user, password) = match userinfo {
        Some(ui) => match ui.split_once(':') {
            Some((u, p)) => (Some(percent_decode(u)), Some(percent_decode(p))),
            None => (Some(percent_decode(ui)), None),
        },
        None => (None, None),
    };
    let path = path.trim_end_matches('/');
    let lower_host = host.to_ascii_lowercase();
    let (display, url_user, url_password) = match scheme {
        // HTTP credentials travel through the credential callback / askpass, never the URL.
        Scheme::Https | Scheme::Http => (
            format!("{scheme_lc}://{lower_host}{path}"),
            user.filter(|u| !u.is_empty()),
            password.filter(|p| !p.is_empty()),
        ),
        // The ssh login user is part of the address; a password in an ssh URL is dropped.
        _ => {
            let login = user
                .filter(|u| !u.is_empty())
                .map(|u| format!("{u}@"))
                .unwrap_or_default();
            (
                format!("{scheme_lc}://{login}{lower_host}{path}"),
                None,
                None,
            )
        }
    };
    Ok(RepoUrl {
        scheme,
        display,
        url_user,
        url_password,
    })
}

/// `host:path` with no slash before the colon, as git itself decides (a path such as
/// `./a:b` or `/x:y` stays a path).
fn is_scp_like(s: &str) -> bool {
    if s.starts_with(['/', '.', '~']) {
        return false;
    }
    match (s.find(':'), s.find('/')) {
        (Some(colon), Some(slash)) => colon < slash && colon > 0,
        (Some(colon), None) => colon > 0,
        _ => false,
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 3 <= bytes.len()
            && let Ok(hex) = std::str::from_utf8(&bytes[i + 1..i + 3])
            && let Ok(v) = u8::from_str_radix(hex, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An absolute, lexically clean path (`..` resolved without touching the disk when the
/// path does not exist; symlinks resolved when it does).
fn absolute(p: &Path) -> std::io::Result<PathBuf> {
    if let Ok(c) = p.canonicalize() {
        return Ok(c);
    }
    let abs = std::path::absolute(p)?;
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_ignore_userinfo_case_path_and_default_ports() {
        assert_eq!(
            origin_of("https://bob:pw@Git.Example:443/org/repo.git").as_deref(),
            Some("https://git.example")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8080/repo").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_ne!(
            origin_of("http://127.0.0.1:8080/repo"),
            origin_of("http://127.0.0.1:8081/repo")
        );
        assert_ne!(origin_of("http://h/repo"), origin_of("https://h/repo"));
        assert_eq!(origin_of("no-scheme"), None);
        let url = RepoUrl::parse("git@host:org/repo.git").unwrap();
        assert_eq!(url.http_origin(), None);
    }

    #[test]
    fn https_credentials_are_split_off() {
        let u = RepoUrl::parse("https://user:s%40cret@GitHub.com/org/repo.git/").unwrap();
        assert_eq!(u.display(), "https://github.com/org/repo.git");
        assert_eq!(u.url_credentials(), Some((Some("user"), Some("s@cret"))));
        assert!(!u.cache_dir_name().contains("cret"));
        assert!(!format!("{u:?}").contains("cret"));
    }

    #[test]
    fn scp_like_keeps_login_user() {
        let u = RepoUrl::parse("git@github.com:org/repo.git").unwrap();
        assert_eq!(u.scheme(), Scheme::Ssh);
        assert_eq!(u.display(), "git@github.com:org/repo.git");
        let u = RepoUrl::parse("ssh://git:pw@host:2222/org/repo.git").unwrap();
        assert_eq!(u.display(), "ssh://git@host:2222/org/repo.git");
    }

    #[test]
    fn local_paths_become_absolute() {
        let u = RepoUrl::parse("../nowhere-ferry/app").unwrap();
        assert_eq!(u.scheme(), Scheme::Local);
        assert!(Path::new(u.display()).is_absolute());
        assert!(!u.display().contains(".."));
        let u = RepoUrl::parse("./a:b").unwrap();
        assert_eq!(u.scheme(), Scheme::Local);
    }

    #[test]
    fn cache_names_differ_per_url_and_are_safe() {
        let a = RepoUrl::parse("https://h/org/a.git")
            .unwrap()
            .cache_dir_name();
        let b = RepoUrl::parse("https://h/org/b.git")
            .unwrap()
            .cache_dir_name();
        assert_ne!(a, b);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        );
        assert!(a.starts_with("h_org_a.git-"));
    }

    #[test]
    fn unknown_scheme_is_refused_without_secret() {
        let err = RepoUrl::parse("ftp://u:secret@h/x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unsupported scheme"), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn split_userinfo_keeps_the_rest_of_the_url_as_written() {
        assert_eq!(
            split_userinfo("https://bob:p%40ss@Git.Example/Org/App.git/"),
            Some((
                "https://Git.Example/Org/App.git/".to_string(),
                Some("bob".to_string()),
                Some("p@ss".to_string())
            ))
        );
        assert_eq!(
            split_userinfo("http://tok3n@h:8080/x"),
            Some((
                "http://h:8080/x".to_string(),
                Some("tok3n".to_string()),
                None
            ))
        );
        assert_eq!(split_userinfo("https://h/x@y"), None, "an @ in the path");
        assert_eq!(
            split_userinfo("ssh://git@h/x"),
            None,
            "ssh users are logins"
        );
        assert_eq!(split_userinfo("/srv/git/x"), None);
        assert_eq!(redact("https://u:secret@h/x"), "https://h/x");
    }

    #[test]
    fn strip_userinfo_only_touches_authority() {
        assert_eq!(strip_userinfo("https://u:p@h/a@b"), "https://h/a@b");
        assert_eq!(strip_userinfo("/srv/x@y"), "/srv/x@y");
    }
}
