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
