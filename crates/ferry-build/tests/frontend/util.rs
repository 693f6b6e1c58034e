//! Helpers shared by the frontend tests.

use std::collections::BTreeMap;

use ferry_build::dockerfile::{self, Dockerfile, InstructionKind};
use ferry_build::evaluator::{Step, StepKind};
use ferry_build::stage::{self, BuildOptions, Plan};

/// Parses or panics with the error.
pub fn parse(text: &str) -> Dockerfile {
    match dockerfile::parse("Dockerfile", text) {
        Ok(df) => df,
        Err(e) => panic!("parse failed: {e}\n{text}"),
    }
}

/// The error message of parsing `text` (panics if it parses).
pub fn parse_err(text: &str) -> String {
    match dockerfile::parse("Dockerfile", text) {
        Ok(df) => panic!("expected an error, got {:#?}", df.instructions),
        Err(e) => e.to_string(),
    }
}

/// Build options with these build args and target.
pub fn options(args: &[(&str, &str)], target: Option<&str>) -> BuildOptions {
    BuildOptions {
        build_args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        target: target.map(str::to_string),
        platform: None,
    }
}

/// Parses and plans or panics.
pub fn plan(text: &str, args: &[(&str, &str)], target: Option<&str>) -> Plan {
    let df = parse(text);
    match stage::plan(&df, &options(args, target)) {
        Ok(p) => p,
        Err(e) => panic!("plan failed: {e}"),
    }
}

/// `(key, value)` pairs from string slices.
pub fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The steps of stage `index` on base env `base`.
pub fn steps(plan: &Plan, index: usize, base: &[(&str, &str)]) -> Vec<Step> {
    match plan.steps(index, &env(base)) {
        Ok((s, _)) => s,
        Err(e) => panic!("steps failed: {e}"),
    }
}

/// The value of `name` in a RUN step's environment.
pub fn run_var<'a>(step: &'a Step, name: &str) -> Option<&'a str> {
    match &step.kind {
        StepKind::Run(r) => r
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str()),
        other => panic!("not a RUN step: {other:?}"),
    }
}

/// Instruction keywords in order.
pub fn keywords(df: &Dockerfile) -> Vec<&'static str> {
    df.instructions.iter().map(|i| i.kind.keyword()).collect()
}

/// The kinds of the instructions.
pub fn kinds(df: &Dockerfile) -> Vec<&InstructionKind> {
    df.instructions.iter().map(|i| &i.kind).collect()
}
