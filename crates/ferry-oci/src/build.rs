//! Daemonless, reproducible image builds: a directory becomes one gzip layer on top of
//! an optional base image, with the config merged as Docker merges it.
//!
//! Reproducible means: entries sorted by name, mtimes fixed (`source_date_epoch`, 0 by
//! default), owner 0:0 with empty user and group names, file modes normalised to 0644
//! or 0755, a gzip header without name or time, and a fixed `created`. The same
//! directory content therefore gives the same digest on any machine.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};

use crate::digest::{Digest, HashWriter};
use crate::error::{Error, IoContext, Result};
use crate::reference::Reference;
use crate::spec::{
    self, ConfigFile, Descriptor, History, Manifest, OCI_CONFIG, OCI_LAYER_GZIP, OCI_LAYER_TAR,
    OCI_MANIFEST, Platform, RootFs, RunConfig,
};
use crate::store::{ImageInfo, Store};

/// What `ferry image build` was asked to do.
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    /// The directory whose content becomes the new layer.
    pub context: PathBuf,
    /// The name to store the image under, `name[:tag]`.
    pub tag: String,
    /// Base image in the store; `None` or `scratch` for none. Pull it first if it lives
    /// in a registry ([`crate::RegistryClient::ensure`]).
    pub base: Option<String>,
    /// Where the directory lands in the image (default `/`).
    pub dest: Option<String>,
    /// New entrypoint; resets the base's cmd unless `cmd` is given too (as Docker does).
    pub entrypoint: Option<Vec<String>>,
    /// New cmd.
    pub cmd: Option<Vec<String>>,
    /// `KEY=value` pairs, replacing the base's value of the same key.
    pub env: Vec<String>,
    /// Working directory; relative paths are taken from the base's.
    pub workdir: Option<String>,
    /// User to run as.
    pub user: Option<String>,
    /// `KEY=value` labels, merged over the base's.
    pub labels: Vec<String>,
    /// Ports to expose: `8080`, `8080/tcp`, `53/udp`.
    pub expose: Vec<String>,
    /// mtime of every entry and the image's `created` time (seconds since the epoch).
    pub source_date_epoch: u64,
    /// Platform recorded for images without a base (default: this machine's).
    pub platform: Option<Platform>,
}

/// What a build produced.
#[derive(Clone, Debug)]
pub struct BuildResult {
    /// The stored image.
    pub info: ImageInfo,
    /// The new layer (compressed).
    pub layer: Descriptor,
    /// The new layer's uncompressed digest.
    pub diff_id: Digest,
}

/// Builds an image from `opts.context` into `store` and tags it `opts.tag`.
pub fn build(store: &Store, opts: &BuildOptions) -> Result<BuildResult> {
    let tag = Reference::parse(&opts.tag)?;
    if tag.digest().is_some() {
        return Err(Error::Build(format!(
            "--tag {} must be name:tag, without a digest",
            opts.tag
        )));
    }
    let meta = fs::metadata(&opts.context).at(&opts.context)?;
    if !meta.is_dir() {
        return Err(Error::Build(format!(
            "{} is not a directory",
            opts.context.display()
        )));
    }

    let _guard = store.ingest_guard()?;
    // Base image: its layers and config.
    let (mut layers, mut config) = match opts.base.as_deref().filter(|b| *b != "scratch") {
        Some(base) => {
            let info = store.get(base)?;
            let manifest = store.manifest(&info.digest)?;
            let config = store.config_file(&manifest.config.digest)?;
            let layers: Vec<Descriptor> = manifest
                .layers
                .into_iter()
                .map(|mut l| {
                    l.media_type = match l.media_type.as_str() {
                        spec::DOCKER_LAYER_GZIP => OCI_LAYER_GZIP.to_string(),
                        "application/vnd.docker.image.rootfs.diff.tar" => OCI_LAYER_TAR.to_string(),
                        _ => l.media_type,
                    };
                    l
                })
                .collect();
            (layers, config)
        }
        None => {
            let p = opts.platform.clone().unwrap_or_else(Platform::host);
            let config = ConfigFile {
                architecture: p.architecture,
                os: p.os,
                variant: p.variant,
                rootfs: RootFs::default(),
                ..ConfigFile::default()
            };
            (Vec::new(), config)
        }
    };

    let (layer, diff_id) = write_layer(store, opts)?;
    layers.push(layer.clone());

    let created = rfc3339(opts.source_date_epoch);
    config.created = Some(created.clone());
    config.config = Some(merge_run_config(
        config.config.take().unwrap_or_default(),
        opts,
    )?);
    config.rootfs.kind = "layers".to_string();
    config.rootfs.diff_ids.push(diff_id.clone());
    config.history.push(History {
        created: Some(created),
        created_by: Some("ferry image build".to_string()),
        ..History::default()
    });
    let config_raw = serde_json::to_vec(&config).map_err(|e| Error::json("image config", e))?;
    let config_digest = store.write_blob(&config_raw)?;

    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_string()),
        config: Descriptor {
            media_type: OCI_CONFIG.to_string(),
            digest: config_digest,
            size: config_raw.len() as u64,
            platform: None,
            annotations: BTreeMap::new(),
        },
        layers,
        annotations: BTreeMap::new(),
    };
    let manifest_raw =
        serde_json::to_vec(&manifest).map_err(|e| Error::json("image manifest", e))?;
    let manifest_digest = store.write_blob(&manifest_raw)?;
    let desc = Descriptor {
        media_type: OCI_MANIFEST.to_string(),
        digest: manifest_digest,
        size: manifest_raw.len() as u64,
        platform: None,
        annotations: BTreeMap::new(),
    };
    store.set_tag(&tag, &desc, None)?;
    let info = store.get(&tag.to_string())?;
    Ok(BuildResult {
        info,
        layer,
        diff_id,
    })
}

/// Docker's merge of run settings: flags override the base; `--entrypoint` without
/// `--cmd` clears the base's cmd; env and labels merge by key; ports accumulate.
fn merge_run_config(mut rc: RunConfig, opts: &BuildOptions) -> Result<RunConfig> {
    let non_empty = |v: &Vec<String>| if v.is_empty() { None } else { Some(v.clone()) };
    if let Some(ep) = &opts.entrypoint {
        rc.entrypoint = non_empty(ep);
        if opts.cmd.is_none() {
            rc.cmd = None;
        }
    }
    if let Some(cmd) = &opts.cmd {
        rc.cmd = non_empty(cmd);
    }
    if !opts.env.is_empty() {
        let mut env = rc.env.take().unwrap_or_default();
        for kv in &opts.env {
            let (k, _) = split_kv(kv, "--env")?;
            let prefix = format!("{k}=");
            match env
                .iter_mut()
                .find(|e| e.starts_with(&prefix) || e.as_str() == k)
            {
                Some(slot) => *slot = kv.clone(),
                None => env.push(kv.clone()),
            }
        }
        rc.env = Some(env);
    }
    if let Some(wd) = &opts.workdir {
        let base = rc
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".to_string());
        rc.working_dir = Some(if wd.starts_with('/') {
            wd.clone()
        } else {
            Path::new(&base).join(wd).display().to_string()
        });
    }
    if let Some(u) = &opts.user {
        rc.user = Some(u.clone());
    }
    if !opts.labels.is_empty() {
        let mut labels = rc.labels.take().unwrap_or_default();
        for kv in &opts.labels {
            let (k, v) = split_kv(kv, "--label")?;
            labels.insert(k.to_string(), v.to_string());
        }
        rc.labels = Some(labels);
    }
    if !opts.expose.is_empty() {
        let mut ports = rc.exposed_ports.take().unwrap_or_default();
        for p in &opts.expose {
            ports.insert(
                normalise_port(p)?,
                serde_json::Value::Object(Default::default()),
            );
        }
        rc.exposed_ports = Some(ports);
    }
    Ok(rc)
}

fn split_kv<'a>(kv: &'a str, flag: &str) -> Result<(&'a str, &'a str)> {
    match kv.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k, v)),
        _ => Err(Error::Build(format!("{flag} {kv:?} must be KEY=value"))),
    }
}

fn normalise_port(p: &str) -> Result<String> {
    let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    let ok_num = num.parse::<u16>().is_ok_and(|n| n > 0);
    let ok_proto = matches!(proto, "tcp" | "udp" | "sctp");
    if !ok_num || !ok_proto {
        return Err(Error::Build(format!(
            "--expose {p:?} must be PORT or PORT/tcp|udp|sctp"
        )));
    }
    Ok(format!("{num}/{proto}"))
}

/// Writes the context directory as a reproducible gzip tar into the store.
fn write_layer(store: &Store, opts: &BuildOptions) -> Result<(Descriptor, Digest)> {
    let tmp = store.temp_path("layer");
    let file = File::create(&tmp).at(&tmp)?;
    let compressed = HashWriter::new(BufWriter::new(file));
    // No file name, mtime 0: the gzip header carries nothing machine-specific.
    let gz = GzBuilder::new()
        .mtime(0)
        .write(compressed, Compression::default());
    let mut tar = tar::Builder::new(HashWriter::new(gz));
    tar.follow_symlinks(false);
    let result = (|| {
        let mut prefix = PathBuf::new();
        for comp in Path::new(opts.dest.as_deref().unwrap_or("/")).components() {
            match comp {
                std::path::Component::Normal(n) => {
                    prefix.push(n);
                    append_dir(&mut tar, &prefix, opts.source_date_epoch).at(&tmp)?;
                }
                std::path::Component::RootDir | std::path::Component::CurDir => {}
                _ => {
                    return Err(Error::Build(format!(
                        "--dest {:?} must not contain ..",
                        opts.dest
                    )));
                }
            }
        }
        append_tree(&mut tar, &opts.context, &prefix, opts.source_date_epoch)?;
        let uncompressed = tar.into_inner().at(&tmp)?;
        let diff_id = uncompressed.hasher.finish();
        let mut compressed = uncompressed.inner.finish().at(&tmp)?;
        compressed.flush().at(&tmp)?;
        let digest = compressed.hasher.clone().finish();
        let size = compressed.hasher.len();
        let file = compressed
            .inner
            .into_inner()
            .map_err(|e| Error::io(&tmp, e.into_error()))?;
        file.sync_all().at(&tmp)?;
        Ok((digest, size, diff_id))
    })();
    let (digest, size, diff_id) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    if store.has_blob(&digest) {
        let _ = fs::remove_file(&tmp);
    } else {
        store.commit_blob(&tmp, &digest)?;
    }
    let desc = Descriptor {
        media_type: OCI_LAYER_GZIP.to_string(),
        digest,
        size,
        platform: None,
        annotations: BTreeMap::new(),
    };
    Ok((desc, diff_id))
}

fn header(kind: tar::EntryType, mode: u32, size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    // Empty names: nothing about the building machine's users leaks into the digest.
    let _ = h.set_username("");
    let _ = h.set_groupname("");
    h
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, path: &Path, mtime: u64) -> std::io::Result<()> {
    let mut h = header(tar::EntryType::Directory, 0o755, 0, mtime);
    let mut name = path.as_os_str().to_os_string();
    name.push("/");
    tar.append_data(&mut h, Path::new(&name), std::io::empty())
}

/// Appends `dir`'s entries under `prefix`, depth first, each directory's entries
/// sorted by name bytes.
fn append_tree<W: Write>(
    tar: &mut tar::Builder<W>,
    dir: &Path,
    prefix: &Path,
    mtime: u64,
) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .at(dir)?
        .collect::<std::io::Result<Vec<_>>>()
        .at(dir)?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let name = prefix.join(e.file_name());
        let meta = fs::symlink_metadata(&path).at(&path)?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = fs::read_link(&path).at(&path)?;
            let mut h = header(tar::EntryType::Symlink, 0o777, 0, mtime);
            tar.append_link(&mut h, &name, &target).at(&path)?;
        } else if ft.is_dir() {
            append_dir(tar, &name, mtime).at(&path)?;
            append_tree(tar, &path, &name, mtime)?;
        } else if ft.is_file() {
            use std::os::unix::fs::PermissionsExt;
            let mode = if meta.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            let mut h = header(tar::EntryType::Regular, mode, meta.len(), mtime);
            let f = File::open(&path).at(&path)?;
            tar.append_data(&mut h, &name, f).at(&path)?;
        } else {
            return Err(Error::Build(format!(
                "{} is not a file, directory or symlink (sockets, devices and FIFOs cannot go into an image)",
                path.display()
            )));
        }
    }
    Ok(())
}

/// Seconds since the epoch as RFC 3339 UTC (`1970-01-01T00:00:00Z`).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn docker_merge_rules() {
        let base = RunConfig {
            entrypoint: Some(vec!["/base".into()]),
            cmd: Some(vec!["--serve".into()]),
            env: Some(vec!["PATH=/bin".into(), "A=1".into()]),
            working_dir: Some("/srv".into()),
            ..RunConfig::default()
        };
        let opts = BuildOptions {
            entrypoint: Some(vec!["/app".into()]),
            env: vec!["A=2".into(), "B=3".into()],
            workdir: Some("web".into()),
            expose: vec!["8080".into()],
            labels: vec!["team=x".into()],
            ..BuildOptions::default()
        };
        let rc = merge_run_config(base.clone(), &opts).unwrap();
        assert_eq!(rc.entrypoint, Some(vec!["/app".to_string()]));
        assert_eq!(rc.cmd, None, "--entrypoint resets the base's cmd");
        assert_eq!(
            rc.env,
            Some(vec!["PATH=/bin".into(), "A=2".into(), "B=3".into()])
        );
        assert_eq!(rc.working_dir.as_deref(), Some("/srv/web"));
        assert!(rc.exposed_ports.unwrap().contains_key("8080/tcp"));

        let opts = BuildOptions {
            cmd: Some(vec!["--once".into()]),
            ..BuildOptions::default()
        };
        let rc = merge_run_config(base, &opts).unwrap();
        assert_eq!(rc.entrypoint, Some(vec!["/base".to_string()]));
        assert_eq!(rc.cmd, Some(vec!["--once".to_string()]));

        let bad = BuildOptions {
            env: vec!["=x".into()],
            ..BuildOptions::default()
        };
        assert!(merge_run_config(RunConfig::default(), &bad).is_err());
        let bad = BuildOptions {
            expose: vec!["http".into()],
            ..BuildOptions::default()
        };
        assert!(merge_run_config(RunConfig::default(), &bad).is_err());
    }
}
