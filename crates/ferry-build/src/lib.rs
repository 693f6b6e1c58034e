//! ferry-build owns Dockerfile builds. This part is the frontend: the parser
//! ([`dockerfile`]), buildkit's variable expansion ([`expansion`]), stages and the
//! build plan ([`stage`]), expanded steps for the executor ([`evaluator`]), and the
//! build context with `.dockerignore` ([`ignore`], [`context`]).
//!
//! The executor ([`executor`], with [`layer`] and [`cache`]) builds the plan into an
//! image in ferry-oci's store, running `RUN` through ferry-container (runc).
//!
//! Everything but [`context`] and the executor is pure. The flow:
//!
//! ```
//! use ferry_build::{dockerfile, stage};
//!
//! let df = dockerfile::parse("Dockerfile", "FROM alpine AS base\nENV A=1\nFROM base\nRUN echo $A\n").unwrap();
//! let plan = stage::plan(&df, &stage::BuildOptions::default()).unwrap();
//! assert_eq!(plan.order, [0, 1]);
//! let (steps, env) = plan.steps(0, &[]).unwrap();
//! assert_eq!(env, [("A".to_string(), "1".to_string())]);
//! assert_eq!(steps.len(), 1);
//! ```

pub mod cache;
pub mod context;
pub mod dockerfile;
pub mod error;
pub mod evaluator;
pub mod executor;
pub mod expansion;
pub mod ignore;
pub mod layer;
pub mod platform;
pub mod stage;

pub use context::{
    ContextEntry, EntryKind, IgnoreFile, find_ignore_file, list_context, load_ignore_file,
};
pub use dockerfile::{Dockerfile, Instruction, InstructionKind, parse};
pub use error::{Error, Result, Warning};
pub use evaluator::{Evaluator, Step, StepKind};
pub use executor::{BuildOutput, BuildRequest, build};
pub use ignore::PatternMatcher;
pub use platform::Platform;
pub use stage::{Base, BuildOptions, CopySource, Plan, Stage, plan};
