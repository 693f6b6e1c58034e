//! Images as files: importing root filesystem tarballs, `docker save` archives and OCI
//! image-layout archives into the store, and exporting a stored image as an OCI
//! archive (`skopeo copy oci-archive:FILE …` reads it).
//!
//! An import is checked completely before the store sees it: every blob is hashed
//! against the digest the archive claims, every layer is read entry by entry and
//! refused if an entry could land outside the root (`..`, a path through a symlink
//! the archive made), and only then are blobs moved into `blobs/` and tags set. A
//! refused import leaves nothing behind but deleted temp files.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use flate2::{Compression, GzBuilder};
use serde::Serialize;

use crate::build::rfc3339;
use crate::digest::{Digest, HashWriter, Hasher};
use crate::error::{Error, IoContext, Result};
use crate::reference::Reference;
use crate::spec::{
    self, ANNOTATION_REF_NAME, ConfigFile, Descriptor, History, Index, Manifest, OCI_CONFIG,
    OCI_INDEX, OCI_LAYER_GZIP, OCI_LAYER_TAR, OCI_MANIFEST, Platform, RootFs, RunConfig,
};
use crate::store::{ImageInfo, MAX_JSON_BLOB, Store};

/// The annotation containerd and Docker 25+ put the full image name in (their
/// `org.opencontainers.image.ref.name` holds the tag alone).
const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
/// Progress is reported after at least this many more bytes were read.
const PROGRESS_STEP: u64 = 8 << 20;

/// Called with the bytes of the input read so far (and the input's size, when known).
pub type ImportProgress = Arc<dyn Fn(u64, Option<u64>) + Send + Sync>;

/// What `ferry image import` was asked to do.
#[derive(Clone, Default)]
pub struct ImportOptions {
    /// The name to store the image under. Required for a root filesystem tarball; for
    /// an archive it replaces the archive's names (the archive must then hold one image).
    pub tag: Option<String>,
    /// Entrypoint (root filesystem tarballs only).
    pub entrypoint: Option<Vec<String>>,
    /// Cmd (root filesystem tarballs only).
    pub cmd: Option<Vec<String>>,
    /// `KEY=value` environment (root filesystem tarballs only).
    pub env: Vec<String>,
    /// Working directory (root filesystem tarballs only).
    pub workdir: Option<String>,
    /// User (root filesystem tarballs only).
    pub user: Option<String>,
    /// Bytes-read reports while the input is read.
    pub progress: Option<ImportProgress>,
}

impl std::fmt::Debug for ImportOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportOptions")
            .field("tag", &self.tag)
            .field("entrypoint", &self.entrypoint)
            .field("cmd", &self.cmd)
            .field("env", &self.env)
            .field("workdir", &self.workdir)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl ImportOptions {
    fn sets_config(&self) -> bool {
        self.entrypoint.is_some()
            || self.cmd.is_some()
            || !self.env.is_empty()
            || self.workdir.is_some()
            || self.user.is_some()
    }
}

/// The kind of file an import read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArchiveKind {
    /// A tar (or tar.gz) of a root filesystem.
    Rootfs,
    /// A `docker save` archive (`manifest.json`).
    DockerArchive,
    /// A tar of an OCI image layout (`oci-layout`, `index.json`).
    OciArchive,
}

/// One image an import stored.
#[derive(Clone, Debug, Serialize)]
pub struct ImportedImage {
    /// `name:tag` it is stored under.
    pub reference: String,
    /// The manifest digest.
    pub digest: Digest,
    /// Number of layers.
    pub layers: usize,
    /// Manifest, config and layers in bytes.
    pub size: u64,
}

/// What an import stored.
#[derive(Clone, Debug, Serialize)]
pub struct ImportResult {
    /// What the input was.
    pub kind: ArchiveKind,
    /// One entry per name set, in the archive's order.
    pub images: Vec<ImportedImage>,
}

/// What an export wrote.
#[derive(Clone, Debug, Serialize)]
pub struct ExportResult {
    /// The image exported, `name:tag` (its ref name in the archive).
    pub reference: String,
    /// The manifest digest.
    pub digest: Digest,
    /// Number of layers.
    pub layers: usize,
    /// Bytes written.
    pub bytes: u64,
}

/// Imports `path` (`-` for standard input) into `store`: a root filesystem tarball
/// (plain or gzip), a `docker save` archive or an OCI archive, recognised by content.
pub fn import(store: &Store, path: &Path, opts: &ImportOptions) -> Result<ImportResult> {
    let tag = match &opts.tag {
        Some(t) => {
            let r = Reference::parse(t)?;
            if r.digest().is_some() {
                return Err(Error::Archive {
                    file: path.to_path_buf(),
                    reason: format!("-t {t} must be NAME:TAG, without a digest"),
                });
            }
            Some(r)
        }
        None => None,
    };
    let _guard = store.ingest_guard()?;
    let mut temps = Temps::default();
    // Standard input is read twice (once to recognise it, once to take it apart), so
    // it is first spooled into the store's temp directory.
    let input = if path == Path::new("-") {
        let spool = temps.add(store.temp_path("import-stdin"));
        let mut out = File::create(&spool).at(&spool)?;
        let mut reader = Counting::new(io::stdin().lock(), None, opts.progress.clone());
        io::copy(&mut reader, &mut out).map_err(|e| archive_err(path, format!("reading: {e}")))?;
        out.sync_all().at(&spool)?;
        spool
    } else {
        path.to_path_buf()
    };
    let shown = if path == Path::new("-") {
        PathBuf::from("standard input")
    } else {
        path.to_path_buf()
    };
    let progress = if path == Path::new("-") {
        None
    } else {
        opts.progress.clone()
    };
    let src = Source {
        path: input,
        shown,
        progress,
    };
    let names = src.scan()?;
    let kind = if names.contains_key("oci-layout") && names.contains_key("index.json") {
        ArchiveKind::OciArchive
    } else if names.contains_key("manifest.json") {
        ArchiveKind::DockerArchive
    } else {
        ArchiveKind::Rootfs
    };
    if kind != ArchiveKind::Rootfs && opts.sets_config() {
        return Err(src.err(
            "--cmd, --entrypoint, --env, --workdir and --user apply to root filesystem tarballs only; \
             this is an image archive with its own config: build on it instead",
        ));
    }
    let staged = match kind {
        ArchiveKind::Rootfs => {
            let Some(tag) = tag.clone() else {
                return Err(src.err(
                    "a root filesystem tarball carries no image name: give one with -t NAME:TAG",
                ));
            };
            vec![import_rootfs(store, &src, &mut temps, opts, tag)?]
        }
        ArchiveKind::DockerArchive => import_docker(store, &src, &mut temps, &names)?,
        ArchiveKind::OciArchive => import_oci(store, &src, &mut temps, &names)?,
    };
    if staged.is_empty() {
        return Err(src.err("the archive holds no image"));
    }
    if let Some(t) = &tag
        && staged.len() > 1
    {
        return Err(src.err(&format!(
            "-t {t} names one image, but the archive holds {}; import without -t to keep the archive's names",
            staged.len()
        )));
    }
    for s in &staged {
        if tag.is_none() && s.tags.is_empty() {
            return Err(src.err(&format!(
                "image {} in the archive has no name: give one with -t NAME:TAG",
                s.manifest_digest
            )));
        }
    }

    // Everything is verified: move blobs into place, then write manifests, then tags.
    for (digest, tmp) in staged.iter().flat_map(|s| s.blobs.iter()) {
        if store.has_blob(digest) {
            continue;
        }
        if tmp.exists() {
            store.commit_blob(tmp, digest)?;
        }
    }
    let mut images = Vec::new();
    for s in &staged {
        store.write_blob(&s.config_raw)?;
        store.write_blob(&s.manifest_raw)?;
        let desc = Descriptor {
            media_type: s.media_type.clone(),
            digest: s.manifest_digest.clone(),
            size: s.manifest_raw.len() as u64,
            platform: None,
            annotations: BTreeMap::new(),
        };
        let names: Vec<Reference> = match &tag {
            Some(t) => vec![t.clone()],
            None => s.tags.clone(),
        };
        for name in names {
            store.set_tag(&name, &desc, s.source.as_ref())?;
            let info: ImageInfo = store.get(&name.to_string())?;
            images.push(ImportedImage {
                reference: info.reference(),
                digest: info.digest,
                layers: info.layers.len(),
                size: info.size,
            });
        }
    }
    Ok(ImportResult { kind, images })
}

/// Writes the stored image `reference` as an OCI archive at `path` (`-` for standard
/// output): `oci-layout`, `index.json` with one manifest whose
/// `org.opencontainers.image.ref.name` is the image's `name:tag`, and its blobs.
pub fn export(store: &Store, reference: &str, path: &Path) -> Result<ExportResult> {
    let info = store.get(reference)?;
    let manifest_raw = store.read_blob(&info.digest)?;
    let manifest = store.manifest(&info.digest)?;
    let media_type = manifest
        .media_type
        .clone()
        .unwrap_or_else(|| OCI_MANIFEST.to_string());
    let ref_name = match &info.tag {
        Some(t) => format!("{}:{t}", info.name),
        None => info.name.clone(),
    };
    let index = Index {
        schema_version: 2,
        media_type: Some(OCI_INDEX.to_string()),
        manifests: vec![Descriptor {
            media_type,
            digest: info.digest.clone(),
            size: manifest_raw.len() as u64,
            platform: None,
            annotations: BTreeMap::from([(ANNOTATION_REF_NAME.to_string(), ref_name.clone())]),
        }],
        annotations: BTreeMap::new(),
    };
    let index_raw = serde_json::to_vec(&index).map_err(|e| Error::json("index.json", e))?;
    let mut blobs = vec![info.digest.clone(), manifest.config.digest.clone()];
    for l in &manifest.layers {
        if !blobs.contains(&l.digest) {
            blobs.push(l.digest.clone());
        }
    }
    for b in &blobs {
        if !store.has_blob(b) {
            return Err(Error::BlobMissing {
                reference: info.reference(),
                digest: b.to_string(),
            });
        }
    }

    let write = |out: &mut dyn Write| -> io::Result<()> {
        let mut tar = tar::Builder::new(out);
        let mut add = |name: &str, kind: tar::EntryType, size: u64, data: &mut dyn Read| {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(kind);
            h.set_mode(if kind == tar::EntryType::Directory {
                0o755
            } else {
                0o644
            });
            h.set_size(size);
            h.set_mtime(0);
            tar.append_data(&mut h, name, data)
        };
        let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
        add(
            "oci-layout",
            tar::EntryType::Regular,
            layout.len() as u64,
            &mut &layout[..],
        )?;
        add(
            "index.json",
            tar::EntryType::Regular,
            index_raw.len() as u64,
            &mut &index_raw[..],
        )?;
        add("blobs/", tar::EntryType::Directory, 0, &mut io::empty())?;
        add(
            "blobs/sha256/",
            tar::EntryType::Directory,
            0,
            &mut io::empty(),
        )?;
        for b in &blobs {
            let p = store.blob_path(b);
            let mut f = File::open(&p)?;
            let len = f.metadata()?.len();
            add(
                &format!("blobs/sha256/{}", b.hex()),
                tar::EntryType::Regular,
                len,
                &mut f,
            )?;
        }
        tar.into_inner()?.flush()
    };

    let bytes;
    if path == Path::new("-") {
        let mut out = Counted {
            inner: io::stdout().lock(),
            n: 0,
        };
        write(&mut out).map_err(|e| Error::io("standard output", e))?;
        bytes = out.n;
    } else {
        // Written beside the target and renamed, so a failed export leaves no
        // half-written archive under the name.
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let file_name = path
            .file_name()
            .ok_or_else(|| archive_err(path, "is not a file name".to_string()))?;
        let mut tmp_name = OsString::from(".");
        tmp_name.push(file_name);
        tmp_name.push(format!(".tmp-{}", std::process::id()));
        let tmp = dir.join(tmp_name);
        let result = (|| {
            let f = File::create(&tmp)?;
            let mut out = Counted {
                inner: BufWriter::new(f),
                n: 0,
            };
            write(&mut out)?;
            let f = out.inner.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
            Ok(out.n)
        })();
        match result {
            Ok(n) => bytes = n,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(Error::io(path, e));
            }
        }
        fs::rename(&tmp, path).at(path)?;
    }
    Ok(ExportResult {
        reference: ref_name,
        digest: info.digest,
        layers: manifest.layers.len(),
        bytes,
    })
}

fn archive_err(file: &Path, reason: String) -> Error {
    Error::Archive {
        file: file.to_path_buf(),
        reason,
    }
}

/// Temp files of one import, deleted when it ends (committed ones are gone by then).
#[derive(Default)]
struct Temps(Vec<PathBuf>);

impl Temps {
    fn add(&mut self, p: PathBuf) -> PathBuf {
        self.0.push(p.clone());
        p
    }
}

impl Drop for Temps {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = fs::remove_file(p);
        }
    }
}

/// An image verified and staged, ready to be committed.
struct Staged {
    /// Blobs (layers) and where their verified bytes wait.
    blobs: Vec<(Digest, PathBuf)>,
    config_raw: Vec<u8>,
    manifest_raw: Vec<u8>,
    manifest_digest: Digest,
    media_type: String,
    /// Names from the archive.
    tags: Vec<Reference>,
    /// The index the manifest was chosen from, if any.
    source: Option<Digest>,
}

/// One regular file of the outer archive.
#[derive(Clone, Debug)]
struct Member {
    /// Small JSON files are kept whole.
    data: Option<Vec<u8>>,
    /// For a symlink, the member it points to (`docker save` links a layer it has
    /// already written instead of writing it twice).
    link: Option<String>,
}

/// The regular member `name` stands for, following symlink members.
fn resolve(names: &HashMap<String, Member>, name: &str) -> Option<String> {
    let mut cur = member_name(Path::new(name))?;
    for _ in 0..8 {
        match &names.get(&cur)?.link {
            Some(next) => cur = next.clone(),
            None => return Some(cur),
        }
    }
    None
}

/// The input file, read as a (possibly gzip-compressed) tar.
struct Source {
    path: PathBuf,
    /// How messages name it.
    shown: PathBuf,
    progress: Option<ImportProgress>,
}

impl Source {
    fn err(&self, reason: &str) -> Error {
        archive_err(&self.shown, reason.to_string())
    }

    fn io_err(&self, e: io::Error) -> Error {
        archive_err(&self.shown, format!("cannot be read as a tar archive: {e}"))
    }

    fn is_gzip(&self) -> Result<bool> {
        let f = File::open(&self.path).at(&self.shown)?;
        let mut r = BufReader::new(f);
        let head = r.fill_buf().at(&self.shown)?;
        Ok(head.starts_with(&[0x1f, 0x8b]))
    }

    /// The decompressed tar stream.
    fn open(&self, progress: bool) -> Result<Box<dyn Read>> {
        let f = File::open(&self.path).at(&self.shown)?;
        let total = f.metadata().ok().map(|m| m.len());
        let counted = Counting::new(
            f,
            total,
            if progress {
                self.progress.clone()
            } else {
                None
            },
        );
        let mut r = BufReader::new(counted);
        let head = r.fill_buf().at(&self.shown)?;
        if head.starts_with(&[0x1f, 0x8b]) {
            Ok(Box::new(flate2::read::MultiGzDecoder::new(r)))
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Err(self.err("is zstd-compressed; decompress it first (zstd -d)"))
        } else {
            Ok(Box::new(r))
        }
    }

    /// The regular files at the top of the archive's namespace, by normalised name;
    /// small `.json` files and `oci-layout` with their content.
    fn scan(&self) -> Result<HashMap<String, Member>> {
        let mut out = HashMap::new();
        let mut archive = tar::Archive::new(self.open(true)?);
        for entry in archive.entries().map_err(|e| self.io_err(e))? {
            let mut entry = entry.map_err(|e| self.io_err(e))?;
            let raw = entry.path().map_err(|e| self.io_err(e))?.into_owned();
            let Some(name) = member_name(&raw) else {
                continue;
            };
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {}
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let Some(target) = entry.link_name().map_err(|e| self.io_err(e))? else {
                        continue;
                    };
                    // Symlinks are relative to their directory, hard links to the top.
                    let base = if entry.header().entry_type() == tar::EntryType::Symlink {
                        raw.parent().unwrap_or(Path::new("")).join(&target)
                    } else {
                        target.into_owned()
                    };
                    let link = clean(&base).and_then(|p| p.to_str().map(str::to_string));
                    if link.is_some() {
                        out.insert(name, Member { data: None, link });
                    }
                    continue;
                }
                _ => continue,
            }
            let size = entry.size();
            let small_json =
                (name.ends_with(".json") || name == "oci-layout" || name == "repositories")
                    && size <= MAX_JSON_BLOB;
            let data = if small_json && !name.contains('/') {
                let mut buf = Vec::new();
                entry.read_to_end(&mut buf).map_err(|e| self.io_err(e))?;
                Some(buf)
            } else {
                None
            };
            out.insert(name, Member { data, link: None });
        }
        Ok(out)
    }

    /// Copies the named members into temp files, hashing them. Returns name →
    /// (temp path, digest of the bytes, uncompressed digest when gzip).
    fn extract(
        &self,
        store: &Store,
        temps: &mut Temps,
        wanted: &HashSet<String>,
    ) -> Result<HashMap<String, (PathBuf, Digest)>> {
        let mut out = HashMap::new();
        let mut archive = tar::Archive::new(self.open(false)?);
        for entry in archive.entries().map_err(|e| self.io_err(e))? {
            let mut entry = entry.map_err(|e| self.io_err(e))?;
            let raw = entry.path().map_err(|e| self.io_err(e))?.into_owned();
            let Some(name) = member_name(&raw) else {
                continue;
            };
            if !wanted.contains(&name) || out.contains_key(&name) {
                continue;
            }
            let tmp = temps.add(store.temp_path("import"));
            let f = File::create(&tmp).at(&tmp)?;
            let mut w = HashWriter::new(BufWriter::new(f));
            io::copy(&mut entry, &mut w).map_err(|e| self.io_err(e))?;
            w.flush().at(&tmp)?;
            let digest = w.hasher.finish();
            out.insert(name, (tmp, digest));
        }
        Ok(out)
    }
}

/// A tar member's name without `./` or a leading `/`; `None` for names with `..`
/// (never looked up, so never used).
fn member_name(p: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => parts.push(n.to_str()?.to_string()),
            Component::CurDir | Component::RootDir => {}
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

/// Counts bytes read and reports progress every [`PROGRESS_STEP`] bytes.
struct Counting<R> {
    inner: R,
    read: u64,
    reported: u64,
    total: Option<u64>,
    progress: Option<ImportProgress>,
}

impl<R> Counting<R> {
    fn new(inner: R, total: Option<u64>, progress: Option<ImportProgress>) -> Self {
        Counting {
            inner,
            read: 0,
            reported: 0,
            total,
            progress,
        }
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if let Some(p) = &self.progress
            && (self.read - self.reported >= PROGRESS_STEP || (n == 0 && self.read > self.reported))
        {
            self.reported = self.read;
            p(self.read, self.total);
        }
        Ok(n)
    }
}

/// Counts bytes written.
struct Counted<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Symlinks made by the layers read so far, by their cleaned path.
type Links = HashMap<PathBuf, PathBuf>;

/// Reads one layer (plain or gzip tar) entry by entry and refuses entries that could
/// land outside the root; returns the uncompressed digest (the diff id). `links`
/// carries the symlinks of earlier layers of the same image.
fn check_layer(reader: impl Read, layer: &str, links: &mut Links) -> Result<Digest> {
    let mut r = BufReader::new(reader);
    let head = r.fill_buf().map_err(|e| bad_layer(layer, e))?;
    let input: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(r))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(Error::UnsupportedMediaType {
            reference: layer.to_string(),
            media_type: "zstd-compressed layer".to_string(),
        });
    } else {
        Box::new(r)
    };
    let mut hashing = HashReader {
        inner: input,
        hasher: Hasher::new(),
    };
    check_entries(&mut hashing, layer, links)?;
    // The diff id covers the whole stream, padding after the last entry included.
    io::copy(&mut hashing, &mut io::sink()).map_err(|e| bad_layer(layer, e))?;
    Ok(hashing.hasher.finish())
}

fn bad_layer(layer: &str, e: io::Error) -> Error {
    Error::UnsafePath {
        layer: layer.to_string(),
        path: String::new(),
        reason: format!("not a readable tar: {e}"),
    }
}

fn check_entries(reader: &mut dyn Read, layer: &str, links: &mut Links) -> Result<()> {
    let unsafe_path = |path: &Path, reason: String| Error::UnsafePath {
        layer: layer.to_string(),
        path: path.display().to_string(),
        reason,
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(|e| bad_layer(layer, e))? {
        let entry = entry.map_err(|e| bad_layer(layer, e))?;
        let raw = entry.path().map_err(|e| bad_layer(layer, e))?.into_owned();
        let rel = clean(&raw)
            .ok_or_else(|| unsafe_path(&raw, "it climbs out of the root with ..".to_string()))?;
        // A path through a symlink the archive made could be written outside the
        // root by a tool that follows links; tars of real trees never do this.
        let mut prefix = PathBuf::new();
        let parent = rel.parent().unwrap_or(Path::new(""));
        for c in parent.components() {
            prefix.push(c);
            if let Some(target) = links.get(&prefix) {
                return Err(unsafe_path(
                    &raw,
                    format!(
                        "it goes through the symlink {} -> {} made earlier in the archive",
                        prefix.display(),
                        target.display()
                    ),
                ));
            }
        }
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name == ".wh..wh..opq" {
            links.retain(|p, _| !p.starts_with(parent) || p == parent);
            continue;
        }
        if let Some(victim) = name.strip_prefix(".wh.") {
            if victim.is_empty() || victim == "." || victim == ".." {
                return Err(unsafe_path(&raw, "malformed whiteout".to_string()));
            }
            let gone = parent.join(victim);
            links.retain(|p, _| !p.starts_with(&gone));
            continue;
        }
        match entry.header().entry_type() {
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| bad_layer(layer, e))?
                    .ok_or_else(|| unsafe_path(&raw, "symlink without a target".to_string()))?
                    .into_owned();
                links.insert(rel, target);
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| bad_layer(layer, e))?
                    .ok_or_else(|| unsafe_path(&raw, "hard link without a target".to_string()))?
                    .into_owned();
                if clean(&target).is_none() {
                    return Err(unsafe_path(
                        &raw,
                        format!(
                            "its hard link target {} climbs out of the root",
                            target.display()
                        ),
                    ));
                }
                links.remove(&rel);
            }
            _ => {
                // A directory or file replaces a symlink of an earlier layer.
                links.remove(&rel);
            }
        }
    }
    Ok(())
}

/// Hashes what passes through.
struct HashReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A path in a layer as a relative path without `.`/`..`; `None` if it climbs above
/// the root.
fn clean(p: &Path) -> Option<PathBuf> {
    let mut out: Vec<OsString> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => {
                out.pop()?;
            }
            Component::Prefix(_) => return None,
        }
    }
    Some(out.iter().collect())
}

/// A root filesystem tarball becomes one layer: kept as it is when gzip, else
/// compressed; the config is the host's platform plus the options' run settings.
fn import_rootfs(
    store: &Store,
    src: &Source,
    temps: &mut Temps,
    opts: &ImportOptions,
    tag: Reference,
) -> Result<Staged> {
    let layer_name = format!("{} (root filesystem)", src.shown.display());
    let tmp = temps.add(store.temp_path("import-layer"));
    let (digest, size, diff_id) = if src.is_gzip()? {
        let mut links = Links::new();
        let diff_id = check_layer(
            File::open(&src.path).at(&src.shown)?,
            &layer_name,
            &mut links,
        )?;
        let mut f = File::open(&src.path).at(&src.shown)?;
        let out = File::create(&tmp).at(&tmp)?;
        let mut w = HashWriter::new(BufWriter::new(out));
        io::copy(&mut f, &mut w).at(&tmp)?;
        w.flush().at(&tmp)?;
        let size = w.hasher.len();
        (w.hasher.finish(), size, diff_id)
    } else {
        // One pass: entries are checked while the same bytes are compressed.
        let out = File::create(&tmp).at(&tmp)?;
        let compressed = HashWriter::new(BufWriter::new(out));
        let gz = GzBuilder::new()
            .mtime(0)
            .write(compressed, Compression::default());
        let mut tee = Tee {
            inner: src.open(false)?,
            out: HashWriter::new(gz),
        };
        let mut links = Links::new();
        check_entries(&mut tee, &layer_name, &mut links)?;
        io::copy(&mut tee, &mut io::sink()).map_err(|e| src.io_err(e))?;
        let diff_id = tee.out.hasher.finish();
        let mut compressed = tee.out.inner.finish().at(&tmp)?;
        compressed.flush().at(&tmp)?;
        let size = compressed.hasher.len();
        (compressed.hasher.finish(), size, diff_id)
    };
    let layer = Descriptor {
        media_type: OCI_LAYER_GZIP.to_string(),
        digest: digest.clone(),
        size,
        platform: None,
        annotations: BTreeMap::new(),
    };
    let p = Platform::host();
    let created = rfc3339(0);
    let config = ConfigFile {
        created: Some(created.clone()),
        architecture: p.architecture,
        os: p.os,
        variant: p.variant,
        config: Some(run_config(opts)?),
        rootfs: RootFs {
            kind: "layers".to_string(),
            diff_ids: vec![diff_id],
        },
        history: vec![History {
            created: Some(created),
            created_by: Some("ferry image import".to_string()),
            ..History::default()
        }],
        ..ConfigFile::default()
    };
    let config_raw = serde_json::to_vec(&config).map_err(|e| Error::json("image config", e))?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_string()),
        config: Descriptor {
            media_type: OCI_CONFIG.to_string(),
            digest: Digest::of(&config_raw),
            size: config_raw.len() as u64,
            platform: None,
            annotations: BTreeMap::new(),
        },
        layers: vec![layer],
        annotations: BTreeMap::new(),
    };
    let manifest_raw =
        serde_json::to_vec(&manifest).map_err(|e| Error::json("image manifest", e))?;
    Ok(Staged {
        blobs: vec![(digest, tmp)],
        config_raw,
        manifest_digest: Digest::of(&manifest_raw),
        manifest_raw,
        media_type: OCI_MANIFEST.to_string(),
        tags: vec![tag],
        source: None,
    })
}

/// Run settings from the options, as `docker import --change` sets them.
fn run_config(opts: &ImportOptions) -> Result<RunConfig> {
    let non_empty = |v: &Vec<String>| if v.is_empty() { None } else { Some(v.clone()) };
    let mut env =
        vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()];
    for kv in &opts.env {
        let Some((k, _)) = kv.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(Error::Build(format!("--env {kv:?} must be KEY=value")));
        };
        let prefix = format!("{k}=");
        match env.iter_mut().find(|e| e.starts_with(&prefix)) {
            Some(slot) => *slot = kv.clone(),
            None => env.push(kv.clone()),
        }
    }
    if let Some(w) = opts.workdir.as_ref().filter(|w| !w.starts_with('/')) {
        return Err(Error::Build(format!(
            "--workdir {w:?} must be an absolute path"
        )));
    }
    Ok(RunConfig {
        user: opts.user.clone(),
        env: Some(env),
        entrypoint: opts.entrypoint.as_ref().and_then(non_empty),
        cmd: opts.cmd.as_ref().and_then(non_empty),
        working_dir: opts.workdir.clone(),
        ..RunConfig::default()
    })
}

/// Passes reads through and writes the same bytes to `out`.
struct Tee<R, W> {
    inner: R,
    out: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// `manifest.json` of `docker save`.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn json_member<'a>(
    src: &Source,
    names: &'a HashMap<String, Member>,
    name: &str,
) -> Result<&'a [u8]> {
    names
        .get(name)
        .and_then(|m| m.data.as_deref())
        .ok_or_else(|| src.err(&format!("{name} is missing or too large")))
}

fn import_docker(
    store: &Store,
    src: &Source,
    temps: &mut Temps,
    names: &HashMap<String, Member>,
) -> Result<Vec<Staged>> {
    let what = format!("{} manifest.json", src.shown.display());
    let entries: Vec<DockerEntry> =
        serde_json::from_slice(json_member(src, names, "manifest.json")?)
            .map_err(|e| Error::json(what, e))?;
    let mut wanted = HashSet::new();
    for e in &entries {
        for f in std::iter::once(&e.config).chain(&e.layers) {
            let n = resolve(names, f).ok_or_else(|| {
                src.err(&format!(
                    "manifest.json names {f:?}, which the archive does not hold"
                ))
            })?;
            wanted.insert(n);
        }
    }
    let files = src.extract(store, temps, &wanted)?;
    let get = |f: &str| -> Result<&(PathBuf, Digest)> {
        resolve(names, f)
            .and_then(|n| files.get(&n))
            .ok_or_else(|| src.err(&format!("{f} could not be read from the archive")))
    };
    let mut out = Vec::new();
    for e in &entries {
        let (config_tmp, config_digest) = get(&e.config)?;
        check_named_digest(src, &e.config, config_digest)?;
        let config_raw = fs::read(config_tmp).at(config_tmp)?;
        let config: ConfigFile = serde_json::from_slice(&config_raw)
            .map_err(|err| Error::json(format!("{} {}", src.shown.display(), e.config), err))?;
        if config.rootfs.diff_ids.len() != e.layers.len() {
            return Err(src.err(&format!(
                "config {} lists {} layers, manifest.json {}",
                e.config,
                config.rootfs.diff_ids.len(),
                e.layers.len()
            )));
        }
        let mut links = Links::new();
        let mut layers = Vec::new();
        let mut blobs = Vec::new();
        for (i, l) in e.layers.iter().enumerate() {
            let (tmp, digest) = get(l)?;
            check_named_digest(src, l, digest)?;
            let label = format!("{l} ({digest}) in {}", src.shown.display());
            let diff_id = check_layer(File::open(tmp).at(tmp)?, &label, &mut links)?;
            if diff_id != config.rootfs.diff_ids[i] {
                return Err(Error::DigestMismatch {
                    what: format!(
                        "layer {l} in {} (its diff id in the config)",
                        src.shown.display()
                    ),
                    expected: config.rootfs.diff_ids[i].to_string(),
                    actual: diff_id.to_string(),
                });
            }
            let media_type = if &diff_id == digest {
                OCI_LAYER_TAR
            } else {
                OCI_LAYER_GZIP
            };
            layers.push(Descriptor {
                media_type: media_type.to_string(),
                digest: digest.clone(),
                size: fs::metadata(tmp).at(tmp)?.len(),
                platform: None,
                annotations: BTreeMap::new(),
            });
            blobs.push((digest.clone(), tmp.clone()));
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.to_string()),
            config: Descriptor {
                media_type: OCI_CONFIG.to_string(),
                digest: config_digest.clone(),
                size: config_raw.len() as u64,
                platform: None,
                annotations: BTreeMap::new(),
            },
            layers,
            annotations: BTreeMap::new(),
        };
        let manifest_raw =
            serde_json::to_vec(&manifest).map_err(|e| Error::json("image manifest", e))?;
        let tags = e
            .repo_tags
            .iter()
            .flatten()
            .map(|t| Reference::parse(familiar(t)))
            .collect::<Result<Vec<_>>>()?;
        out.push(Staged {
            blobs,
            config_raw,
            manifest_digest: Digest::of(&manifest_raw),
            manifest_raw,
            media_type: OCI_MANIFEST.to_string(),
            tags,
            source: None,
        });
    }
    Ok(out)
}

/// Docker Hub names as Docker shows them (`docker.io/library/python:3.11` is
/// `python:3.11`): tools write archive names fully qualified, while Dockerfiles and
/// manifests say `FROM python:3.11`, which the store keeps under the short name.
fn familiar(name: &str) -> &str {
    let rest = name
        .strip_prefix("docker.io/")
        .or_else(|| name.strip_prefix("index.docker.io/"));
    match rest {
        Some(r) => r.strip_prefix("library/").unwrap_or(r),
        None => name,
    }
}

/// Files named by their digest (`<hex>.json`, `blobs/sha256/<hex>`, `<hex>/layer.tar`
/// is not) must hash to it.
fn check_named_digest(src: &Source, name: &str, actual: &Digest) -> Result<()> {
    let n = member_name(Path::new(name)).unwrap_or_default();
    let stem = n
        .strip_prefix("blobs/sha256/")
        .or_else(|| n.strip_suffix(".json"))
        .or_else(|| n.strip_suffix(".tar"))
        .unwrap_or("");
    if let Ok(expected) = Digest::parse(&format!("sha256:{stem}"))
        && &expected != actual
    {
        return Err(Error::DigestMismatch {
            what: format!("{name} in {}", src.shown.display()),
            expected: expected.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

fn import_oci(
    store: &Store,
    src: &Source,
    temps: &mut Temps,
    names: &HashMap<String, Member>,
) -> Result<Vec<Staged>> {
    let index: Index = serde_json::from_slice(json_member(src, names, "index.json")?)
        .map_err(|e| Error::json(format!("{} index.json", src.shown.display()), e))?;
    // docker save (25+) writes manifest.json beside the layout: its RepoTags are the
    // full names when the layout's annotations hold only a tag.
    let docker_tags: Vec<Vec<String>> = names
        .get("manifest.json")
        .and_then(|m| m.data.as_deref())
        .and_then(|raw| serde_json::from_slice::<Vec<DockerEntry>>(raw).ok())
        .map(|v| {
            v.into_iter()
                .map(|e| e.repo_tags.unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    let blob_name = |d: &Digest| format!("blobs/sha256/{}", d.hex());
    // Read every blob in the layout once (they are content-addressed and verified).
    let wanted: HashSet<String> = names
        .keys()
        .filter(|n| n.starts_with("blobs/sha256/"))
        .cloned()
        .collect();
    let files = src.extract(store, temps, &wanted)?;
    let blob = |d: &Digest, what: &str| -> Result<&PathBuf> {
        let (tmp, actual) = files
            .get(&blob_name(d))
            .ok_or_else(|| src.err(&format!("{what} {d} is missing from blobs/sha256/")))?;
        if actual != d {
            return Err(Error::DigestMismatch {
                what: format!("{what} in {}", src.shown.display()),
                expected: d.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(tmp)
    };
    let small = |d: &Digest, what: &str| -> Result<Vec<u8>> {
        let p = blob(d, what)?;
        let len = fs::metadata(p).at(p)?.len();
        if len > MAX_JSON_BLOB {
            return Err(src.err(&format!("{what} {d} is {len} bytes, too large")));
        }
        fs::read(p).at(p)
    };
    let mut out = Vec::new();
    for (i, top) in index.manifests.iter().enumerate() {
        let mut desc = top.clone();
        let mut source = None;
        // An index (multi-platform) gives the host's manifest.
        for _ in 0..4 {
            if !spec::is_index(&desc.media_type) {
                break;
            }
            let raw = small(&desc.digest, "index")?;
            let idx: Index = serde_json::from_slice(&raw)
                .map_err(|e| Error::json(format!("index {}", desc.digest), e))?;
            source.get_or_insert(desc.digest.clone());
            desc = crate::store::select_platform(&idx, &Platform::host()).ok_or_else(|| {
                src.err(&format!(
                    "index {} has no image for {}",
                    desc.digest,
                    Platform::host()
                ))
            })?;
        }
        if !spec::is_manifest(&desc.media_type) {
            return Err(Error::UnsupportedMediaType {
                reference: format!("{} {}", src.shown.display(), desc.digest),
                media_type: desc.media_type.clone(),
            });
        }
        let manifest_raw = small(&desc.digest, "manifest")?;
        let manifest: Manifest = serde_json::from_slice(&manifest_raw)
            .map_err(|e| Error::json(format!("manifest {}", desc.digest), e))?;
        let config_raw = small(&manifest.config.digest, "config")?;
        let config: ConfigFile = serde_json::from_slice(&config_raw)
            .map_err(|e| Error::json(format!("config {}", manifest.config.digest), e))?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(src.err(&format!(
                "manifest {} has {} layers, its config {} diff ids",
                desc.digest,
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        let mut links = Links::new();
        let mut blobs = Vec::new();
        for (l, want) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
            if l.media_type.contains("zstd") {
                return Err(Error::UnsupportedMediaType {
                    reference: format!("layer {} in {}", l.digest, src.shown.display()),
                    media_type: l.media_type.clone(),
                });
            }
            let tmp = blob(&l.digest, "layer")?;
            let label = format!("{} in {}", l.digest, src.shown.display());
            let diff_id = check_layer(File::open(tmp).at(tmp)?, &label, &mut links)?;
            if &diff_id != want {
                return Err(Error::DigestMismatch {
                    what: format!(
                        "layer {} in {} (its diff id)",
                        l.digest,
                        src.shown.display()
                    ),
                    expected: want.to_string(),
                    actual: diff_id.to_string(),
                });
            }
            blobs.push((l.digest.clone(), tmp.clone()));
        }
        let mut tags = Vec::new();
        let full = top
            .annotations
            .get(ANNOTATION_CONTAINERD_NAME)
            .or_else(|| top.annotations.get(ANNOTATION_REF_NAME));
        if let Some(n) = full {
            // A bare tag (`latest`) names no image; it needs the full name from
            // elsewhere (manifest.json's RepoTags) or -t.
            if n.contains(':') || n.contains('/') {
                tags.push(Reference::parse(familiar(n))?);
            }
        }
        if tags.is_empty()
            && let Some(dt) = docker_tags.get(i)
        {
            for t in dt {
                tags.push(Reference::parse(familiar(t))?);
            }
        }
        out.push(Staged {
            blobs,
            config_raw,
            manifest_digest: desc.digest.clone(),
            manifest_raw,
            media_type: desc.media_type.clone(),
            tags,
            source,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_names_are_shortened_as_docker_shows_them() {
        assert_eq!(familiar("docker.io/library/python:3.11"), "python:3.11");
        assert_eq!(familiar("docker.io/team/app:1"), "team/app:1");
        assert_eq!(familiar("ghcr.io/team/app:1"), "ghcr.io/team/app:1");
        assert_eq!(familiar("python:3.11"), "python:3.11");
    }

    #[test]
    fn member_names_are_normalised() {
        assert_eq!(member_name(Path::new("./a/b")).as_deref(), Some("a/b"));
        assert_eq!(
            member_name(Path::new("/index.json")).as_deref(),
            Some("index.json")
        );
        assert_eq!(member_name(Path::new("../x")), None);
    }
}
