//! The garbage collector's view of the cluster: one list+watch per deletable resource, reduced to
//! object metadata (Kubernetes' metadata informers), sent to the graph through a bounded channel
//! (the watch waits for room: the graph task only does in-memory updates, so it keeps up).

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use niwa_api::ResourceInfo;
use niwa_client::{Client, ListParams, WatchEvent, WatchParams};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What the watches tell the graph.
#[derive(Debug)]
pub enum GraphEvent {
    Upsert(&'static ResourceInfo, ObjectMeta),
    Delete(&'static ResourceInfo, ObjectMeta),
    /// A complete (re-)list of one resource.
    Listed(&'static ResourceInfo, Vec<ObjectMeta>),
}

/// Resources the collector watches: everything that can be listed, watched and deleted, except
/// Events (never owners in practice, and the most numerous objects).
pub fn watched_resources() -> Vec<&'static ResourceInfo> {
    niwa_api::registry::RESOURCES
        .iter()
        .filter(|r| {
            ["list", "watch", "delete"]
                .iter()
                .all(|v| r.verbs.contains(v))
                && r.kind != "Event"
        })
        .collect()
}

fn meta_of(obj: &Value) -> ObjectMeta {
    serde_json::from_value(obj["metadata"].clone()).unwrap_or_default()
}

/// Delay after a failed list or a broken watch.
const RETRY: Duration = Duration::from_millis(500);

/// List and watch `info` until `shutdown`, re-listing after any failure.
pub async fn watch_resource(
    client: Client,
    info: &'static ResourceInfo,
    tx: mpsc::Sender<GraphEvent>,
    shutdown: CancellationToken,
) {
    let api = client.dynamic_for(info, None);
    let (lp, wp) = (ListParams::default(), WatchParams::default());
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let list = tokio::select! {
            _ = shutdown.cancelled() => return,
            l = api.list(&lp) => l,
        };
        let list = match list {
            Ok(l) => l,
            Err(err) => {
                tracing::debug!(resource = info.plural, %err, "list failed; retrying");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let mut rv = list.resource_version.clone();
        let metas = list.items.iter().map(meta_of).collect();
        if tx.send(GraphEvent::Listed(info, metas)).await.is_err() {
            return;
        }
        // Watch from the list; resume from the last seen version while the watch breaks
        // cleanly, re-list when the version expired.
        loop {
            let stream = tokio::select! {
                _ = shutdown.cancelled() => return,
                s = api.watch(&wp, &rv) => s,
            };
            let Ok(mut stream) = stream else {
                break;
            };
            let mut expired = false;
            loop {
                let ev = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    ev = stream.next() => ev,
                };
                let event = match ev {
                    None => break,
                    Some(Err(_)) => break,
                    Some(Ok(WatchEvent::Bookmark(v))) => {
                        rv = v;
                        continue;
                    }
                    Some(Ok(WatchEvent::Error(e))) => {
                        tracing::debug!(resource = info.plural, err = %e.message, "watch error");
                        expired = true;
                        break;
                    }
                    Some(Ok(WatchEvent::Added(o) | WatchEvent::Modified(o))) => {
                        let meta = meta_of(&o);
                        if let Some(v) = &meta.resource_version {
                            rv = v.clone();
                        }
                        GraphEvent::Upsert(info, meta)
                    }
                    Some(Ok(WatchEvent::Deleted(o))) => {
                        let meta = meta_of(&o);
                        if let Some(v) = &meta.resource_version {
                            rv = v.clone();
                        }
                        GraphEvent::Delete(info, meta)
                    }
                };
                if tx.send(event).await.is_err() {
                    return;
                }
            }
            if expired {
                break;
            }
            tokio::time::sleep(RETRY).await;
        }
        tokio::time::sleep(RETRY).await;
    }
}
