//! Range reads with every option of etcd's RangeRequest, following etcd 3.4's `applierV3backend.Range`:
//! filter by mod/create revision, sort (unstable targets fall back to key order for ties), then limit.

use std::cmp::Ordering;
use std::sync::Arc;

use etcd_client::proto::{PbKeyValue as KeyValue, PbRangeRequest as RangeRequest, PbRangeResponse};

use super::{KeyRange, Mvcc};
use crate::error::StoreError;

// RangeRequest.SortOrder / SortTarget wire values.
const SORT_NONE: i32 = 0;
const SORT_ASCEND: i32 = 1;
const SORT_DESCEND: i32 = 2;
const TARGET_KEY: i32 = 0;
const TARGET_VERSION: i32 = 1;
const TARGET_CREATE: i32 = 2;
const TARGET_MOD: i32 = 3;
const TARGET_VALUE: i32 = 4;

/// Request-shape checks done before touching the store (etcd's `checkRangeRequest`).
pub fn check_range(req: &RangeRequest) -> Result<(), StoreError> {
    if req.key.is_empty() {
        return Err(StoreError::EmptyKey);
    }
    if !(SORT_NONE..=SORT_DESCEND).contains(&req.sort_order)
        || !(TARGET_KEY..=TARGET_VALUE).contains(&req.sort_target)
    {
        return Err(StoreError::InvalidSortOption);
    }
    Ok(())
}

impl Mvcc {
    /// Evaluates a range as of `current` (the newest revision the caller may see: the committed one
    /// for client reads, the in-flight one inside a txn). The header is left for the caller; the
    /// response's `header.revision` is set to `current`.
    pub fn range(&self, req: &RangeRequest, current: i64) -> Result<PbRangeResponse, StoreError> {
        let at = self.read_revision(req.revision, current)?;
        let range = KeyRange::new(&req.key, &req.range_end);

        // As in etcd: only an explicit sort order or a revision filter fetches every match first.
        // (A non-key target with order NONE sorts just the first `limit + 1` keys, as etcd does.)
        let needs_all = req.sort_order != SORT_NONE
            || req.min_mod_revision != 0
            || req.max_mod_revision != 0
            || req.min_create_revision != 0
            || req.max_create_revision != 0;

        let mut count: i64 = 0;
        let mut kvs: Vec<&Arc<KeyValue>> = Vec::new();
        // Without sorting or filtering the first `limit + 1` keys decide `more`; the count still
        // needs every match, as etcd counts all of them.
        let fetch_limit = if needs_all || req.limit <= 0 {
            usize::MAX
        } else {
            req.limit as usize + 1
        };
        for kv in self.live_in_range(&range, at) {
            count += 1;
            if !req.count_only && kvs.len() < fetch_limit {
                kvs.push(kv);
            }
        }

        kvs.retain(|kv| {
            (req.max_mod_revision == 0 || kv.mod_revision <= req.max_mod_revision)
                && (req.min_mod_revision == 0 || kv.mod_revision >= req.min_mod_revision)
                && (req.max_create_revision == 0 || kv.create_revision <= req.max_create_revision)
                && (req.min_create_revision == 0 || kv.create_revision >= req.min_create_revision)
        });

        let mut order = req.sort_order;
        if req.sort_target != TARGET_KEY && order == SORT_NONE {
            order = SORT_ASCEND;
        }
        if order != SORT_NONE {
            let by = |a: &&Arc<KeyValue>, b: &&Arc<KeyValue>| -> Ordering {
                match req.sort_target {
                    TARGET_VERSION => a.version.cmp(&b.version),
                    TARGET_CREATE => a.create_revision.cmp(&b.create_revision),
                    TARGET_MOD => a.mod_revision.cmp(&b.mod_revision),
                    TARGET_VALUE => a.value.cmp(&b.value),
                    _ => a.key.cmp(&b.key),
                }
            };
            if order == SORT_DESCEND {
                kvs.sort_by(|a, b| by(b, a));
            } else {
                kvs.sort_by(by);
            }
        }

        let mut more = false;
        if req.limit > 0 && kvs.len() > req.limit as usize {
            kvs.truncate(req.limit as usize);
            more = true;
        }

        let kvs = kvs
            .into_iter()
            .map(|kv| {
                let mut kv = KeyValue::clone(kv);
                if req.keys_only {
                    kv.value.clear();
                }
                kv
            })
            .collect();

        Ok(PbRangeResponse {
            header: Some(etcd_client::proto::PbResponseHeader {
                revision: current,
                ..Default::default()
            }),
            kvs,
            more,
            count,
        })
    }

    /// Resolves a requested revision (0 = `current`) and checks it against compaction and the future.
    pub fn read_revision(&self, requested: i64, current: i64) -> Result<i64, StoreError> {
        if requested > current {
            return Err(StoreError::FutureRevision);
        }
        if requested <= 0 {
            return Ok(current);
        }
        if requested < self.compacted {
            return Err(StoreError::Compacted);
        }
        Ok(requested)
    }
}
