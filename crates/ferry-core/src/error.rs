//! The one error type of `ferry-core`.

use crate::object::{ObjectKey, Source};

/// What can go wrong in the pure core. Every variant names the file or object.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A document is not valid YAML or JSON.
    #[error("{file}:{line}:{column}: document {doc}: {message}")]
    Syntax {
        /// The file as the user named it.
        file: String,
        /// 1-based line of the error in the file.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// 0-based document index within the file.
        doc: usize,
        /// The parser's explanation.
        message: String,
    },
    /// A document parsed but is not a usable Kubernetes object.
    #[error("{}{message}", at.as_ref().map(|s| format!("{s}: ")).unwrap_or_default())]
    Invalid {
        /// Where the document is, when known.
        at: Option<Box<Source>>,
        /// What is wrong with it.
        message: String,
    },
    /// A file is larger than the parser accepts.
    #[error(
        "{file}: {size} bytes is more than the {limit}-byte limit for one manifest file; split it"
    )]
    TooLarge {
        /// The file.
        file: String,
        /// Its size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// Two objects in one render have the same group, kind, namespace and name.
    #[error("duplicate object {key}: defined at {first} and again at {second}")]
    Duplicate {
        /// The shared key.
        key: Box<ObjectKey>,
        /// Where it was first defined.
        first: String,
        /// Where it was defined again.
        second: String,
    },
    /// An expression (a `jqPathExpressions` entry, a JSON pointer) could not be understood.
    #[error("{what} {expr:?}: {message}")]
    Expression {
        /// What kind of expression.
        what: &'static str,
        /// The expression as given.
        expr: String,
        /// Why it was rejected.
        message: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
