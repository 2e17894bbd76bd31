//! Controller expectations (Kubernetes' `ControllerExpectations` / `UIDTrackingControllerExpectations`):
//! after a controller creates or deletes N pods it expects to *see* those N events in its cache before
//! it trusts the cache again — otherwise a sync that runs before the watch catches up would create (or
//! delete) the same pods twice. Entries expire after [`EXPECTATIONS_TIMEOUT`] so a lost event cannot
//! wedge a controller forever.
//!
//! IO-free: the caller passes the clock (`Instant`).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long unfulfilled expectations are trusted (Kubernetes: 5 minutes).
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
struct Entry {
    adds: i64,
    dels: i64,
    /// Keys (namespace/name) of the objects whose deletion we are waiting to observe.
    deleting: HashSet<String>,
    set_at: Instant,
}

/// Per-controller-key expectations. Keys are `namespace/name` of the controller object.
#[derive(Debug, Default)]
pub struct Expectations {
    inner: Mutex<HashMap<String, Entry>>,
}

impl Expectations {
    pub fn new() -> Expectations {
        Expectations::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding this lock cannot leave the map inconsistent (every update is one
        // assignment), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the controller may trust its cache for `key`: no record, all observed, or expired.
    pub fn satisfied(&self, key: &str, now: Instant) -> bool {
        match self.lock().get(key) {
            None => true,
            Some(e) => {
                (e.adds <= 0 && e.dels <= 0) || now.duration_since(e.set_at) > EXPECTATIONS_TIMEOUT
            }
        }
    }

    /// Record that `adds` creations and the deletions of `deleting` keys are on their way.
    pub fn expect(&self, key: &str, adds: usize, deleting: &[String], now: Instant) {
        self.lock().insert(
            key.to_string(),
            Entry {
                adds: adds as i64,
                dels: deleting.len() as i64,
                deleting: deleting.iter().cloned().collect(),
                set_at: now,
            },
        );
    }

    /// A creation was observed (or a create call failed, so it will never be observed).
    pub fn creation_observed(&self, key: &str) {
        if let Some(e) = self.lock().get_mut(key) {
            e.adds -= 1;
        }
    }

    /// The deletion of `object_key` was observed (or the delete call failed).
    pub fn deletion_observed(&self, key: &str, object_key: &str) {
        if let Some(e) = self.lock().get_mut(key)
            && e.deleting.remove(object_key)
        {
            e.dels -= 1;
        }
    }

    /// Forget everything about `key` (its controller object was deleted).
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Outstanding (adds, dels) for `key`, for logs and tests.
    pub fn pending(&self, key: &str) -> (i64, i64) {
        self.lock()
            .get(key)
            .map(|e| (e.adds, e.dels))
            .unwrap_or((0, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creations_and_deletions_must_be_observed() {
        let ex = Expectations::new();
        let t0 = Instant::now();
        assert!(ex.satisfied("ns/rs", t0));
        ex.expect("ns/rs", 2, &["ns/p1".to_string()], t0);
        assert!(!ex.satisfied("ns/rs", t0));
        ex.creation_observed("ns/rs");
        ex.creation_observed("ns/rs");
        assert!(!ex.satisfied("ns/rs", t0));
        ex.deletion_observed("ns/rs", "ns/other");
        assert!(!ex.satisfied("ns/rs", t0));
        ex.deletion_observed("ns/rs", "ns/p1");
        // A second observation of the same deletion does not count twice.
        ex.deletion_observed("ns/rs", "ns/p1");
        assert_eq!(ex.pending("ns/rs"), (0, 0));
        assert!(ex.satisfied("ns/rs", t0));
    }

    #[test]
    fn expectations_expire() {
        let ex = Expectations::new();
        let t0 = Instant::now();
        ex.expect("k", 1, &[], t0);
        assert!(!ex.satisfied("k", t0 + Duration::from_secs(299)));
        assert!(ex.satisfied("k", t0 + Duration::from_secs(301)));
        ex.forget("k");
        assert!(ex.satisfied("k", t0));
    }
}
