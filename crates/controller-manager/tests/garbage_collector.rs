//! Garbage collector against a real apiserver (testkit) with the workload controllers and a fake
//! kubelet: Background, Foreground and Orphan propagation.

mod support;

use std::time::Duration;

use niwa_client::k8s::api::apps::v1::{Deployment, ReplicaSet};
use niwa_client::k8s::api::core::v1::ConfigMap;
use niwa_client::{Api, DeleteParams, ListParams, Propagation, ResourceExt};
use niwa_testkit::ControlPlane;
use support::*;

const CONTROLLERS: &str = "replicaset,deployment,garbagecollector";

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
    spec: {{containers: [{{name: main, image: "nginx:1"}}]}}
"#
    ))
}

async fn replica_sets(client: &niwa_client::Client, app: &str) -> Vec<ReplicaSet> {
    let api: Api<ReplicaSet> = client.namespaced("default");
    api.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

async fn all_pods(client: &niwa_client::Client, app: &str) -> usize {
    let api: Api<niwa_client::k8s::api::core::v1::Pod> = client.namespaced("default");
    api.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .map(|l| l.items.len())
        .unwrap_or(usize::MAX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_foreground_and_orphan_propagation() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let _kubelet = FakeKubelet::start(client.clone(), |_| Behaviour::Ready);
    let cm = Manager::start(&cp, CONTROLLERS).await;
    let deps: Api<Deployment> = client.namespaced("default");

    // Background (kubectl's default): the Deployment goes at once, the GC collects the rest.
    deps.create(&deployment("bg", 3)).await.expect("create");
    eventually(Duration::from_secs(20), "3 bg pods", || async {
        (live_pods(&client, "default", "app=bg").await.len() == 3).then_some(())
    })
    .await;
    deps.delete(
        "bg",
        &DeleteParams::default().propagation(Propagation::Background),
    )
    .await
    .expect("delete bg");
    eventually(
        Duration::from_secs(20),
        "bg ReplicaSet and pods collected",
        || async {
            (replica_sets(&client, "bg").await.is_empty() && all_pods(&client, "bg").await == 0)
                .then_some(())
        },
    )
    .await;

    // Foreground: pods, then the ReplicaSet, then the Deployment.
    deps.create(&deployment("fg", 3)).await.expect("create");
    eventually(Duration::from_secs(20), "3 fg pods", || async {
        (live_pods(&client, "default", "app=fg").await.len() == 3).then_some(())
    })
    .await;
    deps.delete(
        "fg",
        &DeleteParams::default().propagation(Propagation::Foreground),
    )
    .await
    .expect("delete fg");
    let held = deps
        .get("fg")
        .await
        .expect("still there while dependents exist");
    assert!(held.finalizers().iter().any(|f| f == "foregroundDeletion"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        // Read the Deployment first: if it is gone, the pods must have gone before.
        let dep = deps.get_opt("fg").await.expect("get");
        let pods = all_pods(&client, "fg").await;
        let rss = replica_sets(&client, "fg").await.len();
        if dep.is_none() {
            assert_eq!((pods, rss), (0, 0), "Deployment gone before its dependents");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "foreground deletion did not finish"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Orphan: the ReplicaSet goes, its pods stay without an owner.
    deps.create(&deployment("or", 2)).await.expect("create");
    eventually(Duration::from_secs(20), "2 or pods", || async {
        (live_pods(&client, "default", "app=or").await.len() == 2).then_some(())
    })
    .await;
    deps.delete(
        "or",
        &DeleteParams::default().propagation(Propagation::Orphan),
    )
    .await
    .expect("delete or");
    eventually(
        Duration::from_secs(20),
        "Deployment gone, ReplicaSet orphaned",
        || async {
            let gone = deps.get_opt("or").await.ok()?.is_none();
            let rss = replica_sets(&client, "or").await;
            (gone && rss.len() == 1 && rss[0].owner_references().is_empty()).then_some(())
        },
    )
    .await;
    let rs_name = replica_sets(&client, "or").await[0].name_any();
    let rsapi: Api<ReplicaSet> = client.namespaced("default");
    rsapi
        .delete(
            &rs_name,
            &DeleteParams::default().propagation(Propagation::Orphan),
        )
        .await
        .expect("orphan the pods");
    eventually(Duration::from_secs(20), "pods orphaned", || async {
        let rs_gone = rsapi.get_opt(&rs_name).await.ok()?.is_none();
        let pods = live_pods(&client, "default", "app=or").await;
        (rs_gone && pods.len() == 2 && pods.iter().all(|p| p.owner_references().is_empty()))
            .then_some(())
    })
    .await;
    cm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dangling_references_are_collected_or_dropped() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let cm = Manager::start(&cp, "garbagecollector").await;
    let cms: Api<ConfigMap> = client.namespaced("default");
    let owner = cms
        .create(&from_yaml(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: owner, namespace: default}\n",
        ))
        .await
        .expect("owner");
    let uid = owner.uid().expect("uid");
    // One dependent of a never-existing owner, one of the live owner and a gone one.
    cms.create(&from_yaml(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dangling, namespace: default, ownerReferences: [{apiVersion: v1, kind: ConfigMap, name: ghost, uid: 00000000-0000-0000-0000-000000000001}]}\n",
    ))
    .await
    .expect("dangling");
    cms.create(&from_yaml(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: two, namespace: default, ownerReferences: [{{apiVersion: v1, kind: ConfigMap, name: owner, uid: {uid}}}, {{apiVersion: v1, kind: ConfigMap, name: ghost, uid: 00000000-0000-0000-0000-000000000001}}]}}\n"
    )))
    .await
    .expect("two owners");
    eventually(
        Duration::from_secs(10),
        "dangling collected, dead reference dropped",
        || async {
            let dangling = cms.get_opt("dangling").await.ok()?;
            let two = cms.get_opt("two").await.ok()??;
            let refs: Vec<String> = two
                .owner_references()
                .iter()
                .map(|o| o.name.clone())
                .collect();
            (dangling.is_none() && refs == vec!["owner".to_string()]).then_some(())
        },
    )
    .await;
    // The owner goes: so does its last dependent.
    cms.delete("owner", &Default::default())
        .await
        .expect("delete owner");
    eventually(Duration::from_secs(10), "dependent collected", || async {
        cms.get_opt("two").await.ok()?.is_none().then_some(())
    })
    .await;
    cm.shutdown().await;
}
