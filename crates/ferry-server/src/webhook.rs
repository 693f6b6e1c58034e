//! `POST /api/webhook`: a push refreshes, at once, the apps that follow the pushed
//! repository and ref, instead of waiting for the next reconciliation.
//!
//! Two payloads are read: GitHub's push event (`X-GitHub-Event: push`) and ferry's own
//! from local hooks (`X-Ferry-Event: push`, `{"repo": URL-or-path, "ref": "refs/heads/main",
//! "head": "refs/heads/main"}`, where `head` is the repository's default branch when
//! known). With a secret configured, `X-Hub-Signature-256: sha256=<hex>` (HMAC-SHA256
//! of the raw body) must match, compared in constant time, before anything is read.
//! Bodies are capped at 1 MiB. Other events (`ping`, …) answer `{"refreshed": []}`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::api::AppState;
use crate::error::ApiError;

/// The largest body read.
pub const MAX_BODY: usize = 1024 * 1024;

/// How long the answer waits for the refreshes (GitHub gives up after 10 s); they go on
/// after the answer when slower.
const ANSWER_WITHIN: Duration = Duration::from_secs(8);

/// The webhook route, to be merged into the API's router.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/webhook", post(webhook))
}

/// `sha256=<hex>`: the `X-Hub-Signature-256` value of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` is a valid signature of `body` under `secret` (constant time).
pub fn verify(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(sig) = hex::decode(sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// What a push event says: the repository (under every URL it was given) and the ref.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// The repository's URLs or paths.
    pub urls: Vec<String>,
    /// `refs/heads/main`, `refs/tags/v1`.
    pub git_ref: String,
    /// The default branch as a ref, when the event tells it.
    pub head: Option<String>,
}

impl Push {
    /// A GitHub push event body.
    pub fn from_github(v: &Value) -> Result<Self, ApiError> {
        let repo = &v["repository"];
        let urls = ["clone_url", "html_url", "ssh_url", "git_url", "url"]
            .iter()
            .filter_map(|k| repo[*k].as_str())
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .collect();
        Ok(Self {
            urls,
            git_ref: required_ref(v)?,
            head: repo["default_branch"]
                .as_str()
                .filter(|b| !b.is_empty())
                .map(|b| format!("refs/heads/{b}")),
        })
    }

    /// A ferry push event body.
    pub fn from_ferry(v: &Value) -> Result<Self, ApiError> {
        let repo = v["repo"]
            .as_str()
            .filter(|r| !r.trim().is_empty())
            .ok_or_else(|| {
                ApiError::bad_request("the ferry push event needs \"repo\": URL or path")
            })?;
        Ok(Self {
            urls: vec![repo.to_string()],
            git_ref: required_ref(v)?,
            head: v["head"]
                .as_str()
                .filter(|h| h.starts_with("refs/"))
                .map(str::to_string),
        })
    }
}

fn required_ref(v: &Value) -> Result<String, ApiError> {
    v["ref"]
        .as_str()
        .filter(|r| r.starts_with("refs/"))
        .map(str::to_string)
        .ok_or_else(|| {
            ApiError::bad_request(
                "the push event needs \"ref\": a full ref such as refs/heads/main",
            )
        })
}

/// A repository URL or path reduced to what identifies the repository: `host/org/repo`
/// (lower case, no scheme, user, port, `.git` or trailing `/`; `git@host:org/repo` and
/// `https://host/org/repo` agree), or `local:` and the canonical path of a local one.
pub fn repo_key(url: &str) -> Option<String> {
    let u = ferry_git::RepoUrl::parse(url).ok()?;
    let display = u.display();
    match u.scheme() {
        ferry_git::Scheme::Local | ferry_git::Scheme::File => {
            let path = display.strip_prefix("file://").unwrap_or(display);
            let path = Path::new(path);
            let canon = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
            let s = canon.to_string_lossy();
            Some(format!("local:{}", s.trim_end_matches('/')))
        }
        _ => {
            let (authority, path) = match display.split_once("://") {
                Some((_, rest)) => rest.split_once('/').unwrap_or((rest, "")),
                // scp-like: `[user@]host:org/repo`
                None => display.split_once(':').unwrap_or((display, "")),
            };
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            let host = if host.starts_with('[') {
                host.split_once(']')
                    .map_or(host, |(h, _)| h)
                    .trim_start_matches('[')
            } else {
                host.split_once(':').map_or(host, |(h, _)| h)
            };
            let path = path.trim_matches('/');
            let path = path
                .strip_suffix(".git")
                .unwrap_or(path)
                .trim_end_matches('/');
            Some(format!("{}/{}", host, path).to_ascii_lowercase())
        }
    }
}

/// Whether an app following `target_revision` cares about a push of `git_ref`, the
/// default branch being `head` when known. `HEAD` (or empty) follows the default branch
/// (any branch when it is not known), a name its branch or tag, a full ref itself; a
/// commit SHA never moves.
pub fn revision_matches(target_revision: &str, git_ref: &str, head: Option<&str>) -> bool {
    let t = target_revision.trim();
    if t.is_empty() || t == "HEAD" {
        return match head {
            Some(h) => git_ref == h,
            None => git_ref.starts_with("refs/heads/"),
        };
    }
    if matches!(t.len(), 40 | 64) && t.chars().all(|c| c.is_ascii_hexdigit()) {
        return false;
    }
    if t.starts_with("refs/") {
        return git_ref == t;
    }
    git_ref
        .strip_prefix("refs/heads/")
        .or_else(|| git_ref.strip_prefix("refs/tags/"))
        == Some(t)
}

/// The apps of `apps` (name, sources as `(repoURL, targetRevision)`) that `push` concerns.
pub fn matching_apps<'a>(
    push: &Push,
    apps: impl IntoIterator<Item = (&'a str, Vec<(&'a str, &'a str)>)>,
) -> Vec<String> {
    let keys: Vec<String> = push.urls.iter().filter_map(|u| repo_key(u)).collect();
    apps.into_iter()
        .filter(|(_, sources)| {
            sources.iter().any(|(url, rev)| {
                repo_key(url).is_some_and(|k| keys.contains(&k))
                    && revision_matches(rev, &push.git_ref, push.head.as_deref())
            })
        })
        .map(|(name, _)| name.to_string())
        .collect()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn webhook(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let too_large = || ApiError {
        code: StatusCode::PAYLOAD_TOO_LARGE,
        message: format!("the webhook body is larger than {MAX_BODY} bytes"),
    };
    if header(&headers, "content-length")
        .and_then(|l| l.parse::<usize>().ok())
        .is_some_and(|l| l > MAX_BODY)
    {
        return Err(too_large());
    }
    let body = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| too_large())?;
    if let Some(secret) = &s.webhook_secret
        && !verify(secret, &body, header(&headers, "x-hub-signature-256"))
    {
        tracing::warn!("webhook: missing or bad X-Hub-Signature-256; nothing refreshed");
        return Err(ApiError {
            code: StatusCode::UNAUTHORIZED,
            message: "missing or bad X-Hub-Signature-256: sign the body with the webhook secret (HMAC-SHA256)".into(),
        });
    }
    let github = header(&headers, "x-github-event");
    let ferry = header(&headers, "x-ferry-event");
    let parse = || {
        serde_json::from_slice::<Value>(&body)
            .map_err(|e| ApiError::bad_request(format!("the webhook body is not JSON: {e}")))
    };
    let push = match (github, ferry) {
        (Some("push"), _) => Push::from_github(&parse()?)?,
        (_, Some("push")) => Push::from_ferry(&parse()?)?,
        (g, f) => {
            tracing::debug!("webhook: event {:?} ignored", g.or(f).unwrap_or("<none>"));
            return Ok(Json(json!({"refreshed": []})));
        }
    };
    let apps = s.engine.list_apps()?;
    let names = matching_apps(
        &push,
        apps.iter().map(|a| {
            let sources = a
                .spec
                .source
                .iter()
                .chain(&a.spec.sources)
                .map(|src| (src.repo_url.as_str(), src.target_revision.as_str()))
                .collect();
            (a.name(), sources)
        }),
    );
    tracing::info!(
        "webhook: push of {} to {:?} refreshes {names:?}",
        push.git_ref,
        push.urls
    );
    let engine = s.engine.clone();
    let task = tokio::spawn({
        let names = names.clone();
        async move {
            let refreshes = names.iter().map(|name| {
                let engine = Arc::clone(&engine);
                async move { (name.clone(), engine.refresh(name, false).await) }
            });
            futures_util::future::join_all(refreshes).await
        }
    });
    match tokio::time::timeout(ANSWER_WITHIN, task).await {
        Ok(Ok(results)) => {
            let mut refreshed = Vec::new();
            let mut failed = serde_json::Map::new();
            for (name, r) in results {
                match r {
                    Ok(_) => refreshed.push(name),
                    Err(e) => {
                        tracing::warn!("webhook: refreshing app {name}: {e}");
                        failed.insert(name, Value::String(e.to_string()));
                    }
                }
            }
            let mut answer = json!({"refreshed": refreshed});
            if !failed.is_empty() {
                answer["failed"] = Value::Object(failed);
            }
            Ok(Json(answer))
        }
        Ok(Err(e)) => Err(ApiError::internal(format!("the refresh task failed: {e}"))),
        // Still fetching: the refreshes go on; say which were started.
        Err(_) => Ok(Json(json!({"refreshed": names, "pending": true}))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_tampering_does_not() {
        let sig = signature(b"s3cret", b"{}");
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64);
        assert!(verify(b"s3cret", b"{}", Some(&sig)));
        assert!(!verify(b"s3cret", b"{ }", Some(&sig)));
        assert!(!verify(b"other", b"{}", Some(&sig)));
        assert!(!verify(b"s3cret", b"{}", None));
        assert!(!verify(b"s3cret", b"{}", Some("sha256=zz")));
        assert!(!verify(
            b"s3cret",
            b"{}",
            Some(sig.trim_start_matches("sha256="))
        ));
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_forms_of_one_repository_share_a_key() {
        let want = Some("github.com/org/repo".to_string());
        for u in [
            "https://github.com/org/repo.git",
            "https://github.com/org/repo",
            "https://github.com/org/repo/",
            "https://user:tok@GitHub.com/org/repo.git",
            "http://github.com/org/repo",
            "git@github.com:org/repo.git",
            "ssh://git@github.com/org/repo.git",
            "ssh://git@github.com:22/org/repo",
            "git://github.com/org/repo.git",
        ] {
            assert_eq!(repo_key(u), want, "{u}");
        }
        assert_ne!(repo_key("https://github.com/org/other"), want);
        assert_ne!(repo_key("https://gitlab.com/org/repo"), want);
    }

    #[test]
    fn local_paths_and_file_urls_share_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("app.git");
        std::fs::create_dir(&repo).unwrap();
        let p = repo.to_str().unwrap();
        let key = repo_key(p);
        assert!(key.as_deref().unwrap().starts_with("local:/"));
        assert_eq!(repo_key(&format!("{p}/")), key);
        assert_eq!(repo_key(&format!("file://{p}")), key);
        assert_eq!(repo_key(&format!("{p}/../app.git")), key);
        assert_ne!(repo_key(dir.path().to_str().unwrap()), key);
    }

    #[test]
    fn revisions_match_as_argo_resolves_them() {
        let table: &[(&str, &str, Option<&str>, bool)] = &[
            ("HEAD", "refs/heads/main", None, true),
            ("", "refs/heads/dev", None, true),
            ("HEAD", "refs/tags/v1", None, false),
            ("HEAD", "refs/heads/main", Some("refs/heads/main"), true),
            ("HEAD", "refs/heads/dev", Some("refs/heads/main"), false),
            ("main", "refs/heads/main", None, true),
            ("main", "refs/heads/maintenance", None, false),
            ("v1.2.0", "refs/tags/v1.2.0", None, true),
            ("refs/heads/main", "refs/heads/main", None, true),
            ("refs/tags/v1", "refs/heads/v1", None, false),
            ("dev", "refs/heads/main", None, false),
            (
                "0123456789abcdef0123456789abcdef01234567",
                "refs/heads/main",
                None,
                false,
            ),
        ];
        for (t, r, head, want) in table {
            assert_eq!(
                revision_matches(t, r, *head),
                *want,
                "{t} vs {r} ({head:?})"
            );
        }
    }

    #[test]
    fn only_apps_on_the_pushed_repo_and_ref_match() {
        let push = Push::from_github(&json!({
            "ref": "refs/heads/main",
            "after": "abc",
            "repository": {
                "clone_url": "https://github.com/org/a.git",
                "html_url": "https://github.com/org/a",
                "ssh_url": "git@github.com:org/a.git",
                "default_branch": "main",
            }
        }))
        .unwrap();
        let apps = vec![
            ("a-head", vec![("git@github.com:org/a.git", "HEAD")]),
            ("a-main", vec![("https://github.com/org/a", "main")]),
            ("a-dev", vec![("https://github.com/org/a", "dev")]),
            ("b", vec![("https://github.com/org/b", "HEAD")]),
            (
                "multi",
                vec![
                    ("https://github.com/org/b", "HEAD"),
                    ("https://github.com/org/a", ""),
                ],
            ),
        ];
        assert_eq!(
            matching_apps(&push, apps),
            vec!["a-head", "a-main", "multi"]
        );
    }

    #[test]
    fn events_without_a_ref_or_repo_are_refused() {
        assert!(Push::from_ferry(&json!({"ref": "refs/heads/main"})).is_err());
        assert!(Push::from_ferry(&json!({"repo": "/x", "ref": "main"})).is_err());
        let p = Push::from_ferry(
            &json!({"repo": "/x", "ref": "refs/heads/main", "head": "refs/heads/main"}),
        )
        .unwrap();
        assert_eq!(p.head.as_deref(), Some("refs/heads/main"));
    }
}
