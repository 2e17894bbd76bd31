//! NodeResourcesFit (filter; LeastAllocated score over cpu and memory, weight 1 each) and
//! NodeResourcesBalancedAllocation (score).

use super::{Code, FilterResult, MAX_NODE_SCORE, Plugin, Rejection};
use crate::node_info::NodeInfo;
use crate::pod_info::PodInfo;

pub fn filter(pod: &PodInfo, node: &NodeInfo) -> FilterResult {
    let mut reasons = Vec::new();
    let alloc = &node.allocatable;
    if node.pods.len() as i64 + 1 > alloc.allowed_pod_number {
        reasons.push("Too many pods".to_string());
    }
    let req = &pod.requests.requested;
    if !req.is_zero() {
        let used = &node.requested;
        if req.milli_cpu > 0 && req.milli_cpu > alloc.milli_cpu - used.milli_cpu {
            reasons.push("Insufficient cpu".to_string());
        }
        if req.memory > 0 && req.memory > alloc.memory - used.memory {
            reasons.push("Insufficient memory".to_string());
        }
        if req.ephemeral_storage > 0
            && req.ephemeral_storage > alloc.ephemeral_storage - used.ephemeral_storage
        {
            reasons.push("Insufficient ephemeral-storage".to_string());
        }
        for (name, want) in &req.scalar {
            if *want > 0 && *want > alloc.scalar(name) - used.scalar(name) {
                reasons.push(format!("Insufficient {name}"));
            }
        }
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(Rejection {
            plugin: Plugin::NodeResourcesFit,
            code: Code::Unschedulable,
            reasons,
        })
    }
}

fn least_requested(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

/// LeastAllocated over cpu and memory (weights 1), using non-zero requests (100m/200Mi for
/// containers that request nothing). No normalisation.
pub fn least_allocated_score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let alloc = &node.allocatable;
    let mut sum = 0;
    let mut weights = 0;
    for (capacity, requested) in [
        (
            alloc.milli_cpu,
            node.non_zero_milli_cpu + pod.requests.non_zero_milli_cpu,
        ),
        (
            alloc.memory,
            node.non_zero_memory + pod.requests.non_zero_memory,
        ),
    ] {
        if capacity == 0 {
            continue;
        }
        sum += least_requested(requested, capacity);
        weights += 1;
    }
    if weights == 0 { 0 } else { sum / weights }
}

/// BalancedAllocation over cpu and memory, using the real requests: (1 - |f_cpu - f_mem| / 2) * 100
/// where f is the requested fraction (capped at 1). No normalisation.
pub fn balanced_allocation_score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let alloc = &node.allocatable;
    let req = &pod.requests.requested;
    let mut fractions = [0f64; 2];
    let mut n = 0;
    for (capacity, requested) in [
        (alloc.milli_cpu, node.requested.milli_cpu + req.milli_cpu),
        (alloc.memory, node.requested.memory + req.memory),
    ] {
        if capacity == 0 {
            continue;
        }
        fractions[n] = (requested as f64 / capacity as f64).min(1.0);
        n += 1;
    }
    let std = if n == 2 {
        ((fractions[0] - fractions[1]) / 2.0).abs()
    } else {
        0.0
    };
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_info::test_nodes::node;
    use crate::pod_info::test_pods::{pod, pod_req};
    use serde_json::json;

    #[test]
    fn golden_fit_reasons() {
        let mut n = node("n", "2", "4Gi", json!({}), json!({}));
        n.add_pod(pod_req("a", "1500m", "1Gi"));
        assert!(filter(&pod_req("ok", "500m", "3Gi"), &n).is_ok());
        let err = filter(&pod_req("big", "600m", "4Gi"), &n).expect_err("too big");
        assert_eq!(err.reasons, vec!["Insufficient cpu", "Insufficient memory"]);
        assert_eq!(err.code, Code::Unschedulable);
        let gpu = pod(
            "g",
            json!({}),
            json!({"containers": [{"name": "c", "image": "i",
            "resources": {"requests": {"example.com/gpu": "1"}}}]}),
        );
        assert_eq!(
            filter(&gpu, &n).expect_err("no gpu").reasons,
            vec!["Insufficient example.com/gpu"]
        );
    }

    #[test]
    fn golden_too_many_pods() {
        let mut n = node("n", "2", "4Gi", json!({}), json!({}));
        for i in 0..110 {
            n.add_pod(pod(&format!("p{i}"), json!({}), json!({})));
        }
        assert_eq!(
            filter(&pod("x", json!({}), json!({})), &n)
                .expect_err("full")
                .reasons,
            vec!["Too many pods"]
        );
    }

    /// The numbers of kube's least_allocated_test "nothing scheduled, resources requested,
    /// differently sized nodes": cpu 3000m/4000m, memory 5000/10000 → (25 + 50) / 2 = 37.
    #[test]
    fn golden_least_and_balanced() {
        let n = node("n", "4", "10000", json!({}), json!({}));
        let p = pod(
            "p",
            json!({}),
            json!({"containers": [
            {"name": "a", "image": "i", "resources": {"requests": {"cpu": "1", "memory": "2000"}}},
            {"name": "b", "image": "i", "resources": {"requests": {"cpu": "2", "memory": "3000"}}}]}),
        );
        assert_eq!(least_allocated_score(&p, &n), 37);
        // fractions 0.75 and 0.5 → std 0.125 → 87.
        assert_eq!(balanced_allocation_score(&p, &n), 87);
        // A best-effort pod scores with 100m/200Mi defaults.
        let be = pod("be", json!({}), json!({}));
        let big = node("b", "1", "2Gi", json!({}), json!({}));
        assert_eq!(least_allocated_score(&be, &big), (90 + 90) / 2);
        assert_eq!(balanced_allocation_score(&be, &big), 100);
    }
}
