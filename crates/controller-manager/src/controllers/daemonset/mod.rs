//! DaemonSet controller: one pod per eligible node (nodeSelector, affinity, taints), following nodes
//! as they come and go; RollingUpdate (maxUnavailable, maxSurge) and OnDelete; ControllerRevisions.
//! Decisions in [`core`].
//!
//! The shell: a [`niwa_client::Controller`] over DaemonSets that owns ControllerRevisions, and is
//! re-queued by changes of its pods and (every DaemonSet) of nodes.

pub mod core;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};
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
    nodes: Store<Node>,
    revisions: Store<ControllerRevision>,
    expectations: Expectations,
}

pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let Some(nodes) = shared.nodes.clone() else {
        tracing::error!("daemonset controller: the node informer is not running");
        return;
    };
    let controller = Controller::new(shared.client.all::<DaemonSet>(), watcher::Config::default())
        .owns(
            shared.client.all::<ControllerRevision>(),
            watcher::Config::default(),
        );
    let Some(revisions) = controller.store_for::<ControllerRevision>() else {
        tracing::error!("daemonset controller: missing stores");
        return;
    };
    let ds_store = controller.store();
    let node_keys = nodes.subscribe().flat_map(move |_| {
        stream::iter(
            ds_store
                .state()
                .iter()
                .map(|d| d.object_ref())
                .collect::<Vec<_>>(),
        )
    });
    let pod_keys = shared
        .pods
        .subscribe()
        .flat_map(|c| stream::iter(super::owner_key(&c, "DaemonSet")));
    shared.pods.store().wait_until_ready().await;
    nodes.store().wait_until_ready().await;
    let workers = shared.concurrency.daemonset;
    let ctx = Arc::new(Ctx {
        nodes: nodes.store(),
        shared,
        revisions,
        expectations: Expectations::new(),
    });
    controller
        .reconcile_on(pod_keys)
        .reconcile_on(node_keys)
        .run(
            reconcile,
            |_, _, _| Action::requeue_with_backoff(),
            ctx,
            workers,
            shutdown,
        )
        .await;
}

async fn reconcile(ds: Arc<DaemonSet>, ctx: Arc<Ctx>) -> Result<Action, niwa_client::Error> {
    let shared = &ctx.shared;
    let ns = ds.namespace().unwrap_or_default();
    let key = format!("{ns}/{}", ds.name_any());
    if !ctx
        .expectations
        .satisfied(&key, Instant::now(), |n| shared.pod_seen(&ns, n))
    {
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    ctx.revisions.wait_until_ready().await;
    let uid = ds.metadata.uid.clone().unwrap_or_default();
    // Its pods from the owner index (the pods it controls, not every pod of the namespace).
    let all = shared.pods_of(&ds.metadata, false);
    let pods: Vec<&Pod> = all.iter().map(|p| p.as_ref()).collect();
    let nodes = ctx.nodes.state();
    let node_refs: Vec<&Node> = nodes.iter().map(|n| n.as_ref()).collect();
    let revs = ctx.revisions.filter(|r| {
        r.metadata.namespace.as_deref() == Some(ns.as_str())
            && owner::is_controlled_by(&r.metadata, &uid)
    });
    let rev_refs: Vec<&ControllerRevision> = revs.iter().map(|r| r.as_ref()).collect();
    let plan = core::sync(&ds, &node_refs, &pods, &rev_refs, shared.clock.now());

    let pods_api: Api<Pod> = shared.client.namespaced(&ns);
    let rev_api: Api<ControllerRevision> = shared.client.namespaced(&ns);
    let ds_api: Api<DaemonSet> = shared.client.namespaced(&ns);
    let regarding = ds.object_reference();
    let mut to_create = Vec::new();
    let mut to_delete = Vec::new();
    let mut failure = None;
    for step in plan.steps {
        let r: Result<(), niwa_client::Error> = match step {
            Step::Revision(r) => super::write_revision(&rev_api, r).await,
            Step::CreatePod { pod, .. } => {
                to_create.push(*pod);
                Ok(())
            }
            Step::DeletePod(name) => {
                to_delete.push(name);
                Ok(())
            }
            Step::UpdateStatus(st) => {
                let mut latest = (*ds).clone();
                latest.status = Some(st);
                ds_api.replace_status(&latest).await.map(|_| ())
            }
            // Pod creations and deletions are recorded by pod_control.
            Step::Event {
                type_: "Warning",
                reason,
                message,
            } => {
                shared
                    .events
                    .publish(regarding.clone(), "Warning", reason, message);
                Ok(())
            }
            Step::Event { .. } => Ok(()),
        };
        if let Err(e) = r {
            failure = Some(e);
            break;
        }
    }
    // Kubernetes' syncNodes: deletions and creations of one pass, in parallel batches.
    let (deleted, del_err) = delete_pods(&pods_api, to_delete, &regarding, &shared.events).await;
    let (created, create_err) = create_pods(&pods_api, to_create, &regarding, &shared.events).await;
    ctx.expectations
        .expect(&key, created, deleted, Instant::now());
    if let Some(e) = failure.or(del_err).or(create_err) {
        return Err(e);
    }
    Ok(match plan.requeue_after {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}
