//! Encryption at rest, as Kubernetes' `EncryptionConfiguration` does it for Secrets:
//! AES-256-GCM with a random 96-bit nonce per value, the value's own identity (the
//! row key) bound in as associated data so a ciphertext cannot be moved to another
//! row, and a key id in the envelope so old keys keep decrypting after a rotation.
//!
//! Keys live in `FERRY_HOME/keys/` (directory 0700, files 0600), one file per key
//! named `<id>.key` holding the key as base64 (the format of Kubernetes'
//! `aescbc`/`aesgcm` provider secrets), and `keys/primary` naming the key new values
//! are written with. `FERRY_ENCRYPTION_KEY_FILE` names a key file kept elsewhere
//! (say, on a disk that is not backed up with the state): that key is then the
//! primary one and the directory's keys only decrypt.
//!
//! Envelope: `ferry:enc:aesgcm:v1:<id>:<base64(nonce ‖ ciphertext ‖ tag)>`.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest as _, Sha256};

/// The prefix every encrypted value starts with.
pub const PREFIX: &str = "ferry:enc:aesgcm:v1:";
/// The environment variable naming a key file outside `FERRY_HOME`.
pub const KEY_FILE_ENV: &str = "FERRY_ENCRYPTION_KEY_FILE";

const NONCE_LEN: usize = 12;

/// What can go wrong with keys and encrypted values.
#[derive(Debug, thiserror::Error)]
pub enum CryptError {
    /// A key file or the key directory could not be read or written.
    #[error("encryption key {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A key file does not hold 32 bytes of base64.
    #[error(
        "encryption key {path}: {why}; a key file holds 32 random bytes as base64 (e.g. `head -c 32 /dev/urandom | base64`)"
    )]
    BadKey {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A value names a key that is not in the key ring.
    #[error(
        "a stored value was encrypted with key {id}, which is neither in FERRY_HOME/keys nor FERRY_ENCRYPTION_KEY_FILE; restore that key file from your backup"
    )]
    UnknownKey {
        /// The key id the value names.
        id: String,
    },
    /// A value does not decrypt: damaged, or moved from another row.
    #[error("a stored value does not decrypt with key {id} (damaged, or not written for this row)")]
    Damaged {
        /// The key id the value names.
        id: String,
    },
}

/// One AES-256 key and its id (the first 8 hex digits of its SHA-256).
#[derive(Clone)]
struct Key {
    id: String,
    bytes: [u8; 32],
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.id)
    }
}

impl Key {
    fn new(bytes: [u8; 32]) -> Self {
        let id = hex::encode(&Sha256::digest(bytes)[..4]);
        Self { id, bytes }
    }

    fn read(path: &Path) -> Result<Self, CryptError> {
        let text = std::fs::read_to_string(path).map_err(|source| CryptError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let raw = B64.decode(text.trim()).map_err(|e| CryptError::BadKey {
            path: path.to_path_buf(),
            why: format!("not base64 ({e})"),
        })?;
        let bytes: [u8; 32] = raw.try_into().map_err(|raw: Vec<u8>| CryptError::BadKey {
            path: path.to_path_buf(),
            why: format!("{} bytes instead of 32", raw.len()),
        })?;
        Ok(Self::new(bytes))
    }
}

/// The keys of one `FERRY_HOME`: the primary one encrypts, all of them decrypt.
#[derive(Clone, Debug)]
pub struct Keyring {
    dir: PathBuf,
    keys: Vec<Key>,
    primary: usize,
}

fn random_bytes<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut out = [0u8; N];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut out)?;
    Ok(out)
}

/// Writes `body` to `path` atomically, readable by its owner only.
fn write_private(path: &Path, body: &[u8]) -> Result<(), CryptError> {
    let io = |source| CryptError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::File::options()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(body).and_then(|()| f.sync_all()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

impl Keyring {
    /// `home/keys`.
    pub fn dir_of(home: &Path) -> PathBuf {
        home.join("keys")
    }

    /// The key ring of `home`: the keys in `home/keys` (one is made on first use), and
    /// the key in `FERRY_ENCRYPTION_KEY_FILE` as the primary when that is set.
    pub fn load_or_create(home: &Path) -> Result<Self, CryptError> {
        let external = std::env::var_os(KEY_FILE_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        Self::load_with(home, external.as_deref())
    }

    /// [`Keyring::load_or_create`] with the external key file given explicitly.
    pub fn load_with(home: &Path, external: Option<&Path>) -> Result<Self, CryptError> {
        let dir = Self::dir_of(home);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CryptError::Io { path, source }
        };
        // Created owner-only, FERRY_HOME too when this is the first thing made in it.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io(&dir))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(io(&dir))?;
        let mut keys = Vec::new();
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(io(&dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "key"))
            .collect();
        entries.sort();
        for path in entries {
            let key = Key::read(&path)?;
            // A key file someone loosened is tightened again: it is the one secret
            // that unlocks every other.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(io(&path))?;
            keys.push(key);
        }
        let mut ring = Self {
            dir: dir.clone(),
            keys,
            primary: 0,
        };
        if let Some(path) = external {
            let key = Key::read(path)?;
            ring.primary = ring.insert(key);
            return Ok(ring);
        }
        let named = std::fs::read_to_string(dir.join("primary"))
            .ok()
            .map(|s| s.trim().to_string());
        match named.and_then(|id| ring.keys.iter().position(|k| k.id == id)) {
            Some(i) => ring.primary = i,
            None if ring.keys.is_empty() => {
                ring.primary = ring.add_new_key()?;
            }
            // Keys but no valid primary (a crash mid-rotation, or an edited file):
            // the newest file wins, and is recorded so the choice is stable.
            None => {
                let newest = ring.newest_key_index();
                ring.set_primary(newest)?;
            }
        }
        Ok(ring)
    }

    fn insert(&mut self, key: Key) -> usize {
        match self.keys.iter().position(|k| k.id == key.id) {
            Some(i) => i,
            None => {
                self.keys.push(key);
                self.keys.len() - 1
            }
        }
    }

    fn newest_key_index(&self) -> usize {
        let mtime = |k: &Key| {
            std::fs::metadata(self.dir.join(format!("{}.key", k.id)))
                .and_then(|m| m.modified())
                .ok()
        };
        (0..self.keys.len())
            .max_by_key(|&i| mtime(&self.keys[i]))
            .unwrap_or(0)
    }

    fn set_primary(&mut self, i: usize) -> Result<(), CryptError> {
        write_private(
            &self.dir.join("primary"),
            format!("{}\n", self.keys[i].id).as_bytes(),
        )?;
        self.primary = i;
        Ok(())
    }

    /// Makes a new random key, writes it to the key directory, and makes it primary.
    fn add_new_key(&mut self) -> Result<usize, CryptError> {
        let bytes = random_bytes::<32>().map_err(|source| CryptError::Io {
            path: PathBuf::from("/dev/urandom"),
            source,
        })?;
        let key = Key::new(bytes);
        write_private(
            &self.dir.join(format!("{}.key", key.id)),
            format!("{}\n", B64.encode(key.bytes)).as_bytes(),
        )?;
        let i = self.insert(key);
        self.set_primary(i)?;
        Ok(i)
    }

    /// Starts a rotation: a new primary key (written to the key directory); values
    /// are re-encrypted by the caller, which then calls [`Keyring::retire_others`].
    /// With `FERRY_ENCRYPTION_KEY_FILE` set, that key stays primary and nothing new
    /// is made: re-encrypting moves every value onto it.
    pub fn rotate(&mut self, external: bool) -> Result<(), CryptError> {
        if !external {
            self.add_new_key()?;
        }
        Ok(())
    }

    /// Removes every key file but the primary's (after all values were re-encrypted
    /// with it). Returns the ids removed.
    pub fn retire_others(&mut self) -> Result<Vec<String>, CryptError> {
        let keep = self.keys[self.primary].clone();
        let mut removed = Vec::new();
        for k in &self.keys {
            if k.id == keep.id {
                continue;
            }
            let path = self.dir.join(format!("{}.key", k.id));
            match std::fs::remove_file(&path) {
                Ok(()) => removed.push(k.id.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(CryptError::Io { path, source }),
            }
        }
        self.keys = vec![keep];
        self.primary = 0;
        Ok(removed)
    }

    /// The primary key's id.
    pub fn primary_id(&self) -> &str {
        &self.keys[self.primary].id
    }

    /// Whether `text` is an encrypted envelope.
    pub fn is_encrypted(text: &str) -> bool {
        text.starts_with(PREFIX)
    }

    /// The id of the key `text` was encrypted with, if it is an envelope.
    pub fn key_id_of(text: &str) -> Option<&str> {
        text.strip_prefix(PREFIX)?.split(':').next()
    }

    /// Encrypts `plain` for the row `aad` with the primary key.
    pub fn encrypt(&self, plain: &[u8], aad: &[u8]) -> String {
        let key = &self.keys[self.primary];
        let cipher = Aes256Gcm::new_from_slice(&key.bytes).expect("32-byte key");
        // /dev/urandom does not fail on Linux once the pool is ready; should it, a
        // nonce from the clock and a counter still never repeats within one process.
        let nonce = random_bytes::<NONCE_LEN>().unwrap_or_else(|_| fallback_nonce());
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
            .expect("AES-GCM encryption of an in-memory buffer");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}:{}", key.id, B64.encode(out))
    }

    /// Decrypts an envelope written for the row `aad`; `Ok(None)` when `text` is not
    /// an envelope (a value stored before encryption was on).
    pub fn decrypt(&self, text: &str, aad: &[u8]) -> Result<Option<Vec<u8>>, CryptError> {
        let Some(rest) = text.strip_prefix(PREFIX) else {
            return Ok(None);
        };
        let (id, body) = rest.split_once(':').unwrap_or((rest, ""));
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| CryptError::UnknownKey { id: id.to_string() })?;
        let damaged = || CryptError::Damaged { id: id.to_string() };
        let raw = B64.decode(body).map_err(|_| damaged())?;
        if raw.len() < NONCE_LEN {
            return Err(damaged());
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let cipher = Aes256Gcm::new_from_slice(&key.bytes).expect("32-byte key");
        cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad })
            .map(Some)
            .map_err(|_| damaged())
    }
}

fn fallback_nonce() -> [u8; NONCE_LEN] {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    let mut out = [0u8; NONCE_LEN];
    out[..8].copy_from_slice(&now.to_le_bytes());
    out[8..].copy_from_slice(&SEQ.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_round_trips_and_is_bound_to_its_row() {
        let home = tempfile::tempdir().unwrap();
        let ring = Keyring::load_with(home.path(), None).unwrap();
        let sealed = ring.encrypt(b"hunter2", b"row-a");
        assert!(sealed.starts_with(PREFIX));
        assert!(!sealed.contains("hunter2"));
        assert_eq!(
            ring.decrypt(&sealed, b"row-a").unwrap().as_deref(),
            Some(&b"hunter2"[..])
        );
        assert!(matches!(
            ring.decrypt(&sealed, b"row-b"),
            Err(CryptError::Damaged { .. })
        ));
        assert_eq!(ring.decrypt("{\"plain\":1}", b"row-a").unwrap(), None);
        // Two encryptions of one value differ (a fresh nonce each time).
        assert_ne!(sealed, ring.encrypt(b"hunter2", b"row-a"));
    }

    #[test]
    fn keys_are_private_and_stable_across_loads() {
        let home = tempfile::tempdir().unwrap();
        let a = Keyring::load_with(home.path(), None).unwrap();
        let b = Keyring::load_with(home.path(), None).unwrap();
        assert_eq!(a.primary_id(), b.primary_id());
        let dir = Keyring::dir_of(home.path());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(format!("{}.key", a.primary_id()))), 0o600);
        let sealed = a.encrypt(b"x", b"k");
        assert_eq!(
            b.decrypt(&sealed, b"k").unwrap().as_deref(),
            Some(&b"x"[..])
        );
    }

    #[test]
    fn rotation_keeps_old_values_readable_until_retired() {
        let home = tempfile::tempdir().unwrap();
        let mut ring = Keyring::load_with(home.path(), None).unwrap();
        let old = ring.encrypt(b"v", b"k");
        let old_id = ring.primary_id().to_string();
        ring.rotate(false).unwrap();
        assert_ne!(ring.primary_id(), old_id);
        assert_eq!(
            ring.decrypt(&old, b"k").unwrap().as_deref(),
            Some(&b"v"[..])
        );
        let new = ring.encrypt(b"v", b"k");
        assert_eq!(Keyring::key_id_of(&new), Some(ring.primary_id()));
        assert_eq!(ring.retire_others().unwrap(), vec![old_id.clone()]);
        assert!(matches!(
            ring.decrypt(&old, b"k"),
            Err(CryptError::UnknownKey { id }) if id == old_id
        ));
        // The next load sees only the new key, still primary.
        let again = Keyring::load_with(home.path(), None).unwrap();
        assert_eq!(again.primary_id(), ring.primary_id());
    }

    #[test]
    fn an_external_key_file_is_primary_and_a_bad_one_is_named() {
        let home = tempfile::tempdir().unwrap();
        let ext = home.path().join("ext.key");
        std::fs::write(&ext, format!("{}\n", B64.encode([7u8; 32]))).unwrap();
        let ring = Keyring::load_with(home.path(), Some(&ext)).unwrap();
        assert_eq!(ring.primary_id(), Key::new([7u8; 32]).id);
        std::fs::write(&ext, "c2hvcnQ=\n").unwrap();
        let err = Keyring::load_with(home.path(), Some(&ext))
            .unwrap_err()
            .to_string();
        assert!(err.contains("5 bytes instead of 32"), "{err}");
    }
}
