//! From text to logical lines, as buildkit's parser reads a Dockerfile: parser
//! directives at the top, comments, blank lines, continuation lines (the escape token
//! at the end of a line), and heredoc bodies after the line that opens them.

use crate::expansion::Lexer;

/// A parser directive (`# escape=`, `# syntax=`, `# check=`) at the top of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directive {
    /// Lower-case name.
    pub name: String,
    /// The value as written (trimmed).
    pub value: String,
    /// 1-based line.
    pub line: usize,
}

/// A heredoc (`<<EOF` … `EOF`) attached to a `RUN`, `COPY` or `ADD` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word (quotes removed), also the file name for `COPY`.
    pub name: String,
    /// The file descriptor before `<<` (`3<<EOF`), 0 when absent.
    pub fd: u32,
    /// Whether variables in the body are expanded (the delimiter was not quoted).
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from the body and the terminator.
    pub chomp: bool,
    /// The body, every line with its line ending, without the terminator line.
    pub content: String,
}

impl Heredoc {
    /// The body as the command or file sees it: with `<<-`, leading tabs removed from
    /// every line.
    pub fn body(&self) -> String {
        if !self.chomp {
            return self.content.clone();
        }
        let mut out = String::with_capacity(self.content.len());
        for line in self.content.split_inclusive('\n') {
            out.push_str(line.trim_start_matches('\t'));
        }
        out
    }
}

/// One logical line: an instruction with its continuation lines joined.
#[derive(Clone, Debug)]
pub(crate) struct LogicalLine {
    pub text: String,
    pub start: usize,
    pub end: usize,
    pub heredocs: Vec<Heredoc>,
}

pub(crate) struct Lines {
    pub escape: char,
    pub directives: Vec<Directive>,
    pub lines: Vec<LogicalLine>,
    /// (line, message)
    pub warnings: Vec<(usize, String)>,
}

/// A failure with the line it happened on and an optional hint.
pub(crate) struct LineError {
    pub line: usize,
    pub message: String,
    pub hint: Option<String>,
}

struct DirectiveState {
    done: bool,
    seen: Vec<String>,
}

/// Directives look like `# name=value`; only known names count, and the first line
/// that is not one ends the directive section.
fn directive(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix('#')?;
    let rest = rest.trim_start_matches(go_space);
    let name_len = rest
        .char_indices()
        .take_while(|(i, c)| {
            if *i == 0 {
                c.is_ascii_alphabetic()
            } else {
                c.is_ascii_alphanumeric()
            }
        })
        .count();
    if name_len == 0 {
        return None;
    }
    let (name, rest) = rest.split_at(name_len);
    let rest = rest.trim_start_matches(go_space).strip_prefix('=')?;
    let value = rest.trim_matches(go_space);
    if value.is_empty() {
        return None;
    }
    Some((name.to_ascii_lowercase(), value.to_string()))
}

/// `\s` of Go's regexp: ASCII space, tab, newline, form feed, carriage return.
fn go_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0c' | '\r')
}

impl DirectiveState {
    fn check(
        &mut self,
        line: &str,
        escape: &mut char,
        directives: &mut Vec<Directive>,
        lineno: usize,
    ) -> Result<(), LineError> {
        if self.done {
            return Ok(());
        }
        let Some((name, value)) = directive(line) else {
            self.done = true;
            return Ok(());
        };
        if !matches!(name.as_str(), "escape" | "syntax" | "check") {
            self.done = true;
            return Ok(());
        }
        if self.seen.contains(&name) {
            return Err(LineError {
                line: lineno,
                message: format!("only one {name} parser directive can be used"),
                hint: None,
            });
        }
        self.seen.push(name.clone());
        if name == "escape" {
            match value.as_str() {
                "\\" => *escape = '\\',
                "`" => *escape = '`',
                _ => {
                    return Err(LineError {
                        line: lineno,
                        message: format!("invalid escape token '{value}' does not match ` or \\"),
                        hint: None,
                    });
                }
            }
        }
        directives.push(Directive {
            name,
            value,
            line: lineno,
        });
        Ok(())
    }
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(raw: &str) -> bool {
    trim_newline(raw).trim_start().starts_with('#')
}

fn is_empty_continuation(s: &str) -> bool {
    trim_newline(s).trim_start().is_empty()
}

/// buildkit's continuation regex: the escape token at the end of the line (trailing
/// blanks allowed), not preceded by another escape token, or alone on its line.
/// Returns the line without it, and whether the logical line ends here.
fn trim_continuation(line: &str, escape: char) -> (String, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    let Some(before) = trimmed.strip_suffix(escape) else {
        return (line.to_string(), true);
    };
    match before.chars().last() {
        None => (String::new(), false),
        Some(c) if c == escape => (line.to_string(), true),
        Some(_) => (before.to_string(), false),
    }
}

/// Lines of `text` with their endings kept.
fn raw_lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

pub(crate) fn split(text: &str) -> Result<Lines, LineError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let raw = raw_lines(text);
    let mut escape = '\\';
    let mut directives = Vec::new();
    let mut state = DirectiveState {
        done: false,
        seen: Vec::new(),
    };
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    let mut i = 0; // index of the next raw line; its number is i + 1

    while i < raw.len() {
        let lineno = i + 1;
        let token = trim_newline(raw[i]).trim_start();
        state.check(token, &mut escape, &mut directives, lineno)?;
        i += 1;
        let stripped = if token.starts_with('#') { "" } else { token };
        let start = lineno;
        let (mut line, mut end_of_line) = trim_continuation(stripped, escape);
        if end_of_line && line.is_empty() {
            continue;
        }
        let mut empty_continuation = false;
        while !end_of_line && i < raw.len() {
            let original = raw[i];
            let token = trim_newline(original);
            state.check(token, &mut escape, &mut directives, i + 1)?;
            i += 1;
            if is_comment(original) {
                continue;
            }
            if is_empty_continuation(token) {
                empty_continuation = true;
                continue;
            }
            let (cont, eol) = trim_continuation(token, escape);
            line.push_str(&cont);
            end_of_line = eol;
        }
        if empty_continuation {
            warnings.push((
                start,
                "empty continuation line found; empty continuation lines will become errors in a future release"
                    .to_string(),
            ));
        }
        let end = i;
        if line.trim().is_empty() {
            continue;
        }
        let mut logical = LogicalLine {
            text: line,
            start,
            end,
            heredocs: Vec::new(),
        };
        if can_contain_heredoc(&logical.text) {
            for mut heredoc in heredocs_in(&logical.text) {
                let mut terminated = false;
                while i < raw.len() {
                    let body_line = raw[i];
                    i += 1;
                    let mut candidate = trim_newline(body_line);
                    if heredoc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == heredoc.name {
                        terminated = true;
                        break;
                    }
                    heredoc.content.push_str(body_line);
                }
                if !terminated {
                    return Err(LineError {
                        line: start,
                        message: "unterminated heredoc".into(),
                        hint: Some(format!(
                            "end the document with a line holding only {}",
                            heredoc.name
                        )),
                    });
                }
                logical.heredocs.push(heredoc);
            }
            logical.end = i;
        }
        out.push(logical);
    }
    Ok(Lines {
        escape,
        directives,
        lines: out,
        warnings,
    })
}

/// Heredocs belong to `RUN`, `COPY` and `ADD` in shell form only.
fn can_contain_heredoc(line: &str) -> bool {
    let trimmed = line.trim();
    let mut parts = trimmed.splitn(2, [' ', '\t', '\x0b', '\x0c', '\r']);
    let cmd = parts.next().unwrap_or("").to_ascii_lowercase();
    if !matches!(cmd.as_str(), "run" | "copy" | "add") {
        return false;
    }
    let rest = parts.next().unwrap_or("");
    let (args, _) = super::words::extract_builder_flags(rest);
    // A JSON array (exec form) has no heredocs.
    let args = args.trim_start();
    if args.starts_with('[') && serde_json::from_str::<Vec<serde_json::Value>>(args).is_ok() {
        return false;
    }
    true
}

/// Finds heredoc openers (`<<EOF`, `<<-EOF`, `3<<"EOF"`) among the words of a line,
/// as buildkit's `heredocsFromLine`.
fn heredocs_in(line: &str) -> Vec<Heredoc> {
    let mut lex = Lexer::new('\\');
    lex.raw_quotes = true;
    lex.raw_escapes = true;
    lex.skip_unset_env = true;
    let empty: Vec<(String, String)> = Vec::new();
    let Ok(words) = lex.process_words(line, &empty) else {
        return Vec::new();
    };
    words.iter().filter_map(|w| parse_heredoc(w)).collect()
}

/// Parses one word as a heredoc opener: `^(\d*)<<(-?)([^<]*)$` with a non-empty name.
pub(crate) fn parse_heredoc(word: &str) -> Option<Heredoc> {
    let digits = word.chars().take_while(char::is_ascii_digit).count();
    let (fd, rest) = word.split_at(digits);
    let rest = rest.strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let fd = if fd.is_empty() { 0 } else { fd.parse().ok()? };
    let mut lex = Lexer::new('\\');
    lex.skip_unset_env = true;
    let empty: Vec<(String, String)> = Vec::new();
    let words = lex.process_words(rest, &empty).ok()?;
    if words.len() != 1 {
        return None;
    }
    lex.raw_quotes = true;
    let raw = lex.process_words(rest, &empty).ok()?;
    if raw.len() != 1 {
        return None;
    }
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    // Any quoting of the delimiter turns expansion of the body off, as in sh.
    let expand = quotes(&words[0]) == quotes(&raw[0]);
    Some(Heredoc {
        name: words[0].clone(),
        fd,
        expand,
        chomp,
        content: String::new(),
    })
}
