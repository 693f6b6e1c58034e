//! Property targets for the webhook, the one door of the daemon that answers callers
//! without a token: the payload (a GitHub or ferry push event), its signature, and
//! the repository URLs and refs it names, which are matched against every app.
//!
//! Inputs are real push events mutated and arbitrary bytes. Nothing may panic, a
//! refusal is a 400 that says which field is wrong, and a signature only ever
//! verifies for the exact body it was made for. `PROPTEST_CASES` sets the budget.

use ferry_server::webhook::{self, Push};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::Value;

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// A GitHub push event, trimmed to the fields a receiver reads and a few it does not.
const GITHUB_PUSH: &str = r#"{"ref":"refs/heads/main","before":"0000000000000000000000000000000000000000","after":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","repository":{"id":1296269,"name":"shop","full_name":"acme/shop","clone_url":"https://github.com/acme/shop.git","html_url":"https://github.com/acme/shop","ssh_url":"git@github.com:acme/shop.git","git_url":"git://github.com/acme/shop.git","url":"https://api.github.com/repos/acme/shop","default_branch":"main"},"pusher":{"name":"dev","email":"dev@example.com"},"commits":[{"id":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","message":"bump","added":[],"removed":[],"modified":["deploy/web.yaml"]}],"head_commit":null}"#;
/// ferry's own push event.
const FERRY_PUSH: &str = r#"{"repo":"https://git.example.com/acme/shop","ref":"refs/tags/v1.2.0","head":"refs/heads/main"}"#;

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "null",
    "\"refs/\"",
    "\"ref\":",
    "\"repo\":",
    "\"repository\":",
    "\"clone_url\":",
    "\"file:///\"",
    "\"../..\"",
    "\"git@h:o/r\"",
    "\"[::1]\"",
    "\\u0000",
    "\"HEAD\"",
    "1e999",
    "\"\"",
];

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => (
            prop::sample::select(&[GITHUB_PUSH, FERRY_PUSH][..]),
            prop::collection::vec(
                (any::<usize>(), 0u8..4, any::<u8>(), prop::sample::select(TOKENS)),
                0..6,
            ),
        )
            .prop_map(|(seed, edits)| {
                let mut b = seed.as_bytes().to_vec();
                for (i, op, x, t) in edits {
                    let i = i % (b.len() + 1);
                    match op {
                        0 if i < b.len() => b[i] ^= x.max(1),
                        1 => b.truncate(i),
                        2 => {
                            let piece = b[i..(i + usize::from(x)).min(b.len())].to_vec();
                            b.splice(i..i, piece);
                        }
                        _ => {
                            b.splice(i..i, t.bytes());
                        }
                    }
                }
                b
            }),
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ]
}

/// Strings that look like repository URLs and paths some of the time.
fn url() -> impl Strategy<Value = String> {
    const PIECES: &[&str] = &[
        "https://",
        "http://",
        "ssh://",
        "git://",
        "file://",
        "git@",
        "user:pw@",
        "github.com",
        "[::1]",
        ":22",
        ":",
        "/",
        "acme",
        "shop",
        ".git",
        "..",
        "~",
        "%2e",
        " ",
        "\\",
        "@",
    ];
    prop_oneof![
        any::<String>(),
        prop::collection::vec(prop::sample::select(PIECES), 0..8).prop_map(|t| t.concat()),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// A body as the webhook handler reads it: JSON, then the GitHub or the ferry
    /// shape; what is accepted names a full ref, what is refused is a 400 saying
    /// which field; matching it against apps never panics.
    #[test]
    fn fuzz_webhook_payload(body in payload(), app_url in url(), rev in "[ -~]{0,20}") {
        let Ok(v) = serde_json::from_slice::<Value>(&body) else { return Ok(()) };
        for parsed in [Push::from_github(&v), Push::from_ferry(&v)] {
            match parsed {
                Ok(push) => {
                    prop_assert!(push.git_ref.starts_with("refs/"), "{push:?}");
                    if let Some(h) = &push.head {
                        prop_assert!(h.starts_with("refs/"), "{push:?}");
                    }
                    let apps = vec![
                        ("a", vec![(app_url.as_str(), rev.as_str())]),
                        ("b", vec![("https://github.com/acme/shop", "HEAD")]),
                    ];
                    let names = webhook::matching_apps(&push, apps);
                    prop_assert!(names.len() <= 2);
                }
                Err(e) => {
                    prop_assert_eq!(e.code.as_u16(), 400);
                    prop_assert!(e.message.contains("\"ref\"") || e.message.contains("\"repo\""), "{}", e.message);
                }
            }
        }
    }

    /// Signatures: the right one verifies, any other header or any other body does
    /// not, and no header crashes the check.
    #[test]
    fn fuzz_webhook_signature(
        secret in prop::collection::vec(any::<u8>(), 0..64),
        body in payload(),
        header in prop_oneof![any::<String>(), "sha256=[0-9a-fA-F]{0,70}", "sha1=[0-9a-f]{40}"],
        flip in any::<usize>(),
    ) {
        let good = webhook::signature(&secret, &body);
        prop_assert!(webhook::verify(&secret, &body, Some(&good)));
        if header != good {
            prop_assert!(!webhook::verify(&secret, &body, Some(&header)), "{header:?} verified");
        }
        prop_assert!(!webhook::verify(&secret, &body, None));
        if !body.is_empty() {
            let mut other = body.clone();
            other[flip % body.len()] ^= 1;
            prop_assert!(!webhook::verify(&secret, &other, Some(&good)));
        }
    }

    /// Any URL and any revision through the matching rules.
    #[test]
    fn fuzz_repo_key_and_revision(u in url(), rev in any::<String>(), git_ref in any::<String>(), head in proptest::option::of(any::<String>())) {
        if let Some(k) = webhook::repo_key(&u)
            && !k.starts_with("local:")
        {
            prop_assert_eq!(k.to_ascii_lowercase(), k.clone());
        }
        let _ = webhook::revision_matches(&rev, &git_ref, head.as_deref());
    }

    /// The same repository spelt the ways GitHub's payload spells it has one key.
    #[test]
    fn fuzz_repo_key_spellings_agree(host in "[a-z][a-z0-9-]{0,10}\\.[a-z]{2,4}", org in "[A-Za-z0-9][A-Za-z0-9_-]{0,10}", repo in "[A-Za-z0-9][A-Za-z0-9_-]{0,10}") {
        let keys: Vec<Option<String>> = [
            format!("https://{host}/{org}/{repo}.git"),
            format!("https://{host}/{org}/{repo}"),
            format!("git@{host}:{org}/{repo}.git"),
            format!("ssh://git@{host}:22/{org}/{repo}"),
            format!("https://{}/{org}/{repo}/", host.to_ascii_uppercase()),
        ]
        .iter()
        .map(|u| webhook::repo_key(u))
        .collect();
        prop_assert!(keys[0].is_some(), "{keys:?}");
        prop_assert!(keys.iter().all(|k| k == &keys[0]), "{keys:?}");
    }
}
