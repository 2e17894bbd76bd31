//! Watch: initial events for "from now" watches, changes as ADDED / MODIFIED / DELETED as seen
//! through the watcher's selectors, bookmarks, and 410 Expired for compacted resourceVersions.
//!
//! Watches are served by the resource's watch cache when it can (from now, or from a
//! resourceVersion inside its history window); older resourceVersions get a watch of their own on
//! the store, which replays the store's history or answers 410 when it is compacted.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use etcd_client::EventType;
use futures::Stream;
use niwa_api::{ApiError, ResourceInfo};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use super::Rest;
use super::read::Filter;
use crate::cache::{self, Start};
use crate::object;

/// What a watcher asked for.
#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    pub label_selector: String,
    pub field_selector: String,
    pub resource_version: String,
    pub allow_bookmarks: bool,
}

/// One event of a watch stream (`watch.Event`): its type and the object's JSON, encoded once and
/// shared by every watcher that receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchEvent {
    pub kind: &'static str,
    pub object: Bytes,
}

impl WatchEvent {
    pub fn new(kind: &'static str, object: &Value) -> WatchEvent {
        WatchEvent {
            kind,
            object: Bytes::from(serde_json::to_vec(object).unwrap_or_default()),
        }
    }

    /// An ERROR event carrying `err` as a Kubernetes Status.
    pub fn error(err: &ApiError) -> WatchEvent {
        WatchEvent::new("ERROR", &err.to_status())
    }
}

/// A stream of watch events; it ends when the watch ends.
pub type EventStream = Pin<Box<dyn Stream<Item = WatchEvent> + Send>>;

/// Events buffered per watcher; a watcher that does not read blocks only its own store stream.
const WATCH_BUFFER: usize = 256;
/// How often an idle watch that allows bookmarks gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(30);

impl Rest {
    /// Starts a watch; its events arrive on the returned stream until it ends or `shutdown` fires.
    pub async fn watch(
        &self,
        info: &'static ResourceInfo,
        namespace: &str,
        opts: WatchOptions,
        shutdown: CancellationToken,
    ) -> Result<EventStream, ApiError> {
        let filter = Filter::parse(info, &opts.label_selector, &opts.field_selector)?;
        let ns = if namespace.is_empty() {
            filter
                .fields
                .exact("metadata.namespace")
                .map(str::to_string)
        } else {
            Some(namespace.to_string())
        };
        let requested = object::parse_resource_version(&opts.resource_version)
            .map_err(ApiError::bad_request)?
            .unwrap_or(0);
        let cache = self.caches.get(info).await?;
        match cache
            .register(requested, ns, Arc::new(filter), opts.allow_bookmarks)
            .await
        {
            Start::Registered(reg) => {
                let events = cache::into_stream(reg);
                Ok(Box::pin(futures::StreamExt::take_until(
                    events,
                    shutdown.cancelled_owned(),
                )))
            }
            Start::TooOld | Start::TooNew => {
                let rx = self.watch_store(info, namespace, opts, shutdown).await?;
                Ok(Box::pin(ReceiverStream::new(rx)))
            }
        }
    }

    /// A watch straight on the store, for resourceVersions outside the cache's window.
    async fn watch_store(
        &self,
        info: &'static ResourceInfo,
        namespace: &str,
        opts: WatchOptions,
        shutdown: CancellationToken,
    ) -> Result<mpsc::Receiver<WatchEvent>, ApiError> {
        let filter = Filter::parse(info, &opts.label_selector, &opts.field_selector)?;
        let ns = if namespace.is_empty() {
            filter
                .fields
                .exact("metadata.namespace")
                .map(str::to_string)
        } else {
            Some(namespace.to_string())
        };
        let prefix = info.store_namespace_prefix(ns.as_deref());
        let requested = object::parse_resource_version(&opts.resource_version)
            .map_err(ApiError::bad_request)?
            .unwrap_or(0);
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);

        // "" and "0": start with the current state as ADDED events, then follow changes.
        let mut initial = Vec::new();
        let from = if requested == 0 {
            let page = self.storage.list(&prefix, None, 0, 0).await?;
            for stored in page.items {
                let mut obj = stored.object;
                if filter.matches(&obj) {
                    object::set_resource_version(&mut obj, stored.revision);
                    initial.push(WatchEvent::new("ADDED", &obj));
                }
            }
            page.revision
        } else {
            requested
        };
        let (watcher, mut stream) = self.storage.watch(&prefix, from + 1).await?;
        let api_version = info.api_version();
        let kind = info.kind;

        tokio::spawn(async move {
            let mut watcher = watcher;
            for ev in initial {
                if tx.send(ev).await.is_err() {
                    return;
                }
            }
            let mut bookmarks = tokio::time::interval(BOOKMARK_INTERVAL);
            bookmarks.tick().await;
            loop {
                let msg = tokio::select! {
                    msg = stream.message() => msg,
                    _ = bookmarks.tick(), if opts.allow_bookmarks => {
                        // The store answers with a progress notification; it becomes a bookmark.
                        let _ = watcher.request_progress().await;
                        continue;
                    }
                    _ = tx.closed() => break,
                    _ = shutdown.cancelled() => break,
                };
                let resp = match msg {
                    Ok(Some(resp)) => resp,
                    Ok(None) => break,
                    Err(err) => {
                        let err = ApiError::internal(format!("watch failed: {err}"));
                        let _ = tx.send(WatchEvent::error(&err)).await;
                        break;
                    }
                };
                if resp.canceled() {
                    let compacted = resp.compact_revision();
                    let err = if compacted > 0 {
                        ApiError::expired(format!("too old resource version: {from} ({compacted})"))
                    } else {
                        ApiError::internal("the store canceled the watch")
                    };
                    let _ = tx.send(WatchEvent::error(&err)).await;
                    break;
                }
                if resp.events().is_empty() {
                    if opts.allow_bookmarks && !resp.created() {
                        let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
                        let bookmark = json!({
                            "apiVersion": api_version, "kind": kind,
                            "metadata": {"resourceVersion": rev.to_string()}
                        });
                        if tx
                            .send(WatchEvent::new("BOOKMARK", &bookmark))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                    continue;
                }
                for event in resp.events() {
                    let Some(ev) = translate(event, &filter) else {
                        continue;
                    };
                    if tx.send(ev).await.is_err() {
                        return;
                    }
                }
            }
            // Dropping the sender and the stream ends the store watch.
            drop(watcher);
        });
        Ok(rx)
    }
}

/// One store event as this watcher sees it: an object entering the selection is ADDED, leaving it
/// is DELETED, and changes outside it are not seen at all.
fn translate(event: &etcd_client::Event, filter: &Filter) -> Option<WatchEvent> {
    let parse = |kv: &etcd_client::KeyValue| serde_json::from_slice::<Value>(kv.value()).ok();
    let kv = event.kv()?;
    let prev = event.prev_kv().and_then(parse);
    let was = prev.as_ref().is_some_and(|p| filter.matches(p));
    match event.event_type() {
        EventType::Put => {
            let mut obj = parse(kv)?;
            object::set_resource_version(&mut obj, kv.mod_revision());
            let is = filter.matches(&obj);
            let kind = match (was, is) {
                (true, true) => "MODIFIED",
                (false, true) => "ADDED",
                (true, false) => "DELETED",
                (false, false) => return None,
            };
            Some(WatchEvent::new(kind, &obj))
        }
        EventType::Delete => {
            let mut obj = prev?;
            if !was {
                return None;
            }
            object::set_resource_version(&mut obj, kv.mod_revision());
            Some(WatchEvent::new("DELETED", &obj))
        }
    }
}
