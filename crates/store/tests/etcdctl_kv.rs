//! etcdctl conformance of the KV commands: put, get (every range option), del, txn and compaction.
//! Every expected output below is what etcdctl 3.4.23 printed against a real etcd 3.4.23 for the
//! same sequence of commands (see /work/shared/reference/etcd-v3-wire.md).
mod common;
mod ctl;

use common::{etcdctl, etcdctl_stdin, ok};
use ctl::{ctl_error, fields, json};
use serde_json::json;

against_both!(put_and_get_print_what_etcd_prints);
fn put_and_get_print_what_etcd_prints(ep: &str) {
    assert_eq!(ok(etcdctl(ep, &["put", "foo", "bar"])), "OK\n");
    assert_eq!(
        ok(etcdctl(ep, &["put", "foo", "bar2", "--prev-kv"])),
        "OK\nfoo\nbar\n"
    );
    assert_eq!(ok(etcdctl(ep, &["get", "foo"])), "foo\nbar2\n");
    assert_eq!(
        ok(etcdctl(ep, &["get", "foo", "--print-value-only"])),
        "bar2\n"
    );
    assert_eq!(ok(etcdctl(ep, &["get", "missing"])), "");

    // -w json: bytes base64, int64s bare numbers, only non-default fields.
    let v = json(&ok(etcdctl(ep, &["get", "foo", "-w", "json"])));
    assert_eq!(fields(&v), ["count", "header", "kvs"]);
    assert_eq!(
        fields(&v["header"]),
        ["cluster_id", "member_id", "raft_term", "revision"]
    );
    assert_eq!(v["header"]["revision"], 3);
    assert_eq!(v["header"]["raft_term"], 2);
    assert!(v["header"]["cluster_id"].as_u64().is_some_and(|id| id != 0));
    assert!(v["header"]["member_id"].as_u64().is_some_and(|id| id != 0));
    assert_eq!(
        v["kvs"],
        json!([{"key": "Zm9v", "create_revision": 2, "mod_revision": 3, "version": 2, "value": "YmFyMg=="}])
    );
    assert_eq!(v["count"], 1);

    // A missing key prints only the header.
    let v = json(&ok(etcdctl(ep, &["get", "missing", "-w", "json"])));
    assert_eq!(fields(&v), ["header"]);
    assert_eq!(v["header"]["revision"], 3);

    let v = json(&ok(etcdctl(
        ep,
        &["put", "foo", "bar3", "--prev-kv", "-w", "json"],
    )));
    assert_eq!(fields(&v), ["header", "prev_kv"]);
    assert_eq!(v["header"]["revision"], 4);
    assert_eq!(
        v["prev_kv"],
        json!({"key": "Zm9v", "create_revision": 2, "mod_revision": 3, "version": 2, "value": "YmFyMg=="})
    );
    // A put of a new key with --prev-kv has no prev_kv.
    let v = json(&ok(etcdctl(
        ep,
        &["put", "fresh", "x", "--prev-kv", "-w", "json"],
    )));
    assert_eq!(fields(&v), ["header"]);
    assert_eq!(v["header"]["revision"], 5);
}

/// foo=bar@2, foo/a=1@3, foo/b=2@4, foo/c=3@5, foo/a=1x@6.
fn range_fixture(ep: &str) {
    for (k, val) in [
        ("foo", "bar"),
        ("foo/a", "1"),
        ("foo/b", "2"),
        ("foo/c", "3"),
        ("foo/a", "1x"),
    ] {
        assert_eq!(ok(etcdctl(ep, &["put", k, val])), "OK\n");
    }
}

against_both!(get_range_options);
fn get_range_options(ep: &str) {
    range_fixture(ep);

    let all = "foo\nbar\nfoo/a\n1x\nfoo/b\n2\nfoo/c\n3\n";
    assert_eq!(ok(etcdctl(ep, &["get", "foo", "--prefix"])), all);
    assert_eq!(
        ok(etcdctl(ep, &["get", "foo", "--prefix", "--consistency=s"])),
        all
    );
    assert_eq!(
        ok(etcdctl(ep, &["get", "foo", "--prefix", "--keys-only"])),
        "foo\n\nfoo/a\n\nfoo/b\n\nfoo/c\n\n"
    );
    let v = json(&ok(etcdctl(
        ep,
        &["get", "foo/", "--prefix", "--keys-only", "-w", "json"],
    )));
    assert_eq!(
        v["kvs"],
        json!([
            {"key": "Zm9vL2E=", "create_revision": 3, "mod_revision": 6, "version": 2},
            {"key": "Zm9vL2I=", "create_revision": 4, "mod_revision": 4, "version": 1},
            {"key": "Zm9vL2M=", "create_revision": 5, "mod_revision": 5, "version": 1}
        ])
    );

    // --limit: `more` is set and `count` is the number of all matches, not of the returned ones.
    assert_eq!(
        ok(etcdctl(ep, &["get", "foo", "--prefix", "--limit=2"])),
        "foo\nbar\nfoo/a\n1x\n"
    );
    let v = json(&ok(etcdctl(
        ep,
        &["get", "foo", "--prefix", "--limit=2", "-w", "json"],
    )));
    assert_eq!(fields(&v), ["count", "header", "kvs", "more"]);
    assert_eq!(v["more"], true);
    assert_eq!(v["count"], 4);
    assert_eq!(v["kvs"].as_array().map(Vec::len), Some(2));
    let v = json(&ok(etcdctl(
        ep,
        &["get", "foo", "--prefix", "--limit=4", "-w", "json"],
    )));
    assert_eq!(v.get("more"), None, "no more keys past the limit");
    assert_eq!(v["count"], 4);

    // --from-key with sorting.
    assert_eq!(
        ok(etcdctl(
            ep,
            &[
                "get",
                "foo/b",
                "--from-key",
                "--sort-by=MODIFY",
                "--order=DESCEND"
            ]
        )),
        "foo/c\n3\nfoo/b\n2\n"
    );
    assert_eq!(
        ok(etcdctl(
            ep,
            &[
                "get",
                "foo/",
                "--from-key",
                "--sort-by=MODIFY",
                "--order=DESCEND",
                "--keys-only"
            ]
        )),
        "foo/a\n\nfoo/c\n\nfoo/b\n\n"
    );
    assert_eq!(
        ok(etcdctl(
            ep,
            &[
                "get",
                "foo",
                "--prefix",
                "--sort-by=CREATE",
                "--order=DESCEND",
                "--keys-only"
            ]
        )),
        "foo/c\n\nfoo/b\n\nfoo/a\n\nfoo\n\n"
    );
    assert_eq!(
        ok(etcdctl(
            ep,
            &[
                "get",
                "foo/",
                "--prefix",
                "--sort-by=VALUE",
                "--order=DESCEND"
            ]
        )),
        "foo/c\n3\nfoo/b\n2\nfoo/a\n1x\n"
    );
    assert_eq!(
        ok(etcdctl(
            ep,
            &[
                "get",
                "foo",
                "--prefix",
                "--sort-by=KEY",
                "--order=DESCEND",
                "--limit=1"
            ]
        )),
        "foo/c\n3\n"
    );
    // An empty key with --from-key means every key.
    assert_eq!(
        ok(etcdctl(
            ep,
            &["get", "", "--from-key", "--keys-only", "--limit=1"]
        )),
        "foo\n\n"
    );

    // [key, range_end) is half-open; an end below the start matches nothing.
    assert_eq!(
        ok(etcdctl(ep, &["get", "foo/a", "foo/c"])),
        "foo/a\n1x\nfoo/b\n2\n"
    );
    assert_eq!(ok(etcdctl(ep, &["get", "foo/c", "foo/a"])), "");

    // --rev reads history; the header still carries the current revision.
    assert_eq!(ok(etcdctl(ep, &["get", "foo/a", "--rev=3"])), "foo/a\n1\n");
    assert_eq!(ok(etcdctl(ep, &["get", "foo/a", "--rev=2"])), "");
    let v = json(&ok(etcdctl(
        ep,
        &["get", "foo", "--prefix", "--rev=4", "-w", "json"],
    )));
    assert_eq!(v["header"]["revision"], 6);
    assert_eq!(v["count"], 3);
    assert_eq!(
        v["kvs"][1],
        json!({"key": "Zm9vL2E=", "create_revision": 3, "mod_revision": 3, "version": 1, "value": "MQ=="})
    );
    assert_eq!(
        ctl_error(ep, &["get", "foo", "--rev=7"]),
        "Error: etcdserver: mvcc: required revision is a future revision"
    );
}

against_both!(async get_count_only);
/// etcdctl 3.4 has no --count-only flag; count_only is what client libraries (client-go's
/// `Count`, etcd-client's `with_count_only`) send.
async fn get_count_only(ep: &str) {
    range_fixture(ep);
    let mut client = ctl::client(ep).await;
    let resp = client
        .get(
            "foo",
            Some(
                etcd_client::GetOptions::new()
                    .with_prefix()
                    .with_count_only(),
            ),
        )
        .await
        .expect("count-only get");
    assert_eq!(resp.count(), 4);
    assert!(resp.kvs().is_empty());
    assert!(!resp.more());
    assert_eq!(resp.header().map(|h| h.revision()), Some(6));
    let resp = client
        .get(
            "foo/",
            Some(
                etcd_client::GetOptions::new()
                    .with_prefix()
                    .with_count_only()
                    .with_revision(4),
            ),
        )
        .await
        .expect("count-only get at a revision");
    assert_eq!(resp.count(), 2);
}

against_both!(delete_variants);
fn delete_variants(ep: &str) {
    range_fixture(ep);
    assert_eq!(ok(etcdctl(ep, &["del", "zzz"])), "0\n");
    assert_eq!(
        ok(etcdctl(ep, &["del", "foo/c", "--prev-kv"])),
        "1\nfoo/c\n3\n"
    );
    // Deleting nothing does not advance the revision.
    let v = json(&ok(etcdctl(
        ep,
        &["del", "foo/c", "--prev-kv", "-w", "json"],
    )));
    assert_eq!(fields(&v), ["header"]);
    assert_eq!(v["header"]["revision"], 7);
    let v = json(&ok(etcdctl(
        ep,
        &["del", "foo/", "--prefix", "--prev-kv", "-w", "json"],
    )));
    assert_eq!(fields(&v), ["deleted", "header", "prev_kvs"]);
    assert_eq!(v["header"]["revision"], 8);
    assert_eq!(v["deleted"], 2);
    assert_eq!(
        v["prev_kvs"],
        json!([
            {"key": "Zm9vL2E=", "create_revision": 3, "mod_revision": 6, "version": 2, "value": "MXg="},
            {"key": "Zm9vL2I=", "create_revision": 4, "mod_revision": 4, "version": 1, "value": "Mg=="}
        ])
    );
    assert_eq!(ok(etcdctl(ep, &["get", "foo", "--prefix"])), "foo\nbar\n");

    // A re-created key starts a new life: version 1, new create_revision.
    assert_eq!(ok(etcdctl(ep, &["put", "foo/a", "again"])), "OK\n");
    let v = json(&ok(etcdctl(ep, &["get", "foo/a", "-w", "json"])));
    assert_eq!(
        v["kvs"][0],
        json!({"key": "Zm9vL2E=", "create_revision": 9, "mod_revision": 9, "version": 1, "value": "YWdhaW4="})
    );

    assert_eq!(ok(etcdctl(ep, &["put", "p/1", "a"])), "OK\n");
    assert_eq!(ok(etcdctl(ep, &["put", "p/2", "b"])), "OK\n");
    assert_eq!(ok(etcdctl(ep, &["del", "p/", "--prefix"])), "2\n");
    assert_eq!(ok(etcdctl(ep, &["del", "foo/", "--from-key"])), "1\n");
    assert_eq!(ok(etcdctl(ep, &["get", "", "--from-key"])), "foo\nbar\n");
    // The deleted keys are still visible in history.
    assert_eq!(
        ok(etcdctl(
            ep,
            &["get", "p/", "--prefix", "--rev=11", "--keys-only"]
        )),
        "p/1\n\np/2\n\n"
    );
}

fn txn(ep: &str, script: &str, extra: &[&str]) -> String {
    let mut args = vec!["txn"];
    args.extend_from_slice(extra);
    ok(etcdctl_stdin(ep, &args, Some(script)))
}

against_both!(txn_from_stdin);
fn txn_from_stdin(ep: &str) {
    assert_eq!(ok(etcdctl(ep, &["put", "foo", "bar"])), "OK\n"); // rev 2

    // Value compare, success branch with a put and a get (the get sees the put).
    assert_eq!(
        txn(
            ep,
            "value(\"foo\") = \"bar\"\n\nput foo won\nget foo\n\nput foo lost\n\n",
            &[]
        ),
        "SUCCESS\n\nOK\n\nfoo\nwon\n"
    ); // rev 3
    // Failing compare runs the failure branch.
    assert_eq!(
        txn(
            ep,
            "value(\"foo\") = \"nope\"\n\nput foo won2\n\nput txnfail yes\nget foo\n\n",
            &[]
        ),
        "FAILURE\n\nOK\n\nfoo\nwon\n"
    ); // rev 4
    assert_eq!(ok(etcdctl(ep, &["get", "txnfail"])), "txnfail\nyes\n");

    // mod/create/version compares (etcdctl sends the numbers as the compare operands).
    let v = json(&txn(
        ep,
        "mod(\"foo\") > \"0\"\ncreate(\"foo\") = \"2\"\nversion(\"foo\") = \"2\"\n\ndel foo\n\nget foo\n\n",
        &["-w", "json"],
    ));
    assert_eq!(fields(&v), ["header", "responses", "succeeded"]);
    assert_eq!(v["header"]["revision"], 5);
    assert_eq!(v["succeeded"], true);
    assert_eq!(
        v["responses"],
        json!([{"Response": {"ResponseDeleteRange": {"header": {"revision": 5}, "deleted": 1}}}])
    );
    // version 0 = the key does not exist.
    let v = json(&txn(
        ep,
        "version(\"foo\") = \"0\"\n\nput foo again\n\n\n",
        &["-w", "json"],
    ));
    assert_eq!(v["succeeded"], true);
    assert_eq!(
        v["responses"],
        json!([{"Response": {"ResponsePut": {"header": {"revision": 6}}}}])
    );
    // A range before a put in the same txn reports the old revision; a delete of nothing has no
    // `deleted` field.
    let v = json(&txn(
        ep,
        "version(\"foo\") = \"1\"\n\nget foo\nput bar 9\ndel nothing\n\n\n",
        &["-w", "json"],
    ));
    assert_eq!(v["header"]["revision"], 7);
    assert_eq!(
        v["responses"],
        json!([
            {"Response": {"ResponseRange": {"header": {"revision": 6}, "kvs": [
                {"key": "Zm9v", "create_revision": 6, "mod_revision": 6, "version": 1, "value": "YWdhaW4="}
            ], "count": 1}}},
            {"Response": {"ResponsePut": {"header": {"revision": 7}}}},
            {"Response": {"ResponseDeleteRange": {"header": {"revision": 7}}}}
        ])
    );
    // create("foo") < 6 fails (created at 6); a read-only branch does not advance the revision.
    assert_eq!(
        txn(
            ep,
            "create(\"foo\") < \"6\"\n\nput foo never\n\nget bar --prefix\n\n",
            &[]
        ),
        "FAILURE\n\nbar\n9\n"
    );
    let v = json(&txn(
        ep,
        "mod(\"bar\") = \"7\"\n\nget bar\n\n\n",
        &["-w", "json"],
    ));
    assert_eq!(v["succeeded"], true);
    assert_eq!(v["header"]["revision"], 7);
    // A value compare on a missing key fails; an empty txn succeeds.
    assert_eq!(
        txn(ep, "value(\"ghost\") != \"x\"\n\n\nput a b\n\n", &[]),
        "FAILURE\n\nOK\n"
    );
    assert_eq!(txn(ep, "\n\n\n", &[]), "SUCCESS\n");
    assert_eq!(ok(etcdctl(ep, &["get", "foo"])), "foo\nagain\n");
}

against_both!(compaction_and_compacted_reads);
fn compaction_and_compacted_reads(ep: &str) {
    for i in 1..=5 {
        // revs 2..=6
        assert_eq!(ok(etcdctl(ep, &["put", "comp", &format!("v{i}")])), "OK\n");
    }
    assert_eq!(
        ok(etcdctl(ep, &["compaction", "3"])),
        "compacted revision 3\n"
    );
    assert_eq!(
        ctl_error(ep, &["get", "comp", "--rev=2"]),
        "Error: etcdserver: mvcc: required revision has been compacted"
    );
    // The compaction revision itself stays readable.
    assert_eq!(ok(etcdctl(ep, &["get", "comp", "--rev=3"])), "comp\nv2\n");
    assert_eq!(
        ctl_error(ep, &["compaction", "3"]),
        "Error: etcdserver: mvcc: required revision has been compacted"
    );
    assert_eq!(
        ctl_error(ep, &["compaction", "100"]),
        "Error: etcdserver: mvcc: required revision is a future revision"
    );
    assert_eq!(
        ok(etcdctl(ep, &["compaction", "--physical", "5"])),
        "compacted revision 5\n"
    );
    assert_eq!(
        ctl_error(ep, &["get", "comp", "--rev=4"]),
        "Error: etcdserver: mvcc: required revision has been compacted"
    );
    assert_eq!(ok(etcdctl(ep, &["get", "comp", "--rev=5"])), "comp\nv4\n");
    let v = json(&ok(etcdctl(ep, &["get", "comp", "-w", "json"])));
    assert_eq!(
        v["kvs"],
        json!([{"key": "Y29tcA==", "create_revision": 2, "mod_revision": 6, "version": 5, "value": "djU="}])
    );
    // Compacting up to the current revision is allowed.
    assert_eq!(
        ok(etcdctl(ep, &["compaction", "6"])),
        "compacted revision 6\n"
    );
    assert_eq!(ok(etcdctl(ep, &["get", "comp"])), "comp\nv5\n");
    let v = json(&ok(etcdctl(ep, &["endpoint", "hashkv", "-w", "json"])));
    assert_eq!(v[0]["HashKV"]["compact_revision"], 6);
}
