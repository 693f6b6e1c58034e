//! The one error type of `ferry-render`.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::Format;

/// What can go wrong while rendering. Every variant names the path, file or command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A source path or manifest file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path that could not be read.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A manifest is not valid YAML/JSON or not a Kubernetes object, or two objects
    /// share a key; the message names the file and line. Boxed: it is large, and
    /// `Result`s of this type are passed around on the happy path.
    #[error(transparent)]
    Manifest(#[from] Box<ferry_core::Error>),
    /// `directory.include` or `directory.exclude` is not a valid glob.
    #[error("directory.{option} {pattern:?} is not a valid glob: {source}")]
    Glob {
        /// `include` or `exclude`.
        option: &'static str,
        /// The pattern as given.
        pattern: String,
        /// Why it was rejected.
        source: globset::Error,
    },
    /// A format that works on a directory was asked to render a single file.
    #[error("{}: rendering with {format} needs a directory, but this is a file", path.display())]
    NotADirectory {
        /// The file.
        path: PathBuf,
        /// The format that was asked for.
        format: Format,
    },
    /// The program a format needs is not installed (or its override does not exist).
    #[error("{message}")]
    ToolMissing {
        /// What is missing, where it was looked for, and what to install.
        message: String,
    },
    /// A path the source refers to (a kustomization's resource, patch or generator
    /// file, a Helm value file, a symlink) leads outside the repository the source
    /// lives in; nothing was rendered.
    #[error(
        "{file}: {field} {path:?} points outside the repository; only paths inside it can be rendered"
    )]
    OutsideRoot {
        /// The file that refers to the path (relative to the repository root), or the
        /// symlink itself.
        file: String,
        /// Where in the file: `resources[0]`, `configMapGenerator[1].files[0]`, `symlink`.
        field: String,
        /// The path as written.
        path: String,
    },
    /// A kustomization refers to a remote base or a `file://` URL, which ferry does not
    /// let kustomize fetch; nothing was rendered.
    #[error("{file}: {field} {url:?} is {reason}")]
    Remote {
        /// The kustomization file (relative to the repository root).
        file: String,
        /// Where in the file: `resources[2]`.
        field: String,
        /// The URL as written.
        url: String,
        /// Why it is refused and what to do instead.
        reason: String,
    },
    /// The render would read more bytes in all than one render may (each file may be
    /// under the per-file limit); nothing more was read.
    #[error(
        "{file}: reading it would bring this render to {total} bytes, more than the {limit}-byte limit for one render; render fewer or smaller files (narrow directory.include or split the app)"
    )]
    OverBudget {
        /// The file (or command) whose bytes crossed the limit.
        file: String,
        /// The bytes the render would have read with it.
        total: u64,
        /// The limit in bytes.
        limit: usize,
    },
    /// The program exists but could not be started.
    #[error("could not run {}: {source}", program.display())]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The program ran and failed.
    #[error("`{command}` failed ({status}){}", if stderr.is_empty() { String::new() } else { format!(":\n{stderr}") })]
    ToolFailed {
        /// The command line, for the user to rerun.
        command: String,
        /// How it ended, e.g. `exit status: 1`.
        status: String,
        /// What it printed on stderr (trimmed, at most a few KiB).
        stderr: String,
    },
    /// The program ran longer than allowed and was killed.
    #[error("`{command}` did not finish within {}s and was killed; check the source for loops or remote bases, or raise FERRY_RENDER_TIMEOUT", timeout.as_secs_f64())]
    Timeout {
        /// The command line.
        command: String,
        /// The limit it exceeded.
        timeout: Duration,
    },
    /// The program's output could not be used (for example, it is not UTF-8).
    #[error("`{command}` printed unusable output: {message}")]
    BadOutput {
        /// The command line.
        command: String,
        /// What is wrong with the output.
        message: String,
    },
}

impl From<ferry_core::Error> for Error {
    fn from(e: ferry_core::Error) -> Self {
        Error::Manifest(Box::new(e))
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
