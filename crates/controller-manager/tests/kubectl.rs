//! What a user does with kubectl: create a Deployment, wait for the rollout, update the image,
//! look at the history, undo — against niwa's apiserver with the controller-manager running.

mod support;

use std::time::Duration;

use niwa_client::k8s::api::apps::v1::ReplicaSet;
use niwa_client::{Api, ListParams};
use niwa_testkit::ControlPlane;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_rollout_history_and_undo() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let _kubelet = FakeKubelet::start(client.clone(), |_| Behaviour::Ready);
    let cm = Manager::start(&cp, "*").await;
    let k = Kubectl::new(&cp);
    k.run(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.25",
        "--replicas=4",
    ])
    .await;
    let out = k
        .run(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    k.run(&["set", "image", "deployment/web", "nginx=nginx:1.26"])
        .await;
    let out = k
        .run(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    let history = k.run(&["rollout", "history", "deployment/web"]).await;
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, vec!["1", "2"], "{history}");
    k.run(&["rollout", "undo", "deployment/web"]).await;
    let out = k
        .run(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    let image = k
        .run(&[
            "get",
            "deployment/web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ])
        .await;
    assert_eq!(image, "nginx:1.25");
    let rss: Api<ReplicaSet> = client.namespaced("default");
    let list = rss
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("list")
        .items;
    assert_eq!(list.len(), 2, "undo reuses the first ReplicaSet");
    let history = k.run(&["rollout", "history", "deployment/web"]).await;
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, vec!["2", "3"], "{history}");
    // Scaling and the pods kubectl lists.
    k.run(&["scale", "deployment/web", "--replicas=2"]).await;
    eventually(Duration::from_secs(30), "2 pods", || async {
        (live_pods(&client, "default", "app=web").await.len() == 2).then_some(())
    })
    .await;
    let events = k
        .run(&[
            "get",
            "events",
            "-o",
            "jsonpath={range .items[*]}{.reason}{\"\\n\"}{end}",
        ])
        .await;
    assert!(events.lines().any(|r| r == "ScalingReplicaSet"), "{events}");
    assert!(events.lines().any(|r| r == "SuccessfulCreate"), "{events}");
    cm.shutdown().await;
}
