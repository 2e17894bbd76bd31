//! Deployment controller: ReplicaSets per pod template, rolling update / Recreate, revisions and
//! rollback, proportional scaling, progress deadline. Decisions in [`core`], helpers in [`util`].
//!
//! The shell: a [`niwa_client::Controller`] over Deployments that also watches ReplicaSets (a
//! ReplicaSet's controller, or every Deployment selecting an orphan) and pod deletions (Recreate
//! waits for the old pods to be gone). Each reconcile claims ReplicaSets, runs [`core::sync`] and
//! performs its steps in order, stopping at the first failure.

pub mod core;
pub mod util;

use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, stream};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use niwa_client::runtime::watcher;
use niwa_client::{Action, Api, Controller, DeleteParams, ObjectRef, Patch, ResourceExt, Store};
use tokio_util::sync::CancellationToken;

use self::core::Step;
use super::Shared;
use crate::informer::Change;
use crate::util::own_writes::OwnWrites;
use crate::util::owner::{self, Claim};

#[derive(Debug, thiserror::Error)]
pub enum DeploymentControllerError {
    #[error(transparent)]
    Api(#[from] niwa_client::Error),
    #[error("invalid selector: {0}")]
    Selector(#[from] niwa_api::selector::SelectorError),
    #[error(transparent)]
    Spec(#[from] util::DeploymentError),
    #[error("the ReplicaSet store is not running")]
    NoStore,
}

struct Ctx {
    shared: Arc<Shared>,
    replica_sets: Store<ReplicaSet>,
    /// Our last write of each Deployment (status, revision annotation), until the cache shows it.
    own_writes: OwnWrites<Deployment>,
}

fn selector(
    d: &Deployment,
) -> Result<niwa_api::selector::LabelSelector, niwa_api::selector::SelectorError> {
    niwa_api::selector::LabelSelector::from_api(d.spec.as_ref().map(|s| &s.selector))
}

/// The Deployments a ReplicaSet change concerns: its controller, or those selecting an orphan.
fn keys_for_rs(rs: &ReplicaSet, deployments: &Store<Deployment>) -> Vec<ObjectRef> {
    let ns = rs.metadata.namespace.clone().unwrap_or_default();
    if let Some(c) = owner::controller_of(&rs.metadata) {
        return if c.kind == "Deployment" {
            vec![ObjectRef::new(&c.name).within(&ns)]
        } else {
            Vec::new()
        };
    }
    let labels = rs.metadata.labels.clone().unwrap_or_default();
    deployments
        .filter(|d| {
            d.metadata.namespace.as_deref() == Some(ns.as_str())
                && selector(d).is_ok_and(|s| !s.is_everything() && s.matches(&labels))
        })
        .iter()
        .map(|d| d.object_ref())
        .collect()
}

/// A deleted pod of one of a Recreate Deployment's ReplicaSets requeues the Deployment (Recreate
/// waits for the old pods to be gone). As Kubernetes' `deletePod`, other strategies ignore pod
/// deletions: a RollingUpdate pass reads only ReplicaSets, whose status changes requeue it (a
/// scale-down of 2,500 pods would otherwise be 2,500 Deployment syncs).
fn keys_for_pod(
    change: &Change<Pod>,
    replica_sets: &Store<ReplicaSet>,
    deployments: &Store<Deployment>,
) -> Vec<ObjectRef> {
    let Change::Deleted(pod) = change else {
        return Vec::new();
    };
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let Some(c) = owner::controller_of(&pod.metadata).filter(|c| c.kind == "ReplicaSet") else {
        return Vec::new();
    };
    replica_sets
        .get(&ObjectRef::new(&c.name).within(ns))
        .and_then(|rs| {
            owner::controller_of(&rs.metadata)
                .filter(|o| o.kind == "Deployment")
                .map(|o| ObjectRef::new(&o.name).within(ns))
        })
        .filter(|key| deployments.get(key).is_some_and(|d| util::is_recreate(&d)))
        .into_iter()
        .collect()
}

pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let controller = Controller::new(
        shared.client.all::<Deployment>(),
        watcher::Config::default(),
    );
    let deployments = controller.store();
    let deployments_for_pods = deployments.clone();
    let controller = controller.watches(
        shared.client.all::<ReplicaSet>(),
        watcher::Config::default(),
        move |rs: &ReplicaSet| keys_for_rs(rs, &deployments),
    );
    let Some(replica_sets) = controller.store_for::<ReplicaSet>() else {
        tracing::error!("deployment controller: no ReplicaSet store");
        return;
    };
    let rs_for_pods = replica_sets.clone();
    let pod_keys = shared
        .pods
        .subscribe()
        .flat_map(move |c| stream::iter(keys_for_pod(&c, &rs_for_pods, &deployments_for_pods)));
    shared.pods.store().wait_until_ready().await;
    let workers = shared.concurrency.deployment;
    let ctx = Arc::new(Ctx {
        shared,
        replica_sets,
        own_writes: OwnWrites::new(),
    });
    controller
        .reconcile_on(pod_keys)
        .run(reconcile, error_policy, ctx, workers, shutdown)
        .await;
}

fn error_policy(d: Arc<Deployment>, err: &DeploymentControllerError, ctx: Arc<Ctx>) -> Action {
    match err {
        DeploymentControllerError::Selector(_) | DeploymentControllerError::Spec(_) => {
            ctx.shared.events.publish(
                d.object_reference(),
                "Warning",
                "InvalidSpec",
                err.to_string(),
            );
            Action::await_change()
        }
        _ => Action::requeue_with_backoff(),
    }
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Ctx>) -> Result<Action, DeploymentControllerError> {
    let shared = &ctx.shared;
    let ns = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let key = format!("{ns}/{name}");
    // Our previous status write may not have reached the cache yet (the ReplicaSet status change
    // that triggers this sync often arrives first): sync from it, not from the version it replaced.
    let d = ctx.own_writes.freshest(&key, d);
    let now = shared.clock.now();
    let rs_api: Api<ReplicaSet> = shared.client.namespaced(&ns);
    let sel = selector(&d)?;

    // Claim ReplicaSets (adopt orphans, release those no longer selected).
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let deleting = d.metadata.deletion_timestamp.is_some();
    let empty = Default::default();
    let mut owned: Vec<ReplicaSet> = Vec::new();
    let candidates = ctx
        .replica_sets
        .filter(|r| r.metadata.namespace.as_deref() == Some(ns.as_str()));
    let oref = owner::controller_reference("apps/v1", "Deployment", &d.metadata);
    for rs in &candidates {
        match owner::claim(&rs.metadata, &uid, deleting, &sel, &empty) {
            Claim::Owned => owned.push((**rs).clone()),
            Claim::Adopt => {
                let patch = Patch::Merge(owner::adopt_patch(&rs.metadata, &oref));
                match rs_api.patch(&rs.name_any(), &patch).await {
                    Ok(adopted) => owned.push(adopted),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Claim::Release => {
                let patch = Patch::Merge(owner::release_patch(&rs.metadata, &uid));
                if let Err(e) = rs_api.patch(&rs.name_any(), &patch).await
                    && !e.is_not_found()
                {
                    return Err(e.into());
                }
            }
            Claim::Ignore => {}
        }
    }
    // The pods of our ReplicaSets, from the owner index: only Recreate reads them (Kubernetes'
    // `getPodMapForDeployment` runs only for it), and at 10,000 pods reading them on every pass
    // of a RollingUpdate was most of this sync's cost.
    let pods: Vec<Arc<Pod>> = if util::is_recreate(&d) {
        owned
            .iter()
            .flat_map(|r| shared.pods_of(&r.metadata, false))
            .collect()
    } else {
        Vec::new()
    };
    let pod_refs: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();

    let plan = core::sync(&d, &owned, &pod_refs, now)?;
    let regarding = d.object_reference();
    let d_api: Api<Deployment> = shared.client.namespaced(&ns);
    let mut latest: Deployment = (*d).clone();
    for step in plan.steps {
        match step {
            Step::CreateReplicaSet(rs) => {
                let rs_name = rs.name_any();
                match rs_api.create(&rs).await {
                    Ok(_) => {}
                    Err(e) if e.is_already_exists() => {
                        let existing = rs_api.get_opt(&rs_name).await?;
                        let ours = existing.as_ref().is_some_and(|x| {
                            owner::is_controlled_by(&x.metadata, &uid)
                                && x.spec
                                    .as_ref()
                                    .and_then(|s| s.template.as_ref())
                                    .is_some_and(|t| {
                                        util::equal_ignore_hash(t, &util::template(&d))
                                    })
                        });
                        if ours {
                            // Our cache was behind: the next pass sees it.
                            return Ok(Action::requeue(std::time::Duration::from_millis(200)));
                        }
                        // A hash collision: count it so the next pass computes another name.
                        latest.status = Some(core::collision_status(&latest));
                        d_api.replace_status(&latest).await?;
                        return Ok(Action::requeue(std::time::Duration::from_millis(200)));
                    }
                    Err(e) => {
                        if let Some(st) =
                            core::create_failed_status(&latest, &rs_name, &e.to_string(), now)
                        {
                            latest.status = Some(st);
                            let _ = d_api.replace_status(&latest).await;
                        }
                        shared.events.publish(
                            regarding.clone(),
                            "Warning",
                            "FailedCreate",
                            format!("Failed to create new replica set {rs_name:?}: {e}"),
                        );
                        return Err(e.into());
                    }
                }
            }
            Step::UpdateReplicaSet(rs) => {
                let base = owned.iter().find(|o| o.metadata.name == rs.metadata.name);
                update_replica_set(&rs_api, base, rs).await?;
            }
            Step::DeleteReplicaSet(rs_name) => {
                match rs_api.delete(&rs_name, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Step::SetRevision(rev) => {
                let patch = serde_json::json!({"metadata": {"annotations": {util::REVISION_ANNOTATION: rev}}});
                let patched = d_api.patch(&name, &Patch::Merge(patch)).await?;
                let replaced = latest.metadata.resource_version.take();
                latest.metadata.resource_version = patched.metadata.resource_version.clone();
                latest.metadata.annotations = patched.metadata.annotations.clone();
                // The patched object is the apiserver's state after our write: newer than
                // anything the cache has shown, the version we synced from included.
                ctx.own_writes
                    .record(&key, replaced.as_deref(), patched, Instant::now());
            }
            Step::UpdateStatus(st) => {
                latest.status = Some(st);
                let written = match d_api.replace_status(&latest).await {
                    Ok(w) => w,
                    Err(e) => {
                        if e.is_not_found() {
                            ctx.own_writes.forget(&key);
                        }
                        return Err(e.into());
                    }
                };
                let replaced = latest.metadata.resource_version.take();
                latest.metadata.resource_version = written.metadata.resource_version.clone();
                ctx.own_writes
                    .record(&key, replaced.as_deref(), written, Instant::now());
            }
            Step::Event {
                type_,
                reason,
                message,
            } => {
                shared
                    .events
                    .publish(regarding.clone(), type_, reason, message);
            }
        }
    }
    Ok(match plan.requeue_after {
        Some(after) => Action::requeue(after),
        None => Action::await_change(),
    })
}

/// Replace a ReplicaSet with the spec and annotations this pass decided on. `base` is the cached
/// copy the decision was made from. A conflict usually means only the ReplicaSet controller's status
/// write got in between (it writes after nearly every pod change, so at 10,000 pods the cached copy
/// is rarely current): then the ReplicaSet is read again and, if its spec and annotations are still
/// those of `base`, the change is applied to the fresh copy once — the compare-and-swap still covers
/// everything the decision depended on. Any other change fails as the conflict it is, and the
/// Deployment is synced again.
async fn update_replica_set(
    api: &Api<ReplicaSet>,
    base: Option<&ReplicaSet>,
    rs: ReplicaSet,
) -> Result<(), niwa_client::Error> {
    let err = match api.replace(&rs).await {
        Ok(_) => return Ok(()),
        Err(e) if e.is_conflict() => e,
        Err(e) => return Err(e),
    };
    let Some(base) = base else {
        return Err(err);
    };
    let Some(mut fresh) = api.get_opt(&rs.name_any()).await? else {
        return Err(err);
    };
    if fresh.metadata.uid != base.metadata.uid
        || fresh.metadata.annotations != base.metadata.annotations
        || fresh.spec != base.spec
    {
        return Err(err);
    }
    fresh.metadata.annotations = rs.metadata.annotations;
    fresh.spec = rs.spec;
    api.replace(&fresh).await.map(|_| ())
}
