//! From a logical line to a typed instruction, following buildkit's line parsers
//! (which split the arguments) and its `instructions` package (which checks them).

use std::time::Duration;

use super::lines::LogicalLine;
use super::words::{self, Json};
use super::{
    ArgDecl, CommandLine, Copy, From, Healthcheck, InlineFile, InstructionKind, KeyValue, Run,
};
use crate::error::{Error, Result, Warning};

pub(crate) struct Ctx<'a> {
    pub file: &'a str,
    pub line: usize,
    pub escape: char,
}

impl Ctx<'_> {
    fn err(&self, message: impl Into<String>) -> Error {
        Error::Syntax {
            file: self.file.to_string(),
            line: self.line,
            message: message.into(),
            hint: None,
        }
    }

    fn err_hint(&self, message: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Syntax {
            file: self.file.to_string(),
            line: self.line,
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    fn unsupported(&self, feature: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Unsupported {
            file: self.file.to_string(),
            line: self.line,
            feature: feature.into(),
            hint: Some(hint.into()),
        }
    }

    fn warn(&self, message: impl Into<String>) -> Warning {
        Warning {
            file: self.file.to_string(),
            line: Some(self.line),
            message: message.into(),
        }
    }
}

/// Every instruction name Docker knows, for "did you mean" hints.
const INSTRUCTIONS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest instruction name, if it is close enough to be a typo (as buildkit's
/// `suggest` package roughly decides: one edit for short words, two from four
/// letters on, a third of the length for long ones).
fn suggest(word: &str) -> Option<&'static str> {
    let upper = word.to_ascii_uppercase();
    let len = upper.chars().count();
    let max = (len / 3).max(if len >= 4 { 2 } else { 1 });
    INSTRUCTIONS
        .iter()
        .map(|name| (levenshtein(&upper, name), *name))
        .filter(|(d, _)| *d <= max)
        .min()
        .map(|(_, n)| n)
}

/// The kinds of value a flag takes.
#[derive(Clone, Copy, PartialEq)]
enum FlagKind {
    Bool,
    String,
}

/// Parsed `--flags` of one instruction.
#[derive(Default)]
struct Flags {
    values: Vec<(String, String)>,
}

impl Flags {
    fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn bool(&self, name: &str) -> bool {
        self.get(name) == Some("true")
    }
}

/// Checks flags as buildkit's `BFlags.Parse` does, with ferry's answer for the flags
/// Docker has but ferry does not build.
fn parse_flags(
    ctx: &Ctx<'_>,
    keyword: &str,
    raw: &[String],
    allowed: &[(&str, FlagKind)],
    unsupported: &[(&str, &str)],
) -> Result<Flags> {
    let mut flags = Flags::default();
    for arg in raw {
        let Some(body) = arg.strip_prefix("--") else {
            return Err(ctx.err(format!("arg should start with -- : {arg}")));
        };
        if body.is_empty() {
            break;
        }
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        if let Some((_, hint)) = unsupported.iter().find(|(n, _)| *n == name) {
            return Err(ctx.unsupported(format!("{keyword} --{name}"), *hint));
        }
        let Some((_, kind)) = allowed.iter().find(|(n, _)| *n == name) else {
            let accepted = if allowed.is_empty() {
                format!("{keyword} takes no flags")
            } else {
                let names: Vec<String> = allowed.iter().map(|(n, _)| format!("--{n}")).collect();
                format!("{keyword} accepts {}", names.join(", "))
            };
            return Err(ctx.err_hint(format!("unknown flag: --{name}"), accepted));
        };
        if flags.get(name).is_some() {
            return Err(ctx.err(format!("duplicate flag specified: --{name}")));
        }
        let v = match kind {
            FlagKind::Bool => match value {
                None => "true".to_string(),
                Some("") => return Err(ctx.err(format!("missing a value on flag: --{name}"))),
                Some(v) if v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false") => {
                    v.to_ascii_lowercase()
                }
                Some(v) => {
                    return Err(ctx.err(format!(
                        "expecting boolean value for flag --{name}, not: {v}"
                    )));
                }
            },
            FlagKind::String => match value {
                None => {
                    return Err(ctx.err_hint(
                        format!("missing a value on flag: --{name}"),
                        format!("write it as --{name}=VALUE"),
                    ));
                }
                Some(v) => v.to_string(),
            },
        };
        flags.values.push((name.to_string(), v));
    }
    Ok(flags)
}

/// `parseNameVal`: `key=value …`, or the legacy `key value` when the first word has
/// no `=`.
fn name_values(
    ctx: &Ctx<'_>,
    keyword: &str,
    rest: &str,
    notes: &mut Vec<Warning>,
) -> Result<Vec<KeyValue>> {
    let words = words::parse_words(rest, ctx.escape);
    if words.is_empty() {
        return Err(ctx.err(format!("{keyword} requires at least one argument")));
    }
    if !words[0].contains('=') {
        let (key, value) = words::split_blanks_2(rest);
        let Some(value) = value else {
            return Err(ctx.err_hint(
                format!("{keyword} must have two arguments"),
                format!("write {keyword} {key}=value"),
            ));
        };
        notes.push(ctx.warn(format!(
            "\"{keyword} key value\" is a legacy format; use \"{keyword} key=value\""
        )));
        return Ok(vec![KeyValue { key, value }]);
    }
    let mut out = Vec::with_capacity(words.len());
    for word in words {
        let Some((key, value)) = word.split_once('=') else {
            return Err(ctx.err(format!(
                "Syntax error - can't find = in {word:?}. Must be of the form: name=value"
            )));
        };
        if key.is_empty() {
            return Err(ctx.err(format!("{keyword} names can not be blank")));
        }
        out.push(KeyValue {
            key: key.to_string(),
            value: value.to_string(),
        });
    }
    Ok(out)
}

/// `parseMaybeJSON`: JSON array, or the whole rest as one shell string.
fn maybe_json(ctx: &Ctx<'_>, rest: &str) -> Result<CommandLine> {
    if rest.is_empty() {
        return Ok(CommandLine::Shell(String::new()));
    }
    match words::parse_json(rest) {
        Json::Strings(v) => Ok(CommandLine::Exec(v)),
        Json::NotStrings => Err(not_strings(ctx)),
        Json::Invalid => Ok(CommandLine::Shell(rest.to_string())),
    }
}

/// `parseMaybeJSONToList`: JSON array, or whitespace-separated words.
fn maybe_json_list(ctx: &Ctx<'_>, rest: &str) -> Result<(Vec<String>, bool)> {
    match words::parse_json(rest) {
        Json::Strings(v) => Ok((v, true)),
        Json::NotStrings => Err(not_strings(ctx)),
        Json::Invalid => Ok((words::split_blanks(rest), false)),
    }
}

fn not_strings(ctx: &Ctx<'_>) -> Error {
    ctx.err("when using JSON array syntax, arrays must be comprised of strings only")
}

/// Go's `time.ParseDuration` (`300ms`, `1m30s`, `1.5h`).
pub(crate) fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.strip_prefix('+').unwrap_or(s);
    if s == "0" {
        return Some(Duration::ZERO);
    }
    if s.is_empty() || s.starts_with('-') {
        return None;
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .count();
        if num_len == 0 {
            return None;
        }
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .chars()
            .take_while(|c| !c.is_ascii_digit() && *c != '.')
            .map(char::len_utf8)
            .sum();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let nanos = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * nanos;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return None;
    }
    Some(Duration::from_nanos(total as u64))
}

fn interval(ctx: &Ctx<'_>, flags: &Flags, name: &str) -> Result<Option<Duration>> {
    let Some(v) = flags.get(name) else {
        return Ok(None);
    };
    if v.is_empty() {
        return Ok(None);
    }
    let Some(d) = parse_go_duration(v) else {
        return Err(ctx.err_hint(
            format!("invalid duration {v:?} for --{name}"),
            "use a duration such as 30s, 1m30s or 500ms",
        ));
    };
    if d.is_zero() {
        return Ok(None);
    }
    if d < Duration::from_millis(1) {
        return Err(ctx.err(format!("Interval {name:?} cannot be less than 1ms")));
    }
    Ok(Some(d))
}

const RUN_UNSUPPORTED: &[(&str, &str)] = &[
    (
        "mount",
        "ferry runs RUN without cache, secret, ssh or bind mounts; copy what the command needs into the stage first",
    ),
    (
        "network",
        "RUN uses the host network in ferry builds; remove the flag",
    ),
    (
        "security",
        "ferry runs RUN without extra privileges; remove the flag",
    ),
    ("device", "ferry runs RUN without devices; remove the flag"),
];

const COPY_UNSUPPORTED: &[(&str, &str)] = &[
    ("parents", "copy each directory with its own COPY line"),
    (
        "exclude",
        "list the sources to copy, or exclude them in .dockerignore",
    ),
];

const ADD_UNSUPPORTED: &[(&str, &str)] = &[
    ("parents", "copy each directory with its own ADD line"),
    (
        "exclude",
        "list the sources to add, or exclude them in .dockerignore",
    ),
    ("keep-git-dir", "clone the repository in a RUN step instead"),
    (
        "unpack",
        "ADD unpacks local archives; use COPY to copy one as it is",
    ),
];

/// Parses one logical line. Returns the instruction and any warnings about it.
pub(crate) fn parse(ctx: &Ctx<'_>, line: &LogicalLine) -> Result<(InstructionKind, Vec<Warning>)> {
    let mut notes = Vec::new();
    let (keyword, rest) = words::split_blanks_2(line.text.trim());
    let rest = rest.unwrap_or_default();
    let (args, raw_flags) = words::extract_builder_flags(&rest);
    let args = args.trim().to_string();
    let upper = keyword.to_ascii_uppercase();
    let no_flags: &[(&str, FlagKind)] = &[];
    let kind = match upper.as_str() {
        "FROM" => {
            let flags = parse_flags(
                ctx,
                "FROM",
                &raw_flags,
                &[("platform", FlagKind::String)],
                &[],
            )?;
            let parts = words::split_blanks(&args);
            let name = match parts.len() {
                1 => None,
                3 if parts[1].eq_ignore_ascii_case("as") => {
                    let name = parts[2].to_ascii_lowercase();
                    if !valid_stage_name(&name) {
                        return Err(ctx.err_hint(
                            format!(
                                "invalid name for build stage: {:?}, name can't start with a number or contain symbols",
                                parts[2]
                            ),
                            "start with a letter; use letters, digits, '-', '_' and '.'",
                        ));
                    }
                    Some(name)
                }
                _ => {
                    return Err(ctx.err_hint(
                        "FROM requires either one or three arguments",
                        "write FROM image or FROM image AS name",
                    ));
                }
            };
            InstructionKind::From(From {
                image: parts[0].clone(),
                name,
                platform: flags.get("platform").map(str::to_string),
            })
        }
        "ARG" => {
            parse_flags(ctx, "ARG", &raw_flags, no_flags, &[])?;
            let ws = words::parse_words(&args, ctx.escape);
            if ws.is_empty() {
                return Err(ctx.err("ARG requires at least one argument"));
            }
            let mut decls = Vec::with_capacity(ws.len());
            for w in ws {
                let decl = match w.split_once('=') {
                    Some((k, v)) => {
                        if k.is_empty() {
                            return Err(ctx.err("ARG names can not be blank"));
                        }
                        ArgDecl {
                            name: k.to_string(),
                            default: Some(v.to_string()),
                        }
                    }
                    None => ArgDecl {
                        name: w,
                        default: None,
                    },
                };
                decls.push(decl);
            }
            InstructionKind::Arg(decls)
        }
        "ENV" => {
            parse_flags(ctx, "ENV", &raw_flags, no_flags, &[])?;
            InstructionKind::Env(name_values(ctx, "ENV", &args, &mut notes)?)
        }
        "LABEL" => {
            parse_flags(ctx, "LABEL", &raw_flags, no_flags, &[])?;
            InstructionKind::Label(name_values(ctx, "LABEL", &args, &mut notes)?)
        }
        "WORKDIR" | "USER" | "STOPSIGNAL" | "MAINTAINER" => {
            parse_flags(ctx, &upper, &raw_flags, no_flags, &[])?;
            if args.is_empty() {
                return Err(ctx.err(format!("{upper} requires exactly one argument")));
            }
            match upper.as_str() {
                "WORKDIR" => InstructionKind::Workdir(args),
                "USER" => InstructionKind::User(args),
                "STOPSIGNAL" => InstructionKind::StopSignal(args),
                _ => {
                    notes.push(ctx.warn(
                        "MAINTAINER instruction is deprecated in favor of using label; ferry sets the image's author from it",
                    ));
                    InstructionKind::Maintainer(args)
                }
            }
        }
        "COPY" | "ADD" => {
            let is_copy = upper == "COPY";
            let flags = if is_copy {
                parse_flags(
                    ctx,
                    "COPY",
                    &raw_flags,
                    &[
                        ("from", FlagKind::String),
                        ("chown", FlagKind::String),
                        ("chmod", FlagKind::String),
                        ("link", FlagKind::Bool),
                    ],
                    COPY_UNSUPPORTED,
                )?
            } else {
                parse_flags(
                    ctx,
                    "ADD",
                    &raw_flags,
                    &[
                        ("chown", FlagKind::String),
                        ("chmod", FlagKind::String),
                        ("link", FlagKind::Bool),
                        ("checksum", FlagKind::String),
                    ],
                    ADD_UNSUPPORTED,
                )?
            };
            let (list, json) = maybe_json_list(ctx, &args)?;
            if list.len() < 2 {
                return Err(ctx.err_hint(
                    format!(
                        "{upper} requires at least two arguments, but only one was provided. Destination could not be determined"
                    ),
                    format!("write {upper} <src>... <dest>"),
                ));
            }
            let mut copy = Copy {
                from: flags.get("from").map(str::to_string),
                chown: flags.get("chown").map(str::to_string),
                chmod: flags.get("chmod").map(str::to_string),
                link: flags.bool("link"),
                checksum: flags.get("checksum").map(str::to_string),
                ..Copy::default()
            };
            if let Some(from) = &copy.from
                && from.is_empty()
            {
                return Err(ctx.err_hint(
                    "--from needs a stage name, stage index or image",
                    "write --from=builder",
                ));
            }
            if let Some(chmod) = &copy.chmod
                && !chmod.contains('$')
                && !valid_octal_mode(chmod)
            {
                return Err(ctx.err_hint(
                    format!("invalid --chmod value {chmod:?}"),
                    "ferry takes octal modes such as 644 or 0755",
                ));
            }
            if copy.link {
                notes.push(ctx.warn(format!(
                    "{upper} --link is accepted; ferry builds the layer the same way without it"
                )));
            }
            let (dest, sources) = list.split_last().unwrap_or((&list[0], &[]));
            if !json && super::lines::parse_heredoc(dest).is_some() {
                return Err(ctx.err(format!("{upper} cannot accept a heredoc as a destination")));
            }
            copy.dest = dest.clone();
            for src in sources {
                let heredoc = if json {
                    None
                } else {
                    super::lines::parse_heredoc(src)
                };
                match heredoc {
                    Some(h) => {
                        let found = line.heredocs.iter().find(|d| d.name == h.name);
                        let (content, expand) = match found {
                            Some(d) => (d.body(), d.expand),
                            None => (String::new(), h.expand),
                        };
                        copy.inline.push(InlineFile {
                            name: h.name,
                            content,
                            expand,
                        });
                    }
                    None => {
                        if !src.contains('$')
                            && let Err(e) = crate::ignore::validate_glob(src)
                        {
                            return Err(ctx.err(format!("invalid source {src:?}: {e}")));
                        }
                        copy.sources.push(src.clone());
                    }
                }
            }
            if is_copy {
                InstructionKind::Copy(copy)
            } else {
                InstructionKind::Add(copy)
            }
        }
        "RUN" => {
            parse_flags(ctx, "RUN", &raw_flags, no_flags, RUN_UNSUPPORTED)?;
            let command = maybe_json(ctx, &args)?;
            InstructionKind::Run(Run {
                command,
                heredocs: line.heredocs.clone(),
            })
        }
        "CMD" => {
            parse_flags(ctx, "CMD", &raw_flags, no_flags, &[])?;
            InstructionKind::Cmd(maybe_json(ctx, &args)?)
        }
        "ENTRYPOINT" => {
            parse_flags(ctx, "ENTRYPOINT", &raw_flags, no_flags, &[])?;
            InstructionKind::Entrypoint(maybe_json(ctx, &args)?)
        }
        "EXPOSE" => {
            parse_flags(ctx, "EXPOSE", &raw_flags, no_flags, &[])?;
            let ports = words::split_blanks(&args);
            if ports.is_empty() {
                return Err(ctx.err_hint(
                    "EXPOSE requires at least one argument",
                    "write EXPOSE 8080 or EXPOSE 53/udp",
                ));
            }
            for p in &ports {
                if !p.contains('$')
                    && let Err(e) = crate::evaluator::parse_port(p)
                {
                    return Err(ctx.err(e));
                }
            }
            InstructionKind::Expose(ports)
        }
        "SHELL" => {
            parse_flags(ctx, "SHELL", &raw_flags, no_flags, &[])?;
            match words::parse_json(&args) {
                Json::Strings(v) if v.is_empty() => {
                    return Err(ctx.err("SHELL requires at least one argument"));
                }
                Json::Strings(v) => InstructionKind::Shell(v),
                Json::NotStrings => return Err(not_strings(ctx)),
                Json::Invalid => {
                    return Err(ctx.err_hint(
                        "SHELL requires the arguments to be in JSON form",
                        "write SHELL [\"/bin/bash\", \"-c\"]",
                    ));
                }
            }
        }
        "VOLUME" => {
            parse_flags(ctx, "VOLUME", &raw_flags, no_flags, &[])?;
            let (list, _) = maybe_json_list(ctx, &args)?;
            if list.is_empty() {
                return Err(ctx.err("VOLUME requires at least one argument"));
            }
            let mut vols = Vec::with_capacity(list.len());
            for v in list {
                let v = v.trim().to_string();
                if v.is_empty() {
                    return Err(ctx.err("VOLUME specified can not be an empty string"));
                }
                vols.push(v);
            }
            InstructionKind::Volume(vols)
        }
        "HEALTHCHECK" => healthcheck(ctx, &raw_flags, &args)?,
        "ONBUILD" => {
            return Err(ctx.unsupported(
                "ONBUILD",
                "ferry builds only the image's own instructions; put the triggered instructions in the Dockerfiles that use this image",
            ));
        }
        _ => {
            return Err(Error::UnknownInstruction {
                file: ctx.file.to_string(),
                line: ctx.line,
                instruction: upper.clone(),
                hint: suggest(&keyword).map(|s| format!("did you mean {s}?")),
            });
        }
    };
    Ok((kind, notes))
}

fn healthcheck(ctx: &Ctx<'_>, raw_flags: &[String], args: &str) -> Result<InstructionKind> {
    // parseHealthConfig: the first word is the type, the rest a maybe-JSON command.
    let (typ, rest) = words::split_blanks_2(args);
    if typ.is_empty() {
        return Err(ctx.err_hint(
            "HEALTHCHECK requires at least one argument",
            "write HEALTHCHECK CMD … or HEALTHCHECK NONE",
        ));
    }
    let typ = typ.to_ascii_uppercase();
    let rest = rest.unwrap_or_default();
    if typ == "NONE" {
        if !rest.trim().is_empty() {
            return Err(ctx.err("HEALTHCHECK NONE takes no arguments"));
        }
        return Ok(InstructionKind::Healthcheck(Healthcheck::None));
    }
    let flags = parse_flags(
        ctx,
        "HEALTHCHECK",
        raw_flags,
        &[
            ("interval", FlagKind::String),
            ("timeout", FlagKind::String),
            ("start-period", FlagKind::String),
            ("start-interval", FlagKind::String),
            ("retries", FlagKind::String),
        ],
        &[],
    )?;
    if typ != "CMD" {
        return Err(ctx.err_hint(format!("Unknown type {typ:?} in HEALTHCHECK"), "try CMD"));
    }
    let test = match maybe_json(ctx, &rest)? {
        CommandLine::Exec(v) if !v.is_empty() => {
            std::iter::once("CMD".to_string()).chain(v).collect()
        }
        CommandLine::Shell(s) if !s.is_empty() => vec!["CMD-SHELL".to_string(), s],
        _ => return Err(ctx.err("Missing command after HEALTHCHECK CMD")),
    };
    let retries = match flags.get("retries") {
        None | Some("") => None,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n < 1 => {
                return Err(ctx.err(format!("--retries must be at least 1 (not {n})")));
            }
            Ok(n) => {
                Some(u32::try_from(n).map_err(|_| ctx.err(format!("--retries {n} is too large")))?)
            }
            Err(_) => {
                return Err(ctx.err(format!("invalid --retries value {v:?}; use a whole number")));
            }
        },
    };
    Ok(InstructionKind::Healthcheck(Healthcheck::Check {
        test,
        interval: interval(ctx, &flags, "interval")?,
        timeout: interval(ctx, &flags, "timeout")?,
        start_period: interval(ctx, &flags, "start-period")?,
        start_interval: interval(ctx, &flags, "start-interval")?,
        retries,
    }))
}

/// buildkit's stage name rule: `^[a-z][a-z0-9-_\.]*$` (after lower-casing).
pub(crate) fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

pub(crate) fn valid_octal_mode(mode: &str) -> bool {
    !mode.is_empty() && mode.len() <= 5 && mode.chars().all(|c| ('0'..='7').contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_go_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration("abc"), None);
        assert_eq!(parse_go_duration(""), None);
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("RUNN"), Some("RUN"));
        assert_eq!(suggest("cpoy"), Some("COPY"));
        assert_eq!(suggest("WORKDRI"), Some("WORKDIR"));
        assert_eq!(suggest("BANANA"), None);
    }
}
