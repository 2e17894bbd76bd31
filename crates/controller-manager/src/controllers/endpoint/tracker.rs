//! The controller's own writes, per owner (a Service, or mirrored Endpoints), until its cache has
//! shown them — Kubernetes' `EndpointSliceTracker`, used by the Endpoints, EndpointSlice and
//! mirroring controllers alike. It answers two questions:
//!
//! * [`Tracker::caught_up`]: may a sync act on the cache? Not while it misses a previous write
//!   (a slice created with `generateName` would otherwise be created twice, a replace would
//!   conflict).
//! * [`Tracker::should_sync`]: does a watch event of an owned object call for a sync? Not when
//!   it is the echo of our own write (the object as we wrote it: the sync that wrote it already
//!   decided on everything it knew) — unless a sync is waiting for exactly that echo. Skipping
//!   the echoes halves the syncs a pod change causes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use niwa_client::{Object, ObjectRef, ResourceExt, Store};

use crate::informer::Change;

/// How long a sync waits at most for the cache to show its previous writes.
const PATIENCE: Duration = Duration::from_secs(5);

/// Writes of each owner that the cache (or the trigger stream) has not shown yet.
#[derive(Debug, Default)]
pub struct Tracker {
    pending: Mutex<HashMap<ObjectRef, Pending>>,
}

#[derive(Debug)]
struct Pending {
    since: Instant,
    expects: Vec<Expect>,
    /// A sync found the cache behind and waits for the echo to be queued again.
    waiting: bool,
}

/// One write of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// The object (by name, in the owner's namespace) exists at this resourceVersion or later.
    AtLeast(String, u64),
    /// The object is gone.
    Gone(String),
}

/// An object's resourceVersion as a number (0 when missing).
pub fn rv<K: Object>(obj: &K) -> u64 {
    obj.resource_version()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl Tracker {
    /// Whether the cache reflects every write recorded for `owner`.
    pub fn caught_up<K: Object>(&self, owner: &ObjectRef, cache: &Store<K>) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some(p) = pending.get_mut(owner) else {
            return true;
        };
        let ns = owner.namespace.clone().unwrap_or_default();
        let seen = p.expects.iter().all(|e| match e {
            Expect::AtLeast(name, v) => cache
                .get(&ObjectRef::new(name).within(&ns))
                .is_some_and(|o| rv(o.as_ref()) >= *v),
            Expect::Gone(name) => cache.get(&ObjectRef::new(name).within(&ns)).is_none(),
        });
        if seen || p.since.elapsed() > PATIENCE {
            pending.remove(owner);
            return true;
        }
        p.waiting = true;
        false
    }

    /// Record the writes a sync of `owner` made (replacing what was recorded before: a sync
    /// only writes after [`Tracker::caught_up`]).
    pub fn record(&self, owner: &ObjectRef, expects: Vec<Expect>) {
        if expects.is_empty() {
            return;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.insert(
            owner.clone(),
            Pending {
                since: Instant::now(),
                expects,
                waiting: false,
            },
        );
    }

    /// Whether a watch event of an object `owner` owns calls for a sync of `owner`: false for
    /// the echo of our own write, unless a sync waits for it.
    pub fn should_sync<K: Object>(&self, owner: &ObjectRef, change: &Change<K>) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some(p) = pending.get_mut(owner) else {
            return true;
        };
        let mut own = false;
        match change {
            Change::Applied(o) => {
                let (name, v) = (o.name_any(), rv(o.as_ref()));
                p.expects.retain(|e| match e {
                    Expect::AtLeast(n, want) if *n == name && v >= *want => {
                        own |= v == *want;
                        false
                    }
                    _ => true,
                });
            }
            Change::Deleted(o) => {
                let name = o.name_any();
                p.expects.retain(|e| match e {
                    Expect::Gone(n) if *n == name => {
                        own = true;
                        false
                    }
                    _ => true,
                });
            }
            Change::Resync => return true,
        }
        let waiting = p.waiting;
        if p.expects.is_empty() {
            pending.remove(owner);
        }
        !own || waiting
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use std::sync::Arc;

    fn slice(name: &str, rv: u64) -> Arc<EndpointSlice> {
        let mut s = EndpointSlice::default();
        s.metadata.name = Some(name.into());
        s.metadata.namespace = Some("d".into());
        s.metadata.resource_version = Some(rv.to_string());
        Arc::new(s)
    }

    #[test]
    fn echoes_of_own_writes_are_skipped_unless_a_sync_waits() {
        let t = Tracker::default();
        let owner = ObjectRef::new("web").within("d");
        // Not ours: sync.
        assert!(t.should_sync(&owner, &Change::Applied(slice("web-a", 5))));
        t.record(
            &owner,
            vec![
                Expect::AtLeast("web-a".into(), 7),
                Expect::Gone("web-b".into()),
            ],
        );
        // An older event of ours is not the echo; the echo is skipped, so is our delete's.
        assert!(t.should_sync(&owner, &Change::Applied(slice("web-a", 6))));
        assert!(!t.should_sync(&owner, &Change::Applied(slice("web-a", 7))));
        assert!(!t.should_sync(&owner, &Change::Deleted(slice("web-b", 7))));
        // Everything seen: the owner is forgotten, later events sync again.
        assert!(t.should_sync(&owner, &Change::Applied(slice("web-a", 7))));
        // Someone else's later write syncs.
        t.record(&owner, vec![Expect::AtLeast("web-a".into(), 9)]);
        assert!(t.should_sync(&owner, &Change::Applied(slice("web-a", 10))));
        // A sync that found the cache behind is woken by the echo.
        t.record(&owner, vec![Expect::AtLeast("web-a".into(), 11)]);
        let (_writer, cache) = {
            let (store, writer) = niwa_client::reflector::store::<EndpointSlice>();
            (writer, store)
        };
        assert!(!t.caught_up(&owner, &cache));
        assert!(t.should_sync(&owner, &Change::Applied(slice("web-a", 11))));
    }
}
