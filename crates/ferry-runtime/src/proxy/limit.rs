//! Connection caps and accept-error handling for a listener: what stops a flood of
//! slow clients from taking every file descriptor of the process (and with them
//! the API, every other Service and the runtime's own files).
//!
//! Shared by the Service proxy's accept loop and the daemon's API server.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Counts a listener's open connections against a total cap and a cap per remote
/// IP address (loopback peers are counted only in the total).
#[derive(Debug)]
pub struct Limiter {
    max: usize,
    per_ip: usize,
    open: AtomicUsize,
    by_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The listener holds its cap of connections.
    Total,
    /// The peer's IP address holds its cap of connections.
    PerIp,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Permit {
    limiter: Arc<Limiter>,
    /// Set when counted per IP (not loopback).
    ip: Option<IpAddr>,
}

impl Limiter {
    /// At most `max` connections, `per_ip` of them from one non-loopback address.
    pub fn new(max: usize, per_ip: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            per_ip,
            open: AtomicUsize::new(0),
            by_ip: Mutex::new(HashMap::new()),
        })
    }

    /// The total cap.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Admits a connection from `ip`, or says which cap it would exceed. Costs an
    /// atomic add for loopback peers, and a short lock for others: once per
    /// connection, never per request.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refused> {
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::Total);
        }
        let ip = ip.to_canonical();
        if ip.is_loopback() {
            return Ok(Permit {
                limiter: self.clone(),
                ip: None,
            });
        }
        let mut by_ip = self.by_ip.lock().unwrap_or_else(|e| e.into_inner());
        let n = by_ip.entry(ip).or_insert(0);
        if *n >= self.per_ip {
            drop(by_ip);
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::PerIp);
        }
        *n += 1;
        Ok(Permit {
            limiter: self.clone(),
            ip: Some(ip),
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            let mut by_ip = self.limiter.by_ip.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = by_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    by_ip.remove(&ip);
                }
            }
        }
        self.limiter.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What an accept loop does about refusals and accept errors, so that a flood or
/// running out of file descriptors is logged once per burst (not per connection)
/// and never turns the loop into a hot spin.
#[derive(Debug, Default)]
pub struct AcceptLog {
    refused: u64,
    failed: u64,
    backoff: Duration,
}

/// First back-off after an accept error; doubled while they go on.
const BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest back-off after accept errors.
const BACKOFF_MAX: Duration = Duration::from_secs(1);

impl AcceptLog {
    /// A connection was admitted: ends a burst of refusals or errors, saying how
    /// long it was.
    pub fn admitted(&mut self, listener: &dyn fmt::Display) {
        if self.refused > 0 {
            tracing::info!(
                "{listener}: accepting connections again after refusing {} at the cap",
                self.refused
            );
            self.refused = 0;
        }
        if self.failed > 0 {
            tracing::info!(
                "{listener}: accepting connections again after {} failed accepts",
                self.failed
            );
            self.failed = 0;
            self.backoff = Duration::ZERO;
        }
    }

    /// A connection was refused (and closed): warns at the first of a burst.
    pub fn refused(&mut self, listener: &dyn fmt::Display, why: Refused, limiter: &Limiter) {
        if self.refused == 0 {
            match why {
                Refused::Total => tracing::warn!(
                    "{listener}: holding {} connections, its cap; closing new ones until some end (slow or idle clients are closed after the header and idle timeouts)",
                    limiter.max
                ),
                Refused::PerIp => tracing::warn!(
                    "{listener}: a remote address holds {} connections, the cap per IP; closing its new ones",
                    limiter.per_ip
                ),
            }
        }
        self.refused += 1;
    }

    /// `accept` failed: returns how long to wait before accepting again, or
    /// `None` for an error of one connection (the client reset it while it was
    /// queued), after which accepting goes on at once. Out of file descriptors
    /// (`EMFILE`, `ENFILE`) or memory, the waits grow to [`BACKOFF_MAX`] so that
    /// connections ending can free some; the first error of a burst is logged.
    pub fn failed(&mut self, listener: &dyn fmt::Display, err: &io::Error) -> Option<Duration> {
        if matches!(
            err.kind(),
            io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionRefused
                | io::ErrorKind::Interrupted
        ) {
            return None;
        }
        if self.failed == 0 {
            tracing::warn!(
                "{listener}: accept failed: {err}; backing off and retrying (established connections are still served; raise the open-files limit or lower the connection cap if this recurs)"
            );
        }
        self.failed += 1;
        self.backoff = (self.backoff * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
        Some(self.backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_total_and_per_remote_ip_but_not_per_loopback_ip() {
        let l = Limiter::new(4, 2);
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let a_mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = l.admit(a).unwrap();
        let _a2 = l.admit(a_mapped).unwrap();
        assert_eq!(l.admit(a).unwrap_err(), Refused::PerIp);
        let _b1 = l.admit(b).unwrap();
        let _l1 = l.admit(local).unwrap();
        assert_eq!(l.open(), 4);
        assert_eq!(l.admit(local).unwrap_err(), Refused::Total);
        drop(a1);
        assert_eq!(l.open(), 3);
        let _a3 = l.admit(a).unwrap();
        assert_eq!(l.admit(b).unwrap_err(), Refused::Total);
        assert_eq!(l.open(), 4);
    }

    #[test]
    fn accept_errors_back_off_up_to_a_second_and_reset_once_accepting() {
        let mut log = AcceptLog::default();
        let emfile = io::Error::from_raw_os_error(24);
        let waits: Vec<_> = (0..10).map(|_| log.failed(&"l", &emfile)).collect();
        assert_eq!(waits[0], Some(BACKOFF_MIN));
        assert_eq!(waits[1], Some(BACKOFF_MIN * 2));
        assert_eq!(waits[9], Some(BACKOFF_MAX));
        let reset = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(log.failed(&"l", &reset), None);
        log.admitted(&"l");
        assert_eq!(log.failed(&"l", &emfile), Some(BACKOFF_MIN));
    }
}
