//! `ferry app create|list|get|diff|sync|wait|refresh|history|rollback|set|delete`:
//! Argo CD Applications run by the daemon's engine, with `argocd app …`'s verbs.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::client::{Client, ServerArgs, enc, s};
use crate::output::{self, EXIT_FINDING, EXIT_OK, Format};

/// Manage applications: an app follows a path of a Git repository and keeps the
/// runtime in sync with it.
#[derive(Subcommand, Debug)]
pub enum AppCmd {
    /// Create an app from an Application file (`-f`) or from flags.
    Create(CreateArgs),
    /// List apps: NAME SYNC HEALTH REVISION PATH.
    List(ListArgs),
    /// Show an app: its source, sync and health status, conditions and resources.
    Get(GetArgs),
    /// Show what a sync would change (exit 1 when the app is out of sync).
    Diff(NameArgs),
    /// Sync an app to its target revision (exit 1 when the sync fails).
    Sync(SyncArgs),
    /// Wait until an app is synced and/or healthy (exit 1 on timeout).
    Wait(WaitArgs),
    /// Fetch the app's repository and compare now.
    Refresh(RefreshArgs),
    /// List an app's syncs: ID DATE REVISION RESULT TRIGGER.
    History(NameArgs),
    /// Sync a history entry's revision again; automated sync pauses until the next commit.
    Rollback(RollbackArgs),
    /// Change an app's spec with the same flags as `create`.
    Set(SetArgs),
    /// Delete an app and, unless --cascade=false, the objects it deployed.
    Delete(DeleteArgs),
}

/// The app, shared by the commands on one app.
#[derive(Args, Debug)]
pub struct NameArgs {
    /// The app's name.
    pub name: String,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Spec fields given by flags (`create` without `-f`, and `set`).
#[derive(Args, Debug, Default)]
pub struct SpecArgs {
    /// The Git repository URL (or a local path).
    #[arg(long, value_name = "URL")]
    pub repo: Option<String>,
    /// The directory in the repository.
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,
    /// Branch, tag or commit to follow (default: HEAD).
    #[arg(long, value_name = "REV")]
    pub revision: Option<String>,
    /// Namespace objects go to when they name none.
    #[arg(long, value_name = "NS")]
    pub dest_namespace: Option<String>,
    /// Destination name (ferry has one target: `local`).
    #[arg(long, value_name = "NAME")]
    pub dest_name: Option<String>,
    /// `automated` syncs each new commit; `none` turns automated sync off.
    #[arg(long, value_name = "POLICY", value_parser = ["automated", "auto", "none", "manual"])]
    pub sync_policy: Option<String>,
    /// With automated sync: delete objects that left Git.
    #[arg(long)]
    pub auto_prune: bool,
    /// With automated sync: undo changes made to live objects.
    #[arg(long)]
    pub self_heal: bool,
    /// A sync option such as CreateNamespace=true (repeatable).
    #[arg(long = "sync-option", value_name = "K=V")]
    pub sync_options: Vec<String>,
}

impl SpecArgs {
    /// Writes the given flags into an Application document.
    fn apply_to(&self, app: &mut Value) {
        let spec = &mut app["spec"];
        if spec.get("source").is_none_or(Value::is_null) {
            spec["source"] = json!({});
        }
        if let Some(r) = &self.repo {
            spec["source"]["repoURL"] = json!(r);
        }
        if let Some(p) = &self.path {
            spec["source"]["path"] = json!(p);
        }
        if let Some(r) = &self.revision {
            spec["source"]["targetRevision"] = json!(r);
        }
        if let Some(ns) = &self.dest_namespace {
            spec["destination"]["namespace"] = json!(ns);
        }
        if let Some(n) = &self.dest_name {
            spec["destination"]["name"] = json!(n);
        }
        match self.sync_policy.as_deref() {
            Some("automated" | "auto") if spec.pointer("/syncPolicy/automated").is_none() => {
                spec["syncPolicy"]["automated"] = json!({});
            }
            Some("automated" | "auto") | None => {}
            Some(_) => {
                if let Some(p) = spec.get_mut("syncPolicy").and_then(Value::as_object_mut) {
                    p.remove("automated");
                }
            }
        }
        if self.auto_prune || self.self_heal {
            if spec.pointer("/syncPolicy/automated").is_none() {
                spec["syncPolicy"]["automated"] = json!({});
            }
            if self.auto_prune {
                spec["syncPolicy"]["automated"]["prune"] = json!(true);
            }
            if self.self_heal {
                spec["syncPolicy"]["automated"]["selfHeal"] = json!(true);
            }
        }
        for opt in &self.sync_options {
            let key = opt.split('=').next().unwrap_or_default().to_string();
            let list = &mut spec["syncPolicy"]["syncOptions"];
            if !list.is_array() {
                *list = json!([]);
            }
            if let Some(items) = list.as_array_mut() {
                items.retain(|v| v.as_str().and_then(|s| s.split('=').next()) != Some(&key));
                items.push(json!(opt));
            }
        }
    }
}

/// `ferry app create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The app's name (with flags; `-f` takes it from the file).
    pub name: Option<String>,
    /// An Argo CD Application file (`-` for standard input).
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE",
        conflicts_with = "name"
    )]
    pub file: Option<PathBuf>,
    /// Replace an app of the same name with a different spec.
    #[arg(long)]
    pub upsert: bool,
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `ferry app set`.
#[derive(Args, Debug)]
pub struct SetArgs {
    /// The app's name.
    pub name: String,
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `ferry app list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: Format,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `ferry app get`.
#[derive(Args, Debug)]
pub struct GetArgs {
    /// The app's name.
    pub name: String,
    /// Fetch the repository and compare before showing.
    #[arg(long)]
    pub refresh: bool,
    /// Output format (`json`/`yaml`: the Argo-shaped Application).
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: Format,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `ferry app sync`.
#[derive(Args, Debug)]
pub struct SyncArgs {
    /// The app's name.
    pub name: String,
    /// Delete live objects that left Git.
    #[arg(long)]
    pub prune: bool,
    /// Apply nothing; show what would change.
    #[arg(long)]
    pub dry_run: bool,
    /// Sync this revision instead of the target revision.
    #[arg(long, value_name = "REV")]
    pub revision: Option<String>,
    /// Only this resource: GROUP:KIND:NAME or GROUP:KIND:NAMESPACE/NAME (repeatable).
    #[arg(long = "resource", value_name = "GROUP:KIND:NAME")]
    pub resources: Vec<String>,
    /// Output format of the finished operation.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: Format,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `ferry app wait`.
#[derive(Args, Debug)]
pub struct WaitArgs {
    /// The app's name.
    pub name: String,
    /// Wait until Synced.
    #[arg(long)]
    pub sync: bool,
    /// Wait until Healthy.
    #[arg(long)]
    pub health: bool,
    /// Wait until no operation is running.
    #[arg(long)]
    pub operation: bool,
    /// Give up after this long.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `ferry app refresh`.
#[derive(Args, Debug)]
pub struct RefreshArgs {
    /// The app's name.
    pub name: String,
    /// Render again instead of using the cached render.
    #[arg(long)]
    pub hard: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `ferry app rollback`.
#[derive(Args, Debug)]
pub struct RollbackArgs {
    /// The app's name.
    pub name: String,
    /// The history entry (see `ferry app history`).
    pub id: i64,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `ferry app delete`.
#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// The app's name.
    pub name: String,
    /// Also delete the objects the app deployed.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub cascade: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Runs `ferry app …`.
pub fn run(cmd: AppCmd) -> anyhow::Result<u8> {
    match cmd {
        AppCmd::Create(a) => create(a),
        AppCmd::List(a) => list(a),
        AppCmd::Get(a) => get(a),
        AppCmd::Diff(a) => diff(a),
        AppCmd::Sync(a) => sync(a),
        AppCmd::Wait(a) => wait(a),
        AppCmd::Refresh(a) => refresh(a),
        AppCmd::History(a) => history(a),
        AppCmd::Rollback(a) => rollback(a),
        AppCmd::Set(a) => set(a),
        AppCmd::Delete(a) => delete(a),
    }
}

fn app_path(name: &str) -> String {
    format!("/api/v1/apps/{}", enc(name))
}

fn print_warnings(answer: &Value) {
    for w in answer["warnings"].as_array().into_iter().flatten() {
        if let Some(w) = w.as_str() {
            eprintln!("warning: {w}");
        }
    }
}

fn create(a: CreateArgs) -> anyhow::Result<u8> {
    let client = Client::new(&a.server)?;
    let body = match (&a.file, &a.name) {
        (Some(file), _) => output::read_input(file)?,
        (None, Some(name)) => {
            let mut app = json!({
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "Application",
                "metadata": {"name": name},
                "spec": {"project": "default", "destination": {"name": "local"}},
            });
            a.spec.apply_to(&mut app);
            let missing: Vec<&str> = [
                ("--repo", "/spec/source/repoURL"),
                ("--dest-namespace", "/spec/destination/namespace"),
            ]
            .into_iter()
            .filter(|(_, p)| app.pointer(p).is_none())
            .map(|(f, _)| f)
            .collect();
            if !missing.is_empty() {
                anyhow::bail!(
                    "app create {name}: {} required (or give an Application file with -f)",
                    missing.join(" and ")
                );
            }
            app.to_string()
        }
        (None, None) => {
            anyhow::bail!("give an Application file with -f, or a NAME with --repo and --path")
        }
    };
    let path = format!("/api/v1/apps?upsert={}", a.upsert);
    let answer = client.request(
        reqwest::Method::POST,
        &path,
        Some((body, "application/yaml")),
    )?;
    print_warnings(&answer);
    output::emit(&format!(
        "application '{}' created\n",
        s(&answer, "/app/metadata/name")
    ))?;
    Ok(EXIT_OK)
}

fn set(a: SetArgs) -> anyhow::Result<u8> {
    let client = Client::new(&a.server)?;
    let mut app = client.get(&app_path(&a.name))?;
    if let Some(o) = app.as_object_mut() {
        o.remove("status");
    }
    a.spec.apply_to(&mut app);
    let answer = client.put(&app_path(&a.name), &app)?;
    print_warnings(&answer);
    output::emit(&format!("application '{}' updated\n", a.name))?;
    Ok(EXIT_OK)
}

/// The source of an app: its first source.
fn source(app: &Value) -> &Value {
    app.pointer("/spec/source")
        .filter(|v| !v.is_null())
        .or_else(|| app.pointer("/spec/sources/0"))
        .unwrap_or(&Value::Null)
}

fn short(rev: &str) -> &str {
    if rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()) {
        &rev[..7]
    } else {
        rev
    }
}

fn list(a: ListArgs) -> anyhow::Result<u8> {
    let client = Client::new(&a.server)?;
    let answer = client.get("/api/v1/apps")?;
    if a.output != Format::Table {
        output::print_data(&answer, a.output)?;
        return Ok(EXIT_OK);
    }
    let rows: Vec<Vec<String>> = answer["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|app| {
            vec![
                s(app, "/metadata/name").to_string(),
                s(app, "/status/sync/status").to_string(),
                s(app, "/status/health/status").to_string(),
                short(s(app, "/status/sync/revision")).to_string(),
                s(source(app), "/path").to_string(),
            ]
        })
        .collect();
    if rows.is_empty() {
        eprintln!("No applications found.");
        return Ok(EXIT_OK);
    }
    output::emit(&output::table(
        &["NAME", "SYNC", "HEALTH", "REVISION", "PATH"],
        &rows,
    ))?;
    Ok(EXIT_OK)
}

fn sync_policy(app: &Value) -> String {
    match app.pointer("/spec/syncPolicy/automated") {
        Some(auto) if !auto.is_null() => {
            let mut flags = Vec::new();
            if auto["prune"].as_bool() == Some(true) {
                flags.push("Prune");
            }
            if auto["selfHeal"].as_bool() == Some(true) {
                flags.push("SelfHeal");
            }
            if flags.is_empty() {
                "Automated".into()
            } else {
                format!("Automated ({})", flags.join(", "))
            }
        }
        _ => "Manual".into(),
    }
}

/// The summary `ferry app get` prints.
fn describe(app: &Value) -> String {
    let src = source(app);
    let target = match s(src, "/targetRevision") {
        "" => "HEAD",
        t => t,
    };
    let dest = if s(app, "/spec/destination/name").is_empty() {
        s(app, "/spec/destination/server")
    } else {
        s(app, "/spec/destination/name")
    };
    let rev = s(app, "/status/sync/revision");
    let sync = s(app, "/status/sync/status");
    let sync_line = if rev.is_empty() {
        sync.to_string()
    } else {
        format!("{sync} to {target} ({})", short(rev))
    };
    let health = s(app, "/status/health/status");
    let msg = s(app, "/status/health/message");
    let health_line = if msg.is_empty() {
        health.to_string()
    } else {
        format!("{health} ({msg})")
    };
    let mut lines = vec![
        ("Name:", s(app, "/metadata/name").to_string()),
        ("Project:", s(app, "/spec/project").to_string()),
        ("Destination:", dest.to_string()),
        (
            "Namespace:",
            s(app, "/spec/destination/namespace").to_string(),
        ),
        ("Repo:", s(src, "/repoURL").to_string()),
        ("Target:", target.to_string()),
        ("Path:", s(src, "/path").to_string()),
        ("Sync Policy:", sync_policy(app)),
        ("Sync Status:", sync_line),
        ("Health Status:", health_line),
    ];
    if app
        .pointer("/status/autoSyncPaused")
        .and_then(Value::as_bool)
        == Some(true)
    {
        let reason = s(app, "/status/autoSyncPausedReason");
        lines.push(("Auto Sync:", format!("paused ({reason})")));
    }
    if let Some(op) = app
        .pointer("/status/operationState")
        .filter(|v| !v.is_null())
    {
        let mut line = s(op, "/phase").to_string();
        if !s(op, "/message").is_empty() {
            line = format!("{line} ({})", s(op, "/message"));
        }
        lines.push(("Last Operation:", line));
    }
    let mut out = String::new();
    for (k, v) in lines {
        out.push_str(&format!("{k:<19}{v}\n"));
    }
    let conditions: Vec<Vec<String>> = app
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| vec![s(c, "/type").to_string(), s(c, "/message").to_string()])
        .collect();
    if !conditions.is_empty() {
        out.push('\n');
        out.push_str(&output::table(&["CONDITION", "MESSAGE"], &conditions));
    }
    let resources = rows(
        app,
        "/status/resources",
        &["/status", "/health/status", "/health/message"],
    );
    if !resources.is_empty() {
        out.push('\n');
        out.push_str(&output::table(
            &[
                "GROUP",
                "KIND",
                "NAMESPACE",
                "NAME",
                "STATUS",
                "HEALTH",
                "MESSAGE",
            ],
            &resources,
        ));
    }
    out
}

fn get(a: GetArgs) -> anyhow::Result<u8> {
    let client = Client::new(&a.server)?;
    let app = if a.refresh {
        client.post(&format!("{}/refresh", app_path(&a.name)), &json!({}))?
    } else {
        client.get(&app_path(&a.name))?
    };
    if a.output != Format::Table {
        output::print_data(&app, a.output)?;
        return Ok(EXIT_OK);
    }
    output::emit(&describe(&app))?;
    Ok(EXIT_OK)
}

fn diff(a: NameArgs) -> anyhow::Result<u8> {
    let client = Client::new(&a.server)?;
    let diffs = client.get(&format!("{}/diff", app_path(&a.name)))?;
    let mut out = String::new();
    let mut differs = false;
    for d in diffs.as_array().into_iter().flatten() {
        if s(d, "/status") == "Synced" {
            continue;
        }
        differs = true;
        out.push_str(&format!(
            "===== {}/{} {}/{} ({}) ======\n",
            s(d, "/group"),
            s(d, "/kind"),
            s(d, "/namespace"),
            s(d, "/name"),
            s(d, "/status")
        ));
        out.push_str(s(d, "/diff"));
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    output::emit(&out)?;
    Ok(if differs { EXIT_FINDING } else { EXIT_OK })
}

/// One table row per resource in the array at `list`: group, kind, namespace, name,
/// then the fields at `extra`.
fn rows(v: &Value, list: &str, extra: &[&str]) -> Vec<Vec<String>> {
    v.pointer(list)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| {
            ["/group", "/kind", "/namespace", "/name"]
                .iter()
                .chain(extra)
                .map(|p| s(r, p).to_string())
                .collect()
        })
        .collect()
}

/// The result table and phase of a finished operation.
fn operation_report(op: &Value) -> String {
    let rows = rows(
        op,
        "/syncResult/resources",
        &["/status", "/hookType", "/message"],
    );
    let mut out = String::new();
    if !rows.is_empty() {
        out.push_str(&output::table(
            &[
                "GROUP",
                "KIND",
                "NAMESPACE",
                "NAME",
                "STATUS",
                "HOOK",
                "MESSAGE",
            ],
            &rows,
        ));
        out.push('\n');
    }
    let rev = s(op, "/syncResult/revision");
    out.push_str(&format!("{:<19}{}\n", "Phase:", s(op, "/phase")));
    if !rev.is_empty() {
        out.push_str(&format!("{:<19}{}\n", "Revision:", short(rev)));
    }
    if !s(op, "/message").is_empty() {
        out.push_str(&format!("{:<19}{}\n", "Message:", s(op, "/message")));
    }
    out
}

fn finished(op: &Value, format: Format) -> anyhow::Result<u8> {
    if format == Format::Table {
        output::emit(&operation_report(op))?;
    } else {
        output::print_data(op, format)?;
    }
    Ok(if s(op, "/phase") == "Succeeded" {
        EXIT_OK
    } else {
        EXIT_FINDING
    })
}

fn sync(a: SyncArgs) -> anyhow::Result<u8> {
    let resources: Vec<Value> = a
        .resources
        .iter()
        .map(|r| {
            r.parse::<ferry_engine::ResourceFilter>()
                .map_err(anyhow::Error::msg)
                .and_then(|f| Ok(serde_json::to_value(f)?))
        })
        .collect::<anyhow::Result<_>>()?;
    let client = Client::new(&a.server)?;
    let body = json!({
        "revision": a.revision,
        "prune": a.prune,
        "dryRun": a.dry_run,
        "resources": resources,
        "trigger": "manual",
        "username": std::env::var("USER").unwrap_or_default(),
    });
    let op = client.post(&format!("{}/sync", app_path(&a.name)), &body)?;
    finished(&op, a.output)
}

fn wait(a: WaitArgs) -> anyhow::Result<u8> {
    let client = Client::new(&a.server)?;
    let path = format!(
        "{}/wait?sync={}&health={}&operation={}&timeout={}",
        app_path(&a.name),
        a.sync,
        a.health,
        a.operation,
        a.timeout.as_secs_f64()
    );
    let app = client.get(&path)?;
    output::emit(&format!(
        "application '{}': {}, {}\n",
        a.name,
        s(&app, "/status/sync/status"),
        s(&app, "/status/health/status")
    ))?;
    Ok(EXIT_OK)
}

fn refresh(a: RefreshArgs) -> anyhow::Result<u8> {
    let client = Client::new(&a.server)?;
    let app = client.post(
        &format!("{}/refresh?hard={}", app_path(&a.name), a.hard),
        &json!({}),
    )?;
    output::emit(&describe(&app))?;
    Ok(EXIT_OK)
}

fn history(a: NameArgs) -> anyhow::Result<u8> {
    let client = Client::new(&a.server)?;
    let entries = client.get(&format!("{}/history", app_path(&a.name)))?;
    let rows: Vec<Vec<String>> = entries
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            vec![
                h["id"].as_i64().unwrap_or_default().to_string(),
                s(h, "/deployedAt").to_string(),
                short(s(h, "/revision")).to_string(),
                s(h, "/result").to_string(),
                s(h, "/trigger").to_string(),
            ]
        })
        .collect();
    output::emit(&output::table(
        &["ID", "DATE", "REVISION", "RESULT", "TRIGGER"],
        &rows,
    ))?;
    Ok(EXIT_OK)
}

fn rollback(a: RollbackArgs) -> anyhow::Result<u8> {
    let client = Client::new(&a.server)?;
    let op = client
        .post(
            &format!("{}/rollback/{}", app_path(&a.name), a.id),
            &json!({}),
        )
        .with_context(|| format!("rolling back {} to history entry {}", a.name, a.id))?;
    finished(&op, Format::Table)
}

fn delete(a: DeleteArgs) -> anyhow::Result<u8> {
    let client = Client::new(&a.server)?;
    let answer = client.delete(&format!("{}?cascade={}", app_path(&a.name), a.cascade))?;
    let deleted = answer["deleted"].as_array().map_or(0, Vec::len);
    output::emit(&format!(
        "application '{}' deleted ({deleted} object(s) deleted)\n",
        a.name
    ))?;
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_build_an_automated_application() {
        let mut app =
            json!({"metadata": {"name": "web"}, "spec": {"destination": {"name": "local"}}});
        SpecArgs {
            repo: Some("/srv/git/web".into()),
            path: Some("deploy".into()),
            dest_namespace: Some("shop".into()),
            sync_policy: Some("automated".into()),
            self_heal: true,
            sync_options: vec!["CreateNamespace=true".into()],
            ..SpecArgs::default()
        }
        .apply_to(&mut app);
        assert_eq!(app["spec"]["source"]["repoURL"], "/srv/git/web");
        assert_eq!(app["spec"]["syncPolicy"]["automated"]["selfHeal"], true);
        assert_eq!(
            app["spec"]["syncPolicy"]["syncOptions"],
            json!(["CreateNamespace=true"])
        );
    }
}
