//! Writes: Put, DeleteRange and Txn with etcd 3.4's semantics — request checks (`checkTxnRequest`,
//! `checkIntervals`), compares evaluated before any write, every op of the chosen path validated
//! before the first write (so a failing txn changes nothing), and one main revision per write request.

use std::collections::HashSet;
use std::sync::Arc;

use etcd_client::proto::{
    PbCompare as Compare, PbDeleteRequest as DeleteRangeRequest, PbDeleteResponse,
    PbKeyValue as KeyValue, PbPutRequest as PutRequest, PbPutResponse, PbResponseHeader,
    PbResponseOp as ResponseOp, PbTargetUnion as TargetUnion, PbTxnOpRequest as OpRequest,
    PbTxnOpResponse as OpResponse, PbTxnRequest as TxnRequest, PbTxnResponse,
};

use super::range::check_range;
use super::{Change, Key, KeyRange, Mvcc, Revision};
use crate::error::StoreError;
use crate::lease::Leases;

/// etcd's default `--max-txn-ops`.
pub const MAX_TXN_OPS: usize = 128;

/// A write's response plus the changes it made (empty when nothing was written).
#[derive(Debug)]
pub struct WriteOutcome<R> {
    pub response: R,
    pub changes: Vec<Change>,
}

/// Which requests of a txn path `validate_path` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Puts,
    Ranges,
}

/// The revision being written: every change of one request shares `main`.
struct Writer {
    main: i64,
    next_sub: i64,
    changes: Vec<Change>,
}

impl Writer {
    fn next_rev(&mut self) -> Revision {
        let rev = Revision {
            main: self.main,
            sub: self.next_sub,
        };
        self.next_sub += 1;
        rev
    }
}

fn header(revision: i64) -> Option<PbResponseHeader> {
    Some(PbResponseHeader {
        revision,
        ..Default::default()
    })
}

/// Shape checks of a put (etcd's `checkPutRequest`).
pub fn check_put(req: &PutRequest) -> Result<(), StoreError> {
    if req.key.is_empty() {
        return Err(StoreError::EmptyKey);
    }
    if req.ignore_value && !req.value.is_empty() {
        return Err(StoreError::ValueProvided);
    }
    if req.ignore_lease && req.lease != 0 {
        return Err(StoreError::LeaseProvided);
    }
    Ok(())
}

pub fn check_delete(req: &DeleteRangeRequest) -> Result<(), StoreError> {
    if req.key.is_empty() {
        return Err(StoreError::EmptyKey);
    }
    Ok(())
}

/// Shape checks of a txn: op counts, every op, and duplicate keys (etcd's `checkTxnRequest` followed
/// by `checkIntervals` on both branches).
pub fn check_txn(req: &TxnRequest) -> Result<(), StoreError> {
    check_txn_ops(req, MAX_TXN_OPS)?;
    check_intervals(&req.success)?;
    check_intervals(&req.failure)?;
    Ok(())
}

fn check_txn_ops(req: &TxnRequest, max_ops: usize) -> Result<(), StoreError> {
    let opc = req
        .compare
        .len()
        .max(req.success.len())
        .max(req.failure.len());
    if opc > max_ops {
        return Err(StoreError::TooManyOps);
    }
    if req.compare.iter().any(|c| c.key.is_empty()) {
        return Err(StoreError::EmptyKey);
    }
    for op in req.success.iter().chain(req.failure.iter()) {
        match &op.request {
            Some(OpRequest::RequestRange(r)) => check_range(r)?,
            Some(OpRequest::RequestPut(p)) => check_put(p)?,
            Some(OpRequest::RequestDeleteRange(d)) => check_delete(d)?,
            Some(OpRequest::RequestTxn(t)) => check_txn_ops(t, max_ops - opc)?,
            None => {}
        }
    }
    Ok(())
}

/// A delete interval as etcd's duplicate check sees it: plain lexicographic `[start, end)`, so a
/// from-key delete (`end == "\0"`) covers nothing here, exactly as in etcd.
struct Interval {
    start: Vec<u8>,
    end: Option<Vec<u8>>,
}

impl Interval {
    fn contains(&self, key: &[u8]) -> bool {
        match &self.end {
            None => key == self.start.as_slice(),
            Some(end) => key >= self.start.as_slice() && key < end.as_slice(),
        }
    }
}

fn check_intervals(
    ops: &[etcd_client::proto::PbTxnRequestOp],
) -> Result<HashSet<Vec<u8>>, StoreError> {
    Ok(collect_intervals(ops)?.0)
}

type PutsAndDels = (HashSet<Vec<u8>>, Vec<Interval>);

fn collect_intervals(
    ops: &[etcd_client::proto::PbTxnRequestOp],
) -> Result<PutsAndDels, StoreError> {
    let mut dels: Vec<Interval> = ops
        .iter()
        .filter_map(|op| match &op.request {
            Some(OpRequest::RequestDeleteRange(d)) => Some(Interval {
                start: d.key.clone(),
                end: (!d.range_end.is_empty()).then(|| d.range_end.clone()),
            }),
            _ => None,
        })
        .collect();
    let mut puts: HashSet<Vec<u8>> = HashSet::new();
    let deleted = |dels: &[Interval], k: &[u8]| dels.iter().any(|iv| iv.contains(k));
    for op in ops {
        let Some(OpRequest::RequestTxn(t)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = collect_intervals(&t.success)?;
        let (puts_else, dels_else) = collect_intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || deleted(&dels, k) {
                return Err(StoreError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        for k in puts_else {
            // then/else are exclusive: a key put by both branches is fine.
            if (puts.contains(&k) && !puts_then.contains(&k)) || deleted(&dels, &k) {
                return Err(StoreError::DuplicateKey);
            }
            puts.insert(k);
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in ops {
        let Some(OpRequest::RequestPut(p)) = &op.request else {
            continue;
        };
        if puts.contains(&p.key) || deleted(&dels, &p.key) {
            return Err(StoreError::DuplicateKey);
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}

impl Mvcc {
    fn latest(&self, key: &[u8]) -> Option<&Arc<KeyValue>> {
        self.get_at(key, i64::MAX)
    }

    fn begin(&self) -> Writer {
        Writer {
            main: self.current + 1,
            next_sub: 0,
            changes: Vec::new(),
        }
    }

    fn finish(&mut self, w: &Writer) {
        if !w.changes.is_empty() {
            self.current = w.main;
        }
    }

    pub fn put(
        &mut self,
        leases: &mut Leases,
        req: &PutRequest,
    ) -> Result<WriteOutcome<PbPutResponse>, StoreError> {
        check_put(req)?;
        // A plain Put looks the lease up before the ignore_* key check (etcd's
        // `applierV3backend.Put`); inside a txn `validate_put` checks the key first, as etcd's
        // `checkRequestPut` does.
        if req.lease != 0 && !leases.contains(req.lease) {
            return Err(StoreError::LeaseNotFound);
        }
        self.validate_put(leases, req)?;
        let mut w = self.begin();
        let response = self.apply_put(&mut w, leases, req);
        self.finish(&w);
        Ok(WriteOutcome {
            response,
            changes: w.changes,
        })
    }

    pub fn delete_range(
        &mut self,
        leases: &mut Leases,
        req: &DeleteRangeRequest,
    ) -> Result<WriteOutcome<PbDeleteResponse>, StoreError> {
        check_delete(req)?;
        let mut w = self.begin();
        let response = self.apply_delete(&mut w, leases, req);
        self.finish(&w);
        Ok(WriteOutcome {
            response,
            changes: w.changes,
        })
    }

    /// Deletes the given keys in one revision (lease revocation and expiry).
    pub fn delete_keys(&mut self, leases: &mut Leases, keys: &[Key]) -> Vec<Change> {
        let mut w = self.begin();
        for key in keys {
            self.delete_one(&mut w, leases, key.clone());
        }
        self.finish(&w);
        w.changes
    }

    pub fn txn(
        &mut self,
        leases: &mut Leases,
        req: &TxnRequest,
    ) -> Result<WriteOutcome<PbTxnResponse>, StoreError> {
        check_txn(req)?;
        // Decide the whole path (every nested compare) on the state before any write.
        let mut path = Vec::new();
        self.decide_path(req, &mut path);
        // etcd checks every put of the chosen path first and only then every range
        // (`checkRequests(..., checkPut)` before `checkRequests(..., checkRange)`), which decides
        // the error a txn failing both ways gets.
        self.validate_path(leases, req, &mut path.iter(), Check::Puts)?;
        self.validate_path(leases, req, &mut path.iter(), Check::Ranges)?;
        let mut w = self.begin();
        let mut cursor = path.iter();
        let mut response = self.apply_txn(&mut w, leases, req, &mut cursor);
        self.finish(&w);
        // Only the outer txn response carries the revision; etcd leaves the headers of nested txn
        // responses empty (`newTxnResp`), which the differential test against etcd 3.4 checks.
        response.header = header(self.current);
        Ok(WriteOutcome {
            response,
            changes: w.changes,
        })
    }

    /// Records which branch each txn (outer first, then nested in op order) takes.
    fn decide_path(&self, req: &TxnRequest, path: &mut Vec<bool>) {
        let succeeded = req.compare.iter().all(|c| self.compare(c));
        path.push(succeeded);
        let ops = if succeeded {
            &req.success
        } else {
            &req.failure
        };
        for op in ops {
            if let Some(OpRequest::RequestTxn(t)) = &op.request {
                self.decide_path(t, path);
            }
        }
    }

    fn validate_path<'a>(
        &self,
        leases: &Leases,
        req: &TxnRequest,
        path: &mut impl Iterator<Item = &'a bool>,
        check: Check,
    ) -> Result<(), StoreError> {
        let succeeded = path.next().copied().unwrap_or(false);
        let ops = if succeeded {
            &req.success
        } else {
            &req.failure
        };
        for op in ops {
            match &op.request {
                Some(OpRequest::RequestPut(p)) if check == Check::Puts => {
                    self.validate_put(leases, p)?
                }
                Some(OpRequest::RequestRange(r)) if check == Check::Ranges => {
                    self.read_revision(r.revision, self.current)?;
                }
                Some(OpRequest::RequestTxn(t)) => self.validate_path(leases, t, path, check)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// State checks of a put (etcd's `checkRequestPut`): ignore_* need an existing key; the lease
    /// must exist.
    fn validate_put(&self, leases: &Leases, req: &PutRequest) -> Result<(), StoreError> {
        if (req.ignore_value || req.ignore_lease) && self.latest(&req.key).is_none() {
            return Err(StoreError::KeyNotFound);
        }
        if req.lease != 0 && !leases.contains(req.lease) {
            return Err(StoreError::LeaseNotFound);
        }
        Ok(())
    }

    fn apply_txn<'a>(
        &mut self,
        w: &mut Writer,
        leases: &mut Leases,
        req: &TxnRequest,
        path: &mut impl Iterator<Item = &'a bool>,
    ) -> PbTxnResponse {
        let succeeded = path.next().copied().unwrap_or(false);
        let ops = if succeeded {
            &req.success
        } else {
            &req.failure
        };
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let response = match &op.request {
                Some(OpRequest::RequestRange(r)) => {
                    let at = if w.changes.is_empty() {
                        self.current
                    } else {
                        w.main
                    };
                    // Validated above; a failure here would be a bug, answered as an empty range.
                    let resp = self.range(r, at).unwrap_or_default();
                    let mut resp = resp;
                    resp.header = header(at);
                    Some(OpResponse::ResponseRange(resp))
                }
                Some(OpRequest::RequestPut(p)) => {
                    Some(OpResponse::ResponsePut(self.apply_put(w, leases, p)))
                }
                Some(OpRequest::RequestDeleteRange(d)) => Some(OpResponse::ResponseDeleteRange(
                    self.apply_delete(w, leases, d),
                )),
                Some(OpRequest::RequestTxn(t)) => {
                    Some(OpResponse::ResponseTxn(self.apply_txn(w, leases, t, path)))
                }
                None => None,
            };
            responses.push(ResponseOp { response });
        }
        PbTxnResponse {
            header: Some(PbResponseHeader::default()),
            succeeded,
            responses,
        }
    }

    fn apply_put(
        &mut self,
        w: &mut Writer,
        leases: &mut Leases,
        req: &PutRequest,
    ) -> PbPutResponse {
        let key: Key = Arc::from(req.key.as_slice());
        let prev = self.latest(&key).cloned();
        let value = match (&prev, req.ignore_value) {
            (Some(p), true) => p.value.clone(),
            _ => req.value.clone(),
        };
        let lease = match (&prev, req.ignore_lease) {
            (Some(p), true) => p.lease,
            _ => req.lease,
        };
        let (create_revision, version) = match &prev {
            Some(p) => (p.create_revision, p.version + 1),
            None => (w.main, 1),
        };
        let kv = KeyValue {
            key: req.key.clone(),
            create_revision,
            mod_revision: w.main,
            version,
            value,
            lease,
        };
        if let Some(p) = &prev
            && p.lease != 0
            && p.lease != lease
        {
            leases.detach(p.lease, &key);
        }
        if lease != 0 {
            leases.attach(lease, &key);
        }
        let rev = w.next_rev();
        let change = self.record(rev, key, Some(Arc::new(kv)));
        w.changes.push(change);
        PbPutResponse {
            header: header(w.main),
            prev_kv: if req.prev_kv {
                prev.map(|p| KeyValue::clone(&p))
            } else {
                None
            },
        }
    }

    fn apply_delete(
        &mut self,
        w: &mut Writer,
        leases: &mut Leases,
        req: &DeleteRangeRequest,
    ) -> PbDeleteResponse {
        let range = KeyRange::new(&req.key, &req.range_end);
        let keys: Vec<Key> = self
            .live_in_range(&range, i64::MAX)
            .map(|kv| Key::from(kv.key.as_slice()))
            .collect();
        let mut prev_kvs = Vec::new();
        let mut deleted = 0;
        for key in keys {
            if let Some(prev) = self.delete_one(w, leases, key) {
                deleted += 1;
                if req.prev_kv {
                    prev_kvs.push(KeyValue::clone(&prev));
                }
            }
        }
        let revision = if w.changes.is_empty() {
            self.current
        } else {
            w.main
        };
        PbDeleteResponse {
            header: header(revision),
            deleted,
            prev_kvs,
        }
    }

    fn delete_one(
        &mut self,
        w: &mut Writer,
        leases: &mut Leases,
        key: Key,
    ) -> Option<Arc<KeyValue>> {
        let prev = self.latest(&key).cloned()?;
        if prev.lease != 0 {
            leases.detach(prev.lease, &key);
        }
        let rev = w.next_rev();
        let change = self.record(rev, key, None);
        w.changes.push(change);
        Some(prev)
    }

    /// etcd's `applyCompare`: every key of the compare's range must satisfy it; a missing key compares
    /// as zero values, except that a VALUE compare on a missing key always fails.
    fn compare(&self, c: &Compare) -> bool {
        const TARGET_VALUE: i32 = 3;
        let range = KeyRange::new(&c.key, &c.range_end);
        let mut any = false;
        for kv in self.live_in_range(&range, i64::MAX) {
            any = true;
            if !compare_kv(c, kv) {
                return false;
            }
        }
        if !any {
            if c.target == TARGET_VALUE {
                return false;
            }
            return compare_kv(c, &KeyValue::default());
        }
        true
    }
}

fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    use std::cmp::Ordering;
    let ord: Ordering = match c.target {
        // VERSION=0, CREATE=1, MOD=2, VALUE=3, LEASE=4
        0 => kv.version.cmp(&target_int(c, 0)),
        1 => kv.create_revision.cmp(&target_int(c, 1)),
        2 => kv.mod_revision.cmp(&target_int(c, 2)),
        3 => {
            let v: &[u8] = match &c.target_union {
                Some(TargetUnion::Value(v)) => v,
                _ => &[],
            };
            kv.value.as_slice().cmp(v)
        }
        4 => kv.lease.cmp(&target_int(c, 4)),
        _ => return true,
    };
    match c.result {
        0 => ord == Ordering::Equal,
        1 => ord == Ordering::Greater,
        2 => ord == Ordering::Less,
        3 => ord != Ordering::Equal,
        _ => true,
    }
}

/// The integer operand of a compare for `target`: only the union member matching the target counts,
/// anything else compares against 0, as in etcd.
fn target_int(c: &Compare, target: i32) -> i64 {
    match (&c.target_union, target) {
        (Some(TargetUnion::Version(v)), 0)
        | (Some(TargetUnion::CreateRevision(v)), 1)
        | (Some(TargetUnion::ModRevision(v)), 2)
        | (Some(TargetUnion::Lease(v)), 4) => *v,
        _ => 0,
    }
}
