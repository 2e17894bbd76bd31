//! The watch cache: per resource, every object in memory, fed by one store watch, serving lists and
//! fanning events out to every watcher without touching the store (Kubernetes' "cacher").
//!
//! * [`resource::WatchCache`] — one resource's objects, history window and watchers; its feeder.
//! * [`dispatch::Watchers`] — the watchers, indexed by trigger value (pods: `spec.nodeName`).
//! * [`object::CachedObject`] — an object kept encoded, with what selectors need parsed.
//! * [`page`] — paginated lists (limit/continue) at the current or a recent revision.
//! * [`Caches`] — starts a resource's cache on first use and keeps it for the server's lifetime.
//!
//! What goes where: lists (paginated or not, consistent or at an exact revision) and watches from
//! a resourceVersion inside the history window are served here; lists and continue tokens at
//! revisions older than the window, and watches from older revisions, go to the store (see
//! `rest/read.rs`, `rest/watch.rs`).

pub mod dispatch;
pub mod object;
pub mod page;
pub mod resource;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::Stream;
use niwa_api::{ApiError, Reason, ResourceInfo};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

pub use page::{CachePage, PageRequest};
pub use resource::{CacheConfig, Registration, Start, WatchCache};

use crate::rest::WatchEvent;
use crate::storage::Storage;

/// How long a list or watch waits for a just-started cache to finish its initial list.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Every resource's watch cache, started on first use.
pub struct Caches {
    storage: Storage,
    config: CacheConfig,
    shutdown: CancellationToken,
    caches: Mutex<HashMap<(&'static str, &'static str), Arc<WatchCache>>>,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Caches")
    }
}

impl Caches {
    pub fn new(storage: Storage, config: CacheConfig, shutdown: CancellationToken) -> Caches {
        Caches {
            storage,
            config,
            shutdown,
            caches: Mutex::new(HashMap::new()),
        }
    }

    /// The cache of `info` if it is already running and holds a complete list; never starts one
    /// nor waits (for callers that can go to the store instead, like `pods/binding`).
    pub fn peek(&self, info: &'static ResourceInfo) -> Option<Arc<WatchCache>> {
        let cache = self
            .caches
            .lock()
            .get(&(info.group, info.plural))
            .cloned()?;
        (cache.revision() > 0).then_some(cache)
    }

    /// The cache of `info`, started if needed, once it holds a complete list.
    pub async fn get(&self, info: &'static ResourceInfo) -> Result<Arc<WatchCache>, ApiError> {
        let cache = {
            let mut caches = self.caches.lock();
            caches
                .entry((info.group, info.plural))
                .or_insert_with(|| {
                    let cache = WatchCache::new(info, self.config.clone());
                    tokio::spawn(
                        cache
                            .clone()
                            .feed(self.storage.clone(), self.shutdown.clone()),
                    );
                    cache
                })
                .clone()
        };
        if cache.revision() == 0 && !cache.wait_for(1, START_TIMEOUT).await {
            return Err(ApiError::new(
                Reason::ServiceUnavailable,
                format!("the watch cache of {} is not ready yet", info.plural),
            ));
        }
        Ok(cache)
    }
}

/// The events of a cache watcher: what it missed, then live events; a watcher dropped for being
/// too slow ends with a 410 Expired error event, so its client re-lists.
pub fn into_stream(mut reg: Registration) -> impl Stream<Item = WatchEvent> + Send {
    let initial = std::mem::take(&mut reg.initial);
    let live = futures::stream::unfold(Some(reg), |reg| async move {
        let mut reg = reg?;
        match reg.live.recv().await {
            Some(ev) => Some((ev, Some(reg))),
            None if reg.overflowed.load(Ordering::Relaxed) => {
                let err = ApiError::expired(
                    "the watcher fell too far behind the event stream and was ended; re-list and watch again",
                );
                Some((WatchEvent::error(&err), None))
            }
            None => None,
        }
    });
    futures::stream::StreamExt::chain(futures::stream::iter(initial), live)
}
