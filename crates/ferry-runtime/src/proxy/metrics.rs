//! Request and connection metrics of the Service proxies, rendered in the
//! Prometheus text exposition format (version 0.0.4).
//!
//! Recording is lock-free apart from a read lock on a small per-service map of
//! versions: each series is a set of atomics behind an `Arc`, created on first use.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets; Prometheus' defaults.
const BUCKETS: [(f64, &str); 11] = [
    (0.005, "0.005"),
    (0.01, "0.01"),
    (0.025, "0.025"),
    (0.05, "0.05"),
    (0.1, "0.1"),
    (0.25, "0.25"),
    (0.5, "0.5"),
    (1.0, "1"),
    (2.5, "2.5"),
    (5.0, "5"),
    (10.0, "10"),
];

/// Status classes counted; index = first digit − 1.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The `version` label of requests that found no ready endpoint.
pub(crate) const NO_VERSION: &str = "none";

/// Counters and latency histograms of every Service proxy sharing this value.
///
/// Series, all labelled `namespace`, `service`, `version` (the endpoint's
/// `pod-template-hash`, or `none` when no endpoint was ready):
/// - `ferry_service_requests_total` (counter, also labelled `code`: `2xx`…`5xx`),
/// - `ferry_service_request_duration_seconds` (histogram, time to the response
///   head),
/// - `ferry_service_connections_total` (counter, TCP passthrough connections).
///
/// Ports of the same Service add up in the same series.
#[derive(Debug, Default)]
pub struct Metrics {
    services: RwLock<BTreeMap<(String, String), Arc<ServiceMetrics>>>,
}

/// The series of one Service.
#[derive(Debug)]
pub(crate) struct ServiceMetrics {
    namespace: String,
    name: String,
    versions: RwLock<HashMap<Arc<str>, Arc<VersionSeries>>>,
}

/// The series of one version of one Service.
#[derive(Debug, Default)]
pub(crate) struct VersionSeries {
    codes: [AtomicU64; 5],
    /// Per bucket (not cumulative); the last slot counts what exceeds every bound.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
    connections: AtomicU64,
}

impl Metrics {
    /// The `Content-Type` to serve [`Metrics::render`] with.
    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";

    /// No series yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The series of one Service, created on first use.
    pub(crate) fn service(&self, namespace: &str, name: &str) -> Arc<ServiceMetrics> {
        let key = (namespace.to_string(), name.to_string());
        if let Some(s) = self
            .services
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return s.clone();
        }
        let mut services = self.services.write().unwrap_or_else(|e| e.into_inner());
        services
            .entry(key)
            .or_insert_with(|| {
                Arc::new(ServiceMetrics {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    versions: RwLock::default(),
                })
            })
            .clone()
    }

    /// Every series in the Prometheus text exposition format, with `HELP` and
    /// `TYPE` lines, ready to serve at `/metrics`.
    pub fn render(&self) -> String {
        let services: Vec<Arc<ServiceMetrics>> = self
            .services
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        // (labels, series) in a stable order.
        let mut rows: Vec<(String, Arc<VersionSeries>)> = Vec::new();
        for s in &services {
            let mut versions: Vec<(Arc<str>, Arc<VersionSeries>)> = s
                .versions
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(v, series)| (v.clone(), series.clone()))
                .collect();
            versions.sort_by(|a, b| a.0.cmp(&b.0));
            for (version, series) in versions {
                let labels = format!(
                    "namespace=\"{}\",service=\"{}\",version=\"{}\"",
                    escape(&s.namespace),
                    escape(&s.name),
                    escape(&version)
                );
                rows.push((labels, series));
            }
        }

        let mut out = String::with_capacity(256 + rows.len() * 1500);
        out.push_str(
            "# HELP ferry_service_requests_total HTTP requests proxied to a Service, by endpoint version and status class.\n\
             # TYPE ferry_service_requests_total counter\n",
        );
        for (labels, series) in &rows {
            let codes: Vec<u64> = series
                .codes
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect();
            if codes.iter().all(|c| *c == 0) {
                continue;
            }
            for (i, n) in codes.iter().enumerate() {
                // 1xx only once seen; the others always, so a first 5xx is a change
                // from 0 that rate() can see.
                if i == 0 && *n == 0 {
                    continue;
                }
                let _ = writeln!(
                    out,
                    "ferry_service_requests_total{{{labels},code=\"{}\"}} {n}",
                    CLASSES[i]
                );
            }
        }

        out.push_str(
            "# HELP ferry_service_request_duration_seconds Time from receiving an HTTP request to the endpoint's response head.\n\
             # TYPE ferry_service_request_duration_seconds histogram\n",
        );
        for (labels, series) in &rows {
            let counts: Vec<u64> = series
                .buckets
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect();
            let total: u64 = counts.iter().sum();
            if total == 0 {
                continue;
            }
            let mut cumulative = 0;
            for (i, (_, le)) in BUCKETS.iter().enumerate() {
                cumulative += counts[i];
                let _ = writeln!(
                    out,
                    "ferry_service_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "ferry_service_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {total}"
            );
            let sum = series.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(
                out,
                "ferry_service_request_duration_seconds_sum{{{labels}}} {sum}"
            );
            let _ = writeln!(
                out,
                "ferry_service_request_duration_seconds_count{{{labels}}} {total}"
            );
        }

        out.push_str(
            "# HELP ferry_service_connections_total TCP connections passed through to a Service, by endpoint version.\n\
             # TYPE ferry_service_connections_total counter\n",
        );
        for (labels, series) in &rows {
            let n = series.connections.load(Ordering::Relaxed);
            if n > 0 {
                let _ = writeln!(out, "ferry_service_connections_total{{{labels}}} {n}");
            }
        }
        out
    }
}

impl ServiceMetrics {
    /// The series of one version, created on first use.
    pub(crate) fn version(&self, version: &str) -> Arc<VersionSeries> {
        if let Some(s) = self
            .versions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(version)
        {
            return s.clone();
        }
        self.versions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(Arc::from(version))
            .or_default()
            .clone()
    }

    /// Runs `f` on the series of `version`; on the hot path that is a read lock
    /// and a hash lookup, no allocation.
    fn with_version(&self, version: &str, f: impl FnOnce(&VersionSeries)) {
        if let Some(s) = self
            .versions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(version)
        {
            return f(s);
        }
        f(&self.version(version));
    }

    /// Counts one HTTP request answered with `status` after `elapsed`.
    pub(crate) fn request(&self, version: &str, status: u16, elapsed: Duration) {
        self.with_version(version, |s| s.request(status, elapsed));
    }

    /// Counts one TCP connection passed through.
    pub(crate) fn connection(&self, version: &str) {
        self.with_version(version, |s| {
            s.connections.fetch_add(1, Ordering::Relaxed);
        });
    }
}

impl VersionSeries {
    /// Counts one HTTP request answered with `status` after `elapsed`.
    pub(crate) fn request(&self, status: u16, elapsed: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.codes[class].fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|(le, _)| secs <= *le)
            .unwrap_or(BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

/// Escapes a label value: backslash, double quote and newline.
fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return value.into();
    }
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_histogram() {
        let m = Metrics::new();
        let s = m.service("default", "web");
        s.request("abc", 200, Duration::from_millis(1));
        s.request("abc", 204, Duration::from_millis(30));
        s.request("abc", 503, Duration::from_secs(20));
        s.connection("def");
        let text = m.render();
        let l = r#"namespace="default",service="web",version="abc""#;
        for line in [
            format!("ferry_service_requests_total{{{l},code=\"2xx\"}} 2"),
            format!("ferry_service_requests_total{{{l},code=\"3xx\"}} 0"),
            format!("ferry_service_requests_total{{{l},code=\"5xx\"}} 1"),
            format!("ferry_service_request_duration_seconds_bucket{{{l},le=\"0.005\"}} 1"),
            format!("ferry_service_request_duration_seconds_bucket{{{l},le=\"0.05\"}} 2"),
            format!("ferry_service_request_duration_seconds_bucket{{{l},le=\"10\"}} 2"),
            format!("ferry_service_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} 3"),
            format!("ferry_service_request_duration_seconds_count{{{l}}} 3"),
            r#"ferry_service_connections_total{namespace="default",service="web",version="def"} 1"#
                .to_string(),
        ] {
            assert!(
                text.lines().any(|x| x == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(!text.contains("code=\"1xx\""));
        assert!(
            !text.contains(r#"version="def",code"#),
            "a TCP-only version has no request series"
        );
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("plain"), "plain");
    }
}
