use super::*;
use niwa_api::Registry;

fn now() -> Timestamp {
    "2025-01-01T01:00:00Z"
        .parse()
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

fn info(name: &str) -> &'static ResourceInfo {
    match Registry.resolve(name) {
        Some(i) => i,
        None => panic!("{name}"),
    }
}

#[test]
fn service_rows() {
    let svc = json!({"metadata": {"name": "web", "creationTimestamp": "2025-01-01T00:00:00Z"},
        "spec": {"type": "NodePort", "clusterIP": "127.96.0.12", "clusterIPs": ["127.96.0.12"],
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}, {"port": 53, "protocol": "UDP"}],
            "selector": {"app": "web"}}});
    assert_eq!(
        cells(info("services"), &svc, now()),
        Some(vec![
            json!("web"),
            json!("NodePort"),
            json!("127.96.0.12"),
            json!("<none>"),
            json!("80:30080/TCP,53/UDP"),
            json!("60m"),
            json!("app=web")
        ])
    );
    let lb = json!({"spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {}}});
    assert_eq!(service_external_ip(&lb), "<pending>");
    let lb = json!({"spec": {"type": "LoadBalancer"},
        "status": {"loadBalancer": {"ingress": [{"ip": "127.200.0.1"}]}}});
    assert_eq!(service_external_ip(&lb), "127.200.0.1");
}

#[test]
fn node_rows() {
    let node = json!({"metadata": {"name": "n1", "creationTimestamp": "2025-01-01T00:00:00Z",
        "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/hostname": "n1"}},
        "spec": {"unschedulable": true},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "127.1.0.1"}],
            "nodeInfo": {"kubeletVersion": "v1.33.0"}}});
    let c = cells(info("nodes"), &node, now()).unwrap_or_default();
    assert_eq!(c[1], "Ready,SchedulingDisabled");
    assert_eq!(c[2], "control-plane");
    assert_eq!(c[4], "v1.33.0");
    assert_eq!(c[5], "127.1.0.1");
    assert_eq!(c[7], "<unknown>");
}

#[test]
fn endpoints_and_events() {
    let ep = json!({"subsets": [{"addresses": [{"ip": "1.1.1.1"}, {"ip": "1.1.1.2"}],
        "ports": [{"port": 80}, {"port": 443}]}]});
    assert_eq!(
        endpoints(&ep),
        "1.1.1.1:80,1.1.1.2:80,1.1.1.1:443 + 1 more..."
    );
    assert_eq!(endpoints(&json!({})), "<none>");
    let ev = json!({"metadata": {"name": "web.1"}, "type": "Normal", "reason": "Scheduled",
        "involvedObject": {"kind": "Pod", "name": "web"}, "message": "Successfully assigned\n",
        "firstTimestamp": "2025-01-01T00:59:00Z", "lastTimestamp": "2025-01-01T00:59:30Z",
        "count": 2, "source": {"component": "default-scheduler"}});
    let c = cells(info("events"), &ev, now()).unwrap_or_default();
    assert_eq!(
        c,
        vec![
            json!("30s"),
            json!("Normal"),
            json!("Scheduled"),
            json!("pod/web"),
            json!(""),
            json!("default-scheduler"),
            json!("Successfully assigned"),
            json!("60s"),
            json!(2),
            json!("web.1")
        ]
    );
}

#[test]
fn config_rows() {
    let cm = json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
    assert_eq!(
        cells(info("configmaps"), &cm, now()).unwrap_or_default()[1],
        3
    );
    let secret = json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "MQ=="}});
    let c = cells(info("secrets"), &secret, now()).unwrap_or_default();
    assert_eq!((c[1].clone(), c[2].clone()), (json!("Opaque"), json!(1)));
}
