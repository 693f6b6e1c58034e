//! The local image store: an OCI image-layout directory (`oci-layout`, `index.json`,
//! `blobs/sha256/…`) whose `index.json` entries carry the image names and tags in the
//! `org.opencontainers.image.ref.name` annotation (`name:tag`, e.g. `web:1` or
//! `127.0.0.1:5000/team/web:1`), so that `skopeo copy oci:DIR:web:1 …` can read it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::reference::Reference;
use crate::spec::{
    self, ANNOTATION_REF_NAME, ConfigFile, Descriptor, ImageConfig, Index, Manifest, OCI_INDEX,
    Platform,
};

/// Annotation naming the repository of an untagged entry (pulled by digest).
pub const ANNOTATION_NAME: &str = "dev.ferry.image.name";
/// Annotation keeping the digest a reference resolved to in the registry when that was
/// an index and the store keeps only the chosen platform's manifest.
pub const ANNOTATION_SOURCE_DIGEST: &str = "dev.ferry.source.digest";

/// Largest manifest, index or config accepted (they are small JSON documents).
pub(crate) const MAX_JSON_BLOB: u64 = 4 << 20;

static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// An image in the store, as `ferry image ls` and the runtime see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImageInfo {
    /// `[registry/]repository`.
    pub name: String,
    /// The tag, if the entry has one.
    pub tag: Option<String>,
    /// The manifest digest (the image's identity).
    pub digest: Digest,
    /// The manifest's media type.
    pub media_type: String,
    /// The config blob's digest.
    pub config_digest: Digest,
    /// Layer digests, base first.
    pub layers: Vec<Digest>,
    /// Manifest, config and (compressed) layers, in bytes.
    pub size: u64,
    /// The config's `created` time, if set.
    pub created: Option<String>,
    /// `os/arch` from the config.
    pub platform: String,
}

impl ImageInfo {
    /// `name:tag`, or `name@digest` when untagged.
    pub fn reference(&self) -> String {
        match &self.tag {
            Some(t) => format!("{}:{t}", self.name),
            None => format!("{}@{}", self.name, self.digest),
        }
    }
}

/// A local OCI image-layout directory.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens the layout at `dir`, creating it (and `oci-layout`, `index.json`) if needed.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        let root = dir.as_ref().to_path_buf();
        let store = Store { root };
        fs::create_dir_all(store.blobs_dir()).at(&store.blobs_dir())?;
        fs::create_dir_all(store.temp_dir()).at(&store.temp_dir())?;
        let _lock = store.lock()?;
        let layout = store.root.join("oci-layout");
        if !layout.exists() {
            store.write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        let index = store.root.join("index.json");
        if !index.exists() {
            store.write_index(&Index {
                schema_version: 2,
                media_type: Some(OCI_INDEX.to_string()),
                ..Index::default()
            })?;
        }
        Ok(store)
    }

    /// The layout directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    /// Where partial downloads and builds are written before they are moved into place.
    pub(crate) fn temp_dir(&self) -> PathBuf {
        self.root.join(".tmp")
    }

    /// A fresh path in the temp dir, for a blob being written (then
    /// [`Store::commit_blob`]); on the store's file system, so the commit is a rename.
    pub fn temp_path(&self, what: &str) -> PathBuf {
        let n = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
        self.temp_dir()
            .join(format!("{what}-{}-{n}", std::process::id()))
    }

    /// The path of a blob (which may not exist).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    /// Whether the store holds the blob.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Reads a whole blob.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let p = self.blob_path(digest);
        fs::read(&p).at(&p)
    }

    /// Reads a small JSON blob (manifest, index, config), refusing oversized ones.
    fn read_json_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let p = self.blob_path(digest);
        let len = fs::metadata(&p).at(&p)?.len();
        if len > MAX_JSON_BLOB {
            return Err(Error::Build(format!(
                "{digest} is {len} bytes, too large for a manifest or config"
            )));
        }
        self.read_blob(digest)
    }

    /// Writes bytes as a blob (no-op if present) and returns their digest.
    pub fn write_blob(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        if !self.has_blob(&digest) {
            let tmp = self.temp_path("blob");
            fs::write(&tmp, bytes).at(&tmp)?;
            self.commit_blob(&tmp, &digest)?;
        }
        Ok(digest)
    }

    /// Moves a verified temp file (from [`Store::temp_path`]) into `blobs/` under
    /// `digest`; the caller has hashed it.
    pub fn commit_blob(&self, tmp: &Path, digest: &Digest) -> Result<()> {
        let dst = self.blob_path(digest);
        fs::rename(tmp, &dst).at(&dst)
    }

    /// Reads a manifest blob.
    pub fn manifest(&self, digest: &Digest) -> Result<Manifest> {
        let raw = self.read_json_blob(digest)?;
        serde_json::from_slice(&raw).map_err(|e| Error::json(format!("manifest {digest}"), e))
    }

    /// Reads an image config blob as stored.
    pub fn config_file(&self, config_digest: &Digest) -> Result<ConfigFile> {
        let raw = self.read_json_blob(config_digest)?;
        serde_json::from_slice(&raw).map_err(|e| Error::json(format!("config {config_digest}"), e))
    }

    /// The run settings of an image, given its manifest digest (or its config digest).
    pub fn config(&self, digest: &Digest) -> Result<ImageConfig> {
        let raw = self.read_json_blob(digest)?;
        let v: serde_json::Value =
            serde_json::from_slice(&raw).map_err(|e| Error::json(digest.to_string(), e))?;
        if v.get("manifests").is_some() {
            let child = self.descend(&Descriptor {
                media_type: OCI_INDEX.to_string(),
                digest: digest.clone(),
                size: raw.len() as u64,
                platform: None,
                annotations: BTreeMap::new(),
            })?;
            return self.config(&child.digest);
        }
        if v.get("layers").is_some() {
            let m: Manifest = serde_json::from_value(v)
                .map_err(|e| Error::json(format!("manifest {digest}"), e))?;
            return Ok(ImageConfig::from(&self.config_file(&m.config.digest)?));
        }
        let c: ConfigFile =
            serde_json::from_value(v).map_err(|e| Error::json(format!("config {digest}"), e))?;
        Ok(ImageConfig::from(&c))
    }

    /// Reads `index.json`.
    pub fn index(&self) -> Result<Index> {
        let p = self.root.join("index.json");
        match fs::read(&p) {
            Ok(raw) => {
                serde_json::from_slice(&raw).map_err(|e| Error::json(p.display().to_string(), e))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index {
                schema_version: 2,
                media_type: Some(OCI_INDEX.to_string()),
                ..Index::default()
            }),
            Err(e) => Err(Error::io(p, e)),
        }
    }

    fn write_index(&self, index: &Index) -> Result<()> {
        let raw = serde_json::to_vec_pretty(index).map_err(|e| Error::json("index.json", e))?;
        self.write_atomic(&self.root.join("index.json"), &raw)
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = self.temp_path("write");
        let mut f = File::create(&tmp).at(&tmp)?;
        f.write_all(bytes).at(&tmp)?;
        f.sync_all().at(&tmp)?;
        fs::rename(&tmp, path).at(path)
    }

    /// Serialises writers of `index.json` (and garbage collection) across processes.
    fn lock(&self) -> Result<File> {
        let p = self.root.join(".lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .at(&p)?;
        f.lock().at(&p)?;
        Ok(f)
    }

    /// Held (shared) while blobs are written that no `index.json` entry references
    /// yet (pulls, builds), so that a concurrent garbage collection, which takes it
    /// exclusively, cannot delete them. Released on drop.
    pub fn ingest_guard(&self) -> Result<File> {
        let p = self.root.join(".gc-lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .at(&p)?;
        f.lock_shared().at(&p)?;
        Ok(f)
    }

    fn gc_guard(&self) -> Result<File> {
        let p = self.root.join(".gc-lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .at(&p)?;
        f.lock().at(&p)?;
        Ok(f)
    }

    /// Follows an index entry to a single-image manifest: itself, or for an index the
    /// host platform's manifest (linux/amd64 as a fallback) if its blob is present.
    fn descend(&self, desc: &Descriptor) -> Result<Descriptor> {
        let mut desc = desc.clone();
        for _ in 0..4 {
            if !spec::is_index(&desc.media_type) {
                return Ok(desc);
            }
            let raw = self.read_json_blob(&desc.digest)?;
            let idx: Index = serde_json::from_slice(&raw)
                .map_err(|e| Error::json(format!("index {}", desc.digest), e))?;
            desc = select_platform(&idx, &Platform::host())
                .filter(|d| self.has_blob(&d.digest))
                .ok_or_else(|| Error::NotFound {
                    reference: format!("{} for {}", desc.digest, Platform::host()),
                })?;
        }
        Ok(desc)
    }

    fn info(&self, entry: &Descriptor, name: String, tag: Option<String>) -> Result<ImageInfo> {
        let desc = self.descend(entry)?;
        let reference = match &tag {
            Some(t) => format!("{name}:{t}"),
            None => format!("{name}@{}", desc.digest),
        };
        if !self.has_blob(&desc.digest) {
            return Err(Error::BlobMissing {
                reference,
                digest: desc.digest.to_string(),
            });
        }
        let manifest = self.manifest(&desc.digest)?;
        let config = if self.has_blob(&manifest.config.digest) {
            self.config_file(&manifest.config.digest)?
        } else {
            return Err(Error::BlobMissing {
                reference,
                digest: manifest.config.digest.to_string(),
            });
        };
        let size =
            desc.size + manifest.config.size + manifest.layers.iter().map(|l| l.size).sum::<u64>();
        Ok(ImageInfo {
            name,
            tag,
            media_type: manifest
                .media_type
                .clone()
                .unwrap_or(desc.media_type.clone()),
            digest: desc.digest,
            config_digest: manifest.config.digest.clone(),
            layers: manifest.layers.iter().map(|l| l.digest.clone()).collect(),
            size,
            created: config.created.clone(),
            platform: format!("{}/{}", config.os, config.architecture),
        })
    }

    /// Every image in the store, one per `index.json` entry, sorted by name and tag.
    pub fn list(&self) -> Result<Vec<ImageInfo>> {
        let mut out = Vec::new();
        for entry in self.index()?.manifests {
            let (name, tag) = entry_name(&entry);
            out.push(self.info(&entry, name, tag)?);
        }
        out.sort_by(|a, b| (&a.name, &a.tag).cmp(&(&b.name, &b.tag)));
        Ok(out)
    }

    /// Finds an image by `name[:tag]`, `name@sha256:…`, `sha256:…` or a unique digest
    /// prefix of at least 12 hex digits (as `ferry image ls` shows). `None` if absent.
    pub fn resolve(&self, reference: &str) -> Result<Option<ImageInfo>> {
        if let Ok(d) = Digest::parse(reference) {
            return self.by_digest(&d, None);
        }
        let parsed = Reference::parse(reference);
        if let Ok(r) = &parsed {
            if let Some(d) = r.digest() {
                return self.by_digest(d, Some(r));
            }
            if let Some(key) = r.tagged_name() {
                let index = self.index()?;
                if let Some(entry) = index
                    .manifests
                    .iter()
                    .find(|e| e.annotations.get(ANNOTATION_REF_NAME) == Some(&key))
                {
                    return self
                        .info(entry, r.name(), r.tag().map(str::to_string))
                        .map(Some);
                }
            }
        }
        let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
        if (12..64).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let index = self.index()?;
            let hits: BTreeSet<&Digest> = index
                .manifests
                .iter()
                .map(|e| &e.digest)
                .filter(|d| d.hex().starts_with(hex))
                .collect();
            if hits.len() == 1 {
                let d = (*hits.iter().next().expect("one hit")).clone();
                return self.by_digest(&d, None);
            }
        }
        match parsed {
            Ok(_) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Like [`Store::resolve`], but absence is an [`Error::NotFound`].
    pub fn get(&self, reference: &str) -> Result<ImageInfo> {
        self.resolve(reference)?.ok_or_else(|| Error::NotFound {
            reference: reference.to_string(),
        })
    }

    fn by_digest(&self, d: &Digest, r: Option<&Reference>) -> Result<Option<ImageInfo>> {
        let index = self.index()?;
        let entry = index.manifests.iter().find(|e| {
            let same_name = |e: &Descriptor| r.is_none_or(|r| entry_name(e).0 == r.name());
            (&e.digest == d
                || e.annotations
                    .get(ANNOTATION_SOURCE_DIGEST)
                    .map(String::as_str)
                    == Some(d.as_str()))
                && same_name(e)
        });
        if let Some(entry) = entry {
            let (name, tag) = entry_name(entry);
            let name = r.map(|r| r.name()).unwrap_or(name);
            return self.info(entry, name, tag).map(Some);
        }
        if !self.has_blob(d) {
            return Ok(None);
        }
        // A manifest blob with no entry of its own (e.g. a platform child of an index).
        let raw = self.read_json_blob(d)?;
        let v: serde_json::Value = match serde_json::from_slice(&raw) {
            Ok(v) => v,
            Err(_) => return Ok(None),
        };
        let media_type = match v.get("mediaType").and_then(|m| m.as_str()) {
            Some(m) => m.to_string(),
            None if v.get("layers").is_some() => spec::OCI_MANIFEST.to_string(),
            None if v.get("manifests").is_some() => OCI_INDEX.to_string(),
            None => return Ok(None),
        };
        let entry = Descriptor {
            media_type,
            digest: d.clone(),
            size: raw.len() as u64,
            platform: None,
            annotations: BTreeMap::new(),
        };
        let name = r.map(|r| r.name()).unwrap_or_else(|| "<none>".to_string());
        self.info(&entry, name, None).map(Some)
    }

    /// Points `name:tag` at a manifest (replacing what it pointed to). `source` records
    /// the registry digest the image was pulled by, when that differs (an index).
    pub fn set_tag(
        &self,
        reference: &Reference,
        manifest: &Descriptor,
        source: Option<&Digest>,
    ) -> Result<()> {
        let _lock = self.lock()?;
        let mut index = self.index()?;
        let mut entry = Descriptor {
            media_type: manifest.media_type.clone(),
            digest: manifest.digest.clone(),
            size: manifest.size,
            platform: None,
            annotations: BTreeMap::new(),
        };
        if let Some(s) = source.filter(|s| *s != &manifest.digest) {
            entry
                .annotations
                .insert(ANNOTATION_SOURCE_DIGEST.to_string(), s.to_string());
        }
        match reference.tagged_name() {
            Some(key) => {
                index
                    .manifests
                    .retain(|e| e.annotations.get(ANNOTATION_REF_NAME) != Some(&key));
                entry
                    .annotations
                    .insert(ANNOTATION_REF_NAME.to_string(), key);
            }
            None => {
                let name = reference.name();
                let dup = index
                    .manifests
                    .iter()
                    .any(|e| e.digest == entry.digest && entry_name(e).0 == name);
                if dup {
                    return Ok(());
                }
                entry.annotations.insert(ANNOTATION_NAME.to_string(), name);
            }
        }
        index.manifests.push(entry);
        index.manifests.sort_by_key(entry_sort_key);
        self.write_index(&index)
    }

    /// Gives the image `src` the additional name `dst` (`ferry image tag`).
    pub fn tag(&self, src: &str, dst: &str) -> Result<ImageInfo> {
        let info = self.get(src)?;
        let dst_ref = Reference::parse(dst)?;
        if dst_ref.digest().is_some() {
            return Err(Error::InvalidReference {
                reference: dst.to_string(),
                reason: "a tag target cannot pin a digest".to_string(),
            });
        }
        let desc = Descriptor {
            media_type: info.media_type.clone(),
            digest: info.digest.clone(),
            size: self.blob_len(&info.digest)?,
            platform: None,
            annotations: BTreeMap::new(),
        };
        self.set_tag(&dst_ref, &desc, None)?;
        self.get(dst)
    }

    fn blob_len(&self, digest: &Digest) -> Result<u64> {
        let p = self.blob_path(digest);
        Ok(fs::metadata(&p).at(&p)?.len())
    }

    /// Removes an image name (`ferry image rm`): a tag removes that tag; a digest removes
    /// every name pointing to it. Blobs no longer referenced are deleted. Returns the
    /// names removed.
    pub fn remove(&self, reference: &str) -> Result<Vec<String>> {
        // Works on index entries alone, so that an entry whose blobs are damaged or
        // missing can still be removed.
        enum Target {
            Digest(Digest),
            Tag(String),
        }
        let _gc = self.gc_guard()?;
        let _lock = self.lock()?;
        let mut index = self.index()?;
        let parsed = Reference::parse(reference);
        let by_name = parsed.as_ref().ok().and_then(|r| {
            let key = r.tagged_name()?;
            let present = index
                .manifests
                .iter()
                .any(|e| e.annotations.get(ANNOTATION_REF_NAME) == Some(&key));
            (r.digest().is_none() && present).then_some(key)
        });
        let target = if let Ok(d) = Digest::parse(reference) {
            Target::Digest(d)
        } else if let Some(d) = parsed.as_ref().ok().and_then(|r| r.digest()) {
            Target::Digest(d.clone())
        } else if let Some(key) = by_name {
            Target::Tag(key)
        } else {
            let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
            let hits: BTreeSet<Digest> = index
                .manifests
                .iter()
                .map(|e| e.digest.clone())
                .filter(|d| hex.len() >= 12 && d.hex().starts_with(hex))
                .collect();
            match (hits.len(), hits.into_iter().next()) {
                (1, Some(d)) => Target::Digest(d),
                _ => {
                    return Err(Error::NotFound {
                        reference: reference.to_string(),
                    });
                }
            }
        };
        let mut removed = Vec::new();
        index.manifests.retain(|e| {
            let hit = match &target {
                Target::Digest(d) => {
                    &e.digest == d
                        || e.annotations
                            .get(ANNOTATION_SOURCE_DIGEST)
                            .map(String::as_str)
                            == Some(d.as_str())
                }
                Target::Tag(key) => e.annotations.get(ANNOTATION_REF_NAME) == Some(key),
            };
            if hit {
                let (name, tag) = entry_name(e);
                removed.push(match tag {
                    Some(t) => format!("{name}:{t}"),
                    None => format!("{name}@{}", e.digest),
                });
            }
            !hit
        });
        if removed.is_empty() {
            return Err(Error::NotFound {
                reference: reference.to_string(),
            });
        }
        self.write_index(&index)?;
        self.gc_locked(&index)?;
        Ok(removed)
    }

    /// Deletes blobs that no `index.json` entry reaches. Returns how many were deleted.
    pub fn gc(&self) -> Result<usize> {
        let _gc = self.gc_guard()?;
        let _lock = self.lock()?;
        let index = self.index()?;
        self.gc_locked(&index)
    }

    fn gc_locked(&self, index: &Index) -> Result<usize> {
        let mut keep = BTreeSet::new();
        let mut todo: Vec<Descriptor> = index.manifests.clone();
        while let Some(d) = todo.pop() {
            if !keep.insert(d.digest.clone()) || !self.has_blob(&d.digest) {
                continue;
            }
            // An entry whose manifest cannot be read hides which blobs it needs:
            // collect nothing rather than guess.
            if spec::is_index(&d.media_type) {
                let Ok(idx) = self.read_json_blob(&d.digest).and_then(|raw| {
                    serde_json::from_slice::<Index>(&raw)
                        .map_err(|e| Error::json(d.digest.to_string(), e))
                }) else {
                    return Ok(0);
                };
                todo.extend(idx.manifests);
            } else if spec::is_manifest(&d.media_type) {
                let Ok(m) = self.manifest(&d.digest) else {
                    return Ok(0);
                };
                keep.insert(m.config.digest.clone());
                keep.extend(m.layers.iter().map(|l| l.digest.clone()));
            } else {
                return Ok(0);
            }
        }
        let dir = self.blobs_dir();
        let mut deleted = 0;
        for entry in fs::read_dir(&dir).at(&dir)? {
            let entry = entry.at(&dir)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Ok(d) = Digest::parse(&format!("sha256:{name}")) else {
                continue;
            };
            if !keep.contains(&d) {
                fs::remove_file(entry.path()).at(&entry.path())?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// Extracts an image's layers into `rootfs_root/<manifest-digest-hex>/` once and
    /// returns that directory; a second call finds it and does nothing.
    pub fn unpack(&self, reference_or_digest: &str, rootfs_root: &Path) -> Result<PathBuf> {
        let info = self.get(reference_or_digest)?;
        crate::unpack::unpack_image(self, &info, rootfs_root)
    }
}

/// The name and tag an `index.json` entry stands for.
pub(crate) fn entry_name(e: &Descriptor) -> (String, Option<String>) {
    if let Some(rn) = e.annotations.get(ANNOTATION_REF_NAME) {
        if let Ok(r) = Reference::parse(rn) {
            return (r.name(), r.tag().map(str::to_string));
        }
        return (rn.clone(), None);
    }
    let name = e
        .annotations
        .get(ANNOTATION_NAME)
        .cloned()
        .unwrap_or_else(|| "<none>".to_string());
    (name, None)
}

fn entry_sort_key(e: &Descriptor) -> (String, String) {
    let (n, t) = entry_name(e);
    (n, t.unwrap_or_else(|| e.digest.to_string()))
}

/// Picks a platform's manifest from an index: exact os/arch(/variant) match, then
/// os/arch, then linux/amd64.
pub fn select_platform(index: &Index, want: &Platform) -> Option<Descriptor> {
    let matches = |d: &&Descriptor, w: &Platform, variant: bool| {
        d.platform.as_ref().is_some_and(|p| {
            p.os == w.os
                && p.architecture == w.architecture
                && (!variant || w.variant.is_none() || p.variant == w.variant)
        })
    };
    let amd64 = Platform {
        architecture: "amd64".into(),
        os: "linux".into(),
        variant: None,
    };
    index
        .manifests
        .iter()
        .find(|d| matches(d, want, true))
        .or_else(|| index.manifests.iter().find(|d| matches(d, want, false)))
        .or_else(|| index.manifests.iter().find(|d| matches(d, &amd64, false)))
        .or_else(|| {
            if index.manifests.len() == 1 && index.manifests[0].platform.is_none() {
                index.manifests.first()
            } else {
                None
            }
        })
        .cloned()
}
