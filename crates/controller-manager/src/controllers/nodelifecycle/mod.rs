//! Node lifecycle controller (Kubernetes' `node-lifecycle-controller` with its NoExecute taint
//! manager): every `--node-monitor-period` it looks at each node's heartbeats (its Lease in
//! `kube-node-lease` and its Ready condition); a node silent for `--node-monitor-grace-period`
//! becomes Ready=Unknown, its pods are marked not ready (so they leave Service endpoints) and it
//! gets the `node.kubernetes.io/unreachable` taints; pods on nodes with NoExecute taints are
//! evicted (deleted) after their tolerationSeconds — the ReplicaSet then replaces them on live
//! nodes. A node that comes back loses the taints. Decisions in [`core`].

pub mod core;

use std::sync::Arc;

use futures::{StreamExt, stream};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use niwa_client::runtime::watcher;
use niwa_client::{ObjectRef, Patch, ResourceExt};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::informer::Informer;

/// Pod writes (mark not ready, evict) in flight per node.
const POD_WRITES: usize = 16;

pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let Some(nodes) = shared.nodes.clone() else {
        tracing::error!("node-lifecycle-controller needs the node informer");
        return;
    };
    let mut tasks = JoinSet::new();
    let leases = Informer::start(
        shared.client.namespaced::<Lease>("kube-node-lease"),
        watcher::Config::default(),
        &mut tasks,
        shutdown.clone(),
    );
    let (node_store, lease_store) = (nodes.store(), leases.store());
    tokio::select! {
        _ = async {
            node_store.wait_until_ready().await;
            lease_store.wait_until_ready().await;
            shared.pods.store().wait_until_ready().await;
        } => {}
        _ = shutdown.cancelled() => return,
    }
    let mut health = core::Health::default();
    let period = shared.settings.node_monitor_period;
    let mut tick = tokio::time::interval(period.max(std::time::Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let all = node_store.state();
        health.retain(|n| all.iter().any(|x| x.metadata.name.as_deref() == Some(n)));
        for node in all {
            let lease =
                lease_store.get(&ObjectRef::new(&node.name_any()).within("kube-node-lease"));
            if let Err(err) = monitor(&shared, &mut health, &node, lease.as_deref()).await {
                tracing::warn!(node = %node.name_any(), %err, "node lifecycle step failed");
            }
        }
    }
    while tasks.join_next().await.is_some() {}
}

async fn monitor(
    shared: &Shared,
    health: &mut core::Health,
    node: &Node,
    lease: Option<&Lease>,
) -> Result<(), niwa_client::Error> {
    let name = node.name_any();
    let now = shared.clock.now();
    let silent = health.observe(&name, core::heartbeat(node, lease), now);
    let grace = jiff::SignedDuration::try_from(shared.settings.node_monitor_grace_period)
        .unwrap_or(jiff::SignedDuration::from_secs(40));
    let unreachable = silent > grace;
    let not_ready =
        !unreachable && core::ready_condition(node).is_some_and(|c| c.status == "False");
    let api = shared.client.cluster::<Node>();
    if unreachable && let Some(conditions) = core::unknown_conditions(node, now) {
        let mut updated = node.clone();
        updated
            .status
            .get_or_insert_with(Default::default)
            .conditions = Some(conditions);
        match api.replace_status(&updated).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        }
        tracing::info!(node = %name, silent = %silent, "node unreachable: Ready=Unknown");
        shared.events.publish(
            node.object_reference(),
            "Normal",
            "NodeNotReady",
            format!("Node {name} status is now: NodeNotReady"),
        );
        mark_pods_not_ready(shared, &name).await;
    }
    let mut taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    if let Some(desired) = core::desired_taints(node, unreachable, not_ready, now) {
        let patch = serde_json::json!({"spec": {"taints": desired}});
        match api.patch(&name, &Patch::Merge(patch)).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        }
        taints = desired;
    }
    if taints.iter().any(|t| t.effect == "NoExecute") {
        evict(shared, &name, &taints, now).await;
    }
    Ok(())
}

fn pods_on(shared: &Shared, node: &str) -> Vec<Arc<Pod>> {
    shared.pods.store().filter(|p| {
        p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)
            && p.metadata.deletion_timestamp.is_none()
    })
}

/// Kubernetes' `MarkPodsNotReady`: the pods of an unreachable node are not ready any more.
async fn mark_pods_not_ready(shared: &Shared, node: &str) {
    let pods = pods_on(shared, node);
    let now = shared.clock.now();
    stream::iter(pods)
        .for_each_concurrent(POD_WRITES, |pod| async move {
            let mut updated = (*pod).clone();
            let status = updated.status.get_or_insert_with(Default::default);
            let conditions = status.conditions.get_or_insert_with(Vec::new);
            let mut changed = false;
            for c in conditions.iter_mut().filter(|c| c.type_ == "Ready") {
                if c.status != "False" {
                    c.status = "False".into();
                    c.last_transition_time = Some(Time(now));
                    changed = true;
                }
            }
            if !conditions.iter().any(|c| c.type_ == "Ready") {
                conditions.push(PodCondition {
                    type_: "Ready".into(),
                    status: "False".into(),
                    last_transition_time: Some(Time(now)),
                    ..Default::default()
                });
                changed = true;
            }
            if changed {
                let ns = pod.namespace().unwrap_or_default();
                let _ = shared
                    .client
                    .namespaced::<Pod>(&ns)
                    .replace_status(&updated)
                    .await;
            }
        })
        .await;
}

/// The taint manager: delete the pods whose tolerations ran out.
async fn evict(
    shared: &Shared,
    node: &str,
    taints: &[k8s_openapi::api::core::v1::Taint],
    now: jiff::Timestamp,
) {
    let defaults = (
        shared.settings.default_unreachable_toleration_seconds,
        shared.settings.default_not_ready_toleration_seconds,
    );
    let due: Vec<Arc<Pod>> = pods_on(shared, node)
        .into_iter()
        .filter(|p| core::eviction(p, taints, defaults, now) == core::Eviction::Now)
        .collect();
    stream::iter(due)
        .for_each_concurrent(POD_WRITES, |pod| async move {
            let ns = pod.namespace().unwrap_or_default();
            let name = pod.name_any();
            let dp = niwa_client::DeleteParams::default()
                .precondition_uid(&pod.uid().unwrap_or_default());
            match shared
                .client
                .namespaced::<Pod>(&ns)
                .delete(&name, &dp)
                .await
            {
                Ok(_) => shared.events.publish(
                    pod.object_reference(),
                    "Normal",
                    "TaintManagerEviction",
                    format!("Marking for deletion Pod {ns}/{name}"),
                ),
                Err(e) if e.is_not_found() || e.is_conflict() => {}
                Err(e) => tracing::warn!(pod = %name, %e, "eviction failed"),
            }
        })
        .await;
}
