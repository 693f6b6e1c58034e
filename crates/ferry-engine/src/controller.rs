//! The controller loop: when each app is refreshed, and Argo CD's rules for automated
//! sync, self-heal and their back-off.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, Refreshed, lock, short};
use crate::error::{Error, Result};
use crate::source::FetchMode;
use crate::status::SyncCode;
use crate::sync::SyncArgs;

impl Engine {
    /// The controller loop: refreshes every app on its reconciliation period (and at
    /// once when asked), re-compares when the target changes, and runs automated
    /// syncs, self-heal and retries. Returns when `shutdown` is cancelled; a sync still
    /// running then is interrupted and recorded as such at the next start.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tasks = tokio::task::JoinSet::new();
        self.take_up_interrupted(&mut tasks);
        loop {
            let target = self.target.clone();
            let changed = target.changed();
            let now = Instant::now();
            let mut next = now + self.config.reconciliation;
            let mut due = Vec::new();
            {
                let mut apps = lock(&self.apps);
                for (name, e) in apps.iter_mut() {
                    let s = &mut e.sched;
                    if s.in_flight {
                        continue;
                    }
                    let period = self.config.reconciliation + self.config.jitter_for(name);
                    let fetch_at = s.last_fetch.map(|t| t + period);
                    let compare_at = s
                        .last_compare
                        .map(|t| t + self.config.compare_interval)
                        .unwrap_or(now);
                    let mode = if let Some(m) = s.requested {
                        Some(m)
                    } else if fetch_at.is_none_or(|t| t <= now) {
                        Some(FetchMode::Fetch)
                    } else if (s.live_changed && compare_at <= now)
                        || s.next_self_heal.is_some_and(|t| t <= now)
                    {
                        Some(FetchMode::Mirror)
                    } else {
                        None
                    };
                    if let Some(t) = fetch_at {
                        next = next.min(t);
                    }
                    if s.live_changed {
                        next = next.min(compare_at);
                    }
                    if let Some(t) = s.next_self_heal {
                        next = next.min(t);
                    }
                    if let Some(mode) = mode {
                        // Due from now on: a fetch that starts after this moment answers
                        // its refresh, so apps of one repository that queue for a slot
                        // still share one fetch.
                        let since = *s.waiting_since.get_or_insert_with(std::time::Instant::now);
                        due.push((since, name.clone(), mode));
                    }
                }
                // The apps waiting longest go first, as many as there are free refresh
                // slots; the rest keep waiting (a freed slot wakes this loop). Name
                // order alone would let the first apps of a busy target starve the rest.
                due.sort();
                due.truncate(self.refresh_slots.available_permits());
                for (_, name, mode) in &due {
                    if let Some(s) = apps.get_mut(name).map(|e| &mut e.sched) {
                        s.requested = None;
                        s.in_flight = true;
                        s.live_changed = false;
                        s.waiting_since = None;
                        if *mode == FetchMode::Fetch {
                            s.last_fetch = Some(now);
                        }
                    }
                }
            }
            for (asked, name, mode) in due {
                let this = self.clone();
                let Ok(slot) = self.refresh_slots.clone().try_acquire_owned() else {
                    // Only this loop takes refresh slots and it counted them above; were
                    // one missing, the app keeps its turn for the next pass.
                    let _ = self.with_app(&name, |e| {
                        e.sched.in_flight = false;
                        e.sched.requested.get_or_insert(mode);
                    });
                    continue;
                };
                tasks.spawn(async move {
                    this.reconcile(&name, mode, Some(asked), slot).await;
                    let _ = this.with_app(&name, |e| e.sched.in_flight = false);
                    this.wake.notify_one();
                });
            }
            while tasks.try_join_next().is_some() {}
            let next = next.max(now + Duration::from_millis(5));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = changed => {
                    let mut apps = lock(&self.apps);
                    for e in apps.values_mut() {
                        e.sched.live_changed = true;
                    }
                }
                _ = tokio::time::sleep_until(next) => {}
            }
        }
        tasks.shutdown().await;
    }

    /// Takes up, once, every operation the previous daemon left running when it was
    /// killed (see [`Engine::new`]). Each app's operation lock is taken here, before
    /// the first refresh, so that no automated sync starts a second operation beside
    /// the one being taken up.
    fn take_up_interrupted(self: &Arc<Self>, tasks: &mut tokio::task::JoinSet<()>) {
        let names = std::mem::take(&mut *lock(&self.interrupted));
        for name in names {
            let taken = self.with_app(&name, |e| {
                let op = e.operation.clone()?;
                let guard = e.op_lock.clone().try_lock_owned().ok()?;
                Some((op, guard))
            });
            let Ok(Some((op, guard))) = taken else {
                tracing::warn!("app {name}: the interrupted sync could not be taken up");
                continue;
            };
            let this = self.clone();
            tasks.spawn(async move {
                if let Err(e) = Box::pin(this.resume_sync(&name, op, guard)).await {
                    tracing::warn!("app {name}: taking up the interrupted sync: {e}");
                }
                this.wake.notify_one();
            });
        }
    }

    /// One controller pass over one app: refresh (holding `slot`; a fetch that started
    /// after `asked`, when the app began to wait, will do), then automated
    /// sync if due. The steps are boxed so that a task waiting for its turn is small:
    /// a thousand apps queued cost a thousand small tasks, not a thousand syncs' state.
    async fn reconcile(
        self: &Arc<Self>,
        name: &str,
        mode: FetchMode,
        asked: Option<std::time::Instant>,
        slot: tokio::sync::OwnedSemaphorePermit,
    ) {
        let refreshed = Box::pin(self.refresh_app(name, mode, false, asked)).await;
        drop(slot);
        self.wake.notify_one();
        match refreshed {
            Ok(Some(r)) => {
                if let Err(e) = Box::pin(self.auto_sync(name, r)).await {
                    tracing::warn!("app {name}: automated sync: {e}");
                }
            }
            Ok(None) => {}
            Err(Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!("app {name}: refresh: {e}"),
        }
    }

    /// Argo CD's automated sync rules: one attempt per new commit (a failed commit is
    /// not retried in a loop, beyond `retry`), self-heal with back-off, and no automated
    /// sync while paused by a rollback.
    async fn auto_sync(self: &Arc<Self>, name: &str, r: Refreshed) -> Result<()> {
        let (spec, automation) = self.snapshot(name)?;
        let Some(policy) = spec.sync_policy.as_ref().filter(|p| p.is_automated()) else {
            return Ok(());
        };
        let auto = policy.automated.clone().unwrap_or_default();
        if let Some(paused) = &automation.paused_at {
            if *paused == r.revision {
                return Ok(());
            }
            self.update_automation(name, |a| {
                a.paused_at = None;
                a.pause_reason = None;
            })?;
        }
        if r.sync == SyncCode::Synced || !r.actionable {
            self.with_app(name, |e| {
                e.sched.self_heal_attempts = 0;
                e.sched.next_self_heal = None;
            })?;
            return Ok(());
        }
        let new_commit = automation.attempted_revision.as_deref() != Some(r.revision.as_str());
        let trigger = if new_commit {
            "automated"
        } else if automation.attempt_failed || !auto.self_heal {
            return Ok(());
        } else {
            let now = Instant::now();
            let backoff = self.config.self_heal_backoff;
            let go = self.with_app(name, |e| {
                let s = &mut e.sched;
                match s.next_self_heal {
                    None => {
                        s.next_self_heal = Some(now + backoff.delay(s.self_heal_attempts + 1));
                        false
                    }
                    Some(t) if t <= now => {
                        s.self_heal_attempts += 1;
                        s.next_self_heal = Some(now + backoff.delay(s.self_heal_attempts + 1));
                        true
                    }
                    Some(_) => false,
                }
            })?;
            if !go {
                return Ok(());
            }
            "self-heal"
        };
        let op_free = self.with_app(name, |e| e.op_lock.try_lock().is_ok())?;
        if !op_free {
            return Ok(());
        }
        let Ok(_slot) = self.sync_slots.acquire().await else {
            return Ok(());
        };
        tracing::info!("app {name}: {trigger} sync to {}", short(&r.revision));
        let args = SyncArgs {
            revision: Some(r.revision.clone()),
            source: None,
            prune: auto.prune,
            dry_run: false,
            resources: Vec::new(),
            trigger: trigger.into(),
            automated: true,
            username: String::new(),
            fetch: FetchMode::Mirror,
        };
        match Box::pin(self.run_sync(name, args)).await {
            Ok(_) | Err(Error::Busy { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
