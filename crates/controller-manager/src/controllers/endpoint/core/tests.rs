//! Golden cases for the Endpoints decisions (pod filtering, named ports, subsets).

use super::*;
use serde_json::json;

pub fn svc(v: serde_json::Value) -> Service {
    let mut base = json!({"metadata": {"name": "web", "namespace": "d", "uid": "svc-uid",
        "labels": {"app": "web"}},
        "spec": {"selector": {"app": "web"}, "clusterIP": "127.96.0.20",
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}});
    merge(&mut base, v);
    serde_json::from_value(base).expect("test data")
}

pub fn pod(name: &str, ip: &str, ready: bool, v: serde_json::Value) -> Pod {
    let mut base = json!({"metadata": {"name": name, "namespace": "d", "uid": format!("uid-{name}"),
        "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c",
            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]},
        "status": {"phase": "Running", "podIP": ip,
            "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}});
    merge(&mut base, v);
    serde_json::from_value(base).expect("test data")
}

fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

#[test]
fn ready_and_not_ready_addresses_with_named_ports() {
    let s = svc(json!({}));
    let a = pod("a", "127.244.1.2", true, json!({}));
    let b = pod("b", "127.244.1.3", false, json!({}));
    let no_ip = pod("c", "", true, json!({}));
    let ep = desired_endpoints(&s, &[&a, &b, &no_ip]);
    assert_eq!(
        serde_json::to_value(&ep).expect("test data"),
        json!({"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "web", "namespace": "d", "labels": {"app": "web"}},
            "subsets": [{
                "addresses": [{"ip": "127.244.1.2", "nodeName": "n1",
                    "targetRef": {"kind": "Pod", "namespace": "d", "name": "a", "uid": "uid-a"}}],
                "notReadyAddresses": [{"ip": "127.244.1.3", "nodeName": "n1",
                    "targetRef": {"kind": "Pod", "namespace": "d", "name": "b", "uid": "uid-b"}}],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]})
    );
}

#[test]
fn pods_resolving_ports_differently_get_their_own_subsets() {
    let s = svc(json!({}));
    let a = pod("a", "127.244.1.2", true, json!({}));
    let other = pod(
        "b",
        "127.244.1.3",
        true,
        json!({"spec": {"containers": [{"name": "c",
            "ports": [{"name": "http", "containerPort": 9090}]}]}}),
    );
    let missing = pod(
        "m",
        "127.244.1.4",
        true,
        json!({"spec": {"containers": [{"name": "c"}]}}),
    );
    let ep = desired_endpoints(&s, &[&a, &other, &missing]);
    let subsets = ep.subsets.expect("test data");
    assert_eq!(subsets.len(), 2);
    let ports: Vec<i32> = subsets
        .iter()
        .map(|s| s.ports.as_ref().expect("test data")[0].port)
        .collect();
    assert_eq!(ports, vec![8080, 9090]);
}

#[test]
fn publish_not_ready_and_terminating_and_finished() {
    let s = svc(json!({"spec": {"publishNotReadyAddresses": true}}));
    let b = pod("b", "127.244.1.3", false, json!({}));
    let ep = desired_endpoints(&s, &[&b]);
    assert!(ep.subsets.expect("test data")[0].addresses.is_some());

    let s = svc(json!({}));
    let term = pod(
        "t",
        "127.244.1.5",
        true,
        json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}),
    );
    let done = pod(
        "f",
        "127.244.1.6",
        false,
        json!({"spec": {"restartPolicy": "Never"}, "status": {"phase": "Succeeded"}}),
    );
    assert!(desired_endpoints(&s, &[&term, &done]).subsets.is_none());
    assert!(should_include(&term, true));
    assert!(!should_include(&done, true));
}

#[test]
fn hostname_only_for_the_subdomain_service() {
    let s = svc(json!({"spec": {"clusterIP": "None"}}));
    let a = pod(
        "a",
        "127.244.1.2",
        true,
        json!({"spec": {"hostname": "a-0", "subdomain": "web"}}),
    );
    let b = pod(
        "b",
        "127.244.1.3",
        true,
        json!({"spec": {"hostname": "b-0", "subdomain": "other"}}),
    );
    assert_eq!(hostname_for(&a, &s).as_deref(), Some("a-0"));
    assert_eq!(hostname_for(&b, &s), None);
    let ep = desired_endpoints(&s, &[&a]);
    assert_eq!(
        ep.metadata
            .labels
            .expect("test data")
            .get(HEADLESS_LABEL)
            .map(String::as_str),
        Some("")
    );
}

#[test]
fn selectors() {
    let s = svc(json!({}));
    let a = pod("a", "127.244.1.2", true, json!({}));
    let other = pod(
        "x",
        "127.244.1.2",
        true,
        json!({"metadata": {"labels": {"app": "x"}}}),
    );
    let sel = service_selector(&s).expect("test data");
    assert!(selects(sel, &a));
    assert!(!selects(sel, &other));
    let mut empty = svc(json!({}));
    empty.spec.as_mut().expect("test data").selector = Some(Default::default());
    assert!(service_selector(&empty).is_none());
}
