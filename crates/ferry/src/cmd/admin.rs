//! `ferry admin …`: operating FERRY_HOME itself — today, rotating the key that
//! encrypts Secrets and repository passwords at rest.

use clap::{Args, Subcommand};
use serde::Serialize;

use crate::home;
use crate::output::{self, EXIT_OK, Format};

/// Operate FERRY_HOME: rotate-key.
#[derive(Subcommand, Debug)]
pub enum AdminCmd {
    /// Re-encrypt every Secret and repository password with a new key, in one
    /// transaction, then remove the old key. Stop the daemon first.
    ///
    /// Without FERRY_ENCRYPTION_KEY_FILE a new random key is made in FERRY_HOME/keys;
    /// with it, that file's key becomes the one everything is encrypted with (the way
    /// to move the key off the state disk). Back the key up: without it, the
    /// encrypted Secrets cannot be read.
    RotateKey(RotateKeyArgs),
}

/// `ferry admin rotate-key`.
#[derive(Args, Debug)]
pub struct RotateKeyArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub output: Format,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Rotated {
    key_id: String,
    secrets: usize,
    repository_passwords: usize,
    retired_keys: Vec<String>,
}

/// Runs `ferry admin …`.
pub fn run(cmd: AdminCmd) -> anyhow::Result<u8> {
    match cmd {
        AdminCmd::RotateKey(a) => rotate_key(a),
    }
}

fn rotate_key(args: RotateKeyArgs) -> anyhow::Result<u8> {
    let home = home::ferry_home();
    let db_path = home.join("ferry.db");
    anyhow::ensure!(
        db_path.exists(),
        "no state in FERRY_HOME {} (nothing to re-encrypt)",
        home.display()
    );
    // The daemon holds the keys in memory and would go on writing with the old one:
    // rotate only while it is stopped (it holds this lock while it runs).
    let lock_path = ferry_server::daemon::lock_path(&home);
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)?;
    if lock.try_lock().is_err() {
        anyhow::bail!(
            "a ferry daemon is running for FERRY_HOME {}; stop it first ('ferry down' stops its workloads too, \
             SIGTERM leaves them running), then rotate",
            home.display()
        );
    }
    let repos = ferry_server::repos::load(&home)?;
    let db = ferry_store::Db::open(&db_path)?;
    let (secrets, key_id) = db.rotate_key()?;
    let entries: Vec<_> = repos.into_iter().map(|(_, e)| e).collect();
    let repository_passwords = entries.iter().filter(|e| e.password.is_some()).count();
    ferry_server::repos::save(&home, &entries)?;
    let retired_keys = db.retire_old_keys()?;
    drop(lock);
    let done = Rotated {
        key_id,
        secrets,
        repository_passwords,
        retired_keys,
    };
    match args.output {
        Format::Table => output::emit(&format!(
            "re-encrypted {} Secret(s) and {} repository password(s) with key {}{}\nback up the new key: {}\n",
            done.secrets,
            done.repository_passwords,
            done.key_id,
            if done.retired_keys.is_empty() {
                String::new()
            } else {
                format!("; removed old key(s) {}", done.retired_keys.join(", "))
            },
            std::env::var(ferry_store::crypt::KEY_FILE_ENV)
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| ferry_store::Keyring::dir_of(&home)
                    .join(format!("{}.key", done.key_id))
                    .display()
                    .to_string()),
        ))?,
        f => output::print_data(&done, f)?,
    }
    Ok(EXIT_OK)
}
