//! The store's in-memory state (MVCC index plus lease table) and its translation to and from WAL
//! records: what a commit persists, how start-up replays it, and what a snapshot holds.

use std::sync::Arc;
use std::time::Instant;

use etcd_client::proto::PbKeyValue as KeyValue;

use crate::lease::Leases;
use crate::mvcc::{Change, Key, Mvcc, Revision};
use crate::wal::record::{
    DeleteRecord, LeaseRecord, PutRecord, RecordKind, RecordRef, SnapshotHeader, WalBatch,
    WalRecord,
};

/// Everything the engine mutates under one lock.
#[derive(Debug)]
pub struct State {
    pub mvcc: Mvcc,
    pub leases: Leases,
}

/// Records per snapshot frame: keeps frames around a megabyte for typical Kubernetes objects.
const SNAPSHOT_RECORDS_PER_FRAME: usize = 512;

impl State {
    pub fn new(lease_min_ttl: i64, lease_id_seed: i64) -> State {
        State {
            mvcc: Mvcc::new(),
            leases: Leases::new(lease_min_ttl, lease_id_seed),
        }
    }

    /// Replays one record at start-up.
    pub fn replay(&mut self, record: RecordKind, now: Instant) {
        match record {
            RecordKind::Put(PutRecord { sub, kv: Some(kv) }) => {
                let rev = Revision {
                    main: kv.mod_revision,
                    sub,
                };
                let key: Key = Arc::from(kv.key.as_slice());
                self.mvcc.restore_change(rev, key, Some(Arc::new(kv)));
            }
            RecordKind::Put(PutRecord { kv: None, .. }) => {}
            RecordKind::Delete(DeleteRecord { main, sub, key }) => {
                self.mvcc
                    .restore_change(Revision { main, sub }, Arc::from(key.as_slice()), None);
            }
            RecordKind::LeaseGrant(LeaseRecord { id, ttl }) => self.leases.restore(id, ttl, now),
            RecordKind::LeaseRevoke(id) => {
                let _ = self.leases.revoke(id);
            }
            RecordKind::Compact(rev) => {
                let current = self.mvcc.current_revision();
                let _ = self.mvcc.compact(rev, current);
            }
            RecordKind::Header(h) => self.mvcc.restore_revisions(h.current, h.compacted),
        }
    }

    /// After replay: attach every live key to its lease and give leases a full TTL, as etcd does
    /// when a member becomes leader.
    pub fn finish_replay(&mut self, now: Instant) {
        let current = self.mvcc.current_revision();
        let range = crate::mvcc::KeyRange::new(&[0], &[0]);
        let attached: Vec<(i64, Key)> = self
            .mvcc
            .live_in_range(&range, current)
            .filter(|kv| kv.lease != 0)
            .map(|kv| (kv.lease, Key::from(kv.key.as_slice())))
            .collect();
        for (lease, key) in attached {
            self.leases.attach(lease, &key);
        }
        self.leases.refresh_all(now);
    }

    /// The whole state as snapshot frames, header first.
    pub fn snapshot(&self, next_segment: u64, cluster_id: u64, member_id: u64) -> Vec<WalBatch> {
        let mut batches = vec![WalBatch {
            records: vec![WalRecord {
                kind: Some(RecordKind::Header(SnapshotHeader {
                    current: self.mvcc.current_revision(),
                    compacted: self.mvcc.compacted_revision(),
                    next_segment,
                    cluster_id,
                    member_id,
                })),
            }],
        }];
        let mut records: Vec<WalRecord> = Vec::new();
        let mut flush = |records: &mut Vec<WalRecord>, force: bool| {
            if records.len() >= SNAPSHOT_RECORDS_PER_FRAME || (force && !records.is_empty()) {
                batches.push(WalBatch {
                    records: std::mem::take(records),
                });
            }
        };
        for id in self.leases.ids() {
            if let Some(lease) = self.leases.get(id) {
                records.push(WalRecord {
                    kind: Some(RecordKind::LeaseGrant(LeaseRecord { id, ttl: lease.ttl })),
                });
                flush(&mut records, false);
            }
        }
        for change in self.mvcc.changes_between(0, i64::MAX) {
            records.push(change_record(&change));
            flush(&mut records, false);
        }
        flush(&mut records, true);
        batches
    }
}

/// The WAL record for one change, borrowing a put's `KeyValue` (see [`RecordRef`]).
pub fn change_ref(change: &Change) -> RecordRef<'_> {
    match &change.kv {
        Some(kv) => RecordRef::Put {
            sub: change.rev.sub,
            kv,
        },
        None => RecordRef::Owned(change_record(change)),
    }
}

/// The WAL record for one change.
pub fn change_record(change: &Change) -> WalRecord {
    let kind = match &change.kv {
        Some(kv) => RecordKind::Put(PutRecord {
            sub: change.rev.sub,
            kv: Some(KeyValue::clone(kv)),
        }),
        None => RecordKind::Delete(DeleteRecord {
            main: change.rev.main,
            sub: change.rev.sub,
            key: change.key.to_vec(),
        }),
    };
    WalRecord { kind: Some(kind) }
}
