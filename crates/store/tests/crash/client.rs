//! Talking to the store under test: connecting, its current revision, acknowledged writes, and
//! replaying the history through a watch.

use std::time::{Duration, Instant};

use etcd_client::proto::PbEvent;
use etcd_client::{Client, GetOptions, WatchOptions, WatchStream};

use crate::common::Store;

/// A write the store acknowledged: it must survive any crash at exactly this revision.
#[derive(Debug, Clone)]
pub(crate) struct Ack {
    pub(crate) key: String,
    pub(crate) value: String,
    pub(crate) revision: i64,
}

pub(crate) async fn connect(store: &Store) -> Client {
    let endpoint = format!("http://{}", store.endpoint());
    match Client::connect([endpoint.as_str()], None).await {
        Ok(c) => c,
        Err(e) => panic!("connecting to {endpoint}: {e}"),
    }
}

/// The store's current revision (a linearizable count-only range over all keys). Retries for a
/// while, since right after a restart the store may still be replaying its log.
pub(crate) async fn current_revision(c: &mut Client) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let opts = GetOptions::new().with_all_keys().with_count_only();
        match c.get("", Some(opts)).await {
            Ok(r) => return r.header().map(|h| h.revision()).unwrap_or(0),
            Err(e) if Instant::now() > deadline => panic!("store does not answer: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// `n` sequential puts cycling over 17 keys under `prefix`, each acknowledged.
pub(crate) async fn put_many(store: &Store, prefix: &str, n: usize) -> Vec<Ack> {
    let mut c = connect(store).await;
    let mut acks = Vec::new();
    for i in 0..n {
        let key = format!("{prefix}/{}", i % 17);
        let value = format!("{prefix}-{i}");
        let resp = match c.put(key.as_str(), value.as_str(), None).await {
            Ok(r) => r,
            Err(e) => panic!("put {key}: {e}"),
        };
        acks.push(Ack {
            key,
            value,
            revision: resp.header().map(|h| h.revision()).unwrap_or(0),
        });
    }
    acks
}

/// The revision an event happened at.
pub(crate) fn event_rev(e: &PbEvent) -> i64 {
    e.kv.as_ref().map(|kv| kv.mod_revision).unwrap_or(0)
}

/// A watch on all keys from revision `from`.
pub(crate) async fn watch_all(c: &mut Client, from: i64) -> WatchStream {
    let opts = WatchOptions::new()
        .with_all_keys()
        .with_start_revision(from);
    match c.watch("", Some(opts)).await {
        Ok(s) => s,
        Err(e) => panic!("watch: {e}"),
    }
}

/// Every event from `from` up to revision `to` on all keys.
pub(crate) async fn replay(c: &mut Client, from: i64, to: i64) -> Vec<PbEvent> {
    let mut stream = watch_all(c, from).await;
    let mut events: Vec<PbEvent> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while from <= to && events.last().map(event_rev).unwrap_or(0) < to {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.message()).await {
            Ok(Ok(Some(resp))) => {
                assert!(
                    !resp.canceled(),
                    "replay from {from} was canceled: {:?}",
                    resp.0
                );
                events.extend(resp.0.events);
            }
            Ok(Ok(None)) => panic!("watch stream ended during replay"),
            Ok(Err(e)) => panic!("watch failed during replay: {e}"),
            Err(_) => panic!(
                "replay from {from} to {to} stalled at revision {:?} after {} events",
                events.last().map(event_rev),
                events.len()
            ),
        }
    }
    events
}
