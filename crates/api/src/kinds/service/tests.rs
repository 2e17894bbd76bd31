//! Golden tests of Service, Endpoints and EndpointSlice defaulting and validation.

use super::*;
use serde_json::{Value, json};

fn svc(spec: Value) -> Service {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"}, "spec": spec}))
    .unwrap_or_default()
}

#[test]
fn service_defaults() {
    let mut s = svc(json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}));
    s.default();
    assert!(s.validate().is_empty(), "{:?}", s.validate());
    let v = serde_json::to_value(&s).unwrap_or_default();
    assert_eq!(v["spec"]["type"], "ClusterIP");
    assert_eq!(v["spec"]["sessionAffinity"], "None");
    assert_eq!(v["spec"]["internalTrafficPolicy"], "Cluster");
    assert_eq!(v["spec"]["ipFamilies"], json!(["IPv4"]));
    assert_eq!(v["spec"]["ipFamilyPolicy"], "SingleStack");
    assert_eq!(
        v["spec"]["ports"][0],
        json!({"port": 80, "protocol": "TCP", "targetPort": 80})
    );
    let mut np = svc(json!({"type": "NodePort", "ports": [{"port": 80, "targetPort": "http"}]}));
    np.default();
    let v = serde_json::to_value(&np).unwrap_or_default();
    assert_eq!(v["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(v["spec"]["ports"][0]["targetPort"], "http");
}

#[test]
fn service_errors() {
    let mut s = svc(json!({"type": "Magic", "ports": [
        {"name": "a", "port": 0}, {"port": 80, "protocol": "TCP"}, {"name": "c", "port": 80}]}));
    s.default();
    let lines: Vec<String> = s.validate().iter().map(Cause::to_line).collect();
    assert_eq!(
        lines,
        vec![
            "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
            "spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
            "spec.ports[1].name: Required value",
            "spec.ports[2]: Duplicate value: core.ServicePort{Name:\"c\", Protocol:\"TCP\", Port:80}",
            "spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
        ]
    );
    let mut a = svc(json!({"clusterIP": "127.96.0.5", "ports": [{"port": 80}]}));
    a.default();
    let mut b = svc(json!({"clusterIP": "127.96.0.6", "ports": [{"port": 80}]}));
    b.default();
    assert_eq!(
        b.validate_update(&a)[0].to_line(),
        "spec.clusterIPs[0]: Invalid value: []string{\"127.96.0.6\"}: may not change once set"
    );
}

#[test]
fn endpoint_slices() {
    let mut s: EndpointSlice = serde_json::from_value(json!({"apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice", "metadata": {"name": "s", "namespace": "d"},
        "addressType": "IPv4", "endpoints": [{"addresses": ["127.244.1.5"]}, {"addresses": []}],
        "ports": [{"port": 80}]}))
    .unwrap_or_default();
    s.default();
    let lines: Vec<String> = s.validate().iter().map(Cause::to_line).collect();
    assert_eq!(
        lines,
        vec!["endpoints[1].addresses: Required value: must contain at least 1 address"]
    );
}
