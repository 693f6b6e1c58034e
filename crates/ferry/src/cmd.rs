//! One module per top-level command.

pub mod admin;
pub mod app;
pub mod apply;
pub mod bench;
pub mod bench_apps;
pub mod bench_push;
pub mod bench_runtime;
pub mod delete;
pub mod describe;
pub mod diff;
pub mod down;
pub mod events;
pub mod exec;
pub mod get;
pub mod health;
pub mod image;
pub mod image_archive;
pub mod logs;
pub mod render;
pub mod repo;
pub mod rollout;
pub mod scale;
pub mod serve;
pub mod traffic;
pub mod up;
pub mod validate;
