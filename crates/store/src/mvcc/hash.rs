//! HashKV: a CRC-32C over the stored revisions, computed the way etcd 3.4 hashes its boltdb "key"
//! bucket (`store.HashByRev`), so that `etcdctl endpoint hashkv` gives comparable answers.

use prost::Message;

use etcd_client::proto::PbKeyValue as KeyValue;

use super::{Mvcc, Revision};
use crate::error::StoreError;

/// etcd's boltdb bucket name, hashed first.
const KEY_BUCKET: &[u8] = b"key";

/// etcd's on-disk revision key: 8-byte big-endian main, '_', 8-byte big-endian sub, 't' for tombstones.
fn rev_bytes(rev: Revision, tombstone: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(18);
    out.extend_from_slice(&rev.main.to_be_bytes());
    out.push(b'_');
    out.extend_from_slice(&rev.sub.to_be_bytes());
    if tombstone {
        out.push(b't');
    }
    out
}

impl Mvcc {
    /// Hash of all versions up to `rev` (0 = `current`). Returns `(hash, compact_revision)`.
    pub fn hash_kv(&self, rev: i64, current: i64) -> Result<(u32, i64), StoreError> {
        if rev > 0 && rev <= self.compacted {
            return Err(StoreError::Compacted);
        }
        if rev > current {
            return Err(StoreError::FutureRevision);
        }
        let rev = if rev == 0 { current } else { rev };
        // Versions below the compaction point count only if compaction at `rev` would keep them.
        let keep: std::collections::HashSet<Revision> = self
            .index
            .values()
            .filter_map(|hist| {
                let below = hist.partition_point(|e| e.rev.main <= rev);
                below
                    .checked_sub(1)
                    .and_then(|i| hist.get(i))
                    .filter(|e| e.kv.is_some())
                    .map(|e| e.rev)
            })
            .collect();
        let mut hash = crc32c::crc32c(KEY_BUCKET);
        let upper = Revision {
            main: rev + 1,
            sub: 0,
        };
        for (r, key) in self.by_rev.range(..upper) {
            if r.main <= self.compacted && !keep.is_empty() && !keep.contains(r) {
                continue;
            }
            let Some(hist) = self.index.get(key) else {
                continue;
            };
            let Some(entry) = hist.iter().find(|e| e.rev == *r) else {
                continue;
            };
            let value = match &entry.kv {
                Some(kv) => kv.encode_to_vec(),
                None => KeyValue {
                    key: key.to_vec(),
                    ..Default::default()
                }
                .encode_to_vec(),
            };
            hash = crc32c::crc32c_append(hash, &rev_bytes(*r, entry.kv.is_none()));
            hash = crc32c::crc32c_append(hash, &value);
        }
        Ok((hash, self.compacted))
    }
}
