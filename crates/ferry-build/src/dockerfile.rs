//! The Dockerfile parser: text in, typed instructions out, each with its 1-based
//! start and end line. It follows buildkit's parser (directives, comments,
//! continuation lines, heredocs, JSON versus shell form, flags) and does no I/O and
//! no variable expansion: words are kept as written (quotes included where buildkit
//! keeps them) for [`crate::stage`] and [`crate::evaluator`] to expand.

mod instruction;
mod lines;
mod words;

use std::time::Duration;

pub use lines::{Directive, Heredoc};

use crate::error::{Error, Result, Warning};

/// A parsed Dockerfile.
#[derive(Clone, Debug)]
pub struct Dockerfile {
    /// The name to put in messages, e.g. `Dockerfile` or `docker/app.Dockerfile`.
    pub file: String,
    /// The escape token: `\` unless `# escape=`` ` `` says otherwise.
    pub escape: char,
    /// Parser directives from the top of the file.
    pub directives: Vec<Directive>,
    /// The instructions in file order.
    pub instructions: Vec<Instruction>,
    /// Things worth telling the user that do not stop the build.
    pub warnings: Vec<Warning>,
}

impl Dockerfile {
    /// The `# syntax=` directive's value, if any. ferry has one frontend, so it is
    /// recorded and otherwise ignored (a warning says so).
    pub fn syntax(&self) -> Option<&str> {
        self.directives
            .iter()
            .find(|d| d.name == "syntax")
            .map(|d| d.value.as_str())
    }
}

/// One instruction.
#[derive(Clone, Debug, PartialEq)]
pub struct Instruction {
    /// 1-based line where it starts.
    pub start_line: usize,
    /// 1-based line where it ends (continuation lines and heredoc bodies included).
    pub end_line: usize,
    /// The logical line as written (continuations joined), for messages and history.
    pub original: String,
    /// What it says.
    pub kind: InstructionKind,
}

/// The instructions ferry builds. Words are as written, before variable expansion.
#[derive(Clone, Debug, PartialEq)]
pub enum InstructionKind {
    /// `FROM [--platform=…] image [AS name]`
    From(From),
    /// `ARG name[=default] …`
    Arg(Vec<ArgDecl>),
    /// `ENV key=value …` or the legacy `ENV key value`
    Env(Vec<KeyValue>),
    /// `LABEL key=value …`
    Label(Vec<KeyValue>),
    /// `WORKDIR path`
    Workdir(String),
    /// `USER user[:group]`
    User(String),
    /// `STOPSIGNAL signal`
    StopSignal(String),
    /// `MAINTAINER name` (deprecated; sets the image's author)
    Maintainer(String),
    /// `COPY [flags] src… dest`
    Copy(Copy),
    /// `ADD [flags] src… dest`
    Add(Copy),
    /// `RUN command`
    Run(Run),
    /// `CMD command`
    Cmd(CommandLine),
    /// `ENTRYPOINT command`
    Entrypoint(CommandLine),
    /// `EXPOSE port[/proto] …` (validated after expansion)
    Expose(Vec<String>),
    /// `SHELL ["executable", "parameters"]`
    Shell(Vec<String>),
    /// `VOLUME ["/path"]` or `VOLUME /path …`
    Volume(Vec<String>),
    /// `HEALTHCHECK NONE` or `HEALTHCHECK [options] CMD command`
    Healthcheck(Healthcheck),
}

impl InstructionKind {
    /// The instruction's keyword in upper case.
    pub fn keyword(&self) -> &'static str {
        match self {
            InstructionKind::From(_) => "FROM",
            InstructionKind::Arg(_) => "ARG",
            InstructionKind::Env(_) => "ENV",
            InstructionKind::Label(_) => "LABEL",
            InstructionKind::Workdir(_) => "WORKDIR",
            InstructionKind::User(_) => "USER",
            InstructionKind::StopSignal(_) => "STOPSIGNAL",
            InstructionKind::Maintainer(_) => "MAINTAINER",
            InstructionKind::Copy(_) => "COPY",
            InstructionKind::Add(_) => "ADD",
            InstructionKind::Run(_) => "RUN",
            InstructionKind::Cmd(_) => "CMD",
            InstructionKind::Entrypoint(_) => "ENTRYPOINT",
            InstructionKind::Expose(_) => "EXPOSE",
            InstructionKind::Shell(_) => "SHELL",
            InstructionKind::Volume(_) => "VOLUME",
            InstructionKind::Healthcheck(_) => "HEALTHCHECK",
        }
    }
}

/// `FROM`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct From {
    /// The image or stage name as written (may hold `$VAR`s of the global ARGs).
    pub image: String,
    /// `AS name`, lower-cased (stage names are case-insensitive).
    pub name: Option<String>,
    /// `--platform=…` as written.
    pub platform: Option<String>,
}

/// One name of an `ARG` instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgDecl {
    /// The name.
    pub name: String,
    /// The default as written (quotes not yet removed), if one is given.
    pub default: Option<String>,
}

/// A key and value of `ENV` or `LABEL`, as written (the lexer removes quotes and
/// expands variables later).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

/// `COPY` and `ADD`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Copy {
    /// Source paths, globs or (ADD) URLs, as written.
    pub sources: Vec<String>,
    /// Sources given inline as heredocs (`COPY <<EOF /dest`).
    pub inline: Vec<InlineFile>,
    /// The destination as written.
    pub dest: String,
    /// `--from=stage|index|image` (COPY only).
    pub from: Option<String>,
    /// `--chown=user[:group]`.
    pub chown: Option<String>,
    /// `--chmod=mode` (octal).
    pub chmod: Option<String>,
    /// `--link` (accepted; ferry copies the same way without it).
    pub link: bool,
    /// `--checksum=sha256:…` (ADD only).
    pub checksum: Option<String>,
}

/// A file whose content is given in the Dockerfile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InlineFile {
    /// The heredoc delimiter, used as the file name.
    pub name: String,
    /// The content (with `<<-`, leading tabs already removed).
    pub content: String,
    /// Whether variables in the content are expanded (unquoted delimiter).
    pub expand: bool,
}

/// A command in shell form (run by the stage's `SHELL`, `/bin/sh -c` by default) or
/// exec form (a JSON array, run as is).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandLine {
    /// `RUN echo hi` — one string for the shell.
    Shell(String),
    /// `RUN ["echo", "hi"]`
    Exec(Vec<String>),
}

/// `RUN`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// The command line.
    pub command: CommandLine,
    /// Heredocs that follow the line, in order.
    pub heredocs: Vec<Heredoc>,
}

/// What a `RUN` executes once heredocs are taken into account, as buildkit decides it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunScript {
    /// Give this string to the stage's shell (`SHELL` + `[string]`).
    Shell(String),
    /// Run these arguments as they are.
    Exec(Vec<String>),
    /// A heredoc that starts with `#!`: write `content` to a file named `name` with
    /// mode 0755 outside the root filesystem's layer and execute it.
    File {
        /// File name (the heredoc delimiter).
        name: String,
        /// The script.
        content: String,
    },
}

impl Run {
    /// What to execute: the command line, or for heredocs what buildkit runs — a lone
    /// `<<EOF` runs its body as the shell script (or as a file when it has a
    /// shebang); anything else passes the line and bodies to the shell, which reads
    /// them as heredocs.
    pub fn script(&self) -> RunScript {
        match &self.command {
            CommandLine::Exec(args) => RunScript::Exec(args.clone()),
            CommandLine::Shell(line) if self.heredocs.is_empty() => RunScript::Shell(line.clone()),
            CommandLine::Shell(line) => {
                let first = &self.heredocs[0];
                if lines::parse_heredoc(line.trim()).is_some() {
                    let body = first.body();
                    if body.starts_with("#!") {
                        return RunScript::File {
                            name: first.name.clone(),
                            content: body,
                        };
                    }
                    return RunScript::Shell(body);
                }
                let mut full = line.clone();
                for h in &self.heredocs {
                    full.push('\n');
                    full.push_str(&h.content);
                    full.push_str(&h.name);
                }
                RunScript::Shell(full)
            }
        }
    }
}

/// `HEALTHCHECK`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable any check inherited from the base image.
    None,
    /// `HEALTHCHECK [options] CMD …`
    Check {
        /// As in the image config: `["CMD", args…]` or `["CMD-SHELL", command]`.
        test: Vec<String>,
        /// `--interval`
        interval: Option<Duration>,
        /// `--timeout`
        timeout: Option<Duration>,
        /// `--start-period`
        start_period: Option<Duration>,
        /// `--start-interval`
        start_interval: Option<Duration>,
        /// `--retries`
        retries: Option<u32>,
    },
}

/// Parses Dockerfile `text`; `file` is the name used in messages.
///
/// ```
/// let df = ferry_build::dockerfile::parse("Dockerfile", "FROM alpine\nRUN echo hi\n").unwrap();
/// assert_eq!(df.instructions.len(), 2);
/// assert_eq!(df.instructions[1].start_line, 2);
/// ```
pub fn parse(file: &str, text: &str) -> Result<Dockerfile> {
    let split = lines::split(text).map_err(|e| Error::Syntax {
        file: file.to_string(),
        line: e.line,
        message: e.message,
        hint: e.hint,
    })?;
    let mut warnings: Vec<Warning> = split
        .warnings
        .iter()
        .map(|(line, message)| Warning {
            file: file.to_string(),
            line: Some(*line),
            message: message.clone(),
        })
        .collect();
    for d in &split.directives {
        if d.name == "syntax" {
            warnings.push(Warning {
                file: file.to_string(),
                line: Some(d.line),
                message: format!(
                    "the syntax directive ({}) is ignored; ferry builds with its own Dockerfile frontend",
                    d.value
                ),
            });
        }
    }
    if split.lines.is_empty() {
        return Err(Error::Syntax {
            file: file.to_string(),
            line: text.lines().count().max(1),
            message: "file with no instructions".into(),
            hint: Some("a Dockerfile needs at least a FROM line".into()),
        });
    }
    let mut instructions = Vec::with_capacity(split.lines.len());
    for line in &split.lines {
        let ctx = instruction::Ctx {
            file,
            line: line.start,
            escape: split.escape,
        };
        let (kind, mut notes) = instruction::parse(&ctx, line)?;
        warnings.append(&mut notes);
        instructions.push(Instruction {
            start_line: line.start,
            end_line: line.end,
            original: line.text.trim().to_string(),
            kind,
        });
    }
    Ok(Dockerfile {
        file: file.to_string(),
        escape: split.escape,
        directives: split.directives,
        instructions,
        warnings,
    })
}
