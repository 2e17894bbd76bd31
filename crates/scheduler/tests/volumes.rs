//! VolumeBinding against a real apiserver: a bound volume's node affinity pins its pod, a missing
//! claim leaves the pod unschedulable until the claim appears.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use serde_json::json;

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_local_volume_pins_its_pod_and_a_missing_claim_waits_for_it() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    for n in ["a", "b", "c"] {
        create_node(&client, n, "4", 110, json!({}), json!({})).await;
    }
    let pv: PersistentVolume = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": "pv-b"},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": "/tmp/pv-b"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["b"]}]}]}}}
    }))
    .expect("pv json");
    client
        .cluster::<PersistentVolume>()
        .create(&pv)
        .await
        .expect("create pv");
    let _s = start_scheduler(&cp, config());

    let uses = |claim: &str| json!({"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]});
    create_pod(&client, "web-0", json!({}), "100m", uses("data")).await;
    let msg = wait_unschedulable(&client, "web-0", T).await;
    assert_eq!(
        msg,
        "0/3 nodes are available: persistentvolumeclaim \"data\" not found. \
         preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.."
    );

    // The claim appears, bound to pv-b: the parked pod is retried and goes to b.
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": "default"},
        "spec": {"accessModes": ["ReadWriteOnce"], "volumeName": "pv-b",
            "resources": {"requests": {"storage": "1Gi"}}}
    }))
    .expect("pvc json");
    client
        .namespaced::<PersistentVolumeClaim>("default")
        .create(&claim)
        .await
        .expect("create pvc");
    assert_eq!(wait_bound(&client, &["web-0"], T).await, vec!["b"]);

    for i in 1..4 {
        create_pod(
            &client,
            &format!("web-{i}"),
            json!({}),
            "100m",
            uses("data"),
        )
        .await;
    }
    let nodes = wait_bound(&client, &["web-1", "web-2", "web-3"], T).await;
    assert_eq!(nodes, vec!["b", "b", "b"]);
}
