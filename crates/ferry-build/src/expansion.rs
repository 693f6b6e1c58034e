//! Variable expansion and word splitting as buildkit's shell lexer does it: `$VAR`,
//! `${VAR}`, `${VAR:-word}`, `${VAR-word}`, `${VAR:+word}`, `${VAR+word}`,
//! `${VAR:?msg}`, `${VAR?msg}`, `${VAR#pat}`, `${VAR##pat}`, `${VAR%pat}`,
//! `${VAR%%pat}`, `${VAR/pat/repl}`, `${VAR//pat/repl}`, quotes and the escape
//! token.
//!
//! This is not a shell: there is no command substitution, no arithmetic, no globbing.
//! Dockerfile instructions that run a shell (`RUN`, `CMD`, `ENTRYPOINT`) leave the
//! expansion to it; the others expand their words here.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Where the lexer looks variables up. Unix semantics: names are case-sensitive.
pub trait Variables {
    /// The value of `name`, or `None` when it is unset (set-but-empty is `Some("")`).
    fn get_var(&self, name: &str) -> Option<&str>;
}

impl Variables for BTreeMap<String, String> {
    fn get_var(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl Variables for HashMap<String, String> {
    fn get_var(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// A list of `(name, value)` pairs; a later pair wins over an earlier one of the same
/// name, as buildkit's `BuildEnvs` has it.
impl Variables for [(String, String)] {
    fn get_var(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Variables for Vec<(String, String)> {
    fn get_var(&self, name: &str) -> Option<&str> {
        self.as_slice().get_var(name)
    }
}

/// The shell lexer. The defaults are what Dockerfile instructions use; the flags are
/// buildkit's and serve heredoc detection.
#[derive(Clone, Copy, Debug)]
pub struct Lexer {
    escape: char,
    /// Keep quote characters in the output.
    pub raw_quotes: bool,
    /// Keep escape characters in the output.
    pub raw_escapes: bool,
    /// Leave references to unset variables as written instead of expanding them to "".
    pub skip_unset_env: bool,
    /// Treat quotes as ordinary characters.
    pub skip_process_quotes: bool,
}

/// The outcome of expanding one word.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expanded {
    /// The word with quotes removed and variables replaced.
    pub word: String,
    /// The same, split into words at unquoted whitespace (after expansion).
    pub words: Vec<String>,
    /// Names of variables that were referenced and found.
    pub matched: BTreeSet<String>,
    /// Names of variables that were referenced but unset.
    pub unmatched: BTreeSet<String>,
}

impl Lexer {
    /// A lexer with `escape` (`\` or `` ` ``) as escape token.
    pub fn new(escape: char) -> Self {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset_env: false,
            skip_process_quotes: false,
        }
    }

    /// Expand `word`; spaces between words are kept.
    pub fn process_word(&self, word: &str, env: &dyn Variables) -> Result<String, String> {
        Ok(self.process(word, env)?.word)
    }

    /// Expand `word` and split it into words.
    pub fn process_words(&self, word: &str, env: &dyn Variables) -> Result<Vec<String>, String> {
        Ok(self.process(word, env)?.words)
    }

    /// Expand `word`, returning the word, its split and which variables it used. The
    /// error text is buildkit's: `failed to process "…": …`.
    pub fn process(&self, word: &str, env: &dyn Variables) -> Result<Expanded, String> {
        let mut sw = ShellWord {
            chars: word.chars().collect(),
            pos: 0,
            env,
            escape: self.escape,
            raw_quotes: self.raw_quotes,
            raw_escapes: self.raw_escapes,
            skip_unset_env: self.skip_unset_env,
            skip_process_quotes: self.skip_process_quotes,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        };
        match sw.process_stop_on(None, self.raw_escapes) {
            Ok((result, words)) => Ok(Expanded {
                word: result,
                words,
                matched: sw.matched,
                unmatched: sw.unmatched,
            }),
            Err(e) => Err(format!("failed to process {word:?}: {e}")),
        }
    }
}

struct ShellWord<'a> {
    chars: Vec<char>,
    pos: usize,
    env: &'a dyn Variables,
    escape: char,
    raw_quotes: bool,
    raw_escapes: bool,
    skip_unset_env: bool,
    skip_process_quotes: bool,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

/// Word splitting state, as buildkit's `wordsStruct`.
#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() && self.in_word {
            if !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else if !ch.is_whitespace() {
            self.add_raw_char(ch);
        }
    }

    fn add_raw_char(&mut self, ch: char) {
        self.word.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        for ch in s.chars() {
            self.add_char(ch);
        }
    }

    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(std::mem::take(&mut self.word));
        }
        self.words
    }
}

impl ShellWord<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.chars.get(self.pos).copied();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), String> {
        // buildkit switches raw escapes for the duration of a nested word (patterns of
        // `${VAR#pat}` keep their backslashes) and restores them afterwards.
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let r = self.process_stop_on_inner(stop);
        self.raw_escapes = saved;
        r
    }

    fn process_stop_on_inner(
        &mut self,
        stop: Option<char>,
    ) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            let special = ch == '$' || (!self.skip_process_quotes && (ch == '\'' || ch == '"'));
            if special {
                let tmp = match ch {
                    '$' => self.process_dollar()?,
                    '\'' => self.process_single_quote()?,
                    _ => self.process_double_quote()?,
                };
                result.push_str(&tmp);
                if ch == '$' {
                    words.add_string(&tmp);
                } else {
                    words.add_raw_string(&tmp);
                }
                continue;
            }
            let mut ch = self.next().unwrap_or(ch);
            if ch == self.escape {
                if self.raw_escapes {
                    words.add_raw_char(ch);
                    result.push(ch);
                }
                // The escape token escapes the next character, except at the end.
                match self.next() {
                    None => break,
                    Some(c) => ch = c,
                }
                words.add_raw_char(ch);
            } else {
                words.add_char(ch);
            }
            result.push(ch);
        }
        if let Some(stop) = stop {
            return Err(format!(
                "unexpected end of statement while looking for matching {stop}"
            ));
        }
        Ok((result, words.finish()))
    }

    fn process_single_quote(&mut self) -> Result<String, String> {
        // Everything up to the next single quote is literal; a single quote cannot be
        // escaped inside single quotes (as in sh).
        let mut result = String::new();
        let open = self.next();
        if self.raw_quotes
            && let Some(c) = open
        {
            result.push(c);
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    );
                }
                Some('\'') => {
                    if self.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, String> {
        // Literal except `$` and the escape token, which escapes only `"`, `$` and
        // itself (as sh's backslash does inside double quotes).
        let mut result = String::new();
        let open = self.next();
        if self.raw_quotes
            && let Some(c) = open
        {
            result.push(c);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    );
                }
                Some('"') => {
                    self.next();
                    if self.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let v = self.process_dollar()?;
                    result.push_str(&v);
                }
                Some(_) => {
                    let Some(mut ch) = self.next() else { continue };
                    if ch == self.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            // An escape token at the very end is dropped.
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.escape => {
                                self.next();
                                ch = c;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        match self.env.get_var(name) {
            Some(v) => {
                self.matched.insert(name.to_string());
                Some(v.to_string())
            }
            None => {
                self.unmatched.insert(name.to_string());
                None
            }
        }
    }

    fn process_dollar(&mut self) -> Result<String, String> {
        self.next(); // the '$'
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.next(); // the '{'
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            Some(_) => {}
        }
        let name = self.process_name();
        let Some(mut ch) = self.next() else {
            return Err("syntax error: missing '}'".into());
        };
        let mut chs = ch.to_string();
        match ch {
            '}' => Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let null_is_unset = ch == ':';
                if null_is_unset {
                    match self.next() {
                        Some(c) => {
                            ch = c;
                            chs.push(c);
                        }
                        None => return Err("syntax error: missing '}'".into()),
                    }
                }
                let raw = ch == '#' || ch == '%';
                if null_is_unset && raw {
                    return Err(format!("unsupported modifier ({chs}) in substitution"));
                }
                if !matches!(ch, '+' | '-' | '?' | '#' | '%') {
                    return Err(format!("unsupported modifier ({chs}) in substitution"));
                }
                let word = match self.process_stop_on(Some('}'), raw) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err("syntax error: missing '}'".into());
                        }
                        return Err(e);
                    }
                };
                let value = self.get_env(&name);
                if self.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}{chs}{word}}}"));
                }
                let empty = value.as_deref().is_none_or(str::is_empty);
                match ch {
                    '-' => {
                        if value.is_none() || (null_is_unset && empty) {
                            Ok(word)
                        } else {
                            Ok(value.unwrap_or_default())
                        }
                    }
                    '+' => {
                        if value.is_none() || (null_is_unset && empty) {
                            Ok(String::new())
                        } else {
                            Ok(word)
                        }
                    }
                    '?' => match value {
                        None => Err(format!(
                            "{name}: {}",
                            if word.is_empty() {
                                "is not allowed to be unset"
                            } else {
                                &word
                            }
                        )),
                        Some(v) if null_is_unset && v.is_empty() => Err(format!(
                            "{name}: {}",
                            if word.is_empty() {
                                "is not allowed to be empty"
                            } else {
                                &word
                            }
                        )),
                        Some(v) => Ok(v),
                    },
                    _ => {
                        // `#`/`%` strip the shortest match, `##`/`%%` the longest.
                        let value = value.unwrap_or_default();
                        let (greedy, pattern) = match word.strip_prefix(ch) {
                            Some(rest) => (true, rest.to_string()),
                            None => (false, word),
                        };
                        if ch == '%' {
                            trim_suffix(&pattern, &value, greedy)
                        } else {
                            trim_prefix(&pattern, &value, greedy)
                        }
                    }
                }
            }
            '/' => {
                let replace_all = self.peek() == Some('/');
                if replace_all {
                    self.next();
                }
                let pattern = match self.process_stop_on(Some('/'), true) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err("syntax error: missing '/' in ${}".into());
                        }
                        return Err(e);
                    }
                };
                let replacement = match self.process_stop_on(Some('}'), true) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err("syntax error: missing '}'".into());
                        }
                        return Err(e);
                    }
                };
                let value = self.get_env(&name);
                let Some(value) = value else {
                    if self.skip_unset_env {
                        return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                    }
                    return Ok(String::new());
                };
                let re = shell_pattern_regex(&pattern, true, false)
                    .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
                let replacement = regex::NoExpand(&replacement);
                Ok(if replace_all {
                    re.replace_all(&value, replacement).into_owned()
                } else {
                    re.replace(&value, replacement).into_owned()
                })
            }
            _ => Err(format!("unsupported modifier ({chs}) in substitution")),
        }
    }

    fn process_name(&mut self) -> String {
        // A name is letters, digits and `_`; one starting with a digit is all digits
        // (`$1`), and the special parameters are one character (`$@`, `$$`, …).
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    self.next();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !ch.is_alphabetic() && !ch.is_numeric() && ch != '_' {
                break;
            }
            self.next();
            name.push(ch);
        }
        name
    }
}

/// Converts a shell pattern (`*`, `?`, `\` escapes) to a regex, as buildkit's
/// `convertShellPatternToRegex`.
fn shell_pattern_regex(
    pattern: &str,
    greedy: bool,
    anchored: bool,
) -> Result<regex::Regex, String> {
    let mut out = String::with_capacity(pattern.len() + 4);
    if anchored {
        out.push('^');
    }
    let star = if greedy { ".*" } else { ".*?" };
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let tok = chars[i];
        i += 1;
        match tok {
            '*' => {
                out.push_str(star);
                continue;
            }
            '?' => {
                out.push('.');
                continue;
            }
            '\\' => {
                // `\}` is how `}` is written inside `${…}`; the escape is not part of
                // the pattern.
                if chars.get(i) == Some(&'}') {
                    continue;
                }
                out.push('\\');
                let Some(&next) = chars.get(i) else {
                    return Err("invalid escape '\\' at end of pattern".into());
                };
                i += 1;
                if !matches!(next, '*' | '?' | '\\') {
                    return Err(format!("invalid escape '\\{next}'"));
                }
                out.push(next);
                continue;
            }
            '[' | ']' | '{' | '}' | '.' | '+' | '(' | ')' | '|' | '^' | '$' => out.push('\\'),
            _ => {}
        }
        out.push(tok);
    }
    regex::Regex::new(&out).map_err(|e| e.to_string())
}

fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    if pattern.is_empty() {
        return Ok(value.to_string());
    }
    let re = shell_pattern_regex(pattern, greedy, true)
        .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
    Ok(match re.find(value) {
        Some(m) => value[m.end()..].to_string(),
        None => value.to_string(),
    })
}

/// Reverses a pattern but keeps each escape before the character it escapes.
fn reverse_pattern(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = vec![' '; chars.len()];
    let last = chars.len().saturating_sub(1);
    let mut i = 0;
    while i < chars.len() {
        let tok = chars[i];
        let out_idx = last - i;
        if tok == '\\' && i != last {
            out[out_idx - 1] = tok;
            out[out_idx] = chars[i + 1];
            i += 2;
        } else {
            out[out_idx] = tok;
            i += 1;
        }
    }
    out.into_iter().collect()
}

fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    // A regex cannot find the shortest rightmost match, so search the reversed value
    // with the reversed pattern from the left instead (as buildkit does).
    let rev_value: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reverse_pattern(pattern), &rev_value, greedy)?;
    Ok(trimmed.chars().rev().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        [
            ("PWD", "/home"),
            ("SHELL", "bash"),
            ("KOREAN", "한국어"),
            ("NULL", ""),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// buildkit's `envVarTest` table (the Unix rows), plus the newer modifiers.
    #[test]
    fn env_var_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("hello", Some("hello")),
            ("he'll'o", Some("hello")),
            ("he'llo", None),
            ("he\\'llo", Some("he'llo")),
            ("he\\\\'llo", None),
            ("abc\\tdef", Some("abctdef")),
            ("\"abc\\tdef\"", Some("abc\\tdef")),
            ("\"abc\\\\tdef\"", Some("abc\\tdef")),
            ("'abc\\tdef'", Some("abc\\tdef")),
            ("hello\\", Some("hello")),
            ("hello\\\\", Some("hello\\")),
            ("\"hello", None),
            ("\"hello\\\"", None),
            ("\"hel'lo\"", Some("hel'lo")),
            ("'hello", None),
            ("'hello\\'", Some("hello\\")),
            ("'hello\\there'", Some("hello\\there")),
            ("'hello\\\\there'", Some("hello\\\\there")),
            ("\"''\"", Some("''")),
            ("$.", Some("$.")),
            ("he$1x", Some("hex")),
            ("he$.x", Some("he$.x")),
            ("he$pwd.", Some("he.")),
            ("he$PWD", Some("he/home")),
            ("he\\$PWD", Some("he$PWD")),
            ("he\\\\$PWD", Some("he\\/home")),
            ("\"he\\$PWD\"", Some("he$PWD")),
            ("\"he\\\\$PWD\"", Some("he\\/home")),
            ("\\${}", Some("${}")),
            ("\\${}aaa", Some("${}aaa")),
            ("he\\${}", Some("he${}")),
            ("he\\${}xx", Some("he${}xx")),
            ("${}", None),
            ("${}xx", None),
            ("he${}", None),
            ("he${}xx", None),
            ("he${hi}", Some("he")),
            ("he${hi}xx", Some("hexx")),
            ("he${PWD}", Some("he/home")),
            ("he${.}", None),
            ("he${XXX:-000}xx", Some("he000xx")),
            ("he${PWD:-000}xx", Some("he/homexx")),
            ("he${XXX:-$PWD}xx", Some("he/homexx")),
            ("he${XXX:-${PWD:-yyy}}xx", Some("he/homexx")),
            ("he${XXX:-${YYY:-yyy}}xx", Some("heyyyxx")),
            ("he${XXX:YYY}", None),
            ("he${XXX?}", None),
            ("he${XXX:?}", None),
            ("he${PWD?}", Some("he/home")),
            ("he${PWD:?}", Some("he/home")),
            ("he${NULL?}", Some("he")),
            ("he${NULL:?}", None),
            ("he${XXX:+${PWD}}xx", Some("hexx")),
            ("he${PWD:+${XXX}}xx", Some("hexx")),
            ("he${PWD:+${SHELL}}xx", Some("hebashxx")),
            ("he${XXX:+000}xx", Some("hexx")),
            ("he${PWD:+000}xx", Some("he000xx")),
            ("'he${XX}'", Some("he${XX}")),
            ("\"he${PWD}\"", Some("he/home")),
            ("\"he'$PWD'\"", Some("he'/home'")),
            ("\"$PWD\"", Some("/home")),
            ("'$PWD'", Some("$PWD")),
            ("'\\$PWD'", Some("\\$PWD")),
            ("'\"hello\"'", Some("\"hello\"")),
            ("he\\$PWD", Some("he$PWD")),
            ("\"he\\$PWD\"", Some("he$PWD")),
            ("'he\\$PWD'", Some("he\\$PWD")),
            ("he${PWD", None),
            ("he${PWD:=000}xx", None),
            ("he${PWD:+${PWD}:}xx", Some("he/home:xx")),
            ("he${XXX:-\\$PWD:}xx", Some("he$PWD:xx")),
            ("he${XXX:-\\${PWD}z}xx", Some("he${PWDz}xx")),
            ("안녕하세요", Some("안녕하세요")),
            ("안'녕'하세요", Some("안녕하세요")),
            ("안'녕하세요", None),
            ("안녕\\'하세요", Some("안녕'하세요")),
            ("안\\\\'녕하세요", None),
            ("안녕\\t하세요", Some("안녕t하세요")),
            ("\"안녕\\t하세요\"", Some("안녕\\t하세요")),
            ("'안녕\\t하세요", None),
            ("안녕하세요\\", Some("안녕하세요")),
            ("안녕하세요\\\\", Some("안녕하세요\\")),
            ("\"안녕하세요", None),
            ("\"안녕하세요\\\"", None),
            ("\"안녕'하세요\"", Some("안녕'하세요")),
            ("'안녕하세요'", Some("안녕하세요")),
            ("'안녕하세요\\'", Some("안녕하세요\\")),
            ("내가$1x", Some("내가x")),
            ("내가$.x", Some("내가$.x")),
            ("내가$KOREAN", Some("내가한국어")),
            ("내가\\$KOREAN", Some("내가$KOREAN")),
            ("내가${KOREAN}", Some("내가한국어")),
            ("$$", Some("")),
            ("$0", Some("")),
            // The non-colon forms: unset versus set-but-empty.
            ("${XXX-def}", Some("def")),
            ("${NULL-def}", Some("")),
            ("${NULL:-def}", Some("def")),
            ("${XXX+alt}", Some("")),
            ("${NULL+alt}", Some("alt")),
            ("${NULL:+alt}", Some("")),
            ("${PWD+alt}", Some("alt")),
            // Prefix and suffix removal, pattern substitution.
            ("${PWD#/}", Some("home")),
            ("${PWD#*o}", Some("me")),
            ("${PWD##*o}", Some("me")),
            ("${PWD%o*}", Some("/h")),
            ("${PWD%%/*}", Some("")),
            ("${PWD%/*}", Some("")),
            ("${SHELL/a/A}", Some("bAsh")),
            ("${SHELL//[ab]/x}", Some("bash")),
            ("${SHELL//?/x}", Some("xxxx")),
            ("${PWD:#x}", None),
        ];
        let lex = Lexer::new('\\');
        let env = env();
        for (input, want) in cases {
            let got = lex.process_word(input, &env);
            match want {
                Some(w) => assert_eq!(got.as_deref(), Ok(*w), "input {input:?}"),
                None => assert!(got.is_err(), "input {input:?} gave {got:?}"),
            }
        }
    }

    /// buildkit's `wordsTest` table.
    #[test]
    fn words_table() {
        let mut env: Vec<(String, String)> = vec![];
        let lex = Lexer::new('\\');
        let script = [
            ("hello", "hello"),
            ("hello${hi}bye", "hellobye"),
            ("ENV hi=hi", ""),
            ("hello${hi}bye", "hellohibye"),
            ("ENV space=abc  def", ""),
            ("hello${space}bye", "helloabc,defbye"),
            ("hello\"${space}\"bye", "helloabc  defbye"),
            ("hello \"${space}\"bye", "hello,abc  defbye"),
            ("ENV leading=  ab c", ""),
            ("hello${leading}def", "hello,ab,cdef"),
            ("hello\"${leading}\" def", "hello  ab c,def"),
            ("hello\"${leading}\"", "hello  ab c"),
            ("hello${leading}", "hello,ab,c"),
            ("ENV trailing=ab c   ", ""),
            ("hello${trailing}", "helloab,c"),
            ("hello${trailing}d", "helloab,c,d"),
            ("hello\"${trailing}\"d", "helloab c   d"),
            ("hel\"lo${trailing}\"", "helloab c   "),
            ("hello\" there  \"", "hello there  "),
            ("hello there", "hello,there"),
            ("hello\\ there", "hello there"),
            ("hello\" there", "error"),
            ("hello\\\" there", "hello\",there"),
            ("hello\"\\\\there\"", "hello\\there"),
            ("hello\"\\there\"", "hello\\there"),
            ("hello'\\\\there'", "hello\\\\there"),
            ("hello'\\there'", "hello\\there"),
            ("hello'$there'", "hello$there"),
        ];
        for (input, want) in script {
            if let Some(def) = input.strip_prefix("ENV ") {
                let (k, v) = def.split_once('=').unwrap();
                env.push((k.to_string(), v.to_string()));
                continue;
            }
            let got = match lex.process_words(input, &env) {
                Ok(w) => w,
                Err(_) => vec!["error".to_string()],
            };
            let want: Vec<&str> = want.split(',').collect();
            assert_eq!(got, want, "input {input:?}");
        }
    }

    #[test]
    fn mandatory_messages_and_matches() {
        let lex = Lexer::new('\\');
        let env = env();
        assert_eq!(
            lex.process_word("${XXX:?}", &env).unwrap_err(),
            "failed to process \"${XXX:?}\": XXX: is not allowed to be unset"
        );
        assert_eq!(
            lex.process_word("${NULL:?}", &env).unwrap_err(),
            "failed to process \"${NULL:?}\": NULL: is not allowed to be empty"
        );
        assert_eq!(
            lex.process_word("${XXX:?set XXX first}", &env).unwrap_err(),
            "failed to process \"${XXX:?set XXX first}\": XXX: set XXX first"
        );
        let e = lex.process("$PWD $NOPE", &env).unwrap();
        assert!(e.matched.contains("PWD"));
        assert!(e.unmatched.contains("NOPE"));
    }

    #[test]
    fn backtick_escape_and_skip_unset() {
        let lex = Lexer::new('`');
        let env = env();
        assert_eq!(
            lex.process_word("c:\\dir`$PWD", &env).unwrap(),
            "c:\\dir$PWD"
        );
        let mut keep = Lexer::new('\\');
        keep.skip_unset_env = true;
        assert_eq!(
            keep.process_word("$A ${B} ${C:-x} $PWD", &env).unwrap(),
            "$A ${B} ${C:-x} /home"
        );
    }
}
