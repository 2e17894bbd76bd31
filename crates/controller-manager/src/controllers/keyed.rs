//! A work-queue loop over keys, for controllers whose object may be gone when they run (the
//! Endpoints controller must clean up after a deleted Service; the namespace controller works
//! on keys of objects being deleted). [`niwa_client::Controller`] only reconciles objects that
//! are in its cache; this loop hands the key itself to `sync`, which reads the caches.
//!
//! Same guarantees as the Controller: keys are deduplicated, one key is never synced by two
//! workers at once, failures back off per key (client-go's rate limiter), `Ok(Some(d))` syncs
//! again after `d`.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use niwa_client::{ObjectRef, WorkQueue};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Run `workers` workers over the keys `triggers` yields until `shutdown`.
pub async fn run<S, F, Fut, E>(
    name: &'static str,
    queue: WorkQueue<ObjectRef>,
    triggers: S,
    workers: usize,
    shutdown: CancellationToken,
    sync: F,
) where
    S: Stream<Item = ObjectRef> + Send + 'static,
    F: Fn(ObjectRef) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<Duration>, E>> + Send + 'static,
    E: Display + Send + 'static,
{
    let sync = Arc::new(sync);
    let mut tasks = JoinSet::new();
    {
        let queue = queue.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let mut triggers = std::pin::pin!(triggers);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    key = triggers.next() => match key {
                        Some(key) => queue.add(key),
                        None => break,
                    },
                }
            }
        });
    }
    for id in 0..workers.max(1) {
        let (queue, sync) = (queue.clone(), sync.clone());
        tasks.spawn(
            async move {
                while let Some(key) = queue.next().await {
                    // Spawned so that a panic fails this key, not the worker.
                    let outcome = tokio::spawn(sync(key.clone())).await;
                    match outcome {
                        Ok(Ok(again)) => {
                            queue.forget(&key);
                            if let Some(d) = again {
                                queue.add_after(key.clone(), d);
                            }
                        }
                        Ok(Err(err)) => {
                            tracing::warn!(controller = name, object = %key, %err, "sync failed");
                            queue.add_rate_limited(key.clone());
                        }
                        Err(_) => {
                            tracing::error!(controller = name, object = %key, "sync panicked");
                            queue.add_rate_limited(key.clone());
                        }
                    }
                    queue.done(&key);
                }
            }
            .instrument(tracing::debug_span!("worker", controller = name, id)),
        );
    }
    shutdown.cancelled().await;
    queue.shut_down();
    while tasks.join_next().await.is_some() {}
}
