//! The one error type of this crate: each variant names the container and, where
//! runc was involved, what runc said.

use std::path::PathBuf;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong preparing, running or cleaning up a container.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A container id runc would refuse (or that could escape the state directory).
    #[error(
        "invalid container id {id:?}: use 1-200 characters from letters, digits, '_', '-', '.' and '+', not starting with '.'"
    )]
    InvalidId {
        /// The id as given.
        id: String,
    },

    /// A field of the container spec cannot be turned into a runtime bundle.
    #[error("container {id}: {reason}")]
    InvalidSpec {
        /// The container.
        id: String,
        /// What is wrong and what to change.
        reason: String,
    },

    /// The image's user could not be resolved through its `/etc/passwd` / `/etc/group`.
    #[error(
        "container {id}: user {user:?} {reason}; use a numeric uid (runAsUser) or add the user to the image"
    )]
    UnknownUser {
        /// The container.
        id: String,
        /// The user (or `user:group`) as given.
        user: String,
        /// What was not found.
        reason: String,
    },

    /// A container with this id already exists in the runtime's state directory.
    #[error(
        "container {id} already exists; delete it first (its files are under {})",
        dir.display()
    )]
    AlreadyExists {
        /// The container.
        id: String,
        /// Its directory.
        dir: PathBuf,
    },

    /// The container is not known to runc.
    #[error("container {id} not found")]
    NotFound {
        /// The container.
        id: String,
    },

    /// The container exists but is not running (exec, signal).
    #[error("container {id} is not running (status {status})")]
    NotRunning {
        /// The container.
        id: String,
        /// runc's status word.
        status: String,
    },

    /// runc refused to create or start the container.
    #[error("container {id} failed to start: {runc}")]
    Start {
        /// The container.
        id: String,
        /// The last lines runc wrote.
        runc: String,
    },

    /// A runc command failed.
    #[error("container {id}: `runc {command}` failed: {runc}")]
    Runc {
        /// The container (or `*` for commands about all of them).
        id: String,
        /// The runc subcommand.
        command: String,
        /// The last lines runc wrote to stderr.
        runc: String,
    },

    /// runc (or the shell that supervises it) could not be executed at all.
    #[error("container {id}: cannot execute {}: {source}; install Debian's runc", program.display())]
    Spawn {
        /// The container.
        id: String,
        /// The program.
        program: PathBuf,
        /// Why.
        source: std::io::Error,
    },

    /// Mounting or unmounting the container's root filesystem failed.
    #[error("container {id}: {action} {}: {source}", path.display())]
    Mount {
        /// The container.
        id: String,
        /// What was attempted ("mount overlay on", "unmount").
        action: String,
        /// The mount point.
        path: PathBuf,
        /// Why.
        source: nix::Error,
    },

    /// Cleanup stopped because something is still mounted inside the container's
    /// directory: removing the tree would reach into the mounted file system.
    #[error(
        "container {id}: {} is still mounted; unmount it (umount -l) and delete the container again",
        path.display()
    )]
    StillMounted {
        /// The container.
        id: String,
        /// The mount point left.
        path: PathBuf,
    },

    /// Container isolation was asked for but cannot work here.
    #[error("container isolation is not available: {reason}; use isolation `process` or `auto`")]
    Unavailable {
        /// Why (not root, no runc, the test container failed …).
        reason: String,
    },

    /// A file of the container could not be read or written.
    #[error("container {id}: {}: {source}", path.display())]
    Io {
        /// The container.
        id: String,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(id: &str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            id: id.to_string(),
            path: path.into(),
            source,
        }
    }
}

/// Attaches the container and path to an I/O error.
pub(crate) trait IoContext<T> {
    fn at(self, id: &str, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, id: &str, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| Error::io(id, path, e))
    }
}
