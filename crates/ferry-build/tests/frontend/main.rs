//! Integration tests of ferry-build's Dockerfile frontend: buildkit's own parser and
//! lexer cases, the Dockerfile reference's examples, and the Dockerfiles teams write.

mod args;
mod errors;
mod heredoc;
mod parser;
mod property;
mod stages;
mod util;
