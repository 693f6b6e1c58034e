//! ferry's durable state: one SQLite database (WAL) under `FERRY_HOME` holding the
//! embedded runtime's objects, its events, and the records of the processes it
//! started, so that a killed daemon restarts into the state it left.
//!
//! The API is synchronous and cheap per call; callers on an async runtime keep one
//! [`Db`] behind their own lock or call it from `spawn_blocking`.
//!
//! Secrets are encrypted at rest (see [`crypt`]): the bodies of `Secret` objects are
//! stored as AES-256-GCM envelopes, the database and its WAL are readable by their
//! owner only, and deleted content is overwritten (`secure_delete`).

pub mod crypt;

use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;
use std::sync::{Mutex, RwLock};

pub use crypt::{CryptError, Keyring};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

/// What can go wrong with the state database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQLite refused an operation.
    #[error("state database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored row held JSON that does not parse (the file was edited or damaged).
    #[error("state database {path}: corrupt JSON in {table} row {id}: {source}")]
    Corrupt {
        /// The database file.
        path: String,
        /// The table.
        table: &'static str,
        /// The row.
        id: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// An encrypted row could not be decrypted, or the key ring could not be loaded.
    #[error("state database {path}: {source}")]
    Crypt {
        /// The database file.
        path: String,
        /// The cause.
        #[source]
        source: CryptError,
    },
    /// The database file's permissions could not be set.
    #[error("state database {path}: {source}")]
    Io {
        /// The database file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One stored event (Kubernetes `Event`, flattened).
#[derive(Clone, Debug, PartialEq)]
pub struct EventRow {
    /// Row id, increasing.
    pub id: i64,
    /// Unix time in milliseconds of the last occurrence.
    pub time_ms: i64,
    /// Namespace of the involved object.
    pub namespace: String,
    /// `Kind/name` of the involved object.
    pub object: String,
    /// `Normal` or `Warning`.
    pub kind: String,
    /// CamelCase reason (`Pulled`, `BackOff`, …).
    pub reason: String,
    /// Human message.
    pub message: String,
    /// How many times it occurred in a row.
    pub count: i64,
}

/// A process the runtime started, so that it can be re-adopted after a restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessRow {
    /// `namespace/pod/container`.
    pub id: String,
    /// OS process id.
    pub pid: i64,
    /// Start time of the process in clock ticks since boot (`/proc/PID/stat` field 22),
    /// which tells a re-used pid from ours.
    pub start_ticks: i64,
    /// Pod uid the process belongs to.
    pub pod_uid: String,
    /// Free-form JSON the runtime keeps with it (host port, restart count, …).
    pub data: Value,
}

/// One GitOps application as the engine stores it: its spec and the state it keeps
/// between restarts, each as JSON the engine owns.
#[derive(Clone, Debug, PartialEq)]
pub struct AppRow {
    /// The application's name.
    pub name: String,
    /// The Argo CD `Application` document as given (spec and metadata).
    pub spec: Value,
    /// The last computed status (`{}` until the first refresh).
    pub status: Value,
    /// Automated-sync bookkeeping: last synced commit, pause, retries (`{}` at first).
    pub automation: Value,
}

/// The current (or last) sync operation of an application.
#[derive(Clone, Debug, PartialEq)]
pub struct OperationRow {
    /// The application's name.
    pub app: String,
    /// `Running`, `Succeeded`, `Failed` or `Error`.
    pub phase: String,
    /// The whole operation state as JSON.
    pub body: Value,
}

/// The state database.
pub struct Db {
    path: String,
    conn: Mutex<Connection>,
    /// The keys Secret bodies are encrypted with; `None` for in-memory databases.
    keyring: RwLock<Option<Keyring>>,
}

/// Whether rows of `kind` hold secrets and are encrypted at rest.
fn encrypted_kind(kind: &str) -> bool {
    kind == "Secret"
}

/// The database files SQLite keeps beside `path`.
fn sidecars(path: &Path) -> [std::path::PathBuf; 3] {
    let s = path.as_os_str().to_os_string();
    let with = |suffix: &str| {
        let mut p = s.clone();
        p.push(suffix);
        std::path::PathBuf::from(p)
    };
    [path.to_path_buf(), with("-wal"), with("-shm")]
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS objects (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS objects_kind ON objects(kind, namespace);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ms INTEGER NOT NULL,
    namespace TEXT NOT NULL,
    object TEXT NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    count INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS processes (
    id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    start_ticks INTEGER NOT NULL,
    pod_uid TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS apps (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT '{}',
    automation TEXT NOT NULL DEFAULT '{}',
    history_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS app_history (
    app TEXT NOT NULL,
    id INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (app, id)
);
CREATE TABLE IF NOT EXISTS app_operations (
    app TEXT PRIMARY KEY,
    phase TEXT NOT NULL,
    body TEXT NOT NULL
);
";

/// Most events kept; older ones are dropped.
const MAX_EVENTS: i64 = 5000;

impl Db {
    /// Opens (creating if needed) the database at `path`, in WAL mode, with the key
    /// ring of the directory it is in (`FERRY_HOME/keys`, see [`Keyring`]). Secrets
    /// stored in clear by an earlier ferry are encrypted on the way.
    pub fn open(path: &Path) -> Result<Self> {
        let home = path.parent().unwrap_or(Path::new("."));
        let keyring = Keyring::load_or_create(home).map_err(|source| Error::Crypt {
            path: path.display().to_string(),
            source,
        })?;
        Self::open_with(path, Some(keyring))
    }

    /// [`Db::open`] with the key ring given (`None`: nothing encrypted, for tools
    /// that only read non-secret tables).
    pub fn open_with(path: &Path, keyring: Option<Keyring>) -> Result<Self> {
        let p = path.display().to_string();
        let wrap = |source| Error::Sqlite {
            path: p.clone(),
            source,
        };
        // Owner-only from the first byte: SQLite gives its WAL and shared-memory files
        // the database file's mode, so creating it 0600 covers all three.
        let files = sidecars(path);
        let io = |source| Error::Io {
            path: p.clone(),
            source,
        };
        std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        for f in &files {
            match std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
                _ => {}
            }
        }
        let conn = Connection::open(path).map_err(wrap)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(wrap)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(wrap)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(wrap)?;
        // Deleted rows (an old Secret, a replaced body) are overwritten, not left in
        // free pages for `strings` to find.
        conn.pragma_update(None, "secure_delete", "ON")
            .map_err(wrap)?;
        conn.execute_batch(SCHEMA).map_err(wrap)?;
        let db = Self {
            path: p,
            conn: Mutex::new(conn),
            keyring: RwLock::new(keyring),
        };
        db.encrypt_clear_rows()?;
        Ok(db)
    }

    /// An in-memory database, for tests.
    pub fn in_memory() -> Result<Self> {
        let conn = Connection::open_in_memory().map_err(|source| Error::Sqlite {
            path: ":memory:".into(),
            source,
        })?;
        conn.execute_batch(SCHEMA).map_err(|source| Error::Sqlite {
            path: ":memory:".into(),
            source,
        })?;
        Ok(Self {
            path: ":memory:".into(),
            conn: Mutex::new(conn),
            keyring: RwLock::new(None),
        })
    }

    fn err(&self, source: rusqlite::Error) -> Error {
        Error::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn keyring(&self) -> std::sync::RwLockReadGuard<'_, Option<Keyring>> {
        self.keyring.read().unwrap_or_else(|p| p.into_inner())
    }

    /// A stored body in clear: decrypted when it is an envelope.
    fn open_body(&self, ring: Option<&Keyring>, key: &str, body: String) -> Result<String> {
        if !Keyring::is_encrypted(&body) {
            return Ok(body);
        }
        let crypt = |source| Error::Crypt {
            path: self.path.clone(),
            source,
        };
        let ring = ring.ok_or(crypt(CryptError::UnknownKey {
            id: Keyring::key_id_of(&body).unwrap_or_default().to_string(),
        }))?;
        let plain = ring
            .decrypt(&body, key.as_bytes())
            .map_err(crypt)?
            .unwrap_or_default();
        String::from_utf8(plain).map_err(|_| {
            crypt(CryptError::Damaged {
                id: Keyring::key_id_of(&body).unwrap_or_default().to_string(),
            })
        })
    }

    /// Re-seals every secret row with the primary key in one transaction:
    /// clear rows (`only_clear`) or all of them (a rotation). Returns how many rows
    /// were written.
    fn reseal(&self, only_clear: bool) -> Result<usize> {
        let ring_guard = self.keyring();
        let Some(ring) = ring_guard.as_ref() else {
            return Ok(0);
        };
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let rows: Vec<(String, String, String)> = {
            let mut stmt = tx
                .prepare("SELECT key, kind, body FROM objects")
                .map_err(|e| self.err(e))?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(|e| self.err(e))?;
            rows.collect::<rusqlite::Result<_>>()
                .map_err(|e| self.err(e))?
        };
        let mut written = 0;
        for (key, kind, body) in rows {
            if !encrypted_kind(&kind) {
                continue;
            }
            let sealed_already = Keyring::is_encrypted(&body);
            if only_clear && sealed_already {
                continue;
            }
            if sealed_already && Keyring::key_id_of(&body) == Some(ring.primary_id()) {
                continue;
            }
            let plain = self.open_body(Some(ring), &key, body)?;
            let sealed = ring.encrypt(plain.as_bytes(), key.as_bytes());
            tx.execute(
                "UPDATE objects SET body = ?2 WHERE key = ?1",
                params![key, sealed],
            )
            .map_err(|e| self.err(e))?;
            written += 1;
        }
        tx.commit().map_err(|e| self.err(e))?;
        if written > 0 {
            // The clear (or old-key) bodies may still sit in the WAL and in free
            // pages: fold the WAL in and rebuild the file so no copy remains.
            conn.execute_batch(
                "PRAGMA wal_checkpoint(TRUNCATE); VACUUM; PRAGMA wal_checkpoint(TRUNCATE);",
            )
            .map_err(|e| self.err(e))?;
        }
        Ok(written)
    }

    /// Encrypts the Secret rows an earlier ferry stored in clear.
    fn encrypt_clear_rows(&self) -> Result<()> {
        let n = self.reseal(true)?;
        if n > 0 {
            tracing::warn!(
                "state database {}: encrypted {n} Secret(s) stored in clear by an earlier ferry",
                self.path
            );
        }
        Ok(())
    }

    /// Rotates the encryption key: a new primary key (or the one in
    /// `FERRY_ENCRYPTION_KEY_FILE`) and every Secret re-encrypted with it in one
    /// transaction. The old keys still decrypt until [`Db::retire_old_keys`], so
    /// other files sealed with the key ring can be re-written in between. Returns
    /// (rows re-encrypted, new key id). Run it with no daemon using the database.
    pub fn rotate_key(&self) -> Result<(usize, String)> {
        {
            let mut guard = self.keyring.write().unwrap_or_else(|p| p.into_inner());
            let Some(ring) = guard.as_mut() else {
                return Ok((0, String::new()));
            };
            let external = std::env::var_os(crypt::KEY_FILE_ENV).is_some_and(|v| !v.is_empty());
            ring.rotate(external).map_err(|source| Error::Crypt {
                path: self.path.clone(),
                source,
            })?;
        }
        let n = self.reseal(false)?;
        Ok((n, self.encryption_key_id().unwrap_or_default()))
    }

    /// Removes every key but the primary one; returns the ids removed.
    pub fn retire_old_keys(&self) -> Result<Vec<String>> {
        let mut guard = self.keyring.write().unwrap_or_else(|p| p.into_inner());
        match guard.as_mut() {
            Some(ring) => ring.retire_others().map_err(|source| Error::Crypt {
                path: self.path.clone(),
                source,
            }),
            None => Ok(Vec::new()),
        }
    }

    /// The id of the key new Secrets are encrypted with, if encryption is on.
    pub fn encryption_key_id(&self) -> Option<String> {
        self.keyring().as_ref().map(|r| r.primary_id().to_string())
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (each call is one
        // statement or one transaction), so a poisoned lock is safe to take over.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores an object's body under `key` (insert or replace).
    pub fn put_object(
        &self,
        key: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        body: &Value,
    ) -> Result<()> {
        self.put_object_text(key, kind, namespace, name, &body.to_string())
    }

    /// [`Db::put_object`] with the body already serialised as JSON.
    pub fn put_object_text(
        &self,
        key: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        body: &str,
    ) -> Result<()> {
        let sealed;
        let body = match self.keyring().as_ref() {
            Some(ring) if encrypted_kind(kind) => {
                sealed = ring.encrypt(body.as_bytes(), key.as_bytes());
                sealed.as_str()
            }
            _ => body,
        };
        self.conn()
            .prepare_cached(
                "INSERT INTO objects(key, kind, namespace, name, body) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(key) DO UPDATE SET body = excluded.body",
            )
            .and_then(|mut s| s.execute(params![key, kind, namespace, name, body]))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Removes an object; removing one that is absent is not an error.
    pub fn delete_object(&self, key: &str) -> Result<()> {
        self.conn()
            .prepare_cached("DELETE FROM objects WHERE key = ?1")
            .and_then(|mut s| s.execute(params![key]))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Every stored object as (key, body).
    pub fn objects(&self) -> Result<Vec<(String, Value)>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT key, body FROM objects ORDER BY key")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        let ring = self.keyring();
        for row in rows {
            let (key, body) = row.map_err(|e| self.err(e))?;
            let body = self.open_body(ring.as_ref(), &key, body)?;
            let value = serde_json::from_str(&body).map_err(|source| Error::Corrupt {
                path: self.path.clone(),
                table: "objects",
                id: key.clone(),
                source,
            })?;
            out.push((key, value));
        }
        Ok(out)
    }

    /// Reads a small setting.
    pub fn meta(&self, k: &str) -> Result<Option<String>> {
        self.conn()
            .query_row("SELECT v FROM meta WHERE k = ?1", params![k], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Writes a small setting.
    pub fn set_meta(&self, k: &str, v: &str) -> Result<()> {
        self.conn()
            .prepare_cached("INSERT INTO meta(k, v) VALUES (?1, ?2) ON CONFLICT(k) DO UPDATE SET v = excluded.v")
            .and_then(|mut s| s.execute(params![k, v]))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Records an event; an event equal to the newest one for the same object
    /// (same type, reason and message) bumps its count and time instead.
    pub fn add_event(
        &self,
        time_ms: i64,
        namespace: &str,
        object: &str,
        kind: &str,
        reason: &str,
        message: &str,
    ) -> Result<()> {
        let conn = self.conn();
        let last: Option<(i64, String, String, String)> = conn
            .query_row(
                "SELECT id, kind, reason, message FROM events WHERE namespace = ?1 AND object = ?2 ORDER BY id DESC LIMIT 1",
                params![namespace, object],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        match last {
            Some((id, k, r, m)) if k == kind && r == reason && m == message => conn
                .execute(
                    "UPDATE events SET count = count + 1, time_ms = ?2 WHERE id = ?1",
                    params![id, time_ms],
                )
                .map(|_| ())
                .map_err(|e| self.err(e)),
            _ => {
                conn.execute(
                    "INSERT INTO events(time_ms, namespace, object, kind, reason, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![time_ms, namespace, object, kind, reason, message],
                )
                .map_err(|e| self.err(e))?;
                let id = conn.last_insert_rowid();
                if id % 500 == 0 {
                    conn.execute(
                        "DELETE FROM events WHERE id <= ?1",
                        params![id - MAX_EVENTS],
                    )
                    .map_err(|e| self.err(e))?;
                }
                Ok(())
            }
        }
    }

    /// Events, oldest first; only one namespace's, and only one object's, when given.
    pub fn events(&self, namespace: Option<&str>, object: Option<&str>) -> Result<Vec<EventRow>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT id, time_ms, namespace, object, kind, reason, message, count FROM events
                 WHERE (?1 IS NULL OR namespace = ?1) AND (?2 IS NULL OR object = ?2) ORDER BY time_ms, id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![namespace, object], |r| {
                Ok(EventRow {
                    id: r.get(0)?,
                    time_ms: r.get(1)?,
                    namespace: r.get(2)?,
                    object: r.get(3)?,
                    kind: r.get(4)?,
                    reason: r.get(5)?,
                    message: r.get(6)?,
                    count: r.get(7)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// Records (or replaces) a running process.
    pub fn put_process(&self, row: &ProcessRow) -> Result<()> {
        self.conn()
            .prepare_cached(
                "INSERT INTO processes(id, pid, start_ticks, pod_uid, data) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(id) DO UPDATE SET pid = excluded.pid, start_ticks = excluded.start_ticks,
                 pod_uid = excluded.pod_uid, data = excluded.data",
            )
            .and_then(|mut s| s.execute(params![row.id, row.pid, row.start_ticks, row.pod_uid, row.data.to_string()]))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Forgets a process.
    pub fn delete_process(&self, id: &str) -> Result<()> {
        self.conn()
            .prepare_cached("DELETE FROM processes WHERE id = ?1")
            .and_then(|mut s| s.execute(params![id]))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Every recorded process.
    pub fn processes(&self) -> Result<Vec<ProcessRow>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT id, pid, start_ticks, pod_uid, data FROM processes ORDER BY id")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, pid, start_ticks, pod_uid, data) = row.map_err(|e| self.err(e))?;
            let data = serde_json::from_str(&data).map_err(|source| Error::Corrupt {
                path: self.path.clone(),
                table: "processes",
                id: id.clone(),
                source,
            })?;
            out.push(ProcessRow {
                id,
                pid,
                start_ticks,
                pod_uid,
                data,
            });
        }
        Ok(out)
    }
}

/// Applications, their sync history and their current operation (the GitOps engine's
/// state). Every write is one statement or one transaction.
impl Db {
    fn parse_json(&self, table: &'static str, id: &str, text: &str) -> Result<Value> {
        serde_json::from_str(text).map_err(|source| Error::Corrupt {
            path: self.path.clone(),
            table,
            id: id.to_string(),
            source,
        })
    }

    /// Stores an application's spec, creating the row if needed (status, automation
    /// state and history are kept). Returns whether the application is new.
    pub fn put_app(&self, name: &str, spec: &Value) -> Result<bool> {
        let conn = self.conn();
        let existed: bool = conn
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM apps WHERE name = ?1)",
                params![name],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        conn.execute(
            "INSERT INTO apps(name, spec) VALUES (?1, ?2)
             ON CONFLICT(name) DO UPDATE SET spec = excluded.spec",
            params![name, spec.to_string()],
        )
        .map_err(|e| self.err(e))?;
        Ok(!existed)
    }

    /// Stores an application's last status; a no-op for an unknown application.
    pub fn set_app_status(&self, name: &str, status: &Value) -> Result<()> {
        self.conn()
            .execute(
                "UPDATE apps SET status = ?2 WHERE name = ?1",
                params![name, status.to_string()],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Stores an application's automated-sync bookkeeping; a no-op for an unknown one.
    pub fn set_app_automation(&self, name: &str, automation: &Value) -> Result<()> {
        self.conn()
            .execute(
                "UPDATE apps SET automation = ?2 WHERE name = ?1",
                params![name, automation.to_string()],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    fn app_from_row(
        &self,
        (name, spec, status, automation): (String, String, String, String),
    ) -> Result<AppRow> {
        Ok(AppRow {
            spec: self.parse_json("apps", &name, &spec)?,
            status: self.parse_json("apps", &name, &status)?,
            automation: self.parse_json("apps", &name, &automation)?,
            name,
        })
    }

    /// One application.
    pub fn app(&self, name: &str) -> Result<Option<AppRow>> {
        let row = self
            .conn()
            .query_row(
                "SELECT name, spec, status, automation FROM apps WHERE name = ?1",
                params![name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        row.map(|r| self.app_from_row(r)).transpose()
    }

    /// Every application, by name.
    pub fn apps(&self) -> Result<Vec<AppRow>> {
        let rows: Vec<(String, String, String, String)> = {
            let conn = self.conn();
            let mut stmt = conn
                .prepare("SELECT name, spec, status, automation FROM apps ORDER BY name")
                .map_err(|e| self.err(e))?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(|e| self.err(e))?
        };
        rows.into_iter().map(|r| self.app_from_row(r)).collect()
    }

    /// Forgets an application with its history and operation. Returns whether it existed.
    pub fn delete_app(&self, name: &str) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let n = tx
            .execute("DELETE FROM apps WHERE name = ?1", params![name])
            .map_err(|e| self.err(e))?;
        tx.execute("DELETE FROM app_history WHERE app = ?1", params![name])
            .map_err(|e| self.err(e))?;
        tx.execute("DELETE FROM app_operations WHERE app = ?1", params![name])
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    /// An application's sync history as (id, entry), oldest first.
    pub fn app_history(&self, app: &str) -> Result<Vec<(i64, Value)>> {
        let rows: Vec<(i64, String)> = {
            let conn = self.conn();
            let mut stmt = conn
                .prepare("SELECT id, body FROM app_history WHERE app = ?1 ORDER BY id")
                .map_err(|e| self.err(e))?;
            stmt.query_map(params![app], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(|e| self.err(e))?
        };
        rows.into_iter()
            .map(|(id, body)| {
                Ok((
                    id,
                    self.parse_json("app_history", &format!("{app}#{id}"), &body)?,
                ))
            })
            .collect()
    }

    /// Stores an application's operation (the current one, replacing the last).
    pub fn put_app_operation(&self, app: &str, phase: &str, body: &Value) -> Result<()> {
        self.conn()
            .execute(
                "INSERT INTO app_operations(app, phase, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT(app) DO UPDATE SET phase = excluded.phase, body = excluded.body",
                params![app, phase, body.to_string()],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Stores a finished operation and, in the same transaction, appends `history`
    /// (when given) to the application's history with the next id, keeping the newest
    /// `keep` entries. The entry is stored as given; its id is returned.
    pub fn finish_app_operation(
        &self,
        app: &str,
        phase: &str,
        body: &Value,
        history: Option<(&Value, usize)>,
    ) -> Result<Option<i64>> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT INTO app_operations(app, phase, body) VALUES (?1, ?2, ?3)
             ON CONFLICT(app) DO UPDATE SET phase = excluded.phase, body = excluded.body",
            params![app, phase, body.to_string()],
        )
        .map_err(|e| self.err(e))?;
        let mut id = None;
        if let Some((entry, keep)) = history {
            id = Some(Self::push_history(&tx, app, entry, keep).map_err(|e| self.err(e))?);
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(id)
    }

    /// Appends `entry` to `app`'s history inside `tx` with the next id, keeping the
    /// newest `keep` entries; returns the id.
    fn push_history(
        tx: &rusqlite::Transaction<'_>,
        app: &str,
        entry: &Value,
        keep: usize,
    ) -> rusqlite::Result<i64> {
        let next = Self::next_history_id(tx, app)?;
        tx.execute(
            "INSERT INTO app_history(app, id, body) VALUES (?1, ?2, ?3)",
            params![app, next, entry.to_string()],
        )?;
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        tx.execute(
            "DELETE FROM app_history WHERE app = ?1 AND id <= ?2",
            params![app, next.saturating_sub(keep)],
        )?;
        Ok(next)
    }

    /// Stores a running operation together with the history entry it starts: the
    /// entry gets the next id, and `body` (given that id) is stored as the operation in
    /// the same transaction, so that a crash leaves both or neither. Keeps the newest
    /// `keep` entries. Returns the id.
    pub fn start_app_history(
        &self,
        app: &str,
        phase: &str,
        entry: &Value,
        keep: usize,
        body: impl FnOnce(i64) -> Value,
    ) -> Result<i64> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let next = Self::push_history(&tx, app, entry, keep).map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT INTO app_operations(app, phase, body) VALUES (?1, ?2, ?3)
             ON CONFLICT(app) DO UPDATE SET phase = excluded.phase, body = excluded.body",
            params![app, phase, body(next).to_string()],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(next)
    }

    /// Stores a finished operation and, in the same transaction, replaces history
    /// entry `id` (the one the operation started) with `entry`. An entry already
    /// dropped by the history limit stays dropped. Returns whether it was replaced.
    pub fn finish_app_operation_updating(
        &self,
        app: &str,
        phase: &str,
        body: &Value,
        id: i64,
        entry: &Value,
    ) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT INTO app_operations(app, phase, body) VALUES (?1, ?2, ?3)
             ON CONFLICT(app) DO UPDATE SET phase = excluded.phase, body = excluded.body",
            params![app, phase, body.to_string()],
        )
        .map_err(|e| self.err(e))?;
        let n = tx
            .execute(
                "UPDATE app_history SET body = ?3 WHERE app = ?1 AND id = ?2",
                params![app, id, entry.to_string()],
            )
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    /// The next history id of `app`: ids keep increasing even when old entries are
    /// dropped (the counter lives in the `apps` row; the history's maximum is the floor).
    fn next_history_id(tx: &rusqlite::Transaction<'_>, app: &str) -> rusqlite::Result<i64> {
        let max: i64 = tx.query_row(
            "SELECT COALESCE(MAX(id), 0) FROM app_history WHERE app = ?1",
            params![app],
            |r| r.get(0),
        )?;
        let seq: Option<i64> = tx
            .query_row(
                "SELECT history_seq FROM apps WHERE name = ?1",
                params![app],
                |r| r.get(0),
            )
            .optional()?;
        let next = seq.unwrap_or(0).max(max) + 1;
        tx.execute(
            "UPDATE apps SET history_seq = ?2 WHERE name = ?1",
            params![app, next],
        )?;
        Ok(next)
    }

    /// An application's current (or last) operation.
    pub fn app_operation(&self, app: &str) -> Result<Option<OperationRow>> {
        let row: Option<(String, String)> = self
            .conn()
            .query_row(
                "SELECT phase, body FROM app_operations WHERE app = ?1",
                params![app],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        row.map(|(phase, body)| {
            Ok(OperationRow {
                app: app.to_string(),
                phase,
                body: self.parse_json("app_operations", app, &body)?,
            })
        })
        .transpose()
    }

    /// Every application's operation in `phase` (e.g. `Running`, to recover after a crash).
    pub fn app_operations_in_phase(&self, phase: &str) -> Result<Vec<OperationRow>> {
        let rows: Vec<(String, String)> = {
            let conn = self.conn();
            let mut stmt = conn
                .prepare("SELECT app, body FROM app_operations WHERE phase = ?1 ORDER BY app")
                .map_err(|e| self.err(e))?;
            stmt.query_map(params![phase], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(|e| self.err(e))?
        };
        rows.into_iter()
            .map(|(app, body)| {
                Ok(OperationRow {
                    body: self.parse_json("app_operations", &app, &body)?,
                    phase: phase.to_string(),
                    app,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every byte of the database's files, to look for a secret as `strings` would.
    fn raw_files(path: &Path) -> Vec<u8> {
        sidecars(path)
            .iter()
            .filter_map(|f| std::fs::read(f).ok())
            .flatten()
            .collect()
    }

    fn contains(hay: &[u8], needle: &str) -> bool {
        hay.windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    #[test]
    fn regression_secret_values_are_not_readable_in_the_database_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.db");
        let db = Db::open(&path).unwrap();
        let secret = json!({"kind": "Secret", "metadata": {"name": "db"},
                            "data": {"password": "c3VwZXJzZWNyZXQtdmFsdWU="},
                            "stringData": {"x": "plain-marker-123"}});
        db.put_object("v1/Secret/default/db", "Secret", "default", "db", &secret)
            .unwrap();
        db.put_object(
            "v1/ConfigMap/default/c",
            "ConfigMap",
            "default",
            "c",
            &json!({"data": {"k": "cm-visible"}}),
        )
        .unwrap();
        let raw = raw_files(&path);
        assert!(!contains(&raw, "c3VwZXJzZWNyZXQtdmFsdWU="));
        assert!(!contains(&raw, "plain-marker-123"));
        assert!(contains(&raw, "cm-visible"), "only Secrets are encrypted");
        // Read back in clear, also after reopening.
        drop(db);
        let db = Db::open(&path).unwrap();
        let objects = db.objects().unwrap();
        let got = objects
            .iter()
            .find(|(k, _)| k == "v1/Secret/default/db")
            .unwrap();
        assert_eq!(got.1, secret);
        for f in sidecars(&path) {
            if let Ok(m) = std::fs::metadata(&f) {
                assert_eq!(m.permissions().mode() & 0o777, 0o600, "{}", f.display());
            }
        }
    }

    #[test]
    fn regression_secrets_stored_in_clear_by_an_older_ferry_are_encrypted_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.db");
        {
            // An older ferry: no key ring, world-readable file.
            let db = Db::open_with(&path, None).unwrap();
            db.put_object(
                "v1/Secret/default/s",
                "Secret",
                "default",
                "s",
                &json!({"data": {"k": "b2xkLWNsZWFyLXNlY3JldA=="}}),
            )
            .unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        assert!(contains(&raw_files(&path), "b2xkLWNsZWFyLXNlY3JldA=="));
        let db = Db::open(&path).unwrap();
        assert!(!contains(&raw_files(&path), "b2xkLWNsZWFyLXNlY3JldA=="));
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (_, body) = db.objects().unwrap().pop().unwrap();
        assert_eq!(body["data"]["k"], "b2xkLWNsZWFyLXNlY3JldA==");
    }

    #[test]
    fn rotating_the_key_re_encrypts_every_secret_and_retires_the_old_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.db");
        let db = Db::open(&path).unwrap();
        for i in 0..3 {
            let key = format!("v1/Secret/default/s{i}");
            db.put_object(
                &key,
                "Secret",
                "default",
                &format!("s{i}"),
                &json!({"data": {"i": i}}),
            )
            .unwrap();
        }
        let old = db.encryption_key_id().unwrap();
        let (n, new) = db.rotate_key().unwrap();
        let retired = db.retire_old_keys().unwrap();
        assert_eq!(n, 3);
        assert_ne!(new, old);
        assert_eq!(retired, vec![old.clone()]);
        assert!(
            !Keyring::dir_of(dir.path())
                .join(format!("{old}.key"))
                .exists()
        );
        drop(db);
        let db = Db::open(&path).unwrap();
        assert_eq!(db.encryption_key_id().as_deref(), Some(new.as_str()));
        assert_eq!(db.objects().unwrap().len(), 3);
    }

    #[test]
    fn a_missing_key_is_a_clear_error_not_empty_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.db");
        let db = Db::open(&path).unwrap();
        db.put_object(
            "v1/Secret/default/s",
            "Secret",
            "default",
            "s",
            &json!({"data": {}}),
        )
        .unwrap();
        drop(db);
        std::fs::remove_dir_all(Keyring::dir_of(dir.path())).unwrap();
        let err = Db::open(&path)
            .and_then(|db| db.objects())
            .unwrap_err()
            .to_string();
        assert!(err.contains("restore that key file"), "{err}");
    }

    #[test]
    fn objects_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.db");
        {
            let db = Db::open(&path).unwrap();
            db.put_object(
                "/ConfigMap:default/a",
                "ConfigMap",
                "default",
                "a",
                &json!({"x": 1}),
            )
            .unwrap();
            db.put_object(
                "/ConfigMap:default/a",
                "ConfigMap",
                "default",
                "a",
                &json!({"x": 2}),
            )
            .unwrap();
            db.put_object(
                "/ConfigMap:default/b",
                "ConfigMap",
                "default",
                "b",
                &json!({}),
            )
            .unwrap();
            db.delete_object("/ConfigMap:default/b").unwrap();
            db.set_meta("rv", "7").unwrap();
        }
        let db = Db::open(&path).unwrap();
        let objs = db.objects().unwrap();
        assert_eq!(
            objs,
            vec![("/ConfigMap:default/a".to_string(), json!({"x": 2}))]
        );
        assert_eq!(db.meta("rv").unwrap().as_deref(), Some("7"));
    }

    #[test]
    fn repeated_events_are_counted() {
        let db = Db::in_memory().unwrap();
        db.add_event(
            1,
            "default",
            "Pod/web",
            "Warning",
            "BackOff",
            "Back-off pulling image",
        )
        .unwrap();
        db.add_event(
            2,
            "default",
            "Pod/web",
            "Warning",
            "BackOff",
            "Back-off pulling image",
        )
        .unwrap();
        db.add_event(3, "default", "Pod/web", "Normal", "Pulled", "ok")
            .unwrap();
        let ev = db.events(Some("default"), None).unwrap();
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].count, 2);
        assert_eq!(ev[0].time_ms, 2);
        assert!(db.events(Some("other"), None).unwrap().is_empty());
    }

    #[test]
    fn processes_round_trip() {
        let db = Db::in_memory().unwrap();
        let row = ProcessRow {
            id: "default/web-1/web".into(),
            pid: 42,
            start_ticks: 1000,
            pod_uid: "u1".into(),
            data: json!({"port": 30001}),
        };
        db.put_process(&row).unwrap();
        assert_eq!(db.processes().unwrap(), vec![row.clone()]);
        db.delete_process(&row.id).unwrap();
        assert!(db.processes().unwrap().is_empty());
    }
    #[test]
    fn apps_history_and_operations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.db");
        {
            let db = Db::open(&path).unwrap();
            assert!(db.put_app("web", &json!({"spec": 1})).unwrap());
            assert!(!db.put_app("web", &json!({"spec": 2})).unwrap());
            db.set_app_status("web", &json!({"sync": "Synced"}))
                .unwrap();
            db.set_app_automation("web", &json!({"paused": true}))
                .unwrap();
            db.put_app_operation("web", "Running", &json!({"phase": "Running"}))
                .unwrap();
            for i in 0..4 {
                let id = db
                    .finish_app_operation(
                        "web",
                        "Succeeded",
                        &json!({}),
                        Some((&json!({"n": i}), 3)),
                    )
                    .unwrap();
                assert_eq!(id, Some(i + 1));
            }
        }
        let db = Db::open(&path).unwrap();
        let app = db.app("web").unwrap().unwrap();
        assert_eq!(app.spec, json!({"spec": 2}));
        assert_eq!(app.status, json!({"sync": "Synced"}));
        assert_eq!(app.automation, json!({"paused": true}));
        let ids: Vec<i64> = db.app_history("web").unwrap().iter().map(|h| h.0).collect();
        assert_eq!(ids, [2, 3, 4]);
        assert_eq!(db.app_operation("web").unwrap().unwrap().phase, "Succeeded");
        assert!(db.app_operations_in_phase("Running").unwrap().is_empty());
        // Ids keep increasing after every entry was dropped.
        let id = db
            .finish_app_operation("web", "Succeeded", &json!({}), Some((&json!({}), 0)))
            .unwrap();
        assert_eq!(id, Some(5));
        assert!(db.app_history("web").unwrap().is_empty());
        assert!(db.delete_app("web").unwrap());
        assert!(db.app("web").unwrap().is_none());
        assert!(db.app_operation("web").unwrap().is_none());
        assert!(!db.delete_app("web").unwrap());
    }
}
