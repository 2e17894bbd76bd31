//! Golden cases for the namespace controller's decisions.

use super::*;
use serde_json::json;

fn ts() -> Timestamp {
    Timestamp::from_second(1_800_000_000).expect("time")
}

#[test]
fn every_namespaced_listable_deletable_kind() {
    let kinds: Vec<&str> = deletable(niwa_api::registry::RESOURCES)
        .iter()
        .map(|r| r.kind)
        .collect();
    for k in [
        "Pod",
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "ServiceAccount",
        "Event",
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    assert!(!kinds.contains(&"Namespace") && !kinds.contains(&"Node"));
}

#[test]
fn remaining_content_and_conditions() {
    let reg = niwa_api::Registry;
    let pods = reg.resolve("pods").expect("pods");
    let deps = reg.resolve("deployments").expect("deployments");
    let mut r = Remaining::default();
    let found = |n: &str, deleting: bool, fins: &[&str]| Found {
        name: n.into(),
        deleting,
        finalizers: fins.iter().map(|s| s.to_string()).collect(),
    };
    let del = r.add(pods, &[found("a", false, &[]), found("b", true, &["x/y"])]);
    assert_eq!(del, vec!["a"]);
    let del = r.add(deps, &[found("d", false, &["foregroundDeletion"])]);
    assert_eq!(del, vec!["d"]);
    assert!(r.add(pods, &[]).is_empty());
    let got = serde_json::to_value(conditions(&r, ts())).expect("json");
    let t = "2027-01-15T08:00:00Z";
    assert_eq!(
        got,
        json!([
            {"type": "NamespaceDeletionDiscoveryFailure", "status": "False", "reason": "ResourcesDiscovered",
             "message": "All resources successfully discovered", "lastTransitionTime": t},
            {"type": "NamespaceDeletionGroupVersionParsingFailure", "status": "False",
             "reason": "ParsedGroupVersions", "message": "All legacy kube types successfully parsed",
             "lastTransitionTime": t},
            {"type": "NamespaceDeletionContentFailure", "status": "False", "reason": "ContentDeleted",
             "message": "All content successfully deleted, may be waiting on finalization",
             "lastTransitionTime": t},
            {"type": "NamespaceContentRemaining", "status": "True", "reason": "SomeResourcesRemain",
             "message": "Some resources are remaining: deployments.apps has 1 resource instances, pods. has 2 resource instances",
             "lastTransitionTime": t},
            {"type": "NamespaceFinalizersRemaining", "status": "True", "reason": "SomeFinalizersRemain",
             "message": "Some content in the namespace has finalizers remaining: foregroundDeletion in 1 resource instances, x/y in 1 resource instances",
             "lastTransitionTime": t}
        ])
    );
    let empty = conditions(&Remaining::default(), ts());
    assert_eq!(empty[3].reason.as_deref(), Some("ContentRemoved"));
    assert!(!same_conditions(&empty, &conditions(&r, ts())));
}

#[test]
fn finalize_removes_only_our_finalizer() {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "t",
        "deletionTimestamp": "2027-01-15T08:00:00Z"},
        "spec": {"finalizers": ["kubernetes", "other"]}}))
    .expect("ns");
    assert!(needs_finalizing(&ns));
    let f = finalized(&ns);
    assert_eq!(
        f.spec.and_then(|s| s.finalizers),
        Some(vec!["other".to_string()])
    );
}
