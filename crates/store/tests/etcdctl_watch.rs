//! etcdctl conformance of `watch`: live events (PUT, DELETE, txn), --prev-kv, -w json, --rev history
//! replay running into live events, cancellation of a compacted start revision or an empty range,
//! and the DELETE of a lease expiry. `etcdctl watch` runs as a background child that is killed at
//! the end; each body runs against niwa-store and against a real etcd 3.4 (see `against_both!`).
mod common;
mod ctl;

use std::time::{Duration, Instant};

use common::{etcdctl, etcdctl_stdin, ok};
use ctl::{Background, fields, json};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

/// Puts `key` until the running watch (which sees nothing else meanwhile) prints something, so that
/// later writes are certainly seen live. Every sentinel event comes before the events of writes
/// made after this returns.
fn sync(ep: &str, watch: &Background, key: &str) {
    for i in 0..40 {
        assert_eq!(
            ok(etcdctl(ep, &["put", key, &format!("ready-{i}")])),
            "OK\n"
        );
        let deadline = Instant::now() + Duration::from_millis(500);
        while Instant::now() < deadline {
            if !watch.stdout().is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!(
        "the watch never printed a sentinel put:\n{}",
        watch.stdout()
    );
}

/// Strips the sentinel events off the front of a simple-format watch output and returns the rest.
fn after_sentinels<'a>(out: &'a str, expected: &str) -> &'a str {
    assert!(
        out.ends_with(expected),
        "watch output does not end with the expected events.\ngot:\n{out}\nexpected suffix:\n{expected}"
    );
    let head = &out[..out.len() - expected.len()];
    assert!(
        head.lines()
            .all(|l| l == "PUT" || l == "wk/sync" || l.starts_with("ready-")),
        "unexpected events before the expected ones:\n{head}"
    );
    &out[head.len()..]
}

fn writes(ep: &str) {
    assert_eq!(ok(etcdctl(ep, &["put", "wk/a", "1"])), "OK\n");
    assert_eq!(ok(etcdctl(ep, &["put", "wk/a", "2"])), "OK\n");
    assert_eq!(ok(etcdctl(ep, &["del", "wk/a"])), "1\n");
    assert_eq!(ok(etcdctl(ep, &["put", "other", "x"])), "OK\n");
    assert_eq!(
        ok(etcdctl_stdin(
            ep,
            &["txn"],
            Some("create(\"wk/x\") = \"0\"\n\nput wk/x 1\nput wk/y 2\n\n\n")
        )),
        "SUCCESS\n\nOK\n\nOK\n"
    );
}

against_both!(watch_prefix_live);
fn watch_prefix_live(ep: &str) {
    let mut watch = Background::start(ep, &["watch", "wk/", "--prefix"]);
    sync(ep, &watch, "wk/sync");
    writes(ep);
    let expected = "PUT\nwk/a\n1\nPUT\nwk/a\n2\nDELETE\nwk/a\n\nPUT\nwk/x\n1\nPUT\nwk/y\n2\n";
    watch.wait_for(WAIT, |out| out.ends_with(expected));
    let done = watch.stop();
    after_sentinels(&done.stdout, expected);
    assert_eq!(done.stderr, "");
}

against_both!(watch_prev_kv_live);
fn watch_prev_kv_live(ep: &str) {
    let mut watch = Background::start(ep, &["watch", "wk/", "--prefix", "--prev-kv"]);
    sync(ep, &watch, "wk/sync");
    writes(ep);
    // With --prev-kv etcdctl prints the previous version first, then the event's key and value (a
    // DELETE's value is empty).
    let expected = "PUT\nwk/a\n1\nPUT\nwk/a\n1\nwk/a\n2\nDELETE\nwk/a\n2\nwk/a\n\nPUT\nwk/x\n1\nPUT\nwk/y\n2\n";
    watch.wait_for(WAIT, |out| out.ends_with(expected));
    let done = watch.stop();
    // Sentinel lines with --prev-kv also carry the previous sentinel; only check the suffix.
    assert!(
        done.stdout.ends_with(expected),
        "got:\n{}\nexpected suffix:\n{expected}",
        done.stdout
    );
}

/// The events of every watch response line that are not sentinel puts, plus each line's header.
fn json_events(out: &str) -> Vec<(Value, Vec<Value>)> {
    out.lines()
        .map(|line| {
            let v = json(line);
            assert_eq!(
                fields(&v),
                ["Canceled", "CompactRevision", "Created", "Events", "Header"]
            );
            assert_eq!(
                (&v["Canceled"], &v["Created"], &v["CompactRevision"]),
                (&json!(false), &json!(false), &json!(0))
            );
            let events = v["Events"]
                .as_array()
                .expect("Events")
                .iter()
                .filter(|e| e["kv"]["key"] != "d2svc3luYw==") // wk/sync
                .cloned()
                .collect();
            (v["Header"].clone(), events)
        })
        .collect()
}

against_both!(watch_json_live);
fn watch_json_live(ep: &str) {
    let mut watch = Background::start(ep, &["watch", "wk/", "--prefix", "-w", "json"]);
    sync(ep, &watch, "wk/sync");
    let base = ctl::revision(ep);
    writes(ep);
    watch.wait_for(WAIT, |out| out.contains("d2sveQ==")); // wk/y
    let done = watch.stop();
    let responses = json_events(&done.stdout);
    let mut events = Vec::new();
    for (header, evs) in responses {
        assert_eq!(
            fields(&header),
            ["cluster_id", "member_id", "raft_term", "revision"]
        );
        // A live response carries the revision of its events.
        if let Some(last) = evs.last() {
            assert_eq!(header["revision"], last["kv"]["mod_revision"]);
        }
        events.extend(evs);
    }
    let (r1, r2, r3, r5) = (base + 1, base + 2, base + 3, base + 5);
    assert_eq!(
        Value::Array(events),
        json!([
            {"kv": {"key": "d2svYQ==", "create_revision": r1, "mod_revision": r1, "version": 1, "value": "MQ=="}},
            {"kv": {"key": "d2svYQ==", "create_revision": r1, "mod_revision": r2, "version": 2, "value": "Mg=="}},
            {"type": 1, "kv": {"key": "d2svYQ==", "mod_revision": r3}},
            {"kv": {"key": "d2sveA==", "create_revision": r5, "mod_revision": r5, "version": 1, "value": "MQ=="}},
            {"kv": {"key": "d2sveQ==", "create_revision": r5, "mod_revision": r5, "version": 1, "value": "Mg=="}}
        ])
    );
}

against_both!(watch_rev_replays_history_then_goes_live);
fn watch_rev_replays_history_then_goes_live(ep: &str) {
    assert_eq!(ok(etcdctl(ep, &["put", "wk/a", "1"])), "OK\n"); // 2
    assert_eq!(ok(etcdctl(ep, &["put", "wk/a", "2"])), "OK\n"); // 3
    assert_eq!(ok(etcdctl(ep, &["put", "unrelated", "x"])), "OK\n"); // 4
    assert_eq!(ok(etcdctl(ep, &["del", "wk/a"])), "1\n"); // 5

    // Past events come batched in one response whose header is the current revision.
    let mut watch = Background::start(ep, &["watch", "wk/a", "--rev=2", "-w", "json"]);
    let out = watch.wait_for(WAIT, |out| out.ends_with('\n'));
    drop(watch);
    let v = json(&out);
    assert_eq!(v["Header"]["revision"], 5);
    assert_eq!(
        v["Events"],
        json!([
            {"kv": {"key": "d2svYQ==", "create_revision": 2, "mod_revision": 2, "version": 1, "value": "MQ=="}},
            {"kv": {"key": "d2svYQ==", "create_revision": 2, "mod_revision": 3, "version": 2, "value": "Mg=="}},
            {"type": 1, "kv": {"key": "d2svYQ==", "mod_revision": 5}}
        ])
    );

    let mut watch = Background::start(ep, &["watch", "wk/a", "--rev=3", "--prev-kv"]);
    let replay = "PUT\nwk/a\n1\nwk/a\n2\nDELETE\nwk/a\n2\nwk/a\n\n";
    watch.wait_for(WAIT, |out| out == replay);
    // Writes after the replay arrive exactly once, after it.
    assert_eq!(ok(etcdctl(ep, &["put", "wk/a", "3"])), "OK\n");
    assert_eq!(ok(etcdctl(ep, &["put", "wk/a", "4"])), "OK\n");
    let full = format!("{replay}PUT\nwk/a\n3\nPUT\nwk/a\n3\nwk/a\n4\n");
    watch.wait_for(WAIT, |out| out.len() >= full.len());
    let done = watch.stop();
    assert_eq!(done.stdout, full);
}

against_both!(watch_from_a_compacted_revision_is_canceled);
fn watch_from_a_compacted_revision_is_canceled(ep: &str) {
    for v in ["1", "2", "3"] {
        assert_eq!(ok(etcdctl(ep, &["put", "wc", v])), "OK\n"); // 2, 3, 4
    }
    assert_eq!(
        ok(etcdctl(ep, &["compaction", "3"])),
        "compacted revision 3\n"
    );

    let done = Background::start(ep, &["watch", "wc", "--rev=2"]).wait_exit(WAIT);
    assert_eq!(done.status.and_then(|s| s.code()), Some(5));
    assert_eq!(done.stdout, "");
    assert_eq!(
        done.stderr,
        "watch was canceled (etcdserver: mvcc: required revision has been compacted)\n\
         Error: watch is canceled by the server\n"
    );

    let done = Background::start(ep, &["watch", "wc", "--rev=1", "-w", "json"]).wait_exit(WAIT);
    assert_eq!(done.status.and_then(|s| s.code()), Some(5));
    let v = json(&done.stdout);
    // etcd 3.4 sends this cancel with no revision in the header.
    assert_eq!(
        fields(&v["Header"]),
        ["cluster_id", "member_id", "raft_term"]
    );
    assert_eq!(
        (
            &v["Events"],
            &v["CompactRevision"],
            &v["Canceled"],
            &v["Created"]
        ),
        (&json!([]), &json!(3), &json!(true), &json!(false))
    );

    // The compaction revision itself can still be watched from.
    let mut watch = Background::start(ep, &["watch", "wc", "--rev=3"]);
    watch.wait_for(WAIT, |out| out == "PUT\nwc\n2\nPUT\nwc\n3\n");
    drop(watch);
    assert_eq!(ok(etcdctl(ep, &["get", "wc"])), "wc\n3\n");
}

against_both!(watch_of_an_empty_range_is_refused);
fn watch_of_an_empty_range_is_refused(ep: &str) {
    let done = Background::start(ep, &["watch", "b", "a"]).wait_exit(WAIT);
    assert_eq!(done.status.and_then(|s| s.code()), Some(5));
    assert_eq!(done.stdout, "");
    assert_eq!(
        done.stderr,
        "watch was canceled (mvcc: watcher range is empty)\nError: watch is canceled by the server\n"
    );
    // A prefix watch of the same key is fine.
    let watch = Background::start(ep, &["watch", "b", "--prefix"]);
    sync(ep, &watch, "b");
    drop(watch);
}

against_both!(watch_sees_a_lease_expiry_as_delete);
fn watch_sees_a_lease_expiry_as_delete(ep: &str) {
    let v = json(&ok(etcdctl(ep, &["lease", "grant", "1", "-w", "json"])));
    let id = format!("{:x}", v["ID"].as_i64().expect("ID"));
    assert_eq!(
        ok(etcdctl(ep, &["put", "eph", "v", &format!("--lease={id}")])),
        "OK\n"
    ); // 2
    let mut watch = Background::start(ep, &["watch", "eph", "--rev=2", "--prev-kv"]);
    let expected = "PUT\neph\nv\nDELETE\neph\nv\neph\n\n";
    watch.wait_for(WAIT, |out| out == expected);
    drop(watch);
    assert_eq!(ctl::revision(ep), 3);
}
