//! The one error type of `ferry-git`.

use std::path::PathBuf;

/// Everything that can go wrong while reading or writing a Git repository.
///
/// URLs in these errors are always the redacted form ([`crate::RepoUrl::display`]): no
/// password, token or key ever appears in a message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The repository URL (or local path) could not be understood.
    #[error("invalid repository URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given, with any credentials removed.
        url: String,
        /// Why it was refused.
        reason: String,
    },

    /// The remote could not be contacted or refused us (network, DNS, TLS, authentication,
    /// no repository at that address). The cache is left exactly as it was.
    #[error("cannot reach {url}: {message}")]
    Unreachable {
        /// The remote, redacted.
        url: String,
        /// What the transport said, redacted.
        message: String,
    },

    /// The remote answered but the transfer of objects or the update of refs failed.
    #[error("fetch from {url} failed: {message}")]
    Fetch {
        /// The remote, redacted.
        url: String,
        /// What went wrong, redacted.
        message: String,
    },

    /// The revision names no branch, tag, ref or commit of the repository.
    #[error(
        "revision {revision:?} not found in {url}: it is no branch, tag, ref or commit SHA there \
         (check the app's targetRevision, or fetch again if it was just pushed)"
    )]
    RevisionNotFound {
        /// The remote, redacted.
        url: String,
        /// The revision as asked for.
        revision: String,
    },

    /// A short SHA matched more than one object.
    #[error("revision {revision:?} is ambiguous in {url}: give more hex digits of the commit SHA")]
    AmbiguousRevision {
        /// The remote, redacted.
        url: String,
        /// The short SHA as asked for.
        revision: String,
    },

    /// A string that should be a 40-hex commit id is not one.
    #[error("{value:?} is not a commit id (expected 40 hexadecimal digits)")]
    InvalidCommitId {
        /// The offending value.
        value: String,
    },

    /// The commit is not in the cached mirror of the repository.
    #[error("commit {commit} not found in {url}: fetch the repository, or check the revision")]
    CommitNotFound {
        /// The remote, redacted.
        url: String,
        /// The commit that was asked for.
        commit: String,
    },

    /// The path does not exist in the tree of that commit.
    #[error(
        "path {path:?} does not exist in {url} at commit {commit}: check the app's source path"
    )]
    PathNotFound {
        /// The remote, redacted.
        url: String,
        /// The commit whose tree was searched.
        commit: String,
        /// The path inside the repository.
        path: String,
    },

    /// The path exists at that commit but is a file, not a directory.
    #[error("path {path:?} in {url} at commit {commit} is a file, not a directory")]
    NotADirectory {
        /// The remote, redacted.
        url: String,
        /// The commit whose tree was searched.
        commit: String,
        /// The path inside the repository.
        path: String,
    },

    /// A repository path was refused (absolute, or climbing out with `..`).
    #[error("invalid path {path:?} inside a repository: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Why it was refused.
        reason: String,
    },

    /// A branch name that git would refuse (or read as an option).
    #[error("{branch:?} is not a valid branch name")]
    InvalidBranch {
        /// The name as given.
        branch: String,
    },

    /// The tree holds a symlink that points outside the repository; it is never written,
    /// as Argo CD refuses such repositories too.
    #[error(
        "{url} at commit {commit} contains an out-of-bounds symlink {path:?} -> {target:?}: \
         symlinks must stay inside the repository"
    )]
    UnsafeSymlink {
        /// The remote, redacted.
        url: String,
        /// The commit being checked out.
        commit: String,
        /// The symlink's path in the repository.
        path: String,
        /// Where it points.
        target: String,
    },

    /// Reading the cached mirror failed (a corrupt or incomplete object store).
    #[error("cannot read the cached mirror of {url}: {message} (delete {dir} to re-fetch it)")]
    Repository {
        /// The remote, redacted.
        url: String,
        /// The mirror's directory.
        dir: PathBuf,
        /// What went wrong.
        message: String,
    },

    /// A file-system operation in the cache failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "cannot write".
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A `git` command failed (write-back goes through the `git` CLI).
    #[error("`git {command}` for {url} failed: {message}")]
    GitCommand {
        /// The remote, redacted.
        url: String,
        /// The git sub-command, e.g. "push".
        command: String,
        /// Its redacted standard error, or why it could not start.
        message: String,
    },

    /// The branch kept moving, or our change could not be rebased onto it; nothing was pushed.
    #[error(
        "branch {branch:?} of {url} moved while committing and the change could not be replayed: \
         {message}"
    )]
    BranchMoved {
        /// The remote, redacted.
        url: String,
        /// The branch we tried to push.
        branch: String,
        /// What happened on the retry.
        message: String,
    },

    /// The caller's edit closure failed; nothing was committed.
    #[error("editing the checkout of {url} failed: {source}")]
    Edit {
        /// The remote, redacted.
        url: String,
        /// The closure's error.
        #[source]
        source: std::io::Error,
    },
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Flatten an error and its sources into one line, dropping repeats (gix errors often
/// repeat their source's text in their own message).
pub(crate) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !s.is_empty() && !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}
