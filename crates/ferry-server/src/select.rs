//! Label selectors as `kubectl -l` writes them (`app=web,tier!=db,env in (a,b),!x`),
//! turned into a Kubernetes `LabelSelector`.

use serde_json::{Map, Value, json};

/// Parses a selector string into `{"matchLabels": …, "matchExpressions": […]}`.
pub fn parse(s: &str) -> Result<Value, String> {
    let mut labels = Map::new();
    let mut exprs = Vec::new();
    for term in split_terms(s) {
        let term = term.trim();
        if term.is_empty() {
            continue;
        }
        let bad = || format!("invalid label selector term {term:?} in {s:?}");
        if let Some((k, rest)) = term.split_once(" notin ") {
            exprs.push(
                json!({"key": k.trim(), "operator": "NotIn", "values": set(rest).ok_or_else(bad)?}),
            );
        } else if let Some((k, rest)) = term.split_once(" in ") {
            exprs.push(
                json!({"key": k.trim(), "operator": "In", "values": set(rest).ok_or_else(bad)?}),
            );
        } else if let Some((k, v)) = term.split_once("!=") {
            exprs.push(json!({"key": k.trim(), "operator": "NotIn", "values": [v.trim()]}));
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            if k.trim().is_empty() {
                return Err(bad());
            }
            labels.insert(k.trim().to_string(), Value::String(v.trim().to_string()));
        } else if let Some(k) = term.strip_prefix('!') {
            exprs.push(json!({"key": k.trim(), "operator": "DoesNotExist"}));
        } else {
            exprs.push(json!({"key": term, "operator": "Exists"}));
        }
    }
    Ok(json!({"matchLabels": labels, "matchExpressions": exprs}))
}

/// Splits on commas outside parentheses.
fn split_terms(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn set(s: &str) -> Option<Vec<String>> {
    let inner = s.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_runtime::controller::selector_matches;

    fn matches(sel: &str, labels: Value) -> bool {
        selector_matches(&parse(sel).unwrap(), labels.as_object())
    }

    #[test]
    fn kubectl_selectors_match() {
        let l = json!({"app": "web", "tier": "front"});
        assert!(matches("app=web", l.clone()));
        assert!(matches("app==web,tier", l.clone()));
        assert!(!matches("app=db", l.clone()));
        assert!(matches("app!=db", l.clone()));
        assert!(matches("tier in (front, back),!gone", l.clone()));
        assert!(!matches("tier notin (front)", l.clone()));
        assert!(matches("", l));
        assert!(parse("tier in front").is_err());
    }
}
