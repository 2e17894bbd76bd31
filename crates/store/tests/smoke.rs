//! The quickest end-to-end check: etcdctl put/get against a fresh niwa-store.
mod common;

use common::{Store, etcdctl, ok};

#[test]
fn etcdctl_put_then_get() {
    let store = Store::start();
    assert_eq!(
        ok(etcdctl(&store.endpoint(), &["put", "foo", "bar"])),
        "OK\n"
    );
    assert_eq!(
        ok(etcdctl(&store.endpoint(), &["get", "foo"])),
        "foo\nbar\n"
    );
}

/// The group commit's figures reach /metrics: every acknowledged put was counted in a group, and
/// each group was one fdatasync (names as etcd's where etcd has one, so dashboards and the bench
/// read both servers alike).
#[test]
fn metrics_count_fsyncs_and_group_sizes() {
    let store = Store::start();
    for i in 0..3 {
        ok(etcdctl(&store.endpoint(), &["put", &format!("k{i}"), "v"]));
    }
    let value = |name: &str| store.metric(name);
    let fsyncs = value("etcd_disk_wal_fsync_duration_seconds_count");
    let groups = value("niwa_store_commit_group_writes_count");
    let writes = value("niwa_store_commit_group_writes_sum");
    assert!(fsyncs >= 1.0, "no fdatasync counted after 3 puts");
    assert!(
        groups >= 1.0 && groups <= fsyncs,
        "{groups} groups for {fsyncs} fsyncs"
    );
    assert!(
        writes >= 3.0,
        "3 puts acknowledged, {writes} writes counted"
    );
}
