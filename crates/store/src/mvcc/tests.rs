//! Golden cases for the MVCC core, each checked against what etcd 3.4 answers for the same sequence.

use etcd_client::proto::{
    PbCompare as Compare, PbDeleteRequest as DeleteRangeRequest, PbPutRequest as PutRequest,
    PbRangeRequest as RangeRequest, PbTargetUnion as TargetUnion, PbTxnOpRequest as OpRequest,
    PbTxnOpResponse as OpResponse, PbTxnRequest as TxnRequest, PbTxnRequestOp as RequestOp,
};

use super::Mvcc;
use crate::error::StoreError;
use crate::lease::Leases;

fn put(m: &mut Mvcc, l: &mut Leases, k: &str, v: &str) -> i64 {
    let req = PutRequest {
        key: k.into(),
        value: v.into(),
        ..Default::default()
    };
    let out = m.put(l, &req).map_err(|e| e.to_string());
    out.map(|o| o.response.header.map(|h| h.revision).unwrap_or(-1))
        .unwrap_or(-1)
}

/// (key, value, create_revision, mod_revision, version) of each key a range returned.
type Row = (String, String, i64, i64, i64);

fn get(m: &Mvcc, k: &str, end: &str, rev: i64) -> Result<Vec<Row>, StoreError> {
    let req = RangeRequest {
        key: k.into(),
        range_end: end.into(),
        revision: rev,
        ..Default::default()
    };
    let resp = m.range(&req, m.current_revision())?;
    Ok(resp
        .kvs
        .into_iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(&kv.key).into_owned(),
                String::from_utf8_lossy(&kv.value).into_owned(),
                kv.create_revision,
                kv.mod_revision,
                kv.version,
            )
        })
        .collect())
}

fn setup() -> (Mvcc, Leases) {
    (Mvcc::new(), Leases::new(2, 1))
}

#[test]
fn revisions_versions_and_history_match_etcd() {
    let (mut m, mut l) = setup();
    assert_eq!(put(&mut m, &mut l, "foo", "a"), 2);
    assert_eq!(put(&mut m, &mut l, "foo", "b"), 3);
    assert_eq!(
        get(&m, "foo", "", 0),
        Ok(vec![("foo".into(), "b".into(), 2, 3, 2)])
    );
    assert_eq!(
        get(&m, "foo", "", 2),
        Ok(vec![("foo".into(), "a".into(), 2, 2, 1)])
    );
    let del = m
        .delete_range(
            &mut l,
            &DeleteRangeRequest {
                key: "foo".into(),
                ..Default::default()
            },
        )
        .map(|o| (o.response.deleted, o.response.header.map(|h| h.revision)));
    assert_eq!(del, Ok((1, Some(4))));
    // Deleting nothing does not advance the revision.
    let del = m
        .delete_range(
            &mut l,
            &DeleteRangeRequest {
                key: "foo".into(),
                ..Default::default()
            },
        )
        .map(|o| (o.response.deleted, o.response.header.map(|h| h.revision)));
    assert_eq!(del, Ok((0, Some(4))));
    assert_eq!(get(&m, "foo", "", 0), Ok(vec![]));
    // Re-created keys start a new generation.
    assert_eq!(put(&mut m, &mut l, "foo", "c"), 5);
    assert_eq!(
        get(&m, "foo", "", 0),
        Ok(vec![("foo".into(), "c".into(), 5, 5, 1)])
    );
    assert_eq!(get(&m, "foo", "", 9), Err(StoreError::FutureRevision));
}

#[test]
fn prefix_limit_count_and_from_key() {
    let (mut m, mut l) = setup();
    for k in ["foo/a", "foo/b", "foo/c", "fop", "zzz"] {
        put(&mut m, &mut l, k, "v");
    }
    let req = RangeRequest {
        key: "foo/".into(),
        range_end: "foo0".into(),
        limit: 2,
        ..Default::default()
    };
    let resp = m.range(&req, m.current_revision());
    let (n, more, count) = resp
        .map(|r| (r.kvs.len(), r.more, r.count))
        .unwrap_or_default();
    assert_eq!((n, more, count), (2, true, 3));
    let keys: Vec<String> = get(&m, "foo/b", "\0", 0)
        .unwrap_or_default()
        .into_iter()
        .map(|t| t.0)
        .collect();
    assert_eq!(keys, vec!["foo/b", "foo/c", "fop", "zzz"]);
}

#[test]
fn compaction_keeps_latest_live_versions() {
    let (mut m, mut l) = setup();
    put(&mut m, &mut l, "a", "1"); // 2
    put(&mut m, &mut l, "a", "2"); // 3
    put(&mut m, &mut l, "b", "1"); // 4
    let _ = m.delete_range(
        &mut l,
        &DeleteRangeRequest {
            key: "b".into(),
            ..Default::default()
        },
    ); // 5
    put(&mut m, &mut l, "a", "3"); // 6
    assert_eq!(m.compact(5, 6), Ok(3));
    assert_eq!(get(&m, "a", "", 4), Err(StoreError::Compacted));
    assert_eq!(
        get(&m, "a", "", 5).map(|v| v[0].1.clone()),
        Ok("2".to_string())
    );
    assert_eq!(get(&m, "b", "", 5), Ok(vec![]));
    assert_eq!(m.compact(5, 6), Err(StoreError::Compacted));
    assert_eq!(m.compact(7, 6), Err(StoreError::FutureRevision));
}

fn put_op(k: &str, v: &str) -> RequestOp {
    RequestOp {
        request: Some(OpRequest::RequestPut(PutRequest {
            key: k.into(),
            value: v.into(),
            ..Default::default()
        })),
    }
}

#[test]
fn txn_compares_branches_and_one_revision() {
    let (mut m, mut l) = setup();
    put(&mut m, &mut l, "foo", "wi"); // 2
    let txn = TxnRequest {
        compare: vec![Compare {
            target: 3,
            key: "foo".into(),
            target_union: Some(TargetUnion::Value("wi".into())),
            ..Default::default()
        }],
        success: vec![
            put_op("a", "1"),
            put_op("b", "2"),
            RequestOp {
                request: Some(OpRequest::RequestRange(RangeRequest {
                    key: "a".into(),
                    ..Default::default()
                })),
            },
        ],
        failure: vec![put_op("c", "3")],
    };
    let out = m.txn(&mut l, &txn);
    let Ok(out) = out else {
        panic!("txn failed: {out:?}");
    };
    assert!(out.response.succeeded);
    assert_eq!(out.response.header.map(|h| h.revision), Some(3));
    assert_eq!(out.changes.len(), 2);
    match &out.response.responses[2].response {
        Some(OpResponse::ResponseRange(r)) => assert_eq!(r.kvs[0].value, b"1"),
        other => panic!("unexpected {other:?}"),
    }
    // A VALUE compare on a missing key fails; a VERSION compare sees 0.
    let txn = TxnRequest {
        compare: vec![Compare {
            target: 3,
            key: "missing".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    assert_eq!(m.txn(&mut l, &txn).map(|o| o.response.succeeded), Ok(false));
    let txn = TxnRequest {
        compare: vec![Compare {
            target: 0,
            key: "missing".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    assert_eq!(m.txn(&mut l, &txn).map(|o| o.response.succeeded), Ok(true));
}

#[test]
fn txn_duplicate_keys_and_unknown_lease_change_nothing() {
    let (mut m, mut l) = setup();
    let dup = TxnRequest {
        success: vec![put_op("a", "1"), put_op("a", "2")],
        ..Default::default()
    };
    assert_eq!(m.txn(&mut l, &dup).err(), Some(StoreError::DuplicateKey));
    let bad_lease = TxnRequest {
        success: vec![
            put_op("a", "1"),
            RequestOp {
                request: Some(OpRequest::RequestPut(PutRequest {
                    key: "b".into(),
                    lease: 99,
                    ..Default::default()
                })),
            },
        ],
        ..Default::default()
    };
    assert_eq!(
        m.txn(&mut l, &bad_lease).err(),
        Some(StoreError::LeaseNotFound)
    );
    assert_eq!(m.current_revision(), 1);
    assert_eq!(get(&m, "a", "", 0), Ok(vec![]));
}

#[test]
fn watch_history_carries_prev_versions() {
    let (mut m, mut l) = setup();
    put(&mut m, &mut l, "k", "1");
    put(&mut m, &mut l, "k", "2");
    let changes: Vec<_> = m.changes_between(3, 3).collect();
    assert_eq!(changes.len(), 1);
    assert_eq!(
        changes[0].prev.as_ref().map(|p| p.value.clone()),
        Some(b"1".to_vec())
    );
}
