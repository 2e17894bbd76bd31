//! The IO-free multi-version key-value index: etcd's MVCC semantics as plain data structures.
//!
//! Every write gets a [`Revision`] `(main, sub)`: `main` grows by one per write request (a whole txn
//! shares one), `sub` numbers the changes inside it. Each key keeps its history of versions and
//! tombstones until compaction. Nothing here does IO or looks at a clock: the engine feeds requests in,
//! persists the returned [`Change`]s and publishes them to watchers.
//!
//! Start with [`Mvcc`]; reads live in `range.rs`, writes and transactions in `txn.rs`.

mod compact;
mod hash;
pub mod range;
pub mod txn;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use etcd_client::proto::PbKeyValue as KeyValue;

pub use txn::{WriteOutcome, check_txn};

/// Keys are shared between the key index, the revision index and watch events.
pub type Key = Arc<[u8]>;

/// A point in the store's history. Ordered by `main`, then `sub`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}

/// One version of a key: the value written at `rev`, or a tombstone (`kv == None`).
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) rev: Revision,
    pub(crate) kv: Option<Arc<KeyValue>>,
}

/// One committed modification: what the WAL stores and watchers receive.
#[derive(Debug, Clone)]
pub struct Change {
    pub rev: Revision,
    pub key: Key,
    /// The new version; `None` for a deletion.
    pub kv: Option<Arc<KeyValue>>,
    /// The version this change replaced, if the key existed (for `prev_kv` on watch events).
    pub prev: Option<Arc<KeyValue>>,
}

/// Half-open key interval `[start, end)` with etcd's conventions: an empty `end` means the single
/// key `start`; `end == "\0"` means every key `>= start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    pub start: Vec<u8>,
    pub end: Vec<u8>,
}

impl KeyRange {
    pub fn new(start: &[u8], end: &[u8]) -> KeyRange {
        KeyRange {
            start: start.to_vec(),
            end: end.to_vec(),
        }
    }

    pub fn is_single(&self) -> bool {
        self.end.is_empty()
    }

    fn is_from_key(&self) -> bool {
        self.end.as_slice() == [0]
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        if self.is_single() {
            return key == self.start.as_slice();
        }
        key >= self.start.as_slice() && (self.is_from_key() || key < self.end.as_slice())
    }

    /// Whether the two intervals share a key (used for the txn duplicate-key check).
    pub fn overlaps_key(&self, key: &[u8]) -> bool {
        self.contains(key)
    }

    pub(crate) fn bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        let start = Bound::Included(self.start.as_slice());
        if self.is_single() {
            (start, Bound::Included(self.start.as_slice()))
        } else if self.is_from_key() {
            (start, Bound::Unbounded)
        } else {
            (start, Bound::Excluded(self.end.as_slice()))
        }
    }

    /// True when the interval is empty (start >= end); BTreeMap::range panics on such bounds.
    pub(crate) fn is_empty(&self) -> bool {
        !self.is_single() && !self.is_from_key() && self.start.as_slice() >= self.end.as_slice()
    }
}

/// The whole multi-version state of the store.
#[derive(Debug, Default)]
pub struct Mvcc {
    /// key → its versions, oldest first.
    index: BTreeMap<Key, Vec<Entry>>,
    /// revision → key, for replaying history to watchers and for compaction.
    by_rev: BTreeMap<Revision, Key>,
    /// Last applied main revision.
    current: i64,
    /// Revisions below this are gone (`compact_revision` in etcd; -1 before the first compaction).
    compacted: i64,
}

impl Mvcc {
    pub fn new() -> Mvcc {
        Mvcc {
            current: 1,
            // etcd's compactMainRev starts at -1: HashKV reports -1 until the first compaction,
            // and `Compact(0)` on a fresh store succeeds (both checked against etcd 3.4 by the
            // differential test).
            compacted: -1,
            ..Mvcc::default()
        }
    }

    /// Last applied main revision (etcd starts at 1 on an empty store).
    pub fn current_revision(&self) -> i64 {
        self.current
    }

    pub fn compacted_revision(&self) -> i64 {
        self.compacted
    }

    pub fn key_count(&self) -> usize {
        self.index.len()
    }

    pub fn revision_count(&self) -> usize {
        self.by_rev.len()
    }

    /// The live version of `key` as of main revision `at`.
    pub fn get_at(&self, key: &[u8], at: i64) -> Option<&Arc<KeyValue>> {
        self.index.get(key).and_then(|h| version_at(h, at))
    }

    /// Iterates live keys of `range` as of `at`, in key order.
    pub fn live_in_range(&self, range: &KeyRange, at: i64) -> impl Iterator<Item = &Arc<KeyValue>> {
        let iter = if range.is_empty() {
            None
        } else {
            Some(self.index.range::<[u8], _>(range.bounds()))
        };
        iter.into_iter()
            .flatten()
            .filter_map(move |(_, h)| version_at(h, at))
    }

    /// Changes with revision `>= from` and main revision `<= to`, in revision order, with the previous
    /// version of each key (for watch catch-up). The caller checks `from` against compaction.
    pub fn changes_between(&self, from: i64, to: i64) -> impl Iterator<Item = Change> + '_ {
        let lo = Revision { main: from, sub: 0 };
        let hi = Revision {
            main: to,
            sub: i64::MAX,
        };
        let iter = if from > to {
            None
        } else {
            Some(self.by_rev.range(lo..=hi))
        };
        iter.into_iter().flatten().filter_map(move |(rev, key)| {
            let hist = self.index.get(key)?;
            let pos = hist.iter().position(|e| e.rev == *rev)?;
            let prev = event_prev(&hist[..pos], *rev, hist[pos].kv.as_deref());
            Some(Change {
                rev: *rev,
                key: key.clone(),
                kv: hist[pos].kv.clone(),
                prev,
            })
        })
    }

    /// Applies one already-decided change; used when replaying the WAL at start-up.
    pub fn restore_change(&mut self, rev: Revision, key: Key, kv: Option<Arc<KeyValue>>) {
        self.by_rev.insert(rev, key.clone());
        self.index.entry(key).or_default().push(Entry { rev, kv });
        self.current = self.current.max(rev.main);
    }

    /// Sets revision counters at start-up (from a snapshot header or replayed records).
    pub fn restore_revisions(&mut self, current: i64, compacted: i64) {
        self.current = self.current.max(current);
        self.compacted = self.compacted.max(compacted);
    }

    /// Appends a change at `rev` to the index (the write path of `txn.rs`).
    fn record(&mut self, rev: Revision, key: Key, kv: Option<Arc<KeyValue>>) -> Change {
        let hist = self.index.entry(key.clone()).or_default();
        let prev = event_prev(hist, rev, kv.as_deref());
        hist.push(Entry {
            rev,
            kv: kv.clone(),
        });
        self.by_rev.insert(rev, key.clone());
        Change { rev, key, kv, prev }
    }
}

/// The `prev_kv` of a watch event, as etcd computes it: the key as of the revision before the
/// event's main revision, and nothing for a put that created the key. Taking simply the previous
/// history entry differs when one txn changes a key twice (e.g. a put and a from-key delete in the
/// same revision): etcd then reports the version from before the txn for both events, which the
/// differential test against etcd 3.4 caught. `earlier` is the history before the change.
fn event_prev(earlier: &[Entry], rev: Revision, kv: Option<&KeyValue>) -> Option<Arc<KeyValue>> {
    if kv.is_some_and(|kv| kv.create_revision == rev.main) {
        return None;
    }
    earlier
        .iter()
        .rev()
        .find(|e| e.rev.main < rev.main)
        .and_then(|e| e.kv.clone())
}

/// The live version of a key history at main revision `at`.
fn version_at(hist: &[Entry], at: i64) -> Option<&Arc<KeyValue>> {
    let idx = hist.partition_point(|e| e.rev.main <= at);
    idx.checked_sub(1)
        .and_then(|i| hist.get(i))
        .and_then(|e| e.kv.as_ref())
}
