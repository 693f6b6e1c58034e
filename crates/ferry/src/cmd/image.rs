//! `ferry image …`: build, push, pull, list, inspect, remove and tag OCI images in
//! the local store (`FERRY_HOME/images`), without a container daemon.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use ferry_oci::{
    BuildOptions, Platform, ProgressEvent, Reference, RegistryClient, RegistryOptions, Store, build,
};
use serde::Serialize;

use crate::home;
use crate::output::{self, EXIT_OK, Format};

/// Image commands.
#[derive(Subcommand)]
pub enum ImageCmd {
    /// Build an image from a directory, reproducibly (same input, same digest).
    Build(Box<BuildArgs>),
    /// Push a stored image to a registry.
    Push(PushArgs),
    /// Pull an image from a registry into the local store.
    Pull(PullArgs),
    /// List images in the local store.
    Ls(LsArgs),
    /// Print an image's manifest and config as JSON (local store first, then registry).
    Inspect(InspectArgs),
    /// Remove image names from the local store; blobs nothing else uses are deleted.
    Rm(RmArgs),
    /// Give a stored image another name (`tag SRC DST`).
    Tag(TagArgs),
    /// Import a root filesystem tarball, `docker save` archive or OCI archive.
    Import(crate::cmd::image_archive::ImportArgs),
    /// Export a stored image as an OCI archive (`-o FILE`).
    Export(crate::cmd::image_archive::ExportArgs),
}

/// Options shared by commands that talk to registries.
#[derive(Args, Debug, Clone, Default)]
pub struct RegistryArgs {
    /// Speak plain http to the registry of this reference (also: FERRY_INSECURE_REGISTRIES=host[:port],…).
    /// 127.0.0.1 and localhost always use http.
    #[arg(long)]
    pub insecure: bool,
}

/// `ferry image build`.
///
/// With a Dockerfile (`DIR/Dockerfile`, `DIR/Containerfile` or `-f FILE`), the
/// Dockerfile is built with DIR as its context: `RUN` in a container through runc,
/// one layer per file-system step, a build cache under FERRY_HOME/build-cache.
///
/// Without one (or with `--cmd`/`--base`), the directory's content becomes one layer
/// (at `--dest`, default `/`), on top of `--base` if given. Entries are sorted, mtimes
/// are SOURCE_DATE_EPOCH (else 0), owners 0:0, and `created` is fixed, so the same
/// content gives the same digest.
#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The directory to build from (the build context for a Dockerfile).
    pub dir: PathBuf,
    /// Name for the image, NAME[:TAG] (repeatable).
    #[arg(short, long, required = true)]
    pub tag: Vec<String>,
    /// The Dockerfile (default: DIR/Dockerfile, else DIR/Containerfile).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Build argument NAME=VALUE for the Dockerfile's ARGs (repeatable).
    #[arg(long = "build-arg", value_name = "NAME=VALUE")]
    pub build_arg: Vec<String>,
    /// Build the Dockerfile only up to this stage.
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// Run every Dockerfile step; use nothing from the build cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Progress output: plain or auto (both print one line per step and RUN output).
    #[arg(long, value_name = "MODE", default_value = "auto", value_parser = ["plain", "auto"])]
    pub progress: String,
    /// Base image: a local name, a registry reference (pulled if missing), or `scratch`
    /// (directory builds; the default there is scratch).
    #[arg(long)]
    pub base: Option<String>,
    /// Entrypoint. Repeat for each argument, or give a JSON array (`'["/app","-v"]'`);
    /// a single value with spaces is split on whitespace. Resets the base's cmd unless
    /// --cmd is given too.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub entrypoint: Vec<String>,
    /// Default command/arguments, same forms as --entrypoint. `--cmd '[]'` clears it.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub cmd: Vec<String>,
    /// Environment variable KEY=VALUE (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory (relative paths are taken from the base's).
    #[arg(long, value_name = "PATH")]
    pub workdir: Option<String>,
    /// User to run as.
    #[arg(long)]
    pub user: Option<String>,
    /// Label KEY=VALUE (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Port to expose: PORT or PORT/tcp|udp (repeatable).
    #[arg(long, value_name = "PORT")]
    pub expose: Vec<String>,
    /// Where the directory lands inside the image.
    #[arg(long, value_name = "PATH", default_value = "/")]
    pub dest: String,
    /// Platform recorded for an image without a base, os/arch (default: this machine's).
    #[arg(long)]
    pub platform: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// `ferry image push`.
#[derive(Args, Debug)]
pub struct PushArgs {
    /// The stored image to push; also the destination when DEST is not given, so it
    /// must then name a registry (host[:port]/repo:tag).
    pub reference: String,
    /// Destination registry reference, if different from the local name.
    pub dest: Option<String>,
    /// Move the tag even if it already points to another image in the registry.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// `ferry image pull`.
#[derive(Args, Debug)]
pub struct PullArgs {
    /// Registry reference, host[:port]/repo[:tag|@sha256:…].
    pub reference: String,
    /// Platform to pick from multi-platform images, os/arch[/variant] (default: this machine's).
    #[arg(long)]
    pub platform: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// `ferry image ls`.
#[derive(Args, Debug)]
pub struct LsArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// `ferry image inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Image: local name, digest, or registry reference.
    pub reference: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `ferry image rm`.
#[derive(Args, Debug)]
pub struct RmArgs {
    /// Images to remove: NAME:TAG removes that name; a digest removes every name of the image.
    #[arg(required = true)]
    pub references: Vec<String>,
}

/// `ferry image tag`.
#[derive(Args, Debug)]
pub struct TagArgs {
    /// The stored image.
    pub source: String,
    /// The new name, NAME[:TAG].
    pub target: String,
}

/// Runs an image command; returns the exit code.
pub fn run(cmd: ImageCmd) -> anyhow::Result<u8> {
    let dir = home::images_dir();
    let store =
        Store::open(&dir).with_context(|| format!("opening the image store {}", dir.display()))?;
    match cmd {
        ImageCmd::Build(a) => cmd_build(&store, *a),
        ImageCmd::Push(a) => cmd_push(&store, a),
        ImageCmd::Pull(a) => cmd_pull(&store, a),
        ImageCmd::Ls(a) => cmd_ls(&store, a),
        ImageCmd::Inspect(a) => cmd_inspect(&store, a),
        ImageCmd::Rm(a) => cmd_rm(&store, a),
        ImageCmd::Tag(a) => cmd_tag(&store, a),
        ImageCmd::Import(a) => crate::cmd::image_archive::run_import(&store, a),
        ImageCmd::Export(a) => crate::cmd::image_archive::run_export(&store, a),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Registry options from the environment, `--insecure` for `reference`'s host, and
/// progress lines on standard error.
fn client(
    args: &RegistryArgs,
    reference: Option<&Reference>,
    platform: Option<&str>,
) -> anyhow::Result<RegistryClient> {
    let mut opts = RegistryOptions::from_env()?;
    if let Some(host) = reference
        .and_then(|r| r.registry())
        .filter(|_| args.insecure)
    {
        opts.insecure.push(host.to_string());
    }
    if let Some(p) = platform {
        opts.platform = Platform::parse(p)
            .with_context(|| format!("--platform {p:?} must be os/arch[/variant]"))?;
    }
    opts.progress = Some(Arc::new(|ev: &ProgressEvent| match ev {
        ProgressEvent::BlobExists { digest, size } => {
            eprintln!("  {} exists ({})", digest.short(), human_size(*size))
        }
        ProgressEvent::Uploading { digest, size } => {
            eprintln!("  {} uploading ({})", digest.short(), human_size(*size))
        }
        ProgressEvent::Downloading { digest, size } => {
            eprintln!("  {} downloading ({})", digest.short(), human_size(*size))
        }
        ProgressEvent::BlobPresent { digest } => {
            eprintln!("  {} already in the store", digest.short())
        }
    }));
    Ok(RegistryClient::new(opts)?)
}

/// Entrypoint/cmd values: a JSON array, one value split on whitespace, or one
/// argument per occurrence.
fn argv(values: &[String], flag: &str) -> anyhow::Result<Option<Vec<String>>> {
    match values {
        [] => Ok(None),
        [one] if one.trim_start().starts_with('[') => {
            let v: Vec<String> = serde_json::from_str(one).with_context(|| {
                format!("{flag} {one:?}: a value starting with [ must be a JSON array of strings")
            })?;
            Ok(Some(v))
        }
        [one] => Ok(Some(one.split_whitespace().map(str::to_string).collect())),
        many => Ok(Some(many.to_vec())),
    }
}

#[derive(Serialize)]
struct BuildReport<'a> {
    reference: String,
    digest: &'a str,
    size: u64,
    layer: &'a str,
    diff_id: &'a str,
}

fn source_date_epoch() -> anyhow::Result<Option<u64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => {
            Ok(Some(v.trim().parse::<u64>().with_context(|| {
                format!("SOURCE_DATE_EPOCH={v:?} must be seconds since 1970")
            })?))
        }
        _ => Ok(None),
    }
}

/// The Dockerfile to build, if this is a Dockerfile build.
fn dockerfile_of(a: &BuildArgs) -> Option<PathBuf> {
    if a.base.is_some() || !a.cmd.is_empty() {
        return None;
    }
    if let Some(f) = &a.file {
        return Some(f.clone());
    }
    ["Dockerfile", "Containerfile"]
        .iter()
        .map(|n| a.dir.join(n))
        .find(|p| p.is_file())
}

#[derive(Serialize)]
struct DockerfileReport {
    tags: Vec<String>,
    digest: String,
    config: String,
    steps_run: usize,
    steps_cached: usize,
}

fn cmd_build(store: &Store, a: BuildArgs) -> anyhow::Result<u8> {
    match dockerfile_of(&a) {
        Some(df) => cmd_build_dockerfile(store, &a, df),
        None => cmd_build_dir(store, a),
    }
}

fn cmd_build_dockerfile(store: &Store, a: &BuildArgs, dockerfile: PathBuf) -> anyhow::Result<u8> {
    if !a.dir.is_dir() {
        anyhow::bail!("the build context {} is not a directory", a.dir.display());
    }
    let mut build_args = std::collections::BTreeMap::new();
    for kv in &a.build_arg {
        match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                build_args.insert(k.to_string(), v.to_string());
            }
            // Docker: `--build-arg NAME` takes the value from the environment.
            _ if !kv.is_empty() && !kv.contains('=') => {
                if let Ok(v) = std::env::var(kv) {
                    build_args.insert(kv.clone(), v);
                }
            }
            _ => anyhow::bail!("--build-arg {kv:?} must be NAME=VALUE"),
        }
    }
    let platform = match &a.platform {
        Some(p) => Some(
            ferry_build::Platform::parse(p)
                .map_err(|e| anyhow::anyhow!("--platform {p:?}: {e}"))?,
        ),
        None => None,
    };
    let req = ferry_build::BuildRequest {
        context: a.dir.clone(),
        dockerfile,
        tags: a.tag.clone(),
        options: ferry_build::BuildOptions {
            build_args,
            target: a.target.clone(),
            platform,
        },
        no_cache: a.no_cache,
        source_date_epoch: source_date_epoch()?,
        home: home::ferry_home(),
        cancel: Some(Arc::new(std::sync::atomic::AtomicBool::new(false))),
    };
    let client = client(&a.registry, None, a.platform.as_deref()).ok();
    let mut err = std::io::stderr();
    let out = runtime()?.block_on(async {
        // Ctrl-C stops a running RUN and removes its container instead of leaving it
        // to finish in the background.
        if let Some(flag) = req.cancel.clone() {
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!("interrupted: stopping the build");
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
        ferry_build::build(store, &req, client.as_ref(), &mut err).await
    })?;
    match a.output {
        Format::Table => {
            for t in &out.tags {
                println!("{t} {}", out.digest);
            }
        }
        f => output::print_data(
            &DockerfileReport {
                tags: out.tags.clone(),
                digest: out.digest.to_string(),
                config: out.config_digest.to_string(),
                steps_run: out.ran,
                steps_cached: out.cached,
            },
            f,
        )?,
    }
    Ok(EXIT_OK)
}

fn cmd_build_dir(store: &Store, a: BuildArgs) -> anyhow::Result<u8> {
    let source_date_epoch = source_date_epoch()?.unwrap_or(0);
    let base_name = a.base.clone().unwrap_or_else(|| "scratch".to_string());
    let first_tag = a.tag[0].clone();
    let platform = match &a.platform {
        Some(p) => Some(
            Platform::parse(p)
                .with_context(|| format!("--platform {p:?} must be os/arch[/variant]"))?,
        ),
        None => None,
    };
    let base = if base_name == "scratch" {
        None
    } else {
        // A registry base not yet in the store is pulled first.
        if store.resolve(&base_name)?.is_none() {
            let r = Reference::parse(&base_name)?;
            if !r.is_local() {
                eprintln!("pulling base {r}");
                let c = client(&a.registry, Some(&r), a.platform.as_deref())?;
                runtime()?.block_on(c.pull(store, &r))?;
            }
        }
        Some(base_name.clone())
    };
    let opts = BuildOptions {
        context: a.dir.clone(),
        tag: first_tag.clone(),
        base,
        dest: Some(a.dest.clone()),
        entrypoint: argv(&a.entrypoint, "--entrypoint")?,
        cmd: argv(&a.cmd, "--cmd")?,
        env: a.env.clone(),
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        labels: a.label.clone(),
        expose: a.expose.clone(),
        source_date_epoch,
        platform,
    };
    let result = build(store, &opts)
        .with_context(|| format!("building {first_tag} from {}", a.dir.display()))?;
    for t in &a.tag[1..] {
        store.tag(&first_tag, t)?;
    }
    let report = BuildReport {
        reference: result.info.reference(),
        digest: result.info.digest.as_str(),
        size: result.info.size,
        layer: result.layer.digest.as_str(),
        diff_id: result.diff_id.as_str(),
    };
    match a.output {
        Format::Table => println!("{} {}", report.reference, report.digest),
        f => output::print_data(&report, f)?,
    }
    Ok(EXIT_OK)
}

fn cmd_push(store: &Store, a: PushArgs) -> anyhow::Result<u8> {
    let dest_text = a.dest.as_deref().unwrap_or(&a.reference);
    let dest = Reference::parse(dest_text)?;
    let c = client(&a.registry, Some(&dest), None)?;
    eprintln!("pushing {} to {dest}", a.reference);
    let stats = runtime()?.block_on(c.push(store, &a.reference, &dest, a.force))?;
    match a.output {
        Format::Table => println!(
            "pushed {} {} ({} blobs uploaded{}, {} already present, {})",
            stats.reference,
            stats.digest,
            stats.blobs_uploaded,
            if stats.chunks > 0 {
                format!(" in {} chunks", stats.chunks)
            } else {
                String::new()
            },
            stats.blobs_skipped,
            human_size(stats.bytes_uploaded),
        ),
        f => output::print_data(&stats, f)?,
    }
    Ok(EXIT_OK)
}

fn cmd_pull(store: &Store, a: PullArgs) -> anyhow::Result<u8> {
    let r = Reference::parse(&a.reference)?;
    let c = client(&a.registry, Some(&r), a.platform.as_deref())?;
    eprintln!("pulling {r}");
    let result = runtime()?.block_on(c.pull(store, &r))?;
    match a.output {
        Format::Table => println!(
            "pulled {} {} ({} blobs downloaded, {} already present, {})",
            result.info.reference(),
            result.info.digest,
            result.blobs_downloaded,
            result.blobs_present,
            human_size(result.bytes_downloaded),
        ),
        f => output::print_data(&result, f)?,
    }
    Ok(EXIT_OK)
}

fn cmd_ls(store: &Store, a: LsArgs) -> anyhow::Result<u8> {
    let images = store.list()?;
    match a.output {
        Format::Table => {
            let rows: Vec<Vec<String>> = images
                .iter()
                .map(|i| {
                    vec![
                        i.name.clone(),
                        i.tag.clone().unwrap_or_else(|| "<none>".to_string()),
                        i.digest.short().to_string(),
                        human_size(i.size),
                        i.created.clone().unwrap_or_else(|| "-".to_string()),
                    ]
                })
                .collect();
            print!(
                "{}",
                output::table(&["REPOSITORY", "TAG", "DIGEST", "SIZE", "CREATED"], &rows)
            );
        }
        f => output::print_data(&images, f)?,
    }
    Ok(EXIT_OK)
}

fn cmd_inspect(store: &Store, a: InspectArgs) -> anyhow::Result<u8> {
    let doc = match store.resolve(&a.reference)? {
        Some(info) => {
            let manifest: serde_json::Value =
                serde_json::from_slice(&store.read_blob(&info.digest)?)
                    .with_context(|| format!("manifest {}", info.digest))?;
            let config: serde_json::Value =
                serde_json::from_slice(&store.read_blob(&info.config_digest)?)
                    .with_context(|| format!("config {}", info.config_digest))?;
            serde_json::json!({
                "reference": info.reference(),
                "digest": info.digest,
                "mediaType": info.media_type,
                "size": info.size,
                "source": "local",
                "manifest": manifest,
                "config": config,
            })
        }
        None => {
            let r = Reference::parse(&a.reference)?;
            if r.is_local() {
                return Err(ferry_oci::Error::NotFound {
                    reference: r.to_string(),
                }
                .into());
            }
            let c = client(&a.registry, Some(&r), None)?;
            let (m, config) = runtime()?.block_on(c.inspect(&r))?;
            let manifest: serde_json::Value =
                serde_json::from_slice(&m.raw).with_context(|| format!("manifest of {r}"))?;
            serde_json::json!({
                "reference": r.to_string(),
                "digest": m.digest,
                "mediaType": m.media_type,
                "source": "registry",
                "manifest": manifest,
                "config": config,
            })
        }
    };
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(EXIT_OK)
}

fn cmd_rm(store: &Store, a: RmArgs) -> anyhow::Result<u8> {
    for r in &a.references {
        for name in store.remove(r)? {
            println!("removed {name}");
        }
    }
    Ok(EXIT_OK)
}

fn cmd_tag(store: &Store, a: TagArgs) -> anyhow::Result<u8> {
    let info = store.tag(&a.source, &a.target)?;
    println!("{} {}", info.reference(), info.digest);
    Ok(EXIT_OK)
}

/// `1.2 MiB`, binary units.
fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_forms() {
        assert_eq!(argv(&[], "--cmd").unwrap(), None);
        assert_eq!(
            argv(&[r#"["a b","c"]"#.into()], "--cmd").unwrap(),
            Some(vec!["a b".into(), "c".into()])
        );
        assert_eq!(
            argv(&["python3 app.py".into()], "--cmd").unwrap(),
            Some(vec!["python3".into(), "app.py".into()])
        );
        assert_eq!(
            argv(&["a b".into(), "c".into()], "--cmd").unwrap(),
            Some(vec!["a b".into(), "c".into()])
        );
        assert_eq!(argv(&["[]".into()], "--cmd").unwrap(), Some(vec![]));
        assert!(argv(&["[1]".into()], "--cmd").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 << 20), "3.0 MiB");
    }
}
