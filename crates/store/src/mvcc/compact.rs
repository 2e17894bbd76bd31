//! Compaction: drop every version that no read at or after the compaction revision can see. For each
//! key the newest version at or below the revision survives unless it is a tombstone (etcd's
//! `keyIndex.compact`).

use super::{Mvcc, Revision};
use crate::error::StoreError;

impl Mvcc {
    /// Compacts history up to main revision `rev`. `current` is the newest revision clients may have
    /// seen (the committed one). Returns how many versions were removed.
    pub fn compact(&mut self, rev: i64, current: i64) -> Result<usize, StoreError> {
        if rev <= self.compacted {
            return Err(StoreError::Compacted);
        }
        if rev > current {
            return Err(StoreError::FutureRevision);
        }
        let mut removed: Vec<Revision> = Vec::new();
        self.index.retain(|_, hist| {
            let below = hist.partition_point(|e| e.rev.main <= rev);
            // Keep the newest version at or below `rev` when it is live.
            let keep_from = match below.checked_sub(1).and_then(|i| hist.get(i)) {
                Some(e) if e.kv.is_some() => below - 1,
                _ => below,
            };
            removed.extend(hist.drain(..keep_from).map(|e| e.rev));
            !hist.is_empty()
        });
        for r in &removed {
            self.by_rev.remove(r);
        }
        self.compacted = rev;
        Ok(removed.len())
    }
}
