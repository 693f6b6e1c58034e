//! The subset of jq that Argo CD users write in `jqPathExpressions`: paths (`.a.b`,
//! `.["k.with.dots"]`, `.a[]`, `.a[0]`), pipes, and `select(...)` with comparisons,
//! `and`/`or`/`not` and a few string tests. An expression is turned into the concrete
//! paths it selects in one object, which the caller then deletes.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value;

use crate::error::{Error, Result};

/// One step of a concrete path into a JSON value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Seg {
    /// A map key.
    Key(String),
    /// A list index.
    Index(usize),
}

/// A compiled jq path expression.
#[derive(Clone, Debug)]
pub(crate) struct JqPath {
    steps: Vec<Step>,
}

#[derive(Clone, Debug)]
enum Step {
    Field(String),
    Index(i64),
    Iterate,
    Select(Cond),
}

#[derive(Clone, Debug)]
enum Cond {
    Or(Box<Cond>, Box<Cond>),
    And(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
    Truthy(Operand),
    Cmp(Operand, CmpOp, Operand),
}

#[derive(Clone, Copy, Debug)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Debug)]
enum Operand {
    Literal(Value),
    Path(Vec<Step>, Option<Func>),
}

#[derive(Clone, Debug)]
enum Func {
    StartsWith(String),
    EndsWith(String),
    Contains(String),
    Has(String),
}

const WHAT: &str = "jqPathExpressions entry";
const SUPPORTED: &str = "supported: paths (.a.b, .[\"k\"], .a[], .a[0]), `|`, select(...) with ==, !=, <, <=, >, >=, and, or, `| not`, startswith, endswith, contains, has";
static NULL: Value = Value::Null;

impl JqPath {
    /// Parses `expr`; anything outside the subset is an [`Error::Expression`].
    pub(crate) fn parse(expr: &str) -> Result<Self> {
        let mut p = Parser { src: expr, pos: 0 };
        p.ws();
        if p.at_end() {
            return Err(p.err("the expression is empty"));
        }
        let steps = p.pipeline()?;
        p.ws();
        if !p.at_end() {
            return Err(p.unexpected());
        }
        if steps.iter().all(|s| matches!(s, Step::Select(_))) {
            return Err(p.err_at(
                0,
                "the expression selects the whole object; name a field, such as `.spec.replicas`",
            ));
        }
        Ok(Self { steps })
    }

    /// The concrete paths this expression selects in `root` (only paths that exist).
    pub(crate) fn paths(&self, root: &Value) -> Vec<Vec<Seg>> {
        let mut out = Vec::new();
        let mut cur = Vec::new();
        eval_paths(&self.steps, root, &mut cur, &mut out);
        out
    }
}

/// Deletes every path (deepest and last first, so earlier indexes stay valid).
pub(crate) fn delete_paths(root: &mut Value, mut paths: Vec<Vec<Seg>>) {
    paths.sort();
    paths.dedup();
    for path in paths.iter().rev() {
        let Some((last, parent)) = path.split_last() else {
            continue;
        };
        let mut cur = Some(&mut *root);
        for seg in parent {
            cur = match (seg, cur) {
                (Seg::Key(k), Some(Value::Object(m))) => m.get_mut(k),
                (Seg::Index(i), Some(Value::Array(a))) => a.get_mut(*i),
                _ => None,
            };
        }
        match (last, cur) {
            (Seg::Key(k), Some(Value::Object(m))) => {
                m.shift_remove(k);
            }
            (Seg::Index(i), Some(Value::Array(a))) if *i < a.len() => {
                a.remove(*i);
            }
            _ => {}
        }
    }
}

fn eval_paths(steps: &[Step], v: &Value, cur: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    let Some((step, rest)) = steps.split_first() else {
        out.push(cur.clone());
        return;
    };
    match step {
        Step::Field(k) => {
            if let Some(child) = v.as_object().and_then(|m| m.get(k)) {
                cur.push(Seg::Key(k.clone()));
                eval_paths(rest, child, cur, out);
                cur.pop();
            }
        }
        Step::Index(i) => {
            if let Some(a) = v.as_array()
                && let Some(idx) = resolve_index(*i, a.len())
            {
                cur.push(Seg::Index(idx));
                eval_paths(rest, &a[idx], cur, out);
                cur.pop();
            }
        }
        Step::Iterate => match v {
            Value::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    cur.push(Seg::Index(i));
                    eval_paths(rest, child, cur, out);
                    cur.pop();
                }
            }
            Value::Object(m) => {
                for (k, child) in m {
                    cur.push(Seg::Key(k.clone()));
                    eval_paths(rest, child, cur, out);
                    cur.pop();
                }
            }
            _ => {}
        },
        Step::Select(c) => {
            if holds(c, v) {
                eval_paths(rest, v, cur, out);
            }
        }
    }
}

fn resolve_index(i: i64, len: usize) -> Option<usize> {
    let idx = if i < 0 {
        len.checked_sub(usize::try_from(i.unsigned_abs()).ok()?)?
    } else {
        usize::try_from(i).ok()?
    };
    (idx < len).then_some(idx)
}

/// Values of a relative path, as jq yields them: a missing field is `null`.
fn eval_values<'a>(steps: &[Step], v: &'a Value, out: &mut Vec<&'a Value>) {
    let Some((step, rest)) = steps.split_first() else {
        out.push(v);
        return;
    };
    match step {
        Step::Field(k) => match v {
            Value::Object(m) => eval_values(rest, m.get(k).unwrap_or(&NULL), out),
            Value::Null => eval_values(rest, &NULL, out),
            _ => {}
        },
        Step::Index(i) => match v {
            Value::Array(a) => {
                let child = resolve_index(*i, a.len()).map_or(&NULL, |idx| &a[idx]);
                eval_values(rest, child, out);
            }
            Value::Null => eval_values(rest, &NULL, out),
            _ => {}
        },
        Step::Iterate => match v {
            Value::Array(a) => a.iter().for_each(|c| eval_values(rest, c, out)),
            Value::Object(m) => m.values().for_each(|c| eval_values(rest, c, out)),
            _ => {}
        },
        Step::Select(c) => {
            if holds(c, v) {
                eval_values(rest, v, out);
            }
        }
    }
}

fn operand_values<'a>(op: &'a Operand, v: &'a Value) -> Vec<Cow<'a, Value>> {
    match op {
        Operand::Literal(l) => vec![Cow::Borrowed(l)],
        Operand::Path(steps, func) => {
            let mut vals = Vec::new();
            eval_values(steps, v, &mut vals);
            match func {
                None => vals.into_iter().map(Cow::Borrowed).collect(),
                Some(f) => vals
                    .into_iter()
                    .filter_map(|x| f.apply(x))
                    .map(|b| Cow::Owned(Value::Bool(b)))
                    .collect(),
            }
        }
    }
}

impl Func {
    fn apply(&self, v: &Value) -> Option<bool> {
        match (self, v) {
            (Func::StartsWith(s), Value::String(x)) => Some(x.starts_with(s.as_str())),
            (Func::EndsWith(s), Value::String(x)) => Some(x.ends_with(s.as_str())),
            (Func::Contains(s), Value::String(x)) => Some(x.contains(s.as_str())),
            (Func::Has(s), Value::Object(m)) => Some(m.contains_key(s)),
            _ => None,
        }
    }
}

fn truthy(v: &Value) -> bool {
    !matches!(v, Value::Null | Value::Bool(false))
}

fn holds(c: &Cond, v: &Value) -> bool {
    match c {
        Cond::Or(a, b) => holds(a, v) || holds(b, v),
        Cond::And(a, b) => holds(a, v) && holds(b, v),
        Cond::Not(a) => !holds(a, v),
        Cond::Truthy(op) => operand_values(op, v).iter().any(|x| truthy(x)),
        Cond::Cmp(a, op, b) => {
            let left = operand_values(a, v);
            let right = operand_values(b, v);
            left.iter()
                .any(|l| right.iter().any(|r| compare(l, *op, r)))
        }
    }
}

fn compare(l: &Value, op: CmpOp, r: &Value) -> bool {
    let ord = match (l, r) {
        (Value::Number(a), Value::Number(b)) => a
            .as_f64()
            .zip(b.as_f64())
            .and_then(|(a, b)| a.partial_cmp(&b)),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        _ => {
            return match op {
                CmpOp::Eq => l == r,
                CmpOp::Ne => l != r,
                _ => false,
            };
        }
    };
    match (op, ord) {
        (CmpOp::Eq, o) => o == Some(Ordering::Equal),
        (CmpOp::Ne, o) => o != Some(Ordering::Equal),
        (_, None) => false,
        (CmpOp::Lt, Some(o)) => o == Ordering::Less,
        (CmpOp::Le, Some(o)) => o != Ordering::Greater,
        (CmpOp::Gt, Some(o)) => o == Ordering::Greater,
        (CmpOp::Ge, Some(o)) => o != Ordering::Less,
    }
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn err_at(&self, pos: usize, message: impl Into<String>) -> Error {
        let message = message.into();
        Error::Expression {
            what: WHAT,
            expr: self.src.to_string(),
            message: format!("at offset {pos}: {message}"),
        }
    }

    fn err(&self, message: impl Into<String>) -> Error {
        self.err_at(self.pos, message)
    }

    fn unexpected(&self) -> Error {
        let rest = &self.src[self.pos..];
        let shown: String = rest.chars().take(12).collect();
        let hint = if rest.starts_with('-') || rest.starts_with('/') {
            "; quote keys that are not identifiers, e.g. .metadata.annotations[\"a/b\"] or .[\"my-key\"]"
        } else if rest.starts_with("..") {
            "; recursive descent `..` is not supported"
        } else if rest.starts_with(',') {
            "; `,` is not supported: write one expression per entry"
        } else {
            ""
        };
        self.err(format!("unexpected `{shown}`{hint} ({SUPPORTED})"))
    }

    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    fn peek_at(&self, off: usize) -> Option<u8> {
        self.src.as_bytes().get(self.pos + off).copied()
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, b: u8) -> Result<()> {
        self.ws();
        if self.eat(b) {
            Ok(())
        } else if self.at_end() {
            Err(self.err(format!("expected `{}` but the expression ends", b as char)))
        } else {
            Err(self.err(format!("expected `{}`", b as char)))
        }
    }

    fn ident_here(&self) -> Option<&str> {
        let bytes = self.src.as_bytes();
        let start = self.pos;
        let first = *bytes.get(start)?;
        if !(first.is_ascii_alphabetic() || first == b'_') {
            return None;
        }
        let mut end = start + 1;
        while bytes
            .get(end)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            end += 1;
        }
        Some(&self.src[start..end])
    }

    fn ident(&mut self) -> Option<String> {
        let id = self.ident_here()?.to_string();
        self.pos += id.len();
        Some(id)
    }

    /// `'|'` followed (after blanks) by one of `words`, without consuming anything.
    fn pipe_then(&self, words: &[&str]) -> bool {
        let mut p = Parser {
            src: self.src,
            pos: self.pos,
        };
        p.ws();
        if !p.eat(b'|') {
            return false;
        }
        p.ws();
        p.ident_here().is_some_and(|id| words.contains(&id))
    }

    fn pipeline(&mut self) -> Result<Vec<Step>> {
        let mut steps = Vec::new();
        loop {
            self.ws();
            if self.ident_here() == Some("select") {
                self.pos += "select".len();
                self.expect(b'(')?;
                let cond = self.cond()?;
                self.expect(b')')?;
                steps.push(Step::Select(cond));
            } else if self.peek() == Some(b'.') {
                self.path(&mut steps)?;
            } else if self.at_end() {
                return Err(self.err("expected a path or select(...) after `|`"));
            } else if let Some(id) = self.ident_here() {
                return Err(self.err(format!("`{id}` is not supported here ({SUPPORTED})")));
            } else {
                return Err(self.unexpected());
            }
            self.ws();
            if !self.eat(b'|') {
                return Ok(steps);
            }
        }
    }

    fn path(&mut self, steps: &mut Vec<Step>) -> Result<()> {
        // The leading `.`: a bare `.` is identity.
        self.pos += 1;
        match self.peek() {
            Some(b'.') => return Err(self.err("recursive descent `..` is not supported")),
            Some(b'[') => self.bracket(steps)?,
            Some(b'"') => steps.push(Step::Field(self.string()?)),
            _ => {
                if let Some(id) = self.ident() {
                    steps.push(Step::Field(id));
                }
            }
        }
        loop {
            match self.peek() {
                Some(b'.') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(b'[') => self.bracket(steps)?,
                        Some(b'"') => steps.push(Step::Field(self.string()?)),
                        _ => match self.ident() {
                            Some(id) => steps.push(Step::Field(id)),
                            None => return Err(self.err("expected a field name after `.`")),
                        },
                    }
                }
                Some(b'[') => self.bracket(steps)?,
                Some(b'?') => self.pos += 1,
                _ => return Ok(()),
            }
        }
    }

    fn bracket(&mut self, steps: &mut Vec<Step>) -> Result<()> {
        self.pos += 1; // `[`
        self.ws();
        match self.peek() {
            Some(b']') => {
                self.pos += 1;
                steps.push(Step::Iterate);
                return Ok(());
            }
            Some(b'"') => {
                let key = self.string()?;
                steps.push(Step::Field(key));
            }
            Some(b) if b.is_ascii_digit() || b == b'-' => {
                let start = self.pos;
                self.pos += 1;
                while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                    self.pos += 1;
                }
                let text = &self.src[start..self.pos];
                let i: i64 = text
                    .parse()
                    .map_err(|_| self.err_at(start, format!("`{text}` is not an index")))?;
                steps.push(Step::Index(i));
            }
            _ => return Err(self.err("expected `]`, a quoted key or an index inside `[...]`")),
        }
        self.ws();
        if self.peek() == Some(b':') {
            return Err(self.err("slices (`[a:b]`) are not supported"));
        }
        self.expect(b']')
    }

    fn string(&mut self) -> Result<String> {
        let start = self.pos;
        let bytes = self.src.as_bytes();
        let mut i = start + 1;
        loop {
            match bytes.get(i) {
                None => return Err(self.err_at(start, "unterminated string")),
                Some(b'\\') => i += 2,
                Some(b'"') => break,
                Some(_) => i += 1,
            }
        }
        let lit = &self.src[start..=i];
        let s: String = serde_json::from_str(lit)
            .map_err(|e| self.err_at(start, format!("bad string literal: {e}")))?;
        self.pos = i + 1;
        Ok(s)
    }

    fn cond(&mut self) -> Result<Cond> {
        let mut left = self.and()?;
        loop {
            self.ws();
            if self.ident_here() == Some("or") {
                self.pos += 2;
                let right = self.and()?;
                left = Cond::Or(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn and(&mut self) -> Result<Cond> {
        let mut left = self.unary()?;
        loop {
            self.ws();
            if self.ident_here() == Some("and") {
                self.pos += 3;
                let right = self.unary()?;
                left = Cond::And(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn unary(&mut self) -> Result<Cond> {
        let mut c = self.primary()?;
        while self.pipe_then(&["not"]) {
            self.ws();
            self.pos += 1; // `|`
            self.ws();
            self.pos += 3; // `not`
            c = Cond::Not(Box::new(c));
        }
        Ok(c)
    }

    fn primary(&mut self) -> Result<Cond> {
        self.ws();
        if self.eat(b'(') {
            let c = self.cond()?;
            self.expect(b')')?;
            return Ok(c);
        }
        let left = self.operand()?;
        self.ws();
        let rest = &self.src[self.pos..];
        let op = [
            ("==", CmpOp::Eq),
            ("!=", CmpOp::Ne),
            ("<=", CmpOp::Le),
            (">=", CmpOp::Ge),
            ("<", CmpOp::Lt),
            (">", CmpOp::Gt),
        ]
        .into_iter()
        .find(|(s, _)| rest.starts_with(s));
        match op {
            Some((s, op)) => {
                self.pos += s.len();
                let right = self.operand()?;
                Ok(Cond::Cmp(left, op, right))
            }
            None if rest.starts_with('=') => Err(self.err("use `==` to compare")),
            None => Ok(Cond::Truthy(left)),
        }
    }

    fn operand(&mut self) -> Result<Operand> {
        self.ws();
        match self.peek() {
            Some(b'"') => Ok(Operand::Literal(Value::String(self.string()?))),
            Some(b)
                if b.is_ascii_digit()
                    || (b == b'-' && self.peek_at(1).is_some_and(|c| c.is_ascii_digit())) =>
            {
                let start = self.pos;
                self.pos += 1;
                while self.peek().is_some_and(|c| {
                    c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-')
                }) {
                    self.pos += 1;
                }
                let text = &self.src[start..self.pos];
                let n: serde_json::Number = text
                    .parse()
                    .map_err(|_| self.err_at(start, format!("`{text}` is not a number")))?;
                Ok(Operand::Literal(Value::Number(n)))
            }
            Some(b'.') => {
                let mut steps = Vec::new();
                self.path(&mut steps)?;
                let func = if self.pipe_then(&["startswith", "endswith", "contains", "has"]) {
                    self.ws();
                    self.pos += 1;
                    self.ws();
                    Some(self.func()?)
                } else {
                    None
                };
                Ok(Operand::Path(steps, func))
            }
            _ => match self.ident_here() {
                Some("true") => {
                    self.pos += 4;
                    Ok(Operand::Literal(Value::Bool(true)))
                }
                Some("false") => {
                    self.pos += 5;
                    Ok(Operand::Literal(Value::Bool(false)))
                }
                Some("null") => {
                    self.pos += 4;
                    Ok(Operand::Literal(Value::Null))
                }
                Some("startswith" | "endswith" | "contains" | "has") => {
                    Ok(Operand::Path(Vec::new(), Some(self.func()?)))
                }
                Some(id) => Err(self.err(format!("`{id}` is not supported ({SUPPORTED})"))),
                None if self.at_end() => Err(self.err("expected a value but the expression ends")),
                None => Err(self.unexpected()),
            },
        }
    }

    fn func(&mut self) -> Result<Func> {
        let start = self.pos;
        let name = self.ident().unwrap_or_default();
        self.expect(b'(')?;
        self.ws();
        if self.peek() != Some(b'"') {
            return Err(self.err(format!("`{name}` takes one string literal")));
        }
        let arg = self.string()?;
        self.expect(b')')?;
        Ok(match name.as_str() {
            "startswith" => Func::StartsWith(arg),
            "endswith" => Func::EndsWith(arg),
            "contains" => Func::Contains(arg),
            "has" => Func::Has(arg),
            _ => return Err(self.err_at(start, format!("`{name}` is not supported ({SUPPORTED})"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn del(expr: &str, mut v: Value) -> Value {
        let p = JqPath::parse(expr).unwrap_or_else(|e| panic!("{e}"));
        let paths = p.paths(&v);
        delete_paths(&mut v, paths);
        v
    }

    fn pod() -> Value {
        json!({"spec": {"containers": [
            {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}]},
            {"name": "sidecar", "image": "proxy:2"},
            {"name": "istio-proxy", "image": "istio:3"}
        ]}, "metadata": {"annotations": {"a/b": "x", "k.with.dots": "y", "keep": "z"}}})
    }

    #[test]
    fn plain_and_quoted_fields() {
        assert_eq!(del(".spec", json!({"spec": 1, "x": 2})), json!({"x": 2}));
        assert_eq!(
            del(".a.b", json!({"a": {"b": 1, "c": 2}})),
            json!({"a": {"c": 2}})
        );
        let v = del(".metadata.annotations[\"a/b\"]", pod());
        assert_eq!(
            v["metadata"]["annotations"],
            json!({"k.with.dots": "y", "keep": "z"})
        );
        let v = del(".metadata.annotations.[\"k.with.dots\"]", pod());
        assert_eq!(
            v["metadata"]["annotations"],
            json!({"a/b": "x", "keep": "z"})
        );
        let v = del(".[\"metadata\"].annotations.\"keep\"", pod());
        assert_eq!(
            v["metadata"]["annotations"],
            json!({"a/b": "x", "k.with.dots": "y"})
        );
    }

    #[test]
    fn iterate_index_and_select() {
        let v = del(
            ".spec.containers[] | select(.name == \"sidecar\") | .image",
            pod(),
        );
        assert_eq!(v["spec"]["containers"][1], json!({"name": "sidecar"}));
        assert_eq!(v["spec"]["containers"][0]["image"], "app:1");
        let v = del(".spec.containers[0].image", pod());
        assert!(v["spec"]["containers"][0].get("image").is_none());
        let v = del(".spec.containers[-1]", pod());
        assert_eq!(v["spec"]["containers"].as_array().unwrap().len(), 2);
        let v = del(".spec.containers[] | select(.name != \"app\")", pod());
        assert_eq!(
            v["spec"]["containers"],
            json!([{"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}]}])
        );
        let v = del(".spec.containers[].image", pod());
        assert!(
            v["spec"]["containers"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c.get("image").is_none())
        );
        let v = del(
            ".spec.containers[] | select(.name | startswith(\"istio\"))",
            pod(),
        );
        assert_eq!(v["spec"]["containers"].as_array().unwrap().len(), 2);
        let v = del(
            ".spec.containers[] | select(.name == \"app\" or (.image | endswith(\":2\")) ) | .env",
            pod(),
        );
        assert!(v["spec"]["containers"][0].get("env").is_none());
        let v = del(
            ".spec.containers[] | select(has(\"env\") | not) | .image",
            pod(),
        );
        assert_eq!(v["spec"]["containers"][0]["image"], "app:1");
        assert!(v["spec"]["containers"][1].get("image").is_none());
        // A missing field is null, so `!=` selects it.
        let v = del(
            ".spec.containers[] | select(.x != \"y\") | .name",
            json!({"spec": {"containers": [{"name": "a"}]}}),
        );
        assert_eq!(v, json!({"spec": {"containers": [{}]}}));
        let v = del(".items[] | select(. >= 2)", json!({"items": [1, 2, 3]}));
        assert_eq!(v, json!({"items": [1]}));
    }

    #[test]
    fn missing_paths_are_no_ops() {
        assert_eq!(del(".nope.deeper", json!({"a": 1})), json!({"a": 1}));
        assert_eq!(del(".a[5]", json!({"a": [1]})), json!({"a": [1]}));
        assert_eq!(del(".a[]?.b", json!({"a": 3})), json!({"a": 3}));
    }

    #[test]
    fn rejects_what_is_outside_the_subset() {
        for bad in [
            "",
            "spec",
            ".spec.",
            ".metadata.annotations.a-b",
            "..",
            ".a[1:2]",
            ".a[] | select(.name = \"x\")",
            ".a[] | select(.name == \"x\"",
            ".a[] | select(.name | test(\"x\"))",
            ".a, .b",
            "del(.a)",
            "select(.a == 1)",
            ".a[\"unterminated]",
        ] {
            let err = JqPath::parse(bad).err();
            assert!(
                matches!(err, Some(Error::Expression { .. })),
                "{bad:?} should be rejected, got {err:?}"
            );
        }
        let msg = JqPath::parse(".metadata.annotations.a-b")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("[\\\"a/b\\\"]") || msg.contains("quote keys"),
            "{msg}"
        );
    }
}
