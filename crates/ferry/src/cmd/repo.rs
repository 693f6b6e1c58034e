//! `ferry repo add|list|rm`: credentials for private Git repositories, kept in
//! `FERRY_HOME/repos.json` (mode 0600) and handed to the engine when the daemon starts.

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
    }
}
