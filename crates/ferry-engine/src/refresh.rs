//! Refresh: render the app's source (fetching when due), compare it with the target,
//! and keep the app's status — writing it only when something changed.

use std::collections::BTreeSet;

use ferry_core::argo::ApplicationSpec;
use ferry_core::diff::SyncStatus;
use ferry_core::plan::ObjectOptions;
use ferry_core::{Object, ObjectKey};
use tokio::time::Instant;

use crate::compare::{Comparison, compare_app};
use crate::engine::{Automation, ClaimsMap, Engine, Refreshed, lock, now_rfc3339, saved_form};
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

    /// Who renders which key, for this app's compare.
    pub(crate) fn claims_of_others<'a>(&'a self, app: &'a str) -> Claims<'a> {
        Claims {
            index: &self.claims_index,
            me: app,
        }
    }

    /// Moves the app `name` in the claims index from the keys `old` to `new`. Call
    /// with the `apps` lock held. Returns the other apps that render a key that came
    /// or went: they now share, or no longer share, an object with this one.
    pub(crate) fn reclaim(
        &self,
        name: &str,
        old: &BTreeSet<ObjectKey>,
        new: &BTreeSet<ObjectKey>,
    ) -> BTreeSet<String> {
        let mut index = lock(&self.claims_index);
        let mut others = BTreeSet::new();
        for key in old.difference(new) {
            if let Some(apps) = index.get_mut(key) {
                apps.retain(|a| a != name);
                others.extend(apps.iter().cloned());
                if apps.is_empty() {
                    index.remove(key);
                }
            }
        }
        for key in new.difference(old) {
            let apps = index.entry(key.clone()).or_default();
            others.extend(apps.iter().cloned());
            apps.push(name.to_string());
        }
        others
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
            let saved = saved_form(&e.status);
            if saved == e.saved_status {
                None
            } else {
                e.saved_status = saved;
                Some(serde_json::to_value(&e.status).unwrap_or(Value::Null))
            }
        })?;
        if let Some(v) = changed {
            self.db.set_app_status(name, &v)?;
        }
        self.notify();
        Ok(())
    }

    /// Renders (fetching as `fetch` says; a fetch that started after `asked`, default
    /// now, counts), compares, and stores the app's status.
    /// Returns what automated sync needs, or `None` when the comparison failed.
    pub(crate) async fn refresh_app(
        &self,
        name: &str,
        fetch: FetchMode,
        hard: bool,
        asked: Option<std::time::Instant>,
    ) -> Result<Option<Refreshed>> {
        let refresh_lock = self.with_app(name, |e| e.refresh_lock.clone())?;
        let _guard = refresh_lock.lock().await;
        let (spec, _) = self.snapshot(name)?;
        let desired = self
            .sources
            .desired(name, &spec, None, None, fetch, hard, asked)
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
        let mut poke = BTreeSet::new();
        {
            let mut apps = lock(&self.apps);
            let Some(e) = apps.get_mut(name) else {
                return Ok(None);
            };
            if let Some(claims) = new_claims
                && claims != e.claims
            {
                poke = self.reclaim(name, &e.claims, &claims);
                e.claims = claims;
            }
            if let Some(msg) = &e.sync_error {
                // Argo's words when the failure holds automated sync (and self-heal)
                // back for the commit, so that users know why drift stays.
                let a = &e.automation;
                let held = desired
                    .as_ref()
                    .ok()
                    .map(|d| d.revision.as_str())
                    .filter(|rev| {
                        spec.sync_policy.as_ref().is_some_and(|p| p.is_automated())
                            && a.paused_at.is_none()
                            && a.attempt_failed
                            && a.attempted_revision.as_deref() == Some(*rev)
                    });
                conditions.push((
                    SYNC_ERROR.into(),
                    match held {
                        Some(rev) => format!(
                            "Failed sync attempt to {rev}: {msg} (automated sync and self-heal \
                             resume at the next commit; `ferry app sync {name}` retries this one)"
                        ),
                        None => msg.clone(),
                    },
                ));
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
                for other in &poke {
                    if let Some(oe) = apps.get_mut(other) {
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
pub(crate) struct Claims<'a> {
    index: &'a std::sync::Mutex<ClaimsMap>,
    me: &'a str,
}

impl Claims<'_> {
    /// The other apps rendering `key`, if any.
    pub(crate) fn others(&self, key: &ObjectKey) -> Option<Vec<String>> {
        let index = lock(self.index);
        let apps = index.get(key)?;
        let others: Vec<String> = apps.iter().filter(|a| *a != self.me).cloned().collect();
        (!others.is_empty()).then_some(others)
    }
}
