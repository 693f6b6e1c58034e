//! Image references in Docker's syntax: `[host[:port]/]repo/name[:tag][@sha256:…]`.

use std::fmt;

use crate::digest::Digest;
use crate::error::{Error, Result};

/// Docker Hub's name in references.
pub const DOCKER_HUB: &str = "docker.io";

/// A parsed image reference.
///
/// The first path component is a registry host when it contains `.` or `:` or is
/// `localhost`, as Docker decides; without one the reference names an image in the
/// local store only.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: Option<String>,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses a reference; `latest` is the tag when neither tag nor digest is given.
    pub fn parse(s: &str) -> Result<Reference> {
        let bad = |reason: &str| Error::InvalidReference {
            reference: s.to_string(),
            reason: reason.to_string(),
        };
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if s.len() > 512 {
            return Err(bad("longer than 512 characters"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(Digest::parse(d).map_err(|e| bad(&e.to_string()))?)),
            None => (s, None),
        };
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if !ok {
                return Err(bad(
                    "a tag is 1-128 of [A-Za-z0-9_.-], not starting with . or -",
                ));
            }
        }
        let (registry, repo) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (Some(first.to_string()), rest)
            }
            _ => (None, name),
        };
        if let Some(r) = &registry {
            let ok = r
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
            if !ok || r.starts_with(['.', '-', ':']) {
                return Err(bad("invalid registry host"));
            }
        }
        if repo.is_empty() {
            return Err(bad("missing repository name"));
        }
        for comp in repo.split('/') {
            if !valid_component(comp) {
                return Err(bad(&format!(
                    "repository component {comp:?} must be lowercase letters and digits separated by '.', '_', '__' or '-'"
                )));
            }
        }
        let mut repository = repo.to_string();
        let registry = registry.map(|r| {
            if r == "index.docker.io" {
                DOCKER_HUB.to_string()
            } else {
                r
            }
        });
        if registry.as_deref() == Some(DOCKER_HUB) && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The registry host (with port), if the reference names one.
    pub fn registry(&self) -> Option<&str> {
        self.registry.as_deref()
    }

    /// The repository path inside the registry, e.g. `team/web`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any (`latest` when neither tag nor digest was written).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference pins one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// Whether this names an image in the local store only (no registry host).
    pub fn is_local(&self) -> bool {
        self.registry.is_none()
    }

    /// `[registry/]repository`, the name without tag or digest.
    pub fn name(&self) -> String {
        match &self.registry {
            Some(r) => format!("{r}/{}", self.repository),
            None => self.repository.clone(),
        }
    }

    /// `name:tag`, the key under which a tagged image is kept in the store.
    pub fn tagged_name(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{}:{t}", self.name()))
    }

    /// The same name with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }

    /// The same name pinned to a digest, keeping the tag.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// What to ask the registry for: the digest if pinned, else the tag.
    pub fn manifest_key(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Reference> {
        Reference::parse(s)
    }
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: `.`, `_`, `__` or any number of `-`.
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_syntax() {
        let r = Reference::parse("127.0.0.1:5000/team/web:1.2").unwrap();
        assert_eq!(r.registry(), Some("127.0.0.1:5000"));
        assert_eq!(r.repository(), "team/web");
        assert_eq!(r.tag(), Some("1.2"));
        assert_eq!(r.to_string(), "127.0.0.1:5000/team/web:1.2");

        let r = Reference::parse("web").unwrap();
        assert!(r.is_local());
        assert_eq!(r.to_string(), "web:latest");

        let r = Reference::parse("localhost/web").unwrap();
        assert_eq!(r.registry(), Some("localhost"));

        let r = Reference::parse("docker.io/alpine").unwrap();
        assert_eq!(r.repository(), "library/alpine");

        let d = Digest::of(b"x");
        let r = Reference::parse(&format!("host.example/a/b@{d}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.manifest_key(), d.to_string());
        let r = Reference::parse(&format!("a:v1@{d}")).unwrap();
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(r.manifest_key(), d.to_string());
    }

    #[test]
    fn refuses_bad_references() {
        for bad in [
            "",
            "Web",
            "web:",
            "web:-x",
            "a//b",
            "web@sha256:zz",
            "-web",
            "a..b",
            "host:5000/",
            "web:a:b",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(Reference::parse("a__b-c--d.e").is_ok());
    }
}
