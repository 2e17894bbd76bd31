//! niwa-dns against a real apiserver, queried with `dig`: every record kind of the Kubernetes DNS
//! specification, changes followed live, forwarding with caching, and malformed input.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, resolve_a};
use niwa_client::Patch;
use serde_json::json;

fn service(ns: &str, name: &str, spec: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": ns, "name": name}, "spec": spec})
}

async fn ensure_namespace(c: &Cluster, ns: &str) {
    let namespaces = c.cp.client().dynamic("", "v1", "namespaces", None);
    if namespaces
        .get_opt(ns)
        .await
        .expect("get namespace")
        .is_none()
    {
        c.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
            .await;
    }
}

/// A headless StatefulSet-like Service `web` in `db` with two named endpoints and one without a
/// hostname, one of them not ready.
async fn create_headless(c: &Cluster, ready_web1: bool) {
    ensure_namespace(c, "db").await;
    c.create(service(
        "db",
        "web",
        json!({"clusterIP": "None", "selector": {"app": "web"},
               "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}),
    ))
    .await;
    c.create(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"namespace": "db", "name": "web-x1", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": ["127.244.1.5"], "hostname": "web-0", "conditions": {"ready": true}},
            {"addresses": ["127.244.1.6"], "hostname": "web-1", "conditions": {"ready": ready_web1}},
            {"addresses": ["127.244.2.7"], "conditions": {"ready": true}},
        ],
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_ip_service_records() {
    let c = Cluster::start().await;
    c.create(service(
        "default",
        "nginx",
        json!({"clusterIP": "127.96.0.20", "ports": [
            {"name": "http", "port": 80, "protocol": "TCP"},
            {"name": "dns", "port": 53, "protocol": "UDP"},
        ]}),
    ))
    .await;

    let a = c
        .dig_until(&["nginx.default.svc.cluster.local", "A"], |d| {
            !d.answer.is_empty()
        })
        .await;
    assert_eq!(a.status, "NOERROR");
    assert!(a.has_flag("aa") && a.has_flag("ra"), "{}", a.raw);
    assert_eq!(
        a.answer,
        vec!["nginx.default.svc.cluster.local. 5 IN A 127.96.0.20"]
    );

    let srv = c.dig(&["_http._tcp.nginx.default.svc.cluster.local", "SRV"]);
    assert_eq!(
        srv.answer,
        vec![
            "_http._tcp.nginx.default.svc.cluster.local. 5 IN SRV 0 100 80 nginx.default.svc.cluster.local."
        ]
    );
    assert_eq!(
        srv.additional,
        vec!["nginx.default.svc.cluster.local. 5 IN A 127.96.0.20"]
    );
    let srv = c.dig(&["_dns._udp.nginx.default.svc.cluster.local", "SRV"]);
    assert_eq!(
        srv.answer_data(),
        vec!["0 100 53 nginx.default.svc.cluster.local."]
    );

    let ptr = c.dig(&["-x", "127.96.0.20"]);
    assert_eq!(
        ptr.answer,
        vec!["20.0.96.127.in-addr.arpa. 5 IN PTR nginx.default.svc.cluster.local."]
    );

    // NODATA: the name exists, not its AAAA. NXDOMAIN: it does not exist. Both carry the SOA.
    let nodata = c.dig(&["nginx.default.svc.cluster.local", "AAAA"]);
    assert_eq!(nodata.status, "NOERROR");
    assert!(nodata.answer.is_empty());
    assert!(
        nodata.authority[0]
            .starts_with("cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local.")
    );
    let nx = c.dig(&["nope.default.svc.cluster.local", "A"]);
    assert_eq!(nx.status, "NXDOMAIN");
    assert!(nx.authority[0].contains(" IN SOA "), "{}", nx.raw);
    let ent = c.dig(&["default.svc.cluster.local", "A"]);
    assert_eq!(ent.status, "NOERROR", "an empty non-terminal exists");

    // Apex, schema version, wildcards.
    let soa = c.dig(&["cluster.local", "SOA"]);
    assert_eq!(soa.answer.len(), 1);
    assert!(soa.answer[0].contains("IN SOA ns.dns.cluster.local. hostmaster.cluster.local."));
    let ns = c.dig(&["cluster.local", "NS"]);
    assert_eq!(
        ns.answer,
        vec!["cluster.local. 5 IN NS ns.dns.cluster.local."]
    );
    let version = c.dig(&["dns-version.cluster.local", "TXT"]);
    assert_eq!(
        version.answer,
        vec!["dns-version.cluster.local. 5 IN TXT \"1.1.0\""]
    );
    let wildcard = c.dig(&["*.default.svc.cluster.local", "A"]);
    assert_eq!(wildcard.status, "REFUSED");

    // TCP gives the same answer.
    let tcp = c.dig(&["+tcp", "nginx.default.svc.cluster.local", "A"]);
    assert_eq!(tcp.answer, a.answer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_service_follows_readiness() {
    let c = Cluster::start().await;
    create_headless(&c, false).await;

    let a = c
        .dig_until(&["web.db.svc.cluster.local", "A"], |d| d.answer.len() == 2)
        .await;
    assert_eq!(a.answer_data(), vec!["127.244.1.5", "127.244.2.7"]);
    let host = c.dig(&["web-0.web.db.svc.cluster.local", "A"]);
    assert_eq!(
        host.answer,
        vec!["web-0.web.db.svc.cluster.local. 5 IN A 127.244.1.5"]
    );
    let dashed = c.dig(&["127-244-2-7.web.db.svc.cluster.local", "A"]);
    assert_eq!(dashed.answer_data(), vec!["127.244.2.7"]);
    assert_eq!(
        c.dig(&["web-1.web.db.svc.cluster.local", "A"]).status,
        "NXDOMAIN"
    );
    // SRV: one per ready endpoint, the endpoint's port (8080), targets with their addresses.
    let srv = c.dig(&["_http._tcp.web.db.svc.cluster.local", "SRV"]);
    assert_eq!(
        srv.answer_data(),
        vec![
            "0 50 8080 127-244-2-7.web.db.svc.cluster.local.",
            "0 50 8080 web-0.web.db.svc.cluster.local."
        ]
    );
    assert_eq!(srv.additional.len(), 2, "{}", srv.raw);
    let ptr = c.dig(&["-x", "127.244.1.5"]);
    assert_eq!(ptr.answer_data(), vec!["web-0.web.db.svc.cluster.local."]);

    // web-1 becomes ready: it is answered; web-0 stops being ready: it is not.
    let slices =
        c.cp.client()
            .dynamic("discovery.k8s.io", "v1", "endpointslices", Some("db"));
    let mut slice = slices.get("web-x1").await.expect("slice");
    slice["endpoints"][1]["conditions"]["ready"] = json!(true);
    slice["endpoints"][0]["conditions"]["ready"] = json!(false);
    slices.replace(&slice).await.expect("update slice");
    let a = c
        .dig_until(&["web.db.svc.cluster.local", "A"], |d| {
            d.answer_data() == vec!["127.244.1.6", "127.244.2.7"]
        })
        .await;
    assert_eq!(a.status, "NOERROR");
    assert_eq!(
        c.dig(&["web-0.web.db.svc.cluster.local", "A"]).status,
        "NXDOMAIN"
    );
    assert_eq!(
        c.dig(&["web-1.web.db.svc.cluster.local", "A"])
            .answer_data(),
        vec!["127.244.1.6"]
    );

    // publishNotReadyAddresses: every endpoint is answered.
    let services = c.cp.client().dynamic("", "v1", "services", Some("db"));
    services
        .patch(
            "web",
            &Patch::Merge(json!({"spec": {"publishNotReadyAddresses": true}})),
        )
        .await
        .expect("patch service");
    c.dig_until(&["web.db.svc.cluster.local", "A"], |d| d.answer.len() == 3)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_service_resolves_within_a_second_and_deleted_stops() {
    let c = Cluster::start().await;
    let name = "fresh.default.svc.cluster.local.";
    assert_eq!(resolve_a(c.dns, name).await, Some(vec![]));

    c.create(service(
        "default",
        "fresh",
        json!({"clusterIP": "127.96.0.77", "ports": [{"port": 80}]}),
    ))
    .await;
    let created = Instant::now();
    loop {
        if resolve_a(c.dns, name).await == Some(vec!["127.96.0.77".parse().expect("ip")]) {
            break;
        }
        assert!(
            created.elapsed() < Duration::from_secs(1),
            "a new Service must resolve within 1 s of creation"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        c.dig(&["fresh.default.svc.cluster.local", "A"])
            .answer_data(),
        vec!["127.96.0.77"]
    );

    let services = c.cp.client().dynamic("", "v1", "services", Some("default"));
    services
        .delete("fresh", &Default::default())
        .await
        .expect("delete");
    let deleted = Instant::now();
    loop {
        if resolve_a(c.dns, name).await == Some(vec![]) {
            break;
        }
        assert!(
            deleted.elapsed() < Duration::from_secs(1),
            "a deleted Service must stop resolving"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        c.dig(&["fresh.default.svc.cluster.local", "A"]).status,
        "NXDOMAIN"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_name_and_pod_records() {
    let c = Cluster::start().await;
    c.create(service(
        "default",
        "search",
        json!({"type": "ExternalName", "externalName": "www.example.test"}),
    ))
    .await;
    // The CNAME, and the target's address from the upstream, as CoreDNS answers.
    let cname = c
        .dig_until(&["search.default.svc.cluster.local", "A"], |d| {
            !d.answer.is_empty()
        })
        .await;
    assert_eq!(
        cname.answer,
        vec![
            "search.default.svc.cluster.local. 5 IN CNAME www.example.test.",
            "www.example.test. 120 IN A 127.0.0.7"
        ]
    );

    // Pod records: `<a-b-c-d>.<ns>.pod.<domain>`, and a PTR for the pod's IP.
    c.create(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": "default", "name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }))
    .await;
    let pods = c.cp.client().dynamic("", "v1", "pods", Some("default"));
    pods.patch_status(
        "p",
        &Patch::Merge(json!({"status": {"phase": "Running", "podIP": "127.244.3.4", "podIPs": [{"ip": "127.244.3.4"}]}})),
    )
    .await
    .expect("pod status");
    let pod = c.dig(&["127-244-3-4.default.pod.cluster.local", "A"]);
    assert_eq!(
        pod.answer,
        vec!["127-244-3-4.default.pod.cluster.local. 5 IN A 127.244.3.4"]
    );
    let ptr = c
        .dig_until(&["-x", "127.244.3.4"], |d| !d.answer.is_empty())
        .await;
    assert_eq!(
        ptr.answer_data(),
        vec!["127-244-3-4.default.pod.cluster.local."]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_pod_records_need_a_pod() {
    let c = Cluster::start_with(niwa_dns::zone::PodRecords::Verified).await;
    assert_eq!(
        c.dig(&["127-244-3-4.default.pod.cluster.local", "A"])
            .status,
        "NXDOMAIN"
    );
    c.create(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": "default", "name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }))
    .await;
    let pods = c.cp.client().dynamic("", "v1", "pods", Some("default"));
    pods.patch_status(
        "p",
        &Patch::Merge(json!({"status": {"phase": "Running", "podIP": "127.244.3.4"}})),
    )
    .await
    .expect("pod status");
    let pod = c
        .dig_until(&["127-244-3-4.default.pod.cluster.local", "A"], |d| {
            !d.answer.is_empty()
        })
        .await;
    assert_eq!(pod.answer_data(), vec!["127.244.3.4"]);
    assert_eq!(
        c.dig(&["127-244-3-4.other.pod.cluster.local", "A"]).status,
        "NXDOMAIN"
    );
}
