//! Endpoints controller (Kubernetes' `endpoint-controller`): for every Service with a selector, an
//! Endpoints object of the same name listing the ready and not-ready addresses of the pods it
//! selects. Selector-less Services are left alone (their Endpoints are the user's); the Endpoints
//! of a deleted Service are deleted.
//!
//! The shell keys on Service names ([`crate::controllers::keyed`]) because a deleted Service must
//! still be synced; pod changes are mapped to the Services that select the pod now or did before
//! through an incremental index ([`pods`], [`index`]); the echoes of the controller's own writes
//! do not queue a sync ([`tracker`]). Decisions in [`core`], which also holds what the
//! EndpointSlice controllers share about pods and Services.

pub mod core;
pub mod index;
pub mod pods;
pub mod tracker;

use std::sync::Arc;
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
use pods::ServicePods;
use tracker::{Expect, Tracker};

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(transparent)]
    Api(#[from] niwa_client::Error),
}

/// How soon a sync that found the cache behind its own writes tries again (the echo of the
/// write queues it sooner).
pub const BEHIND_RETRY: Duration = Duration::from_millis(200);

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
    pods: Arc<ServicePods>,
    tracker: Arc<Tracker>,
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
    let index = Arc::new(ServicePods::default());
    let tracker = Arc::new(Tracker::default());
    let (svc_store, ep_store) = (services.store(), endpoints.store());
    let mut triggers = pods::service_triggers(&services, &shared.pods, index.clone());
    triggers.push({
        let (s, tracker) = (ep_store.clone(), tracker.clone());
        endpoints
            .subscribe()
            .flat_map(move |c| {
                let mut keys = change_keys(&c, &s);
                keys.retain(|k| tracker.should_sync(k, &c));
                stream::iter(keys)
            })
            .boxed()
    });
    let triggers = stream::select_all(triggers);
    svc_store.wait_until_ready().await;
    shared.pods.store().wait_until_ready().await;
    ep_store.wait_until_ready().await;
    index.rebuild(&shared.pods.store(), &svc_store);
    let queue = WorkQueue::new();
    for s in svc_store.state() {
        queue.add(s.object_ref());
    }
    let ctx = Arc::new(Ctx {
        shared: shared.clone(),
        services: svc_store,
        endpoints: ep_store,
        pods: index,
        tracker,
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
    if !ctx.tracker.caught_up(&key, &ctx.endpoints) {
        return Ok(Some(BEHIND_RETRY));
    }
    let ns = key.namespace.clone().unwrap_or_default();
    let api = ctx.shared.client.namespaced::<Endpoints>(&ns);
    let Some(svc) = ctx.services.get(&key) else {
        // The Service is gone: so are its Endpoints.
        if ctx.endpoints.get(&key).is_some() {
            match api.delete(&key.name, &Default::default()).await {
                Ok(_) => ctx
                    .tracker
                    .record(&key, vec![Expect::Gone(key.name.clone())]),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(None);
    };
    if core::service_selector(&svc).is_none() {
        return Ok(None);
    }
    let pods = ctx.pods.selected(&svc, &ctx.shared.pods.store());
    let selected: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();
    let desired = core::desired_endpoints(&svc, &selected);
    let result = match ctx.endpoints.get(&key) {
        None => api.create(&desired).await,
        Some(current) if core::endpoints_equal(&current, &desired) => return Ok(None),
        Some(current) => {
            let mut updated = (*current).clone();
            updated.subsets = desired.subsets;
            updated.metadata.labels = desired.metadata.labels;
            api.replace(&updated).await
        }
    };
    match result {
        Ok(written) => {
            let expect = Expect::AtLeast(key.name.clone(), tracker::rv(&written));
            ctx.tracker.record(&key, vec![expect]);
            Ok(None)
        }
        Err(e) => {
            if !e.is_conflict() && !e.is_already_exists() {
                ctx.shared.events.publish(
                    svc.object_reference(),
                    "Warning",
                    "FailedToUpdateEndpoint",
                    format!("Failed to update endpoint {key}: {e}"),
                );
            }
            Err(e.into())
        }
    }
}
