//! A watcher that stops reading must not hold up writers or other watchers, and once it reads
//! again it must get every event exactly once, in order (the hub's overflow path: a full stream
//! queue switches the stream to catching up from history; `watch/hub.rs`, `watch/stream.rs`).
mod common;

use std::time::Duration;

use common::Store;
use etcd_client::{Client, WatchOptions, WatchStream};

/// Enough event bytes to fill the slow stream's HTTP/2 window (2 MiB by default in hyper's client),
/// the server's response queue and the hub's queue several times over.
const PUTS: usize = 2000;
const VALUE_BYTES: usize = 4096;
const PREFIX: &str = "/slow/";

async fn watch_prefix(client: &mut Client) -> WatchStream {
    let mut stream = client
        .watch(PREFIX, Some(WatchOptions::new().with_prefix()))
        .await
        .expect("watch");
    let created = stream.message().await.expect("created response");
    assert!(
        created.is_some_and(|r| r.created()),
        "watch was not created"
    );
    stream
}

/// Reads `count` put events and returns their (key, mod revision) in the order received.
async fn read_events(stream: &mut WatchStream, count: usize) -> Vec<(String, i64)> {
    let mut seen = Vec::with_capacity(count);
    while seen.len() < count {
        let resp = stream
            .message()
            .await
            .expect("watch response")
            .expect("watch stream ended early");
        assert!(!resp.canceled(), "watch canceled: {}", resp.cancel_reason());
        for ev in resp.events() {
            let kv = ev.kv().expect("event without kv");
            seen.push((
                kv.key_str().expect("utf-8 key").to_string(),
                kv.mod_revision(),
            ));
        }
    }
    seen
}

fn assert_complete(who: &str, events: &[(String, i64)]) {
    assert_eq!(events.len(), PUTS, "{who}: wrong number of events");
    for (i, (key, rev)) in events.iter().enumerate() {
        assert_eq!(
            key,
            &format!("{PREFIX}{i:05}"),
            "{who}: event {i} out of order"
        );
        if i > 0 {
            assert_eq!(
                *rev,
                events[i - 1].1 + 1,
                "{who}: revisions not consecutive at {i}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_watcher_holds_up_nobody_and_misses_nothing() {
    let store = Store::start();
    let endpoint = format!("http://{}", store.endpoint());
    // Own connections: a stream nobody reads also holds its connection's HTTP/2 window.
    let connect = || Client::connect([endpoint.clone()], None);
    let (mut slow_client, mut live_client, mut writer) = (
        connect().await.expect("connect"),
        connect().await.expect("connect"),
        connect().await.expect("connect"),
    );
    let mut stalled = watch_prefix(&mut slow_client).await;
    let mut live = watch_prefix(&mut live_client).await;
    let live_reader = tokio::spawn(async move { read_events(&mut live, PUTS).await });

    let value = vec![b'v'; VALUE_BYTES];
    let writes = async {
        for i in 0..PUTS {
            writer
                .put(format!("{PREFIX}{i:05}"), value.clone(), None)
                .await
                .expect("put");
        }
    };
    tokio::time::timeout(Duration::from_secs(60), writes)
        .await
        .expect("writes were held up by a watcher that does not read");
    let live_events = tokio::time::timeout(Duration::from_secs(30), live_reader)
        .await
        .expect("the reading watcher was held up by the one that does not")
        .expect("live reader");
    assert_complete("reading watcher", &live_events);

    let overflows = store.metric("niwa_store_watch_stream_overflows_total");
    assert!(
        overflows >= 1.0,
        "the stalled stream never overflowed its queue, so this test did not exercise catch-up"
    );

    let stalled_events =
        tokio::time::timeout(Duration::from_secs(30), read_events(&mut stalled, PUTS))
            .await
            .expect("the stalled watcher did not catch up");
    assert_complete("stalled watcher", &stalled_events);
}
