//! Compaction across restarts (graceful and `kill -9`): kept, and its disk space reclaimed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use etcd_client::{Client, CompactionOptions, GetOptions};

use crate::client::{connect, current_revision, replay};
use crate::common::{Store, data_dir_size};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_survives_restart_and_reclaims_space() {
    let mut store = Store::start();
    let mut c = connect(&store).await;
    // Many overwrites of a few keys with large values.
    let value = "x".repeat(2048);
    let mut last: HashMap<String, String> = HashMap::new();
    for i in 0..1500 {
        let key = format!("big/{}", i % 10);
        let v = format!("{i}-{value}");
        if let Err(e) = c.put(key.as_str(), v.as_str(), None).await {
            panic!("put: {e}");
        }
        last.insert(key, v);
    }
    let before = data_dir_size(&store.dir);
    let current = current_revision(&mut c).await;
    assert!(before > 1500 * 2048, "data dir only {before} bytes");

    let compact_at = current - 5;
    if let Err(e) = c
        .compact(compact_at, Some(CompactionOptions::new().with_physical()))
        .await
    {
        panic!("compact: {e}");
    }
    // The snapshot and segment cleanup run in the background: poll for the space to come back.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = data_dir_size(&store.dir);
    while after * 4 > before {
        assert!(
            Instant::now() < deadline,
            "disk usage {before} -> {after} bytes after compacting 1500 revisions of 10 keys"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = data_dir_size(&store.dir);
    }

    let check = |store: &Store| {
        let store_endpoint = store.endpoint();
        let last = last.clone();
        async move {
            let endpoint = format!("http://{store_endpoint}");
            let mut c = match Client::connect([endpoint.as_str()], None).await {
                Ok(c) => c,
                Err(e) => panic!("connect: {e}"),
            };
            assert_eq!(
                current_revision(&mut c).await,
                current,
                "revision after restart"
            );
            // Latest values intact.
            for (key, v) in &last {
                let got = match c.get(key.as_str(), None).await {
                    Ok(r) => r.kvs().first().map(|kv| kv.value().to_vec()),
                    Err(e) => panic!("get {key}: {e}"),
                };
                assert_eq!(got.as_deref(), Some(v.as_bytes()), "value of {key}");
            }
            // The compaction revision was kept: older revisions are gone, it itself is readable.
            match c
                .get(
                    "big/0",
                    Some(GetOptions::new().with_revision(compact_at - 1)),
                )
                .await
            {
                Err(etcd_client::Error::GRpcStatus(s)) => {
                    assert_eq!(s.code(), tonic::Code::OutOfRange);
                    assert_eq!(
                        s.message(),
                        "etcdserver: mvcc: required revision has been compacted"
                    );
                }
                other => panic!("range below the compaction revision: {other:?}"),
            }
            if let Err(e) = c
                .get("big/0", Some(GetOptions::new().with_revision(compact_at)))
                .await
            {
                panic!("range at the compaction revision: {e}");
            }
            match c.hash_kv(0).await {
                Ok(h) => assert_eq!(h.compact_version(), compact_at),
                Err(e) => panic!("hashkv: {e}"),
            }
            // History after the compaction revision is still watchable.
            let events = replay(&mut c, compact_at, current).await;
            assert_eq!(events.len() as i64, current - compact_at + 1);
        }
    };
    check(&store).await;

    // Graceful stop, then kill -9: both keep data and compaction.
    store.stop();
    store.restart();
    check(&store).await;
    store.kill9();
    store.restart();
    check(&store).await;
    assert!(
        data_dir_size(&store.dir) * 4 <= before,
        "disk usage grew back after restarts"
    );

    // Compact again and crash right away, before the background snapshot can finish.
    let mut c = connect(&store).await;
    if let Err(e) = c.compact(current, None).await {
        panic!("second compact: {e}");
    }
    store.kill9();
    store.restart();
    let mut c = connect(&store).await;
    match c.hash_kv(0).await {
        Ok(h) => assert_eq!(h.compact_version(), current, "second compaction lost"),
        Err(e) => panic!("hashkv: {e}"),
    }
    for (key, v) in &last {
        let got = match c.get(key.as_str(), None).await {
            Ok(r) => r.kvs().first().map(|kv| kv.value().to_vec()),
            Err(e) => panic!("get {key}: {e}"),
        };
        assert_eq!(got.as_deref(), Some(v.as_bytes()), "value of {key}");
    }
}
