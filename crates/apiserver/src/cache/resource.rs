//! The watch cache of one resource: every object of the resource in memory, kept current by one
//! store watch, with a window of recent events so that watchers can start from a recent
//! resourceVersion without touching the store.
//!
//! The feeder task ([`WatchCache::feed`]) lists the resource at a revision, then watches from the
//! next one. Every store event updates the objects, is appended to the history window, and is
//! offered to every registered watcher with `try_send`: a watcher whose buffer is full is dropped
//! (it gets a 410 and re-lists) rather than slowing the feeder or anyone else.
//!
//! The offering happens outside the lock of the objects (`state`), under the watchers' own lock,
//! so that lists and gets are not held up while an event goes out to a thousand watchers, and
//! only to the watchers that can see it: watchers are indexed by the value their field selector
//! pins the kind's trigger field to (pods: `spec.nodeName`, see [`super::dispatch`]). Each
//! event's encoding is shared (`Bytes`) by every watcher it goes to. A watcher registers with the
//! revision its initial events cover, and is offered only the changes after it: a change applied
//! before the registration but offered after it is not delivered twice.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_client::EventType;
use niwa_api::ResourceInfo;
use parking_lot::{Mutex, RwLock};
use serde_json::json;
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::dispatch::{Watchers, trigger_field};
use super::object::CachedObject;
use super::page::{self, CachePage, PageRequest};
use crate::rest::{Filter, WatchEvent};
use crate::storage::Storage;

/// Tunables of every resource's cache.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Events kept for watchers that resume from a recent resourceVersion.
    pub history: usize,
    /// Events buffered per watcher; a watcher that falls further behind is ended.
    pub watcher_buffer: usize,
    /// How often a watcher that allows bookmarks gets one.
    pub bookmark_interval: Duration,
    /// How often the feeder asks the store for a progress notification when idle.
    pub progress_interval: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            history: 10_000,
            watcher_buffer: 1_000,
            bookmark_interval: Duration::from_secs(30),
            progress_interval: Duration::from_secs(5),
        }
    }
}

/// One change, as kept in the history window.
#[derive(Debug, Clone)]
pub struct Change {
    pub revision: i64,
    /// The object after the change; for a deletion, its last state at the deletion revision.
    pub object: Arc<CachedObject>,
    pub prev: Option<Arc<CachedObject>>,
    pub deleted: bool,
}

impl Change {
    /// The event `filter` sees (an object entering the selection is ADDED, leaving it DELETED).
    pub fn event_for(&self, filter: &Filter, namespace: Option<&str>) -> Option<WatchEvent> {
        if namespace.is_some_and(|ns| ns != self.object.namespace) {
            return None;
        }
        let was = self.prev.as_ref().is_some_and(|p| p.matches(filter));
        let is = !self.deleted && self.object.matches(filter);
        let kind = match (was, is) {
            (true, true) => "MODIFIED",
            (false, true) => "ADDED",
            (true, false) => "DELETED",
            (false, false) => return None,
        };
        Some(WatchEvent {
            kind,
            object: self.object.json.clone(),
        })
    }
}

/// A registered watcher, as the feeder sees it.
struct Slot {
    filter: Arc<Filter>,
    namespace: Option<String>,
    tx: mpsc::Sender<WatchEvent>,
    overflowed: Arc<AtomicBool>,
    bookmarks: bool,
    last_bookmark: Instant,
    /// The revision the registration's initial events cover: only later changes are offered.
    from: i64,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Arc<CachedObject>>,
    /// Every event up to this revision has been applied.
    revision: i64,
    history: VecDeque<Change>,
    /// Every change with a revision above this one is in `history`.
    window_start: i64,
}

/// What a new watcher gets: the events it missed, and the channel of the ones to come.
pub struct Registration {
    pub initial: Vec<WatchEvent>,
    pub live: mpsc::Receiver<WatchEvent>,
    pub overflowed: Arc<AtomicBool>,
    pub revision: i64,
    id: u64,
    cache: Arc<WatchCache>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.cache.watchers.lock().remove(self.id);
    }
}

pub struct WatchCache {
    pub info: &'static ResourceInfo,
    config: CacheConfig,
    state: RwLock<State>,
    /// Locked after `state` when both are needed (registration), never the other way round.
    watchers: Mutex<Watchers<Slot>>,
    revision_tx: watch::Sender<i64>,
    progress: Notify,
    next_id: AtomicU64,
}

/// Where a watch from a given resourceVersion can be served.
pub enum Start {
    Registered(Registration),
    /// Older than the history window: the caller watches the store directly.
    TooOld,
    /// Newer than the cache after waiting: the caller watches the store directly.
    TooNew,
}

impl WatchCache {
    pub fn new(info: &'static ResourceInfo, config: CacheConfig) -> Arc<WatchCache> {
        Arc::new(WatchCache {
            info,
            config,
            state: RwLock::new(State::default()),
            watchers: Mutex::new(Watchers::default()),
            revision_tx: watch::channel(0).0,
            progress: Notify::new(),
            next_id: AtomicU64::new(1),
        })
    }

    pub fn revision(&self) -> i64 {
        self.state.read().revision
    }

    /// The object under the store key `key`, as the cache has it now.
    pub fn get(&self, key: &str) -> Option<Arc<CachedObject>> {
        self.state.read().objects.get(key).cloned()
    }

    /// Waits until the cache has applied every event up to `revision`; false after `timeout`.
    pub async fn wait_for(&self, revision: i64, timeout: Duration) -> bool {
        let mut rx = self.revision_tx.subscribe();
        if *rx.borrow() >= revision {
            return true;
        }
        // Ask the store to tell us how far the watch is, instead of waiting for the next write.
        self.progress.notify_one();
        tokio::time::timeout(timeout, rx.wait_for(|r| *r >= revision))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// One page of a list at `at` (the current revision when `None`); `None` when `at` is outside
    /// the history window (or ahead of the cache), so that only the store can answer.
    pub fn list_page(&self, at: Option<i64>, req: &PageRequest<'_>) -> Option<CachePage> {
        let state = self.state.read();
        let at = at.unwrap_or(state.revision);
        if at > state.revision || at < state.window_start {
            return None;
        }
        Some(page::page(
            &state.objects,
            &state.history,
            state.revision,
            at,
            req,
        ))
    }

    /// Registers a watcher from `from` (0: the current state as ADDED events first).
    pub async fn register(
        self: &Arc<Self>,
        from: i64,
        namespace: Option<String>,
        filter: Arc<Filter>,
        bookmarks: bool,
    ) -> Start {
        if from > self.revision() && !self.wait_for(from, Duration::from_secs(3)).await {
            return Start::TooNew;
        }
        // A read lock: the feeder applies no change meanwhile, so `initial` and `from` agree.
        let state = self.state.read();
        if from != 0 && from < state.window_start {
            return Start::TooOld;
        }
        let initial = if from == 0 {
            let prefix = self.info.store_namespace_prefix(namespace.as_deref());
            state
                .objects
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .filter(|(_, o)| o.matches(&filter))
                .map(|(_, o)| WatchEvent {
                    kind: "ADDED",
                    object: o.json.clone(),
                })
                .collect()
        } else {
            state
                .history
                .iter()
                .filter(|c| c.revision > from)
                .filter_map(|c| c.event_for(&filter, namespace.as_deref()))
                .collect()
        };
        let (tx, live) = mpsc::channel(self.config.watcher_buffer);
        let overflowed = Arc::new(AtomicBool::new(false));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let trigger = trigger_field(self.info.kind)
            .and_then(|f| filter.fields.exact(f))
            .map(str::to_string);
        self.watchers.lock().insert(
            id,
            trigger,
            Slot {
                filter,
                namespace,
                tx,
                overflowed: overflowed.clone(),
                bookmarks,
                last_bookmark: Instant::now(),
                from: state.revision,
            },
        );
        Start::Registered(Registration {
            initial,
            live,
            overflowed,
            revision: state.revision,
            id,
            cache: self.clone(),
        })
    }

    /// Keeps the cache current until `shutdown`: list, watch, and on any watch failure re-list.
    pub async fn feed(self: Arc<Self>, storage: Storage, shutdown: CancellationToken) {
        loop {
            if let Err(err) = self.feed_once(&storage, &shutdown).await {
                tracing::warn!(resource = self.info.plural, %err, "watch cache feed failed; re-listing");
            }
            // Watchers cannot be told which events they missed across a re-list: end them all
            // (they re-list, as with a 410).
            self.end_watchers();
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    async fn feed_once(
        &self,
        storage: &Storage,
        shutdown: &CancellationToken,
    ) -> Result<(), String> {
        let prefix = self.info.store_prefix();
        let mut objects = BTreeMap::new();
        let mut start: Option<String> = None;
        let mut revision = 0;
        loop {
            let page = storage
                .list(&prefix, start.as_deref(), 10_000, revision)
                .await
                .map_err(|e| e.to_string())?;
            revision = page.revision;
            let last = page.items.last().map(|s| format!("{}\0", s.key));
            for s in page.items {
                let obj = CachedObject::new(self.info, s.key.clone(), s.object, s.revision);
                objects.insert(s.key, Arc::new(obj));
            }
            if page.remaining == 0 || last.is_none() {
                break;
            }
            start = last;
        }
        {
            let mut state = self.state.write();
            state.objects = objects;
            state.revision = revision;
            state.history.clear();
            state.window_start = revision;
        }
        self.revision_tx.send_replace(revision);
        tracing::debug!(resource = self.info.plural, revision, "watch cache listed");

        let (mut watcher, mut stream) = storage
            .watch(&prefix, revision + 1)
            .await
            .map_err(|e| e.to_string())?;
        let mut progress = tokio::time::interval(self.config.progress_interval);
        progress.tick().await;
        loop {
            let msg = tokio::select! {
                msg = stream.message() => msg,
                _ = progress.tick() => {
                    watcher.request_progress().await.map_err(|e| e.to_string())?;
                    continue;
                }
                _ = self.progress.notified() => {
                    watcher.request_progress().await.map_err(|e| e.to_string())?;
                    continue;
                }
                _ = shutdown.cancelled() => return Ok(()),
            };
            let resp = match msg {
                Ok(Some(resp)) => resp,
                Ok(None) => return Err("the store ended the watch".into()),
                Err(e) => return Err(e.to_string()),
            };
            if resp.canceled() {
                return Err(format!(
                    "the store canceled the watch (compacted at {})",
                    resp.compact_revision()
                ));
            }
            if resp.events().is_empty() {
                if !resp.created() {
                    let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
                    self.advance(rev);
                }
                continue;
            }
            let changes: Vec<Change> = resp.events().iter().filter_map(|e| self.apply(e)).collect();
            self.fan_out(&changes);
            let rev = self.revision();
            self.revision_tx.send_replace(rev);
        }
    }

    /// Applies one store event to the objects and the history; returns the change to offer.
    fn apply(&self, event: &etcd_client::Event) -> Option<Change> {
        let kv = event.kv()?;
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        let revision = kv.mod_revision();
        let mut state = self.state.write();
        let prev = state.objects.get(&key).cloned();
        let change = match event.event_type() {
            EventType::Put => {
                let Ok(value) = serde_json::from_slice(kv.value()) else {
                    tracing::warn!(%key, "skipping a stored object that is not JSON");
                    return None;
                };
                let object = Arc::new(CachedObject::new(self.info, key.clone(), value, revision));
                state.objects.insert(key, object.clone());
                Change {
                    revision,
                    object,
                    prev,
                    deleted: false,
                }
            }
            EventType::Delete => {
                state.objects.remove(&key);
                let prev = prev?;
                Change {
                    revision,
                    object: Arc::new(prev.at_revision(self.info, revision)),
                    prev: Some(prev),
                    deleted: true,
                }
            }
        };
        state.revision = state.revision.max(revision);
        state.history.push_back(change.clone());
        while state.history.len() > self.config.history {
            if let Some(old) = state.history.pop_front() {
                state.window_start = old.revision;
            }
        }
        Some(change)
    }

    /// Offers `changes` (in revision order) to every watcher registered before them that can see
    /// them (by the trigger index).
    fn fan_out(&self, changes: &[Change]) {
        if changes.is_empty() {
            return;
        }
        let trigger = trigger_field(self.info.kind);
        let mut watchers = self.watchers.lock();
        for change in changes {
            let values = trigger.map(|f| {
                let after = change.object.field_ref(f);
                let before = change.prev.as_ref().map_or(after, |p| p.field_ref(f));
                [before, after]
            });
            watchers.retain_candidates(values, |slot| {
                if change.revision <= slot.from {
                    return true;
                }
                match change.event_for(&slot.filter, slot.namespace.as_deref()) {
                    Some(ev) => offer(slot, ev),
                    None => true,
                }
            });
        }
    }

    /// A progress notification: nothing happened up to `revision`. Due bookmarks go out.
    fn advance(&self, revision: i64) {
        let rv = {
            let mut state = self.state.write();
            if revision > state.revision {
                state.revision = revision;
            }
            state.revision
        };
        let now = Instant::now();
        let interval = self.config.bookmark_interval;
        self.watchers.lock().retain(|slot| {
            if !slot.bookmarks || now.duration_since(slot.last_bookmark) < interval {
                return true;
            }
            slot.last_bookmark = now;
            offer(slot, self.bookmark(rv))
        });
        self.revision_tx.send_replace(rv);
    }

    pub fn bookmark(&self, revision: i64) -> WatchEvent {
        let object = json!({
            "apiVersion": self.info.api_version(),
            "kind": self.info.kind,
            "metadata": {"resourceVersion": revision.to_string()}
        });
        WatchEvent {
            kind: "BOOKMARK",
            object: Bytes::from(object.to_string()),
        }
    }

    fn end_watchers(&self) {
        for slot in self.watchers.lock().drain() {
            slot.overflowed.store(true, Ordering::Relaxed);
        }
    }
}

/// Offers an event without waiting; false when the watcher is gone or too slow (and so ended).
fn offer(slot: &Slot, ev: WatchEvent) -> bool {
    match slot.tx.try_send(ev) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            slot.overflowed.store(true, Ordering::Relaxed);
            false
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}
