//! A forgiving deserializer over a JSON value, for reading user files.
//!
//! serde stops at the first problem; a user fixing a file wants all of them at once.
//! This deserializer feeds the derived `Deserialize` impls of the typed specs from a
//! `serde_json::Value` while tracking the path, and:
//!
//! - on a value of the wrong type records an error at its path and hands the visitor a
//!   neutral value instead (`0`, `""`, `false`, an empty list or mapping), so reading
//!   goes on;
//! - on a struct, passes on only the fields the struct declares and records every other
//!   key as a warning (`not supported` or `unknown field`, see [`super::validate`]).
//!
//! Values typed `serde_json::Value` are read through `deserialize_any` and kept whole,
//! unchecked. The typed structs are all `#[serde(default)]`, so a missing field is never
//! a serde error; required fields are checked afterwards, with better messages.

use std::cell::RefCell;
use std::fmt;

use serde::de::value::{BorrowedStrDeserializer, I64Deserializer};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use serde_json::Value;

use super::{Finding, INT_OR_STRING};

/// Findings collected while reading, and the paths of the values that had the wrong type.
#[derive(Default)]
pub(crate) struct Sink {
    pub findings: Vec<Finding>,
    pub type_errors: Vec<String>,
}

/// An error no recovery could avoid (should not happen with the typed specs).
#[derive(Debug)]
pub(crate) struct DeError(pub String);

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError(msg.to_string())
    }
}

/// Reads `value` as `T`, recording problems in `sink`. `classify(struct, field)` says
/// whether an undeclared field is a known Argo field ferry does not support.
pub(crate) fn read<T: DeserializeOwned>(
    value: &Value,
    sink: &RefCell<Sink>,
    classify: fn(&str, &str) -> bool,
) -> Result<T, DeError> {
    T::deserialize(Walker {
        value,
        path: String::new(),
        ctx: &Ctx { sink, classify },
    })
}

struct Ctx<'s> {
    sink: &'s RefCell<Sink>,
    classify: fn(&str, &str) -> bool,
}

impl Ctx<'_> {
    fn type_error(&self, path: &str, msg: String) {
        let mut sink = self.sink.borrow_mut();
        sink.findings.push(Finding::error(path, msg));
        sink.type_errors.push(path.to_string());
    }

    fn undeclared(&self, owner: &str, path: &str, field: &str) {
        let msg = if (self.classify)(owner, field) {
            "not supported"
        } else {
            "unknown field"
        };
        self.sink
            .borrow_mut()
            .findings
            .push(Finding::warning(path, msg));
    }
}

/// `parent.key`, or `parent["key"]` when the key is not a plain identifier.
pub(crate) fn child(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (parent.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => format!("{parent}[{key:?}]"),
    }
}

/// `parent[i]`.
pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// How a value is described in messages: its type, and the value itself when short.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("{b}"),
        Value::Number(n) => format!("{n}"),
        Value::String(s) if s.chars().count() <= 40 => format!("{s:?}"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

struct Walker<'de, 's> {
    value: &'de Value,
    path: String,
    ctx: &'s Ctx<'s>,
}

impl<'de, 's> Walker<'de, 's> {
    fn mismatch(&self, expected: &str) {
        self.ctx.type_error(
            &self.path,
            format!("expected {expected}, found {}", describe(self.value)),
        );
    }

    fn int(&self, min: i128, max: i128) -> i128 {
        let n = match self.value {
            Value::Number(n) => n
                .as_i64()
                .map(i128::from)
                .or_else(|| n.as_u64().map(i128::from))
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 1e30)
                        .map(|f| f as i128)
                }),
            _ => None,
        };
        match n {
            Some(n) if (min..=max).contains(&n) => n,
            Some(n) => {
                self.ctx.type_error(
                    &self.path,
                    format!("{n} is out of range (must be between {min} and {max})"),
                );
                0
            }
            None => {
                self.mismatch("an integer");
                0
            }
        }
    }

    fn empty_map<V: Visitor<'de>>(&self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_map(MapWalker {
            entries: Vec::new().into_iter(),
            pending: None,
            path: self.path.clone(),
            ctx: self.ctx,
            declared: None,
        })
    }
}

macro_rules! int_methods {
    ($($method:ident => $ty:ty, $visit:ident;)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
                let n = self.int(<$ty>::MIN as i128, <$ty>::MAX as i128);
                visitor.$visit(n as $ty)
            }
        )*
    };
}

impl<'de, 's> de::Deserializer<'de> for Walker<'de, 's> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => {
                if let Some(i) = n.as_u64() {
                    visitor.visit_u64(i)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or_default())
                }
            }
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(items) => visitor.visit_seq(SeqWalker {
                items: items.iter().enumerate(),
                path: self.path,
                ctx: self.ctx,
            }),
            Value::Object(map) => visitor.visit_map(MapWalker {
                entries: map.iter().collect::<Vec<_>>().into_iter(),
                pending: None,
                path: self.path,
                ctx: self.ctx,
                declared: None,
            }),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Value::Bool(b) => visitor.visit_bool(*b),
            _ => {
                self.mismatch("true or false");
                visitor.visit_bool(false)
            }
        }
    }

    int_methods! {
        deserialize_i8 => i8, visit_i8;
        deserialize_i16 => i16, visit_i16;
        deserialize_i32 => i32, visit_i32;
        deserialize_i64 => i64, visit_i64;
        deserialize_u8 => u8, visit_u8;
        deserialize_u16 => u16, visit_u16;
        deserialize_u32 => u32, visit_u32;
        deserialize_u64 => u64, visit_u64;
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value.as_f64() {
            Some(f) => visitor.visit_f64(f),
            None => {
                self.mismatch("a number");
                visitor.visit_f64(0.0)
            }
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let mut chars = self.value.as_str().unwrap_or_default().chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => visitor.visit_char(c),
            _ => {
                self.mismatch("a single character");
                visitor.visit_char(' ')
            }
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Value::String(s) => visitor.visit_borrowed_str(s),
            _ => {
                self.mismatch("a string");
                visitor.visit_str("")
            }
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if !self.value.is_null() {
            self.mismatch("null");
        }
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        if name == INT_OR_STRING {
            let ok = match self.value {
                Value::String(_) => true,
                Value::Number(n) => n.as_i64().is_some(),
                _ => false,
            };
            if !ok {
                self.mismatch("an integer or a string");
                return visitor.visit_newtype_struct(I64Deserializer::<DeError>::new(0));
            }
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Value::Array(items) => visitor.visit_seq(SeqWalker {
                items: items.iter().enumerate(),
                path: self.path,
                ctx: self.ctx,
            }),
            _ => {
                self.mismatch("a list");
                visitor.visit_seq(SeqWalker {
                    items: [].iter().enumerate(),
                    path: self.path,
                    ctx: self.ctx,
                })
            }
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Value::Object(map) => visitor.visit_map(MapWalker {
                entries: map.iter().collect::<Vec<_>>().into_iter(),
                pending: None,
                path: self.path,
                ctx: self.ctx,
                declared: None,
            }),
            _ => {
                self.mismatch("a mapping");
                self.empty_map(visitor)
            }
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let Value::Object(map) = self.value else {
            self.mismatch("a mapping");
            return self.empty_map(visitor);
        };
        visitor.visit_map(
            MapWalker {
                entries: map.iter().collect::<Vec<_>>().into_iter(),
                pending: None,
                path: self.path,
                ctx: self.ctx,
                declared: None,
            }
            .declaring(name, fields),
        )
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.value {
            Value::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            other => Err(DeError(format!(
                "{}: expected a string, found {}",
                self.path,
                describe(other)
            ))),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

struct SeqWalker<'de, 's> {
    items: std::iter::Enumerate<std::slice::Iter<'de, Value>>,
    path: String,
    ctx: &'s Ctx<'s>,
}

impl<'de, 's> de::SeqAccess<'de> for SeqWalker<'de, 's> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            Some((i, value)) => seed
                .deserialize(Walker {
                    value,
                    path: index(&self.path, i),
                    ctx: self.ctx,
                })
                .map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapWalker<'de, 's> {
    entries: std::vec::IntoIter<(&'de String, &'de Value)>,
    pending: Option<(&'de String, &'de Value)>,
    path: String,
    ctx: &'s Ctx<'s>,
    /// For a struct: its name and the fields it declares. Other keys (unless null,
    /// which sets nothing) are recorded as undeclared, in document order, and skipped.
    declared: Option<(&'static str, &'static [&'static str])>,
}

impl<'de, 's> MapWalker<'de, 's> {
    fn declaring(mut self, owner: &'static str, fields: &'static [&'static str]) -> Self {
        self.declared = Some((owner, fields));
        self
    }
}

impl<'de, 's> de::MapAccess<'de> for MapWalker<'de, 's> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        for (k, v) in self.entries.by_ref() {
            if let Some((owner, fields)) = self.declared
                && !fields.contains(&k.as_str())
            {
                if !v.is_null() {
                    self.ctx.undeclared(owner, &child(&self.path, k), k);
                }
                continue;
            }
            self.pending = Some((k, v));
            return seed
                .deserialize(BorrowedStrDeserializer::<DeError>::new(k))
                .map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, DeError> {
        let (k, value) = self
            .pending
            .take()
            .ok_or_else(|| DeError("value asked for before its key".into()))?;
        seed.deserialize(Walker {
            value,
            path: child(&self.path, k),
            ctx: self.ctx,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[derive(Deserialize, Default, Debug)]
    #[serde(default, rename_all = "camelCase")]
    struct Inner {
        count: Option<i32>,
        name: String,
        labels: BTreeMap<String, String>,
    }

    #[derive(Deserialize, Default, Debug)]
    #[serde(default, rename_all = "camelCase")]
    struct Outer {
        enabled: bool,
        inner: Inner,
        items: Vec<Inner>,
        raw: Option<Value>,
    }

    fn run(v: Value) -> (Outer, Vec<Finding>) {
        let sink = RefCell::new(Sink::default());
        let out: Outer = read(&v, &sink, |owner, field| {
            owner == "Inner" && field == "legacy"
        })
        .expect("reads");
        (out, sink.into_inner().findings)
    }

    #[test]
    fn reports_every_wrong_type_and_keeps_going() {
        let (out, findings) = run(json!({
            "enabled": "yes",
            "inner": {"count": "three", "name": 5, "labels": {"a": 1, "b": "ok"}},
            "items": [{"count": 2}, {"count": 3000000000u64}],
        }));
        let paths: Vec<_> = findings.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "enabled",
                "inner.count",
                "inner.name",
                "inner.labels.a",
                "items[1].count"
            ]
        );
        assert!(findings[1].message.contains("\"three\""), "{findings:?}");
        assert_eq!(out.items[0].count, Some(2));
        assert_eq!(out.inner.labels["b"], "ok");
    }

    #[test]
    fn undeclared_fields_are_warnings_and_opaque_values_are_kept_whole() {
        let (out, findings) = run(json!({
            "inner": {"legacy": 1, "bogus": {"x": 1}, "nothing": null},
            "raw": {"anything": [1, {"goes": true}]},
            "other.thing": 1,
        }));
        let got: Vec<_> = findings
            .iter()
            .map(|f| (f.path.as_str(), f.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("inner.legacy", "not supported"),
                ("inner.bogus", "unknown field"),
                ("[\"other.thing\"]", "unknown field"),
            ]
        );
        assert_eq!(out.raw, Some(json!({"anything": [1, {"goes": true}]})));
    }

    #[test]
    fn wrong_container_types_are_one_error_each() {
        let (_, findings) = run(json!({"inner": "x", "items": {"a": 1}}));
        let paths: Vec<_> = findings.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["inner", "items"]);
    }
}
