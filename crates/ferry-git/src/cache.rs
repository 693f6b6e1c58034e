//! The repository cache: one bare mirror per repository URL, fetched with gix, and an
//! in-memory table of its refs so that resolving a revision costs a hash lookup.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use gix::remote::Direction;

use crate::commit::CommitId;
use crate::creds::{self, Credentials, SshKeyFile};
use crate::error::{Error, Result, chain};
use crate::url::{RepoUrl, Scheme};

/// Never set: fetches are not interrupted from outside (the engine drops the task instead).
static NEVER_INTERRUPT: AtomicBool = AtomicBool::new(false);

/// Every remote ref is mirrored under the same name, as `git clone --mirror` does, so
/// that `refs/pull/1/head` and other non-branch refs resolve too.
const MIRROR_REFSPEC: &str = "+refs/*:refs/*";

/// The result of [`RepoCache::fetch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOutcome {
    /// Refs created, moved or deleted by this fetch (0 when the remote did not change).
    pub updated_refs: usize,
    /// Whether this fetch created the mirror (first use of the URL).
    pub created: bool,
    /// Wall time of the fetch, lock wait included.
    pub duration: Duration,
}

/// Counters of the work the cache did, for tests, metrics and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Fetches that reached a remote (successful or not).
    pub fetches: u64,
    /// Commit trees written to disk by [`RepoCache::checkout`].
    pub trees_written: u64,
}

/// A cache of Git repositories under one root directory (`FERRY_HOME/repos`).
///
/// Layout: `mirrors/<url-name>-<hash>/` (bare mirrors), `trees/<commit>/` (the files of
/// a commit, written once), `locks/` (per-mirror file locks, so that two processes
/// sharing a `FERRY_HOME` do not fetch into one mirror at once) and `tmp/`.
///
/// All methods block; call them from `spawn_blocking`. The cache is `Send + Sync` and
/// meant to be shared (`Arc<RepoCache>`) by every app of the engine.
pub struct RepoCache {
    pub(crate) root: PathBuf,
    mirrors: Mutex<HashMap<String, Arc<Mirror>>>,
    /// commit → normalised path → directory; filled by `checkout`.
    pub(crate) trees: RwLock<HashMap<CommitId, HashMap<String, PathBuf>>>,
    /// One lock per commit being written, so that concurrent first checkouts write once.
    pub(crate) tree_locks: Mutex<HashMap<CommitId, Arc<Mutex<()>>>>,
    fetches: AtomicU64,
    pub(crate) trees_written: AtomicU64,
}

/// One repository's mirror and what we know of its refs.
pub(crate) struct Mirror {
    pub(crate) url: RepoUrl,
    pub(crate) dir: PathBuf,
    lock_file: PathBuf,
    /// Serialises fetch and first load within this process.
    op: Mutex<()>,
    table: RwLock<Option<Arc<RefTable>>>,
}

/// The refs of a mirror as of its last fetch, peeled to commits.
pub(crate) struct RefTable {
    pub(crate) repo: gix::ThreadSafeRepository,
    /// Full ref name (and `HEAD`) → commit.
    refs: HashMap<String, CommitId>,
    /// Short and full SHAs already looked up in the object store.
    shas: RwLock<HashMap<String, CommitId>>,
}

impl RepoCache {
    /// A cache rooted at `root` (created on first use).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RepoCache {
            root: root.into(),
            mirrors: Mutex::new(HashMap::new()),
            trees: RwLock::new(HashMap::new()),
            tree_locks: Mutex::new(HashMap::new()),
            fetches: AtomicU64::new(0),
            trees_written: AtomicU64::new(0),
        }
    }

    /// The cache's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// What the cache has done so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            fetches: self.fetches.load(Ordering::Relaxed),
            trees_written: self.trees_written.load(Ordering::Relaxed),
        }
    }

    /// Where the bare mirror of `url` lives (whether or not it was fetched yet).
    pub fn mirror_dir(&self, url: &str) -> Result<PathBuf> {
        Ok(self.mirror(&RepoUrl::parse(url)?).dir.clone())
    }

    /// Fetch every ref of `url` into its shared bare mirror, creating the mirror on first
    /// use. Concurrent callers on one repository take turns (in-process mutex plus a file
    /// lock). Refs deleted on the remote are deleted from the mirror; the mirror's `HEAD`
    /// follows the remote's default branch.
    ///
    /// If the remote cannot be reached the mirror is left exactly as it was and
    /// [`Error::Unreachable`] says why: what was fetched before stays resolvable.
    pub fn fetch(&self, url: &str, creds: Option<&Credentials>) -> Result<FetchOutcome> {
        let url = RepoUrl::parse(url)?;
        let mirror = self.mirror(&url);
        let start = Instant::now();
        let _op = lock(&mirror.op);
        let _flock = self.file_lock(&mirror)?;
        self.fetch_locked(&mirror, creds, start)
    }

    /// Resolve `revision` to a commit, as Argo CD does: `HEAD` or empty (the remote's
    /// default branch), a full ref name (`refs/…`), a branch, a tag (annotated tags are
    /// peeled), or a full or abbreviated (≥ 4 digits) commit SHA. A branch wins over a tag
    /// of the same name, and any ref over a SHA.
    ///
    /// Answers from the refs seen by the last fetch (in memory; no I/O for a ref). When the
    /// mirror does not exist yet it is fetched first, without credentials.
    pub fn resolve(&self, url: &str, revision: &str) -> Result<CommitId> {
        let url = RepoUrl::parse(url)?;
        let mirror = self.mirror(&url);
        let table = self.table(&mirror)?;
        let revision = revision.trim();
        let rev = if revision.is_empty() {
            "HEAD"
        } else {
            revision
        };
        if let Some(id) = table.lookup_ref(rev) {
            return Ok(id.clone());
        }
        table.lookup_sha(&mirror, rev)
    }

    /// The mirror record for `url`, created in memory on first use.
    pub(crate) fn mirror(&self, url: &RepoUrl) -> Arc<Mirror> {
        let mut mirrors = lock(&self.mirrors);
        if let Some(m) = mirrors.get(url.display()) {
            return m.clone();
        }
        let name = url.cache_dir_name();
        let m = Arc::new(Mirror {
            url: url.clone(),
            dir: self.root.join("mirrors").join(&name),
            lock_file: self.root.join("locks").join(format!("{name}.lock")),
            op: Mutex::new(()),
            table: RwLock::new(None),
        });
        mirrors.insert(url.display().to_string(), m.clone());
        m
    }

    /// The ref table of `mirror`: from memory, else read from disk, else fetched.
    pub(crate) fn table(&self, mirror: &Mirror) -> Result<Arc<RefTable>> {
        if let Some(t) = read(&mirror.table).as_ref() {
            return Ok(t.clone());
        }
        let start = Instant::now();
        let _op = lock(&mirror.op);
        if let Some(t) = read(&mirror.table).as_ref() {
            return Ok(t.clone());
        }
        if mirror.dir.join("HEAD").is_file() {
            let t = Arc::new(RefTable::load(mirror)?);
            *write(&mirror.table) = Some(t.clone());
            return Ok(t);
        }
        let _flock = self.file_lock(mirror)?;
        self.fetch_locked(mirror, None, start)?;
        read(&mirror.table)
            .clone()
            .ok_or_else(|| Error::Repository {
                url: mirror.url.display().to_string(),
                dir: mirror.dir.clone(),
                message: "the mirror has no refs after fetching".to_string(),
            })
    }

    fn file_lock(&self, mirror: &Mirror) -> Result<File> {
        let dir = self.root.join("locks");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&mirror.lock_file)
            .map_err(|e| Error::io("cannot open lock file", &mirror.lock_file, e))?;
        f.lock()
            .map_err(|e| Error::io("cannot lock", &mirror.lock_file, e))?;
        Ok(f)
    }

    /// Fetch with the mirror's locks held.
    fn fetch_locked(
        &self,
        mirror: &Mirror,
        creds: Option<&Credentials>,
        start: Instant,
    ) -> Result<FetchOutcome> {
        let creds = creds::effective(&mirror.url, creds);
        let exists = mirror.dir.join("HEAD").is_file();
        // A new mirror is built in tmp/ and renamed into place only once the fetch
        // succeeded, so a failed first fetch leaves nothing behind.
        let tmp = if exists {
            None
        } else {
            let tmp_root = self.root.join("tmp");
            std::fs::create_dir_all(&tmp_root)
                .map_err(|e| Error::io("cannot create", &tmp_root, e))?;
            let dir = tempfile::Builder::new()
                .prefix("mirror-")
                .tempdir_in(&tmp_root)
                .map_err(|e| Error::io("cannot create a temp dir in", &tmp_root, e))?;
            gix::init_bare(dir.path()).map_err(|e| Error::Repository {
                url: mirror.url.display().to_string(),
                dir: dir.path().to_path_buf(),
                message: chain(&e),
            })?;
            Some(dir)
        };
        let work_dir = tmp.as_ref().map_or(mirror.dir.as_path(), |t| t.path());
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let updated_refs = gix_fetch(work_dir, &mirror.url, creds.as_ref())?;
        if let Some(tmp) = tmp {
            let parent = self.root.join("mirrors");
            std::fs::create_dir_all(&parent).map_err(|e| Error::io("cannot create", &parent, e))?;
            let tmp_path = tmp.keep();
            std::fs::rename(&tmp_path, &mirror.dir).map_err(|e| {
                let _ = std::fs::remove_dir_all(&tmp_path);
                Error::io("cannot move the new mirror to", &mirror.dir, e)
            })?;
        }
        let table = Arc::new(RefTable::load(mirror)?);
        *write(&mirror.table) = Some(table);
        Ok(FetchOutcome {
            updated_refs,
            created: !exists,
            duration: start.elapsed(),
        })
    }
}

/// Fetch all refs of `url` into the bare repository at `dir` with gix, prune the refs
/// the remote no longer has, point `HEAD` where the remote's points. Returns the number
/// of refs that changed.
fn gix_fetch(dir: &Path, url: &RepoUrl, creds: Option<&Credentials>) -> Result<usize> {
    let shown = url.display().to_string();
    let scrub = |msg: String| creds::redact(&msg, creds);
    let repo_err = |msg: String| Error::Repository {
        url: shown.clone(),
        dir: dir.to_path_buf(),
        message: scrub(msg),
    };
    // git's default, stated so that no user or system config can widen it: follow a
    // redirect of the first request only (a moved repository), none after.
    let mut overrides: Vec<String> = vec!["http.followRedirects=initial".into()];
    let mut _key = None;
    if let Some(c) = creds {
        if c.insecure {
            overrides.push("http.sslVerify=false".into());
        }
        if let Some(k) = c
            .ssh_private_key
            .as_deref()
            .filter(|k| !k.trim().is_empty())
        {
            let file = SshKeyFile::write(k)?;
            overrides.push(format!("core.sshCommand={}", file.ssh_command()));
            overrides.push("ssh.variant=ssh".into());
            _key = Some(file);
        }
    }
    let repo = gix::open_opts(
        dir,
        gix::open::Options::default().config_overrides(overrides),
    )
    .map_err(|e| repo_err(chain(&e)))?;
    let unreachable = |msg: String| Error::Unreachable {
        url: shown.clone(),
        message: scrub(msg),
    };
    let remote = repo
        .remote_at(url.display())
        .map_err(|e| Error::InvalidUrl {
            url: shown.clone(),
            reason: scrub(chain(&e)),
        })?
        .with_fetch_tags(gix::remote::fetch::Tags::None)
        .with_refspecs([MIRROR_REFSPEC], Direction::Fetch)
        .map_err(|e| repo_err(chain(&e)))?;
    let basic = creds.and_then(Credentials::basic);
    // gix's reqwest backend ignores `http.sslVerify`: skipping certificate checks
    // (`insecure`) has to be set on the HTTP client it builds.
    let insecure_tls = match creds {
        Some(c) if c.insecure && url.scheme() == Scheme::Https => {
            Some(insecure_transport_options(&repo, url).map_err(repo_err)?)
        }
        _ => None,
    };
    let mut connection = remote
        .connect(Direction::Fetch)
        .map_err(|e| unreachable(chain(&e)))?;
    if let Some(opts) = insecure_tls {
        connection = connection.with_transport_options(opts);
    }
    // Credentials go only to the origin (scheme, host, port) they were registered
    // for, as git's `http.followRedirects=initial` keeps them: the first request may
    // be redirected, but when the new origin asks for credentials it gets none, and
    // the fetch fails naming both addresses. reqwest already drops `Authorization`
    // on a cross-origin hop; this closes the second door, the credential callback
    // gix calls with the redirected URL after its 401.
    let origin = url.http_origin();
    let refused: Arc<Mutex<Option<String>>> = Arc::default();
    let refused_in_callback = refused.clone();
    let connection = connection
        // Always our callback: never the user's credential helpers, never a prompt.
        .with_credentials(move |action| match action {
            gix::credentials::helper::Action::Get(ctx) => {
                let Some(basic) = basic.clone() else {
                    return Ok(None);
                };
                let asked = ctx.url.as_ref().map(|u| u.to_string()).unwrap_or_default();
                if origin.is_none() || crate::url::origin_of(&asked) != origin {
                    *lock(&refused_in_callback) = Some(crate::url::strip_userinfo(&asked));
                    return Ok(None);
                }
                let (u, p) = basic;
                Ok(Some(gix::credentials::protocol::Outcome {
                    identity: gix::sec::identity::Account {
                        username: u,
                        password: p,
                        oauth_refresh_token: None,
                    },
                    next: ctx.into(),
                }))
            }
            _ => Ok(None),
        });
    let redirected = |e: Error| match lock(&refused).take() {
        Some(to) => Error::Unreachable {
            url: shown.clone(),
            message: format!(
                "it redirected to {to}, which asks for credentials; the credentials of {shown} are sent only to {}, never to another origin (as git's http.followRedirects=initial): point repoURL at the new address and register the credentials for it",
                url.http_origin().unwrap_or_default()
            ),
        },
        None => e,
    };
    let options = gix::remote::ref_map::Options {
        // Ask for every ref, so that the remote's HEAD (its default branch) comes too.
        prefix_from_spec_as_filter_on_remote: false,
        ..Default::default()
    };
    let prepare = connection
        .prepare_fetch(gix::progress::Discard, options)
        .map_err(|e| redirected(unreachable(chain(&e))))?;
    if prepare.ref_map().remote_refs.is_empty() {
        return Err(Error::Fetch {
            url: shown.clone(),
            message: "the repository is empty (it has no branch yet): push a commit first".into(),
        });
    }
    let outcome = prepare
        .with_write_packed_refs_only(false)
        .receive(gix::progress::Discard, &NEVER_INTERRUPT)
        .map_err(|e| {
            redirected(Error::Fetch {
                url: shown.clone(),
                message: scrub(chain(&e)),
            })
        })?;
    use gix::remote::fetch::refs::update::Mode;
    let update_refs = match &outcome.status {
        gix::remote::fetch::Status::NoPackReceived { update_refs, .. }
        | gix::remote::fetch::Status::Change { update_refs, .. } => update_refs,
    };
    let mut changed = update_refs
        .updates
        .iter()
        .filter(|u| matches!(u.mode, Mode::FastForward | Mode::Forced | Mode::New))
        .count();
    changed += sync_head_and_prune(&repo, &outcome.ref_map.remote_refs).map_err(repo_err)?;
    Ok(changed)
}

/// The repository's HTTP transport options, with a client that accepts any certificate.
fn insecure_transport_options(
    repo: &gix::Repository,
    url: &RepoUrl,
) -> std::result::Result<Box<dyn std::any::Any>, String> {
    use gix_transport::client::blocking_io::http;
    let mut opts = repo
        .transport_options(url.display(), None)
        .map_err(|e| chain(&e))?
        .ok_or("no HTTP transport options for an https URL")?;
    let http_opts = opts
        .downcast_mut::<http::Options>()
        .ok_or("unexpected HTTP transport options type")?;
    let backend = http::reqwest::Options {
        configure_client: Some(Box::new(|builder| {
            Ok(builder.tls_danger_accept_invalid_certs(true))
        })),
        configure_request: None,
    };
    http_opts.backend = Some(Arc::new(Mutex::new(backend)));
    Ok(opts)
}

/// Delete the mirror's refs that the remote no longer advertises and point `HEAD` where
/// the remote's `HEAD` points. Returns how many refs changed.
fn sync_head_and_prune(
    repo: &gix::Repository,
    remote_refs: &[gix::protocol::handshake::Ref],
) -> std::result::Result<usize, String> {
    use gix::protocol::handshake::Ref;
    use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
    use gix::refs::{FullName, Target};

    let mut remote_names = std::collections::HashSet::new();
    let mut head: Option<Target> = None;
    for r in remote_refs {
        let (name, target) = match r {
            Ref::Peeled {
                full_ref_name,
                tag: object,
                ..
            }
            | Ref::Direct {
                full_ref_name,
                object,
            } => (full_ref_name, Target::Object(*object)),
            Ref::Symbolic {
                full_ref_name,
                target,
                ..
            }
            | Ref::Unborn {
                full_ref_name,
                target,
            } => match FullName::try_from(target.clone()) {
                Ok(t) => (full_ref_name, Target::Symbolic(t)),
                Err(_) => continue,
            },
        };
        if name == "HEAD" {
            head = Some(target);
        } else {
            remote_names.insert(name.to_string());
        }
    }
    let mut edits = Vec::new();
    let refs = repo.references().map_err(|e| chain(&e))?;
    for r in refs.all().map_err(|e| chain(&e))? {
        let r = r.map_err(|e| chain(&e))?;
        let name = r.name().as_bstr().to_string();
        if name.starts_with("refs/") && !remote_names.contains(&name) {
            edits.push(RefEdit {
                change: Change::Delete {
                    expected: PreviousValue::Any,
                    log: RefLog::AndReference,
                },
                name: r.name().to_owned(),
                deref: false,
            });
        }
    }
    let pruned = edits.len();
    let mut head_changed = 0;
    if let Some(target) = head {
        // A remote HEAD on an unborn branch, or on one we did not mirror, is not followed.
        let usable = match &target {
            Target::Symbolic(t) => remote_names.contains(&t.as_bstr().to_string()),
            Target::Object(_) => true,
        };
        let current = repo
            .find_reference("HEAD")
            .ok()
            .map(|r| r.target().into_owned());
        if usable && current.as_ref() != Some(&target) {
            head_changed = 1;
            edits.push(RefEdit {
                change: Change::Update {
                    log: LogChange::default(),
                    expected: PreviousValue::Any,
                    new: target,
                },
                name: FullName::try_from("HEAD").map_err(|e| e.to_string())?,
                deref: false,
            });
        }
    }
    if !edits.is_empty() {
        repo.edit_references(edits).map_err(|e| chain(&e))?;
    }
    Ok(pruned + head_changed)
}

impl RefTable {
    /// Read every ref of the mirror and peel it to a commit.
    fn load(mirror: &Mirror) -> Result<Self> {
        let repo_err = |message: String| Error::Repository {
            url: mirror.url.display().to_string(),
            dir: mirror.dir.clone(),
            message,
        };
        let ts = gix::ThreadSafeRepository::open(&mirror.dir).map_err(|e| repo_err(chain(&e)))?;
        let repo = ts.to_thread_local();
        let mut refs = HashMap::new();
        let platform = repo.references().map_err(|e| repo_err(chain(&e)))?;
        for r in platform.all().map_err(|e| repo_err(chain(&e)))? {
            let Ok(mut r) = r else { continue };
            let name = r.name().as_bstr().to_string();
            // Refs to trees or blobs (rare tags) cannot be deployed; skip them.
            if let Ok(commit) = r.peel_to_commit() {
                refs.insert(name, CommitId::from_oid(commit.id));
            }
        }
        if let Ok(mut head) = repo.find_reference("HEAD")
            && let Ok(commit) = head.peel_to_commit()
        {
            refs.insert("HEAD".to_string(), CommitId::from_oid(commit.id));
        }
        drop(repo);
        Ok(RefTable {
            repo: ts,
            refs,
            shas: RwLock::new(HashMap::new()),
        })
    }

    /// A ref by the names Argo CD accepts; no I/O.
    fn lookup_ref(&self, rev: &str) -> Option<&CommitId> {
        if rev == "HEAD" || rev.starts_with("refs/") {
            return self.refs.get(rev);
        }
        self.refs
            .get(&format!("refs/heads/{rev}"))
            .or_else(|| self.refs.get(&format!("refs/tags/{rev}")))
    }

    /// A full or abbreviated commit SHA, checked against the object store.
    fn lookup_sha(&self, mirror: &Mirror, rev: &str) -> Result<CommitId> {
        let not_found = || Error::RevisionNotFound {
            url: mirror.url.display().to_string(),
            revision: rev.to_string(),
        };
        if !(4..=40).contains(&rev.len()) || !rev.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(not_found());
        }
        let key = rev.to_ascii_lowercase();
        if let Some(id) = read(&self.shas).get(&key) {
            return Ok(id.clone());
        }
        let repo = self.repo.to_thread_local();
        let oid = if key.len() == 40 {
            gix::ObjectId::from_hex(key.as_bytes()).map_err(|_| not_found())?
        } else {
            let prefix = gix::hash::Prefix::from_hex(&key).map_err(|_| not_found())?;
            let mut candidates = std::collections::HashSet::new();
            let _ = repo
                .objects
                .lookup_prefix(prefix, Some(&mut candidates))
                .map_err(|e| Error::Repository {
                    url: mirror.url.display().to_string(),
                    dir: mirror.dir.clone(),
                    message: chain(&e),
                })?;
            // Like `git rev-parse abc1^{commit}`: only commits (and tags of commits) count.
            let mut commits: Vec<gix::ObjectId> = candidates
                .into_iter()
                .filter_map(|oid| peel_commit(&repo, oid))
                .collect();
            commits.sort();
            commits.dedup();
            match commits.len() {
                0 => return Err(not_found()),
                1 => commits[0],
                _ => {
                    return Err(Error::AmbiguousRevision {
                        url: mirror.url.display().to_string(),
                        revision: rev.to_string(),
                    });
                }
            }
        };
        let id = peel_commit(&repo, oid).ok_or_else(not_found)?;
        let id = CommitId::from_oid(id);
        write(&self.shas).insert(key, id.clone());
        Ok(id)
    }
}

/// The commit an object is or (as an annotated tag) points to.
fn peel_commit(repo: &gix::Repository, oid: gix::ObjectId) -> Option<gix::ObjectId> {
    let obj = repo.find_object(oid).ok()?;
    obj.peel_to_commit().ok().map(|c| c.id)
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}
