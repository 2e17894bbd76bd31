//! A watch stream whose client has closed its sending side keeps delivering events, as etcd 3.4's
//! does (etcd "v3rpc: don't close watcher if client closes send": grpc-gateway closes its send
//! side and still reads). Run against niwa-store and a real etcd 3.4 (`against_both!`).
mod common;
mod ctl;

use std::time::Duration;

use etcd_client::{Client, WatchOptions, WatchResponseStream};

/// A client with a watch on `/half/`, created, whose request side the client has then closed.
async fn half_closed_watch(endpoint: &str) -> (Client, WatchResponseStream) {
    let mut client = Client::connect([format!("http://{endpoint}")], None)
        .await
        .expect("connect");
    let stream = client
        .watch("/half/", Some(WatchOptions::new().with_prefix()))
        .await
        .expect("watch");
    let (sender, mut responses) = stream.split();
    let created = responses.message().await.expect("created response");
    assert!(
        created.is_some_and(|r| r.created()),
        "watch was not created"
    );
    // Dropping the sender ends the request stream: the client's half-close.
    drop(sender);
    // Give the server time to see the end of the request stream before anything else happens.
    tokio::time::sleep(Duration::from_millis(200)).await;
    (client, responses)
}

against_both!(async events_still_flow_after_the_client_closes_its_side);
async fn events_still_flow_after_the_client_closes_its_side(endpoint: &str) {
    let (mut client, mut responses) = half_closed_watch(endpoint).await;
    client.put("/half/a", "1", None).await.expect("put");
    let resp = tokio::time::timeout(Duration::from_secs(10), responses.message())
        .await
        .expect("no event within 10 s of the put")
        .expect("watch response")
        .expect("the server ended the watch stream after the client's half-close");
    let keys: Vec<&[u8]> = resp
        .events()
        .iter()
        .filter_map(|e| e.kv().map(|kv| kv.key()))
        .collect();
    assert_eq!(keys, vec![b"/half/a".as_slice()]);
}

/// After the half-close the stream still ends when the client drops it: the store does not keep
/// a stream (and its hub slot) for a client that went away.
#[tokio::test]
async fn a_half_closed_stream_ends_when_the_client_drops_it() {
    let store = common::Store::start();
    let (_client, responses) = half_closed_watch(&store.endpoint()).await;
    let open = || store.metric("etcd_debugging_mvcc_watch_stream_total");
    assert_eq!(open(), 1.0, "the half-closed stream should stay open");
    drop(responses);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while open() != 0.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream was not closed within 10 s of the client dropping it"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
