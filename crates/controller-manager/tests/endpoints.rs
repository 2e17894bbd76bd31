//! Endpoints, EndpointSlice and mirroring controllers against a real apiserver (testkit), with
//! the Deployment/ReplicaSet controllers and a fake kubelet making pods Ready.

mod support;

use std::time::{Duration, Instant};

use niwa_client::k8s::api::apps::v1::Deployment;
use niwa_client::k8s::api::core::v1::{Endpoints, Pod, PodCondition, Service};
use niwa_client::k8s::api::discovery::v1::EndpointSlice;
use niwa_client::{Api, ListParams, Patch, ResourceExt};
use niwa_testkit::ControlPlane;
use support::*;

const CONTROLLERS: &str = "replicaset,deployment,endpointslice,endpoint,endpointslice-mirroring";

fn deployment(name: &str, replicas: i32) -> Deployment {
    from_yaml(&format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: default}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: main
        image: "nginx:1"
        ports: [{{name: http, containerPort: 8080}}]
"#
    ))
}

fn service(name: &str) -> Service {
    from_yaml(&format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: web, port: 80, targetPort: http}}]
"#
    ))
}

/// (ready, not ready) endpoint counts over the Service's controller-managed slices.
async fn slice_counts(
    client: &niwa_client::Client,
    svc: &str,
) -> Option<(usize, usize, Vec<EndpointSlice>)> {
    let api: Api<EndpointSlice> = client.namespaced("default");
    let lp = ListParams::default().labels(&format!(
        "kubernetes.io/service-name={svc},endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io"
    ));
    let slices = api.list(&lp).await.ok()?.items;
    let mut ready = 0;
    let mut not_ready = 0;
    for s in &slices {
        for e in &s.endpoints {
            if e.conditions.as_ref().and_then(|c| c.ready) == Some(true) {
                ready += 1;
            } else {
                not_ready += 1;
            }
        }
    }
    Some((ready, not_ready, slices))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_and_readiness_update_slices_and_endpoints() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let _kubelet = FakeKubelet::start(client.clone(), |_| Behaviour::Ready);
    let cm = Manager::start(&cp, CONTROLLERS).await;
    let deps: Api<Deployment> = client.namespaced("default");
    let svcs: Api<Service> = client.namespaced("default");
    svcs.create(&service("web")).await.expect("create service");
    deps.create(&deployment("web", 3))
        .await
        .expect("create deployment");

    let (_, _, slices) = eventually(Duration::from_secs(20), "3 ready endpoints", || async {
        let c = slice_counts(&client, "web").await?;
        (c.0 == 3 && c.1 == 0).then_some(c)
    })
    .await;
    assert_eq!(slices.len(), 1);
    let slice = &slices[0];
    let owner = slice.controller_owner().expect("owned by the Service");
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Service", "web")
    );
    let port = &slice.ports.as_ref().expect("ports")[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("web"), Some(8080)));
    for e in &slice.endpoints {
        let target = e.target_ref.as_ref().expect("targetRef");
        assert_eq!(target.kind.as_deref(), Some("Pod"));
    }
    let eps: Api<Endpoints> = client.namespaced("default");
    eventually(
        Duration::from_secs(10),
        "Endpoints with 3 addresses",
        || async {
            let ep = eps.get_opt("web").await.ok()??;
            let subsets = ep.subsets?;
            let n: usize = subsets
                .iter()
                .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
                .sum();
            (n == 3 && subsets[0].ports.as_ref()?[0].port == 8080).then_some(())
        },
    )
    .await;

    // Scale up: the slice follows within a second of the pods being ready.
    deps.patch(
        "web",
        &Patch::Merge(serde_json::json!({"spec": {"replicas": 5}})),
    )
    .await
    .expect("scale");
    eventually(Duration::from_secs(20), "5 ready pods", || async {
        let pods = live_pods(&client, "default", "app=web").await;
        let ready = pods
            .iter()
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count();
        (ready == 5).then_some(())
    })
    .await;
    let ready_at = Instant::now();
    eventually(
        Duration::from_secs(1),
        "5 ready endpoints within 1 s",
        || async {
            let c = slice_counts(&client, "web").await?;
            (c.0 == 5).then_some(())
        },
    )
    .await;
    eprintln!("scale-up propagated in {:?}", ready_at.elapsed());

    // A pod failing readiness leaves the ready set (but stays, not ready).
    let pods: Api<Pod> = client.namespaced("default");
    let mut victim = live_pods(&client, "default", "app=web").await.remove(0);
    let status = victim.status.get_or_insert_with(Default::default);
    status.conditions = Some(vec![PodCondition {
        type_: "Ready".into(),
        status: "False".into(),
        ..Default::default()
    }]);
    pods.replace_status(&victim).await.expect("not ready");
    eventually(
        Duration::from_secs(1),
        "4 ready + 1 not ready within 1 s",
        || async {
            let c = slice_counts(&client, "web").await?;
            (c.0 == 4 && c.1 == 1).then_some(())
        },
    )
    .await;
    eventually(
        Duration::from_secs(5),
        "Endpoints notReadyAddresses",
        || async {
            let ep = eps.get_opt("web").await.ok()??;
            let nr: usize = ep
                .subsets?
                .iter()
                .map(|s| s.not_ready_addresses.as_ref().map_or(0, Vec::len))
                .sum();
            (nr == 1).then_some(())
        },
    )
    .await;

    // Scale down to zero: a placeholder slice remains; deleting the Service removes everything.
    deps.patch(
        "web",
        &Patch::Merge(serde_json::json!({"spec": {"replicas": 0}})),
    )
    .await
    .expect("scale to 0");
    eventually(Duration::from_secs(20), "no endpoints", || async {
        let c = slice_counts(&client, "web").await?;
        (c.0 == 0 && c.1 == 0 && c.2.len() == 1).then_some(())
    })
    .await;
    svcs.delete("web", &Default::default())
        .await
        .expect("delete svc");
    eventually(
        Duration::from_secs(10),
        "slices and Endpoints gone",
        || async {
            let c = slice_counts(&client, "web").await?;
            let ep = eps.get_opt("web").await.ok()?;
            (c.2.is_empty() && ep.is_none()).then_some(())
        },
    )
    .await;
    cm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectorless_service_endpoints_are_mirrored() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let cm = Manager::start(&cp, CONTROLLERS).await;
    let svcs: Api<Service> = client.namespaced("default");
    svcs.create(&from_yaml(
        "apiVersion: v1\nkind: Service\nmetadata: {name: ext, namespace: default}\nspec: {ports: [{port: 5432}]}\n",
    ))
    .await
    .expect("create svc");
    let eps: Api<Endpoints> = client.namespaced("default");
    eps.create(&from_yaml(
        "apiVersion: v1\nkind: Endpoints\nmetadata: {name: ext, namespace: default}\nsubsets: [{addresses: [{ip: 127.5.0.1}, {ip: 127.5.0.2}], ports: [{port: 5432}]}]\n",
    ))
    .await
    .expect("create endpoints");
    let slices: Api<EndpointSlice> = client.namespaced("default");
    let lp = ListParams::default().labels(
        "kubernetes.io/service-name=ext,endpointslice.kubernetes.io/managed-by=endpointslicemirroring-controller.k8s.io",
    );
    eventually(Duration::from_secs(10), "mirrored slice", || async {
        let items = slices.list(&lp).await.ok()?.items;
        (items.len() == 1 && items[0].endpoints.len() == 2).then_some(())
    })
    .await;
    // The user's Endpoints are left as written (the endpoint controller does not touch them).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ep = eps.get("ext").await.expect("endpoints");
    assert_eq!(
        ep.subsets.expect("subsets")[0]
            .addresses
            .as_ref()
            .map(Vec::len),
        Some(2)
    );
    // The apiserver's own `kubernetes` Endpoints are not mirrored.
    let k = slices
        .list(&ListParams::default().labels(
            "endpointslice.kubernetes.io/managed-by=endpointslicemirroring-controller.k8s.io",
        ))
        .await
        .expect("list")
        .items;
    assert!(k.iter().all(|s| s.name_any().starts_with("ext-")));
    eps.delete("ext", &Default::default())
        .await
        .expect("delete endpoints");
    eventually(Duration::from_secs(10), "mirrored slice gone", || async {
        slices.list(&lp).await.ok()?.items.is_empty().then_some(())
    })
    .await;
    cm.shutdown().await;
}
