//! Bad requests get etcd's gRPC codes and messages (clients match on both), change nothing, and
//! leave the store running with its data. Each body runs against niwa-store and against a real
//! etcd 3.4 (see `against_both!`), through the `etcd-client` crate (for the codes) and etcdctl (for
//! the printed errors).
mod common;
mod ctl;

use common::{etcdctl, etcdctl_stdin, ok};
use ctl::{ctl_error, status};
use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, GetOptions, LeaseGrantOptions, PutOptions, Txn,
    TxnOp,
};
use tonic::Code;

const FUTURE: &str = "etcdserver: mvcc: required revision is a future revision";
const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
const NO_LEASE: &str = "etcdserver: requested lease not found";
const DUPLICATE: &str = "etcdserver: duplicate key given in txn request";
const NO_KEY: &str = "etcdserver: key is not provided";
const TOO_LARGE: &str = "etcdserver: request is too large";

/// The canary written first is still there and the revision is still `revision`: the failed
/// request changed nothing and the store still answers.
async fn intact(client: &mut Client, revision: i64) {
    let resp = client
        .get("canary", None)
        .await
        .expect("store still answers");
    assert_eq!(resp.header().map(|h| h.revision()), Some(revision));
    let kv = &resp.kvs()[0];
    assert_eq!((kv.key(), kv.value()), (&b"canary"[..], &b"alive"[..]));
}

/// canary@2, k=1@3, k=2@4, k=3@5, compacted at 4.
async fn setup(ep: &str) -> Client {
    let mut client = ctl::client(ep).await;
    client.put("canary", "alive", None).await.expect("put");
    for v in ["1", "2", "3"] {
        client.put("k", v, None).await.expect("put");
    }
    client.compact(4, None).await.expect("compact");
    intact(&mut client, 5).await;
    client
}

against_both!(async bad_revisions);
async fn bad_revisions(ep: &str) {
    let mut c = setup(ep).await;
    let at = |rev| Some(GetOptions::new().with_revision(rev));
    assert_eq!(
        status(c.get("k", at(6)).await),
        (Code::OutOfRange, FUTURE.into())
    );
    assert_eq!(
        status(c.get("k", at(3)).await),
        (Code::OutOfRange, COMPACTED.into())
    );
    // A txn's range is checked too, and the txn then writes nothing.
    let txn = Txn::new().and_then([TxnOp::put("canary", "dead", None), TxnOp::get("k", at(99))]);
    assert_eq!(status(c.txn(txn).await), (Code::OutOfRange, FUTURE.into()));
    assert_eq!(
        status(c.compact(4, None).await),
        (Code::OutOfRange, COMPACTED.into())
    );
    assert_eq!(
        status(c.compact(2, None).await),
        (Code::OutOfRange, COMPACTED.into())
    );
    assert_eq!(
        status(c.compact(100, None).await),
        (Code::OutOfRange, FUTURE.into())
    );
    intact(&mut c, 5).await;
    // The compaction revision itself is still readable.
    let resp = c
        .get("k", at(4))
        .await
        .expect("read at the compaction revision");
    assert_eq!(resp.kvs()[0].value(), b"2");

    assert_eq!(
        ctl_error(ep, &["get", "k", "--rev=6"]),
        format!("Error: {FUTURE}")
    );
    assert_eq!(
        ctl_error(ep, &["get", "k", "--rev=3"]),
        format!("Error: {COMPACTED}")
    );
    assert_eq!(
        ctl_error(ep, &["compaction", "1"]),
        format!("Error: {COMPACTED}")
    );
    intact(&mut c, 5).await;
}

against_both!(async bad_leases);
async fn bad_leases(ep: &str) {
    let mut c = setup(ep).await;
    let unknown = 0x1234;
    assert_eq!(
        status(c.lease_revoke(unknown).await),
        (Code::NotFound, NO_LEASE.into())
    );
    assert_eq!(
        status(
            c.put("leased", "v", Some(PutOptions::new().with_lease(unknown)))
                .await
        ),
        (Code::NotFound, NO_LEASE.into())
    );
    // In a txn the bad put fails the whole txn, including the good put before it.
    let txn = Txn::new().and_then([
        TxnOp::put("canary", "dead", None),
        TxnOp::put("leased", "v", Some(PutOptions::new().with_lease(unknown))),
    ]);
    assert_eq!(status(c.txn(txn).await), (Code::NotFound, NO_LEASE.into()));
    assert_eq!(
        status(c.lease_grant(9_000_000_001, None).await),
        (Code::OutOfRange, "etcdserver: too large lease TTL".into())
    );
    let granted = c
        .lease_grant(60, Some(LeaseGrantOptions::new().with_id(777)))
        .await
        .expect("grant with a chosen ID");
    assert_eq!((granted.id(), granted.ttl()), (777, 60));
    assert_eq!(
        status(
            c.lease_grant(60, Some(LeaseGrantOptions::new().with_id(777)))
                .await
        ),
        (
            Code::FailedPrecondition,
            "etcdserver: lease already exists".into()
        )
    );
    // Unknown leases are not errors for TimeToLive (TTL -1) and KeepAlive (TTL 0 on the wire).
    let ttl = c
        .lease_time_to_live(unknown, None)
        .await
        .expect("timetolive");
    assert_eq!((ttl.ttl(), ttl.granted_ttl()), (-1, 0));
    // etcd-client turns the TTL-0 keep-alive answer into an error of its own.
    assert!(
        matches!(
            c.lease_keep_alive(unknown).await,
            Err(etcd_client::Error::LeaseKeepAliveError(_))
        ),
        "keep-alive of an unknown lease"
    );

    assert_eq!(
        ctl_error(ep, &["lease", "revoke", "1234"]),
        format!("Error: failed to revoke lease ({NO_LEASE})")
    );
    assert_eq!(
        ctl_error(ep, &["put", "leased", "v", "--lease=1234"]),
        format!("Error: {NO_LEASE}")
    );
    assert_eq!(
        ctl_error(ep, &["lease", "keep-alive", "--once", "1234"]),
        format!("Error: {NO_LEASE}")
    );
    assert_eq!(
        ok(etcdctl(ep, &["lease", "timetolive", "1234"])),
        "lease 0000000000001234 already expired\n"
    );
    intact(&mut c, 5).await;
    assert!(c.get("leased", None).await.expect("get").kvs().is_empty());
}

against_both!(async bad_txns);
async fn bad_txns(ep: &str) {
    let mut c = setup(ep).await;
    let dup = |ops: Vec<TxnOp>| Txn::new().and_then(ops);
    assert_eq!(
        status(
            c.txn(dup(vec![
                TxnOp::put("x", "1", None),
                TxnOp::put("x", "2", None)
            ]))
            .await
        ),
        (Code::InvalidArgument, DUPLICATE.into())
    );
    // A put inside a deleted range counts as a duplicate as well.
    assert_eq!(
        status(
            c.txn(dup(vec![
                TxnOp::delete("a", Some(DeleteOptions::new().with_range("z"))),
                TxnOp::put("canary", "dead", None)
            ]))
            .await
        ),
        (Code::InvalidArgument, DUPLICATE.into())
    );
    // Both branches are checked, whichever runs.
    let txn = Txn::new()
        .when([Compare::version("canary", CompareOp::Greater, 0)])
        .and_then([TxnOp::put("canary", "dead", None)])
        .or_else([TxnOp::put("y", "1", None), TxnOp::put("y", "2", None)]);
    assert_eq!(
        status(c.txn(txn).await),
        (Code::InvalidArgument, DUPLICATE.into())
    );
    // Two reads of a key are fine, as are puts of one key in different branches.
    let txn = Txn::new()
        .when([Compare::value("canary", CompareOp::Equal, "alive")])
        .and_then([TxnOp::get("k", None), TxnOp::get("k", None)])
        .or_else([TxnOp::put("canary", "dead", None)]);
    let resp = c.txn(txn).await.expect("read-only txn");
    assert!(resp.succeeded());
    assert_eq!(resp.header().map(|h| h.revision()), Some(5));

    let too_many: Vec<TxnOp> = (0..129)
        .map(|i| TxnOp::put(format!("t{i}"), "v", None))
        .collect();
    assert_eq!(
        status(c.txn(dup(too_many)).await),
        (
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request".into()
        )
    );
    assert_eq!(
        status(c.txn(dup(vec![TxnOp::put("", "v", None)])).await),
        (Code::InvalidArgument, NO_KEY.into())
    );

    let script = "\nput x 1\nput x 2\n\n\n";
    assert_eq!(
        ctl::error_line(&ctl::fail(etcdctl_stdin(ep, &["txn"], Some(script)))),
        format!("Error: {DUPLICATE}")
    );
    intact(&mut c, 5).await;
    assert!(
        c.get("t", Some(GetOptions::new().with_prefix()))
            .await
            .expect("get")
            .kvs()
            .is_empty()
    );
}

against_both!(async bad_keys_and_flags);
async fn bad_keys_and_flags(ep: &str) {
    let mut c = setup(ep).await;
    assert_eq!(
        status(c.put("", "v", None).await),
        (Code::InvalidArgument, NO_KEY.into())
    );
    assert_eq!(
        status(c.get("", None).await),
        (Code::InvalidArgument, NO_KEY.into())
    );
    assert_eq!(
        status(c.delete("", None).await),
        (Code::InvalidArgument, NO_KEY.into())
    );
    // ignore_value / ignore_lease need an existing key and no value / lease of their own.
    assert_eq!(
        status(
            c.put("nokey", "", Some(PutOptions::new().with_ignore_value()))
                .await
        ),
        (Code::InvalidArgument, "etcdserver: key not found".into())
    );
    assert_eq!(
        status(
            c.put("canary", "x", Some(PutOptions::new().with_ignore_value()))
                .await
        ),
        (
            Code::InvalidArgument,
            "etcdserver: value is provided".into()
        )
    );
    assert_eq!(
        status(
            c.put(
                "canary",
                "x",
                Some(PutOptions::new().with_ignore_lease().with_lease(5))
            )
            .await
        ),
        (
            Code::InvalidArgument,
            "etcdserver: lease is provided".into()
        )
    );
    for args in [&["put", "", "v"][..], &["get", ""], &["del", ""]] {
        assert_eq!(ctl_error(ep, args), format!("Error: {NO_KEY}"));
    }
    // Inverted ranges are not errors: they match nothing.
    let resp = c
        .get("z", Some(GetOptions::new().with_range("a")))
        .await
        .expect("inverted range");
    assert_eq!((resp.count(), resp.kvs().len()), (0, 0));
    let resp = c
        .delete("z", Some(DeleteOptions::new().with_range("a")))
        .await
        .expect("inverted delete");
    assert_eq!(resp.deleted(), 0);
    intact(&mut c, 5).await;
}

against_both!(async oversized_requests);
async fn oversized_requests(ep: &str) {
    let mut c = setup(ep).await;
    // etcd's default --max-request-bytes is 1.5 MiB.
    let big = vec![b'x'; 1600 * 1024];
    assert_eq!(
        status(c.put("big", big.clone(), None).await),
        (Code::InvalidArgument, TOO_LARGE.into())
    );
    let txn = Txn::new().and_then([TxnOp::put("big", big.clone(), None)]);
    assert_eq!(
        status(c.txn(txn).await),
        (Code::InvalidArgument, TOO_LARGE.into())
    );
    let text = String::from_utf8(big).expect("ascii");
    // `etcdctl put KEY` reads the value from stdin.
    assert_eq!(
        ctl::error_line(&ctl::fail(etcdctl_stdin(ep, &["put", "big"], Some(&text)))),
        format!("Error: {TOO_LARGE}")
    );
    intact(&mut c, 5).await;
    assert!(c.get("big", None).await.expect("get").kvs().is_empty());

    // Just below the limit is accepted.
    let fits = "y".repeat(1400 * 1024);
    assert_eq!(ok(etcdctl_stdin(ep, &["put", "fits"], Some(&fits))), "OK\n");
    let resp = c.get("fits", None).await.expect("get");
    assert_eq!(resp.kvs()[0].value().len(), 1400 * 1024);
    intact(&mut c, 6).await;
}
