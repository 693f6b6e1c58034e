//! ferry's daemon (`ferry serve`): the JSON HTTP API under `/api/v1` over the
//! embedded runtime — apply, get/list/watch, delete, scale, rollouts, logs, events,
//! traffic weights, `down` — plus `/metrics` and `/healthz`, and the daemon's own
//! lifecycle (one daemon per `FERRY_HOME`, `daemon.json`, signals).

pub mod api;
pub mod daemon;
pub mod error;
pub mod kinds;
pub mod rollout;
pub mod select;

pub use api::{AppState, router};
pub use daemon::{DaemonInfo, DaemonOptions, run};
pub use error::{ApiError, Error};
