//! Errors: the daemon's own ([`Error`]) and the API's ([`ApiError`], sent as
//! `{"error": "...", "code": N}`).

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// What can stop the daemon from starting or serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another daemon holds the lock of this `FERRY_HOME`.
    #[error(
        "another ferry daemon is already running for {} ({running}); stop it with 'ferry down' or use another FERRY_HOME",
        home.display()
    )]
    AlreadyRunning {
        /// The state directory.
        home: PathBuf,
        /// What `daemon.json` says about it (pid and address), if anything.
        running: String,
    },
    /// The API address could not be bound.
    #[error("cannot listen on {addr}: {source}; pick another address with --addr")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A file of the daemon could not be read or written.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The runtime failed to start.
    #[error("starting the runtime: {0}")]
    Runtime(#[from] ferry_runtime::Error),
    /// The app controller failed to start.
    #[error("starting the app controller: {0}")]
    Engine(#[from] ferry_engine::Error),
}

/// An API error: an HTTP status and a message that names the object and says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// 400, 404, 409 or 500.
    pub code: StatusCode,
    /// The message.
    pub message: String,
}

impl ApiError {
    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            code: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// 404: the object (or resource type) does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            code: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// 409: a conflict with another field manager or a deletion.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self {
            code: StatusCode::CONFLICT,
            message: message.into(),
        }
    }

    /// 500: the daemon failed.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            code: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }

    /// The same error with `prefix: ` in front of its message.
    pub fn context(mut self, prefix: impl std::fmt::Display) -> Self {
        self.message = format!("{prefix}: {}", self.message);
        self
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<ferry_runtime::Error> for ApiError {
    fn from(e: ferry_runtime::Error) -> Self {
        use ferry_runtime::Error as E;
        match &e {
            E::Invalid(m) => Self::bad_request(m.clone()),
            E::Conflict(m) => Self::conflict(m.clone()),
            E::AlreadyExists(_) => Self::conflict(e.to_string()),
            E::Store(_) => Self::internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.message, "code": self.code.as_u16()});
        (self.code, Json(body)).into_response()
    }
}
