//! Integration tests of `ferry-render`: real files, real `kubectl kustomize`, and a
//! fake `helm` script (no helm here) that records the arguments it was given.

mod confine;
mod helm;
mod kustomize;
mod limits;
mod plain;
mod tools;
mod util;
