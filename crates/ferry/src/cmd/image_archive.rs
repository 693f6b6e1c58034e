//! `ferry image import` and `ferry image export`: images as files, for machines where
//! no registry can be reached. Import takes a root filesystem tarball, a `docker save`
//! archive or an OCI archive; export writes an OCI archive.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use clap::Args;
use ferry_oci::{ImportOptions, Store, export, import};

use crate::output::{self, EXIT_OK, Format};

/// `ferry image import`.
///
/// FILE (or `-` for standard input) is recognised by its content:
///
/// - a root filesystem tarball, plain or gzip (`tar -C DIR -c .`,
///   `mmdebstrap --format=tar bookworm rootfs.tar`): one layer, the host's platform,
///   and the run settings of --cmd, --entrypoint, --env, --workdir and --user;
///   -t is required;
/// - a `docker save` archive (manifest.json): every image in it, under its RepoTags
///   or, if it holds one image, under -t;
/// - an OCI archive (a tar of an image layout, as `ferry image export` and
///   `skopeo copy … oci-archive:FILE` write): names from the
///   `org.opencontainers.image.ref.name` annotation, or -t.
///
/// Every blob is checked against its digest and every layer for entries that could
/// land outside the root; nothing is stored and no tag moves unless all pass.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The file to import, or `-` to read standard input.
    pub file: PathBuf,
    /// Name for the image, NAME[:TAG] (required for a root filesystem tarball).
    #[arg(short, long)]
    pub tag: Option<String>,
    /// Default command (root filesystem tarballs). Repeat for each argument, or give a
    /// JSON array (`'["python3","-m","http.server"]'`); one value with spaces is split
    /// on whitespace.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub cmd: Vec<String>,
    /// Entrypoint (root filesystem tarballs), same forms as --cmd.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub entrypoint: Vec<String>,
    /// Environment variable KEY=VALUE (repeatable; root filesystem tarballs). PATH has
    /// the usual default unless given.
    #[arg(long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory, an absolute path (root filesystem tarballs).
    #[arg(long, value_name = "PATH")]
    pub workdir: Option<String>,
    /// User to run as, NAME or UID[:GID] (root filesystem tarballs).
    #[arg(long)]
    pub user: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// `ferry image export`: writes a stored image as an OCI archive (a tar of an OCI
/// image layout holding that one image, named by its `name:tag`), which
/// `ferry image import` and `skopeo copy oci-archive:FILE …` read.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The stored image, NAME[:TAG] or a digest.
    pub reference: String,
    /// The file to write, or `-` for standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

/// Runs `ferry image import`.
pub fn run_import(store: &Store, a: ImportArgs) -> anyhow::Result<u8> {
    let printed = Arc::new(AtomicBool::new(false));
    let progress: Option<ferry_oci::archive::ImportProgress> = if std::io::stderr().is_terminal() {
        let printed = printed.clone();
        Some(Arc::new(move |read: u64, total: Option<u64>| {
            printed.store(true, Ordering::Relaxed);
            match total {
                Some(t) => eprint!("\r  read {} of {}   ", human_size(read), human_size(t)),
                None => eprint!("\r  read {}   ", human_size(read)),
            }
        }))
    } else {
        None
    };
    let opts = ImportOptions {
        tag: a.tag.clone(),
        cmd: argv(&a.cmd, "--cmd")?,
        entrypoint: argv(&a.entrypoint, "--entrypoint")?,
        env: a.env.clone(),
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        progress,
    };
    let shown = if a.file.as_os_str() == "-" {
        "standard input".to_string()
    } else {
        a.file.display().to_string()
    };
    let result = import(store, &a.file, &opts);
    if printed.load(Ordering::Relaxed) {
        eprintln!();
    }
    let result = result.with_context(|| format!("importing {shown}"))?;
    match a.output {
        Format::Table => {
            let mut text = String::new();
            for i in &result.images {
                text.push_str(&format!(
                    "imported {} ({}, {} layer{}, {})\n",
                    i.reference,
                    i.digest,
                    i.layers,
                    if i.layers == 1 { "" } else { "s" },
                    human_size(i.size)
                ));
            }
            output::emit(&text)?;
        }
        f => output::print_data(&result, f)?,
    }
    Ok(EXIT_OK)
}

/// Runs `ferry image export`.
pub fn run_export(store: &Store, a: ExportArgs) -> anyhow::Result<u8> {
    let to_stdout = a.output.as_os_str() == "-";
    if to_stdout && std::io::stdout().is_terminal() {
        anyhow::bail!(
            "refusing to write an image archive to a terminal; redirect standard output or give -o FILE"
        );
    }
    let r = export(store, &a.reference, &a.output)
        .with_context(|| format!("exporting {} to {}", a.reference, a.output.display()))?;
    let line = format!(
        "exported {} ({}, {} layer{}, {}) to {}",
        r.reference,
        r.digest,
        r.layers,
        if r.layers == 1 { "" } else { "s" },
        human_size(r.bytes),
        if to_stdout {
            "standard output".to_string()
        } else {
            a.output.display().to_string()
        }
    );
    // Standard output carries the archive itself when FILE is `-`.
    if to_stdout {
        eprintln!("{line}");
    } else {
        output::emit(&format!("{line}\n"))?;
    }
    Ok(EXIT_OK)
}

/// Entrypoint/cmd values: a JSON array, one value split on whitespace, or one
/// argument per occurrence (as `ferry image build` takes them).
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

/// Decimal sizes, as the import line shows them (`41.2 MB`).
fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
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
    fn sizes_and_argv() {
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(41_234_567), "41.2 MB");
        assert_eq!(
            argv(&["python3 -m http.server".into()], "--cmd").unwrap(),
            Some(vec!["python3".into(), "-m".into(), "http.server".into()])
        );
        assert_eq!(
            argv(&[r#"["a b"]"#.into()], "--cmd").unwrap(),
            Some(vec!["a b".into()])
        );
        assert!(argv(&["[oops".into()], "--cmd").is_err());
    }
}
