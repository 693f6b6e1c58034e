//! Expanding a stage's instructions into steps for the executor, as buildkit's
//! dispatcher does before it runs each one: `ADD COPY ENV EXPOSE LABEL STOPSIGNAL
//! USER VOLUME WORKDIR` (and `ARG` defaults) expand variables; `RUN`, `CMD`,
//! `ENTRYPOINT`, `SHELL` and `HEALTHCHECK` leave that to the shell.
//!
//! Variables come from the base image's environment, the stage's `ENV` lines and its
//! `ARG`s (a global `ARG` only after a bare `ARG NAME` redeclares it in the stage);
//! a later definition of a name wins over an earlier one.

use crate::dockerfile::{
    CommandLine, Healthcheck, InlineFile, Instruction, InstructionKind, RunScript,
};
use crate::error::{Error, Result};
use crate::expansion::{Lexer, Variables};
use crate::stage::{CopySource, DEFAULT_PATH, PROXY_ARGS, Plan};

/// An environment: `(name, value)` pairs in the order they were first set.
pub type Env = Vec<(String, String)>;

/// An instruction with its variables expanded, ready to execute.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// 1-based line where the instruction starts.
    pub start_line: usize,
    /// 1-based line where it ends.
    pub end_line: usize,
    /// The instruction as written, for history and messages.
    pub original: String,
    /// What to do.
    pub kind: StepKind,
}

/// What a step does.
#[derive(Clone, Debug, PartialEq)]
pub enum StepKind {
    /// Build arguments declared, with their values (`None`: declared, no value). They
    /// are in the `RUN` environment of later steps but not in the image.
    Arg(Vec<(String, Option<String>)>),
    /// Set these environment variables in the image, in order.
    Env(Vec<(String, String)>),
    /// Set these labels.
    Label(Vec<(String, String)>),
    /// Set the working directory (relative paths are relative to the current one;
    /// create it if missing).
    Workdir(String),
    /// Set the user.
    User(String),
    /// Set the stop signal.
    StopSignal(String),
    /// Set the image's author (deprecated `MAINTAINER`).
    Maintainer(String),
    /// Copy files.
    Copy(CopyStep),
    /// Add files (local archives unpacked, URLs fetched).
    Add(CopyStep),
    /// Run a command in the stage's root file system.
    Run(RunStep),
    /// Set the default command.
    Cmd(CommandLine),
    /// Set the entrypoint.
    Entrypoint(CommandLine),
    /// Set the shell for later shell-form commands.
    Shell(Vec<String>),
    /// Declare volumes.
    Volume(Vec<String>),
    /// Expose ports.
    Expose(Vec<Port>),
    /// Set or disable the health check.
    Healthcheck(Healthcheck),
}

/// `COPY`/`ADD` after expansion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyStep {
    /// Where the sources come from.
    pub from: CopySource,
    /// Source paths or globs (validated), relative to the source.
    pub sources: Vec<String>,
    /// Inline files (heredocs), content expanded where the delimiter was unquoted.
    pub inline: Vec<InlineFile>,
    /// The destination; a trailing `/` means a directory.
    pub dest: String,
    /// `--chown`, expanded.
    pub chown: Option<String>,
    /// `--chmod`, as a mode.
    pub chmod: Option<u32>,
    /// `--link` was given (no effect in ferry).
    pub link: bool,
    /// `--checksum` (ADD).
    pub checksum: Option<String>,
}

/// `RUN` after expansion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunStep {
    /// What to execute.
    pub script: RunScript,
    /// The whole environment of the process: the image's, the stage's `ARG`s, proxy
    /// build arguments, and a default `PATH` when there is none.
    pub env: Vec<(String, String)>,
}

/// An exposed port or range of ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    /// First port.
    pub start: u16,
    /// Last port (the same as `start` for one port).
    pub end: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
}

impl Port {
    /// The keys for the image config's `ExposedPorts`: `80/tcp`, one per port.
    pub fn keys(&self) -> Vec<String> {
        (self.start..=self.end)
            .map(|p| format!("{p}/{}", self.protocol))
            .collect()
    }
}

/// Parses `80`, `80/tcp`, `53/udp`, `8000-8010/tcp` as Docker's `nat.ParsePortSpec`
/// does for `EXPOSE`.
pub fn parse_port(spec: &str) -> Result<Port, String> {
    let (port, proto) = match spec.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!(
            "invalid proto: {proto} (in EXPOSE {spec}); use tcp, udp or sctp"
        ));
    }
    if port.contains(':') {
        return Err(format!("EXPOSE takes ports, not addresses: {spec}"));
    }
    let num = |s: &str| -> Result<u16, String> {
        s.parse::<u16>()
            .map_err(|_| format!("invalid containerPort: {s} (in EXPOSE {spec})"))
    };
    let (start, end) = match port.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (num(a)?, num(b)?);
            if b < a {
                return Err(format!("invalid range specified for the port: {port}"));
            }
            (a, b)
        }
        None => {
            let p = num(port)?;
            (p, p)
        }
    };
    Ok(Port {
        start,
        end,
        protocol: proto,
    })
}

const SIGNALS: &[&str] = &[
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
    "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
    "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
];

/// Whether `sig` is a signal Docker accepts for `STOPSIGNAL` (a number, a name with
/// or without `SIG`, `RTMIN+n`).
pub fn valid_signal(sig: &str) -> bool {
    if let Ok(n) = sig.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let upper = sig.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if SIGNALS.contains(&name) || name == "RTMIN" || name == "RTMAX" {
        return true;
    }
    let rt = |prefix: &str| {
        name.strip_prefix(prefix)
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| (1..=15).contains(&n))
    };
    rt("RTMIN+") || rt("RTMAX-")
}

/// Expands one stage's instructions in order, keeping its variables.
pub struct Evaluator<'p> {
    plan: &'p Plan,
    stage: usize,
    lexer: Lexer,
    /// Every variable of the stage (image env, ENV, ARG), later definitions replacing
    /// earlier ones in place.
    vars: Vec<(String, String)>,
    /// The image's environment (base image env and ENV lines).
    image_env: Vec<(String, String)>,
}

fn set(list: &mut Vec<(String, String)>, key: &str, value: &str) {
    match list.iter_mut().find(|(k, _)| k == key) {
        Some(kv) => kv.1 = value.to_string(),
        None => list.push((key.to_string(), value.to_string())),
    }
}

impl<'p> Evaluator<'p> {
    /// Starts stage `stage` of `plan` on a base whose image environment is
    /// `base_env` (for `FROM scratch`, buildkit's empty image has `PATH` =
    /// [`DEFAULT_PATH`]; for `FROM <stage>`, pass that stage's final image env).
    pub fn new(plan: &'p Plan, stage: usize, base_env: &[(String, String)]) -> Self {
        let mut vars = Vec::new();
        for (k, v) in base_env {
            set(&mut vars, k, v);
        }
        Evaluator {
            plan,
            stage,
            lexer: Lexer::new(plan.escape),
            vars: vars.clone(),
            image_env: vars,
        }
    }

    /// The image environment so far.
    pub fn image_env(&self) -> &[(String, String)] {
        &self.image_env
    }

    /// The environment a `RUN` at this point gets.
    pub fn run_env(&self) -> Vec<(String, String)> {
        let mut env = self.vars.clone();
        for name in PROXY_ARGS {
            if let Some(v) = self.plan.build_args.get(*name)
                && env.get_var(name).is_none()
            {
                env.push((name.to_string(), v.clone()));
            }
        }
        if env.get_var("PATH").is_none() {
            env.push(("PATH".to_string(), DEFAULT_PATH.to_string()));
        }
        env
    }

    fn expand(&self, ins: &Instruction, word: &str) -> Result<String> {
        self.lexer
            .process_word(word, &self.vars)
            .map_err(|message| self.err(ins, message))
    }

    fn err(&self, ins: &Instruction, message: String) -> Error {
        Error::Expansion {
            file: self.plan.file.clone(),
            line: ins.start_line,
            message,
        }
    }

    fn syntax(&self, ins: &Instruction, message: String, hint: Option<&str>) -> Error {
        Error::Syntax {
            file: self.plan.file.clone(),
            line: ins.start_line,
            message,
            hint: hint.map(str::to_string),
        }
    }

    /// Expands one instruction of the stage and applies its effect on the variables.
    pub fn step(&mut self, ins: &Instruction) -> Result<Step> {
        let kind = match &ins.kind {
            InstructionKind::From(_) => {
                return Err(self.syntax(
                    ins,
                    "FROM is not an instruction of a stage's body".into(),
                    None,
                ));
            }
            InstructionKind::Arg(decls) => {
                let mut out = Vec::with_capacity(decls.len());
                for d in decls {
                    let value = if let Some(v) = self.plan.build_args.get(&d.name) {
                        Some(v.clone())
                    } else if let Some(default) = &d.default {
                        Some(self.expand(ins, default)?)
                    } else {
                        self.plan.global_args.get(&d.name).cloned()
                    };
                    if let Some(v) = &value {
                        set(&mut self.vars, &d.name, v);
                    }
                    out.push((d.name.clone(), value));
                }
                StepKind::Arg(out)
            }
            InstructionKind::Env(kvs) => {
                // All pairs see the variables as they were before the instruction.
                let mut out = Vec::with_capacity(kvs.len());
                for kv in kvs {
                    out.push((self.expand(ins, &kv.key)?, self.expand(ins, &kv.value)?));
                }
                for (k, v) in &out {
                    set(&mut self.vars, k, v);
                    set(&mut self.image_env, k, v);
                }
                StepKind::Env(out)
            }
            InstructionKind::Label(kvs) => {
                let mut out = Vec::with_capacity(kvs.len());
                for kv in kvs {
                    out.push((self.expand(ins, &kv.key)?, self.expand(ins, &kv.value)?));
                }
                StepKind::Label(out)
            }
            InstructionKind::Workdir(p) => StepKind::Workdir(self.expand(ins, p)?),
            InstructionKind::User(u) => StepKind::User(self.expand(ins, u)?),
            InstructionKind::StopSignal(s) => {
                let s = self.expand(ins, s)?;
                if !valid_signal(&s) {
                    return Err(self.syntax(
                        ins,
                        format!("Invalid signal: {s}"),
                        Some("use a name such as SIGTERM or a number"),
                    ));
                }
                StepKind::StopSignal(s)
            }
            InstructionKind::Maintainer(m) => StepKind::Maintainer(m.clone()),
            InstructionKind::Copy(c) | InstructionKind::Add(c) => {
                let from = self.plan.stages[self.stage]
                    .copy_sources
                    .get(&ins.start_line)
                    .cloned()
                    .unwrap_or(CopySource::Context);
                let mut sources = Vec::with_capacity(c.sources.len());
                for s in &c.sources {
                    let s = self.expand(ins, s)?;
                    if let Err(e) = crate::ignore::validate_glob(&s) {
                        return Err(self.syntax(ins, format!("invalid source {s:?}: {e}"), None));
                    }
                    sources.push(s);
                }
                let mut raw = Lexer::new('\\');
                raw.skip_process_quotes = true;
                let mut inline = Vec::with_capacity(c.inline.len());
                for f in &c.inline {
                    let content = if f.expand {
                        raw.process_word(&f.content, &self.vars)
                            .map_err(|m| self.err(ins, m))?
                    } else {
                        f.content.clone()
                    };
                    inline.push(InlineFile {
                        name: f.name.clone(),
                        content,
                        expand: f.expand,
                    });
                }
                let chown = match &c.chown {
                    Some(v) => Some(self.expand(ins, v)?),
                    None => None,
                };
                let chmod = match &c.chmod {
                    Some(v) => {
                        let v = self.expand(ins, v)?;
                        match u32::from_str_radix(&v, 8) {
                            Ok(m) if m <= 0o7777 => Some(m),
                            _ => {
                                return Err(self.syntax(
                                    ins,
                                    format!("invalid --chmod value {v:?}"),
                                    Some("ferry takes octal modes such as 644 or 0755"),
                                ));
                            }
                        }
                    }
                    None => None,
                };
                let step = CopyStep {
                    from,
                    sources,
                    inline,
                    dest: self.expand(ins, &c.dest)?,
                    chown,
                    chmod,
                    link: c.link,
                    checksum: c.checksum.clone(),
                };
                if matches!(ins.kind, InstructionKind::Copy(_)) {
                    StepKind::Copy(step)
                } else {
                    StepKind::Add(step)
                }
            }
            InstructionKind::Run(r) => StepKind::Run(RunStep {
                script: r.script(),
                env: self.run_env(),
            }),
            InstructionKind::Cmd(c) => StepKind::Cmd(c.clone()),
            InstructionKind::Entrypoint(c) => StepKind::Entrypoint(c.clone()),
            InstructionKind::Shell(s) => StepKind::Shell(s.clone()),
            InstructionKind::Volume(vs) => {
                let mut out = Vec::with_capacity(vs.len());
                for v in vs {
                    let v = self.expand(ins, v)?;
                    if v.trim().is_empty() {
                        return Err(self.syntax(
                            ins,
                            "VOLUME specified can not be an empty string".into(),
                            None,
                        ));
                    }
                    out.push(v);
                }
                StepKind::Volume(out)
            }
            InstructionKind::Expose(ps) => {
                let mut out = Vec::new();
                for p in ps {
                    let words = self
                        .lexer
                        .process_words(p, &self.vars)
                        .map_err(|m| self.err(ins, m))?;
                    for w in words {
                        out.push(parse_port(&w).map_err(|m| self.syntax(ins, m, None))?);
                    }
                }
                StepKind::Expose(out)
            }
            InstructionKind::Healthcheck(h) => StepKind::Healthcheck(h.clone()),
        };
        Ok(Step {
            start_line: ins.start_line,
            end_line: ins.end_line,
            original: ins.original.clone(),
            kind,
        })
    }
}

impl Plan {
    /// Expands every instruction of stage `stage` on a base with image environment
    /// `base_env` (see [`Evaluator::new`]). Returns the steps and the stage's final
    /// image environment.
    pub fn steps(&self, stage: usize, base_env: &[(String, String)]) -> Result<(Vec<Step>, Env)> {
        let mut ev = Evaluator::new(self, stage, base_env);
        let mut out = Vec::with_capacity(self.stages[stage].instructions.len());
        for ins in &self.stages[stage].instructions {
            out.push(ev.step(ins)?);
        }
        Ok((out, ev.image_env().to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(parse_port("80").unwrap().keys(), ["80/tcp"]);
        assert_eq!(parse_port("53/udp").unwrap().keys(), ["53/udp"]);
        assert_eq!(
            parse_port("8000-8002/TCP").unwrap().keys(),
            ["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert!(parse_port("abc").is_err());
        assert!(parse_port("80/xyz").is_err());
        assert!(parse_port("90-80").is_err());
        assert!(parse_port("70000").is_err());
        assert!(parse_port("127.0.0.1:80").is_err());
    }

    #[test]
    fn signals() {
        for ok in ["SIGTERM", "TERM", "sigkill", "9", "SIGRTMIN+3", "RTMAX-1"] {
            assert!(valid_signal(ok), "{ok}");
        }
        for bad in ["SIGFOO", "0", "65", "RTMIN+99", ""] {
            assert!(!valid_signal(bad), "{bad}");
        }
    }
}
