//! What runs against the store while it is killed: concurrent writers recording every
//! acknowledged write, and a watcher recording every event it sees.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use etcd_client::proto::PbEvent;
use parking_lot::Mutex;

use crate::client::{Ack, connect, watch_all};
use crate::common::Store;

/// Concurrent writers putting keys until told to stop or until the store goes away.
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<Ack>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// `writers` tasks, each with its own connection, overwriting `keys_per_writer` keys of its own.
    pub(crate) async fn start(
        store: &Store,
        round: usize,
        writers: usize,
        keys_per_writer: usize,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for w in 0..writers {
            let mut client = connect(store).await;
            let stop = stop.clone();
            let acks = acks.clone();
            tasks.push(tokio::spawn(async move {
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("r{round}/w{w}/{}", i % keys_per_writer);
                    let value = format!("r{round}-w{w}-{i}");
                    let put = client.put(key.as_str(), value.as_str(), None);
                    match tokio::time::timeout(Duration::from_secs(10), put).await {
                        Ok(Ok(resp)) => {
                            let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
                            acks.lock().push(Ack {
                                key,
                                value,
                                revision,
                            });
                        }
                        // The store died (or hung): this write is not acknowledged; stop.
                        _ => break,
                    }
                    i += 1;
                }
            }));
        }
        Load { stop, acks, tasks }
    }

    fn acked(&self) -> usize {
        self.acks.lock().len()
    }

    /// Waits until at least `n` writes were acknowledged.
    pub(crate) async fn wait_for_acks(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.acked() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} writes acknowledged within 60 s",
                self.acked()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the writers (they also stop by themselves once the store is gone) and returns every
    /// acknowledged write.
    pub(crate) async fn finish(self) -> Vec<Ack> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            if tokio::time::timeout(Duration::from_secs(20), t)
                .await
                .is_err()
            {
                panic!("a writer did not stop within 20 s");
            }
        }
        self.acks.lock().clone()
    }
}

/// A watch on all keys running in the background, recording every event it sees until the stream
/// breaks (the store was killed).
pub(crate) struct Watcher {
    events: Arc<Mutex<Vec<PbEvent>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    pub(crate) async fn start(store: &Store, from: i64) -> Watcher {
        let mut client = connect(store).await;
        let mut stream = watch_all(&mut client, from).await;
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let task = tokio::spawn(async move {
            let _client = client;
            while let Ok(Some(resp)) = stream.message().await {
                if resp.canceled() {
                    break;
                }
                sink.lock().extend(resp.0.events);
            }
        });
        Watcher { events, task }
    }

    /// Waits for the stream to end (after the crash) and returns what it saw.
    pub(crate) async fn finish(self) -> Vec<PbEvent> {
        if tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .is_err()
        {
            panic!("the watch stream did not end within 20 s of the crash");
        }
        self.events.lock().clone()
    }
}
