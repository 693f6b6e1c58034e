//! What the API server does to a ConfigMap or Secret when it is written, beyond its
//! names: `stringData` is folded into `data` (base64) and never stored, a Secret's
//! `type` defaults to `Opaque`, `data` values must be valid base64, keys must be
//! valid config keys, and the data is at most 1 MiB. Messages are the API server's.

use serde_json::{Map, Value};

use crate::diff::mask::fold_string_data;

/// The most data a ConfigMap or Secret may hold (`MaxSecretSize`, and the same for
/// ConfigMaps): 1 MiB.
pub const MAX_DATA_BYTES: usize = 1024 * 1024;

const KEY_MAX: usize = 253;
const KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

/// Applies the API server's defaulting and checks to `value` when it is a core
/// ConfigMap or Secret; other kinds pass untouched. On failure, the field errors in
/// Kubernetes' words (`data[a b]: Invalid value: …`), or one decoding message for
/// bad base64 (as the API server answers 400 before validation runs).
pub fn admit(value: &mut Value) -> Result<(), Vec<String>> {
    let core = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .is_some_and(|v| v == "v1");
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match (core, kind) {
        (true, "Secret") => admit_secret(value),
        (true, "ConfigMap") => admit_config_map(value),
        _ => Ok(()),
    }
}

/// The API server's answer for an object [`admit`] refused: a decoding error as it
/// is, field errors as `Kind "name" is invalid: [a, b]`.
pub fn refusal(kind: &str, name: &str, errors: &[String]) -> String {
    match errors {
        [one] if one.contains(" cannot be handled as a ") => one.clone(),
        [one] => format!("{kind} {name:?} is invalid: {one}"),
        many => format!("{kind} {name:?} is invalid: [{}]", many.join(", ")),
    }
}

fn admit_secret(value: &mut Value) -> Result<(), Vec<String>> {
    // Checked before folding: a bad value the user wrote is reported as theirs.
    if let Some(data) = value.get("data").and_then(Value::as_object) {
        for (k, v) in data {
            let text = v.as_str().unwrap_or_default();
            if let Err(at) = check_base64(text) {
                return Err(vec![format!(
                    "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte {at} (data[{k}]; values under data are base64, use stringData for plain text)"
                )]);
            }
        }
    }
    fold_string_data(value);
    let Some(obj) = value.as_object_mut() else {
        return Ok(());
    };
    if obj
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        obj.insert("type".into(), Value::String("Opaque".into()));
    }
    let mut errors = Vec::new();
    let mut size = 0usize;
    if let Some(data) = obj.get("data").and_then(Value::as_object) {
        for (k, v) in data {
            check_key("data", k, &mut errors);
            size += decoded_len(v.as_str().unwrap_or_default());
        }
    }
    if size > MAX_DATA_BYTES {
        errors.push(format!(
            "data: Too long: must have at most {MAX_DATA_BYTES} bytes"
        ));
    }
    errors.is_empty().then_some(()).ok_or(errors)
}

fn admit_config_map(value: &mut Value) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    let mut size = 0usize;
    let empty = Map::new();
    let data = value
        .get("data")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let binary = value
        .get("binaryData")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for (k, v) in data {
        check_key("data", k, &mut errors);
        if binary.contains_key(k) {
            errors.push(format!(
                "data[{k}]: Invalid value: {k:?}: duplicate of key present in binaryData"
            ));
        }
        size += v.as_str().map_or(0, str::len);
    }
    for (k, v) in binary {
        check_key("binaryData", k, &mut errors);
        let text = v.as_str().unwrap_or_default();
        if let Err(at) = check_base64(text) {
            return Err(vec![format!(
                "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: illegal base64 data at input byte {at} (binaryData[{k}])"
            )]);
        }
        size += decoded_len(text);
    }
    if size > MAX_DATA_BYTES {
        errors.push(format!(
            "[]: Too long: must have at most {MAX_DATA_BYTES} bytes"
        ));
    }
    errors.is_empty().then_some(()).ok_or(errors)
}

fn check_key(field: &str, key: &str, errors: &mut Vec<String>) {
    let valid_chars = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !valid_chars {
        errors.push(format!("{field}[{key}]: Invalid value: {key:?}: {KEY_MSG}"));
    } else if key.len() > KEY_MAX {
        errors.push(format!(
            "{field}[{key}]: Invalid value: {key:?}: must be no more than {KEY_MAX} characters"
        ));
    } else if key == "." || key == ".." || key.starts_with("..") {
        let why = if key.starts_with("..") && key.len() > 2 {
            "must not start with '..'"
        } else {
            "must not be '.' or '..'"
        };
        errors.push(format!("{field}[{key}]: Invalid value: {key:?}: {why}"));
    }
}

/// Checks `text` as Go's `base64.StdEncoding` reads a JSON `[]byte` (padding
/// required, `\r` and `\n` ignored); `Err(offset)` of the first illegal byte.
fn check_base64(text: &str) -> Result<(), usize> {
    let mut quantum = 0usize;
    let mut padding = 0usize;
    for (i, b) in text.bytes().enumerate() {
        match b {
            b'\r' | b'\n' => continue,
            b'=' => {
                // Padding only in the last two places of a quantum.
                if quantum < 2 {
                    return Err(i);
                }
                padding += 1;
            }
            _ if padding > 0 => return Err(i),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' => {}
            _ => return Err(i),
        }
        quantum = (quantum + 1) % 4;
        if quantum == 0 && padding > 0 {
            // A padded quantum ends the data; anything after it is illegal.
            if let Some(j) = text[i + 1..].bytes().position(|b| b != b'\r' && b != b'\n') {
                return Err(i + 1 + j);
            }
            return Ok(());
        }
    }
    if quantum != 0 || padding > 2 {
        return Err(text.len());
    }
    Ok(())
}

fn decoded_len(text: &str) -> usize {
    let n = text.bytes().filter(|b| !matches!(b, b'\r' | b'\n')).count();
    let pad = text.bytes().rev().take_while(|b| *b == b'=').count();
    (n / 4 * 3).saturating_sub(pad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn regression_string_data_is_folded_into_data_and_not_kept() {
        let mut s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                           "stringData": {"password": "hunter2"}});
        admit(&mut s).unwrap();
        assert_eq!(s["data"]["password"], "aHVudGVyMg==");
        assert_eq!(s["type"], "Opaque");
        assert!(s.get("stringData").is_none());
        // stringData wins over data for the same key, as the API server merges it.
        let mut s = json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/basic-auth",
                           "data": {"a": "eA==", "b": "eQ=="}, "stringData": {"b": "z"}});
        admit(&mut s).unwrap();
        assert_eq!(s["data"], json!({"a": "eA==", "b": "eg=="}));
        assert_eq!(s["type"], "kubernetes.io/basic-auth");
    }

    #[test]
    fn regression_secret_data_must_be_base64() {
        let mut s = json!({"apiVersion": "v1", "kind": "Secret", "data": {"k": "not base64!"}});
        let err = admit(&mut s).unwrap_err().join(", ");
        assert!(
            err.contains("illegal base64 data at input byte 3") && err.contains("data[k]"),
            "{err}"
        );
        for ok in ["", "Zg==", "Zm8=", "Zm9v", "Zm9v\nYmFy"] {
            assert_eq!(check_base64(ok), Ok(()), "{ok:?}");
        }
        for (bad, at) in [
            ("Zg", 2),
            ("Z===", 1),
            ("Zg==Zg==", 4),
            ("Zm9v=", 4),
            ("Zm 9", 2),
        ] {
            assert_eq!(check_base64(bad), Err(at), "{bad:?}");
        }
    }

    #[test]
    fn keys_and_sizes_are_checked_as_the_api_server_does() {
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                            "data": {"a b": "x", "..x": "y", "ok.key": "z"}});
        let errs = admit(&mut cm).unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].starts_with("data[a b]: Invalid value: \"a b\": a valid config key"));
        assert!(errs[1].contains("must not start with '..'"));
        let big = "x".repeat(MAX_DATA_BYTES + 1);
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"big": big}});
        let errs = admit(&mut cm).unwrap_err();
        assert_eq!(errs, vec!["[]: Too long: must have at most 1048576 bytes"]);
        let mut other = json!({"apiVersion": "apps/v1", "kind": "Deployment"});
        assert_eq!(admit(&mut other), Ok(()));
    }
}
