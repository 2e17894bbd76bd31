//! Endpoints controller (Kubernetes' `endpoint-controller`): for every Service with a selector, an
//! Endpoints object of the same name listing the ready and not-ready addresses of the pods it
//! selects. Selector-less Services are left alone (their Endpoints are the user's); the Endpoints
//! of a deleted Service are deleted.
//!
//! The shell keys on Service names ([`crate::controllers::keyed`]) because a deleted Service must
//! still be synced; pod changes are mapped to the Services that select the pod now or did before
//! ([`PodServices`]). Decisions in [`core`].

pub mod core;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use niwa_client::runtime::watcher;
use niwa_client::{ObjectRef, ResourceExt, Store, WorkQueue};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::keyed;
use crate::informer::{Change, Informer};

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(transparent)]
    Api(#[from] niwa_client::Error),
}

/// Maps pod changes to Service keys: the Services selecting the pod now, and those that did at
/// its previous change (a relabelled pod must leave its old Service's endpoints).
#[derive(Default)]
pub struct PodServices {
    last: Mutex<HashMap<ObjectRef, Vec<ObjectRef>>>,
}

impl PodServices {
    pub fn keys(&self, change: &Change<Pod>, services: &Store<Service>) -> Vec<ObjectRef> {
        let Some(pod) = change.object() else {
            return services.state().iter().map(|s| s.object_ref()).collect();
        };
        let pod_key = pod.object_ref();
        let now: Vec<ObjectRef> = match change {
            Change::Deleted(_) => Vec::new(),
            _ => services
                .filter(|s| {
                    s.metadata.namespace == pod.metadata.namespace
                        && core::service_selector(s).is_some_and(|sel| core::selects(sel, pod))
                })
                .iter()
                .map(|s| s.object_ref())
                .collect(),
        };
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let mut keys = if now.is_empty() {
            last.remove(&pod_key).unwrap_or_default()
        } else {
            last.insert(pod_key, now.clone()).unwrap_or_default()
        };
        keys.extend(now);
        keys.sort();
        keys.dedup();
        keys
    }
}

/// The keys of a change of a Service-named object (Resync: every object in `all`).
pub fn change_keys<K: niwa_client::Object>(change: &Change<K>, all: &Store<K>) -> Vec<ObjectRef> {
    match change.object() {
        Some(o) => vec![o.object_ref()],
        None => all.state().iter().map(|o| o.object_ref()).collect(),
    }
}

struct Ctx {
    shared: Arc<Shared>,
    services: Store<Service>,
    endpoints: Store<Endpoints>,
}

pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let Some(services) = shared.services.clone() else {
        tracing::error!("endpoint-controller needs the service informer");
        return;
    };
    let mut tasks = JoinSet::new();
    let endpoints = Informer::start(
        shared.client.all::<Endpoints>(),
        watcher::Config::default(),
        &mut tasks,
        shutdown.clone(),
    );
    let index = Arc::new(PodServices::default());
    let (svc_store, ep_store) = (services.store(), endpoints.store());
    let triggers = stream::select_all(vec![
        {
            let s = svc_store.clone();
            services
                .subscribe()
                .flat_map(move |c| stream::iter(change_keys(&c, &s)))
                .boxed()
        },
        {
            let s = svc_store.clone();
            shared
                .pods
                .subscribe()
                .flat_map(move |c| stream::iter(index.keys(&c, &s)))
                .boxed()
        },
        {
            let s = ep_store.clone();
            endpoints
                .subscribe()
                .flat_map(move |c| stream::iter(change_keys(&c, &s)))
                .boxed()
        },
    ]);
    svc_store.wait_until_ready().await;
    shared.pods.store().wait_until_ready().await;
    ep_store.wait_until_ready().await;
    let queue = WorkQueue::new();
    for s in svc_store.state() {
        queue.add(s.object_ref());
    }
    let ctx = Arc::new(Ctx {
        shared: shared.clone(),
        services: svc_store,
        endpoints: ep_store,
    });
    keyed::run(
        "endpoint-controller",
        queue,
        triggers,
        shared.concurrency.endpoint,
        shutdown,
        move |key| sync(key, ctx.clone()),
    )
    .await;
    while tasks.join_next().await.is_some() {}
}

async fn sync(key: ObjectRef, ctx: Arc<Ctx>) -> Result<Option<Duration>, EndpointError> {
    let ns = key.namespace.clone().unwrap_or_default();
    let api = ctx.shared.client.namespaced::<Endpoints>(&ns);
    let Some(svc) = ctx.services.get(&key) else {
        // The Service is gone: so are its Endpoints.
        if ctx.endpoints.get(&key).is_some() {
            match api.delete(&key.name, &Default::default()).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(None);
    };
    let Some(selector) = core::service_selector(&svc) else {
        return Ok(None);
    };
    // One pass over the cache (no intermediate list of every pod of the namespace).
    let pods = ctx.shared.pods.store().filter(|p| {
        p.metadata.namespace.as_deref() == Some(ns.as_str()) && core::selects(selector, p)
    });
    let selected: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();
    let desired = core::desired_endpoints(&svc, &selected);
    let result = match ctx.endpoints.get(&key) {
        None => api.create(&desired).await.map(|_| ()),
        Some(current) if core::endpoints_equal(&current, &desired) => return Ok(None),
        Some(current) => {
            let mut updated = (*current).clone();
            updated.subsets = desired.subsets;
            updated.metadata.labels = desired.metadata.labels;
            api.replace(&updated).await.map(|_| ())
        }
    };
    if let Err(e) = result {
        if !e.is_conflict() && !e.is_already_exists() {
            ctx.shared.events.publish(
                svc.object_reference(),
                "Warning",
                "FailedToUpdateEndpoint",
                format!("Failed to update endpoint {key}: {e}"),
            );
        }
        return Err(e.into());
    }
    Ok(None)
}
