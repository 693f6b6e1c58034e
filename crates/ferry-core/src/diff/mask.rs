//! Secrets: fold `stringData` into `data` as the API server does, and replace every
//! value with a mask so that nothing secret reaches a diff, a log or an error.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// Whether `value` is a core `v1` Secret.
pub(crate) fn is_secret(value: &Value) -> bool {
    value.get("kind").and_then(Value::as_str) == Some("Secret")
        && value
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_some_and(|v| !v.contains('/'))
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Moves `stringData` into `data` (base64, overriding `data` entries of the same key,
/// as Kubernetes does on write) and removes blanks inside `data` values (a folded
/// YAML block is the same base64).
pub(crate) fn fold_string_data(secret: &mut Value) {
    let Some(obj) = secret.as_object_mut() else {
        return;
    };
    let string_data = obj.shift_remove("stringData");
    let has_data = obj.get("data").is_some_and(Value::is_object);
    if !has_data {
        match &string_data {
            Some(Value::Object(sd)) if !sd.is_empty() => {
                obj.insert("data".into(), Value::Object(Map::new()));
            }
            _ => return,
        }
    }
    let data = obj
        .get_mut("data")
        .and_then(Value::as_object_mut)
        .expect("data is a map");
    for v in data.values_mut() {
        if let Value::String(s) = v
            && s.bytes().any(|b| b.is_ascii_whitespace())
        {
            s.retain(|c| !c.is_ascii_whitespace());
        }
    }
    if let Some(Value::Object(sd)) = string_data {
        for (k, v) in sd {
            data.insert(k, Value::String(base64(as_text(&v).as_bytes())));
        }
    }
}

/// Replaces every `data` value of the given secrets with a run of `+`: per key, equal
/// values get the same mask and each distinct value a longer one, so a change stays
/// visible (`++++++++` → `+++++++++`) while no value, nor its length, leaks.
pub(crate) fn mask(objects: [Option<&mut Value>; 2]) {
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    for obj in objects.into_iter().flatten() {
        let Some(data) = obj.get_mut("data").and_then(Value::as_object_mut) else {
            continue;
        };
        for (k, v) in data.iter_mut() {
            let values = seen.entry(k.clone()).or_default();
            let text = as_text(v);
            let n = match values.iter().position(|x| *x == text) {
                Some(n) => n,
                None => {
                    values.push(text);
                    values.len() - 1
                }
            };
            *v = Value::String("+".repeat(8 + n));
        }
    }
}

/// Standard base64 with padding (RFC 4648), as Kubernetes stores Secret data.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), enc);
        }
    }

    #[test]
    fn string_data_overrides_data() {
        let mut s = json!({"apiVersion": "v1", "kind": "Secret", "data": {"a": "eA==\n", "b": "eQ=="}, "stringData": {"b": "z"}});
        fold_string_data(&mut s);
        assert_eq!(
            s,
            json!({"apiVersion": "v1", "kind": "Secret", "data": {"a": "eA==", "b": "eg=="}})
        );
        let mut s = json!({"apiVersion": "v1", "kind": "Secret", "stringData": {"p": "hunter2"}});
        fold_string_data(&mut s);
        assert_eq!(s["data"]["p"], "aHVudGVyMg==");
    }

    #[test]
    fn masks_keep_equality_and_hide_values() {
        let mut live = json!({"data": {"same": "c2VjcmV0", "changed": "b2xk", "gone": "eA=="}});
        let mut pred = json!({"data": {"same": "c2VjcmV0", "changed": "bmV3", "added": "eQ=="}});
        mask([Some(&mut live), Some(&mut pred)]);
        assert_eq!(live["data"]["same"], pred["data"]["same"]);
        assert_ne!(live["data"]["changed"], pred["data"]["changed"]);
        assert_eq!(live["data"]["changed"], "++++++++");
        assert_eq!(pred["data"]["changed"], "+++++++++");
        assert_eq!(pred["data"]["added"], "++++++++");
        assert!(!format!("{live}{pred}").contains("c2VjcmV0"));
    }
}
