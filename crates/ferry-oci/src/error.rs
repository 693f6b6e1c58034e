//! The one error type of this crate.

use std::path::PathBuf;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong with images. Each message names the reference,
/// registry, digest or file involved and, where there is one, what to do next.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A reference does not follow Docker's syntax (`host:port/repo/name:tag@sha256:…`).
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference {
        /// The text as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A digest is not `sha256:` followed by 64 lowercase hex digits.
    #[error("invalid digest {digest:?}: {reason}")]
    InvalidDigest {
        /// The text as given.
        digest: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The image is not in the local store.
    #[error(
        "image {reference} not found in the local store; build it with `ferry image build` or pull it with `ferry image pull`"
    )]
    NotFound {
        /// The reference looked up.
        reference: String,
    },

    /// A blob the store's index points to is missing from `blobs/`.
    #[error("blob {digest} of {reference} is missing from the local store; pull the image again")]
    BlobMissing {
        /// The image it belongs to.
        reference: String,
        /// The missing blob.
        digest: String,
    },

    /// A reference names no registry host, but the operation needs one.
    #[error(
        "{reference} names no registry; use a reference with a host, such as 127.0.0.1:5000/{reference} or docker.io/library/{reference}"
    )]
    NoRegistry {
        /// The reference given.
        reference: String,
    },

    /// The registry has no manifest under that tag or digest.
    #[error(
        "manifest unknown: {reference} not found in the registry; check the repository and tag"
    )]
    ManifestUnknown {
        /// The full reference asked for.
        reference: String,
    },

    /// The registry does not have a blob that a manifest points to.
    #[error("blob unknown: {digest} of {reference} not found in the registry")]
    BlobUnknown {
        /// The image it belongs to.
        reference: String,
        /// The missing blob.
        digest: String,
    },

    /// The registry asked for credentials that were not given or not accepted.
    #[error(
        "unauthorized: {registry} refused access to {repository} ({reason}); put credentials for {registry} in FERRY_REGISTRY_AUTH or ~/.docker/config.json"
    )]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// The repository accessed.
        repository: String,
        /// What the registry said.
        reason: String,
    },

    /// The registry accepted the credentials but denied the operation.
    #[error("denied: {registry} does not allow this on {repository}: {reason}")]
    Denied {
        /// The registry host.
        registry: String,
        /// The repository accessed.
        repository: String,
        /// What the registry said.
        reason: String,
    },

    /// Pushing would move a tag that already points to another image.
    #[error(
        "tag {reference} already points to {existing} in the registry, not to {pushing}; tags are treated as immutable: push under a new tag, or pass --force to overwrite"
    )]
    TagExists {
        /// The full reference pushed to.
        reference: String,
        /// What the tag points to now.
        existing: String,
        /// What would be pushed.
        pushing: String,
    },

    /// Content did not hash to the digest it was fetched or stored under.
    #[error(
        "digest mismatch for {what}: expected {expected}, got {actual}; the content was corrupted or the registry lied"
    )]
    DigestMismatch {
        /// What was verified (a reference or blob description).
        what: String,
        /// The digest asked for.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },

    /// An image index has no manifest for the wanted platform.
    #[error("{reference} has no image for {wanted}; it offers: {available}")]
    NoMatchingPlatform {
        /// The reference pulled.
        reference: String,
        /// The platform wanted, e.g. `linux/amd64`.
        wanted: String,
        /// The platforms offered, comma-separated.
        available: String,
    },

    /// A manifest or layer has a media type this crate cannot handle.
    #[error("{reference}: unsupported media type {media_type:?}")]
    UnsupportedMediaType {
        /// The image or blob.
        reference: String,
        /// The media type found.
        media_type: String,
    },

    /// The registry cannot be reached (connection, TLS, DNS).
    #[error("cannot reach registry {registry} at {url}: {reason}; {hint}")]
    Unreachable {
        /// The registry host.
        registry: String,
        /// The URL tried.
        url: String,
        /// The transport error and its causes.
        reason: String,
        /// What to check.
        hint: String,
    },

    /// The registry answered with an unexpected status.
    #[error("registry {registry}: {method} {url} returned {status}: {message}")]
    Registry {
        /// The registry host.
        registry: String,
        /// The HTTP method.
        method: String,
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The registry's error message or body.
        message: String,
    },

    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A manifest, index or config is not valid JSON of the expected shape.
    #[error("{what}: invalid JSON: {source}")]
    Json {
        /// What was parsed (blob digest, file, reference).
        what: String,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },

    /// A layer holds a path that would land outside the root filesystem.
    #[error(
        "layer {layer} contains unsafe path {path:?} ({reason}); refusing to unpack an image that could write outside its root"
    )]
    UnsafePath {
        /// The layer digest.
        layer: String,
        /// The path in the layer.
        path: String,
        /// Why it is refused.
        reason: String,
    },

    /// Registry credentials could not be read.
    #[error("credentials from {origin}: {reason}")]
    Credentials {
        /// Where they were read from (variable or file).
        origin: String,
        /// What is wrong.
        reason: String,
    },

    /// A build input or option is not usable.
    #[error("build: {0}")]
    Build(String),

    /// A file given to `ferry image import` is not an image archive ferry can take.
    #[error("{}: {reason}", file.display())]
    Archive {
        /// The file (or standard input).
        file: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// An [`Error::Json`] for `what`.
    pub fn json(what: impl Into<String>, source: serde_json::Error) -> Self {
        Error::Json {
            what: what.into(),
            source,
        }
    }
}

/// Adds a path to `std::io::Result`s.
pub(crate) trait IoContext<T> {
    /// Maps the error to [`Error::Io`] naming `path`.
    fn at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
