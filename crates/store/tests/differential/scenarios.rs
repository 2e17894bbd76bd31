//! The tests: randomized sequences with kv-, history- and lease-heavy weights, and hand-picked
//! corner cases run in order.

use etcd_client::{Compare, CompareOp};

use crate::common::{Etcd, Store};
use crate::exec::connect;
use crate::generate::Model;
use crate::ops::{KvOp, Op, RangeSpec, Sel, TxnSpec, WatchSpec};
use crate::runner::{Stats, differential, step};

// Weights: put, get, delete, txn, compact, lease, watch, hashkv.

/// Mostly key-value traffic: puts, ranges with every option, deletes and txns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_and_txn_sequences_match_etcd() {
    let stats = differential(&[1, 2, 3, 4], 400, [30, 25, 12, 25, 2, 3, 2, 1]).await;
    for kind in ["put", "range", "delete", "txn"] {
        assert!(stats.ok(kind) > 50, "too few successful {kind}s: {stats:?}");
    }
}

/// History-heavy: compactions, reads at old revisions, HashKV, and watches from the past.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_history_and_watch_sequences_match_etcd() {
    let stats = differential(&[11, 12, 13], 300, [30, 20, 10, 12, 6, 4, 10, 8]).await;
    assert!(stats.ok("compact") > 10, "too few compactions: {stats:?}");
    assert!(stats.ok("hashkv") > 10, "too few HashKVs: {stats:?}");
    assert!(
        stats.watch_events > 100 && stats.watch_cancels > 0,
        "watches compared too little: {stats:?}"
    );
}

/// Lease-heavy: grants with explicit IDs, puts attached to leases, revokes deleting keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_sequences_match_etcd() {
    let stats = differential(&[21, 22, 23], 300, [25, 15, 8, 15, 2, 30, 4, 1]).await;
    for kind in ["lease_grant", "lease_revoke", "lease_ttl"] {
        assert!(stats.ok(kind) > 10, "too few successful {kind}s: {stats:?}");
    }
}

fn get(key: &str, sel: Sel) -> RangeSpec {
    RangeSpec {
        key: key.to_string(),
        sel,
        revision: 0,
        limit: 0,
        sort: None,
        keys_only: false,
        count_only: false,
        min_mod: 0,
        max_mod: 0,
        min_create: 0,
        max_create: 0,
    }
}

fn put(key: &str, value: &str) -> KvOp {
    KvOp::Put {
        key: key.to_string(),
        value: value.to_string(),
        lease: 0,
        prev_kv: true,
        ignore_value: false,
        ignore_lease: false,
    }
}

fn delete(key: &str, sel: Sel) -> KvOp {
    KvOp::Delete {
        key: key.to_string(),
        sel,
        prev_kv: true,
    }
}

fn txn(compares: Vec<Compare>, success: Vec<KvOp>, failure: Vec<KvOp>) -> KvOp {
    KvOp::Txn(TxnSpec {
        compares,
        success,
        failure,
    })
}

fn watch(start_revision: i64, key: &str, sel: Sel) -> Op {
    Op::Watch(WatchSpec {
        start_revision,
        key: key.to_string(),
        sel,
        prev_kv: true,
        filter: None,
    })
}

/// Hand-picked corner cases, run in order on a fresh pair: boundaries of revisions, compaction,
/// empty and inverted ranges, empty keys, lease limits, txn limits and nested duplicate keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corner_cases_match_etcd() {
    let etcd_server = Etcd::start();
    let store_server = Store::start();
    let mut etcd = connect(&etcd_server.endpoint()).await;
    let mut store = connect(&store_server.endpoint()).await;
    let mut m = Model {
        current: 1,
        compacted: 0,
    };
    let mut stats = Stats::default();
    let with = |f: fn(&mut RangeSpec), mut r: RangeSpec| {
        f(&mut r);
        r
    };
    let kv = Op::Kv;
    let ops: Vec<Op> = vec![
        // A fresh store.
        kv(KvOp::Get(get("k/a", Sel::Prefix))),
        Op::HashKv(0),
        Op::HashKv(1),
        Op::Compact {
            revision: 1,
            physical: false,
        },
        kv(put("k/a", "1")),
        kv(put("k/b", "2")),
        kv(put("k/a", "3")),
        // Revision boundaries.
        kv(KvOp::Get(with(|r| r.revision = -1, get("k/a", Sel::Key)))),
        kv(KvOp::Get(with(|r| r.revision = 1, get("k/a", Sel::Key)))),
        kv(KvOp::Get(with(|r| r.revision = 5, get("k/a", Sel::Key)))),
        kv(KvOp::Get(with(|r| r.revision = 6, get("k/a", Sel::Key)))),
        kv(KvOp::Get(with(|r| r.limit = -1, get("k/", Sel::Prefix)))),
        // Inverted and empty ranges; empty keys.
        kv(KvOp::Get(get("k/c", Sel::Range("k/a".into())))),
        kv(KvOp::Get(get("k/a", Sel::Range("k/a".into())))),
        kv(delete("k/c", Sel::Range("k/a".into()))),
        kv(KvOp::Get(get("", Sel::Key))),
        kv(put("", "x")),
        kv(delete("", Sel::Key)),
        kv(KvOp::Get(get("", Sel::FromKey))),
        kv(KvOp::Get(get("", Sel::Prefix))),
        // Txns: empty, read-only, nested duplicates, a range at a future revision inside.
        kv(txn(vec![], vec![], vec![])),
        kv(txn(vec![], vec![KvOp::Get(get("k/", Sel::Prefix))], vec![])),
        kv(txn(
            vec![],
            vec![put("k/c", "x"), txn(vec![], vec![put("k/c", "y")], vec![])],
            vec![],
        )),
        kv(txn(
            vec![],
            vec![txn(
                vec![Compare::version("k/a", CompareOp::Greater, 0)],
                vec![put("k/c", "then")],
                vec![put("k/c", "else")],
            )],
            vec![],
        )),
        kv(txn(
            vec![],
            vec![delete("k/", Sel::Prefix), put("k/a", "x")],
            vec![],
        )),
        kv(txn(
            vec![],
            vec![delete("k/", Sel::FromKey), put("k/a", "x")],
            vec![],
        )),
        kv(txn(
            vec![],
            vec![
                put("k/d", "x"),
                KvOp::Get(with(|r| r.revision = 100, get("k/a", Sel::Key))),
            ],
            vec![],
        )),
        kv(txn(
            vec![Compare::value("k/none", CompareOp::NotEqual, "x")],
            vec![put("k/d", "then")],
            vec![put("k/d", "else")],
        )),
        kv(txn(
            vec![Compare::version("k/", CompareOp::Equal, 0).with_prefix()],
            vec![put("k/e", "then")],
            vec![put("k/e", "else")],
        )),
        kv(txn(
            vec![],
            (0..129).map(|i| put(&format!("k/many/{i}"), "x")).collect(),
            vec![],
        )),
        kv(txn(
            vec![],
            (0..128).map(|i| put(&format!("k/many/{i}"), "x")).collect(),
            vec![],
        )),
        // Leases: limits, unknown IDs, revoking keys.
        Op::LeaseGrant { id: 7, ttl: 0 },
        Op::LeaseGrant { id: 8, ttl: -5 },
        Op::LeaseGrant {
            id: 9,
            ttl: 9_000_000_001,
        },
        Op::LeaseGrant { id: -3, ttl: 100 },
        Op::LeaseGrant { id: 10, ttl: 600 },
        Op::LeaseGrant { id: 10, ttl: 600 },
        Op::LeaseRevoke(0),
        Op::LeaseRevoke(11),
        Op::LeaseTimeToLive { id: 11, keys: true },
        kv(KvOp::Put {
            key: "k/leased".into(),
            value: "l".into(),
            lease: 10,
            prev_kv: false,
            ignore_value: false,
            ignore_lease: false,
        }),
        kv(KvOp::Put {
            key: "k/leased".into(),
            value: "".into(),
            lease: 0,
            prev_kv: true,
            ignore_value: true,
            ignore_lease: true,
        }),
        Op::LeaseTimeToLive { id: 10, keys: true },
        Op::LeaseLeases,
        Op::LeaseRevoke(10),
        Op::LeaseTimeToLive { id: 10, keys: true },
        // Watches: from the start, from the future, inverted range.
        watch(1, "k/", Sel::Prefix),
        watch(2, "k/c", Sel::Range("k/a".into())),
        // Compaction boundaries.
        Op::Compact {
            revision: 0,
            physical: true,
        },
        Op::Compact {
            revision: 4,
            physical: true,
        },
        Op::Compact {
            revision: 4,
            physical: true,
        },
        Op::Compact {
            revision: 3,
            physical: true,
        },
        Op::Compact {
            revision: 1000,
            physical: true,
        },
        Op::HashKv(4),
        Op::HashKv(5),
        Op::HashKv(0),
        kv(KvOp::Get(with(|r| r.revision = 3, get("k/a", Sel::Key)))),
        kv(KvOp::Get(with(|r| r.revision = 4, get("k/", Sel::Prefix)))),
        watch(3, "k/", Sel::Prefix),
        watch(4, "k/", Sel::Prefix),
        watch(5, "k/", Sel::Prefix),
    ];
    let n = ops.len();
    for (i, op) in ops.iter().enumerate() {
        let label = format!("corner case #{i}");
        let _ = step(&mut etcd, &mut store, op, &mut m, &mut stats, &label).await;
    }
    eprintln!("{n} corner cases: {stats:?}");
    let last = Op::Compact {
        revision: m.current,
        physical: true,
    };
    let _ = step(
        &mut etcd,
        &mut store,
        &last,
        &mut m,
        &mut stats,
        "final compaction",
    )
    .await;
    let after = watch(m.current, "k/", Sel::Prefix);
    let _ = step(
        &mut etcd,
        &mut store,
        &after,
        &mut m,
        &mut stats,
        "watch at the compaction",
    )
    .await;
}
