//! How often the engine looks at Git and the target, and how long it waits.

use std::time::Duration;

/// A back-off: `base`, multiplied by `factor` at each further attempt, never above `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first attempt counted by [`Backoff::delay`].
    pub base: Duration,
    /// Multiplier per attempt (at least 1).
    pub factor: u32,
    /// Longest delay.
    pub max: Duration,
}

impl Backoff {
    /// The delay before attempt `n` (1-based): `base × factor^(n-1)`, capped at `max`.
    pub fn delay(&self, n: u32) -> Duration {
        let mut d = self.base;
        for _ in 1..n.max(1) {
            d = d.saturating_mul(self.factor.max(1));
            if d >= self.max {
                return self.max;
            }
        }
        d.min(self.max)
    }
}

/// The engine's timing. [`EngineConfig::default`] is Argo CD's.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// How often each app's repository is fetched (Argo's `timeout.reconciliation`, 120 s).
    pub reconciliation: Duration,
    /// Up to this much is added to `reconciliation` per app (60 s), so that apps do not
    /// all fetch at once. The share is derived from the app's name: stable, no RNG.
    pub jitter: Duration,
    /// Back-off between self-heal attempts while drift persists (2 s × 3, at most 300 s).
    pub self_heal_backoff: Backoff,
    /// Longest wait for one wave to become healthy, or one hook to finish (5 min).
    pub sync_timeout: Duration,
    /// Shortest time between two comparisons of one app triggered by changes on the
    /// target (1 s): a busy target does not make the engine spin.
    pub compare_interval: Duration,
    /// How often waits re-check state when the target reports no change (1 s).
    pub poll_interval: Duration,
    /// Apps refreshed at once by the controller (Argo's `--status-processors`, 20).
    /// More only queue for the same cores, and each refresh in flight holds memory.
    pub status_processors: usize,
    /// Automated syncs run at once (Argo's `--operation-processors`, 10). A sync
    /// waiting for a hook or a wave holds its slot; refreshes never wait for one.
    pub operation_processors: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            reconciliation: Duration::from_secs(120),
            jitter: Duration::from_secs(60),
            self_heal_backoff: Backoff {
                base: Duration::from_secs(2),
                factor: 3,
                max: Duration::from_secs(300),
            },
            sync_timeout: Duration::from_secs(300),
            compare_interval: Duration::from_secs(1),
            poll_interval: Duration::from_secs(1),
            status_processors: 20,
            operation_processors: 10,
        }
    }
}

impl EngineConfig {
    /// The jitter share of the app named `name`: a stable fraction of [`Self::jitter`].
    pub fn jitter_for(&self, name: &str) -> Duration {
        // FNV-1a: deterministic across runs and platforms, unlike `DefaultHasher`.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let frac = (h % 10_000) as f64 / 10_000.0;
        self.jitter.mul_f64(frac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_heal_backoff_is_argos() {
        let b = EngineConfig::default().self_heal_backoff;
        let secs: Vec<u64> = (1..=7).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(secs, [2, 6, 18, 54, 162, 300, 300]);
    }

    #[test]
    fn jitter_is_stable_and_bounded() {
        let c = EngineConfig::default();
        assert_eq!(c.jitter_for("web"), c.jitter_for("web"));
        assert!(c.jitter_for("web") < c.jitter);
        assert_ne!(c.jitter_for("web"), c.jitter_for("api"));
    }
}
