//! Golden tests of whole scheduling cycles.

use serde_json::json;

use super::*;
use crate::node_info::test_nodes::node;
use crate::pod_info::test_pods::{pod, pod_req};
use crate::preemption::Outcome;
use crate::snapshot::{ClusterObjects, Snapshot};

#[test]
fn feasible_nodes_to_find_follows_kube() {
    assert_eq!(num_feasible_nodes_to_find(0, 50), 50);
    assert_eq!(num_feasible_nodes_to_find(0, 100), 100);
    assert_eq!(num_feasible_nodes_to_find(0, 1000), 420);
    assert_eq!(num_feasible_nodes_to_find(0, 5000), 500);
    assert_eq!(num_feasible_nodes_to_find(0, 10000), 500);
    assert_eq!(num_feasible_nodes_to_find(100, 5000), 5000);
}

fn five_nodes() -> Snapshot {
    let mut nodes = Vec::new();
    for i in 0..3 {
        let mut n = node(&format!("small-{i}"), "1", "4Gi", json!({}), json!({}));
        n.add_pod(pod_req(&format!("busy-{i}"), "800m", "1Gi"));
        nodes.push(n);
    }
    for i in 0..2 {
        nodes.push(node(
            &format!("gpu-{i}"),
            "8",
            "32Gi",
            json!({}),
            json!({"taints": [
            {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}),
        ));
    }
    Snapshot::new(nodes, ClusterObjects::default())
}

#[test]
fn golden_failed_scheduling_message() {
    let snap = five_nodes();
    let mut alg = Algorithm::new(AlgorithmConfig::default());
    let err = alg
        .schedule(&pod_req("p", "500m", "1Gi"), &snap)
        .expect_err("unschedulable");
    assert_eq!(
        err.to_string(),
        "0/5 nodes are available: 2 node(s) had untolerated taint {dedicated: gpu}, 3 Insufficient cpu. \
         preemption: 0/5 nodes are available: 2 Preemption is not helpful for scheduling, \
         3 No preemption victims found for incoming pod.."
    );
    let ScheduleError::Unschedulable(fit) = err else {
        panic!("fit error")
    };
    let plugins: Vec<_> = fit.rejecting_plugins().into_iter().collect();
    assert_eq!(
        plugins,
        vec![Plugin::TaintToleration, Plugin::NodeResourcesFit]
    );
}

#[test]
fn golden_never_preempting_pod_message() {
    let snap = five_nodes();
    let mut alg = Algorithm::new(AlgorithmConfig::default());
    let p = pod(
        "p",
        json!({}),
        json!({"preemptionPolicy": "Never", "containers": [{"name": "c", "image": "i",
        "resources": {"requests": {"cpu": "500m"}}}]}),
    );
    assert_eq!(
        alg.schedule(&p, &snap)
            .expect_err("unschedulable")
            .to_string(),
        "0/5 nodes are available: 2 node(s) had untolerated taint {dedicated: gpu}, 3 Insufficient cpu. \
         preemption: not eligible due to preemptionPolicy=Never.."
    );
}

#[test]
fn no_nodes() {
    let mut alg = Algorithm::new(AlgorithmConfig::default());
    let err = alg
        .schedule(&pod("p", json!({}), json!({})), &Snapshot::default())
        .expect_err("no nodes");
    assert_eq!(err.to_string(), "no nodes available to schedule pods");
}

#[test]
fn preemption_finds_the_cheapest_victims() {
    let mut a = node("a", "1", "4Gi", json!({}), json!({}));
    a.add_pod(pod(
        "low-a",
        json!({}),
        json!({"priority": 10, "containers": [{"name": "c", "image": "i",
        "resources": {"requests": {"cpu": "900m"}}}]}),
    ));
    let mut b = node("b", "1", "4Gi", json!({}), json!({}));
    b.add_pod(pod(
        "low-b1",
        json!({}),
        json!({"priority": 5, "containers": [{"name": "c", "image": "i",
        "resources": {"requests": {"cpu": "500m"}}}]}),
    ));
    b.add_pod(pod(
        "low-b2",
        json!({}),
        json!({"priority": 1, "containers": [{"name": "c", "image": "i",
        "resources": {"requests": {"cpu": "400m"}}}]}),
    ));
    let snap = Snapshot::new(vec![a, b], ClusterObjects::default());
    let high = pod(
        "high",
        json!({}),
        json!({"priority": 100, "containers": [{"name": "c", "image": "i",
        "resources": {"requests": {"cpu": "500m"}}}]}),
    );
    let mut alg = Algorithm::new(AlgorithmConfig::default());
    let err = alg.schedule(&high, &snap).expect_err("needs preemption");
    assert_eq!(
        err.to_string(),
        "0/2 nodes are available: 2 Insufficient cpu."
    );
    let ScheduleError::Unschedulable(fit) = err else {
        panic!("fit error")
    };
    let Outcome::Candidates(c) = &fit.preemption else {
        panic!("candidates expected")
    };
    // On b, both pods go first; reprieving the more important (priority 5, 500m) still fits, so
    // only the priority-1 pod is evicted — cheaper than a's priority-10 pod.
    let names = |c: &crate::preemption::Candidate| {
        c.victims.iter().map(|v| v.name.clone()).collect::<Vec<_>>()
    };
    assert_eq!(c[0].node, "b");
    assert_eq!(names(&c[0]), vec!["low-b2"]);
    assert!(c.iter().any(|c| c.node == "a"));
}

#[test]
fn tie_breaking_is_seeded_and_spreads() {
    let nodes: Vec<_> = (0..4)
        .map(|i| node(&format!("n{i}"), "4", "8Gi", json!({}), json!({})))
        .collect();
    let snap = Snapshot::new(nodes, ClusterObjects::default());
    let p = pod("p", json!({}), json!({}));
    let pick = |seed| {
        let mut alg = Algorithm::new(AlgorithmConfig {
            seed,
            ..Default::default()
        });
        (0..8)
            .map(|_| alg.schedule(&p, &snap).expect("fits").node)
            .collect::<Vec<_>>()
    };
    assert_eq!(pick(7), pick(7), "same seed, same choices");
    let distinct: std::collections::BTreeSet<_> = (0..8u64).flat_map(pick).collect();
    assert_eq!(distinct.len(), 4, "ties are broken across all equal nodes");
}

#[test]
fn least_allocated_prefers_the_emptier_node() {
    let mut busy = node("busy", "4", "8Gi", json!({}), json!({}));
    busy.add_pod(pod_req("x", "2", "4Gi"));
    let idle = node("idle", "4", "8Gi", json!({}), json!({}));
    let snap = Snapshot::new(vec![busy, idle], ClusterObjects::default());
    let mut alg = Algorithm::new(AlgorithmConfig::default());
    for _ in 0..5 {
        assert_eq!(
            alg.schedule(&pod_req("p", "100m", "100Mi"), &snap)
                .expect("fits")
                .node,
            "idle"
        );
    }
}

#[test]
fn prefer_no_schedule_taints_steer_pods_away() {
    let spot = node(
        "spot",
        "4",
        "8Gi",
        json!({}),
        json!({"taints": [{"key": "spot", "effect": "PreferNoSchedule"}]}),
    );
    let normal = node("normal", "4", "8Gi", json!({}), json!({}));
    let snap = Snapshot::new(vec![spot, normal], ClusterObjects::default());
    let mut alg = Algorithm::new(AlgorithmConfig::default());
    assert_eq!(
        alg.schedule(&pod("p", json!({}), json!({})), &snap)
            .expect("fits")
            .node,
        "normal"
    );
}

#[test]
fn filtering_window_rotates_and_parallel_equals_sequential() {
    let nodes: Vec<_> = (0..3000)
        .map(|i| node(&format!("n{i:04}"), "4", "8Gi", json!({}), json!({})))
        .collect();
    let snap = Snapshot::new(nodes, ClusterObjects::default());
    let p = pod_req("p", "100m", "100Mi");
    let run = |parallelism| {
        let mut alg = Algorithm::new(AlgorithmConfig {
            parallelism,
            seed: 3,
            ..Default::default()
        });
        (0..4)
            .map(|_| alg.schedule(&p, &snap).expect("fits"))
            .collect::<Vec<_>>()
    };
    let seq = run(1);
    assert_eq!(seq, run(4));
    // 3000 nodes → 26% → 780 feasible per cycle, and the window moves on each cycle.
    assert!(
        seq.iter()
            .all(|r| r.feasible_nodes == 780 && r.evaluated_nodes == 780)
    );
    let first: Vec<_> = seq
        .iter()
        .map(|r| r.node[1..].parse::<usize>().unwrap_or(0))
        .collect();
    assert!(
        first[0] < 780 && (780..1560).contains(&first[1]),
        "{first:?}"
    );
}

fn volume_cluster() -> Snapshot {
    use crate::plugins::volume_binding::{Claim, Volume, VolumeObjects};
    let mut vols = VolumeObjects::default();
    let claim = |pv: &str| Claim {
        volume_name: Some(pv.into()),
        deleting: false,
    };
    vols.claims
        .insert(("default".into(), "data-web-0".into()), claim("pv-a"));
    let pv = json!({"metadata": {"name": "pv-a"}, "spec": {"nodeAffinity": {"required": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": ["a"]}]}]}}}});
    vols.volumes.insert(
        "pv-a".into(),
        Volume::new(&serde_json::from_value(pv).unwrap_or_default()),
    );
    let nodes = ["a", "b", "c"]
        .iter()
        .map(|n| {
            node(
                n,
                "4",
                "8Gi",
                json!({"kubernetes.io/hostname": n}),
                json!({}),
            )
        })
        .collect();
    Snapshot::new(
        nodes,
        ClusterObjects {
            volumes: std::sync::Arc::new(vols),
            ..Default::default()
        },
    )
}

fn with_claim(claim: &str) -> std::sync::Arc<PodInfo> {
    pod(
        "web-0",
        json!({}),
        json!({"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}),
    )
}

#[test]
fn bound_local_volume_pins_the_pod_to_its_node() {
    let snap = volume_cluster();
    let mut alg = Algorithm::new(AlgorithmConfig::default());
    for _ in 0..3 {
        let r = alg
            .schedule(&with_claim("data-web-0"), &snap)
            .expect("fits");
        assert_eq!((r.node.as_str(), r.feasible_nodes), ("a", 1));
    }
    // Node a full: kube's FailedScheduling message.
    let mut snap = snap;
    let mut a = (*snap.nodes[0]).clone();
    a.add_pod(pod_req("hog", "4", "1Gi"));
    snap.nodes[0] = std::sync::Arc::new(a);
    let p = pod(
        "web-0",
        json!({}),
        json!({"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}}],
            "containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": "1"}}}]}),
    );
    let err = alg.schedule(&p, &snap).expect_err("unschedulable");
    assert_eq!(
        err.to_string(),
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had volume node affinity conflict. \
         preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, \
         2 Preemption is not helpful for scheduling.."
    );
}

#[test]
fn golden_missing_claim_message() {
    let snap = volume_cluster();
    let mut alg = Algorithm::new(AlgorithmConfig::default());
    let err = alg
        .schedule(&with_claim("nope"), &snap)
        .expect_err("unschedulable");
    assert_eq!(
        err.to_string(),
        "0/3 nodes are available: persistentvolumeclaim \"nope\" not found. \
         preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.."
    );
    let ScheduleError::Unschedulable(fit) = err else {
        panic!("fit error")
    };
    assert_eq!(
        fit.rejecting_plugins().into_iter().collect::<Vec<_>>(),
        vec![Plugin::VolumeBinding]
    );
}
