//! Commit ids and commit metadata.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A full commit SHA-1: 40 lowercase hexadecimal digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommitId(String);

impl CommitId {
    /// Parse a full 40-hex SHA (any case; stored lowercase).
    pub fn parse(s: &str) -> Result<Self> {
        if s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(CommitId(s.to_ascii_lowercase()))
        } else {
            Err(Error::InvalidCommitId {
                value: s.chars().take(80).collect(),
            })
        }
    }

    /// The 40-hex string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 7 digits, as `git log --oneline` shows them.
    pub fn short(&self) -> &str {
        &self.0[..7]
    }

    pub(crate) fn from_oid(oid: impl Into<gix::ObjectId>) -> Self {
        CommitId(oid.into().to_hex().to_string())
    }

    pub(crate) fn to_oid(&self) -> gix::ObjectId {
        // Validated at construction: 40 hex digits always decode.
        gix::ObjectId::from_hex(self.0.as_bytes())
            .unwrap_or_else(|_| gix::ObjectId::null(gix::hash::Kind::Sha1))
    }
}

impl fmt::Debug for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommitId({})", self.0)
    }
}

impl fmt::Display for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for CommitId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        CommitId::parse(s)
    }
}

impl AsRef<str> for CommitId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for CommitId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// What the history and the UI show about a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    /// The commit.
    pub id: CommitId,
    /// The full message, as written, without trailing newlines.
    pub message: String,
    /// The message's first line.
    pub summary: String,
    /// Author name.
    pub author_name: String,
    /// Author e-mail.
    pub author_email: String,
    /// Author time, seconds since the Unix epoch (UTC).
    pub time: i64,
    /// The author's UTC offset in seconds (east positive), for display in their local time.
    pub time_offset: i32,
    /// Parent commits, first parent first.
    pub parents: Vec<CommitId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_ids_are_validated_and_lowercased() {
        let id = CommitId::parse(&"AB".repeat(20)).unwrap();
        assert_eq!(id.as_str(), "ab".repeat(20));
        assert_eq!(id.short(), "abababa");
        assert_eq!(id.to_oid().to_hex().to_string(), id.as_str());
        assert!(CommitId::parse("abc").is_err());
        assert!(CommitId::parse(&"g".repeat(40)).is_err());
    }
}
