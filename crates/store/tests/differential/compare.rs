//! Responses normalized for comparison: identity header fields dropped, ties of etcd's unstable
//! sort put in key order, errors reduced to gRPC code and message.

use etcd_client::SortTarget;
use etcd_client::proto::{
    PbCompactionResponse, PbDeleteResponse, PbHashKvResponse, PbKeyValue, PbLeaseGrantResponse,
    PbLeaseLeasesResponse, PbLeaseRevokeResponse, PbLeaseTimeToLiveResponse, PbPutResponse,
    PbRangeResponse, PbResponseHeader, PbTxnOpResponse, PbTxnResponse,
};

use crate::exec::WatchOutcome;
use crate::ops::{KvOp, RangeSpec, TxnSpec};

/// A response with the fields that may differ between two servers normalized away.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Resp {
    Put(PbPutResponse),
    Range(PbRangeResponse),
    Delete(PbDeleteResponse),
    Txn(PbTxnResponse),
    Compact(PbCompactionResponse),
    HashKv(PbHashKvResponse),
    LeaseGrant(PbLeaseGrantResponse),
    LeaseRevoke(PbLeaseRevokeResponse),
    LeaseTimeToLive(PbLeaseTimeToLiveResponse),
    LeaseLeases(PbLeaseLeasesResponse),
    Watch(WatchOutcome),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failure {
    pub(crate) code: tonic::Code,
    pub(crate) message: String,
}

pub(crate) type Outcome = Result<Resp, Failure>;

pub(crate) fn failure(e: etcd_client::Error) -> Failure {
    match e {
        etcd_client::Error::GRpcStatus(s) => Failure {
            code: s.code(),
            message: s.message().to_string(),
        },
        other => panic!("transport-level error (not a gRPC status): {other}"),
    }
}

/// Drops the identity fields (cluster_id, member_id, raft_term) and keeps the revision.
pub(crate) fn norm_header(h: &mut Option<PbResponseHeader>) {
    if let Some(h) = h {
        h.cluster_id = 0;
        h.member_id = 0;
        h.raft_term = 0;
    }
}

/// etcd sorts with Go's `sort.Sort`, which is not stable in general, so rows with equal sort keys
/// are put in key order before comparing (the sorted-by order itself is still compared, since the
/// tie groups are only formed from adjacent equal rows).
pub(crate) fn norm_range(r: &mut PbRangeResponse, spec: &RangeSpec) {
    norm_header(&mut r.header);
    let Some((target, _)) = spec.sort else { return };
    let sort_key = |kv: &PbKeyValue| -> (i64, Vec<u8>) {
        match target {
            SortTarget::Key => (0, kv.key.clone()),
            SortTarget::Version => (kv.version, Vec::new()),
            SortTarget::Create => (kv.create_revision, Vec::new()),
            SortTarget::Mod => (kv.mod_revision, Vec::new()),
            SortTarget::Value => (0, kv.value.clone()),
        }
    };
    let mut i = 0;
    while i < r.kvs.len() {
        let k = sort_key(&r.kvs[i]);
        let mut j = i + 1;
        while j < r.kvs.len() && sort_key(&r.kvs[j]) == k {
            j += 1;
        }
        r.kvs[i..j].sort_by(|a, b| a.key.cmp(&b.key));
        i = j;
    }
}

pub(crate) fn norm_txn(t: &mut PbTxnResponse, spec: &TxnSpec) {
    norm_header(&mut t.header);
    let ops = if t.succeeded {
        &spec.success
    } else {
        &spec.failure
    };
    for (resp, op) in t.responses.iter_mut().zip(ops) {
        match (&mut resp.response, op) {
            (Some(PbTxnOpResponse::ResponseRange(r)), KvOp::Get(spec)) => norm_range(r, spec),
            (Some(PbTxnOpResponse::ResponsePut(p)), _) => norm_header(&mut p.header),
            (Some(PbTxnOpResponse::ResponseDeleteRange(d)), _) => norm_header(&mut d.header),
            (Some(PbTxnOpResponse::ResponseTxn(t)), KvOp::Txn(spec)) => norm_txn(t, spec),
            // A response of the wrong kind stays as it is and shows up in the comparison.
            _ => {}
        }
    }
}

pub(crate) fn header_revision(r: &Resp) -> Option<i64> {
    let h = match r {
        Resp::Put(r) => &r.header,
        Resp::Range(r) => &r.header,
        Resp::Delete(r) => &r.header,
        Resp::Txn(r) => &r.header,
        Resp::Compact(r) => &r.header,
        Resp::LeaseRevoke(r) => &r.header,
        _ => return None,
    };
    h.as_ref().map(|h| h.revision)
}
