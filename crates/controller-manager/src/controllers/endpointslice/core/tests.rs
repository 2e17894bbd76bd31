//! Golden cases for the EndpointSlice decisions (conditions, slicing, churn, mirroring).

use super::*;
use crate::controllers::endpoint::core::tests::{pod, svc};
use serde_json::json;

fn template(s: &Service) -> SliceTemplate {
    SliceTemplate::for_service(
        s,
        crate::util::owner::controller_reference("v1", "Service", &s.metadata),
    )
}

fn named(mut s: EndpointSlice, name: &str) -> EndpointSlice {
    s.metadata.name = Some(name.into());
    s.metadata.generate_name = None;
    s
}

#[test]
fn one_slice_with_conditions_labels_and_owner() {
    let s = svc(json!({}));
    let a = pod("a", "127.244.1.2", true, json!({}));
    let b = pod(
        "b",
        "127.244.1.3",
        true,
        json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}),
    );
    let plan = reconcile(&template(&s), &service_groups(&s, &[&a, &b]), &[]);
    assert_eq!(plan.create.len(), 1);
    assert_eq!(
        serde_json::to_value(&plan.create[0]).expect("test data"),
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"generateName": "web-", "namespace": "d",
                "labels": {"app": "web", "kubernetes.io/service-name": "web",
                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "web",
                    "uid": "svc-uid", "controller": true, "blockOwnerDeletion": true}]},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["127.244.1.2"], "conditions": {"ready": true, "serving": true,
                    "terminating": false}, "nodeName": "n1",
                    "targetRef": {"kind": "Pod", "namespace": "d", "name": "a", "uid": "uid-a"}},
                {"addresses": ["127.244.1.3"], "conditions": {"ready": false, "serving": true,
                    "terminating": true}, "nodeName": "n1",
                    "targetRef": {"kind": "Pod", "namespace": "d", "name": "b", "uid": "uid-b"}}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]})
    );
}

#[test]
fn at_most_100_per_slice_and_minimal_churn() {
    let s = svc(json!({}));
    let pods: Vec<Pod> = (0..250)
        .map(|i| {
            pod(
                &format!("p{i:03}"),
                &format!("127.244.{}.{}", i / 200, i % 200 + 1),
                true,
                json!({}),
            )
        })
        .collect();
    let refs: Vec<&Pod> = pods.iter().collect();
    let t = template(&s);
    let plan = reconcile(&t, &service_groups(&s, &refs), &[]);
    let sizes: Vec<usize> = plan.create.iter().map(|s| s.endpoints.len()).collect();
    assert_eq!(sizes, vec![100, 100, 50]);
    let existing: Vec<EndpointSlice> = plan
        .create
        .into_iter()
        .enumerate()
        .map(|(i, s)| named(s, &format!("web-{i}")))
        .collect();
    // Nothing changed: nothing to do.
    assert!(reconcile(&t, &service_groups(&s, &refs), &existing).is_empty());
    // One pod goes not-ready: exactly its slice is rewritten.
    let mut changed = pods.clone();
    changed[150] = pod("p150", "127.244.0.151", false, json!({}));
    let refs2: Vec<&Pod> = changed.iter().collect();
    let plan = reconcile(&t, &service_groups(&s, &refs2), &existing);
    assert!(plan.create.is_empty() && plan.delete.is_empty());
    assert_eq!(plan.update.len(), 1);
    assert_eq!(plan.update[0].metadata.name.as_deref(), Some("web-1"));
    // A new pod fills the slice with room rather than making a new one.
    let mut more = pods.clone();
    more.push(pod("q", "127.244.9.9", true, json!({})));
    let refs3: Vec<&Pod> = more.iter().collect();
    let plan = reconcile(&t, &service_groups(&s, &refs3), &existing);
    assert_eq!(plan.update.len(), 1);
    assert_eq!(plan.update[0].metadata.name.as_deref(), Some("web-2"));
    assert_eq!(plan.update[0].endpoints.len(), 51);
    // Scaled to zero: the slices go, an empty port-less placeholder remains.
    let plan = reconcile(&t, &service_groups(&s, &[]), &existing);
    assert_eq!(plan.delete, vec!["web-0", "web-1", "web-2"]);
    assert_eq!(plan.create.len(), 1);
    assert!(plan.create[0].endpoints.is_empty() && plan.update.is_empty());
}

#[test]
fn placeholder_for_a_service_without_pods() {
    let s = svc(json!({}));
    let plan = reconcile(&template(&s), &service_groups(&s, &[]), &[]);
    assert_eq!(plan.create.len(), 1);
    assert!(plan.create[0].endpoints.is_empty());
    let existing = vec![named(plan.create[0].clone(), "web-x")];
    assert!(reconcile(&template(&s), &[], &existing).is_empty());
    // The first pod replaces the port-less placeholder.
    let a = pod("a", "127.244.1.2", true, json!({}));
    let plan = reconcile(&template(&s), &service_groups(&s, &[&a]), &existing);
    assert_eq!(
        (plan.create.len(), plan.delete.clone()),
        (1, vec!["web-x".to_string()])
    );
}

#[test]
fn mirrored_endpoints() {
    let ep: Endpoints = serde_json::from_value(json!({
        "metadata": {"name": "ext", "namespace": "d", "uid": "ep-uid", "labels": {"x": "y"}},
        "subsets": [{"addresses": [{"ip": "127.5.0.1"}], "notReadyAddresses": [{"ip": "127.5.0.2"}],
            "ports": [{"port": 5432, "protocol": "TCP"}]}]}))
    .expect("test data");
    let t = SliceTemplate::for_mirror(
        &ep,
        crate::util::owner::controller_reference("v1", "Endpoints", &ep.metadata),
    );
    let plan = reconcile(&t, &mirror_groups(&ep), &[]);
    assert_eq!(
        serde_json::to_value(&plan.create).expect("test data"),
        json!([{"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"generateName": "ext-", "namespace": "d",
                "labels": {"x": "y", "kubernetes.io/service-name": "ext",
                    "endpointslice.kubernetes.io/managed-by": "endpointslicemirroring-controller.k8s.io"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "Endpoints", "name": "ext",
                    "uid": "ep-uid", "controller": true, "blockOwnerDeletion": true}]},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["127.5.0.1"], "conditions": {"ready": true, "serving": true, "terminating": false}},
                {"addresses": ["127.5.0.2"], "conditions": {"ready": false, "serving": false, "terminating": false}}],
            "ports": [{"name": "", "port": 5432, "protocol": "TCP"}]}])
    );
}
