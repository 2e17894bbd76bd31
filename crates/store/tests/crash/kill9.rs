//! `kill -9` under concurrent write load, once and repeatedly.

use crate::client::{Ack, connect, current_revision};
use crate::common::Store;
use crate::load::{Load, Watcher};
use crate::verify::verify;

/// One crash under load: start writers and a watcher, kill -9 after `min_acks` acknowledged
/// writes, restart, verify. Returns the acknowledged writes of this round.
async fn crash_round(store: &mut Store, round: usize, min_acks: usize, all_acks: &mut Vec<Ack>) {
    let mut c = connect(store).await;
    let from = current_revision(&mut c).await + 1;
    let watcher = Watcher::start(store, from).await;
    let load = Load::start(store, round, 8, 40).await;
    load.wait_for_acks(min_acks).await;
    store.kill9();
    let acks = load.finish().await;
    let seen = watcher.finish().await;
    assert!(acks.len() >= min_acks);
    let acked = acks.len();
    all_acks.extend(acks);
    store.restart();
    let current = verify(store, all_acks, &seen).await;
    eprintln!(
        "round {round}: {acked} writes acknowledged, the watcher saw {} events, recovered revision {current}",
        seen.len()
    );

    // New writes continue right after the recovered revision: no revision is handed out twice.
    let mut c = connect(store).await;
    let resp = match c.put(format!("r{round}/after"), "x", None).await {
        Ok(r) => r,
        Err(e) => panic!("put after restart: {e}"),
    };
    let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
    assert_eq!(rev, current + 1, "the first write after restart");
    all_acks.push(Ack {
        key: format!("r{round}/after"),
        value: "x".into(),
        revision: rev,
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_under_load_keeps_every_acknowledged_write() {
    let mut store = Store::start();
    let mut acks = Vec::new();
    crash_round(&mut store, 0, 1500, &mut acks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_kill9_under_load() {
    let mut store = Store::start();
    let mut acks = Vec::new();
    for round in 0..5 {
        crash_round(&mut store, round, 300, &mut acks).await;
    }
    // A graceful stop after all that loses nothing either.
    store.stop();
    store.restart();
    verify(&store, &acks, &[]).await;
}
