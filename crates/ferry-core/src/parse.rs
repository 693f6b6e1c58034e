//! Reading manifests: multi-document YAML and JSON, `kind: List`, with errors that
//! name the file, the line and the document, and limits that keep a hostile file
//! from exhausting memory.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::object::{Object, Source};

/// Bounds on what one file (and one render) may make the parser do.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest file accepted, in bytes. Renderers compare a file's size on disk with
    /// this before reading it, so a huge file costs no memory to refuse.
    pub max_bytes: usize,
    /// Most bytes one render may read in all: every manifest file together, or a
    /// tool's whole output. Many files each under `max_bytes` stop here.
    pub max_render_bytes: usize,
    /// Deepest nesting of mappings and sequences.
    pub max_depth: usize,
    /// Most documents in one file.
    pub max_documents: usize,
}

/// Largest manifest file read, in bytes (16 MiB).
pub const MAX_FILE_BYTES: usize = 16 << 20;

/// Most bytes of manifests one render reads in all, in bytes (64 MiB).
pub const MAX_RENDER_BYTES: usize = 64 << 20;

impl Default for Limits {
    fn default() -> Self {
        Self {
            // No object may be over 1.5 MiB (etcd's request limit, which the store
            // enforces too), so a file over 16 MiB is a generated dump or an attack;
            // parsing YAML costs several times its size in memory.
            max_bytes: MAX_FILE_BYTES,
            max_render_bytes: MAX_RENDER_BYTES,
            max_depth: 100,
            max_documents: 100_000,
        }
    }
}

/// Parses every object in `text`, read from `file`, with the default [`Limits`].
pub fn parse_str(text: &str, file: &str) -> Result<Vec<Object>> {
    parse_str_with(text, file, &Limits::default())
}

/// Parses every object in `text`: YAML (multi-document) or JSON (one or more values),
/// expanding `kind: List` and skipping empty documents.
pub fn parse_str_with(text: &str, file: &str, limits: &Limits) -> Result<Vec<Object>> {
    if text.len() > limits.max_bytes {
        return Err(Error::TooLarge {
            file: file.to_string(),
            size: text.len(),
            limit: limits.max_bytes,
        });
    }
    let file: Arc<str> = Arc::from(file);
    let mut out = Vec::new();
    if looks_like_json(text) {
        parse_json(text, &file, limits, &mut out)?;
    } else {
        for (doc, (line, body)) in split_documents(text).enumerate() {
            if doc >= limits.max_documents {
                return Err(Error::Invalid {
                    at: Some(Box::new(Source {
                        file: file.clone(),
                        line,
                        doc,
                    })),
                    message: format!("more than {} documents in one file", limits.max_documents),
                });
            }
            let value = parse_yaml_doc(body, &file, line, doc, limits)?;
            let source = Source {
                file: file.clone(),
                line,
                doc,
            };
            push_value(value, source, &mut out)?;
        }
    }
    Ok(out)
}

fn looks_like_json(text: &str) -> bool {
    let t = text.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    t.starts_with('{') || t.starts_with('[')
}

fn parse_json(text: &str, file: &Arc<str>, limits: &Limits, out: &mut Vec<Object>) -> Result<()> {
    // serde_json stops at 128 levels of nesting on its own; it never overflows the stack.
    let text = text.trim_start_matches('\u{feff}');
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let mut doc = 0;
    loop {
        let offset = stream.byte_offset();
        let next = stream.next();
        let Some(next) = next else { break };
        let line = line_of_offset(text, offset);
        let value = next.map_err(|e| Error::Syntax {
            file: file.to_string(),
            line: e.line(),
            column: e.column(),
            doc,
            message: strip_position(&e.to_string()),
        })?;
        if depth(&value) > limits.max_depth {
            return Err(too_deep(file, line, doc, limits));
        }
        let source = Source {
            file: file.clone(),
            line,
            doc,
        };
        push_value(value, source, out)?;
        doc += 1;
        if doc > limits.max_documents {
            return Err(Error::Invalid {
                at: None,
                message: format!("{file}: more than {} documents", limits.max_documents),
            });
        }
    }
    Ok(())
}

fn line_of_offset(text: &str, offset: usize) -> usize {
    // The value starts after any whitespace that follows `offset`.
    let rest = &text[offset.min(text.len())..];
    let skipped = rest.len() - rest.trim_start().len();
    text.as_bytes()[..(offset + skipped).min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn too_deep(file: &str, line: usize, doc: usize, limits: &Limits) -> Error {
    Error::Syntax {
        file: file.to_string(),
        line,
        column: 1,
        doc,
        message: format!("nesting deeper than {} levels", limits.max_depth),
    }
}

fn depth(value: &Value) -> usize {
    match value {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Splits a YAML stream at `---` / `...` markers. Yields each document's first line
/// (1-based) and its text, with the marker itself blanked so columns stay true.
fn split_documents(text: &str) -> impl Iterator<Item = (usize, String)> + '_ {
    let mut docs: Vec<(usize, String)> = Vec::new();
    let mut cur = String::new();
    let mut start = 1;
    let mut in_doc = false;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let lineno = i + 1;
        let bare = line.trim_end_matches(['\n', '\r']);
        let is_start = bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t");
        let is_end = bare == "..." || bare.starts_with("... ");
        if is_start {
            if in_doc || !cur.trim().is_empty() {
                docs.push((start, std::mem::take(&mut cur)));
            }
            cur.clear();
            start = lineno;
            in_doc = true;
            // Keep content after the marker (`--- {a: 1}`), blanking the marker.
            cur.push_str("   ");
            cur.push_str(&line[3..]);
        } else if is_end {
            docs.push((start, std::mem::take(&mut cur)));
            in_doc = false;
            start = lineno + 1;
        } else {
            if !in_doc && cur.is_empty() {
                start = lineno;
                in_doc = true;
            }
            cur.push_str(line);
        }
    }
    if in_doc || !cur.trim().is_empty() {
        docs.push((start, cur));
    }
    docs.into_iter()
}

fn parse_yaml_doc(
    body: String,
    file: &str,
    start_line: usize,
    doc: usize,
    limits: &Limits,
) -> Result<Value> {
    if is_blank_yaml(&body) {
        return Ok(Value::Null);
    }
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = limits.max_depth;
    budget.max_documents = 1;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    let de_result: std::result::Result<Option<Value>, _> = (|| {
        let v: Option<Value> = serde_saphyr::from_str_with_options(&body, options)?;
        Ok::<_, serde_saphyr::Error>(v)
    })();
    match de_result {
        Ok(v) => Ok(v.unwrap_or(Value::Null)),
        Err(e) => {
            let (line, column) = e
                .location()
                .map(|l| (l.line() as usize, l.column() as usize))
                .unwrap_or((1, 1));
            let line = start_line + line.max(1) - 1;
            Err(Error::Syntax {
                file: file.to_string(),
                line,
                column,
                doc,
                message: first_line(&e.to_string()),
            })
        }
    }
}

fn first_line(msg: &str) -> String {
    let mut line = msg.lines().next().unwrap_or(msg).trim();
    // saphyr prefixes "error: line L column C: "; ours is in the message's own prefix.
    line = line.strip_prefix("error: ").unwrap_or(line);
    if line.starts_with("line ")
        && let Some(i) = line.find(": ")
    {
        line = &line[i + 2..];
    }
    // saphyr appends its own "at line X column Y"; ours is in the prefix.
    match line.find(" at line ") {
        Some(i) => line[..i].to_string(),
        None => line.to_string(),
    }
}

fn is_blank_yaml(body: &str) -> bool {
    body.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#')
    })
}

/// Adds a parsed document: nothing for an empty one, its items for a `List`.
fn push_value(value: Value, source: Source, out: &mut Vec<Object>) -> Result<()> {
    match value {
        Value::Null => Ok(()),
        Value::Object(ref map)
            if map.get("kind").and_then(Value::as_str).is_some_and(|k| {
                k == "List" || k.ends_with("List") && map.contains_key("items")
            }) && map
                .get("items")
                .is_some_and(|i| i.is_array() || i.is_null()) =>
        {
            let Value::Object(mut map) = value else {
                unreachable!()
            };
            let items = match map.remove("items") {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            };
            for item in items {
                if item.is_null() {
                    continue;
                }
                out.push(Object::with_source(item, Some(source.clone()))?);
            }
            Ok(())
        }
        other => {
            out.push(Object::with_source(other, Some(source))?);
            Ok(())
        }
    }
}

/// Parses documents and returns the raw JSON values (no object checks), for files that
/// hold something other than Kubernetes objects, such as Argo CD specs read as data.
pub fn parse_values(text: &str, file: &str) -> Result<Vec<(Source, Value)>> {
    let limits = Limits::default();
    let file_arc: Arc<str> = Arc::from(file);
    let mut out = Vec::new();
    for (doc, (line, body)) in split_documents(text).enumerate() {
        let value = parse_yaml_doc(body, file, line, doc, &limits)?;
        if !value.is_null() {
            out.push((
                Source {
                    file: file_arc.clone(),
                    line,
                    doc,
                },
                value,
            ));
        }
    }
    Ok(out)
}

/// Deserialises a typed value from YAML text, naming `file` in errors.
pub fn from_yaml<T: for<'de> Deserialize<'de>>(text: &str, file: &str) -> Result<T> {
    serde_saphyr::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line() as usize, l.column() as usize))
            .unwrap_or((1, 1));
        Error::Syntax {
            file: file.to_string(),
            line,
            column,
            doc: 0,
            message: first_line(&e.to_string()),
        }
    })
}

/// Serialises objects as multi-document YAML, `---` between documents.
pub fn to_yaml_stream<'a>(objects: impl IntoIterator<Item = &'a Value>) -> String {
    let mut out = String::new();
    for (i, v) in objects.into_iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&to_yaml(v));
    }
    out
}

/// Serialises one value as YAML.
pub fn to_yaml(value: &Value) -> String {
    let mut s =
        serde_saphyr::to_string(value).unwrap_or_else(|e| format!("# unserialisable: {e}\n"));
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_yaml_with_empty_docs_and_lines() {
        let text = "---\n# comment only\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n";
        let objs = parse_str(text, "m.yaml").unwrap();
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[0].name(), "a");
        assert_eq!(objs[0].source().unwrap().line, 3);
        assert_eq!(objs[0].source().unwrap().doc, 1);
        assert_eq!(objs[1].name(), "b");
        assert_eq!(objs[1].source().unwrap().line, 10);
        assert_eq!(objs[1].source().unwrap().doc, 3);
    }

    #[test]
    fn syntax_error_names_file_line_and_document() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [b\n";
        let err = parse_str(text, "bad.yaml").unwrap_err().to_string();
        assert!(err.starts_with("bad.yaml:"), "{err}");
        assert!(err.contains("document 1"), "{err}");
        let line: usize = err.split(':').nth(1).unwrap().parse().unwrap();
        assert!((9..=10).contains(&line), "{err}");
    }

    #[test]
    fn kind_list_is_expanded() {
        let text = r#"{"apiVersion":"v1","kind":"List","items":[
          {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}},
          {"apiVersion":"v1","kind":"Secret","metadata":{"name":"y"}}]}"#;
        let objs = parse_str(text, "l.json").unwrap();
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[1].kind(), "Secret");
    }

    #[test]
    fn json_stream_and_error_line() {
        let text = "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"x\"}}\n\n{\"apiVersion\": \"v1\",\n \"kind\": }\n";
        let err = parse_str(text, "s.json").unwrap_err().to_string();
        assert!(err.starts_with("s.json:4:"), "{err}");
        assert!(err.contains("document 1"), "{err}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = format!("a: {}1{}\n", "[".repeat(500), "]".repeat(500));
        assert!(parse_str(&deep, "deep.yaml").is_err());
        let deep_json = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
        assert!(parse_str(&deep_json, "deep.json").is_err());
    }

    #[test]
    fn oversized_input_is_refused() {
        let limits = Limits {
            max_bytes: 10,
            ..Limits::default()
        };
        let err = parse_str_with("apiVersion: v1\n", "big.yaml", &limits).unwrap_err();
        assert!(matches!(err, Error::TooLarge { .. }));
    }

    #[test]
    fn non_object_document_is_an_error_with_location() {
        let err = parse_str("- a\n- b\n", "seq.yaml").unwrap_err().to_string();
        assert!(err.contains("seq.yaml:1"), "{err}");
    }

    #[test]
    fn yaml_round_trip() {
        let objs = parse_str(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  n: \"1\"\n  b: \"true\"\n",
            "x.yaml",
        )
        .unwrap();
        let y = to_yaml(objs[0].value());
        let back = parse_str(&y, "y.yaml").unwrap();
        assert_eq!(back[0].value(), objs[0].value());
    }
}
