//! Pod selection for the Endpoints and EndpointSlice controllers (the shell around
//! [`super::index::PodIndex`]): the index fed from the shared pod and Service informers, the
//! Service keys each change queues, and a Service's pods out of the cache.
//!
//! The index is updated in the controller's trigger stream, before the keys it yields are queued,
//! so a sync queued by a change sees the membership that change made. The cache may be ahead of
//! the index (a pod relabelled a moment ago): [`ServicePods::selected`] checks the selector
//! against the cached pod, and the index update that follows queues the Service again.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::stream::BoxStream;
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Pod, Service};
use niwa_client::{ObjectRef, ResourceExt, Store};

use super::core;
use super::index::PodIndex;
use crate::informer::{Change, Informer};

/// The Service ⇄ pod index of one controller.
#[derive(Debug, Default)]
pub struct ServicePods {
    index: Mutex<PodIndex>,
}

fn labels(pod: &Pod) -> &BTreeMap<String, String> {
    static NONE: BTreeMap<String, String> = BTreeMap::new();
    pod.metadata.labels.as_ref().unwrap_or(&NONE)
}

impl ServicePods {
    fn index(&self) -> MutexGuard<'_, PodIndex> {
        // Every update leaves the index consistent before it can panic: a poisoned lock is fine.
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Make the index say what the caches say (at start, after the informers listed: changes
    /// from before this controller subscribed are only in the caches).
    pub fn rebuild(&self, pods: &Store<Pod>, services: &Store<Service>) {
        let mut index = PodIndex::default();
        for p in pods.state() {
            index.apply_pod(&p.object_ref(), labels(&p));
        }
        for s in services.state() {
            index.apply_service(&s.object_ref(), core::service_selector(&s));
        }
        *self.index() = index;
    }

    /// The Services to sync for a pod change (those selecting the pod now or before it).
    pub fn on_pod(&self, change: &Change<Pod>, pods: &Store<Pod>) -> Vec<ObjectRef> {
        let mut index = self.index();
        match change {
            Change::Applied(p) => index.apply_pod(&p.object_ref(), labels(p)),
            Change::Deleted(p) => index.delete_pod(&p.object_ref()),
            Change::Resync => {
                // Deletions during a watch gap were missed: take the cache's word for it.
                let current = pods.state();
                let live: std::collections::HashSet<ObjectRef> =
                    current.iter().map(|p| p.object_ref()).collect();
                for gone in index.pods().into_iter().filter(|p| !live.contains(p)) {
                    index.delete_pod(&gone);
                }
                for p in &current {
                    index.apply_pod(&p.object_ref(), labels(p));
                }
                index.services()
            }
        }
    }

    /// The Services to sync for a Service change (itself; every Service on a re-list).
    pub fn on_service(
        &self,
        change: &Change<Service>,
        services: &Store<Service>,
    ) -> Vec<ObjectRef> {
        let mut index = self.index();
        match change {
            Change::Applied(s) => {
                index.apply_service(&s.object_ref(), core::service_selector(s));
                vec![s.object_ref()]
            }
            Change::Deleted(s) => {
                index.delete_service(&s.object_ref());
                vec![s.object_ref()]
            }
            Change::Resync => {
                let current = services.state();
                let live: std::collections::HashSet<ObjectRef> =
                    current.iter().map(|s| s.object_ref()).collect();
                for gone in index.services().into_iter().filter(|s| !live.contains(s)) {
                    index.delete_service(&gone);
                }
                for s in &current {
                    index.apply_service(&s.object_ref(), core::service_selector(s));
                }
                live.into_iter().collect()
            }
        }
    }

    /// The cached pods `svc` selects (sorted by name), none for a selector-less Service.
    pub fn selected(&self, svc: &Service, pods: &Store<Pod>) -> Vec<Arc<Pod>> {
        let Some(selector) = core::service_selector(svc) else {
            return Vec::new();
        };
        let keys = self.index().pods_of(&svc.object_ref());
        keys.iter()
            .filter_map(|k| pods.get(k))
            .filter(|p| core::selects(selector, p))
            .collect()
    }
}

/// The Service keys that Service and pod changes queue, with `index` kept up to date on the way:
/// the trigger streams the Endpoints and EndpointSlice controllers share.
pub fn service_triggers(
    services: &Informer<Service>,
    pods: &Informer<Pod>,
    index: Arc<ServicePods>,
) -> Vec<BoxStream<'static, ObjectRef>> {
    let (svc_store, pod_store) = (services.store(), pods.store());
    let by_service = {
        let index = index.clone();
        services
            .subscribe()
            .flat_map(move |c| stream::iter(index.on_service(&c, &svc_store)))
            .boxed()
    };
    let by_pod = pods
        .subscribe()
        .flat_map(move |c| stream::iter(index.on_pod(&c, &pod_store)))
        .boxed();
    vec![by_service, by_pod]
}
