//! etcdctl conformance of the cluster and maintenance commands: endpoint status / health / hashkv,
//! member list, alarm list and defrag, in simple and JSON output. Each body runs against niwa-store
//! and against a real etcd 3.4 (see `against_both!`); values that differ between the two by nature
//! (IDs, sizes, raft indexes, peer URLs) are checked for shape and consistency only.
mod common;
mod ctl;

use common::{Store, etcdctl, ok};
use ctl::{fields, json};
use serde_json::json;

against_both!(endpoint_status);
fn endpoint_status(ep: &str) {
    assert_eq!(ok(etcdctl(ep, &["put", "a", "1"])), "OK\n");
    let v = json(&ok(etcdctl(ep, &["endpoint", "status", "-w", "json"])));
    assert_eq!(v.as_array().map(Vec::len), Some(1));
    assert_eq!(fields(&v[0]), ["Endpoint", "Status"]);
    assert_eq!(v[0]["Endpoint"], ep);
    let s = &v[0]["Status"];
    assert_eq!(
        fields(s),
        [
            "dbSize",
            "dbSizeInUse",
            "header",
            "leader",
            "raftAppliedIndex",
            "raftIndex",
            "raftTerm",
            "version"
        ]
    );
    assert_eq!(s["version"], "3.4.23");
    assert_eq!(s["raftTerm"], 2);
    assert_eq!(s["header"]["revision"], 2);
    assert_eq!(s["header"]["raft_term"], 2);
    // A single member leads itself.
    assert_eq!(s["leader"], s["header"]["member_id"]);
    assert!(s["dbSize"].as_i64().is_some_and(|n| n > 0));
    assert!(s["dbSizeInUse"].as_i64().is_some_and(|n| n > 0));
    assert!(s["raftIndex"].as_u64().is_some_and(|n| n > 0));
    assert_eq!(s["raftAppliedIndex"], s["raftIndex"]);

    // ENDPOINT, ID, VERSION, DB SIZE, IS LEADER, IS LEARNER, RAFT TERM, RAFT INDEX,
    // RAFT APPLIED INDEX, ERRORS
    let out = ok(etcdctl(ep, &["endpoint", "status"]));
    let cols: Vec<&str> = out.trim_end_matches('\n').split(", ").collect();
    let member = s["header"]["member_id"].as_u64().expect("member_id");
    assert_eq!(cols.len(), 10, "{out}");
    assert_eq!(cols[0], ep);
    assert_eq!(cols[1], format!("{member:x}"));
    assert_eq!(cols[2], "3.4.23");
    assert!(
        cols[3].ends_with(" B") || cols[3].ends_with(" kB") || cols[3].ends_with(" MB"),
        "{out}"
    );
    assert_eq!(&cols[4..7], ["true", "false", "2"]);
    assert!(
        cols[7].parse::<u64>().is_ok() && cols[7] == cols[8],
        "{out}"
    );
    assert_eq!(cols[9], "");
}

against_both!(endpoint_health);
fn endpoint_health(ep: &str) {
    // etcdctl 3.4 prints the simple health line on stderr.
    let out = etcdctl(ep, &["endpoint", "health"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    let out = String::from_utf8_lossy(&out.stderr);
    let prefix = format!("{ep} is healthy: successfully committed proposal: took = ");
    assert!(
        out.starts_with(&prefix) && out.ends_with("s\n") && out.lines().count() == 1,
        "{out}"
    );
    let v = json(&ok(etcdctl(ep, &["endpoint", "health", "-w", "json"])));
    assert_eq!(v.as_array().map(Vec::len), Some(1));
    assert_eq!(fields(&v[0]), ["endpoint", "health", "took"]);
    assert_eq!(
        (&v[0]["endpoint"], &v[0]["health"]),
        (&json!(ep), &json!(true))
    );
    assert!(v[0]["took"].as_str().is_some_and(|t| t.ends_with('s')));
}

against_both!(endpoint_hashkv_matches_etcd);
/// The hash is etcd's (CRC-32C over the revision keys and the encoded key-values), so the same
/// history gives the same number on niwa and etcd; the constants were printed by etcd 3.4.23.
fn endpoint_hashkv_matches_etcd(ep: &str) {
    let hash = |ep: &str| -> (serde_json::Value, String) {
        let v = json(&ok(etcdctl(ep, &["endpoint", "hashkv", "-w", "json"])));
        assert_eq!(v.as_array().map(Vec::len), Some(1));
        assert_eq!(fields(&v[0]), ["Endpoint", "HashKV"]);
        assert_eq!(v[0]["Endpoint"], ep);
        (
            v[0]["HashKV"].clone(),
            ok(etcdctl(ep, &["endpoint", "hashkv"])),
        )
    };
    let (v, text) = hash(ep);
    assert_eq!(v["hash"], 1084519789u32);
    assert_eq!(v["compact_revision"], -1, "nothing compacted yet");
    assert_eq!(text, format!("{ep}, 1084519789\n"));

    assert_eq!(ok(etcdctl(ep, &["put", "a", "1"])), "OK\n");
    assert_eq!(ok(etcdctl(ep, &["put", "b", "2"])), "OK\n");
    assert_eq!(ok(etcdctl(ep, &["del", "a"])), "1\n");
    let (v, text) = hash(ep);
    assert_eq!(v["hash"], 1562576432u32);
    assert_eq!(v["header"]["revision"], 4);
    assert_eq!(text, format!("{ep}, 1562576432\n"));

    assert_eq!(
        ok(etcdctl(ep, &["compaction", "3"])),
        "compacted revision 3\n"
    );
    let (v, _) = hash(ep);
    assert_eq!(fields(&v), ["compact_revision", "hash", "header"]);
    assert_eq!(
        (&v["hash"], &v["compact_revision"]),
        (&json!(776148148u32), &json!(3))
    );
}

against_both!(member_list);
fn member_list(ep: &str) {
    let v = json(&ok(etcdctl(ep, &["member", "list", "-w", "json"])));
    assert_eq!(fields(&v), ["header", "members"]);
    // etcd leaves the revision out of the MemberList header.
    assert_eq!(
        fields(&v["header"]),
        ["cluster_id", "member_id", "raft_term"]
    );
    let members = v["members"].as_array().expect("members");
    assert_eq!(members.len(), 1);
    let m = &members[0];
    assert_eq!(fields(m), ["ID", "clientURLs", "name", "peerURLs"]);
    assert_eq!(m["ID"], v["header"]["member_id"]);
    assert_eq!(m["name"], "default");
    assert_eq!(m["clientURLs"], json!([format!("http://{ep}")]));
    let peers = m["peerURLs"].as_array().expect("peerURLs");
    assert_eq!(peers.len(), 1);
    let peer = peers[0].as_str().expect("peer URL");
    assert!(peer.starts_with("http://"), "{peer}");

    let id = m["ID"].as_u64().expect("ID");
    assert_eq!(
        ok(etcdctl(ep, &["member", "list"])),
        format!("{id:x}, started, default, {peer}, http://{ep}, false\n")
    );
}

against_both!(alarm_list_and_defrag);
fn alarm_list_and_defrag(ep: &str) {
    assert_eq!(ok(etcdctl(ep, &["alarm", "list"])), "");
    // The response is completely empty: not even a header.
    assert_eq!(ok(etcdctl(ep, &["alarm", "list", "-w", "json"])), "{}\n");

    for i in 0..20 {
        assert_eq!(
            ok(etcdctl(
                ep,
                &["put", &format!("k{}", i % 4), &i.to_string()]
            )),
            "OK\n"
        );
    }
    assert_eq!(
        ok(etcdctl(ep, &["compaction", "15"])),
        "compacted revision 15\n"
    );
    assert_eq!(
        ok(etcdctl(ep, &["defrag"])),
        format!("Finished defragmenting etcd member[{ep}]\n")
    );
    assert_eq!(
        ok(etcdctl(ep, &["get", "k", "--prefix"])),
        "k0\n16\nk1\n17\nk2\n18\nk3\n19\n"
    );
    assert_eq!(
        ok(etcdctl(
            ep,
            &["get", "k3", "--rev=17", "--print-value-only"]
        )),
        "15\n"
    );
    assert_eq!(ok(etcdctl(ep, &["put", "after", "defrag"])), "OK\n");
    assert_eq!(ctl::revision(ep), 22);
}

/// niwa only: defrag rewrites the snapshot; a restart afterwards recovers the same state.
#[test]
fn defrag_then_restart_keeps_history() {
    let mut store = Store::start();
    let ep = store.endpoint();
    for i in 0..10 {
        assert_eq!(
            ok(etcdctl(
                &ep,
                &["put", &format!("k{}", i % 3), &i.to_string()]
            )),
            "OK\n"
        );
    }
    assert_eq!(
        ok(etcdctl(&ep, &["compaction", "6"])),
        "compacted revision 6\n"
    );
    assert_eq!(
        ok(etcdctl(&ep, &["defrag"])),
        format!("Finished defragmenting etcd member[{ep}]\n")
    );
    let before = ok(etcdctl(&ep, &["endpoint", "hashkv"]));
    store.stop();
    store.restart();
    assert_eq!(ok(etcdctl(&ep, &["endpoint", "hashkv"])), before);
    assert_eq!(
        ok(etcdctl(&ep, &["get", "k", "--prefix"])),
        "k0\n9\nk1\n7\nk2\n8\n"
    );
    assert_eq!(
        ok(etcdctl(
            &ep,
            &["get", "k0", "--rev=6", "--print-value-only"]
        )),
        "3\n"
    );
    assert_eq!(
        ctl::ctl_error(&ep, &["get", "k0", "--rev=5"]),
        "Error: etcdserver: mvcc: required revision has been compacted"
    );
}
