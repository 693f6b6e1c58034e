//! Refresh: render the app's source (fetching when due), compare it with the target,
//! and keep the app's status — writing it only when something changed.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use ferry_core::argo::ApplicationSpec;
use ferry_core::diff::SyncStatus;
use ferry_core::plan::ObjectOptions;
use ferry_core::{Object, ObjectKey};
use tokio::time::Instant;

use crate::compare::{Comparison, compare_app};
use crate::engine::{Automation, Engine, Refreshed, lock, now_rfc3339, status_json};
use crate::error::{Error, Result};
use crate::source::{Desired, FetchMode, SourceError};
use crate::status::{
    COMPARISON_ERROR, ComparedTo, Condition, RENDER_WARNING, SHARED_RESOURCE_WARNING, SYNC_ERROR,
    Summary, SyncCode, SyncInfo,
};
use crate::tracking;
use serde_json::Value;

impl Engine {
    pub(crate) fn snapshot(&self, name: &str) -> Result<(ApplicationSpec, Automation)> {
        self.with_app(name, |e| (e.app.spec.clone(), e.automation.clone()))
    }

    /// Who renders which key, for this app's compare: an index of every app's claims,
    /// rebuilt only when some app's claims changed since it was built.
    pub(crate) fn claims_of_others(&self, app: &str) -> Claims {
        use std::sync::atomic::Ordering;
        let mut index = lock(&self.claims_index);
        let generation = self.claims_gen.load(Ordering::SeqCst);
        if index.0 != generation {
            let apps = lock(&self.apps);
            let mut map: HashMap<ObjectKey, Vec<String>> = HashMap::new();
            for (name, e) in apps.iter() {
                for key in &e.claims {
                    map.entry(key.clone()).or_default().push(name.clone());
                }
            }
            *index = (generation, Arc::new(map));
        }
        Claims {
            index: index.1.clone(),
            me: app.to_string(),
        }
    }

    /// Compares a render with the target, with the claims of the other apps.
    pub(crate) async fn compare(
        &self,
        name: &str,
        spec: &ApplicationSpec,
        desired: &Desired,
    ) -> std::result::Result<Comparison, String> {
        let claims = self.claims_of_others(name);
        compare_app(self.target.as_ref(), name, spec, &desired.objects, &claims).await
    }

    /// Records whether the repository could be fetched, from a render's outcome: an
    /// unreachable repository is remembered until a fetch succeeds. Returns the state.
    pub(crate) fn note_reachability(
        &self,
        name: &str,
        fetch: FetchMode,
        desired: &std::result::Result<Desired, SourceError>,
    ) -> Result<Option<String>> {
        self.with_app(name, |e| {
            match desired {
                Ok(d) if d.unreachable.is_some() => e.unreachable = d.unreachable.clone(),
                Ok(_) if fetch == FetchMode::Fetch => e.unreachable = None,
                Err(err) if err.unreachable => e.unreachable = Some(err.message.clone()),
                _ => {}
            }
            e.unreachable.clone()
        })
    }

    pub(crate) fn update_automation(
        &self,
        name: &str,
        f: impl FnOnce(&mut Automation),
    ) -> Result<()> {
        let automation = self.with_app(name, |e| {
            f(&mut e.automation);
            e.status.auto_sync_paused = e.automation.paused_at.is_some();
            e.status.auto_sync_paused_reason = e.automation.pause_reason.clone();
            e.automation.clone()
        })?;
        let value = serde_json::to_value(&automation).map_err(|e| Error::State {
            app: name.to_string(),
            message: e.to_string(),
        })?;
        self.db.set_app_automation(name, &value)?;
        self.save_status(name)?;
        Ok(())
    }

    /// Writes the app's status to the database when it changed (`reconciledAt` aside).
    fn save_status(&self, name: &str) -> Result<()> {
        let changed = self.with_app(name, |e| {
            let json = status_json(&e.status);
            if json == e.saved_status {
                None
            } else {
                e.saved_status = json;
                Some(serde_json::to_value(&e.status).unwrap_or(Value::Null))
            }
        })?;
        if let Some(v) = changed {
            self.db.set_app_status(name, &v)?;
        }
        self.notify();
        Ok(())
    }

    /// Renders (fetching as `fetch` says), compares, and stores the app's status.
    /// Returns what automated sync needs, or `None` when the comparison failed.
    pub(crate) async fn refresh_app(
        &self,
        name: &str,
        fetch: FetchMode,
        hard: bool,
    ) -> Result<Option<Refreshed>> {
        let refresh_lock = self.with_app(name, |e| e.refresh_lock.clone())?;
        let _guard = refresh_lock.lock().await;
        let (spec, _) = self.snapshot(name)?;
        let desired = self
            .sources
            .desired(name, &spec, None, None, fetch, hard)
            .await;
        let now = now_rfc3339();
        let mut conditions: Vec<(String, String)> = Vec::new();
        let mut out = None;
        let mut new_claims = None;
        let mut comparison = None;
        match &desired {
            Ok(d) => {
                if !d.warnings.is_empty() {
                    conditions.push((RENDER_WARNING.into(), d.warnings.join("; ")));
                }
                new_claims = Some(
                    d.objects
                        .iter()
                        .filter(|o| !tracking::is_hook(o))
                        .map(Object::key)
                        .collect::<BTreeSet<_>>(),
                );
                match self.compare(name, &spec, d).await {
                    Ok(c) => {
                        for (key, apps) in &c.shared {
                            conditions.push((
                                SHARED_RESOURCE_WARNING.into(),
                                format!(
                                    "{} {}/{} is also rendered by app {}: neither app prunes it; keep it in one app",
                                    key.kind,
                                    key.namespace,
                                    key.name,
                                    apps.join(", ")
                                ),
                            ));
                        }
                        out = Some(Refreshed {
                            revision: d.revision.clone(),
                            sync: c.sync,
                            actionable: actionable(&spec, &c),
                        });
                        comparison = Some(c);
                    }
                    Err(m) => conditions.push((COMPARISON_ERROR.into(), m)),
                }
            }
            Err(e) if e.unreachable => {}
            Err(e) => conditions.push((COMPARISON_ERROR.into(), e.message.clone())),
        }
        if let Some(u) = self.note_reachability(name, fetch, &desired)? {
            conditions.insert(0, (COMPARISON_ERROR.into(), u));
        }
        // Other apps that now share an object with this one should say so too.
        let mut poke: Vec<ObjectKey> = Vec::new();
        {
            let mut apps = lock(&self.apps);
            let Some(e) = apps.get_mut(name) else {
                return Ok(None);
            };
            if let Some(claims) = new_claims
                && claims != e.claims
            {
                poke = claims.symmetric_difference(&e.claims).cloned().collect();
                e.claims = claims;
                self.claims_gen
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            if let Some(msg) = &e.sync_error {
                conditions.push((SYNC_ERROR.into(), msg.clone()));
            }
            let st = &mut e.status;
            match (&desired, comparison) {
                (Ok(d), Some(c)) => {
                    st.sync = SyncInfo {
                        status: c.sync,
                        revision: d.revision.clone(),
                        compared_to: ComparedTo {
                            source: Some(d.source.clone()),
                            destination: spec.destination.clone(),
                        },
                    };
                    st.health = c.health;
                    st.resources = c.resources;
                    st.source_type = d.source_type.clone();
                    st.summary = Summary { images: c.images };
                }
                (Ok(d), None) => {
                    st.sync.status = SyncCode::Unknown;
                    st.sync.revision = d.revision.clone();
                }
                (Err(err), _) => {
                    // Keep the last known state; only the sync status is unknown now,
                    // unless the repository is merely unreachable.
                    if !err.unreachable {
                        st.sync.status = SyncCode::Unknown;
                    }
                }
            }
            let previous = std::mem::take(&mut st.conditions);
            st.conditions = conditions
                .into_iter()
                .map(|(kind, message)| {
                    let since = previous
                        .iter()
                        .find(|c| c.kind == kind && c.message == message)
                        .map(|c| c.last_transition_time.clone())
                        .unwrap_or_else(|| now.clone());
                    Condition {
                        kind,
                        message,
                        last_transition_time: since,
                    }
                })
                .collect();
            st.auto_sync_paused = e.automation.paused_at.is_some();
            st.auto_sync_paused_reason = e.automation.pause_reason.clone();
            st.reconciled_at = Some(now);
            e.sched.last_compare = Some(Instant::now());
            if !poke.is_empty() {
                let poke: BTreeSet<&ObjectKey> = poke.iter().collect();
                for (other, oe) in apps.iter_mut() {
                    if other != name && oe.claims.iter().any(|k| poke.contains(k)) {
                        oe.sched.requested.get_or_insert(FetchMode::Mirror);
                    }
                }
                self.wake.notify_one();
            }
        }
        self.save_status(name)?;
        Ok(out)
    }
}

/// Whether a sync would change anything the automated policy acts on: an object
/// OutOfSync or Missing, or (with automated prune) one that would be pruned.
fn actionable(spec: &ApplicationSpec, c: &Comparison) -> bool {
    let prune = spec
        .sync_policy
        .as_ref()
        .and_then(|p| p.automated.as_ref())
        .is_some_and(|a| a.prune);
    c.diffs.iter().any(|d| match d.status {
        SyncStatus::Synced => false,
        SyncStatus::OutOfSync | SyncStatus::Missing => true,
        SyncStatus::Extraneous => {
            prune
                && c.live
                    .get(&d.key)
                    .is_some_and(|o| ObjectOptions::of(o).0.prune)
        }
    })
}

/// The apps other than one that render each key.
pub(crate) struct Claims {
    index: Arc<HashMap<ObjectKey, Vec<String>>>,
    me: String,
}

impl Claims {
    /// The other apps rendering `key`, if any.
    pub(crate) fn others(&self, key: &ObjectKey) -> Option<Vec<String>> {
        let apps = self.index.get(key)?;
        let others: Vec<String> = apps.iter().filter(|a| **a != self.me).cloned().collect();
        (!others.is_empty()).then_some(others)
    }
}
