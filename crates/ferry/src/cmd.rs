//! One module per top-level command.

pub mod bench;
pub mod diff;
pub mod health;
pub mod image;
pub mod render;
pub mod validate;
