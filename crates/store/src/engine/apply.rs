//! Applying one write request to the in-memory state: the reply, the WAL records that persist it,
//! and the changes watchers will see. Pure state manipulation; the writer thread calls it under the
//! state lock.

use std::time::Instant;

use crate::error::StoreError;
use crate::mvcc::Change;
use crate::state::State;
use crate::wal::record::{LeaseRecord, RecordKind, WalRecord};

use super::{WriteOp, WriteReply};

/// Most leases revoked per expiry pass (each is its own revision, as in etcd).
const MAX_EXPIRE_PER_PASS: usize = 256;

/// The result of applying one request: its reply and what must be persisted.
pub(super) struct Applied {
    pub(super) reply: Result<WriteReply, StoreError>,
    /// Records beyond the changes' own (lease and compaction records); the WAL gets the changes'
    /// records first, then these, so replay sees keys deleted before their lease disappears.
    pub(super) records: Vec<WalRecord>,
    pub(super) changes: Vec<Change>,
    pub(super) wants_snapshot: bool,
}

fn record(kind: RecordKind) -> WalRecord {
    WalRecord { kind: Some(kind) }
}

/// Applies one request to the state. `committed` is the newest durable revision (compaction may
/// not pass it).
pub(super) fn apply(state: &mut State, op: WriteOp, committed: i64, now: Instant) -> Applied {
    let mut out = Applied {
        reply: Err(StoreError::Stopped),
        records: Vec::new(),
        changes: Vec::new(),
        wants_snapshot: false,
    };
    let State { mvcc, leases } = state;
    match op {
        WriteOp::Put(req) => {
            out.reply = mvcc.put(leases, &req).map(|o| {
                out.changes = o.changes;
                WriteReply::Put(o.response)
            });
        }
        WriteOp::DeleteRange(req) => {
            out.reply = mvcc.delete_range(leases, &req).map(|o| {
                out.changes = o.changes;
                WriteReply::DeleteRange(o.response)
            });
        }
        WriteOp::Txn(req) => {
            out.reply = mvcc.txn(leases, &req).map(|o| {
                out.changes = o.changes;
                WriteReply::Txn(o.response)
            });
        }
        WriteOp::Compact(rev) => {
            out.reply = mvcc.compact(rev, committed).map(|removed| {
                tracing::info!(revision = rev, removed, "compacted");
                out.records.push(record(RecordKind::Compact(rev)));
                out.wants_snapshot = true;
                WriteReply::Revision(mvcc.current_revision())
            });
        }
        WriteOp::LeaseGrant { id, ttl } => {
            let id = if id == 0 { leases.pick_id() } else { id };
            out.reply = leases.grant(id, ttl, now).map(|lease| {
                out.records.push(record(RecordKind::LeaseGrant(LeaseRecord {
                    id,
                    ttl: lease.ttl,
                })));
                WriteReply::LeaseGrant {
                    id,
                    ttl: lease.ttl,
                    revision: mvcc.current_revision(),
                }
            });
        }
        WriteOp::LeaseRevoke(id) => {
            out.reply = leases.revoke(id).map(|lease| {
                let keys: Vec<_> = lease.keys.into_iter().collect();
                out.changes = mvcc.delete_keys(leases, &keys);
                out.records.push(record(RecordKind::LeaseRevoke(id)));
                WriteReply::Revision(mvcc.current_revision())
            });
        }
        WriteOp::ExpireLeases => {
            let mut revoked = 0;
            for id in leases.expired(now, MAX_EXPIRE_PER_PASS) {
                if let Ok(lease) = leases.revoke(id) {
                    let keys: Vec<_> = lease.keys.into_iter().collect();
                    out.changes.extend(mvcc.delete_keys(leases, &keys));
                    out.records.push(record(RecordKind::LeaseRevoke(id)));
                    revoked += 1;
                }
            }
            if revoked > 0 {
                tracing::debug!(revoked, "expired leases revoked");
            }
            out.reply = Ok(WriteReply::Revision(mvcc.current_revision()));
        }
        WriteOp::Snapshot => {
            out.wants_snapshot = true;
            out.reply = Ok(WriteReply::Revision(mvcc.current_revision()));
        }
    }
    out
}
