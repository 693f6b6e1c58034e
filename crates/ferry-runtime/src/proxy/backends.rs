//! The routing table of one Service port: which endpoints are ready, how traffic
//! splits between versions, and which endpoint the next request goes to.
//!
//! Choice is deterministic so that tests are exact: a version is chosen by nginx's
//! smooth weighted round-robin (precomputed into a schedule, so picking is two atomic
//! increments under a read lock), then an endpoint round-robin within that version.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Longest weighted schedule kept; larger weight sums (after dividing by their
/// greatest common divisor) are scaled down to about this many slots.
const MAX_SCHEDULE: u64 = 10_000;

/// One endpoint of a Service port: a pod's host address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Host address the pod listens on for this Service port.
    pub addr: SocketAddr,
    /// The pod's version: its `pod-template-hash` label (what weights refer to).
    pub version: String,
    /// The pod's name, for error messages.
    pub pod: String,
    /// Whether the pod is ready; only ready endpoints receive traffic.
    pub ready: bool,
}

impl Endpoint {
    /// A ready endpoint.
    pub fn ready(addr: SocketAddr, version: impl Into<String>, pod: impl Into<String>) -> Self {
        Self {
            addr,
            version: version.into(),
            pod: pod.into(),
            ready: true,
        }
    }

    /// An endpoint that is not ready (it receives nothing).
    pub fn not_ready(addr: SocketAddr, version: impl Into<String>, pod: impl Into<String>) -> Self {
        Self {
            ready: false,
            ..Self::ready(addr, version, pod)
        }
    }
}

/// The endpoint chosen for one request or connection.
#[derive(Clone, Debug)]
pub struct Target {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The endpoint's version (the `version` label of the metrics).
    pub version: Arc<str>,
    /// The endpoint's pod, for error messages.
    pub pod: Arc<str>,
}

/// Shared, hot-swappable routing table of one Service port.
///
/// The controller calls [`Backends::set_endpoints`] and [`Backends::set_weights`]
/// whenever pods or the traffic split change; the proxy sees the new table on its
/// next request or connection.
///
/// Without weights, requests go round-robin over every ready endpoint. With weights
/// (by version), a version is chosen by smooth weighted round-robin among the
/// versions that have a ready endpoint and a weight above 0 — so the share of a
/// version without ready endpoints goes to the others in proportion, a version with
/// weight 0 (or missing from the map) gets nothing — then an endpoint round-robin
/// within it. If no ready endpoint has a positive weight, traffic goes round-robin
/// over all ready endpoints rather than nowhere.
#[derive(Debug, Default)]
pub struct Backends {
    /// What the controller said last; writers hold this lock while they rebuild, so
    /// concurrent updates apply in order.
    desired: Mutex<Desired>,
    table: RwLock<Table>,
}

#[derive(Debug, Default)]
struct Desired {
    endpoints: Vec<Endpoint>,
    weights: Option<BTreeMap<String, u32>>,
}

#[derive(Debug, Default)]
struct Table {
    /// Endpoint groups traffic can go to: one per weighted version, or one group of
    /// every ready endpoint when unweighted. Empty: nothing is ready.
    groups: Vec<Group>,
    /// Weighted: indices into `groups` in smooth weighted round-robin order, taken
    /// cyclically. Empty: unweighted, `groups` has at most one group.
    schedule: Vec<u32>,
    cursor: AtomicUsize,
    /// Number of ready targets in `groups`.
    targets: usize,
}

#[derive(Debug)]
struct Group {
    targets: Vec<Target>,
    next: AtomicUsize,
}

impl Group {
    fn new(targets: Vec<Target>) -> Self {
        Self {
            targets,
            next: AtomicUsize::new(0),
        }
    }
}

impl Backends {
    /// An empty table: every request gets 503 until endpoints are set.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Replaces the endpoints (ready or not). Round-robin positions restart.
    pub fn set_endpoints(&self, eps: Vec<Endpoint>) {
        let mut desired = lock(&self.desired);
        desired.endpoints = eps;
        self.rebuild(&desired);
    }

    /// Sets the traffic split by version (`pod-template-hash` → weight), or clears
    /// it with `None` (plain round-robin over all ready endpoints).
    pub fn set_weights(&self, weights: Option<BTreeMap<String, u32>>) {
        let mut desired = lock(&self.desired);
        desired.weights = weights;
        self.rebuild(&desired);
    }

    /// The traffic split last set, if any.
    pub fn weights(&self) -> Option<BTreeMap<String, u32>> {
        lock(&self.desired).weights.clone()
    }

    /// The endpoints last set, ready or not.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        lock(&self.desired).endpoints.clone()
    }

    /// Number of ready endpoints that can receive traffic now.
    pub fn ready_count(&self) -> usize {
        self.read().targets
    }

    /// Chooses the endpoint for the next request or connection; `None` when no
    /// endpoint is ready.
    pub fn pick(&self) -> Option<Target> {
        let table = self.read();
        if table.groups.is_empty() {
            return None;
        }
        let group = if table.schedule.is_empty() {
            &table.groups[0]
        } else {
            let slot = table.cursor.fetch_add(1, Ordering::Relaxed) % table.schedule.len();
            &table.groups[table.schedule[slot] as usize]
        };
        let i = group.next.fetch_add(1, Ordering::Relaxed) % group.targets.len();
        Some(group.targets[i].clone())
    }

    /// Chooses an endpoint other than `failed` (for a retry after a connect error);
    /// `None` when no other endpoint is ready.
    pub fn pick_other(&self, failed: SocketAddr) -> Option<Target> {
        let tries = self.read().targets;
        // Each group's cursor moves on at every pick, so `tries` picks visit every
        // other ready endpoint that the split allows.
        (0..tries)
            .filter_map(|_| self.pick())
            .find(|t| t.addr != failed)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }

    fn rebuild(&self, desired: &Desired) {
        let table = build(desired);
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = table;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn target(ep: &Endpoint, versions: &mut BTreeMap<String, Arc<str>>) -> Target {
    let version = versions
        .entry(ep.version.clone())
        .or_insert_with(|| Arc::from(ep.version.as_str()))
        .clone();
    Target {
        addr: ep.addr,
        version,
        pod: Arc::from(ep.pod.as_str()),
    }
}

fn build(desired: &Desired) -> Table {
    let mut versions = BTreeMap::new();
    let ready: Vec<Target> = desired
        .endpoints
        .iter()
        .filter(|ep| ep.ready)
        .map(|ep| target(ep, &mut versions))
        .collect();
    let targets = ready.len();
    let unweighted = |ready: Vec<Target>| Table {
        groups: if ready.is_empty() {
            Vec::new()
        } else {
            vec![Group::new(ready)]
        },
        targets,
        ..Table::default()
    };
    let Some(weights) = &desired.weights else {
        return unweighted(ready);
    };

    // Versions that can take traffic, in version order so the schedule is stable.
    let mut by_version: BTreeMap<Arc<str>, Vec<Target>> = BTreeMap::new();
    for t in &ready {
        if weights.get(&*t.version).is_some_and(|w| *w > 0) {
            by_version
                .entry(t.version.clone())
                .or_default()
                .push(t.clone());
        }
    }
    if by_version.is_empty() {
        // Something is ready but nothing has weight: serve rather than refuse.
        return unweighted(ready);
    }
    let raw: Vec<u64> = by_version
        .keys()
        .map(|v| u64::from(weights[&**v]))
        .collect();
    let schedule = smooth_schedule(&scale(&raw));
    Table {
        groups: by_version.into_values().map(Group::new).collect(),
        schedule,
        cursor: AtomicUsize::new(0),
        targets: ready.len(),
    }
}

/// Divides weights by their greatest common divisor and, if their sum is still
/// above [`MAX_SCHEDULE`], scales them down (keeping each at least 1).
fn scale(weights: &[u64]) -> Vec<u64> {
    let g = weights.iter().copied().fold(0, gcd).max(1);
    let reduced: Vec<u64> = weights.iter().map(|w| w / g).collect();
    let total: u64 = reduced.iter().sum();
    if total <= MAX_SCHEDULE {
        return reduced;
    }
    reduced
        .iter()
        .map(|w| (w * MAX_SCHEDULE / total).max(1))
        .collect()
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// nginx's smooth weighted round-robin, run for one full period (the sum of the
/// weights): each step adds every weight to its current value, picks the largest
/// (first on ties) and subtracts the total from it. Each index appears exactly its
/// weight's number of times, spread evenly.
fn smooth_schedule(weights: &[u64]) -> Vec<u32> {
    let total: u64 = weights.iter().sum();
    let total_i = i64::try_from(total).expect("schedule total is bounded");
    let mut current = vec![0i64; weights.len()];
    let mut schedule = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, w) in weights.iter().enumerate() {
            current[i] += *w as i64;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total_i;
        schedule.push(best as u32);
    }
    schedule
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(port: u16, version: &str, ready: bool) -> Endpoint {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        Endpoint {
            addr,
            version: version.into(),
            pod: format!("pod-{port}"),
            ready,
        }
    }

    fn counts(b: &Backends, n: usize) -> BTreeMap<u16, usize> {
        let mut out = BTreeMap::new();
        for _ in 0..n {
            *out.entry(b.pick().unwrap().addr.port()).or_default() += 1;
        }
        out
    }

    #[test]
    fn smooth_schedule_is_nginx_order() {
        // nginx's documented example: weights 5, 1, 1 give a a b a c a a.
        assert_eq!(smooth_schedule(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(smooth_schedule(&[4, 1]), vec![0, 0, 1, 0, 0]);
    }

    #[test]
    fn scale_reduces_by_gcd_and_caps() {
        assert_eq!(scale(&[80, 20]), vec![4, 1]);
        assert_eq!(scale(&[0, 50]), vec![0, 1]);
        let big = scale(&[1_000_000, 1]);
        assert_eq!(big, vec![MAX_SCHEDULE - 1, 1]);
    }

    #[test]
    fn unweighted_round_robin_skips_not_ready() {
        let b = Backends::new();
        b.set_endpoints(vec![ep(1, "a", true), ep(2, "a", false), ep(3, "b", true)]);
        let picks: Vec<u16> = (0..4).map(|_| b.pick().unwrap().addr.port()).collect();
        assert_eq!(picks, vec![1, 3, 1, 3]);
        assert_eq!(b.ready_count(), 2);
    }

    #[test]
    fn weights_split_exactly_and_redistribute() {
        let b = Backends::new();
        b.set_endpoints(vec![ep(1, "a", true), ep(2, "a", true), ep(3, "b", true)]);
        b.set_weights(Some([("a".into(), 80), ("b".into(), 20)].into()));
        assert_eq!(counts(&b, 1000), [(1, 400), (2, 400), (3, 200)].into());

        // b has no ready endpoint: its share goes to a.
        b.set_endpoints(vec![ep(1, "a", true), ep(3, "b", false)]);
        assert_eq!(counts(&b, 10), [(1, 10)].into());

        // Only a weight-0 version is ready: serve it rather than nothing.
        b.set_weights(Some([("a".into(), 0), ("b".into(), 100)].into()));
        assert_eq!(counts(&b, 3), [(1, 3)].into());
    }

    #[test]
    fn pick_other_avoids_the_failed_endpoint() {
        let b = Backends::new();
        b.set_endpoints(vec![ep(1, "a", true), ep(2, "a", true)]);
        for _ in 0..5 {
            assert_eq!(
                b.pick_other(SocketAddr::from(([127, 0, 0, 1], 1)))
                    .unwrap()
                    .addr
                    .port(),
                2
            );
        }
        b.set_endpoints(vec![ep(1, "a", true)]);
        assert!(
            b.pick_other(SocketAddr::from(([127, 0, 0, 1], 1)))
                .is_none()
        );
    }
}
