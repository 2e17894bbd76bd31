//! The scheduler against a real apiserver and store, with nodes created directly as objects.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_resources_leave_the_pod_pending_until_a_node_is_added() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    create_node(&client, "small-1", "1", 110, json!({}), json!({})).await;
    create_node(&client, "small-2", "1", 110, json!({}), json!({})).await;
    let _s = start_scheduler(&cp, config());

    create_pod(&client, "big", json!({}), "2", json!({})).await;
    let msg = wait_unschedulable(&client, "big", T).await;
    assert_eq!(
        msg,
        "0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: \
         2 No preemption victims found for incoming pod.."
    );
    let deadline = std::time::Instant::now() + T;
    while events_for(&client, "big", "FailedScheduling")
        .await
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no FailedScheduling event"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(events_for(&client, "big", "FailedScheduling").await[0], msg);

    create_node(&client, "large", "4", 110, json!({}), json!({})).await;
    assert_eq!(wait_bound(&client, &["big"], T).await, vec!["large"]);
    let scheduled = wait_events(&client, "big", "Scheduled", T).await;
    assert_eq!(
        scheduled,
        vec!["Successfully assigned default/big to large"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taints_affinity_anti_affinity_and_spread_place_pods_as_kubernetes_does() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let zone = |z: &str| json!({"topology.kubernetes.io/zone": z});
    create_node(&client, "a1", "4", 110, zone("a"), json!({})).await;
    create_node(&client, "a2", "4", 110, zone("a"), json!({})).await;
    create_node(&client, "b1", "4", 110, zone("b"), json!({})).await;
    create_node(
        &client,
        "gpu",
        "4",
        110,
        zone("b"),
        json!({"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}),
    )
    .await;
    let _s = start_scheduler(&cp, config());

    // Node affinity: only zone b, and the untolerated taint excludes the gpu node.
    create_pod(&client, "zone-b", json!({}), "100m", json!({"affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["b"]}]}]}}}})).await;
    // A toleration and a nodeSelector bring a pod onto the gpu node.
    create_pod(&client, "trainer", json!({}), "100m", json!({
        "nodeSelector": {"kubernetes.io/hostname": "gpu"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]})).await;
    assert_eq!(
        wait_bound(&client, &["zone-b", "trainer"], T).await,
        vec!["b1", "gpu"]
    );

    // Required anti-affinity on hostname: one web pod per untainted node; the fourth waits.
    let anti = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}});
    for i in 1..=3 {
        create_pod(
            &client,
            &format!("web-{i}"),
            json!({"app": "web"}),
            "100m",
            anti.clone(),
        )
        .await;
    }
    let mut nodes = wait_bound(&client, &["web-1", "web-2", "web-3"], T).await;
    nodes.sort();
    assert_eq!(nodes, vec!["a1", "a2", "b1"]);
    create_pod(
        &client,
        "web-4",
        json!({"app": "web"}),
        "100m",
        anti.clone(),
    )
    .await;
    assert_eq!(
        wait_unschedulable(&client, "web-4", T).await,
        "0/4 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, \
         3 node(s) didn't match pod anti-affinity rules. preemption: 0/4 nodes are available: \
         1 Preemption is not helpful for scheduling, 3 No preemption victims found for incoming pod.."
    );

    // Topology spread over zones (maxSkew 1): 4 pods → 2 per zone.
    let spread = json!({
        "tolerations": [{"key": "dedicated", "operator": "Exists"}],
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "spread"}}}]});
    let names: Vec<String> = (1..=4).map(|i| format!("spread-{i}")).collect();
    for n in &names {
        create_pod(&client, n, json!({"app": "spread"}), "100m", spread.clone()).await;
        // One at a time, as a ReplicaSet's pods usually arrive: each sees the previous ones.
        wait_bound(&client, &[n.as_str()], T).await;
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let placed = wait_bound(&client, &refs, T).await;
    let in_a = placed.iter().filter(|n| n.starts_with('a')).count();
    assert_eq!(in_a, 2, "two per zone: {placed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_of_other_schedulers_are_left_alone() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    create_node(&client, "n1", "4", 110, json!({}), json!({})).await;
    let _s = start_scheduler(&cp, config());
    create_pod(&client, "mine", json!({}), "100m", json!({})).await;
    create_pod(
        &client,
        "theirs",
        json!({}),
        "100m",
        json!({"schedulerName": "other"}),
    )
    .await;
    wait_bound(&client, &["mine"], T).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(node_of(&client, "theirs").await, None);
}
