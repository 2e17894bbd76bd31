//! ReplicaSet controller: keeps `spec.replicas` pods matching the selector.
//!
//! The shell: a [`niwa_client::Controller`] over ReplicaSets, re-queued by changes of the shared pod
//! informer (a pod's controller, or — for orphans — every ReplicaSet whose selector matches it).
//! Each reconcile claims pods (adopt/release), creates or deletes pods when the expectations of the
//! previous pass are met, and writes the status. Decisions in [`core`].

pub mod core;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use niwa_client::runtime::watcher;
use niwa_client::{Action, Api, Controller, ObjectRef, Patch, ResourceExt, Store};
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::pod_control::{create_pods, delete_pods};
use crate::informer::Change;
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
    expectations: Expectations,
    /// Our last status write of each ReplicaSet, until the cache shows it.
    own_writes: OwnWrites<ReplicaSet>,
}

/// Pods per namespace label selectors are cheap to evaluate; this maps a pod change to the
/// ReplicaSets that must look again.
fn keys_for_pod(change: &Change<Pod>, rs_store: &Store<ReplicaSet>) -> Vec<ObjectRef> {
    let Some(pod) = change.object() else {
        return rs_store.state().iter().map(|r| r.object_ref()).collect();
    };
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    if let Some(c) = owner::controller_of(&pod.metadata) {
        return if c.kind == "ReplicaSet" {
            vec![ObjectRef::new(&c.name).within(&ns)]
        } else {
            Vec::new()
        };
    }
    // An orphan: every ReplicaSet in its namespace that selects it may adopt it.
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    rs_store
        .filter(|rs| {
            rs.metadata.namespace.as_deref() == Some(ns.as_str())
                && core::selector(rs).is_ok_and(|s| !s.is_everything() && s.matches(&labels))
        })
        .iter()
        .map(|r| r.object_ref())
        .collect()
}

pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let controller = Controller::new(
        shared.client.all::<ReplicaSet>(),
        watcher::Config::default(),
    );
    let rs_store = controller.store();
    let mapper_store = rs_store.clone();
    let pod_keys = shared
        .pods
        .subscribe()
        .flat_map(move |c| stream::iter(keys_for_pod(&c, &mapper_store)));
    shared.pods.store().wait_until_ready().await;
    let workers = shared.concurrency.replicaset;
    let ctx = Arc::new(Ctx {
        shared,
        replica_sets: rs_store,
        expectations: Expectations::new(),
        own_writes: OwnWrites::new(),
    });
    controller
        .reconcile_on(pod_keys)
        .run(reconcile, error_policy, ctx, workers, shutdown)
        .await;
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

    let mut claimed_names = claims.owned.clone();
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
            for pod_name in &claims.adopt {
                let Some(p) = refs
                    .iter()
                    .find(|p| p.metadata.name.as_deref() == Some(pod_name))
                else {
                    continue;
                };
                match pods_api
                    .patch(
                        pod_name,
                        &Patch::Merge(owner::adopt_patch(&p.metadata, &oref)),
                    )
                    .await
                {
                    Ok(_) => claimed_names.push(pod_name.clone()),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    for pod_name in &claims.release {
        let Some(p) = refs
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(pod_name))
        else {
            continue;
        };
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
    let claimed_names: std::collections::HashSet<String> = claimed_names.into_iter().collect();
    let claimed: Vec<&Pod> = refs
        .iter()
        .copied()
        .filter(|p| {
            p.metadata
                .name
                .as_ref()
                .is_some_and(|n| claimed_names.contains(n))
        })
        .collect();

    let mut manage_error = None;
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
        ctx.expectations
            .expect(&key, created, deleted, Instant::now());
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
