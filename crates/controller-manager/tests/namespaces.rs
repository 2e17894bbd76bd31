//! Namespace and ServiceAccount controllers against a real apiserver (testkit): every namespace
//! gets a `default` ServiceAccount; deleting a namespace with 100 objects of mixed kinds leaves
//! nothing behind and the namespace goes.

mod support;

use std::time::{Duration, Instant};

use niwa_client::k8s::api::apps::v1::Deployment;
use niwa_client::k8s::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service, ServiceAccount};
use niwa_client::{Api, ListParams};
use niwa_testkit::ControlPlane;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_namespace_with_100_objects_leaves_nothing() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let _kubelet = FakeKubelet::start(client.clone(), |_| Behaviour::Ready);
    let cm = Manager::start(
        &cp,
        "namespace,serviceaccount,replicaset,deployment,endpointslice,endpoint",
    )
    .await;
    let nss: Api<Namespace> = client.cluster();
    nss.create(&from_yaml(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n",
    ))
    .await
    .expect("create ns");
    let sas: Api<ServiceAccount> = client.namespaced("team");
    eventually(
        Duration::from_secs(10),
        "default ServiceAccount",
        || async { sas.get_opt("default").await.ok()?.map(|_| ()) },
    )
    .await;
    // The default ServiceAccount comes back when deleted.
    sas.delete("default", &Default::default())
        .await
        .expect("delete sa");
    eventually(
        Duration::from_secs(10),
        "default ServiceAccount again",
        || async {
            sas.get_opt("default")
                .await
                .ok()?
                .filter(|s| s.metadata.deletion_timestamp.is_none())
                .map(|_| ())
        },
    )
    .await;

    let cms: Api<ConfigMap> = client.namespaced("team");
    let secrets: Api<Secret> = client.namespaced("team");
    let svcs: Api<Service> = client.namespaced("team");
    let pods: Api<Pod> = client.namespaced("team");
    let deps: Api<Deployment> = client.namespaced("team");
    for i in 0..40 {
        cms.create(&from_yaml(&format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}, namespace: team}}\ndata: {{k: v}}\n"
        )))
        .await
        .expect("cm");
    }
    for i in 0..25 {
        secrets
            .create(&from_yaml(&format!(
                "apiVersion: v1\nkind: Secret\nmetadata: {{name: s{i}, namespace: team}}\nstringData: {{k: v}}\n"
            )))
            .await
            .expect("secret");
    }
    for i in 0..10 {
        svcs.create(&from_yaml(&format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: svc{i}, namespace: team}}\nspec: {{selector: {{app: d0}}, ports: [{{port: 80}}]}}\n"
        )))
        .await
        .expect("svc");
    }
    for i in 0..10 {
        pods.create(&from_yaml(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}, namespace: team}}\nspec: {{containers: [{{name: c, image: x}}]}}\n"
        )))
        .await
        .expect("pod");
    }
    for i in 0..3 {
        deps.create(&from_yaml(&format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d{i}, namespace: team}}\nspec:\n  replicas: 3\n  selector: {{matchLabels: {{app: d{i}}}}}\n  template:\n    metadata: {{labels: {{app: d{i}}}}}\n    spec: {{containers: [{{name: c, image: x}}]}}\n"
        )))
        .await
        .expect("deployment");
    }
    eventually(Duration::from_secs(20), "deployment pods", || async {
        (live_pods(&client, "team", "app").await.len() == 9).then_some(())
    })
    .await;
    // 40 + 25 + 10 + 10 + 3 deployments (+3 ReplicaSets, 9 pods, slices, Endpoints, the SA) ≥ 100.
    let started = Instant::now();
    nss.delete("team", &Default::default())
        .await
        .expect("delete ns");
    let ns = nss.get("team").await.expect("terminating");
    assert_eq!(
        ns.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    eventually(Duration::from_secs(30), "namespace gone", || async {
        nss.get_opt("team").await.ok()?.is_none().then_some(())
    })
    .await;
    eprintln!("namespace emptied and deleted in {:?}", started.elapsed());
    for info in niwa_controller_manager::controllers::namespace::core::deletable(
        niwa_api::registry::RESOURCES,
    ) {
        let left = client
            .dynamic_for(info, Some("team"))
            .list(&ListParams::default())
            .await
            .map(|l| l.items.len())
            .unwrap_or(0);
        assert_eq!(left, 0, "{} left in team", info.plural);
    }
    cm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_report_content_held_by_finalizers() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let cm = Manager::start(&cp, "namespace").await;
    let nss: Api<Namespace> = client.cluster();
    nss.create(&from_yaml(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: held}\n",
    ))
    .await
    .expect("create ns");
    let cms: Api<ConfigMap> = client.namespaced("held");
    cms.create(&from_yaml(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: held, finalizers: [example.com/hold]}\n",
    ))
    .await
    .expect("cm");
    nss.delete("held", &Default::default())
        .await
        .expect("delete ns");
    eventually(Duration::from_secs(10), "conditions naming the finalizer", || async {
        let ns = nss.get("held").await.ok()?;
        let conds = ns.status?.conditions?;
        let fin = conds.iter().find(|c| c.type_ == "NamespaceFinalizersRemaining")?;
        let content = conds.iter().find(|c| c.type_ == "NamespaceContentRemaining")?;
        (fin.status == "True"
            && fin.message.as_deref()
                == Some("Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances")
            && content.message.as_deref()
                == Some("Some resources are remaining: configmaps. has 1 resource instances"))
        .then_some(())
    })
    .await;
    cms.patch(
        "c",
        &niwa_client::Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("release");
    eventually(Duration::from_secs(10), "namespace gone", || async {
        nss.get_opt("held").await.ok()?.is_none().then_some(())
    })
    .await;
    cm.shutdown().await;
}
