//! Services get cluster IPs and node ports from the configured ranges (released on delete,
//! never handed out twice, even by another apiserver on the same store); the `kubernetes`
//! Service points at the apiserver; namespaces terminate through their finalizer.
mod common;

use common::*;
use niwa_api::Reason;
use serde_json::{Value, json};

fn svc(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
}

fn ports() -> Value {
    json!([{"port": 80}])
}

#[tokio::test]
async fn kubernetes_service_and_cluster_ip_allocation() {
    let cluster = Cluster::start().await;
    let mut c = cluster.client();
    let k = get(&mut c, rref("svc", "default", "kubernetes"))
        .await
        .expect("kubernetes service");
    assert_eq!(k["spec"]["clusterIP"], "127.96.0.1");
    assert_eq!(k["spec"]["ports"][0]["port"], 443);
    assert_eq!(k["spec"]["ports"][0]["targetPort"], cluster.api.port());
    let ep = get(&mut c, rref("ep", "default", "kubernetes"))
        .await
        .expect("kubernetes endpoints");
    assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], "127.0.0.1");
    assert_eq!(ep["subsets"][0]["ports"][0]["port"], cluster.api.port());

    // Automatic allocation: an address of the range, recorded in clusterIPs, IPv4 single-stack.
    let web = create(
        &mut c,
        rref("svc", "default", ""),
        svc("web", json!({"selector": {"app": "web"}, "ports": ports()})),
    )
    .await
    .expect("create");
    let ip = web["spec"]["clusterIP"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(ip.starts_with("127.96.") && ip != "127.96.0.1", "{ip}");
    assert_eq!(web["spec"]["clusterIPs"], json!([ip]));
    assert_eq!(web["spec"]["ipFamilies"], json!(["IPv4"]));
    assert_eq!(web["spec"]["ports"][0]["targetPort"], 80);

    // Requested addresses: taken, out of range.
    let dns = create(
        &mut c,
        rref("svc", "default", ""),
        svc("dns", json!({"clusterIP": "127.96.0.10", "ports": ports()})),
    )
    .await
    .expect("requested IP");
    assert_eq!(dns["spec"]["clusterIP"], "127.96.0.10");
    let err = create(
        &mut c,
        rref("svc", "default", ""),
        svc(
            "dns2",
            json!({"clusterIP": "127.96.0.10", "ports": ports()}),
        ),
    )
    .await
    .expect_err("taken");
    assert_eq!(err.reason, Reason::Invalid);
    assert_eq!(
        err.message,
        "Service \"dns2\" is invalid: spec.clusterIPs: Invalid value: []string{\"127.96.0.10\"}: failed to allocate IP 127.96.0.10: provided IP is already allocated"
    );
    let err = create(
        &mut c,
        rref("svc", "default", ""),
        svc("far", json!({"clusterIP": "127.97.0.1", "ports": ports()})),
    )
    .await
    .expect_err("out of range");
    assert!(err.message.ends_with("the provided IP (127.97.0.1) is not in the valid range. The range of valid IPs is 127.96.0.0/16"), "{}", err.message);

    // Headless: no address.
    let headless = create(
        &mut c,
        rref("svc", "default", ""),
        svc("db", json!({"clusterIP": "None", "ports": ports()})),
    )
    .await
    .expect("headless");
    assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));

    // A replace without the address keeps it; changing it is refused.
    let mut replaced = svc(
        "web",
        json!({"selector": {"app": "web2"}, "ports": ports()}),
    );
    replaced["metadata"]["resourceVersion"] = web["metadata"]["resourceVersion"].clone();
    let updated = update(&mut c, rref("svc", "default", "web"), replaced)
        .await
        .expect("replace");
    assert_eq!(updated["spec"]["clusterIP"], ip.as_str());
    let mut moved = updated.clone();
    moved["spec"]["clusterIP"] = json!("127.96.0.77");
    moved["spec"]["clusterIPs"] = json!(["127.96.0.77"]);
    let err = update(&mut c, rref("svc", "default", "web"), moved)
        .await
        .expect_err("immutable");
    assert_eq!(err.causes[0].field, "spec.clusterIPs[0]");
    assert!(err.causes[0].message.ends_with("may not change once set"));

    // Deleting frees the address; another apiserver on the same store sees what is taken.
    delete(&mut c, rref("svc", "default", "dns"), Value::Null)
        .await
        .expect("delete");
    let (mut other, _stop) = cluster.another_apiserver().await;
    let err = create(
        &mut other,
        rref("svc", "default", ""),
        svc("again", json!({"clusterIP": ip, "ports": ports()})),
    )
    .await
    .expect_err("still taken by web");
    assert!(
        err.message.contains("provided IP is already allocated"),
        "{}",
        err.message
    );
    create(
        &mut other,
        rref("svc", "default", ""),
        svc("dns", json!({"clusterIP": "127.96.0.10", "ports": ports()})),
    )
    .await
    .expect("released address is free again");
}

#[tokio::test]
async fn node_ports_are_allocated_in_range() {
    let cluster = Cluster::start().await;
    let mut c = cluster.client();
    let np = create(&mut c, rref("svc", "default", ""), svc("np", json!({"type": "NodePort", "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]})))
        .await
        .expect("node port service");
    let a = np["spec"]["ports"][0]["nodePort"].as_i64().unwrap_or(0);
    let b = np["spec"]["ports"][1]["nodePort"].as_i64().unwrap_or(0);
    assert!(
        (30000..=32767).contains(&a) && (30000..=32767).contains(&b) && a != b,
        "{a} {b}"
    );
    assert_eq!(np["spec"]["externalTrafficPolicy"], "Cluster");
    let err = create(
        &mut c,
        rref("svc", "default", ""),
        svc(
            "np2",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": a}]}),
        ),
    )
    .await
    .expect_err("taken port");
    assert_eq!(
        err.message,
        format!(
            "Service \"np2\" is invalid: spec.ports[0].nodePort: Invalid value: {a}: provided port is already allocated"
        )
    );
    let err = create(
        &mut c,
        rref("svc", "default", ""),
        svc(
            "np3",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 8080}]}),
        ),
    )
    .await
    .expect_err("out of range");
    assert!(
        err.message.ends_with(
            "provided port is not in the valid range. The range of valid ports is 30000-32767"
        ),
        "{}",
        err.message
    );
    let lb = create(
        &mut c,
        rref("svc", "default", ""),
        svc(
            "lb",
            json!({"type": "LoadBalancer", "ports": [{"port": 80, "nodePort": 30555}]}),
        ),
    )
    .await
    .expect("load balancer");
    assert_eq!(lb["spec"]["ports"][0]["nodePort"], 30555);
    assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
    // Back to ClusterIP: the node port must go, and is then free.
    let mut cip = lb.clone();
    cip["spec"]["type"] = json!("ClusterIP");
    cip["spec"]["ports"][0]
        .as_object_mut()
        .map(|p| p.remove("nodePort"));
    cip["spec"].as_object_mut().map(|s| {
        s.remove("externalTrafficPolicy");
        s.remove("allocateLoadBalancerNodePorts")
    });
    update(&mut c, rref("svc", "default", "lb"), cip)
        .await
        .expect("to ClusterIP");
    create(
        &mut c,
        rref("svc", "default", ""),
        svc(
            "np4",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30555}]}),
        ),
    )
    .await
    .expect("released node port is free again");
}

#[tokio::test]
async fn namespaces_terminate_through_their_finalizer() {
    let cluster = Cluster::start().await;
    let mut c = cluster.client();
    let ns = create(
        &mut c,
        rref("ns", "", ""),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}),
    )
    .await
    .expect("namespace");
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "team"
    );
    assert_eq!(ns["status"]["phase"], "Active");
    create(
        &mut c,
        rref("cm", "team", ""),
        json!({"metadata": {"name": "a"}}),
    )
    .await
    .expect("configmap");
    let deleting = delete(&mut c, rref("ns", "", "team"), Value::Null)
        .await
        .expect("delete namespace");
    assert_eq!(deleting["status"]["phase"], "Terminating");
    let err = create(
        &mut c,
        rref("cm", "team", ""),
        json!({"metadata": {"name": "b"}}),
    )
    .await
    .expect_err("terminating");
    assert_eq!(err.reason, Reason::Forbidden);
    assert_eq!(
        err.message,
        "configmaps \"b\" is forbidden: unable to create new content in namespace team because it is being terminated"
    );
    assert_eq!(err.causes[0].reason, "NamespaceTerminating");
    // The namespace controller's last step: finalize with no finalizers left.
    let mut fin = get(&mut c, rref("ns", "", "team"))
        .await
        .expect("still there");
    fin["spec"]["finalizers"] = json!([]);
    update(&mut c, sub(rref("ns", "", "team"), "finalize"), fin)
        .await
        .expect("finalize");
    let gone = get(&mut c, rref("ns", "", "team")).await.expect_err("gone");
    assert_eq!(gone.reason, Reason::NotFound);
    let err = delete(&mut c, rref("ns", "", "default"), Value::Null)
        .await
        .expect_err("default stays");
    assert_eq!(
        err.message,
        "namespaces \"default\" is forbidden: this namespace may not be deleted"
    );
}
