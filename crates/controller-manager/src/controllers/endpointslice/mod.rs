//! EndpointSlice controller (Kubernetes' `endpointslice-controller`): for every Service with a
//! selector, EndpointSlices (≤ 100 endpoints each, owned by the Service, labelled
//! `kubernetes.io/service-name` and managed-by `endpointslice-controller.k8s.io`) with the
//! endpoints of the pods it selects. niwa-proxy and niwa-dns read these.
//!
//! [`mirroring`] is the `endpointslice-mirroring-controller`: selector-less Services' user-written
//! Endpoints, mirrored into slices. Both share the reconciler of [`core`] and the
//! [`Tracker`] of their own writes (a sync does not act on a cache that has not yet seen its
//! previous writes — a slice created with `generateName` would otherwise be created twice — and
//! the echoes of those writes do not queue syncs). Pods are selected through the Endpoints
//! controller's index ([`endpoint::pods`]).

pub mod core;
pub mod mirroring;

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use niwa_client::runtime::watcher;
use niwa_client::{Api, ObjectRef, ResourceExt, Store, WorkQueue};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::endpoint::pods::{self, ServicePods};
use super::endpoint::tracker::{self, Expect, Tracker};
use super::endpoint::{self, BEHIND_RETRY};
use super::keyed;
use crate::informer::{Change, Informer};
use crate::util::owner;

#[derive(Debug, thiserror::Error)]
pub enum SliceError {
    #[error(transparent)]
    Api(#[from] niwa_client::Error),
}

fn label<'a>(slice: &'a EndpointSlice, key: &str) -> Option<&'a str> {
    slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

/// The slices of `owner` (namespace/name of the Service) that `manager` manages.
pub fn slices_of(
    store: &Store<EndpointSlice>,
    owner: &ObjectRef,
    manager: &str,
) -> Vec<EndpointSlice> {
    store
        .filter(|s| {
            s.metadata.namespace == owner.namespace
                && label(s, core::SERVICE_NAME_LABEL) == Some(owner.name.as_str())
                && label(s, core::MANAGED_BY_LABEL) == Some(manager)
        })
        .iter()
        .map(|s| (**s).clone())
        .collect()
}

/// The Service key a slice change concerns (managed by `manager`), unless it is the echo of our
/// own write.
pub fn slice_keys(
    change: &Change<EndpointSlice>,
    manager: &str,
    all: &Store<EndpointSlice>,
    tracker: &Tracker,
) -> Vec<ObjectRef> {
    let key = |s: &EndpointSlice| {
        (label(s, core::MANAGED_BY_LABEL) == Some(manager))
            .then(|| label(s, core::SERVICE_NAME_LABEL))
            .flatten()
            .map(|n| ObjectRef::new(n).within(s.metadata.namespace.as_deref().unwrap_or("")))
    };
    match change.object() {
        Some(s) => key(s)
            .filter(|owner| tracker.should_sync(owner, change))
            .into_iter()
            .collect(),
        None => all.state().iter().filter_map(|s| key(s)).collect(),
    }
}

/// Perform a plan; failures are returned after every step was tried.
pub async fn apply_plan(
    api: &Api<EndpointSlice>,
    owner: &ObjectRef,
    plan: core::SlicePlan,
    tracker: &Tracker,
) -> Result<(), niwa_client::Error> {
    let mut expects = Vec::new();
    let mut first_error = None;
    for name in plan.delete {
        match api.delete(&name, &Default::default()).await {
            Ok(_) => expects.push(Expect::Gone(name)),
            Err(e) if e.is_not_found() => {}
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    for slice in plan.update {
        match api.replace(&slice).await {
            Ok(s) => expects.push(Expect::AtLeast(s.name_any(), tracker::rv(&s))),
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    for slice in plan.create {
        match api.create(&slice).await {
            Ok(s) => expects.push(Expect::AtLeast(s.name_any(), tracker::rv(&s))),
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    tracker.record(owner, expects);
    first_error.map_or(Ok(()), Err)
}

struct Ctx {
    shared: Arc<Shared>,
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    pods: Arc<ServicePods>,
    tracker: Arc<Tracker>,
}

pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let Some(services) = shared.services.clone() else {
        tracing::error!("endpointslice-controller needs the service informer");
        return;
    };
    let mut tasks = JoinSet::new();
    let slices = Informer::start(
        shared.client.all::<EndpointSlice>(),
        watcher::Config {
            label_selector: Some(format!(
                "{}={}",
                core::MANAGED_BY_LABEL,
                core::CONTROLLER_NAME
            )),
            ..Default::default()
        },
        &mut tasks,
        shutdown.clone(),
    );
    let index = Arc::new(ServicePods::default());
    let tracker = Arc::new(Tracker::default());
    let (svc_store, slice_store) = (services.store(), slices.store());
    let mut triggers = pods::service_triggers(&services, &shared.pods, index.clone());
    triggers.push({
        let (s, tracker) = (slice_store.clone(), tracker.clone());
        slices
            .subscribe()
            .flat_map(move |c| stream::iter(slice_keys(&c, core::CONTROLLER_NAME, &s, &tracker)))
            .boxed()
    });
    let triggers = stream::select_all(triggers);
    svc_store.wait_until_ready().await;
    shared.pods.store().wait_until_ready().await;
    slice_store.wait_until_ready().await;
    index.rebuild(&shared.pods.store(), &svc_store);
    let queue = WorkQueue::new();
    for s in svc_store.state() {
        queue.add(s.object_ref());
    }
    let ctx = Arc::new(Ctx {
        shared: shared.clone(),
        services: svc_store,
        slices: slice_store,
        pods: index,
        tracker,
    });
    keyed::run(
        "endpointslice-controller",
        queue,
        triggers,
        shared.concurrency.endpointslice,
        shutdown,
        move |key| sync(key, ctx.clone()),
    )
    .await;
    while tasks.join_next().await.is_some() {}
}

async fn sync(key: ObjectRef, ctx: Arc<Ctx>) -> Result<Option<Duration>, SliceError> {
    if !ctx.tracker.caught_up(&key, &ctx.slices) {
        // The slice watch will queue this key again when it delivers our writes.
        return Ok(Some(BEHIND_RETRY));
    }
    let ns = key.namespace.clone().unwrap_or_default();
    let api = ctx.shared.client.namespaced::<EndpointSlice>(&ns);
    let existing = slices_of(&ctx.slices, &key, core::CONTROLLER_NAME);
    let svc = ctx.services.get(&key);
    let Some(svc) = svc
        .as_deref()
        .filter(|s| endpoint::core::service_selector(s).is_some())
    else {
        // Gone, or no selector any more: our slices go (the GC would collect them too).
        let plan = core::SlicePlan {
            delete: existing
                .into_iter()
                .filter_map(|s| s.metadata.name)
                .collect(),
            ..Default::default()
        };
        apply_plan(&api, &key, plan, &ctx.tracker).await?;
        return Ok(None);
    };
    if svc.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let pods = ctx.pods.selected(svc, &ctx.shared.pods.store());
    let selected: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();
    let groups = core::service_groups(svc, &selected);
    let template = core::SliceTemplate::for_service(
        svc,
        owner::controller_reference("v1", "Service", &svc.metadata),
    );
    let plan = core::reconcile(&template, &groups, &existing);
    if plan.is_empty() {
        return Ok(None);
    }
    if let Err(e) = apply_plan(&api, &key, plan, &ctx.tracker).await {
        if !e.is_conflict() {
            ctx.shared.events.publish(
                svc.object_reference(),
                "Warning",
                "FailedToUpdateEndpointSlices",
                format!("Error updating Endpoint Slices for Service {key}: {e}"),
            );
        }
        return Err(e.into());
    }
    Ok(None)
}
