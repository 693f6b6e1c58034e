//! `.dockerignore` patterns with moby's `patternmatcher` semantics: patterns are
//! cleaned like Go's `filepath.Clean` (so `./a` and `/a` mean `a`), `*` and `?` stop
//! at `/`, `**` spans any number of directories, `!` re-includes, and the last
//! matching pattern wins. Pure: reading the context directory lives in
//! [`crate::context`].

use crate::error::{Error, Result};

/// Go's `filepath.Clean` for slash-separated paths.
pub fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// The patterns of an ignore file, with their line numbers, as moby's
/// `ignorefile.ReadAll` reads them: `#` comments (only at the very start of a line),
/// blank lines skipped, whitespace trimmed, paths cleaned, a leading `/` dropped.
pub fn read_patterns(text: &str) -> Vec<(usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut p = String::new();
        if !pattern.is_empty() {
            p = clean(pattern);
            if p.len() > 1 && p.starts_with('/') {
                p.remove(0);
            }
        }
        if invert {
            p.insert(0, '!');
        }
        out.push((i + 1, p));
    }
    out
}

/// Checks glob syntax as Go's `filepath.Match` does (`[` classes closed, ranges
/// complete, no trailing `\`).
pub fn validate_glob(pattern: &str) -> Result<(), String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    let bad = |why: &str| Err(format!("syntax error in pattern: {why}"));
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if i + 1 >= chars.len() {
                    return bad("trailing backslash");
                }
                i += 2;
            }
            '[' => {
                i += 1;
                if chars.get(i) == Some(&'^') {
                    i += 1;
                }
                let mut ranges = 0;
                loop {
                    if chars.get(i) == Some(&']') && ranges > 0 {
                        i += 1;
                        break;
                    }
                    // getEsc: a character (maybe escaped) that is not `-` or `]` and
                    // is not the last of the pattern.
                    let esc = |i: &mut usize| -> Result<(), String> {
                        match chars.get(*i) {
                            None | Some('-') | Some(']') => {
                                return Err("bad character class".into());
                            }
                            Some('\\') => {
                                *i += 1;
                                if *i >= chars.len() {
                                    return Err("bad character class".into());
                                }
                            }
                            _ => {}
                        }
                        *i += 1;
                        if *i >= chars.len() {
                            return Err("unclosed character class".into());
                        }
                        Ok(())
                    };
                    if let Err(e) = esc(&mut i) {
                        return bad(&e);
                    }
                    if chars.get(i) == Some(&'-') {
                        i += 1;
                        if let Err(e) = esc(&mut i) {
                            return bad(&e);
                        }
                    }
                    ranges += 1;
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

#[derive(Clone, Debug)]
enum Matcher {
    Exact,
    Prefix(String),
    Suffix(String),
    Regex(regex::Regex),
}

/// One compiled pattern.
#[derive(Clone, Debug)]
pub struct Pattern {
    cleaned: String,
    exclusion: bool,
    matcher: Matcher,
}

impl Pattern {
    /// The pattern as cleaned, without its `!`.
    pub fn as_str(&self) -> &str {
        &self.cleaned
    }

    /// Whether this is a `!` exception (re-includes what earlier patterns excluded).
    pub fn is_exception(&self) -> bool {
        self.exclusion
    }

    /// Whether the pattern uses wildcards or escapes (so it may match below any dir).
    fn has_wildcards(&self) -> bool {
        self.cleaned.contains(['*', '?', '[', '\\'])
    }

    fn matches(&self, path: &str) -> bool {
        match &self.matcher {
            Matcher::Exact => path == self.cleaned,
            Matcher::Prefix(p) => path.starts_with(p.as_str()),
            Matcher::Suffix(s) => {
                path.ends_with(s.as_str()) || s.strip_prefix('/').is_some_and(|s| path == s)
            }
            Matcher::Regex(re) => re.is_match(path),
        }
    }

    /// Translates to a matcher exactly as patternmatcher's `compile` does.
    fn compile(cleaned: &str) -> Result<Matcher, String> {
        #[derive(PartialEq, Clone, Copy)]
        enum Kind {
            Exact,
            Prefix,
            Suffix,
            Regex,
        }
        let chars: Vec<char> = cleaned.chars().collect();
        let mut re = String::from("^");
        let mut kind = Kind::Exact;
        let mut pos = 0;
        let mut iteration = 0;
        while pos < chars.len() {
            let ch = chars[pos];
            pos += 1;
            if ch == '*' {
                if chars.get(pos) == Some(&'*') {
                    pos += 1;
                    // `**/` is the same as `**`.
                    if chars.get(pos) == Some(&'/') {
                        pos += 1;
                    }
                    if pos >= chars.len() {
                        // `**` at the end matches everything, as in .gitignore.
                        if kind == Kind::Exact {
                            kind = Kind::Prefix;
                        } else {
                            re.push_str(".*");
                            kind = Kind::Regex;
                        }
                    } else {
                        re.push_str("(.*/)?");
                        kind = Kind::Regex;
                    }
                    if iteration == 0 {
                        kind = Kind::Suffix;
                    }
                } else {
                    re.push_str("[^/]*");
                    kind = Kind::Regex;
                }
            } else if ch == '?' {
                re.push_str("[^/]");
                kind = Kind::Regex;
            } else if ".+()|{}$".contains(ch) {
                re.push('\\');
                re.push(ch);
            } else if ch == '\\' {
                match chars.get(pos) {
                    Some(&next) => {
                        pos += 1;
                        re.push('\\');
                        re.push(next);
                        kind = Kind::Regex;
                    }
                    None => re.push_str("\\\\"),
                }
            } else if ch == '[' || ch == ']' {
                re.push(ch);
                kind = Kind::Regex;
            } else {
                re.push(ch);
            }
            iteration += 1;
        }
        match kind {
            Kind::Exact => Ok(Matcher::Exact),
            Kind::Prefix => Ok(Matcher::Prefix(cleaned[..cleaned.len() - 2].to_string())),
            Kind::Suffix => Ok(Matcher::Suffix(cleaned[2..].to_string())),
            Kind::Regex => {
                re.push('$');
                regex::Regex::new(&re)
                    .map(Matcher::Regex)
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// Per-pattern results of a directory, handed down to its children while walking
/// (patternmatcher's `MatchInfo`).
#[derive(Clone, Debug, Default)]
pub struct MatchInfo {
    parent_matched: Vec<bool>,
}

/// A list of ignore patterns.
#[derive(Clone, Debug, Default)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
    exceptions: bool,
}

impl PatternMatcher {
    /// Compiles the patterns of the ignore file `file` (its name is for messages).
    pub fn parse(file: &str, text: &str) -> Result<Self> {
        Self::new(file, &read_patterns(text))
    }

    /// Compiles `(line, pattern)` pairs as patternmatcher's `New` does.
    pub fn new(file: &str, patterns: &[(usize, String)]) -> Result<Self> {
        let mut pm = PatternMatcher::default();
        for (line, p) in patterns {
            let err = |message: String| Error::IgnorePattern {
                file: file.to_string(),
                line: *line,
                pattern: p.clone(),
                message,
            };
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            let mut p = clean(p);
            let mut exclusion = false;
            if let Some(rest) = p.strip_prefix('!') {
                if rest.is_empty() {
                    return Err(err(
                        "illegal exclusion pattern: \"!\"; write !path to re-include a path".into(),
                    ));
                }
                exclusion = true;
                pm.exceptions = true;
                p = rest.to_string();
            }
            validate_glob(&p).map_err(err)?;
            let matcher =
                Pattern::compile(&p).map_err(|e| err(format!("cannot be compiled: {e}")))?;
            pm.patterns.push(Pattern {
                cleaned: p,
                exclusion,
                matcher,
            });
        }
        Ok(pm)
    }

    /// The compiled patterns in order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether any pattern is a `!` exception.
    pub fn has_exceptions(&self) -> bool {
        self.exceptions
    }

    /// Whether `path` (slash-separated, relative to the context) is excluded, looking
    /// at its parent directories too (patternmatcher's `MatchesOrParentMatches`).
    pub fn matches(&self, path: &str) -> bool {
        self.matches_using_parent(path, &MatchInfo::default()).0
    }

    /// As [`Self::matches`], reusing the parent directory's results while walking a
    /// tree (patternmatcher's `MatchesUsingParentResults`).
    pub fn matches_using_parent(&self, path: &str, parent: &MatchInfo) -> (bool, MatchInfo) {
        let path = clean(path);
        let parent_matched = &parent.parent_matched;
        let have_parent = parent_matched.len() == self.patterns.len() && !parent_matched.is_empty();
        let mut matched = false;
        let mut info = MatchInfo {
            parent_matched: vec![false; self.patterns.len()],
        };
        for (i, pattern) in self.patterns.iter().enumerate() {
            let mut m = have_parent && parent_matched[i];
            if !m {
                // An inclusion cannot change an already excluded path, nor an
                // exception a path that is not excluded: skip those.
                if pattern.exclusion != matched {
                    continue;
                }
                m = pattern.matches(&path);
                if !m
                    && !have_parent
                    && let Some((dir, _)) = path.rsplit_once('/')
                {
                    let mut prefix = String::new();
                    for part in dir.split('/') {
                        if !prefix.is_empty() {
                            prefix.push('/');
                        }
                        prefix.push_str(part);
                        if pattern.matches(&prefix) {
                            m = true;
                            break;
                        }
                    }
                }
            }
            info.parent_matched[i] = m;
            if m {
                matched = !pattern.exclusion;
            }
        }
        (matched, info)
    }

    /// Whether an excluded directory must still be walked because an exception could
    /// re-include something inside it: any exception with wildcards, or one whose
    /// path lies under the directory (buildkit's rule).
    pub fn may_include_below(&self, dir: &str) -> bool {
        if !self.exceptions {
            return false;
        }
        let dir_slash = format!("{}/", clean(dir));
        self.patterns
            .iter()
            .filter(|p| p.exclusion)
            .any(|p| p.has_wildcards() || format!("{}/", p.cleaned).starts_with(&dir_slash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pm(patterns: &[&str]) -> PatternMatcher {
        let list: Vec<(usize, String)> = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| (i + 1, p.to_string()))
            .collect();
        PatternMatcher::new(".dockerignore", &list).unwrap()
    }

    #[test]
    fn clean_like_go() {
        for (input, want) in [
            ("", "."),
            ("a/b/../c", "a/c"),
            ("./a", "a"),
            ("/a/", "/a"),
            ("/../a", "/a"),
            ("../a", "../a"),
            ("a//b", "a/b"),
            ("a/..", "."),
        ] {
            assert_eq!(clean(input), want, "{input:?}");
        }
    }

    #[test]
    fn read_patterns_like_ignorefile() {
        let content = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! ";
        let got: Vec<String> = read_patterns(content).into_iter().map(|(_, p)| p).collect();
        assert_eq!(
            got,
            [
                "test1",
                "test2",
                "a/file/here",
                "lastfile",
                "!inverted/abs/path",
                "!",
                "!"
            ]
        );
        assert!(PatternMatcher::parse(".dockerignore", "!\n").is_err());
    }

    /// Cases from patternmatcher's own `TestMatches` table.
    #[test]
    fn pattern_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("**", "file", true),
            ("**", "file/", true),
            ("**/", "file", true),
            ("**/", "file/", true),
            ("**", "/", true),
            ("**/", "/", true),
            ("**", "dir/file", true),
            ("**/", "dir/file", true),
            ("**", "dir/file/", true),
            ("**/", "dir/file/", true),
            ("**/**", "dir/file", true),
            ("**/**", "dir/file/", true),
            ("dir/**", "dir/file", true),
            ("dir/**", "dir/file/", true),
            ("dir/**", "dir/dir2/file", true),
            ("dir/**", "dir/dir2/file/", true),
            ("**/dir", "dir", true),
            ("**/dir", "dir/file", true),
            ("**/dir2/*", "dir/dir2/file", true),
            ("**/dir2/*", "dir/dir2/file/", true),
            ("**/dir2/**", "dir/dir2/dir3/file", true),
            ("**/dir2/**", "dir/dir2/dir3/file/", true),
            ("**file", "file", true),
            ("**file", "dir/file", true),
            ("**/file", "dir/file", true),
            ("**file", "dir/dir/file", true),
            ("**/file", "dir/dir/file", true),
            ("**/file*", "dir/dir/file", true),
            ("**/file*", "dir/dir/file.txt", true),
            ("**/file*txt", "dir/dir/file.txt", true),
            ("**/file*.txt", "dir/dir/file.txt", true),
            ("**/file*.txt*", "dir/dir/file.txt", true),
            ("**/**/*.txt", "dir/dir/file.txt", true),
            ("**/**/*.txt2", "dir/dir/file.txt", false),
            ("**/*.txt", "file.txt", true),
            ("**/**/*.txt", "file.txt", true),
            ("a**/*.txt", "a/file.txt", true),
            ("a**/*.txt", "a/dir/file.txt", true),
            ("a**/*.txt", "a/dir/dir/file.txt", true),
            ("a/*.txt", "a/dir/file.txt", false),
            ("a/*.txt", "a/file.txt", true),
            ("a/*.txt**", "a/file.txt", true),
            ("a[b-d]e", "ae", false),
            ("a[b-d]e", "ace", true),
            ("a[b-d]e", "aae", false),
            ("a[^b-d]e", "aze", true),
            (".*", ".foo", true),
            (".*", "foo", false),
            ("abc.def", "abcdef", false),
            ("abc.def", "abc.def", true),
            ("abc.def", "abcZdef", false),
            ("abc?def", "abcZdef", true),
            ("abc?def", "abcdef", false),
            ("a\\\\", "a\\", true),
            ("**/foo/bar", "foo/bar", true),
            ("**/foo/bar", "dir/foo/bar", true),
            ("**/foo/bar", "dir/dir2/foo/bar", true),
            ("abc/**", "abc", false),
            ("abc/**", "abc/def", true),
            ("abc/**", "abc/def/ghi", true),
            ("**/.foo", ".foo", true),
            ("**/.foo", "bar.foo", false),
            ("a(b)c/def", "a(b)c/def", true),
            ("a(b)c/def", "a(b)c/xyz", false),
            ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
            (
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                true,
            ),
            (
                "dist/*.whl",
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                true,
            ),
        ];
        for (pattern, path, want) in cases {
            let m = pm(&[pattern]);
            assert_eq!(m.matches(path), *want, "pattern {pattern:?} path {path:?}");
        }
    }

    /// The .dockerignore examples of Docker's documentation.
    #[test]
    fn docs_examples() {
        let m = PatternMatcher::parse(".dockerignore", "# comment\n*/temp*\n*/*/temp*\ntemp?\n")
            .unwrap();
        assert!(m.matches("somedir/temporary.txt"));
        assert!(m.matches("somedir/temp"));
        assert!(m.matches("somedir/subdir/temporary.txt"));
        assert!(m.matches("tempa"));
        assert!(m.matches("tempb"));
        assert!(!m.matches("temp"));
        assert!(!m.matches("temporary.txt"));

        let m = PatternMatcher::parse(".dockerignore", "*.md\n!README.md\n").unwrap();
        assert!(m.matches("CHANGES.md"));
        assert!(!m.matches("README.md"));

        // Last match wins: README-secret.md stays out.
        let m = PatternMatcher::parse(".dockerignore", "*.md\n!README*.md\nREADME-secret.md\n")
            .unwrap();
        assert!(m.matches("CHANGES.md"));
        assert!(!m.matches("README.md"));
        assert!(!m.matches("README-public.md"));
        assert!(m.matches("README-secret.md"));

        let m = PatternMatcher::parse(".dockerignore", "*.md\nREADME-secret.md\n!README*.md\n")
            .unwrap();
        assert!(!m.matches("README-secret.md"));

        let m = PatternMatcher::parse(".dockerignore", "**/*.go\n").unwrap();
        assert!(m.matches("main.go"));
        assert!(m.matches("cmd/app/main.go"));

        // `/` and `./` prefixes are dropped; `..` is cleaned away.
        let m = PatternMatcher::parse(".dockerignore", "/build\n./dist\nfoo/../secret\n").unwrap();
        assert!(m.matches("build"));
        assert!(m.matches("build/out.o"));
        assert!(m.matches("dist/app"));
        assert!(m.matches("secret"));
    }

    #[test]
    fn bad_patterns_name_the_line() {
        let e = PatternMatcher::parse(".dockerignore", "ok\n[abc\n").unwrap_err();
        assert_eq!(e.line(), Some(2));
        assert!(
            e.to_string()
                .starts_with(".dockerignore:2: invalid pattern \"[abc\""),
            "{e}"
        );
        assert!(validate_glob("a[").is_err());
        assert!(validate_glob("a[]").is_err());
        assert!(validate_glob("a[a-]").is_err());
        assert!(validate_glob("a\\").is_err());
        assert!(validate_glob("a[!x]b").is_ok());
        assert!(validate_glob("src/*.py").is_ok());
    }

    #[test]
    fn walking_rule() {
        let m = pm(&["docs", "!docs/keep.md"]);
        assert!(m.matches("docs"));
        assert!(m.matches("docs/other.md"));
        assert!(!m.matches("docs/keep.md"));
        assert!(m.may_include_below("docs"));
        assert!(!m.may_include_below("src"));
        let m = pm(&["vendor", "!**/LICENSE"]);
        assert!(m.may_include_below("vendor"));
        assert!(!m.matches("vendor/x/LICENSE"));
    }
}
