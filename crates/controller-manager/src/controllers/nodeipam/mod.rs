//! Node IPAM controller (Kubernetes' `node-ipam-controller`, range allocator): every node gets a
//! `/--node-cidr-mask-size` of `--cluster-cidr` (default `127.244.0.0/16`, `/24`) in
//! `spec.podCIDR` and `spec.podCIDRs`; the sim kubelet adopts what it is given. A deleted node's
//! subnet is free again. One worker, and the subnets handed out but not yet seen in the cache are
//! remembered, so two nodes never get the same subnet. Decisions in [`core`].

pub mod core;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use niwa_client::runtime::watcher;
use niwa_client::{Action, Controller, Patch, ResourceExt, Store};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::Shared;

struct Ctx {
    shared: Arc<Shared>,
    allocator: core::Allocator,
    nodes: Store<Node>,
    /// node name → subnet index written but maybe not yet in the cache.
    in_flight: Mutex<HashMap<String, u32>>,
}

pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let allocator = match core::Allocator::new(
        &shared.settings.cluster_cidr,
        shared.settings.node_cidr_mask_size,
    ) {
        Ok(a) => a,
        Err(err) => {
            tracing::error!(%err, "node-ipam-controller: bad --cluster-cidr; not running");
            return;
        }
    };
    let controller = Controller::new(shared.client.cluster::<Node>(), watcher::Config::default());
    let ctx = Arc::new(Ctx {
        shared,
        allocator,
        nodes: controller.store(),
        in_flight: Mutex::default(),
    });
    controller
        .run(
            reconcile,
            |_, _: &niwa_client::Error, _| Action::requeue_with_backoff(),
            ctx,
            1,
            shutdown,
        )
        .await;
}

async fn reconcile(node: Arc<Node>, ctx: Arc<Ctx>) -> Result<Action, niwa_client::Error> {
    if node.metadata.deletion_timestamp.is_some() || core::pod_cidr(&node).is_some() {
        return Ok(Action::await_change());
    }
    let name = node.name_any();
    let mut in_flight = ctx.in_flight.lock().await;
    let nodes = ctx.nodes.state();
    // Forget writes the cache shows now, and nodes that are gone.
    in_flight.retain(|n, _| {
        nodes
            .iter()
            .any(|x| x.metadata.name.as_deref() == Some(n) && core::pod_cidr(x).is_none())
    });
    let mut taken: BTreeSet<u32> = nodes
        .iter()
        .filter(|n| n.metadata.name.as_deref() != Some(name.as_str()))
        .filter_map(|n| ctx.allocator.index_of(n))
        .collect();
    taken.extend(
        in_flight
            .iter()
            .filter(|(n, _)| **n != name)
            .map(|(_, i)| *i),
    );
    match ctx.allocator.decide(&node, &taken) {
        core::Decision::Keep => Ok(Action::await_change()),
        core::Decision::Exhausted => {
            ctx.shared.events.publish(
                node.object_reference(),
                "Warning",
                "CIDRNotAvailable",
                format!("Node {name} status is now: CIDRNotAvailable"),
            );
            Ok(Action::requeue(Duration::from_secs(30)))
        }
        core::Decision::Assign(cidr) => {
            let c = cidr.to_string();
            let patch = serde_json::json!({"spec": {"podCIDR": c, "podCIDRs": [c]}});
            match ctx
                .shared
                .client
                .cluster::<Node>()
                .patch(&name, &Patch::Merge(patch))
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_not_found() => return Ok(Action::await_change()),
                Err(e) => {
                    ctx.shared.events.publish(
                        node.object_reference(),
                        "Warning",
                        "CIDRAssignmentFailed",
                        format!("Node {name} status is now: CIDRAssignmentFailed ({e})"),
                    );
                    return Err(e);
                }
            }
            if let Some(i) = ctx.allocator.index_of_cidr(&cidr) {
                in_flight.insert(name.clone(), i);
            }
            tracing::info!(node = %name, cidr = %c, "podCIDR assigned");
            ctx.shared.events.publish(
                node.object_reference(),
                "Normal",
                "CIDRAssigned",
                format!("Node {name} was given podCIDR {c}"),
            );
            Ok(Action::await_change())
        }
    }
}
