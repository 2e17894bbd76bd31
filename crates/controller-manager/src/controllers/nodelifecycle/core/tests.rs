//! Golden cases for the node lifecycle decisions.

use super::*;
use serde_json::json;

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).expect("time")
}

fn node(v: serde_json::Value) -> Node {
    serde_json::from_value(v).expect("node")
}

#[test]
fn silence_is_measured_from_the_last_change_seen() {
    let mut h = Health::default();
    assert_eq!(h.observe("n", "a".into(), t(0)), SignedDuration::ZERO);
    assert_eq!(h.observe("n", "a".into(), t(30)).as_secs(), 30);
    assert_eq!(h.observe("n", "b".into(), t(41)), SignedDuration::ZERO);
    assert_eq!(h.observe("n", "b".into(), t(82)).as_secs(), 41);
    h.retain(|_| false);
    assert_eq!(h.observe("n", "b".into(), t(90)), SignedDuration::ZERO);
}

#[test]
fn unreachable_conditions_and_taints() {
    let n = node(json!({"metadata": {"name": "n"},
        "spec": {"taints": [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]},
        "status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady"},
            {"type": "MemoryPressure", "status": "False"}]}}));
    let conds = unknown_conditions(&n, t(0)).expect("changed");
    assert!(conds.iter().all(|c| c.status == "Unknown"
        && c.reason.as_deref() == Some("NodeStatusUnknown")
        && c.message.as_deref() == Some("Kubelet stopped posting node status.")));
    let taints = desired_taints(&n, true, false, t(0)).expect("changed");
    assert_eq!(
        serde_json::to_value(&taints).expect("json"),
        json!([{"key": "dedicated", "value": "x", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute",
             "timeAdded": "2027-01-15T08:00:00Z"}])
    );
    let mut tainted = n.clone();
    tainted.spec.as_mut().expect("spec").taints = Some(taints);
    assert_eq!(desired_taints(&tainted, true, false, t(5)), None);
    // Back: only the user's taint stays.
    let back = desired_taints(&tainted, false, false, t(9)).expect("changed");
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].key, "dedicated");
    // Not ready (kubelet says so) → not-ready taints instead.
    let nr = desired_taints(&tainted, false, true, t(9)).expect("changed");
    assert!(
        nr.iter()
            .any(|t| t.key == NOT_READY && t.effect == "NoExecute")
    );
    assert!(!nr.iter().any(|t| t.key == UNREACHABLE));
}

#[test]
fn eviction_after_toleration_seconds() {
    let taint = Taint {
        key: UNREACHABLE.into(),
        effect: "NoExecute".into(),
        time_added: Some(Time(t(0))),
        value: None,
    };
    let plain: Pod = serde_json::from_value(json!({"metadata": {"name": "p"},
        "spec": {"containers": []}}))
    .expect("pod");
    // Default toleration: 300 s.
    assert_eq!(
        eviction(&plain, std::slice::from_ref(&taint), (300, 300), t(10)),
        Eviction::At(t(300))
    );
    assert_eq!(
        eviction(&plain, std::slice::from_ref(&taint), (300, 300), t(300)),
        Eviction::Now
    );
    let short: Pod = serde_json::from_value(json!({"metadata": {"name": "p"},
        "spec": {"containers": [], "tolerations": [{"key": UNREACHABLE, "operator": "Exists",
            "effect": "NoExecute", "tolerationSeconds": 5}]}}))
    .expect("pod");
    assert_eq!(
        eviction(&short, std::slice::from_ref(&taint), (300, 300), t(1)),
        Eviction::At(t(5))
    );
    let forever: Pod = serde_json::from_value(json!({"metadata": {"name": "p"},
        "spec": {"containers": [], "tolerations": [{"operator": "Exists"}]}}))
    .expect("pod");
    assert_eq!(
        eviction(&forever, std::slice::from_ref(&taint), (300, 300), t(1000)),
        Eviction::Never
    );
    let other = Taint {
        key: "example.com/drain".into(),
        effect: "NoExecute".into(),
        time_added: None,
        value: None,
    };
    assert_eq!(eviction(&plain, &[other], (300, 300), t(0)), Eviction::Now);
    let soft = Taint {
        effect: "NoSchedule".into(),
        ..taint
    };
    assert_eq!(eviction(&plain, &[soft], (300, 300), t(0)), Eviction::Never);
}
