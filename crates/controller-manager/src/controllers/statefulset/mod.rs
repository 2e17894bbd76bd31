//! StatefulSet controller: stable identities, ordered or parallel pod management, rolling update
//! with partition or OnDelete, volumeClaimTemplates, ControllerRevisions. Decisions in [`core`].
//!
//! The shell: a [`niwa_client::Controller`] over StatefulSets that owns ControllerRevisions,
//! caches PersistentVolumeClaims, and is re-queued by changes of its pods.

pub mod core;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use niwa_client::runtime::watcher;
use niwa_client::{Action, Api, Controller, ResourceExt, Store};
use tokio_util::sync::CancellationToken;

use self::core::Step;
use super::Shared;
use super::pod_control::{create_pods, delete_pods};
use crate::util::expectations::Expectations;
use crate::util::owner;

struct Ctx {
    shared: Arc<Shared>,
    revisions: Store<ControllerRevision>,
    claims: Store<PersistentVolumeClaim>,
    expectations: Expectations,
}

pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let controller = Controller::new(
        shared.client.all::<StatefulSet>(),
        watcher::Config::default(),
    )
    .owns(
        shared.client.all::<ControllerRevision>(),
        watcher::Config::default(),
    )
    .watches(
        shared.client.all::<PersistentVolumeClaim>(),
        watcher::Config::default(),
        |_: &PersistentVolumeClaim| Vec::new(),
    );
    let (Some(revisions), Some(claims)) = (
        controller.store_for::<ControllerRevision>(),
        controller.store_for::<PersistentVolumeClaim>(),
    ) else {
        tracing::error!("statefulset controller: missing stores");
        return;
    };
    let pod_keys = shared
        .pods
        .subscribe()
        .flat_map(|c| stream::iter(super::owner_key(&c, "StatefulSet")));
    shared.pods.store().wait_until_ready().await;
    let workers = shared.concurrency.statefulset;
    let ctx = Arc::new(Ctx {
        shared,
        revisions,
        claims,
        expectations: Expectations::new(),
    });
    controller
        .reconcile_on(pod_keys)
        .run(
            reconcile,
            |_, _, _| Action::requeue_with_backoff(),
            ctx,
            workers,
            shutdown,
        )
        .await;
}

async fn reconcile(set: Arc<StatefulSet>, ctx: Arc<Ctx>) -> Result<Action, niwa_client::Error> {
    let shared = &ctx.shared;
    let ns = set.namespace().unwrap_or_default();
    let key = format!("{ns}/{}", set.name_any());
    if !ctx
        .expectations
        .satisfied(&key, Instant::now(), |n| shared.pod_seen(&ns, n))
    {
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    if set.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    ctx.claims.wait_until_ready().await;
    ctx.revisions.wait_until_ready().await;
    let uid = set.metadata.uid.clone().unwrap_or_default();
    // Its pods from the owner index (the pods it controls, not every pod of the namespace).
    let all = shared.pods_of(&set.metadata, false);
    let pods: Vec<&Pod> = all.iter().map(|p| p.as_ref()).collect();
    let claim_names: Vec<String> = ctx
        .claims
        .filter(|c| c.metadata.namespace.as_deref() == Some(ns.as_str()))
        .iter()
        .map(|c| c.name_any())
        .collect();
    let revs = ctx.revisions.filter(|r| {
        r.metadata.namespace.as_deref() == Some(ns.as_str())
            && owner::is_controlled_by(&r.metadata, &uid)
    });
    let rev_refs: Vec<&ControllerRevision> = revs.iter().map(|r| r.as_ref()).collect();
    let plan = core::sync(&set, &pods, &claim_names, &rev_refs, shared.clock.now());

    let pods_api: Api<Pod> = shared.client.namespaced(&ns);
    let rev_api: Api<ControllerRevision> = shared.client.namespaced(&ns);
    let pvc_api: Api<PersistentVolumeClaim> = shared.client.namespaced(&ns);
    let set_api: Api<StatefulSet> = shared.client.namespaced(&ns);
    let regarding = set.object_reference();
    let mut created = Vec::new();
    let mut deleted = Vec::new();
    let mut failure = None;
    for step in plan.steps {
        let r: Result<(), niwa_client::Error> = match step {
            Step::Revision(r) => super::write_revision(&rev_api, r).await,
            Step::CreateClaim(pvc) => match pvc_api.create(&pvc).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_already_exists() => Ok(()),
                Err(e) => {
                    let name = pvc.name_any();
                    shared.events.publish(
                        regarding.clone(),
                        "Warning",
                        "FailedCreate",
                        format!(
                            "create Claim {name} for StatefulSet {} failed error: {e}",
                            set.name_any()
                        ),
                    );
                    Err(e)
                }
            },
            Step::CreatePod(pod) => {
                let (names, err) =
                    create_pods(&pods_api, vec![*pod], &regarding, &shared.events).await;
                created.extend(names);
                err.map_or(Ok(()), Err)
            }
            Step::DeletePod(name) => {
                let (names, err) =
                    delete_pods(&pods_api, vec![name], &regarding, &shared.events).await;
                deleted.extend(names);
                err.map_or(Ok(()), Err)
            }
            Step::UpdateStatus(st) => {
                let mut latest = (*set).clone();
                latest.status = Some(st);
                set_api.replace_status(&latest).await.map(|_| ())
            }
            // Pod creations and deletions are recorded by pod_control with Kubernetes' wording.
            Step::Event { .. } => Ok(()),
        };
        if let Err(e) = r {
            failure = Some(e);
            break;
        }
    }
    ctx.expectations
        .expect(&key, created, deleted, Instant::now());
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(match plan.requeue_after {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}
