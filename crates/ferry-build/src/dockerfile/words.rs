//! Splitting an instruction's text the way buildkit's line parsers do: the keyword,
//! the `--flags`, JSON arrays, whitespace-separated words and quote-aware words.

/// buildkit's `reWhitespace`: the blanks that separate words (not newlines).
pub(crate) fn is_blank(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

/// Splits on runs of blanks, keeping empty leading/trailing pieces out (the text is
/// trimmed by the caller).
pub(crate) fn split_blanks(s: &str) -> Vec<String> {
    s.split(is_blank)
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Splits `s` into at most two pieces at the first run of blanks.
pub(crate) fn split_blanks_2(s: &str) -> (String, Option<String>) {
    match s.find(is_blank) {
        None => (s.to_string(), None),
        Some(i) => {
            let rest = s[i..].trim_start_matches(is_blank);
            (s[..i].to_string(), Some(rest.to_string()))
        }
    }
}

/// Takes the leading `--flag[=value]` words off an instruction's arguments, as
/// buildkit's `extractBuilderFlags`: quotes and backslashes inside a flag are
/// processed, a lone `--` ends the flags. Returns the rest of the line and the flags.
pub(crate) fn extract_builder_flags(line: &str) -> (String, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    while pos <= chars.len() {
        let at_end = pos == chars.len();
        let ch = if at_end { '\0' } else { chars[pos].1 };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            let next_is_dash = chars.get(pos + 1).is_some_and(|(_, c)| *c == '-');
            if ch != '-' || !next_is_dash {
                return (line[chars[pos].0..].to_string(), words);
            }
            phase = Phase::Word;
        }
        if at_end {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if word == "--" {
                    return (line[chars[pos].0..].to_string(), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            let mut c = ch;
            if c == '\\' {
                if pos + 1 == chars.len() {
                    pos += 1;
                    continue;
                }
                pos += 1;
                c = chars[pos].1;
            }
            word.push(c);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        let mut c = ch;
        if c == '\\' {
            if pos + 1 == chars.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            c = chars[pos].1;
        }
        word.push(c);
        pos += 1;
    }
    (String::new(), words)
}

/// Splits into words at whitespace, keeping quotes (they are removed later, by the
/// lexer) and honouring the escape token, as buildkit's `parseWords` (used by ENV,
/// LABEL and ARG).
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut word = String::new();
    let mut pos = 0;
    while pos <= chars.len() {
        let at_end = pos == chars.len();
        let mut ch = if at_end { '\0' } else { chars[pos] };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if at_end {
            if blank_ok || !word.is_empty() {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if pos + 1 == chars.len() {
                    pos += 1;
                    continue; // an escape token at the end is dropped
                }
                // Outside quotes the escape token and the next character are both
                // kept, even when that character is a quote.
                word.push(ch);
                pos += 1;
                ch = chars[pos];
            }
            word.push(ch);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
        }
        // Inside single quotes the escape token is an ordinary character.
        if ch == escape && quote != '\'' {
            if pos + 1 == chars.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            word.push(ch);
            ch = chars[pos];
        }
        word.push(ch);
        pos += 1;
    }
    words
}

/// What came of trying to read an instruction's arguments as a JSON array.
pub(crate) enum Json {
    /// A JSON array of strings.
    Strings(Vec<String>),
    /// Not a JSON array: use the shell form.
    Invalid,
    /// A JSON array with something other than strings in it: an error in Docker.
    NotStrings,
}

/// buildkit's `parseJSON`: must start with `[` and be a valid JSON array; invalid
/// JSON falls back to the shell form, non-string elements are an error.
pub(crate) fn parse_json(rest: &str) -> Json {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Json::Invalid;
    }
    let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(rest) else {
        return Json::Invalid;
    };
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        match v {
            serde_json::Value::String(s) => out.push(s),
            _ => return Json::NotStrings,
        }
    }
    Json::Strings(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_flags() {
        let cases: &[(&str, &str, &[&str])] = &[
            ("--from=builder /a /b", "/a /b", &["--from=builder"]),
            (
                "--chown=1:1 --chmod=755 a b",
                "a b",
                &["--chown=1:1", "--chmod=755"],
            ),
            ("--link src dst", "src dst", &["--link"]),
            ("-- --notaflag x", " --notaflag x", &[]),
            ("echo --from=x", "echo --from=x", &[]),
            ("--a=\"b c\" d", "d", &["--a=b c"]),
            ("--a='' d", "d", &["--a="]),
            ("--flag", "", &["--flag"]),
            ("   ", "", &[]),
        ];
        for (input, rest, flags) in cases {
            let (r, f) = extract_builder_flags(input);
            assert_eq!(r, *rest, "{input:?}");
            assert_eq!(f, *flags, "{input:?}");
        }
    }

    #[test]
    fn words_keep_quotes() {
        let cases: &[(&str, &[&str])] = &[
            ("foo", &["foo"]),
            ("foo bar", &["foo", "bar"]),
            ("foo\\ bar", &["foo\\ bar"]),
            ("foo=bar", &["foo=bar"]),
            ("foo bar=baz", &["foo", "bar=baz"]),
            ("foo=\"bar baz\"", &["foo=\"bar baz\""]),
            ("foo='bar baz' x=y", &["foo='bar baz'", "x=y"]),
            ("a=\"\"", &["a=\"\""]),
            ("\"\"", &["\"\""]),
            ("foo='a\\'", &["foo='a\\'"]),
        ];
        for (input, want) in cases {
            assert_eq!(parse_words(input, '\\'), *want, "{input:?}");
        }
    }

    #[test]
    fn json_rules() {
        assert!(matches!(parse_json(r#"["a", "b"]"#), Json::Strings(v) if v == ["a", "b"]));
        assert!(matches!(parse_json(r#"  [] "#), Json::Strings(v) if v.is_empty()));
        assert!(matches!(parse_json(r#"["a", 1]"#), Json::NotStrings));
        assert!(matches!(parse_json(r#"["a", ]"#), Json::Invalid));
        assert!(matches!(parse_json(r#"[a]"#), Json::Invalid));
        assert!(matches!(parse_json(r#"echo ["a"]"#), Json::Invalid));
    }
}
