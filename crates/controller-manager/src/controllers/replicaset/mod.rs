//! ReplicaSet controller: keeps `spec.replicas` pods matching the selector.
//!
//! The shell: a [`niwa_client::Controller`] over ReplicaSets, re-queued by changes of the shared pod
//! informer (a pod's controller, or — for orphans — every ReplicaSet whose selector matches it),
//! at once or batched as [`triggers`] decides. Each reconcile claims pods (adopt/release), creates
//! or deletes pods when the expectations of the previous pass are met, and writes the status.
//! Decisions in [`core`].

pub mod core;
pub mod triggers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use niwa_client::runtime::watcher;
use niwa_client::{Action, Api, Controller, Patch, ResourceExt, Store};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::Shared;
use super::pod_control::{create_pods, delete_pods};
use crate::util::expectations::Expectations;
use crate::util::own_writes::OwnWrites;
use crate::util::owner;

#[derive(Debug, thiserror::Error)]
pub enum ReplicaSetError {
    #[error(transparent)]
    Api(#[from] niwa_client::Error),
    #[error("invalid selector: {0}")]
    Selector(#[from] niwa_api::selector::SelectorError),
}

struct Ctx {
    shared: Arc<Shared>,
    replica_sets: Store<ReplicaSet>,
    /// Shared with the pod triggers, which tell it the pod events.
    expectations: Arc<Expectations>,
    /// Our last status write of each ReplicaSet, until the cache shows it.
    own_writes: OwnWrites<ReplicaSet>,
}

pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let controller = Controller::new(
        shared.client.all::<ReplicaSet>(),
        watcher::Config::default(),
    );
    let rs_store = controller.store();
    let expectations = Arc::new(Expectations::new());
    // Pod changes go to the queue directly (not `reconcile_on`): most wait for the batch period.
    let queue = controller.queue();
    let pod_changes = shared.pods.subscribe();
    let (mapper_store, mapper_expectations) = (rs_store.clone(), expectations.clone());
    let token = shutdown.clone();
    let pod_triggers = tokio::spawn(
        async move {
            let mut pod_changes = std::pin::pin!(pod_changes);
            loop {
                let change = tokio::select! {
                    _ = token.cancelled() => break,
                    c = pod_changes.next() => c,
                };
                let Some(change) = change else { break };
                for (key, when) in triggers::route(&change, &mapper_store, &mapper_expectations) {
                    queue.add_after(key, when.delay());
                }
            }
        }
        .instrument(tracing::debug_span!(
            "pod-triggers",
            controller = "replicaset"
        )),
    );
    shared.pods.store().wait_until_ready().await;
    let workers = shared.concurrency.replicaset;
    let ctx = Arc::new(Ctx {
        shared,
        replica_sets: rs_store,
        expectations,
        own_writes: OwnWrites::new(),
    });
    controller
        .run(reconcile, error_policy, ctx, workers, shutdown)
        .await;
    let _ = pod_triggers.await;
}

fn error_policy(rs: Arc<ReplicaSet>, err: &ReplicaSetError, ctx: Arc<Ctx>) -> Action {
    if let ReplicaSetError::Selector(e) = err {
        ctx.shared.events.publish(
            rs.object_reference(),
            "Warning",
            "InvalidSelector",
            e.to_string(),
        );
        return Action::await_change();
    }
    Action::requeue_with_backoff()
}

async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Ctx>) -> Result<Action, ReplicaSetError> {
    let shared = &ctx.shared;
    let ns = rs.namespace().unwrap_or_default();
    let name = rs.name_any();
    let key = format!("{ns}/{name}");
    // Our previous status write may not have reached the cache yet; deciding (and writing) from
    // the copy it replaced would compare against an old status and conflict.
    let rs = ctx.own_writes.freshest(&key, rs);
    let now = shared.clock.now();
    let selector = core::selector(&rs)?;
    let pods_api: Api<Pod> = shared.client.namespaced(&ns);
    // Expectations before the pods are read, as syncReplicaSet does: the owner index never lags
    // the pod cache, so every pod the expectations saw in the cache is in `all`.
    let satisfied = ctx
        .expectations
        .satisfied(&key, Instant::now(), |n| shared.pod_seen(&ns, n));
    // Our pods and the namespace's orphans (FilterPodsByOwner): pods of other controllers are
    // never claimed, so they need not be read.
    let all = shared.pods_of(&rs.metadata, true);
    let refs: Vec<&Pod> = all.iter().map(|p| p.as_ref()).collect();
    let claims = core::claim_pods(&rs, &selector, &refs);

    let mut claimed: Vec<&Pod> = claims.owned;
    if !claims.adopt.is_empty() {
        // Kubernetes re-reads the owner (uncached) before adopting: a ReplicaSet deleted or
        // replaced meanwhile must not adopt.
        let fresh = shared
            .client
            .namespaced::<ReplicaSet>(&ns)
            .get_opt(&name)
            .await?;
        let can_adopt = fresh.is_some_and(|f| {
            f.metadata.uid == rs.metadata.uid && f.metadata.deletion_timestamp.is_none()
        });
        if can_adopt {
            let oref = owner::controller_reference("apps/v1", "ReplicaSet", &rs.metadata);
            for p in claims.adopt {
                let pod_name = p.metadata.name.as_deref().unwrap_or_default();
                match pods_api
                    .patch(
                        pod_name,
                        &Patch::Merge(owner::adopt_patch(&p.metadata, &oref)),
                    )
                    .await
                {
                    Ok(_) => claimed.push(p),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    for p in claims.release {
        let pod_name = p.metadata.name.as_deref().unwrap_or_default();
        let uid = rs.metadata.uid.clone().unwrap_or_default();
        if let Err(e) = pods_api
            .patch(
                pod_name,
                &Patch::Merge(owner::release_patch(&p.metadata, &uid)),
            )
            .await
            && !e.is_not_found()
        {
            return Err(e.into());
        }
    }

    let mut manage_error = None;
    let mut settled = false;
    if satisfied && rs.metadata.deletion_timestamp.is_none() {
        // The siblings' pods only rank a scale-down.
        let related = if claimed.len() > core::desired_replicas(&rs) as usize {
            related_pods(&rs, &ctx.replica_sets, shared)
        } else {
            Vec::new()
        };
        let related_refs: Vec<&Pod> = if related.is_empty() {
            claimed.clone()
        } else {
            related.iter().map(|p| p.as_ref()).collect()
        };
        let plan = core::manage_replicas(&rs, &claimed, &related_refs, now);
        let regarding = rs.object_reference();
        let mut created = Vec::new();
        let mut deleted = Vec::new();
        if plan.create > 0 {
            let template = rs
                .spec
                .as_ref()
                .and_then(|s| s.template.clone())
                .unwrap_or_default();
            let oref = owner::controller_reference("apps/v1", "ReplicaSet", &rs.metadata);
            let pod = core::pod_from_template(&template, &rs.metadata, oref);
            let (names, err) = create_pods(
                &pods_api,
                vec![pod; plan.create],
                &regarding,
                &shared.events,
            )
            .await;
            created = names;
            manage_error = err.map(|e| e.to_string());
        }
        if !plan.delete.is_empty() {
            let (names, err) =
                delete_pods(&pods_api, plan.delete, &regarding, &shared.events).await;
            deleted = names;
            manage_error = manage_error.or(err.map(|e| e.to_string()));
        }
        let wrote = !(created.is_empty() && deleted.is_empty());
        ctx.expectations
            .expect(&key, created, deleted, Instant::now());
        // Events of pods that reached the cache before the expectations were recorded cannot
        // complete them: if that was all of them, nothing will trigger the next burst.
        settled = wrote && ctx.expectations.settle(&key, |n| shared.pod_seen(&ns, n));
    }

    let status = core::calculate_status(&rs, &claimed, manage_error.as_deref(), now);
    if rs.status.as_ref() != Some(&status) {
        let api = shared.client.namespaced::<ReplicaSet>(&ns);
        match update_status(&api, &rs, status.clone()).await {
            Ok((replaced, written)) => {
                ctx.own_writes
                    .record(&key, replaced.as_deref(), written, Instant::now());
            }
            Err(e) if e.is_not_found() => {
                ctx.expectations.forget(&key);
                ctx.own_writes.forget(&key);
                return Ok(Action::await_change());
            }
            Err(e) => return Err(e.into()),
        }
    }
    if manage_error.is_some() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    if settled {
        return Ok(Action::requeue(Duration::ZERO));
    }
    Ok(match core::requeue_for_availability(&rs, &status) {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}

/// How often a failed status write is retried on a freshly read ReplicaSet (Kubernetes'
/// `statusUpdateRetries`).
const STATUS_UPDATE_RETRIES: usize = 1;

/// Kubernetes' `updateReplicaSetStatus`: write `status` through the status subresource on the cached
/// copy; when that fails — typically a conflict because the deployment controller changed the
/// ReplicaSet's replicas or annotations, or our own previous status write has not reached the cache
/// yet — read the ReplicaSet fresh and write once more. `observedGeneration` stays the generation
/// this sync acted on, so a retry never claims to have seen a newer spec. Returns the
/// resourceVersion the successful write replaced and the written ReplicaSet.
async fn update_status(
    api: &Api<ReplicaSet>,
    cached: &ReplicaSet,
    status: ReplicaSetStatus,
) -> Result<(Option<String>, ReplicaSet), niwa_client::Error> {
    let name = cached.name_any();
    let mut rs = cached.clone();
    let mut attempt = 0;
    loop {
        rs.status = Some(status.clone());
        let err = match api.replace_status(&rs).await {
            Ok(written) => return Ok((rs.metadata.resource_version.take(), written)),
            Err(e) => e,
        };
        if attempt >= STATUS_UPDATE_RETRIES || err.is_not_found() {
            return Err(err);
        }
        attempt += 1;
        rs = api.get(&name).await?;
    }
}

/// The pods of every ReplicaSet with the same controller (a Deployment's ReplicaSets), for the
/// "doubled up" deletion rank (the ranking counts only the active ones).
fn related_pods(rs: &ReplicaSet, store: &Store<ReplicaSet>, shared: &Shared) -> Vec<Arc<Pod>> {
    let Some(owner_uid) = owner::controller_of(&rs.metadata).map(|o| o.uid.clone()) else {
        return Vec::new();
    };
    let ns = rs.metadata.namespace.clone();
    store
        .filter(|r| r.metadata.namespace == ns && owner::is_controlled_by(&r.metadata, &owner_uid))
        .iter()
        .flat_map(|r| shared.pods_of(&r.metadata, false))
        .collect()
}
