//! RFC 6901 JSON pointers, as `ignoreDifferences[].jsonPointers` uses them.

use serde_json::Value;

use crate::error::{Error, Result};

/// A parsed JSON pointer: its unescaped reference tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pointer {
    tokens: Vec<String>,
}

const WHAT: &str = "jsonPointers entry";

impl Pointer {
    /// Parses `/a/b~1c` (`~1` is `/`, `~0` is `~`). The empty pointer (the whole
    /// object) is refused: ignoring every field is never what a user means.
    pub(crate) fn parse(text: &str) -> Result<Self> {
        let err = |message: &str| Error::Expression {
            what: WHAT,
            expr: text.to_string(),
            message: message.to_string(),
        };
        let Some(rest) = text.strip_prefix('/') else {
            return Err(err(if text.is_empty() {
                "the empty pointer means the whole object; name a field, such as `/spec/replicas`"
            } else {
                "a JSON pointer starts with `/`, such as `/spec/replicas`"
            }));
        };
        let mut tokens = Vec::new();
        for raw in rest.split('/') {
            let mut token = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => token.push('~'),
                        Some('1') => token.push('/'),
                        _ => {
                            return Err(err(
                                "`~` must be followed by `0` (for `~`) or `1` (for `/`)",
                            ));
                        }
                    }
                } else {
                    token.push(c);
                }
            }
            tokens.push(token);
        }
        Ok(Self { tokens })
    }

    /// Removes the field or list item the pointer names; a missing path is a no-op.
    pub(crate) fn remove(&self, root: &mut Value) {
        let Some((last, parent)) = self.tokens.split_last() else {
            return;
        };
        let mut cur = root;
        for token in parent {
            let next = match cur {
                Value::Object(m) => m.get_mut(token),
                Value::Array(a) => index(token).and_then(|i| a.get_mut(i)),
                _ => None,
            };
            match next {
                Some(n) => cur = n,
                None => return,
            }
        }
        match cur {
            Value::Object(m) => {
                m.shift_remove(last);
            }
            Value::Array(a) => {
                if let Some(i) = index(last).filter(|i| *i < a.len()) {
                    a.remove(i);
                }
            }
            _ => {}
        }
    }
}

/// An array index token: digits without a leading zero (RFC 6901 §4).
fn index(token: &str) -> Option<usize> {
    if token.is_empty()
        || (token.len() > 1 && token.starts_with('0'))
        || !token.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    token.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rm(p: &str, mut v: Value) -> Value {
        Pointer::parse(p).unwrap().remove(&mut v);
        v
    }

    #[test]
    fn removes_fields_items_and_escaped_keys() {
        assert_eq!(
            rm("/spec/replicas", json!({"spec": {"replicas": 3, "x": 1}})),
            json!({"spec": {"x": 1}})
        );
        assert_eq!(rm("/a/1", json!({"a": [1, 2, 3]})), json!({"a": [1, 3]}));
        assert_eq!(
            rm(
                "/metadata/annotations/a~1b~0c",
                json!({"metadata": {"annotations": {"a/b~c": "1", "d": "2"}}})
            ),
            json!({"metadata": {"annotations": {"d": "2"}}})
        );
        assert_eq!(
            rm(
                "/spec/containers/0/image",
                json!({"spec": {"containers": [{"image": "x", "name": "a"}]}})
            ),
            json!({"spec": {"containers": [{"name": "a"}]}})
        );
    }

    #[test]
    fn missing_paths_are_no_ops() {
        let v = json!({"a": [1], "b": {"c": 1}});
        assert_eq!(rm("/x/y", v.clone()), v);
        assert_eq!(rm("/a/5", v.clone()), v);
        assert_eq!(rm("/a/01", v.clone()), v);
        assert_eq!(rm("/a/-", v.clone()), v);
        assert_eq!(rm("/b/c/d", v.clone()), v);
    }

    #[test]
    fn rejects_malformed_pointers() {
        for bad in ["", "spec/replicas", "/a~2", "/a~"] {
            assert!(
                matches!(Pointer::parse(bad), Err(Error::Expression { .. })),
                "{bad:?}"
            );
        }
    }
}
