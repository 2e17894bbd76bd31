//! Node IPAM and Service LoadBalancer controllers against a real apiserver (testkit): unique
//! podCIDRs and pool addresses, released on delete (and on type change for Services).

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use niwa_client::k8s::api::core::v1::{Node, Service};
use niwa_client::{Api, Patch};
use niwa_testkit::ControlPlane;
use support::*;

fn node(name: &str) -> Node {
    from_yaml(&format!(
        "apiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}\n"
    ))
}

fn lb(name: &str) -> Service {
    from_yaml(&format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec: {{type: LoadBalancer, selector: {{app: x}}, ports: [{{port: 80}}]}}\n"
    ))
}

async fn cidrs(api: &Api<Node>, names: &[&str]) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for n in names {
        let node = api.get(n).await.ok()?;
        let spec = node.spec?;
        let c = spec.pod_cidr?;
        if spec.pod_cidrs? != vec![c.clone()] {
            return None;
        }
        out.push(c);
    }
    Some(out)
}

async fn lb_ips(api: &Api<Service>, names: &[&str]) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for n in names {
        let svc = api.get(n).await.ok()?;
        let ip = svc.status?.load_balancer?.ingress?.first()?.ip.clone()?;
        out.push(ip);
    }
    Some(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_gets_a_unique_pod_cidr() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let cm = Manager::start(&cp, "nodeipam").await;
    let nodes: Api<Node> = client.cluster();
    let names = ["n1", "n2", "n3", "n4", "n5"];
    for n in names {
        nodes.create(&node(n)).await.expect("create node");
    }
    let got = eventually(Duration::from_secs(10), "podCIDRs", || {
        cidrs(&nodes, &names)
    })
    .await;
    let unique: BTreeSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), names.len(), "{got:?}");
    for c in &got {
        assert!(c.starts_with("127.244.") && c.ends_with(".0/24"), "{c}");
    }
    // A deleted node's subnet is handed out again.
    let freed = got[2].clone();
    nodes
        .delete("n3", &Default::default())
        .await
        .expect("delete");
    eventually(Duration::from_secs(5), "n3 gone", || async {
        nodes.get_opt("n3").await.ok()?.is_none().then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    nodes.create(&node("n6")).await.expect("create n6");
    let again = eventually(Duration::from_secs(10), "n6 podCIDR", || {
        cidrs(&nodes, &["n6"])
    })
    .await;
    assert_eq!(again[0], freed);
    cm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancers_get_unique_pool_addresses() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let cm = Manager::start(&cp, "service-lb").await;
    let svcs: Api<Service> = client.namespaced("default");
    let names = ["a", "b", "c"];
    for n in names {
        svcs.create(&lb(n)).await.expect("create svc");
    }
    let ips = eventually(Duration::from_secs(10), "LB addresses", || {
        lb_ips(&svcs, &names)
    })
    .await;
    let expected: BTreeSet<String> = ["127.200.0.1", "127.200.0.2", "127.200.0.3"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(ips.iter().cloned().collect::<BTreeSet<_>>(), expected);
    let unique: BTreeSet<&String> = ips.iter().collect();
    assert_eq!(unique.len(), 3);
    // Type change releases the address (status cleared).
    svcs.patch(
        "b",
        &Patch::Merge(
            serde_json::json!({"spec": {"type": "ClusterIP", "externalTrafficPolicy": null,
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}]}}),
        ),
    )
    .await
    .expect("to ClusterIP");
    eventually(Duration::from_secs(10), "b's status cleared", || async {
        let svc = svcs.get("b").await.ok()?;
        let empty = svc
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|l| l.ingress)
            .is_none_or(|i| i.is_empty());
        empty.then_some(())
    })
    .await;
    // Delete c: its address and b's old one are free again; the next two Services get them.
    svcs.delete("c", &Default::default())
        .await
        .expect("delete c");
    tokio::time::sleep(Duration::from_millis(300)).await;
    svcs.create(&lb("d")).await.expect("create d");
    svcs.create(&lb("e")).await.expect("create e");
    let more = eventually(Duration::from_secs(10), "d and e addresses", || {
        lb_ips(&svcs, &["a", "d", "e"])
    })
    .await;
    let unique: BTreeSet<&String> = more.iter().collect();
    assert_eq!(unique.len(), 3, "{more:?}");
    let reused: BTreeSet<String> = [ips[1].clone(), ips[2].clone()].into();
    assert_eq!(
        [more[1].clone(), more[2].clone()]
            .into_iter()
            .collect::<BTreeSet<_>>(),
        reused
    );
    cm.shutdown().await;
}
