//! EndpointSlice mirroring controller (Kubernetes' `endpointslice-mirroring-controller`): the
//! Endpoints a user wrote for a selector-less Service are mirrored into EndpointSlices managed by
//! `endpointslicemirroring-controller.k8s.io` and owned by the Endpoints. Endpoints labelled
//! `endpointslice.kubernetes.io/skip-mirror=true` (the apiserver's own `kubernetes` Endpoints) and
//! Endpoints of Services with a selector (the endpoint controller's) are not mirrored; when the
//! Endpoints or Service go, or the Service gains a selector, the mirrored slices are deleted.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use niwa_client::runtime::watcher;
use niwa_client::{ObjectRef, ResourceExt, Store, WorkQueue};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::core::{self, MIRRORING_CONTROLLER_NAME};
use super::{SliceError, apply_plan, slice_keys, slices_of};
use crate::controllers::Shared;
use crate::controllers::endpoint::tracker::Tracker;
use crate::controllers::endpoint::{BEHIND_RETRY, change_keys, core::service_selector};
use crate::controllers::keyed;
use crate::informer::Informer;
use crate::util::owner;

struct Ctx {
    shared: Arc<Shared>,
    services: Store<Service>,
    endpoints: Store<Endpoints>,
    slices: Store<EndpointSlice>,
    tracker: Arc<Tracker>,
}

/// Whether these Endpoints are mirrored, given their Service.
pub fn should_mirror(endpoints: &Endpoints, svc: Option<&Service>) -> bool {
    let skip = endpoints
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(core::SKIP_MIRROR_LABEL))
        .is_some_and(|v| v == "true");
    let leader_election = endpoints
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("control-plane.alpha.kubernetes.io/leader"));
    !skip && !leader_election && svc.is_some_and(|s| service_selector(s).is_none())
}

pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let Some(services) = shared.services.clone() else {
        tracing::error!("endpointslice-mirroring-controller needs the service informer");
        return;
    };
    let mut tasks = JoinSet::new();
    let endpoints = Informer::start(
        shared.client.all::<Endpoints>(),
        watcher::Config::default(),
        &mut tasks,
        shutdown.clone(),
    );
    let slices = Informer::start(
        shared.client.all::<EndpointSlice>(),
        watcher::Config {
            label_selector: Some(format!(
                "{}={MIRRORING_CONTROLLER_NAME}",
                core::MANAGED_BY_LABEL
            )),
            ..Default::default()
        },
        &mut tasks,
        shutdown.clone(),
    );
    let (svc_store, ep_store, slice_store) = (services.store(), endpoints.store(), slices.store());
    let tracker = Arc::new(Tracker::default());
    let triggers = stream::select_all(vec![
        {
            let s = svc_store.clone();
            services
                .subscribe()
                .flat_map(move |c| stream::iter(change_keys(&c, &s)))
                .boxed()
        },
        {
            let s = ep_store.clone();
            endpoints
                .subscribe()
                .flat_map(move |c| stream::iter(change_keys(&c, &s)))
                .boxed()
        },
        {
            let (s, tracker) = (slice_store.clone(), tracker.clone());
            slices
                .subscribe()
                .flat_map(move |c| {
                    stream::iter(slice_keys(&c, MIRRORING_CONTROLLER_NAME, &s, &tracker))
                })
                .boxed()
        },
    ]);
    svc_store.wait_until_ready().await;
    ep_store.wait_until_ready().await;
    slice_store.wait_until_ready().await;
    let queue = WorkQueue::new();
    for e in ep_store.state() {
        queue.add(e.object_ref());
    }
    let ctx = Arc::new(Ctx {
        shared: shared.clone(),
        services: svc_store,
        endpoints: ep_store,
        slices: slice_store,
        tracker,
    });
    keyed::run(
        "endpointslice-mirroring-controller",
        queue,
        triggers,
        shared.concurrency.endpointslice_mirroring,
        shutdown,
        move |key| sync(key, ctx.clone()),
    )
    .await;
    while tasks.join_next().await.is_some() {}
}

async fn sync(key: ObjectRef, ctx: Arc<Ctx>) -> Result<Option<Duration>, SliceError> {
    if !ctx.tracker.caught_up(&key, &ctx.slices) {
        return Ok(Some(BEHIND_RETRY));
    }
    let ns = key.namespace.clone().unwrap_or_default();
    let api = ctx.shared.client.namespaced::<EndpointSlice>(&ns);
    let existing = slices_of(&ctx.slices, &key, MIRRORING_CONTROLLER_NAME);
    let endpoints = ctx.endpoints.get(&key);
    let svc = ctx.services.get(&key);
    let plan = match endpoints.as_deref() {
        Some(ep) if should_mirror(ep, svc.as_deref()) => {
            let template = core::SliceTemplate::for_mirror(
                ep,
                owner::controller_reference("v1", "Endpoints", &ep.metadata),
            );
            core::reconcile(&template, &core::mirror_groups(ep), &existing)
        }
        _ => core::SlicePlan {
            delete: existing
                .into_iter()
                .filter_map(|s| s.metadata.name)
                .collect(),
            ..Default::default()
        },
    };
    if plan.is_empty() {
        return Ok(None);
    }
    if let Err(e) = apply_plan(&api, &key, plan, &ctx.tracker).await {
        if let Some(ep) = endpoints.as_deref()
            && !e.is_conflict()
        {
            ctx.shared.events.publish(
                ep.object_reference(),
                "Warning",
                "FailedToUpdateEndpointSlices",
                format!("Error mirroring Endpoints {key} to EndpointSlices: {e}"),
            );
        }
        return Err(e.into());
    }
    Ok(None)
}
