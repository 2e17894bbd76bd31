//! Controller expectations (Kubernetes' `ControllerExpectations` / `UIDTrackingControllerExpectations`):
//! after a controller creates or deletes pods it must *see* those changes in its cache before it
//! trusts the cache again — otherwise a sync that runs before the watch catches up would create (or
//! delete) the same pods twice.
//!
//! niwa tracks names rather than counts: the pods a sync created (their generated names come back
//! from the apiserver) must appear in the cache, and the pods it deleted must be gone from it or be
//! terminating. The check reads the cache itself, so no event hook is needed and a restarted
//! controller (with no expectations) simply trusts a fresh list. Entries expire after
//! [`EXPECTATIONS_TIMEOUT`] so a lost event cannot wedge a controller.
//!
//! IO-free: the caller passes the clock (`Instant`) and a view of the cache.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long unfulfilled expectations are trusted (Kubernetes: 5 minutes).
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(300);

/// What the cache says about one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Absent,
    Present,
    Terminating,
}

#[derive(Debug, Clone)]
struct Entry {
    created: Vec<String>,
    deleted: Vec<String>,
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
        // Every update under this lock is one insert/remove: a poisoned map is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the controller may trust its cache for `key`. `seen(name)` looks a pod up in the
    /// cache. A satisfied or expired entry is dropped.
    pub fn satisfied(&self, key: &str, now: Instant, seen: impl Fn(&str) -> Seen) -> bool {
        let mut map = self.lock();
        let Some(e) = map.get(key) else {
            return true;
        };
        let done = now.duration_since(e.set_at) > EXPECTATIONS_TIMEOUT
            || (e.created.iter().all(|n| seen(n) != Seen::Absent)
                && e.deleted.iter().all(|n| seen(n) != Seen::Present));
        if done {
            map.remove(key);
        }
        done
    }

    /// Record what a sync created and deleted (names as the apiserver reported them).
    pub fn expect(&self, key: &str, created: Vec<String>, deleted: Vec<String>, now: Instant) {
        if created.is_empty() && deleted.is_empty() {
            return;
        }
        self.lock().insert(
            key.to_string(),
            Entry {
                created,
                deleted,
                set_at: now,
            },
        );
    }

    /// Forget everything about `key` (its controller object was deleted).
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap as Map;

    #[test]
    fn created_must_appear_and_deleted_must_go() {
        let ex = Expectations::new();
        let t0 = Instant::now();
        let mut cache: Map<&str, Seen> = Map::from([("old", Seen::Present)]);
        assert!(ex.satisfied("ns/rs", t0, |n| {
            cache.get(n).copied().unwrap_or(Seen::Absent)
        }));
        ex.expect(
            "ns/rs",
            vec!["a".into(), "b".into()],
            vec!["old".into()],
            t0,
        );
        fn look<'a>(c: &'a Map<&str, Seen>) -> impl Fn(&str) -> Seen + 'a {
            move |n| c.get(n).copied().unwrap_or(Seen::Absent)
        }
        assert!(!ex.satisfied("ns/rs", t0, look(&cache)));
        cache.insert("a", Seen::Present);
        cache.insert("b", Seen::Present);
        assert!(
            !ex.satisfied("ns/rs", t0, look(&cache)),
            "old still present"
        );
        cache.insert("old", Seen::Terminating);
        assert!(ex.satisfied("ns/rs", t0, look(&cache)));
    }

    #[test]
    fn expectations_expire_and_can_be_forgotten() {
        let ex = Expectations::new();
        let t0 = Instant::now();
        ex.expect("k", vec!["never".into()], vec![], t0);
        assert!(!ex.satisfied("k", t0 + Duration::from_secs(299), |_| Seen::Absent));
        assert!(ex.satisfied("k", t0 + Duration::from_secs(301), |_| Seen::Absent));
        ex.expect("k", vec!["never".into()], vec![], t0);
        ex.forget("k");
        assert!(ex.satisfied("k", t0, |_| Seen::Absent));
    }
}
