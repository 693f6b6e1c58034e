//! Stages and the build plan: global `ARG`s (those before the first `FROM`) and
//! `--build-arg` values, `FROM` lines expanded with them, stage names and indexes,
//! `COPY --from`, and `--target` — which stages are needed, in the order to build
//! them.

use std::collections::{BTreeMap, BTreeSet};

use crate::dockerfile::{Dockerfile, Instruction, InstructionKind};
use crate::error::{Error, Result, Warning};
use crate::expansion::Lexer;
use crate::platform::Platform;

/// Build arguments Docker predefines: usable with `--build-arg` without an `ARG`
/// line, passed to `RUN` but not expanded in other instructions, and never reported
/// as unused.
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The automatic platform arguments, set in the global scope (visible in `FROM`; a
/// stage sees them after a bare `ARG NAME`).
pub const PLATFORM_ARGS: &[&str] = &[
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
];

/// `PATH` of an image that sets none (buildkit's default for Linux), which `FROM
/// scratch` starts with and `RUN` falls back to.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the user asked of the build.
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    /// `--build-arg NAME=value`.
    pub build_args: BTreeMap<String, String>,
    /// `--target NAME`: build up to this stage; the last stage when `None`.
    pub target: Option<String>,
    /// The platform to build for; the host's when `None` (ferry builds only for the
    /// host).
    pub platform: Option<Platform>,
}

/// What a stage starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Base {
    /// `FROM scratch`: an empty root file system.
    Scratch,
    /// An image reference, variables expanded (pull or find it in the store).
    Image(String),
    /// An earlier stage, by index.
    Stage(usize),
}

/// Where `COPY` takes its sources from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CopySource {
    /// The build context (no `--from`; always so for `ADD`).
    Context,
    /// An earlier stage's root file system.
    Stage(usize),
    /// An image's root file system (`--from=alpine:3.20`).
    Image(String),
}

/// One stage: a `FROM` line and the instructions up to the next.
#[derive(Clone, Debug)]
pub struct Stage {
    /// 0-based position among the stages.
    pub index: usize,
    /// `AS name`, lower-cased.
    pub name: Option<String>,
    /// What it starts from.
    pub base: Base,
    /// `--platform`, expanded, when given.
    pub platform: Option<String>,
    /// Line of its `FROM`.
    pub line: usize,
    /// Its instructions after `FROM`, in order.
    pub instructions: Vec<Instruction>,
    /// Where each `COPY`/`ADD` (by start line) takes its sources from.
    pub copy_sources: BTreeMap<usize, CopySource>,
    /// Stages this one needs (its base and its `COPY --from` stages), ascending.
    pub dependencies: Vec<usize>,
}

impl Stage {
    /// `name` if it has one, else its index — how Docker names a stage in messages.
    pub fn display_name(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => format!("stage {}", self.index),
        }
    }
}

/// The build plan of a Dockerfile for one set of options.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The Dockerfile's name, for messages.
    pub file: String,
    /// The Dockerfile's escape token.
    pub escape: char,
    /// Every stage of the Dockerfile.
    pub stages: Vec<Stage>,
    /// The stages to build, ascending (each after those it needs).
    pub order: Vec<usize>,
    /// The stage whose result is the image.
    pub target: usize,
    /// Variables visible in `FROM` lines: the platform arguments and the global
    /// `ARG`s that have a value.
    pub global_args: BTreeMap<String, String>,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// The platform built for.
    pub platform: Platform,
    /// The parser's warnings and the planner's (unused build arguments, platform).
    pub warnings: Vec<Warning>,
}

impl Plan {
    /// The stage the image comes from.
    pub fn target_stage(&self) -> &Stage {
        &self.stages[self.target]
    }
}

fn stage_err(file: &str, line: usize, message: String, hint: Option<String>) -> Error {
    Error::Stage {
        file: file.to_string(),
        line,
        message,
        hint,
    }
}

/// Plans the build of `df` with `opts`.
pub fn plan(df: &Dockerfile, opts: &BuildOptions) -> Result<Plan> {
    let file = df.file.as_str();
    let platform = opts.platform.clone().unwrap_or_else(Platform::host);
    let host = Platform::host();
    let lexer = Lexer::new(df.escape);
    let mut warnings = df.warnings.clone();

    let mut global_args: BTreeMap<String, String> = BTreeMap::new();
    for (names, values) in [
        (&PLATFORM_ARGS[..4], platform.arg_values()),
        (&PLATFORM_ARGS[4..], host.arg_values()),
    ] {
        for (n, v) in names.iter().zip(values) {
            global_args.insert(n.to_string(), v);
        }
    }

    // Split into global ARGs and stages.
    let mut declared: BTreeSet<String> = BTreeSet::new();
    let mut stages: Vec<Stage> = Vec::new();
    for ins in &df.instructions {
        match &ins.kind {
            InstructionKind::Arg(decls) if stages.is_empty() => {
                for d in decls {
                    declared.insert(d.name.clone());
                    let value = if let Some(v) = opts.build_args.get(&d.name) {
                        Some(v.clone())
                    } else if let Some(default) = &d.default {
                        Some(
                            lexer
                                .process_word(default, &global_args)
                                .map_err(|message| Error::Expansion {
                                    file: file.to_string(),
                                    line: ins.start_line,
                                    message,
                                })?,
                        )
                    } else {
                        None
                    };
                    if let Some(v) = value {
                        global_args.insert(d.name.clone(), v);
                    }
                }
            }
            InstructionKind::From(from) => {
                let index = stages.len();
                let expanded = lexer
                    .process(&from.image, &global_args)
                    .map_err(|message| Error::Expansion {
                        file: file.to_string(),
                        line: ins.start_line,
                        message,
                    })?;
                // buildkit's UndefinedArgInFrom check: a variable no global ARG declares.
                for name in expanded.unmatched.iter().filter(|n| !declared.contains(*n)) {
                    warnings.push(Warning {
                        file: file.to_string(),
                        line: Some(ins.start_line),
                        message: format!(
                            "FROM argument '{name}' is not declared; declare it with ARG {name} before the first FROM"
                        ),
                    });
                }
                let image = expanded.word;
                if image.is_empty() {
                    return Err(stage_err(
                        file,
                        ins.start_line,
                        format!("base name ({}) should not be blank", from.image),
                        Some("give the ARG it uses a default or pass --build-arg".into()),
                    ));
                }
                let stage_platform = match &from.platform {
                    None => None,
                    Some(p) => {
                        let expanded = lexer.process_word(p, &global_args).map_err(|message| {
                            Error::Expansion {
                                file: file.to_string(),
                                line: ins.start_line,
                                message,
                            }
                        })?;
                        let parsed = Platform::parse(&expanded).map_err(|m| {
                            stage_err(
                                file,
                                ins.start_line,
                                m,
                                Some("write --platform=linux/amd64".into()),
                            )
                        })?;
                        if parsed != platform {
                            warnings.push(Warning {
                                file: file.to_string(),
                                line: Some(ins.start_line),
                                message: format!(
                                    "FROM --platform={expanded} does not match the platform being built ({platform}); ferry builds only for the host, so this stage uses {platform}"
                                ),
                            });
                        }
                        Some(expanded)
                    }
                };
                if let Some(name) = &from.name
                    && let Some(other) = stages.iter().find(|s| s.name.as_deref() == Some(name))
                {
                    return Err(stage_err(
                        file,
                        ins.start_line,
                        format!("duplicate stage name {name:?}"),
                        Some(format!(
                            "the name is already used by the stage at line {}",
                            other.line
                        )),
                    ));
                }
                let lower = image.to_ascii_lowercase();
                let base = if let Some(s) = stages
                    .iter()
                    .find(|s| s.name.as_deref() == Some(lower.as_str()))
                {
                    Base::Stage(s.index)
                } else if let Some((line, _)) = later_stage(df, ins.start_line, &lower) {
                    return Err(stage_err(
                        file,
                        ins.start_line,
                        format!("FROM {image} refers to the stage defined later at line {line}"),
                        Some(
                            "a stage can only build on stages above it; move that stage up".into(),
                        ),
                    ));
                } else if lower == "scratch" {
                    Base::Scratch
                } else {
                    Base::Image(image)
                };
                stages.push(Stage {
                    index,
                    name: from.name.clone(),
                    base,
                    platform: stage_platform,
                    line: ins.start_line,
                    instructions: Vec::new(),
                    copy_sources: BTreeMap::new(),
                    dependencies: Vec::new(),
                });
            }
            _ => {
                let Some(stage) = stages.last_mut() else {
                    return Err(stage_err(
                        file,
                        ins.start_line,
                        format!(
                            "{} comes before the first FROM: no build stage in current context",
                            ins.kind.keyword()
                        ),
                        Some("only ARG may come before FROM; add a FROM line above it".into()),
                    ));
                };
                stage.instructions.push(ins.clone());
            }
        }
    }
    if stages.is_empty() {
        return Err(stage_err(
            file,
            df.instructions.last().map_or(1, |i| i.end_line),
            "dockerfile contains no stages to build".into(),
            Some("add a FROM line".into()),
        ));
    }

    // Resolve COPY --from and dependencies.
    for i in 0..stages.len() {
        let mut deps = BTreeSet::new();
        if let Base::Stage(b) = stages[i].base {
            deps.insert(b);
        }
        let mut sources = BTreeMap::new();
        for ins in &stages[i].instructions {
            let from = match &ins.kind {
                InstructionKind::Copy(c) => c.from.as_deref(),
                InstructionKind::Add(_) => None,
                _ => continue,
            };
            let source = match from {
                None => CopySource::Context,
                Some(raw) => {
                    resolve_copy_from(file, &lexer, &global_args, &stages, i, raw, ins.start_line)?
                }
            };
            if let CopySource::Stage(s) = source {
                deps.insert(s);
            }
            sources.insert(ins.start_line, source);
        }
        stages[i].copy_sources = sources;
        stages[i].dependencies = deps.into_iter().collect();
    }

    let target = match &opts.target {
        None => stages.len() - 1,
        Some(t) => {
            let lower = t.to_ascii_lowercase();
            match stages
                .iter()
                .find(|s| s.name.as_deref() == Some(lower.as_str()))
            {
                Some(s) => s.index,
                None => {
                    let names: Vec<&str> =
                        stages.iter().filter_map(|s| s.name.as_deref()).collect();
                    return Err(Error::UnknownTarget {
                        file: file.to_string(),
                        target: t.clone(),
                        stages: if names.is_empty() {
                            "none".into()
                        } else {
                            names.join(", ")
                        },
                    });
                }
            }
        }
    };

    // The stages the target needs, transitively.
    let mut needed = BTreeSet::new();
    let mut todo = vec![target];
    while let Some(s) = todo.pop() {
        if needed.insert(s) {
            todo.extend(stages[s].dependencies.iter().copied());
        }
    }
    let order: Vec<usize> = needed.into_iter().collect();

    // Build arguments nothing declares, as Docker reports them.
    for &s in &order {
        for ins in &stages[s].instructions {
            if let InstructionKind::Arg(decls) = &ins.kind {
                declared.extend(decls.iter().map(|d| d.name.clone()));
            }
        }
    }
    let unused: Vec<&str> = opts
        .build_args
        .keys()
        .map(String::as_str)
        .filter(|k| !declared.contains(*k) && !is_builtin_arg(k))
        .collect();
    if !unused.is_empty() {
        warnings.push(Warning {
            file: file.to_string(),
            line: None,
            message: format!(
                "[Warning] One or more build-args [{}] were not consumed",
                unused.join(" ")
            ),
        });
    }

    Ok(Plan {
        file: file.to_string(),
        escape: df.escape,
        stages,
        order,
        target,
        global_args,
        build_args: opts.build_args.clone(),
        platform,
        warnings,
    })
}

/// Arguments that need no `ARG` line: the proxies, the platform arguments, buildkit's
/// own switches and `SOURCE_DATE_EPOCH`.
pub fn is_builtin_arg(name: &str) -> bool {
    PROXY_ARGS.contains(&name)
        || PLATFORM_ARGS.contains(&name)
        || name.starts_with("BUILDKIT_")
        || name == "SOURCE_DATE_EPOCH"
}

/// A stage named `name` whose FROM is below `line`: (its line, its index).
fn later_stage(df: &Dockerfile, line: usize, name: &str) -> Option<(usize, usize)> {
    df.instructions
        .iter()
        .filter_map(|i| match &i.kind {
            InstructionKind::From(f) => Some((i.start_line, f)),
            _ => None,
        })
        .enumerate()
        .find(|(_, (l, f))| *l > line && f.name.as_deref() == Some(name))
        .map(|(idx, (l, _))| (l, idx))
}

fn resolve_copy_from(
    file: &str,
    lexer: &Lexer,
    global_args: &BTreeMap<String, String>,
    stages: &[Stage],
    current: usize,
    raw: &str,
    line: usize,
) -> Result<CopySource> {
    // buildkit does not expand --from with the stage's variables; the global ARGs are
    // expanded here so that `--from=${BUILDER}` works with a global `ARG BUILDER`.
    let from = if raw.contains('$') {
        lexer
            .process_word(raw, global_args)
            .map_err(|message| Error::Expansion {
                file: file.to_string(),
                line,
                message,
            })?
    } else {
        raw.to_string()
    };
    if let Ok(index) = from.parse::<i64>() {
        if index < 0 || index as usize >= stages.len() {
            return Err(stage_err(
                file,
                line,
                format!("invalid stage index {index}"),
                Some(format!(
                    "stages are numbered from 0 to {}",
                    stages.len() - 1
                )),
            ));
        }
        let index = index as usize;
        if index >= current {
            return Err(stage_err(
                file,
                line,
                format!(
                    "COPY --from={index} refers to {}",
                    if index == current {
                        "the stage it is in"
                    } else {
                        "a stage defined later"
                    }
                ),
                Some("a stage can only copy from stages above it".into()),
            ));
        }
        return Ok(CopySource::Stage(index));
    }
    let lower = from.to_ascii_lowercase();
    if let Some(s) = stages
        .iter()
        .find(|s| s.name.as_deref() == Some(lower.as_str()))
    {
        if s.index >= current {
            return Err(stage_err(
                file,
                line,
                format!(
                    "COPY --from={from} refers to {}",
                    if s.index == current {
                        "the stage it is in".to_string()
                    } else {
                        format!("the stage defined later at line {}", s.line)
                    }
                ),
                Some("a stage can only copy from stages above it; move that stage up".into()),
            ));
        }
        return Ok(CopySource::Stage(s.index));
    }
    if from.is_empty() {
        return Err(stage_err(
            file,
            line,
            format!("COPY --from={raw} expands to nothing"),
            None,
        ));
    }
    Ok(CopySource::Image(from))
}
