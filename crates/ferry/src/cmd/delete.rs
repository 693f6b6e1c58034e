//! `ferry delete KIND NAME… | KIND/NAME… | -f FILE`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{ArgAction, Args};

use crate::client::{self, ApiFailure, Client, ServerArgs, enc, object_path};
use crate::output::{self, EXIT_FINDING, EXIT_OK};

/// Delete runtime objects. Dependents go too (`--cascade=background`, the default)
/// unless `--cascade=orphan`; pods stop gracefully first.
#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// KIND NAME…, or KIND/NAME….
    pub targets: Vec<String>,
    /// Delete the objects these manifests name.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Namespace (default: `default`).
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    pub namespace: Option<String>,
    /// What happens to dependents: background, foreground or orphan.
    #[arg(long, value_name = "MODE", num_args = 0..=1, default_value = "background", default_missing_value = "background")]
    pub cascade: String,
    /// Wait until the objects are gone.
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub wait: bool,
    /// Give up waiting after this long.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Say nothing when an object is already gone.
    #[arg(long)]
    pub ignore_not_found: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Runs `ferry delete`.
pub fn run(args: DeleteArgs) -> anyhow::Result<u8> {
    let ns = args.namespace.clone().unwrap_or_else(|| "default".into());
    let mut targets: Vec<(String, String, String)> = Vec::new();
    if !args.files.is_empty() {
        for o in output::load_objects(&args.files)? {
            let obj_ns = if o.namespace().is_empty() {
                ns.clone()
            } else {
                o.namespace().to_string()
            };
            targets.push((obj_ns, o.kind().to_string(), o.name().to_string()));
        }
    }
    match args.targets.as_slice() {
        [] => {}
        [one, ..] if one.contains('/') => {
            for t in &args.targets {
                let (k, n) = client::target(t, None)?;
                targets.push((ns.clone(), k, n));
            }
        }
        [kind, names @ ..] => {
            if names.is_empty() {
                anyhow::bail!("name the objects to delete: ferry delete {kind} NAME");
            }
            for n in names {
                targets.push((ns.clone(), kind.clone(), n.clone()));
            }
        }
    }
    if targets.is_empty() {
        anyhow::bail!("nothing to delete: give KIND NAME, KIND/NAME or -f FILE");
    }
    let client = Client::new(&args.server)?;
    let mut failed = false;
    let mut gone = Vec::new();
    for (ns, kind, name) in &targets {
        let path = object_path(ns, kind, name);
        match client.delete(&format!("{path}?cascade={}", enc(&args.cascade))) {
            Ok(v) => {
                let group = client::s(&v, "/group");
                let k = client::s(&v, "/kind");
                let plural = ferry_server::kinds::plural_of(k);
                let shown = if group.is_empty() {
                    plural
                } else {
                    format!("{plural}.{group}")
                };
                output::emit(&format!("{shown} {name:?} deleted\n"))?;
                gone.push(path);
            }
            Err(e) => match e.downcast::<ApiFailure>() {
                Ok(f) if f.code == 404 && args.ignore_not_found => {}
                Ok(f) => {
                    eprintln!("error: {}", f.message);
                    failed = true;
                }
                Err(e) => return Err(e),
            },
        }
    }
    if args.wait {
        let deadline = Instant::now() + args.timeout;
        for path in gone {
            loop {
                match client.get(&path) {
                    Err(e)
                        if e.downcast_ref::<ApiFailure>()
                            .is_some_and(|f| f.code == 404) =>
                    {
                        break;
                    }
                    Err(e) => return Err(e),
                    Ok(_) if Instant::now() >= deadline => {
                        eprintln!("error: timed out waiting for {path} to be deleted");
                        return Ok(EXIT_FINDING);
                    }
                    Ok(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        }
    }
    Ok(if failed { EXIT_FINDING } else { EXIT_OK })
}
