//! Kubernetes' rules for names, label keys and values, as the API server applies them
//! (apimachinery's `validation` and `api/validation/path` packages), with its wording.
//!
//! Names become URL path segments, label selectors, DNS names — and, in ferry's
//! embedded runtime, directory names. A name the API server would refuse is refused
//! here, before anything is stored, rendered into a path, or run: `../x` as a Pod name
//! must never reach the filesystem.
//!
//! Each `is_*` function returns the API server's messages (empty when the value is
//! valid). [`validate_object`] checks one object the way `kubectl apply` would be
//! answered, collecting every field error; its error reads like the API server's
//! `Pod "../x" is invalid: metadata.name: Invalid value: "../x": …`.

use std::fmt;

use serde_json::{Map, Value};

use crate::object::{Object, is_namespaced};

/// Most characters in an RFC 1123 label (and so in a namespace or container name).
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;
/// Most characters in an RFC 1123 subdomain (most object names).
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
/// Most characters in an RFC 1035 label (a Service name).
pub const DNS1035_LABEL_MAX_LENGTH: usize = 63;
/// Most characters in a label value.
pub const LABEL_VALUE_MAX_LENGTH: usize = 63;
/// Most characters in the name part of a qualified name (a label or annotation key).
pub const QUALIFIED_NAME_MAX_LENGTH: usize = 63;
/// Most characters in a port name (RFC 6335's IANA_SVC_NAME).
pub const PORT_NAME_MAX_LENGTH: usize = 15;
/// Most bytes all annotations of one object may take together (keys and values).
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_ERR: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// apimachinery's `MaxLenError`.
fn max_len_error(length: usize) -> String {
    format!("must be no more than {length} characters")
}

/// apimachinery's `EmptyError`.
fn empty_error() -> &'static str {
    "must be non-empty"
}

/// apimachinery's `RegexError`, examples and all (its double space included).
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut out = format!("{msg} (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push('\'');
        out.push_str(e);
        out.push_str("', ");
    }
    out.push_str("regex used for validation is '");
    out.push_str(fmt);
    out.push_str("')");
    out
}

fn lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
fn matches_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(&f), Some(&l)) => {
            lower_alnum(f) && lower_alnum(l) && b.iter().all(|&c| lower_alnum(c) || c == b'-')
        }
        _ => false,
    }
}

/// Dot-separated RFC 1123 labels.
fn matches_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(matches_dns1123_label)
}

/// `^[a-z]([-a-z0-9]*[a-z0-9])?$`
fn matches_dns1035_label(s: &str) -> bool {
    matches_dns1123_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

/// `^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`
fn matches_qualified_name(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(&f), Some(&l)) => {
            f.is_ascii_alphanumeric()
                && l.is_ascii_alphanumeric()
                && b.iter()
                    .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// `IsDNS1123Label`: namespace, container and volume names.
pub fn is_dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !matches_dns1123_label(value) {
        if matches_dns1123_subdomain(value) {
            // A valid subdomain but not a label: the length was checked, so it is dots.
            errs.push("must not contain dots".into());
        } else {
            errs.push(regex_error(
                DNS1123_LABEL_ERR,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// `IsDNS1123Subdomain`: the names of most kinds.
pub fn is_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !matches_dns1123_subdomain(value) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_ERR,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// `IsDNS1035Label`: Service names (they become DNS names that must not start with a digit).
pub fn is_dns1035_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1035_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1035_LABEL_MAX_LENGTH));
    }
    if !matches_dns1035_label(value) {
        errs.push(regex_error(
            DNS1035_LABEL_ERR,
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// `IsQualifiedName`: label and annotation keys, an optional DNS subdomain prefix and
/// `/` before a name part.
pub fn is_qualified_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push(format!("prefix part {}", empty_error()));
            } else {
                errs.extend(
                    is_dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_ERR,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push(format!("name part {}", empty_error()));
    } else if name.len() > QUALIFIED_NAME_MAX_LENGTH {
        errs.push(format!(
            "name part {}",
            max_len_error(QUALIFIED_NAME_MAX_LENGTH)
        ));
    }
    if !matches_qualified_name(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// `IsValidLabelValue`: empty, or a qualified name's name part.
pub fn is_valid_label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_VALUE_MAX_LENGTH {
        errs.push(max_len_error(LABEL_VALUE_MAX_LENGTH));
    }
    if !value.is_empty() && !matches_qualified_name(value) {
        errs.push(regex_error(
            LABEL_VALUE_ERR,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// `IsValidPortName`: a container port's name (IANA_SVC_NAME, RFC 6335).
pub fn is_valid_port_name(port: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if port.len() > PORT_NAME_MAX_LENGTH {
        errs.push(max_len_error(PORT_NAME_MAX_LENGTH));
    }
    if port.is_empty() || !port.bytes().all(|c| lower_alnum(c) || c == b'-') {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if !port.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if port.contains("--") {
        errs.push("must not contain consecutive hyphens".into());
    }
    if port.starts_with('-') || port.ends_with('-') {
        errs.push("must not begin or end with a hyphen".into());
    }
    errs
}

/// `IsValidPathSegmentName`: what any name must be to sit in a URL path segment (and,
/// here, a directory name): not `.` or `..`, no `/` or `%`.
pub fn is_valid_path_segment_name(name: &str) -> Vec<String> {
    for bad in [".", ".."] {
        if name == bad {
            return vec![format!("may not be '{bad}'")];
        }
    }
    ["/", "%"]
        .iter()
        .filter(|bad| name.contains(*bad))
        .map(|bad| format!("may not contain '{bad}'"))
        .collect()
}

/// A `generateName` prefix is checked as if a suffix followed: a trailing `-` is fine.
fn mask_trailing_dash(name: &str) -> String {
    match name.strip_suffix('-') {
        Some(rest) if name.len() > 1 => format!("{rest}a"),
        _ => name.to_string(),
    }
}

/// Which rule names of a kind follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain, at most 253 characters (most kinds).
    Subdomain,
    /// RFC 1123 label, at most 63 characters (Namespace).
    Label,
    /// RFC 1035 label, at most 63 characters, starting with a letter (Service).
    Dns1035Label,
}

impl NameRule {
    /// The rule the API server applies to `metadata.name` of `kind` in `group`.
    pub fn of(group: &str, kind: &str) -> NameRule {
        match (group, kind) {
            ("", "Namespace") => NameRule::Label,
            ("", "Service") => NameRule::Dns1035Label,
            _ => NameRule::Subdomain,
        }
    }

    /// Messages for `name` (a `generateName` prefix when `prefix`), empty when valid.
    /// Every rule also keeps the name a single safe path segment.
    pub fn check(self, name: &str, prefix: bool) -> Vec<String> {
        let masked = if prefix {
            mask_trailing_dash(name)
        } else {
            name.to_string()
        };
        let mut errs = match self {
            NameRule::Subdomain => is_dns1123_subdomain(&masked),
            NameRule::Label => is_dns1123_label(&masked),
            NameRule::Dns1035Label => is_dns1035_label(&masked),
        };
        // Implied by each rule above; kept so that no future rule can let `..` through.
        if errs.is_empty() {
            errs = is_valid_path_segment_name(name);
        }
        errs
    }
}

/// apimachinery's `field.ErrorType`, the ones used here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorType {
    /// `Required value`.
    Required,
    /// `Invalid value`.
    Invalid,
    /// `Duplicate value`.
    Duplicate,
    /// `Too long`.
    TooLong,
}

/// One field's error, worded as apimachinery's `field.Error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path, e.g. `spec.containers[0].name`.
    pub field: String,
    /// What kind of error.
    pub kind: ErrorType,
    /// The bad value (shown quoted for `Invalid` and `Duplicate`).
    pub value: String,
    /// Why, e.g. `must be no more than 63 characters`.
    pub detail: String,
}

impl FieldError {
    fn invalid(field: impl Into<String>, value: &str, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            kind: ErrorType::Invalid,
            value: value.to_string(),
            detail: detail.into(),
        }
    }

    fn required(field: impl Into<String>, detail: &str) -> Self {
        Self {
            field: field.into(),
            kind: ErrorType::Required,
            value: String::new(),
            detail: detail.to_string(),
        }
    }

    fn duplicate(field: impl Into<String>, value: &str) -> Self {
        Self {
            field: field.into(),
            kind: ErrorType::Duplicate,
            value: value.to_string(),
            detail: String::new(),
        }
    }
}

impl fmt::Display for FieldError {
    /// `field: Invalid value: "v": detail`, as apimachinery's `Error()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.field)?;
        match self.kind {
            ErrorType::Required => f.write_str("Required value")?,
            ErrorType::TooLong => f.write_str("Too long")?,
            ErrorType::Invalid => write!(f, "Invalid value: {}", go_quote(&self.value))?,
            ErrorType::Duplicate => write!(f, "Duplicate value: {}", go_quote(&self.value))?,
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// A string quoted as Go's `%q` quotes it (what the API server's messages show).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An object the API server would refuse: its kind, name, and every field error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct InvalidObject {
    /// API group, empty for the core group.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// `metadata.name` as given (possibly empty).
    pub name: String,
    /// The field errors, at least one.
    pub errors: Vec<FieldError>,
}

impl fmt::Display for InvalidObject {
    /// `Kind.group "name" is invalid: <errors>`: one error alone, several as
    /// `[a, b]` with repeats dropped — apimachinery's `NewInvalid` and aggregate.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            write!(f, "{} ", self.kind)?;
        } else {
            write!(f, "{}.{} ", self.kind, self.group)?;
        }
        write!(f, "{} is invalid: ", go_quote(&self.name))?;
        let mut seen: Vec<String> = Vec::new();
        for e in &self.errors {
            let msg = e.to_string();
            if !seen.contains(&msg) {
                seen.push(msg);
            }
        }
        match seen.as_slice() {
            [one] => f.write_str(one),
            many => write!(f, "[{}]", many.join(", ")),
        }
    }
}

/// Checks `obj` as the API server would on create or update: `metadata.name` by its
/// kind's rule, `generateName`, `metadata.namespace` (when set), label keys and
/// values, annotation keys and their total size, and — in the pod spec of a Pod or
/// of a workload's template — container, init container and volume names and port
/// names; a Service's port names.
pub fn validate_object(obj: &Object) -> Result<(), InvalidObject> {
    let errors = field_errors(obj);
    if errors.is_empty() {
        return Ok(());
    }
    Err(InvalidObject {
        group: obj.group().to_string(),
        kind: obj.kind().to_string(),
        name: meta_str(obj.value(), "name").to_string(),
        errors,
    })
}

fn meta_str<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The field errors of `obj` (see [`validate_object`]); empty when it is valid.
pub fn field_errors(obj: &Object) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let v = obj.value();
    let rule = NameRule::of(obj.group(), obj.kind());
    let generate = meta_str(v, "generateName");
    if !generate.is_empty() {
        for m in rule.check(generate, true) {
            errs.push(FieldError::invalid("metadata.generateName", generate, m));
        }
    }
    let name = meta_str(v, "name");
    if name.is_empty() {
        // A create with only `generateName` gets its name from the store.
        if generate.is_empty() {
            errs.push(FieldError::required(
                "metadata.name",
                "name or generateName is required",
            ));
        }
    } else {
        for m in rule.check(name, false) {
            errs.push(FieldError::invalid("metadata.name", name, m));
        }
    }
    let namespace = meta_str(v, "namespace");
    // An unset namespace is filled in later (the destination's, or `default`); a
    // cluster-scoped kind's stray namespace is dropped, not stored.
    if !namespace.is_empty() && is_namespaced(obj.kind()) {
        for m in NameRule::Label.check(namespace, false) {
            errs.push(FieldError::invalid("metadata.namespace", namespace, m));
        }
    }
    if let Some(meta) = v.get("metadata").and_then(Value::as_object) {
        meta_maps(meta, "metadata", &mut errs);
    }
    for (path, spec) in pod_specs(obj, &mut errs) {
        pod_spec(spec, &path, &mut errs);
    }
    if obj.group().is_empty() && obj.kind() == "Service" {
        service_ports(v, &mut errs);
    }
    errs
}

/// Labels and annotations of one `metadata` (an object's or a pod template's).
fn meta_maps(meta: &Map<String, Value>, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(labels) = meta.get("labels").and_then(Value::as_object) {
        let field = format!("{path}.labels");
        for (k, val) in labels {
            for m in is_qualified_name(k) {
                errs.push(FieldError::invalid(&field, k, m));
            }
            if let Some(val) = val.as_str() {
                for m in is_valid_label_value(val) {
                    errs.push(FieldError::invalid(&field, val, m));
                }
            }
        }
    }
    if let Some(annotations) = meta.get("annotations").and_then(Value::as_object) {
        let field = format!("{path}.annotations");
        let mut total = 0usize;
        for (k, val) in annotations {
            // Annotation keys are qualified names in any case.
            for m in is_qualified_name(&k.to_ascii_lowercase()) {
                errs.push(FieldError::invalid(&field, k, m));
            }
            total += k.len() + val.as_str().map_or(0, str::len);
        }
        if total > TOTAL_ANNOTATION_SIZE_LIMIT {
            errs.push(FieldError {
                field,
                kind: ErrorType::TooLong,
                value: String::new(),
                detail: format!("may not be more than {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"),
            });
        }
    }
}

/// Workload kinds whose pods come from `spec.template`.
const TEMPLATED: &[&str] = &[
    "Deployment",
    "ReplicaSet",
    "ReplicationController",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "Rollout",
];

/// The pod specs `obj` carries, with their field paths; a template's own labels and
/// annotations are checked on the way.
fn pod_specs<'a>(obj: &'a Object, errs: &mut Vec<FieldError>) -> Vec<(String, &'a Value)> {
    let v = obj.value();
    let (template_path, template) = match obj.kind() {
        "Pod" => {
            return v
                .get("spec")
                .map(|s| vec![("spec".into(), s)])
                .unwrap_or_default();
        }
        "PodTemplate" => ("template", v.get("template")),
        "CronJob" => (
            "spec.jobTemplate.spec.template",
            v.pointer("/spec/jobTemplate/spec/template"),
        ),
        k if TEMPLATED.contains(&k) => ("spec.template", v.pointer("/spec/template")),
        _ => return Vec::new(),
    };
    let Some(template) = template else {
        return Vec::new();
    };
    if let Some(meta) = template.get("metadata").and_then(Value::as_object) {
        meta_maps(meta, &format!("{template_path}.metadata"), errs);
    }
    template
        .get("spec")
        .map(|s| vec![(format!("{template_path}.spec"), s)])
        .unwrap_or_default()
}

/// Container, init and ephemeral container names (labels, unique across the pod),
/// their port names, and volume names (labels, unique).
fn pod_spec(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let mut names: Vec<&str> = Vec::new();
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        let Some(items) = spec.get(list).and_then(Value::as_array) else {
            continue;
        };
        for (i, c) in items.iter().enumerate() {
            let at = format!("{path}.{list}[{i}]");
            match c.get("name").and_then(Value::as_str).unwrap_or_default() {
                "" => errs.push(FieldError::required(format!("{at}.name"), "")),
                name => {
                    let found = is_dns1123_label(name);
                    if found.is_empty() && names.contains(&name) {
                        errs.push(FieldError::duplicate(format!("{at}.name"), name));
                    }
                    for m in found {
                        errs.push(FieldError::invalid(format!("{at}.name"), name, m));
                    }
                    names.push(name);
                }
            }
            for (j, p) in c
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let Some(port_name) = p.get("name").and_then(Value::as_str) else {
                    continue;
                };
                if port_name.is_empty() {
                    continue;
                }
                for m in is_valid_port_name(port_name) {
                    errs.push(FieldError::invalid(
                        format!("{at}.ports[{j}].name"),
                        port_name,
                        m,
                    ));
                }
            }
        }
    }
    let mut volumes: Vec<&str> = Vec::new();
    for (i, vol) in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("{path}.volumes[{i}].name");
        match vol.get("name").and_then(Value::as_str).unwrap_or_default() {
            "" => errs.push(FieldError::required(at, "")),
            name => {
                let found = is_dns1123_label(name);
                if found.is_empty() && volumes.contains(&name) {
                    errs.push(FieldError::duplicate(at.clone(), name));
                }
                for m in found {
                    errs.push(FieldError::invalid(at.clone(), name, m));
                }
                volumes.push(name);
            }
        }
    }
}

/// A Service's port names: RFC 1123 labels.
fn service_ports(v: &Value, errs: &mut Vec<FieldError>) {
    for (i, p) in v
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let Some(name) = p.get("name").and_then(Value::as_str) else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        for m in is_dns1123_label(name) {
            errs.push(FieldError::invalid(
                format!("spec.ports[{i}].name"),
                name,
                m,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Object {
        Object::from_value(v).unwrap()
    }

    #[test]
    fn the_api_servers_wording_for_a_dotdot_pod_name() {
        let pod = obj(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "../x"},
            "spec": {"containers": [{"name": "c", "image": "i"}]}}),
        );
        assert_eq!(
            validate_object(&pod).unwrap_err().to_string(),
            r#"Pod "../x" is invalid: metadata.name: Invalid value: "../x": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#
        );
    }
}
