//! EndpointSlice controller (Kubernetes' `endpointslice-controller`): for every Service with a
//! selector, EndpointSlices (≤ 100 endpoints each, owned by the Service, labelled
//! `kubernetes.io/service-name` and managed-by `endpointslice-controller.k8s.io`) with the
//! endpoints of the pods it selects. niwa-proxy and niwa-dns read these.
//!
//! [`mirroring`] is the `endpointslice-mirroring-controller`: selector-less Services' user-written
//! Endpoints, mirrored into slices. Both share the reconciler of [`core`] and the [`Tracker`]
//! that keeps a sync from acting on a cache that has not yet seen its own previous writes (a
//! slice created with `generateName` would otherwise be created twice).

pub mod core;
pub mod mirroring;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use niwa_client::runtime::watcher;
use niwa_client::{Api, ObjectRef, ResourceExt, Store, WorkQueue};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::endpoint::{self, PodServices, change_keys};
use super::keyed;
use crate::informer::{Change, Informer};
use crate::util::owner;

#[derive(Debug, thiserror::Error)]
pub enum SliceError {
    #[error(transparent)]
    Api(#[from] niwa_client::Error),
}

/// How long a sync waits at most for the cache to show its previous writes.
const TRACKER_PATIENCE: Duration = Duration::from_secs(5);

/// The slice writes of each owner that the cache has not shown yet (Kubernetes'
/// `EndpointSliceTracker`).
#[derive(Default)]
pub struct Tracker {
    pending: Mutex<HashMap<ObjectRef, (Instant, Vec<Expect>)>>,
}

#[derive(Debug, Clone)]
enum Expect {
    /// The slice exists at this resourceVersion or later.
    AtLeast(String, u64),
    Gone(String),
}

fn rv(slice: &EndpointSlice) -> u64 {
    slice
        .metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl Tracker {
    /// Whether the cache reflects every write recorded for `owner`.
    pub fn caught_up(&self, owner: &ObjectRef, slices: &Store<EndpointSlice>) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some((since, expects)) = pending.get(owner) else {
            return true;
        };
        let ns = owner.namespace.clone().unwrap_or_default();
        let seen = expects.iter().all(|e| match e {
            Expect::AtLeast(name, v) => slices
                .get(&ObjectRef::new(name).within(&ns))
                .is_some_and(|s| rv(&s) >= *v),
            Expect::Gone(name) => slices.get(&ObjectRef::new(name).within(&ns)).is_none(),
        });
        if seen || since.elapsed() > TRACKER_PATIENCE {
            pending.remove(owner);
            return true;
        }
        false
    }

    fn record(&self, owner: &ObjectRef, expects: Vec<Expect>) {
        if expects.is_empty() {
            return;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.insert(owner.clone(), (Instant::now(), expects));
    }
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
                && s.labels().get(core::SERVICE_NAME_LABEL) == Some(&owner.name)
                && s.labels().get(core::MANAGED_BY_LABEL).map(String::as_str) == Some(manager)
        })
        .iter()
        .map(|s| (**s).clone())
        .collect()
}

/// The Service key a slice change concerns (managed by `manager`).
pub fn slice_keys(
    change: &Change<EndpointSlice>,
    manager: &str,
    all: &Store<EndpointSlice>,
) -> Vec<ObjectRef> {
    let key = |s: &EndpointSlice| {
        let labels = s.labels();
        (labels.get(core::MANAGED_BY_LABEL).map(String::as_str) == Some(manager))
            .then(|| labels.get(core::SERVICE_NAME_LABEL).cloned())
            .flatten()
            .map(|n| ObjectRef::new(&n).within(&s.namespace().unwrap_or_default()))
    };
    match change.object() {
        Some(s) => key(s).into_iter().collect(),
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
            Ok(s) => expects.push(Expect::AtLeast(s.name_any(), rv(&s))),
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    for slice in plan.create {
        match api.create(&slice).await {
            Ok(s) => expects.push(Expect::AtLeast(s.name_any(), rv(&s))),
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
    tracker: Tracker,
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
    let index = Arc::new(PodServices::default());
    let (svc_store, slice_store) = (services.store(), slices.store());
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
            let s = slice_store.clone();
            slices
                .subscribe()
                .flat_map(move |c| stream::iter(slice_keys(&c, core::CONTROLLER_NAME, &s)))
                .boxed()
        },
    ]);
    svc_store.wait_until_ready().await;
    shared.pods.store().wait_until_ready().await;
    slice_store.wait_until_ready().await;
    let queue = WorkQueue::new();
    for s in svc_store.state() {
        queue.add(s.object_ref());
    }
    let ctx = Arc::new(Ctx {
        shared: shared.clone(),
        services: svc_store,
        slices: slice_store,
        tracker: Tracker::default(),
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
        return Ok(Some(Duration::from_millis(200)));
    }
    let ns = key.namespace.clone().unwrap_or_default();
    let api = ctx.shared.client.namespaced::<EndpointSlice>(&ns);
    let existing = slices_of(&ctx.slices, &key, core::CONTROLLER_NAME);
    let svc = ctx.services.get(&key);
    let selector = svc.as_deref().and_then(endpoint::core::service_selector);
    let (Some(svc), Some(selector)) = (svc.as_deref(), selector) else {
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
    // One pass over the cache (no intermediate list of every pod of the namespace).
    let pods = ctx.shared.pods.store().filter(|p| {
        p.metadata.namespace.as_deref() == Some(ns.as_str()) && endpoint::core::selects(selector, p)
    });
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
