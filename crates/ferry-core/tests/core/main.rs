//! Integration tests of ferry-core, one module per domain, over YAML fixtures.

mod argo;
mod diff;
mod fuzz;
mod health;
mod names;
mod plan;
mod util;
