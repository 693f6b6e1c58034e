//! Repository credentials, and the ways they reach a transport without touching disk in
//! clear (a gix credential callback, a `GIT_ASKPASS` helper reading the child's env, a
//! 0600 key file that is deleted afterwards).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::url::{RepoUrl, Scheme};

/// User name used with a password-only (token) credential: forges accept any non-empty
/// user name with a personal access token.
const TOKEN_USER: &str = "git";

/// Credentials for one repository, as an Argo CD repository secret holds them.
///
/// `Debug` never prints the password or the key.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// HTTP(S) user name. With only a password (a token), `git` is used.
    pub username: Option<String>,
    /// HTTP(S) password or access token.
    pub password: Option<String>,
    /// PEM-encoded SSH private key for `ssh://` and `git@host:` URLs.
    pub ssh_private_key: Option<String>,
    /// Skip TLS certificate verification (`insecure: true` in Argo CD).
    pub insecure: bool,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field(
                "ssh_private_key",
                &self.ssh_private_key.as_ref().map(|_| "<redacted>"),
            )
            .field("insecure", &self.insecure)
            .finish()
    }
}

impl Credentials {
    /// User name and password for HTTP basic auth, when a password or token is present.
    pub(crate) fn basic(&self) -> Option<(String, String)> {
        let password = self.password.clone().filter(|p| !p.is_empty())?;
        let user = self
            .username
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| TOKEN_USER.to_string());
        Some((user, password))
    }

    /// Every secret string, for scrubbing messages.
    pub(crate) fn secrets(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(p) = self.password.as_ref().filter(|p| p.len() >= 3) {
            out.push(p.clone());
        }
        if let Some(k) = self.ssh_private_key.as_ref() {
            out.extend(
                k.lines()
                    .map(str::trim)
                    .filter(|l| l.len() >= 16 && !l.starts_with("-----"))
                    .map(String::from),
            );
        }
        out
    }
}

/// The credentials to use: the caller's, else those written into the URL.
pub(crate) fn effective(url: &RepoUrl, creds: Option<&Credentials>) -> Option<Credentials> {
    let mut out = creds.cloned().unwrap_or_default();
    if let Some((user, password)) = url.url_credentials() {
        if out.username.is_none() {
            out.username = user.map(String::from);
        }
        if out.password.is_none() {
            out.password = password.map(String::from);
        }
    }
    (out != Credentials::default()).then_some(out)
}

/// Replace every secret in `msg` by `***` and strip user-info from URLs.
pub(crate) fn redact(msg: &str, creds: Option<&Credentials>) -> String {
    let mut out = msg.to_string();
    if let Some(c) = creds {
        for s in c.secrets() {
            out = out.replace(&s, "***");
        }
    }
    // Any `scheme://user:pass@` left by a tool's message.
    let mut cleaned = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        cleaned.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '\'' || c == '"')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => cleaned.push_str(&authority[at + 1..]),
            None => cleaned.push_str(authority),
        }
        rest = &tail[end..];
    }
    cleaned.push_str(rest);
    cleaned
}

/// An SSH private key written to a 0600 file in a private temp directory, removed on drop.
pub(crate) struct SshKeyFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl SshKeyFile {
    pub(crate) fn write(key: &str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("ferry-ssh-")
            .tempdir()
            .map_err(|e| Error::io("cannot create a temp dir for", std::env::temp_dir(), e))?;
        let path = dir.path().join("key");
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts
            .open(&path)
            .map_err(|e| Error::io("cannot write", &path, e))?;
        let mut body = key.trim_end().to_string();
        body.push('\n'); // ssh refuses a key without its final newline
        f.write_all(body.as_bytes())
            .map_err(|e| Error::io("cannot write", &path, e))?;
        Ok(SshKeyFile { _dir: dir, path })
    }

    /// `ssh -i KEY …`, for `GIT_SSH_COMMAND` / `core.sshCommand`.
    pub(crate) fn ssh_command(&self) -> String {
        format!(
            "ssh -i {} -o IdentitiesOnly=yes -o StrictHostKeyChecking=accept-new -o BatchMode=yes",
            shell_quote(&self.path)
        )
    }
}

/// The `GIT_ASKPASS` helper: answers git's prompts from the child's environment, and
/// only for the origin the credentials were registered for. git asks with the URL
/// in quotes (`Username for 'https://host:port': `, `Password for
/// 'https://user@host:port': `); after a redirect to another origin it asks for that
/// one, and then the helper fails, so git stops without sending anything.
const ASKPASS: &str = r#"#!/bin/sh
u=${1#*\'}
u=${u%\'*}
scheme=${u%%://*}
host=${u#*://}
host=${host%%/*}
host=${host##*@}
case "$scheme:$host" in
  http:*:80) host=${host%:80} ;;
  https:*:443) host=${host%:443} ;;
esac
asked=$(printf '%s://%s' "$scheme" "$host" | tr 'A-Z' 'a-z')
if [ -z "$FERRY_GIT_ORIGIN" ] || [ "$asked" != "$FERRY_GIT_ORIGIN" ]; then
  echo "ferry: not sending the credentials of $FERRY_GIT_ORIGIN to $asked (another origin)" >&2
  exit 1
fi
case "$1" in
  [Uu]sername*) printf '%s\n' "$FERRY_GIT_USERNAME" ;;
  *) printf '%s\n' "$FERRY_GIT_PASSWORD" ;;
esac
"#;

/// Everything a `git` child process needs to authenticate, kept alive for its duration.
pub(crate) struct GitAuth {
    /// Env vars to set on the child only.
    pub(crate) env: Vec<(String, String)>,
    /// `-c key=value` options.
    pub(crate) config: Vec<String>,
    _askpass: Option<tempfile::TempDir>,
    _key: Option<SshKeyFile>,
}

impl GitAuth {
    /// Prepare env and config for `git` against `url`. Secrets go into env vars of the
    /// child only; the askpass script on disk holds no secret, just reads them back.
    pub(crate) fn new(url: &RepoUrl, creds: Option<&Credentials>) -> Result<Self> {
        let mut env = vec![
            ("GIT_TERMINAL_PROMPT".to_string(), "0".to_string()),
            // A daemon must never open a prompt, even through an ssh passphrase dialog.
            ("SSH_ASKPASS".to_string(), String::new()),
        ];
        // Empty `credential.helper` resets the list: never read or store the user's keychain.
        // `http.followRedirects=initial` (git's default, stated so that no config can
        // widen it): only the first request may be redirected.
        let mut config = vec![
            "credential.helper=".to_string(),
            "http.followRedirects=initial".to_string(),
        ];
        let mut askpass = None;
        let mut key = None;
        if let Some(c) = creds {
            if c.insecure {
                config.push("http.sslVerify=false".to_string());
            }
            if let Some((user, password)) = c.basic()
                && matches!(url.scheme(), Scheme::Http | Scheme::Https)
            {
                let dir = tempfile::Builder::new()
                    .prefix("ferry-askpass-")
                    .tempdir()
                    .map_err(|e| {
                        Error::io("cannot create a temp dir for", std::env::temp_dir(), e)
                    })?;
                let script = dir.path().join("askpass.sh");
                write_executable(&script, ASKPASS)?;
                env.push(("GIT_ASKPASS".into(), script.to_string_lossy().into_owned()));
                env.push((
                    "FERRY_GIT_ORIGIN".into(),
                    url.http_origin().unwrap_or_default(),
                ));
                env.push(("FERRY_GIT_USERNAME".into(), user));
                env.push(("FERRY_GIT_PASSWORD".into(), password));
                askpass = Some(dir);
            }
            if let Some(k) = c
                .ssh_private_key
                .as_deref()
                .filter(|k| !k.trim().is_empty())
            {
                let file = SshKeyFile::write(k)?;
                env.push(("GIT_SSH_COMMAND".into(), file.ssh_command()));
                key = Some(file);
            }
        }
        if key.is_none() && url.scheme() == Scheme::Ssh {
            env.push((
                "GIT_SSH_COMMAND".into(),
                "ssh -o StrictHostKeyChecking=accept-new -o BatchMode=yes".into(),
            ));
        }
        Ok(GitAuth {
            env,
            config,
            _askpass: askpass,
            _key: key,
        })
    }
}

fn write_executable(path: &Path, body: &str) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o700);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| Error::io("cannot write", path, e))?;
    f.write_all(body.as_bytes())
        .map_err(|e| Error::io("cannot write", path, e))
}

/// Single-quote a path for `sh`.
pub(crate) fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.to_string_lossy().replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let c = Credentials {
            username: Some("u".into()),
            password: Some("hunter2".into()),
            ssh_private_key: Some("KEYDATA".into()),
            insecure: false,
        };
        let s = format!("{c:?}");
        assert!(!s.contains("hunter2") && !s.contains("KEYDATA"), "{s}");
    }

    #[test]
    fn redact_scrubs_passwords_and_userinfo() {
        let c = Credentials {
            password: Some("hunter2".into()),
            ..Default::default()
        };
        let msg = "fatal: could not read https://bob:hunter2@h/x.git; token hunter2";
        let out = redact(msg, Some(&c));
        assert!(!out.contains("hunter2"), "{out}");
        assert!(out.contains("https://h/x.git"), "{out}");
    }

    #[test]
    fn url_credentials_fill_in_missing_ones() {
        let url = RepoUrl::parse("https://bob:tok@h/x.git").unwrap();
        let c = effective(&url, None).unwrap();
        assert_eq!(c.basic(), Some(("bob".into(), "tok".into())));
        let token_only = Credentials {
            password: Some("t".into()),
            ..Default::default()
        };
        assert_eq!(token_only.basic(), Some(("git".into(), "t".into())));
        let plain = RepoUrl::parse("https://h/x.git").unwrap();
        assert!(effective(&plain, None).is_none());
    }

    #[cfg(unix)]
    #[test]
    fn ssh_key_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let k = SshKeyFile::write("-----BEGIN-----\nabc\n-----END-----").unwrap();
        let mode = std::fs::metadata(&k.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(k.ssh_command().contains("-i '"));
    }
}
