//! Printing for people and scripts, and exit codes.

#![allow(dead_code)]

/// Success.
pub const EXIT_OK: u8 = 0;
/// The command ran and found a problem (out of sync, invalid, unhealthy).
pub const EXIT_FINDING: u8 = 1;
/// The command could not do its job (bad input, I/O, tool missing).
pub const EXIT_ERROR: u8 = 2;

/// The error and its causes, joined by `: `.
pub fn error_chain(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

/// Output format of commands that print objects or reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table for people.
    #[default]
    Table,
    /// JSON for scripts.
    Json,
    /// YAML for scripts.
    Yaml,
}

/// Aligns rows into columns separated by three spaces, kubectl-style, headers first.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let cols = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(cols) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, cell) in cells.enumerate().take(cols) {
            if i + 1 == cols {
                l.push_str(cell);
            } else {
                l.push_str(cell);
                l.push_str(&" ".repeat(widths[i] - cell.chars().count() + 3));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// Prints a serialisable value as JSON or YAML.
pub fn print_data<T: serde::Serialize>(value: &T, format: Format) -> anyhow::Result<()> {
    let v = serde_json::to_value(value)?;
    match format {
        Format::Yaml => emit(&ferry_core::parse::to_yaml(&v)),
        _ => emit(&format!("{}\n", serde_json::to_string_pretty(&v)?)),
    }
}

/// Writes to standard output. A closed pipe (`ferry … | head`) ends the program
/// quietly with success, as Unix tools do, instead of a panic.
pub fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => Ok(other?),
    }
}

/// Reads a file, or standard input for `-`.
pub fn read_input(path: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context as _;
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .context("reading standard input")?;
        Ok(s)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    }
}

/// Expands the paths given to `-f`: files as they are, directories to their
/// `*.yaml`/`*.yml`/`*.json` files (sorted, recursively), `-` for standard input.
pub fn expand_paths(paths: &[std::path::PathBuf]) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found = Vec::new();
            collect_manifests(p, &mut found)?;
            found.sort();
            if found.is_empty() {
                anyhow::bail!(
                    "{}: no .yaml, .yml or .json files in this directory",
                    p.display()
                );
            }
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn collect_manifests(
    dir: &std::path::Path,
    out: &mut Vec<std::path::PathBuf>,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            collect_manifests(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

/// Reads and parses every object of the given files (see [`expand_paths`]).
pub fn load_objects(paths: &[std::path::PathBuf]) -> anyhow::Result<Vec<ferry_core::Object>> {
    let mut objects = Vec::new();
    for path in expand_paths(paths)? {
        let text = read_input(&path)?;
        let name = if path.as_os_str() == "-" {
            "<stdin>".to_string()
        } else {
            path.display().to_string()
        };
        objects.extend(ferry_core::parse::parse_str(&text, &name)?);
    }
    Ok(objects)
}
