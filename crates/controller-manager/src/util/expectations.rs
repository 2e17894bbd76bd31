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
//! The cache decides; watch events only tell *when* to look: [`Expectations::observe`] follows a
//! controller's pod events and says when the last expected pod has shown up (or gone), so the
//! controller can sync at once for that event and batch the others (see the ReplicaSet
//! controller's triggers).
//!
//! IO-free: the caller passes the clock (`Instant`) and a view of the cache.

use std::collections::{HashMap, HashSet};
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
    /// Created pods no event or cache look-up has shown yet (for [`Expectations::observe`]).
    unseen_created: HashSet<String>,
    /// Deleted pods no event or cache look-up has shown going yet.
    unseen_deleted: HashSet<String>,
}

impl Entry {
    /// Take `name` off the unseen sets if `seen` fulfils it; whether it did.
    fn see(&mut self, name: &str, seen: Seen) -> bool {
        let created = seen != Seen::Absent && self.unseen_created.remove(name);
        let deleted = seen != Seen::Present && self.unseen_deleted.remove(name);
        created || deleted
    }

    fn all_seen(&self) -> bool {
        self.unseen_created.is_empty() && self.unseen_deleted.is_empty()
    }
}

/// What one pod event means for a controller's expectations ([`Expectations::observe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// The pod is not one the controller waits for (or it has no expectations).
    NotExpected,
    /// An expected pod, but others are still awaited.
    Waiting,
    /// The last awaited pod: the controller's cache is now complete for its previous writes.
    Complete,
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
        let unseen_created = created.iter().cloned().collect();
        let unseen_deleted = deleted.iter().cloned().collect();
        self.lock().insert(
            key.to_string(),
            Entry {
                created,
                deleted,
                set_at: now,
                unseen_created,
                unseen_deleted,
            },
        );
    }

    /// A watch event showed pod `name` of `key`'s controller in state `seen` (`Absent` for a
    /// deletion). Only a hint of when to sync: [`Expectations::satisfied`] still reads the cache.
    pub fn observe(&self, key: &str, name: &str, seen: Seen) -> Observation {
        let mut map = self.lock();
        let Some(e) = map.get_mut(key) else {
            return Observation::NotExpected;
        };
        if !e.see(name, seen) {
            Observation::NotExpected
        } else if e.all_seen() {
            Observation::Complete
        } else {
            Observation::Waiting
        }
    }

    /// Take off the unseen sets what the cache already shows, right after [`Expectations::expect`]:
    /// the events of pods that reached the cache before the expectations were recorded were not
    /// observed as expected. Whether every expected change is now seen (then nothing is left for
    /// [`Expectations::observe`] to complete, and the caller should sync again itself).
    pub fn settle(&self, key: &str, seen: impl Fn(&str) -> Seen) -> bool {
        let mut map = self.lock();
        let Some(e) = map.get_mut(key) else {
            return true;
        };
        let names: Vec<String> = e
            .unseen_created
            .iter()
            .chain(e.unseen_deleted.iter())
            .cloned()
            .collect();
        for n in names {
            e.see(&n, seen(&n));
        }
        e.all_seen()
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
    fn observe_reports_the_event_that_completes_the_expectations() {
        let ex = Expectations::new();
        let t0 = Instant::now();
        assert_eq!(
            ex.observe("k", "a", Seen::Present),
            Observation::NotExpected
        );
        ex.expect("k", vec!["a".into(), "b".into()], vec!["old".into()], t0);
        assert_eq!(
            ex.observe("k", "other", Seen::Present),
            Observation::NotExpected
        );
        assert_eq!(ex.observe("k", "a", Seen::Present), Observation::Waiting);
        // Seen once is enough: a later event of the same pod is not expected any more.
        assert_eq!(
            ex.observe("k", "a", Seen::Present),
            Observation::NotExpected
        );
        // A deleted pod still present does not count; terminating does.
        assert_eq!(
            ex.observe("k", "old", Seen::Present),
            Observation::NotExpected
        );
        assert_eq!(
            ex.observe("k", "old", Seen::Terminating),
            Observation::Waiting
        );
        assert_eq!(
            ex.observe("k", "b", Seen::Terminating),
            Observation::Complete
        );
        // The cache still decides.
        assert!(!ex.satisfied("k", t0, |_| Seen::Absent));
    }

    #[test]
    fn settle_takes_off_what_the_cache_already_shows() {
        let ex = Expectations::new();
        let t0 = Instant::now();
        assert!(ex.settle("none", |_| Seen::Absent));
        ex.expect("k", vec!["a".into(), "b".into()], vec!["old".into()], t0);
        let cache = |n: &str| match n {
            "a" => Seen::Present,
            "old" => Seen::Absent,
            _ => Seen::Absent,
        };
        assert!(!ex.settle("k", cache));
        assert_eq!(
            ex.observe("k", "a", Seen::Present),
            Observation::NotExpected
        );
        assert_eq!(ex.observe("k", "b", Seen::Present), Observation::Complete);
        ex.expect("k", vec!["a".into()], vec![], t0);
        assert!(ex.settle("k", |_| Seen::Present));
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
