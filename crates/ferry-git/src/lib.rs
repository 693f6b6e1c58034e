//! ferry-git owns ferry's access to Git: a cache of bare mirrors (fetched with gix),
//! revision resolution as Argo CD does it, commit trees materialised for rendering, tree
//! diffs and commit metadata; and write-back (commit and push) through the `git` CLI.
//!
//! Every call blocks: the engine runs them in `spawn_blocking`. Credentials never reach
//! an error, a log line, the disk in clear, or a cache directory name.
//!
//! ```no_run
//! use ferry_git::RepoCache;
//! let cache = RepoCache::new("/var/lib/ferry/repos");
//! cache.fetch("https://github.com/org/gitops.git", None)?;
//! let commit = cache.resolve("https://github.com/org/gitops.git", "main")?;
//! let dir = cache.checkout("https://github.com/org/gitops.git", &commit, "apps/web")?;
//! # let _ = dir;
//! # Ok::<(), ferry_git::Error>(())
//! ```

mod cache;
mod commit;
mod creds;
mod error;
mod push;
mod tree;
pub use tree::CHECKOUT_CONTENT_LIMIT;
mod url;

pub use cache::{CacheStats, FetchOutcome, RepoCache};
pub use commit::{CommitId, CommitInfo};
pub use creds::Credentials;
pub use error::{Error, Result};
pub use push::{FERRY_AUTHOR_EMAIL, FERRY_AUTHOR_NAME};
pub use tree::path_touched;
pub use url::{RepoUrl, Scheme, redact, split_userinfo};

/// The cache is shared across the engine's blocking tasks.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RepoCache>();
};
