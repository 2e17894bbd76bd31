//! etcdctl conformance of the lease commands: grant, keep-alive (--once and streaming),
//! timetolive (--keys), list, revoke, and keys disappearing when a lease runs out. Each body runs
//! against niwa-store and against a real etcd 3.4 (see `against_both!`).
mod common;
mod ctl;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{etcdctl, ok};
use ctl::{Background, ctl_error, eventually, fields, json};
use serde_json::json;

/// Grants a lease with etcdctl and returns its ID (checking the printed line).
fn grant(ep: &str, ttl: i64, granted: i64) -> i64 {
    let out = ok(etcdctl(ep, &["lease", "grant", &ttl.to_string()]));
    let hex = out
        .strip_prefix("lease ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("unexpected grant output: {out}"));
    assert_eq!(hex.len(), 16, "lease IDs are printed as %016x: {out}");
    assert_eq!(out, format!("lease {hex} granted with TTL({granted}s)\n"));
    u64::from_str_radix(hex, 16).expect("hex lease ID") as i64
}

fn hex(id: i64) -> String {
    format!("{id:016x}")
}

/// The `remaining(Ns)` of a `lease timetolive` line.
fn remaining(line: &str) -> i64 {
    line.split("remaining(")
        .nth(1)
        .and_then(|r| r.split("s)").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no remaining(..) in {line}"))
}

/// The keys of `attached keys([a b])`, sorted.
fn attached_keys(line: &str) -> Vec<String> {
    let inner = line
        .split("attached keys([")
        .nth(1)
        .and_then(|r| r.split("])").next())
        .unwrap_or_else(|| panic!("no attached keys([..]) in {line}"));
    let mut keys: Vec<String> = inner.split_whitespace().map(str::to_string).collect();
    keys.sort();
    keys
}

against_both!(lease_lifecycle);
fn lease_lifecycle(ep: &str) {
    let id = grant(ep, 600, 600);
    let v = json(&ok(etcdctl(ep, &["lease", "grant", "1", "-w", "json"])));
    assert_eq!(
        fields(&v),
        [
            "Error",
            "ID",
            "TTL",
            "cluster_id",
            "member_id",
            "raft_term",
            "revision"
        ]
    );
    assert_eq!(v["TTL"], 2, "TTLs below the minimum are raised to 2 s");
    assert_eq!(v["Error"], "");
    let short = v["ID"].as_i64().expect("ID");
    assert_ne!(short, id);

    let h = hex(id);
    assert_eq!(
        ok(etcdctl(
            ep,
            &["put", "leased", "v", &format!("--lease={h}")]
        )),
        "OK\n"
    );
    assert_eq!(
        ok(etcdctl(
            ep,
            &["put", "leased2", "w", &format!("--lease={h}")]
        )),
        "OK\n"
    );
    let v = json(&ok(etcdctl(ep, &["get", "leased", "-w", "json"])));
    assert_eq!(v["kvs"][0]["lease"], id);

    // Remaining seconds are truncated, as etcd does: 599 right after a 600 s grant.
    let line = ok(etcdctl(ep, &["lease", "timetolive", &h]));
    let left = remaining(&line);
    assert!((590..600).contains(&left), "remaining {left} in {line}");
    assert_eq!(
        line,
        format!("lease {h} granted with TTL(600s), remaining({left}s)\n")
    );
    // etcd lists a lease's keys in Go map order, which varies from run to run: compare as sets.
    let line = ok(etcdctl(ep, &["lease", "timetolive", &h, "--keys"]));
    let left = remaining(&line);
    let keys = attached_keys(&line);
    assert_eq!(keys, ["leased", "leased2"], "{line}");
    let shown = line.split("attached keys(").nth(1).unwrap_or_default();
    assert_eq!(
        line,
        format!("lease {h} granted with TTL(600s), remaining({left}s), attached keys({shown}")
    );
    let v = json(&ok(etcdctl(
        ep,
        &["lease", "timetolive", &h, "--keys", "-w", "json"],
    )));
    assert_eq!(
        fields(&v),
        [
            "cluster_id",
            "granted-ttl",
            "id",
            "keys",
            "member_id",
            "raft_term",
            "revision",
            "ttl"
        ]
    );
    assert_eq!(v["id"], id);
    assert_eq!(v["granted-ttl"], 600);
    let mut keys: Vec<String> = v["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();
    keys.sort();
    assert_eq!(keys, ["bGVhc2Vk", "bGVhc2VkMg=="]);
    assert_eq!(v["revision"], 3);

    assert_eq!(
        ok(etcdctl(ep, &["lease", "keep-alive", "--once", &h])),
        format!("lease {h} keepalived with TTL(600)\n")
    );
    let v = json(&ok(etcdctl(
        ep,
        &["lease", "keep-alive", "--once", &h, "-w", "json"],
    )));
    assert_eq!(
        fields(&v),
        [
            "ID",
            "TTL",
            "cluster_id",
            "member_id",
            "raft_term",
            "revision"
        ]
    );
    assert_eq!((v["ID"].as_i64(), v["TTL"].as_i64()), (Some(id), Some(600)));

    // Go prints the list in map order, so compare sets.
    let out = ok(etcdctl(ep, &["lease", "list"]));
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("found 2 leases"));
    let listed: BTreeSet<String> = lines.map(str::to_string).collect();
    assert_eq!(listed, BTreeSet::from([h.clone(), hex(short)]));
    let v = json(&ok(etcdctl(ep, &["lease", "list", "-w", "json"])));
    let mut ids: Vec<i64> = v["leases"]
        .as_array()
        .expect("leases")
        .iter()
        .map(|l| l["id"].as_i64().expect("id"))
        .collect();
    ids.sort_unstable();
    let mut want = vec![id, short];
    want.sort_unstable();
    assert_eq!(ids, want);

    // Revoking deletes every attached key in one revision.
    assert_eq!(
        ok(etcdctl(ep, &["lease", "revoke", &h])),
        format!("lease {h} revoked\n")
    );
    assert_eq!(ok(etcdctl(ep, &["get", "leased", "--prefix"])), "");
    assert_eq!(ctl::revision(ep), 4);
    assert_eq!(
        ok(etcdctl(
            ep,
            &["get", "leased", "--prefix", "--rev=3", "--keys-only"]
        )),
        "leased\n\nleased2\n\n"
    );
    assert_eq!(
        ok(etcdctl(ep, &["lease", "timetolive", &h])),
        format!("lease {h} already expired\n")
    );
    let v = json(&ok(etcdctl(ep, &["lease", "timetolive", &h, "-w", "json"])));
    assert_eq!(
        (&v["ttl"], &v["granted-ttl"], &v["keys"]),
        (&json!(-1), &json!(0), &json!(null))
    );
    assert_eq!(
        ctl_error(ep, &["lease", "keep-alive", "--once", &h]),
        "Error: etcdserver: requested lease not found"
    );
    assert_eq!(
        ctl_error(ep, &["lease", "revoke", &h]),
        "Error: failed to revoke lease (etcdserver: requested lease not found)"
    );
    assert_eq!(
        ok(etcdctl(ep, &["lease", "list"])),
        format!("found 1 leases\n{}\n", hex(short))
    );
}

against_both!(short_lease_expires_after_the_minimum_ttl);
fn short_lease_expires_after_the_minimum_ttl(ep: &str) {
    let granted_at = Instant::now();
    let id = grant(ep, 1, 2);
    let h = hex(id);
    assert_eq!(
        ok(etcdctl(
            ep,
            &["put", "ephemeral", "v", &format!("--lease={h}")]
        )),
        "OK\n"
    );
    assert_eq!(ok(etcdctl(ep, &["put", "durable", "v"])), "OK\n");
    eventually(Duration::from_secs(15), "the leased key disappears", || {
        ok(etcdctl(ep, &["get", "ephemeral"])).is_empty()
    });
    // The TTL was raised from 1 s to 2 s, so the key lived at least that long.
    let lived = granted_at.elapsed();
    assert!(
        lived >= Duration::from_millis(1900),
        "expired after {lived:?}"
    );
    // Expiry is a delete at its own revision: the key is still in history before it.
    assert_eq!(ctl::revision(ep), 4);
    assert_eq!(
        ok(etcdctl(ep, &["get", "ephemeral", "--rev=3"])),
        "ephemeral\nv\n"
    );
    assert_eq!(
        ok(etcdctl(ep, &["lease", "timetolive", &h])),
        format!("lease {h} already expired\n")
    );
    assert_eq!(ok(etcdctl(ep, &["get", "durable"])), "durable\nv\n");
}

against_both!(keep_alive_stream_renews_the_lease);
fn keep_alive_stream_renews_the_lease(ep: &str) {
    let granted_at = Instant::now();
    let id = grant(ep, 2, 2);
    let h = hex(id);
    assert_eq!(
        ok(etcdctl(ep, &["put", "kept", "v", &format!("--lease={h}")])),
        "OK\n"
    );
    let mut keeper = Background::start(ep, &["lease", "keep-alive", &h]);
    let line = format!("lease {h} keepalived with TTL(2)\n");
    // etcdctl renews every TTL/3; wait until well past the first TTL.
    keeper.wait_for(Duration::from_secs(20), |out| {
        out.matches(&line).count() >= 4 && granted_at.elapsed() >= Duration::from_millis(2600)
    });
    assert_eq!(ok(etcdctl(ep, &["get", "kept"])), "kept\nv\n");
    let done = keeper.stop();
    assert!(
        done.stdout.lines().all(|l| format!("{l}\n") == line),
        "unexpected keep-alive output:\n{}",
        done.stdout
    );
    eventually(
        Duration::from_secs(15),
        "the key goes once keep-alives stop",
        || ok(etcdctl(ep, &["get", "kept"])).is_empty(),
    );
}
