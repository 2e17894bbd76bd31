//! Watch: initial events for "from now" watches, store events translated into ADDED / MODIFIED /
//! DELETED as seen through the watcher's selectors, bookmarks, and 410 Expired for compacted
//! resourceVersions. (Served straight from a store watch; the shared watch cache replaces this.)

use std::time::Duration;

use etcd_client::EventType;
use niwa_api::{ApiError, ResourceInfo};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Rest;
use super::read::Filter;
use crate::object;

/// What a watcher asked for.
#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    pub label_selector: String,
    pub field_selector: String,
    pub resource_version: String,
    pub allow_bookmarks: bool,
}

/// One event of a watch stream (`watch.Event`).
#[derive(Debug, Clone, PartialEq)]
pub struct WatchEvent {
    pub kind: &'static str,
    pub object: Value,
}

/// Events buffered per watcher; a watcher that does not read blocks only its own store stream.
const WATCH_BUFFER: usize = 256;
/// How often an idle watch that allows bookmarks gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(30);

impl Rest {
    /// Starts a watch; events arrive on the returned channel until it closes or `shutdown` fires.
    pub async fn watch(
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
                    initial.push(WatchEvent {
                        kind: "ADDED",
                        object: obj,
                    });
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
                        let status = ApiError::internal(format!("watch failed: {err}")).to_status();
                        let _ = tx
                            .send(WatchEvent {
                                kind: "ERROR",
                                object: status,
                            })
                            .await;
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
                    let _ = tx
                        .send(WatchEvent {
                            kind: "ERROR",
                            object: err.to_status(),
                        })
                        .await;
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
                            .send(WatchEvent {
                                kind: "BOOKMARK",
                                object: bookmark,
                            })
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
            Some(WatchEvent { kind, object: obj })
        }
        EventType::Delete => {
            let mut obj = prev?;
            if !was {
                return None;
            }
            object::set_resource_version(&mut obj, kv.mod_revision());
            Some(WatchEvent {
                kind: "DELETED",
                object: obj,
            })
        }
    }
}
