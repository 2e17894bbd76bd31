//! A controller's own latest write of each object, so that its next sync does not decide on (and
//! write with) a cached copy its previous write already superseded.
//!
//! The ReplicaSet controller writes a ReplicaSet's status after nearly every pod change, and the
//! Deployment controller a Deployment's status after nearly every ReplicaSet change; the next sync
//! often runs before the watch has delivered that write, so the cache still holds the version the
//! write replaced. Writing from it is a certain conflict (a re-read and a second write, or a
//! failed sync and a requeue), and comparing the new status against it makes a no-op look like a
//! change. Here each successful write is remembered with the resourceVersions it is known to be
//! newer than (the one it replaced, and those its predecessors replaced while the cache lagged).
//! While the cache shows one of those, the sync uses the written copy; once the cache shows any
//! other version it has caught up (or someone else wrote since) and the record is dropped.
//!
//! resourceVersions are only compared for equality (they are opaque in Kubernetes' API).
//! IO-free: the caller passes the clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::Metadata;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// How many superseded versions a record remembers (a cache that lags further just costs a
/// conflict, as without this).
const MAX_SUPERSEDED: usize = 16;
/// Records older than this are dropped when the map grows past [`PRUNE_ABOVE`] (objects deleted
/// before the cache caught up are never looked up again).
const RECORD_TTL: Duration = Duration::from_secs(60);
const PRUNE_ABOVE: usize = 1024;

#[derive(Debug)]
struct Record<K> {
    written: Arc<K>,
    /// resourceVersions older than `written`.
    superseded: Vec<String>,
    at: Instant,
}

/// Per object key (`namespace/name`).
#[derive(Debug)]
pub struct OwnWrites<K> {
    inner: Mutex<HashMap<String, Record<K>>>,
}

impl<K> Default for OwnWrites<K> {
    fn default() -> Self {
        OwnWrites {
            inner: Mutex::new(HashMap::new()),
        }
    }
}

fn rv<K: Metadata<Ty = ObjectMeta>>(k: &K) -> Option<&str> {
    k.metadata().resource_version.as_deref()
}

impl<K: Metadata<Ty = ObjectMeta>> OwnWrites<K> {
    pub fn new() -> OwnWrites<K> {
        OwnWrites::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Record<K>>> {
        // Every update under this lock is one insert/remove: a poisoned map is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The copy to sync from: our own last write while the cache still shows a version it
    /// superseded, else the cached copy.
    pub fn freshest(&self, key: &str, cached: Arc<K>) -> Arc<K> {
        let mut map = self.lock();
        let Some(rec) = map.get(key) else {
            return cached;
        };
        match rv(cached.as_ref()) {
            Some(v) if rec.superseded.iter().any(|s| s == v) => rec.written.clone(),
            _ => {
                map.remove(key);
                cached
            }
        }
    }

    /// Remember a successful write: `replaced` is the resourceVersion the write was made against,
    /// `written` what the apiserver returned.
    pub fn record(&self, key: &str, replaced: Option<&str>, written: K, now: Instant) {
        let Some(replaced) = replaced.filter(|r| !r.is_empty()) else {
            return;
        };
        let mut map = self.lock();
        let mut superseded = match map.remove(key) {
            // A write on top of our previous one: the cache may still show any of its versions.
            Some(prev) if rv(prev.written.as_ref()) == Some(replaced) => prev.superseded,
            _ => Vec::new(),
        };
        superseded.push(replaced.to_string());
        if superseded.len() > MAX_SUPERSEDED {
            superseded.remove(0);
        }
        if map.len() >= PRUNE_ABOVE {
            map.retain(|_, r| now.duration_since(r.at) < RECORD_TTL);
        }
        map.insert(
            key.to_string(),
            Record {
                written: Arc::new(written),
                superseded,
                at: now,
            },
        );
    }

    /// Forget `key` (the object is gone).
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSet;

    fn rs(rv: &str, replicas: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some("r".into()),
                namespace: Some("ns".into()),
                resource_version: Some(rv.into()),
                ..Default::default()
            },
            status: Some(k8s_openapi::api::apps::v1::ReplicaSetStatus {
                replicas,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn replicas(r: &ReplicaSet) -> i32 {
        r.status.as_ref().map_or(-1, |s| s.replicas)
    }

    #[test]
    fn the_written_copy_wins_until_the_cache_catches_up() {
        let w = OwnWrites::new();
        let t = Instant::now();
        assert_eq!(replicas(&w.freshest("ns/r", Arc::new(rs("10", 0)))), 0);
        w.record("ns/r", Some("10"), rs("11", 1), t);
        // Two more writes while the cache still shows 10.
        assert_eq!(replicas(&w.freshest("ns/r", Arc::new(rs("10", 0)))), 1);
        w.record("ns/r", Some("11"), rs("12", 2), t);
        w.record("ns/r", Some("12"), rs("13", 3), t);
        for stale in ["10", "11", "12"] {
            assert_eq!(replicas(&w.freshest("ns/r", Arc::new(rs(stale, 0)))), 3);
        }
        // The cache caught up: the record goes, the cache answers from now on.
        assert_eq!(replicas(&w.freshest("ns/r", Arc::new(rs("13", 3)))), 3);
        assert_eq!(replicas(&w.freshest("ns/r", Arc::new(rs("10", 0)))), 0);
    }

    #[test]
    fn another_writer_or_a_gap_drops_the_record() {
        let w = OwnWrites::new();
        let t = Instant::now();
        w.record("ns/r", Some("10"), rs("11", 1), t);
        // Someone else wrote 14 and the cache shows it: it is newer than ours.
        assert_eq!(replicas(&w.freshest("ns/r", Arc::new(rs("14", 7)))), 7);
        // A write that did not build on our last one starts a new chain.
        w.record("ns/r", Some("10"), rs("11", 1), t);
        w.record("ns/r", Some("20"), rs("21", 2), t);
        assert_eq!(replicas(&w.freshest("ns/r", Arc::new(rs("10", 0)))), 0);
        w.record("ns/r", Some("10"), rs("11", 1), t);
        w.forget("ns/r");
        assert_eq!(replicas(&w.freshest("ns/r", Arc::new(rs("10", 0)))), 0);
    }
}
