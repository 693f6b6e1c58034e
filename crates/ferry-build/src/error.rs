//! The one error type of this crate.

use std::path::PathBuf;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while reading a Dockerfile, planning its stages or
/// listing a build context. Each message names the file and line (as Docker does:
/// `Dockerfile:7: unknown instruction: RUNN (did you mean RUN?)`) and, where there is
/// one, what to do next.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Dockerfile does not follow the syntax of Docker's Dockerfile reference.
    #[error("{file}:{line}: {message}{}", hint_suffix(.hint))]
    Syntax {
        /// The Dockerfile as the user named it.
        file: String,
        /// 1-based line where the instruction starts.
        line: usize,
        /// What is wrong, in Docker's words where Docker has some.
        message: String,
        /// What to do about it.
        hint: Option<String>,
    },

    /// A line starts with a word that is no Dockerfile instruction.
    #[error("{file}:{line}: unknown instruction: {instruction}{}", hint_suffix(.hint))]
    UnknownInstruction {
        /// The Dockerfile as the user named it.
        file: String,
        /// 1-based line of the instruction.
        line: usize,
        /// The word as written.
        instruction: String,
        /// The nearest instruction name, when one is close.
        hint: Option<String>,
    },

    /// A Dockerfile feature Docker has but ferry does not build.
    #[error("{file}:{line}: {feature} is not supported by ferry{}", hint_suffix(.hint))]
    Unsupported {
        /// The Dockerfile as the user named it.
        file: String,
        /// 1-based line of the instruction.
        line: usize,
        /// The feature, e.g. `RUN --mount`.
        feature: String,
        /// How to do without it.
        hint: Option<String>,
    },

    /// Variable expansion failed (`${VAR:?message}`, a bad substitution, an
    /// unterminated quote).
    #[error("{file}:{line}: {message}")]
    Expansion {
        /// The Dockerfile as the user named it.
        file: String,
        /// 1-based line of the instruction.
        line: usize,
        /// The lexer's message, in buildkit's words.
        message: String,
    },

    /// Stages refer to each other in a way that cannot be built.
    #[error("{file}:{line}: {message}{}", hint_suffix(.hint))]
    Stage {
        /// The Dockerfile as the user named it.
        file: String,
        /// 1-based line of the instruction that refers to the stage.
        line: usize,
        /// What is wrong.
        message: String,
        /// What to do about it.
        hint: Option<String>,
    },

    /// `--target` names no stage of the Dockerfile.
    #[error("{file}: target stage {target:?} could not be found; the named stages are: {stages}")]
    UnknownTarget {
        /// The Dockerfile as the user named it.
        file: String,
        /// The target asked for.
        target: String,
        /// The stage names there are, comma separated (or "none").
        stages: String,
    },

    /// A line of an ignore file (`.dockerignore` and friends) is not a valid pattern.
    #[error("{file}:{line}: invalid pattern {pattern:?}: {message}")]
    IgnorePattern {
        /// The ignore file as found.
        file: String,
        /// 1-based line of the pattern.
        line: usize,
        /// The pattern as written.
        pattern: String,
        /// What is wrong with it.
        message: String,
    },

    /// A `RUN` command exited with a non-zero status.
    #[error("{file}:{line}: {instruction} exited with {code}:\n{output}")]
    Run {
        /// The Dockerfile as the user named it.
        file: String,
        /// 1-based line of the instruction.
        line: usize,
        /// The instruction as written (shortened).
        instruction: String,
        /// Its exit code.
        code: i32,
        /// The last lines of its output.
        output: String,
    },

    /// `RUN` cannot be executed on this machine: ferry runs it only in a container,
    /// never on the host.
    #[error(
        "{file}:{line}: {instruction} needs {missing} to run in a container; ferry never runs build steps on the host"
    )]
    RunUnavailable {
        /// The Dockerfile as the user named it.
        file: String,
        /// 1-based line of the instruction.
        line: usize,
        /// The instruction as written (shortened).
        instruction: String,
        /// What is missing and how to get it.
        missing: String,
    },

    /// A build step (`COPY`, `ADD`, `WORKDIR`, `USER` …) could not be carried out.
    #[error("{file}:{line}: {instruction}: {message}")]
    Step {
        /// The Dockerfile as the user named it.
        file: String,
        /// 1-based line of the instruction.
        line: usize,
        /// The instruction as written (shortened).
        instruction: String,
        /// What went wrong and what to do.
        message: String,
    },

    /// The build was interrupted (Ctrl-C); nothing was tagged.
    #[error("{file}:{line}: the build was interrupted here; no tag was moved")]
    Cancelled {
        /// The Dockerfile as the user named it.
        file: String,
        /// 1-based line of the step that was running or next.
        line: usize,
    },

    /// The image store or a registry failed.
    #[error("{what}: {source}")]
    Image {
        /// What the build was doing.
        what: String,
        /// The store's or registry's error (boxed: it is large).
        source: Box<ferry_oci::Error>,
    },

    /// Starting or removing a build container failed.
    #[error("{file}:{line}: {instruction}: {source}")]
    Container {
        /// The Dockerfile as the user named it.
        file: String,
        /// 1-based line of the instruction.
        line: usize,
        /// The instruction as written (shortened).
        instruction: String,
        /// The runtime's error (boxed: it is large).
        source: Box<ferry_container::Error>,
    },

    /// Reading the build context or an ignore file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

fn hint_suffix(hint: &Option<String>) -> String {
    match hint {
        Some(h) => format!(" ({h})"),
        None => String::new(),
    }
}

impl Error {
    /// The 1-based line the error points at, if it points at one.
    pub fn line(&self) -> Option<usize> {
        match self {
            Error::Syntax { line, .. }
            | Error::UnknownInstruction { line, .. }
            | Error::Unsupported { line, .. }
            | Error::Expansion { line, .. }
            | Error::Stage { line, .. }
            | Error::IgnorePattern { line, .. }
            | Error::Run { line, .. }
            | Error::RunUnavailable { line, .. }
            | Error::Step { line, .. }
            | Error::Container { line, .. }
            | Error::Cancelled { line, .. } => Some(*line),
            Error::UnknownTarget { .. } | Error::Io { .. } | Error::Image { .. } => None,
        }
    }
}

/// A note about the Dockerfile that does not stop the build (Docker prints these as
/// warnings too): a deprecated instruction, an unused build argument, a flag ferry
/// accepts but treats as a no-op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The Dockerfile as the user named it.
    pub file: String,
    /// 1-based line, or `None` for a warning about the whole build.
    pub line: Option<usize>,
    /// What to tell the user.
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}", self.message),
        }
    }
}
