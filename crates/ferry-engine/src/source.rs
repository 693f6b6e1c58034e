//! From an app's source to the objects it wants: fetch and resolve the revision,
//! check out the path, render it (cached by commit, path and options), and place and
//! track the objects.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use ferry_core::Object;
use ferry_core::argo::{ApplicationSource, ApplicationSpec};
use ferry_git::{CommitId, Credentials, RepoCache};
use ferry_render::{DirectoryOptions, Format, HelmOptions, RenderOptions};

use crate::tracking;

/// Most renders kept in memory (each is one (commit, path, options) of one source).
const RENDER_CACHE_SIZE: usize = 256;

/// The objects an app wants, at one commit.
#[derive(Clone, Debug)]
pub(crate) struct Desired {
    /// The commit of the (first) source.
    pub revision: String,
    /// The (first) source, as rendered.
    pub source: ApplicationSource,
    /// Placed and tracked objects, hooks included, in render order.
    pub objects: Vec<Object>,
    /// Render warnings, each naming its file or option.
    pub warnings: Vec<String>,
    /// `Directory`, `Kustomize` or `Helm`.
    pub source_type: String,
    /// Set when the repository could not be fetched and the mirror's copy was used.
    pub unreachable: Option<String>,
}

/// Why no [`Desired`] could be had.
#[derive(Clone, Debug)]
pub(crate) struct SourceError {
    /// What failed, naming the repository, file and line.
    pub message: String,
    /// Whether the repository could not be reached (then nothing may be pruned).
    pub unreachable: bool,
}

/// How much a refresh goes to the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum FetchMode {
    /// Use the mirror; fetch only when it lacks the revision.
    Mirror,
    /// Fetch first.
    Fetch,
}

/// One source rendered at one commit (before placement and tracking).
struct Rendered {
    objects: Vec<Object>,
    warnings: Vec<String>,
    format: Format,
}

/// The repository cache, credentials, and renders already made.
pub(crate) struct Sources {
    repos: Arc<RepoCache>,
    credentials: Mutex<HashMap<String, Credentials>>,
    renders: Mutex<RenderCache>,
    /// Per repository: when the last successful fetch started. A refresh asked for
    /// before that moment is answered by that fetch, so a thousand apps from one repo
    /// refreshed together cost one fetch, not a thousand.
    fetches: Mutex<HashMap<String, Arc<Mutex<Option<std::time::Instant>>>>>,
}

/// Renders by (repository, commit, path, options), oldest dropped first.
#[derive(Default)]
struct RenderCache {
    map: HashMap<String, Arc<Rendered>>,
    order: VecDeque<String>,
}

/// What a blocking source job needs, owned.
struct Job {
    repos: Arc<RepoCache>,
    creds: Option<Credentials>,
    source: ApplicationSource,
    revision: String,
    fetch: FetchMode,
    opts: RenderOptions,
    /// When the refresh was asked for.
    asked: std::time::Instant,
}

impl Sources {
    pub(crate) fn new(repos: Arc<RepoCache>) -> Self {
        Self {
            repos,
            credentials: Mutex::new(HashMap::new()),
            renders: Mutex::new(RenderCache::default()),
            fetches: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn set_credentials(&self, url: &str, creds: Credentials) {
        lock(&self.credentials).insert(url.to_string(), creds);
    }

    /// The objects `app` wants. `revision` overrides the first source's target
    /// revision (sync to a commit, rollback); `source` replaces the first source. A
    /// fetch that started after `asked` (default: now) answers this one.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn desired(
        self: &Arc<Self>,
        app: &str,
        spec: &ApplicationSpec,
        revision: Option<&str>,
        source: Option<&ApplicationSource>,
        fetch: FetchMode,
        hard: bool,
        asked: Option<std::time::Instant>,
    ) -> Result<Desired, SourceError> {
        let mut sources: Vec<ApplicationSource> = spec.all_sources().into_iter().cloned().collect();
        if let Some(s) = source {
            match sources.first_mut() {
                Some(first) => *first = s.clone(),
                None => sources.push(s.clone()),
            }
        }
        // A source with `ref` and no path only lends its files to others (Helm values).
        sources.retain(|s| s.ref_name.is_empty() || !s.path.is_empty());
        let Some(first) = sources.first().cloned() else {
            return Err(SourceError {
                message: "the app has no source to render: set spec.source.repoURL and path".into(),
                unreachable: false,
            });
        };
        let dest_ns = if spec.destination.namespace.is_empty() {
            "default"
        } else {
            spec.destination.namespace.as_str()
        };
        let mut out = Desired {
            revision: String::new(),
            source: first,
            objects: Vec::new(),
            warnings: Vec::new(),
            source_type: String::new(),
            unreachable: None,
        };
        let mut types = Vec::new();
        for (i, src) in sources.into_iter().enumerate() {
            if !src.chart.is_empty() {
                return Err(SourceError {
                    message: format!(
                        "source {}: Helm repository charts (chart {:?}) are not supported yet; point repoURL at a Git repository holding the chart",
                        src.repo_url, src.chart
                    ),
                    unreachable: false,
                });
            }
            let rev = match revision.filter(|_| i == 0) {
                Some(r) if !r.is_empty() => r.to_string(),
                _ => src.revision().to_string(),
            };
            let (opts, warnings) = render_options(app, spec, &src);
            out.warnings.extend(warnings);
            let job = Job {
                repos: self.repos.clone(),
                creds: lock(&self.credentials).get(&src.repo_url).cloned(),
                source: src.clone(),
                revision: rev,
                fetch,
                opts,
                asked: asked.unwrap_or_else(std::time::Instant::now),
            };
            let this = self.clone();
            let (commit, rendered, unreachable) =
                tokio::task::spawn_blocking(move || this.run(job, hard))
                    .await
                    .map_err(|e| SourceError {
                        message: format!("rendering {}: the render task failed: {e}", src.repo_url),
                        unreachable: false,
                    })??;
            if i == 0 {
                out.revision = commit;
            }
            if out.unreachable.is_none() {
                out.unreachable = unreachable;
            }
            types.push(match rendered.format {
                Format::Kustomize => "Kustomize",
                Format::Helm => "Helm",
                _ => "Directory",
            });
            out.warnings.extend(rendered.warnings.iter().cloned());
            out.objects
                .extend(tracking::prepare(app, dest_ns, &rendered.objects));
        }
        types.dedup();
        out.source_type = types.join(",");
        Ok(out)
    }

    /// Fetch (as asked, or when the mirror lacks the revision), resolve, check out and
    /// render: blocking.
    fn run(
        &self,
        job: Job,
        hard: bool,
    ) -> Result<(String, Arc<Rendered>, Option<String>), SourceError> {
        let url = job.source.repo_url.as_str();
        let mut unreachable = None;
        let mut fetched = false;
        let last_fetch = lock(&self.fetches)
            .entry(url.to_string())
            .or_default()
            .clone();
        let fetch = |unreachable: &mut Option<String>| -> Result<(), SourceError> {
            // One fetch per repository at a time; skip it when one that started after
            // this refresh was asked for has already brought everything it could.
            let mut last = lock(&last_fetch);
            if last.is_some_and(|t| t >= job.asked) {
                return Ok(());
            }
            let started = std::time::Instant::now();
            match job.repos.fetch(url, job.creds.as_ref()) {
                Ok(_) => {
                    *last = Some(started);
                    Ok(())
                }
                Err(
                    e @ (ferry_git::Error::Unreachable { .. } | ferry_git::Error::Fetch { .. }),
                ) => {
                    *unreachable = Some(format!(
                        "repository unreachable: {e}; showing the last state fetched, and nothing will be pruned until it is reachable again"
                    ));
                    Ok(())
                }
                Err(e) => Err(SourceError {
                    message: e.to_string(),
                    unreachable: false,
                }),
            }
        };
        if job.fetch == FetchMode::Fetch {
            fetch(&mut unreachable)?;
            fetched = true;
        }
        let commit = match job.repos.resolve(url, &job.revision) {
            Ok(c) => c,
            Err(e) if !fetched && unreachable.is_none() => {
                tracing::debug!("resolving {} in {url}: {e}; fetching", job.revision);
                fetch(&mut unreachable)?;
                job.repos
                    .resolve(url, &job.revision)
                    .map_err(|e| resolve_error(e, &unreachable))?
            }
            Err(e) => return Err(resolve_error(e, &unreachable)),
        };
        let key = format!("{url}\n{commit}\n{}\n{:?}", job.source.path, job.opts);
        if !hard && let Some(r) = lock(&self.renders).map.get(&key) {
            return Ok((commit.to_string(), r.clone(), unreachable));
        }
        let mut rendered = render(&job.repos, url, &commit, &job.source, &job.opts)?;
        // Judged once per render, not per refresh: the cache below keeps the verdict
        // with the objects, so the steady-state refresh pays nothing for it.
        let unknown = refuse_invalid_names(&job.source, commit.as_str(), &rendered.objects)?;
        rendered.warnings.extend(unknown);
        let rendered = Arc::new(rendered);
        let mut cache = lock(&self.renders);
        if cache.map.insert(key.clone(), rendered.clone()).is_none() {
            cache.order.push_back(key);
            while cache.order.len() > RENDER_CACHE_SIZE {
                if let Some(old) = cache.order.pop_front() {
                    cache.map.remove(&old);
                }
            }
        }
        Ok((commit.to_string(), rendered, unreachable))
    }
}

fn resolve_error(e: ferry_git::Error, unreachable: &Option<String>) -> SourceError {
    let unreachable_now = matches!(
        e,
        ferry_git::Error::Unreachable { .. } | ferry_git::Error::Fetch { .. }
    ) || unreachable.is_some();
    let message = match unreachable {
        Some(u) if !matches!(e, ferry_git::Error::Unreachable { .. }) => format!("{e} ({u})"),
        _ => e.to_string(),
    };
    SourceError {
        message,
        unreachable: unreachable_now,
    }
}

fn render(
    repos: &RepoCache,
    url: &str,
    commit: &CommitId,
    source: &ApplicationSource,
    opts: &RenderOptions,
) -> Result<Rendered, SourceError> {
    let dir = repos
        .checkout(url, commit, &source.path)
        .map_err(|e| SourceError {
            message: e.to_string(),
            unreachable: false,
        })?;
    // The render may read the whole checkout of the commit (an overlay's `../base`)
    // and nothing outside it.
    let root = repos.checkout(url, commit, "").map_err(|e| SourceError {
        message: e.to_string(),
        unreachable: false,
    })?;
    let opts = &RenderOptions {
        confine_to: Some(root),
        ..opts.clone()
    };
    let out = ferry_render::render(&dir, opts).map_err(|e| SourceError {
        message: format!(
            "rendering {url} at {} path {:?}: {}",
            commit.short(),
            if source.path.is_empty() {
                "."
            } else {
                source.path.as_str()
            },
            e.to_string().replace(&format!("{}/", dir.display()), "")
        ),
        unreachable: false,
    })?;
    Ok(Rendered {
        objects: out.objects,
        warnings: out.warnings,
        format: out.format,
    })
}

/// Most invalid objects one error lists by name; the rest are counted.
const INVALID_SHOWN: usize = 5;

/// Refuses a render holding an object the API server would refuse for its names: the
/// whole app fails to compare (and so to sync) until Git is fixed, with each bad
/// object named by file, line and field. Nothing of it is applied.
///
/// Fields a kind's schema does not know come back as warnings (`file:line: Deployment
/// "web": unknown field "spec.replica"`), as kubectl's `--validate=warn` prints them.
fn refuse_invalid_names(
    src: &ApplicationSource,
    commit: &str,
    objects: &[Object],
) -> Result<Vec<String>, SourceError> {
    let mut unknown = Vec::new();
    let invalid: Vec<String> = objects
        .iter()
        .filter_map(|o| {
            let report = ferry_core::schema::check(o);
            if !report.unknown.is_empty() && unknown.len() < INVALID_SHOWN {
                let at = o
                    .source()
                    .map(|at| format!("{}:{}: ", repo_file(src, &at.file), at.line))
                    .unwrap_or_default();
                for field in &report.unknown {
                    unknown.push(format!(
                        "{at}{} {:?}: unknown field {field:?} (not in the schema of its kind; check the spelling)",
                        o.kind(),
                        o.name()
                    ));
                }
            }
            let schema = report.errors;
            let problem = match ferry_core::names::validate_object(o) {
                Err(mut e) => {
                    e.errors.extend(schema);
                    e.to_string()
                }
                Ok(()) if !schema.is_empty() => ferry_core::names::InvalidObject {
                    group: o.group().to_string(),
                    kind: o.kind().to_string(),
                    name: o.name().to_string(),
                    errors: schema,
                }
                .to_string(),
                Ok(()) => {
                    // What the store would refuse on write (bad base64, data too
                    // big) must stop the render too, or a sync would half-apply.
                    let mut body = o.value().clone();
                    let errors = ferry_core::admit::admit(&mut body).err()?;
                    ferry_core::admit::refusal(o.kind(), o.name(), &errors)
                }
            };
            Some(match o.source() {
                Some(at) => format!("{}:{}: {problem}", repo_file(src, &at.file), at.line),
                None => problem.to_string(),
            })
        })
        .collect();
    if invalid.is_empty() {
        return Ok(unknown);
    }
    let more = invalid.len().saturating_sub(INVALID_SHOWN);
    let mut message = format!(
        "{} at {}: {}",
        src.repo_url,
        crate::engine::short(commit),
        invalid[..invalid.len().min(INVALID_SHOWN)].join("; ")
    );
    if more > 0 {
        message.push_str(&format!("; and {more} more invalid objects"));
    }
    message.push_str("; fix them in Git");
    Err(SourceError {
        message,
        unreachable: false,
    })
}

/// A rendered file as the repository names it: the source path, then the file (a
/// tool's output, named by its command, is left as it is).
fn repo_file(src: &ApplicationSource, file: &str) -> String {
    let dir = src.path.trim_matches('/');
    if dir.is_empty() || dir == "." || file.starts_with(['<', '/']) || file.contains(' ') {
        file.to_string()
    } else {
        format!("{dir}/{file}")
    }
}

/// Render options from an Argo source, with a warning for every option ferry does
/// not act on yet.
fn render_options(
    app: &str,
    spec: &ApplicationSpec,
    src: &ApplicationSource,
) -> (RenderOptions, Vec<String>) {
    let mut warnings = Vec::new();
    let mut opts = RenderOptions::default();
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    if let Some(d) = &src.directory {
        opts.format = Format::Plain;
        opts.directory = DirectoryOptions {
            recurse: d.recurse,
            include: non_empty(&d.include),
            exclude: non_empty(&d.exclude),
        };
    }
    if let Some(h) = &src.helm {
        opts.format = Format::Helm;
        let values = match &h.values_object {
            Some(v) => Some(ferry_core::parse::to_yaml(v)),
            None => non_empty(&h.values),
        };
        let namespace = non_empty(&h.namespace).or_else(|| non_empty(&spec.destination.namespace));
        opts.helm = HelmOptions {
            release_name: Some(non_empty(&h.release_name).unwrap_or_else(|| app.to_string())),
            namespace,
            value_files: h.value_files.clone(),
            values,
            set: h
                .parameters
                .iter()
                .map(|p| (p.name.clone(), p.value.clone()))
                .collect(),
            skip_crds: h.skip_crds,
        };
        for (field, set) in [
            ("fileParameters", !h.file_parameters.is_empty()),
            ("ignoreMissingValueFiles", h.ignore_missing_value_files),
            ("skipTests", h.skip_tests),
            ("skipSchemaValidation", h.skip_schema_validation),
            ("kubeVersion", !h.kube_version.is_empty()),
            ("apiVersions", !h.api_versions.is_empty()),
        ] {
            if set {
                warnings.push(format!(
                    "spec.source.helm.{field} is not supported yet; ignored"
                ));
            }
        }
    }
    if let Some(k) = &src.kustomize {
        opts.format = Format::Kustomize;
        let set = serde_json::to_value(k).unwrap_or_default();
        if let Some(map) = set.as_object() {
            for field in map.keys() {
                warnings.push(format!(
                    "spec.source.kustomize.{field} is not supported yet; ignored (put it in kustomization.yaml)"
                ));
            }
        }
    }
    (opts, warnings)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
