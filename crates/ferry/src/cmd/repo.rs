//! `ferry repo add|list|rm`: credentials for private Git repositories, kept in
//! `FERRY_HOME/repos.json` (mode 0600) and handed to the engine when the daemon starts.
//! `ferry repo hook install`: a `post-receive` hook in a local bare repository that
//! tells the daemon of each push (`POST /api/webhook`), so apps refresh at once.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use ferry_server::repos::{self, RepoEntry};

use crate::home;
use crate::output::{self, EXIT_FINDING, EXIT_OK};

/// Manage repository credentials (read by the daemon at start: restart `ferry serve`
/// after a change).
#[derive(Subcommand, Debug)]
pub enum RepoCmd {
    /// Add or replace the credentials of a repository URL.
    Add(AddArgs),
    /// List repositories with credentials (passwords are never printed).
    List,
    /// Remove a repository's credentials.
    Rm(RmArgs),
    /// Git hooks that tell the daemon of pushes.
    #[command(subcommand)]
    Hook(HookCmd),
}

/// `ferry repo hook …`.
#[derive(Subcommand, Debug)]
pub enum HookCmd {
    /// Install a post-receive hook in a local bare repository: each push is sent to
    /// the daemon of FERRY_HOME (read from FERRY_HOME/daemon.json at push time), which
    /// refreshes the apps on that repository and ref. A push never fails because of it.
    /// An existing post-receive hook is kept: renamed post-receive.ferry-chained and
    /// run first.
    Install(HookInstallArgs),
}

/// `ferry repo hook install`.
#[derive(Args, Debug)]
pub struct HookInstallArgs {
    /// The bare repository (the directory holding `HEAD`, `objects/`, `hooks/`).
    pub path: PathBuf,
    /// The webhook secret file the daemon was given (`ferry serve
    /// --webhook-secret-file`); the hook signs with it (needs python3).
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
}

/// `ferry repo add`.
#[derive(Args, Debug)]
pub struct AddArgs {
    /// The repository URL, as Applications name it in `repoURL`.
    pub url: String,
    /// HTTP(S) user name.
    #[arg(long)]
    pub username: Option<String>,
    /// HTTP(S) password or access token (or FERRY_REPO_PASSWORD).
    #[arg(long, env = "FERRY_REPO_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Skip TLS certificate verification.
    #[arg(long)]
    pub insecure_skip_server_verification: bool,
}

/// `ferry repo rm`.
#[derive(Args, Debug)]
pub struct RmArgs {
    /// The repository URL.
    pub url: String,
}

/// Runs `ferry repo …`.
pub fn run(cmd: RepoCmd) -> anyhow::Result<u8> {
    let home = home::ferry_home();
    if let RepoCmd::Hook(HookCmd::Install(a)) = cmd {
        return install_hook(&home, &a);
    }
    let mut entries: Vec<RepoEntry> = repos::load(&home)?.into_iter().map(|(_, e)| e).collect();
    match cmd {
        RepoCmd::Add(a) => {
            entries.retain(|e| e.url != a.url);
            entries.push(RepoEntry {
                url: a.url.clone(),
                username: a.username,
                password: a.password,
                insecure: a.insecure_skip_server_verification,
            });
            repos::save(&home, &entries)?;
            output::emit(&format!(
                "repository '{}' added (a running daemon reads it at its next start)\n",
                a.url
            ))?;
            Ok(EXIT_OK)
        }
        RepoCmd::List => {
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|e| {
                    vec![
                        e.url.clone(),
                        e.username.clone().unwrap_or_default(),
                        if e.password.is_some() { "yes" } else { "no" }.into(),
                        e.insecure.to_string(),
                    ]
                })
                .collect();
            output::emit(&output::table(
                &["REPO", "USER", "PASSWORD", "INSECURE"],
                &rows,
            ))?;
            Ok(EXIT_OK)
        }
        RepoCmd::Rm(a) => {
            let before = entries.len();
            entries.retain(|e| e.url != a.url);
            if entries.len() == before {
                eprintln!(
                    "error: no credentials for repository '{}'; `ferry repo list` shows them",
                    a.url
                );
                return Ok(EXIT_FINDING);
            }
            repos::save(&home, &entries)?;
            output::emit(&format!("repository '{}' removed\n", a.url))?;
            Ok(EXIT_OK)
        }
        RepoCmd::Hook(_) => unreachable!("handled above"),
    }
}

/// The line that marks a hook as ferry's (so a second install replaces it).
const HOOK_MARK: &str = "# ferry post-receive hook";

/// `s` in single quotes for sh.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The hook script for the bare repository `repo` and the daemon of `home`.
fn hook_script(home: &Path, repo: &Path, secret_file: Option<&Path>) -> String {
    let repo_json = serde_json::to_string(&repo.to_string_lossy()).unwrap_or_default();
    let secret = secret_file
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(
        r#"#!/bin/sh
{HOOK_MARK} (installed by 'ferry repo hook install'): tells the ferry daemon of
# FERRY_HOME below about each pushed ref, so the apps on this repository refresh at
# once. It never fails a push: a daemon that is down refreshes at its next reconciliation.
FERRY_HOME={home}
REPO_JSON={repo_json}
SECRET_FILE={secret}

input=$(cat)
chained="$(dirname "$0")/post-receive.ferry-chained"
if [ -x "$chained" ]; then
    printf '%s\n' "$input" | "$chained"
fi

addr=$(sed -n 's/.*"addr": *"\([^"]*\)".*/\1/p' "$FERRY_HOME/daemon.json" 2>/dev/null | head -n 1)
[ -n "$addr" ] || exit 0
case "$addr" in
    0.0.0.0:*) addr="127.0.0.1:${{addr#0.0.0.0:}}" ;;
    "[::]:"*) addr="[::1]:${{addr#"[::]:"}}" ;;
esac
head=$(git symbolic-ref -q HEAD 2>/dev/null)

printf '%s\n' "$input" | while read -r old new ref; do
    [ -n "$ref" ] || continue
    case "$new$ref" in
        0000000000000000000000000000000000000000*|*'"'*|*'\'*) continue ;;
    esac
    body=$(printf '{{"repo": %s, "ref": "%s", "head": "%s", "before": "%s", "after": "%s"}}' \
        "$REPO_JSON" "$ref" "$head" "$old" "$new")
    sig=""
    if [ -n "$SECRET_FILE" ]; then
        sig=$(python3 -c 'import hashlib, hmac, sys
key = open(sys.argv[1], "rb").read().rstrip(b"\r\n")
print("sha256=" + hmac.new(key, sys.argv[2].encode(), hashlib.sha256).hexdigest())' \
            "$SECRET_FILE" "$body" 2>/dev/null)
    fi
    url="http://$addr/api/webhook"
    if command -v curl >/dev/null 2>&1; then
        set -- -fsS -m 5 -o /dev/null -X POST -H 'Content-Type: application/json' -H 'X-Ferry-Event: push'
        [ -z "$sig" ] || set -- "$@" -H "X-Hub-Signature-256: $sig"
        curl "$@" --data-binary "$body" "$url" 2>/dev/null ||
            echo "ferry: could not tell the daemon at $addr of $ref (it refreshes at its next reconciliation)" >&2
    elif command -v python3 >/dev/null 2>&1; then
        python3 -c 'import sys, urllib.request
url, body, sig = sys.argv[1:4]
headers = {{"Content-Type": "application/json", "X-Ferry-Event": "push"}}
if sig:
    headers["X-Hub-Signature-256"] = sig
req = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
try:
    urllib.request.urlopen(req, timeout=5).read()
except Exception as e:
    sys.stderr.write("ferry: could not tell the daemon of the push (%s); it refreshes at its next reconciliation\n" % e)' \
            "$url" "$body" "$sig"
    else
        echo "ferry: neither curl nor python3 found; the daemon refreshes at its next reconciliation" >&2
    fi
done
exit 0
"#,
        home = sh_quote(&home.to_string_lossy()),
        repo_json = sh_quote(&repo_json),
        secret = sh_quote(&secret),
    )
}

/// `ferry repo hook install PATH`.
fn install_hook(home: &Path, a: &HookInstallArgs) -> anyhow::Result<u8> {
    let out = Command::new("git")
        .arg("-C")
        .arg(&a.path)
        .args(["rev-parse", "--is-bare-repository", "--absolute-git-dir"])
        .output()
        .context("running git (is it installed?)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    if !out.status.success() || lines.next() != Some("true") {
        eprintln!(
            "error: {} is not a bare Git repository; give the repository pushed to (e.g. made with 'git init --bare')",
            a.path.display()
        );
        return Ok(EXIT_FINDING);
    }
    let repo = PathBuf::from(lines.next().unwrap_or_default())
        .canonicalize()
        .with_context(|| format!("resolving {}", a.path.display()))?;
    let secret_file = match &a.secret_file {
        Some(f) => Some(
            f.canonicalize()
                .with_context(|| format!("the secret file {} cannot be read", f.display()))?,
        ),
        None => None,
    };
    let home = std::path::absolute(home).context("resolving FERRY_HOME")?;
    let hooks = repo.join("hooks");
    std::fs::create_dir_all(&hooks).with_context(|| format!("creating {}", hooks.display()))?;
    let hook = hooks.join("post-receive");
    let chained = hooks.join("post-receive.ferry-chained");
    let mut note = String::new();
    if let Ok(existing) = std::fs::read_to_string(&hook)
        && !existing.contains(HOOK_MARK)
    {
        if chained.exists() {
            eprintln!(
                "error: {} exists and so does {}; merge them by hand, then run this again",
                hook.display(),
                chained.display()
            );
            return Ok(EXIT_FINDING);
        }
        std::fs::rename(&hook, &chained).with_context(|| format!("renaming {}", hook.display()))?;
        note = format!(
            " (the hook that was there is kept as {} and runs first)",
            chained.display()
        );
    }
    let tmp = hooks.join(".post-receive.ferry.tmp");
    std::fs::write(&tmp, hook_script(&home, &repo, secret_file.as_deref()))
        .and_then(|()| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)))
        .and_then(|()| std::fs::rename(&tmp, &hook))
        .with_context(|| format!("writing {}", hook.display()))?;
    output::emit(&format!(
        "post-receive hook installed in {}: pushes refresh the apps of the daemon of {}{note}\n",
        repo.display(),
        home.display()
    ))?;
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(sh_quote("a'b"), "'a'\\''b'");
    }

    #[test]
    fn the_script_names_home_and_repo() {
        let s = hook_script(Path::new("/h"), Path::new("/r it.git"), None);
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.contains("FERRY_HOME='/h'"));
        assert!(s.contains(r#"REPO_JSON='"/r it.git"'"#));
        assert!(s.contains("exit 0\n"));
    }
}
