//! The controllers with niwa's real scheduler in the loop (in-process): Deployment pods are bound
//! to nodes before the (fake) kubelet starts them; DaemonSet pods land on the node their affinity
//! names.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use niwa_client::k8s::api::apps::v1::{DaemonSet, Deployment};
use niwa_client::k8s::api::core::v1::Node;
use niwa_client::{Api, Client, Patch, ResourceExt};
use niwa_testkit::ControlPlane;
use support::*;
use tokio_util::sync::CancellationToken;

async fn create_node(client: &Client, name: &str) {
    let node: Node = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "capacity": {"cpu": "4", "memory": "32Gi", "pods": "20"},
            "allocatable": {"cpu": "4", "memory": "32Gi", "pods": "20"},
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    }))
    .expect("node json");
    let nodes: Api<Node> = client.all();
    let created = nodes.create(&node).await.expect("create node");
    if created
        .status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .is_none()
    {
        let mut with_status = created.clone();
        with_status.status = node.status.clone();
        nodes
            .replace_status(&with_status)
            .await
            .expect("node status");
    }
}

fn bound_only(p: &niwa_client::k8s::api::core::v1::Pod) -> Behaviour {
    if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some() {
        Behaviour::Ready
    } else {
        Behaviour::Skip
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_and_daemonset_pods_are_scheduled_then_ready() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    for n in ["node-1", "node-2", "node-3"] {
        create_node(&client, n).await;
    }
    let stop = CancellationToken::new();
    let sched = niwa_scheduler::runtime::SchedulerConfig::new(&cp.api_url());
    let token = stop.clone();
    let scheduler = tokio::spawn(async move {
        if let Err(e) = niwa_scheduler::runtime::run(sched, token).await {
            panic!("scheduler failed: {e}");
        }
    });
    let _kubelet = FakeKubelet::start(client.clone(), bound_only);
    let cm = Manager::start(&cp, "*").await;

    let deployments: Api<Deployment> = client.namespaced("default");
    let d: Deployment = from_yaml(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 6
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: main, image: "nginx:1", resources: {requests: {cpu: 100m}}}]}
"#,
    );
    deployments.create(&d).await.expect("create");
    eventually(Duration::from_secs(40), "6 available replicas", || async {
        let st = deployments.get("web").await.ok()?.status?;
        (st.available_replicas == Some(6)).then_some(())
    })
    .await;
    let pods = live_pods(&client, "default", "app=web").await;
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for p in &pods {
        *per_node
            .entry(
                p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_default(),
            )
            .or_default() += 1;
    }
    assert_eq!(
        per_node.len(),
        3,
        "spread over the three nodes: {per_node:?}"
    );

    // Scale down: the scheduler-bound pods go, the rest stay available.
    deployments
        .patch(
            "web",
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 2}})),
        )
        .await
        .expect("scale");
    eventually(Duration::from_secs(30), "2 pods", || async {
        (live_pods(&client, "default", "app=web").await.len() == 2).then_some(())
    })
    .await;

    let dss: Api<DaemonSet> = client.namespaced("default");
    let ds: DaemonSet = from_yaml(
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: default}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: main, image: "agent:1"}]}
"#,
    );
    dss.create(&ds).await.expect("create ds");
    eventually(
        Duration::from_secs(40),
        "a ready agent on every node",
        || async {
            let st = dss.get("agent").await.ok()?.status?;
            (st.number_ready == 3 && st.desired_number_scheduled == 3).then_some(())
        },
    )
    .await;
    for p in live_pods(&client, "default", "app=agent").await {
        // The node the controller asked for (its required affinity), not the binding.
        let mut unbound = p.clone();
        if let Some(spec) = unbound.spec.as_mut() {
            spec.node_name = None;
        }
        let target = niwa_controller_manager::controllers::daemonset::core::target_node(&unbound)
            .unwrap_or_default();
        assert!(target.starts_with("node-"));
        assert_eq!(
            p.spec.as_ref().and_then(|s| s.node_name.clone()),
            Some(target.clone()),
            "{}",
            p.name_any()
        );
    }
    cm.shutdown().await;
    stop.cancel();
    let _ = scheduler.await;
}
