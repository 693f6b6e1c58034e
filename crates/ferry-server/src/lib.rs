//! ferry's daemon (`ferry serve`): the JSON HTTP API under `/api/v1` over the
//! embedded runtime — apply, get/list/watch, delete, scale, rollouts, logs, events,
//! traffic weights, `down`, and the apps the engine runs (`/api/v1/apps`) — plus
//! `/metrics` and `/healthz`, the push webhook (`/api/webhook`), the API token
//! and the Host/Origin/content-type rules every call meets, and the daemon's own lifecycle (one daemon per
//! `FERRY_HOME`, `daemon.json`, signals).

pub mod api;
pub mod apps;
pub mod auth;
pub mod daemon;
pub mod error;
pub mod kinds;
pub mod listen;
pub mod repos;
pub mod rollout;
pub mod select;
pub mod webhook;

pub use api::{AppState, router};
pub use daemon::{Daemon, DaemonInfo, DaemonOptions, run, start};
pub use error::{ApiError, Error};
