//! NodeAffinity: `nodeSelector` plus required node affinity (filter) and preferred node affinity
//! (score: the sum of the weights of matching terms, normalised by the maximum).

use super::{Code, FilterResult, Plugin, Rejection};
use crate::node_info::NodeInfo;
use crate::pod_info::PodInfo;

pub const ERR_REASON_POD: &str = "node(s) didn't match Pod's node affinity/selector";

pub fn filter(pod: &PodInfo, node: &NodeInfo) -> FilterResult {
    // A pod without constraints fits without reading the node's labels (see NodeInfo).
    if !pod.has_node_constraints()
        || pod.matches_node_selector_and_affinity(node.name(), node.labels())
    {
        Ok(())
    } else {
        Err(Rejection::new(
            Plugin::NodeAffinity,
            Code::UnschedulableAndUnresolvable,
            ERR_REASON_POD,
        ))
    }
}

/// Raw score; normalise with `default_normalize(reverse = false)`.
pub fn score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    pod.preferred_node_terms
        .iter()
        .filter(|(_, t)| t.matches(node.name(), node.labels()))
        .map(|(w, _)| *w)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_info::test_nodes::node;
    use crate::plugins::default_normalize;
    use crate::pod_info::test_pods::pod;
    use serde_json::json;

    #[test]
    fn golden_required_and_preferred() {
        let a = node(
            "a",
            "4",
            "8Gi",
            json!({"zone": "z1", "disk": "ssd"}),
            json!({}),
        );
        let b = node("b", "4", "8Gi", json!({"zone": "z2"}), json!({}));
        let c = node("c", "4", "8Gi", json!({"zone": "z3"}), json!({}));
        let p = pod(
            "p",
            json!({}),
            json!({"affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["z3"]}]}]},
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 20, "preference": {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}},
                    {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z2"]}]}}]
            }}}),
        );
        assert!(filter(&p, &a).is_ok());
        assert!(filter(&p, &b).is_ok());
        assert_eq!(
            filter(&p, &c).expect_err("z3").reasons,
            vec![ERR_REASON_POD]
        );
        let mut scores = vec![score(&p, &a), score(&p, &b)];
        assert_eq!(scores, vec![20, 10]);
        default_normalize(&mut scores, false);
        assert_eq!(scores, vec![100, 50]);

        let sel = pod("q", json!({}), json!({"nodeSelector": {"disk": "ssd"}}));
        assert!(filter(&sel, &a).is_ok());
        assert!(filter(&sel, &b).is_err());
    }
}
