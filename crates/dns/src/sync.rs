//! Keeps the [`Zone`] current from the apiserver: one watcher per kind (Services, EndpointSlices,
//! Pods), list → watch → re-list, each event applied to the zone as it arrives. No polling and no
//! zone reloads: a new Service is answerable as soon as its watch event is applied.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use niwa_client::runtime::watcher::{self, Event};
use niwa_client::{Api, Object};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::shared_zone::SharedZone;
use crate::zone::{ObjectKey, Zone};

/// A kind the zone is built from.
pub trait ZoneObject: Object {
    fn apply(zone: &mut Zone, object: &Self);
    fn delete(zone: &mut Zone, key: &ObjectKey);
    fn retain(zone: &mut Zone, keep: &HashSet<ObjectKey>);
}

impl ZoneObject for Service {
    fn apply(zone: &mut Zone, object: &Self) {
        zone.apply_service(object);
    }
    fn delete(zone: &mut Zone, key: &ObjectKey) {
        zone.delete_service(key);
    }
    fn retain(zone: &mut Zone, keep: &HashSet<ObjectKey>) {
        zone.retain_services(keep);
    }
}

impl ZoneObject for EndpointSlice {
    fn apply(zone: &mut Zone, object: &Self) {
        zone.apply_endpoint_slice(object);
    }
    fn delete(zone: &mut Zone, key: &ObjectKey) {
        zone.delete_endpoint_slice(key);
    }
    fn retain(zone: &mut Zone, keep: &HashSet<ObjectKey>) {
        zone.retain_endpoint_slices(keep);
    }
}

impl ZoneObject for Pod {
    fn apply(zone: &mut Zone, object: &Self) {
        zone.apply_pod(object);
    }
    fn delete(zone: &mut Zone, key: &ObjectKey) {
        zone.delete_pod(key);
    }
    fn retain(zone: &mut Zone, keep: &HashSet<ObjectKey>) {
        zone.retain_pods(keep);
    }
}

/// Counts the kinds whose first list has been applied: the server is ready when all are.
#[derive(Debug, Default)]
pub struct Synced {
    done: AtomicUsize,
    expected: AtomicUsize,
}

impl Synced {
    pub fn expect(&self, kinds: usize) {
        self.expected.store(kinds, Ordering::SeqCst);
    }

    fn mark(&self) {
        self.done.fetch_add(1, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.done.load(Ordering::SeqCst) >= self.expected.load(Ordering::SeqCst)
    }
}

/// Applies the events of one kind to the zone until `shutdown`.
pub async fn run<K: ZoneObject>(
    api: Api<K>,
    zone: Arc<SharedZone>,
    synced: Arc<Synced>,
    shutdown: CancellationToken,
) {
    let span = tracing::info_span!("watch", kind = <K as k8s_openapi::Resource>::KIND);
    apply_events(api, zone, synced, shutdown)
        .instrument(span)
        .await;
}

async fn apply_events<K: ZoneObject>(
    api: Api<K>,
    zone: Arc<SharedZone>,
    synced: Arc<Synced>,
    shutdown: CancellationToken,
) {
    // The apiserver's watch cache serves a resourceVersion="0" list without touching the store;
    // the watch that follows catches up with anything newer.
    let config = watcher::Config::default().any_semantic();
    let stream = watcher::watcher(api, config);
    futures::pin_mut!(stream);
    // Keys seen during a (re-)list; `None` while watching.
    let mut listing: Option<HashSet<ObjectKey>> = None;
    let mut first_sync = true;
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            event = stream.next() => event,
        };
        let Some(event) = event else {
            tracing::error!(
                kind = <K as k8s_openapi::Resource>::KIND,
                "watch stream ended"
            );
            return;
        };
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                // The watcher backs off and re-lists by itself; this is only worth a log line.
                tracing::warn!(kind = <K as k8s_openapi::Resource>::KIND, %error, "watch failed, retrying");
                continue;
            }
        };
        match event {
            Event::Init => listing = Some(HashSet::new()),
            Event::InitApply(object) => {
                if let (Some(seen), Some(key)) =
                    (listing.as_mut(), ObjectKey::of(object.metadata()))
                {
                    seen.insert(key);
                }
                zone.update(|z| K::apply(z, &object));
            }
            Event::InitDone => {
                let seen = listing.take().unwrap_or_default();
                tracing::info!(
                    kind = <K as k8s_openapi::Resource>::KIND,
                    objects = seen.len(),
                    "listed"
                );
                zone.update(|z| K::retain(z, &seen));
                if first_sync {
                    first_sync = false;
                    synced.mark();
                }
            }
            Event::Apply(object) => zone.update(|z| K::apply(z, &object)),
            Event::Delete(object) => {
                if let Some(key) = ObjectKey::of(object.metadata()) {
                    zone.update(|z| K::delete(z, &key));
                }
            }
        }
    }
}
