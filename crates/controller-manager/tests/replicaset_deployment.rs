//! ReplicaSet and Deployment controllers against a real apiserver (testkit), with a fake kubelet.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use niwa_client::k8s::api::apps::v1::{Deployment, ReplicaSet};
use niwa_client::k8s::api::core::v1::Pod;
use niwa_client::runtime::watcher;
use niwa_client::{Api, DeleteParams, ListParams, Patch, ResourceExt};
use niwa_testkit::ControlPlane;
use support::*;

fn replicaset(name: &str, replicas: i32) -> ReplicaSet {
    from_yaml(&format!(
        r#"
apiVersion: apps/v1
kind: ReplicaSet
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

fn deployment(name: &str, replicas: i32, image: &str, extra: &str) -> Deployment {
    from_yaml(&format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: default}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  {extra}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec: {{containers: [{{name: main, image: "{image}"}}]}}
"#
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicaset_replaces_a_killed_pod_and_reports_status() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let _kubelet = FakeKubelet::start(client.clone(), |_| Behaviour::Ready);
    let cm = Manager::start(&cp, "replicaset").await;
    let rss: Api<ReplicaSet> = client.namespaced("default");
    rss.create(&replicaset("web", 3)).await.expect("create rs");
    let first = eventually(Duration::from_secs(20), "3 pods", || async {
        let pods = live_pods(&client, "default", "app=web").await;
        (pods.len() == 3).then_some(pods)
    })
    .await;
    for p in &first {
        let oref = p.controller_owner().cloned().expect("owner reference");
        assert_eq!(
            (oref.kind.as_str(), oref.name.as_str()),
            ("ReplicaSet", "web")
        );
        assert!(p.name_any().starts_with("web-"));
    }
    eventually(Duration::from_secs(20), "readyReplicas 3", || async {
        let rs = rss.get("web").await.ok()?;
        let st = rs.status?;
        (st.ready_replicas == Some(3)
            && st.available_replicas == Some(3)
            && st.observed_generation == rs.metadata.generation)
            .then_some(())
    })
    .await;
    // Kill one pod: a new one replaces it.
    let pods: Api<Pod> = client.namespaced("default");
    let victim = first[0].name_any();
    pods.delete(&victim, &DeleteParams::default())
        .await
        .expect("delete pod");
    let after = eventually(Duration::from_secs(20), "a replacement pod", || async {
        let pods = live_pods(&client, "default", "app=web").await;
        (pods.len() == 3 && pods.iter().all(|p| p.name_any() != victim)).then_some(pods)
    })
    .await;
    assert_eq!(after.len(), 3);
    // Scale down to 1 and never below.
    rss.patch(
        "web",
        &Patch::Merge(serde_json::json!({"spec": {"replicas": 1}})),
    )
    .await
    .expect("scale");
    eventually(Duration::from_secs(20), "1 pod", || async {
        (live_pods(&client, "default", "app=web").await.len() == 1).then_some(())
    })
    .await;
    // An orphan with matching labels is adopted (and the surplus deleted).
    let mut orphan = first[1].clone();
    orphan.metadata = niwa_client::k8s::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        name: Some("orphan".into()),
        namespace: Some("default".into()),
        labels: Some(BTreeMap::from([("app".into(), "web".into())])),
        ..Default::default()
    };
    orphan.status = None;
    pods.create(&orphan).await.expect("create orphan");
    eventually(
        Duration::from_secs(20),
        "back to 1 pod after adopting the orphan",
        || async {
            let live = live_pods(&client, "default", "app=web").await;
            let all_owned = live.iter().all(|p| p.controller_owner().is_some());
            (live.len() == 1 && all_owned).then_some(())
        },
    )
    .await;
    cm.shutdown().await;
}

/// Watches every pod of `app` and records the worst (max total, min ready) seen.
struct Observer {
    worst: Arc<Mutex<(usize, usize)>>,
    listed: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Observer {
    fn start(
        client: niwa_client::Client,
        app: &str,
        min_ready_from: Arc<std::sync::atomic::AtomicBool>,
    ) -> Observer {
        let worst = Arc::new(Mutex::new((0usize, usize::MAX)));
        let w = worst.clone();
        let listed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let listed_in_task = listed.clone();
        let api: Api<Pod> = client.namespaced("default");
        let cfg = watcher::Config::default().labels(&format!("app={app}"));
        let task = tokio::spawn(async move {
            // Counting only after a (re)list is complete: a half-listed set would look like
            // pods going missing, and a slow first list under load used to fail the test.
            let mut pods: BTreeMap<String, Pod> = BTreeMap::new();
            let mut listing: BTreeMap<String, Pod> = BTreeMap::new();
            let mut events = std::pin::pin!(watcher::watcher(api, cfg));
            while let Some(ev) = events.next().await {
                match ev {
                    Ok(watcher::Event::Init) => {
                        listing.clear();
                        continue;
                    }
                    Ok(watcher::Event::InitApply(p)) => {
                        listing.insert(p.name_any(), p);
                        continue;
                    }
                    Ok(watcher::Event::InitDone) => {
                        pods = std::mem::take(&mut listing);
                        listed_in_task.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    Ok(watcher::Event::Apply(p)) => {
                        pods.insert(p.name_any(), p);
                    }
                    Ok(watcher::Event::Delete(p)) => {
                        pods.remove(&p.name_any());
                    }
                    Err(_) => continue,
                }
                let total = pods.len();
                let ready = pods
                    .values()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .filter(|p| {
                        p.status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|c| {
                                c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                            })
                    })
                    .count();
                let mut g = w.lock().unwrap_or_else(|e| e.into_inner());
                g.0 = g.0.max(total);
                if min_ready_from.load(std::sync::atomic::Ordering::SeqCst) {
                    g.1 = g.1.min(ready);
                }
            }
        });
        Observer {
            worst,
            listed,
            task,
        }
    }

    /// Whether the first list is complete, so that what the observer counts is the whole set.
    fn listed(&self) -> bool {
        self.listed.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn worst(&self) -> (usize, usize) {
        *self.worst.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn deployment_settled(
    client: &niwa_client::Client,
    name: &str,
    replicas: i32,
) -> Option<Deployment> {
    let api: Api<Deployment> = client.namespaced("default");
    let d = api.get(name).await.ok()?;
    let st = d.status.clone()?;
    let done = st.updated_replicas == Some(replicas)
        && st.replicas == Some(replicas)
        && st.available_replicas == Some(replicas)
        && st.observed_generation == d.metadata.generation
        && st.conditions.iter().flatten().any(|c| {
            c.type_ == "Progressing" && c.reason.as_deref() == Some("NewReplicaSetAvailable")
        });
    done.then_some(d)
}

async fn replica_sets_of(client: &niwa_client::Client, app: &str) -> Vec<ReplicaSet> {
    let api: Api<ReplicaSet> = client.namespaced("default");
    api.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_stays_within_surge_and_unavailability_then_undo_reuses_the_old_replicaset()
{
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let _kubelet = FakeKubelet::start(client.clone(), |_| Behaviour::Ready);
    let cm = Manager::start(&cp, "replicaset,deployment").await;
    let deployments: Api<Deployment> = client.namespaced("default");
    let extra =
        "strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 25%, maxUnavailable: 25%}}";
    deployments
        .create(&deployment("web", 10, "nginx:1", extra))
        .await
        .expect("create");
    eventually(Duration::from_secs(30), "10 available", || {
        deployment_settled(&client, "web", 10)
    })
    .await;
    let rs_v1 = replica_sets_of(&client, "web").await;
    assert_eq!(rs_v1.len(), 1);
    let hash = rs_v1[0]
        .labels()
        .get("pod-template-hash")
        .cloned()
        .unwrap_or_default();
    assert_eq!(rs_v1[0].name_any(), format!("web-{hash}"));
    assert_eq!(
        rs_v1[0]
            .annotations()
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("1")
    );

    // Roll out a new image, watching every pod.
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let observer = Observer::start(client.clone(), "web", armed.clone());
    eventually(
        Duration::from_secs(30),
        "the observer's first list",
        || async { observer.listed().then_some(()) },
    )
    .await;
    armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:2"}]}}}});
    deployments
        .patch("web", &Patch::Merge(patch))
        .await
        .expect("patch image");
    let d = eventually(Duration::from_secs(60), "rollout to complete", || async {
        let d = deployment_settled(&client, "web", 10).await?;
        (d.metadata
            .annotations
            .as_ref()?
            .get("deployment.kubernetes.io/revision")?
            == "2")
            .then_some(d)
    })
    .await;
    let (max_total, min_ready) = observer.worst();
    assert!(
        max_total <= 13,
        "more than replicas + maxSurge pods at once: {max_total}"
    );
    assert!(
        min_ready >= 8,
        "fewer than replicas - maxUnavailable ready: {min_ready}"
    );
    let images: BTreeSet<String> = live_pods(&client, "default", "app=web")
        .await
        .iter()
        .filter_map(|p| p.spec.as_ref()?.containers.first()?.image.clone())
        .collect();
    assert_eq!(images, BTreeSet::from(["nginx:2".to_string()]));
    assert!(
        d.status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .any(|c| c.type_ == "Available" && c.status == "True")
    );

    // `kubectl rollout undo`: the template goes back; the old ReplicaSet is reused.
    let undo = serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:1"}]}}}});
    deployments
        .patch("web", &Patch::Merge(undo))
        .await
        .expect("undo");
    eventually(Duration::from_secs(60), "undo to complete", || async {
        let d = deployment_settled(&client, "web", 10).await?;
        (d.metadata
            .annotations
            .as_ref()?
            .get("deployment.kubernetes.io/revision")?
            == "3")
            .then_some(())
    })
    .await;
    let rss = replica_sets_of(&client, "web").await;
    assert_eq!(rss.len(), 2, "no third ReplicaSet");
    let old = rss
        .iter()
        .find(|r| r.name_any() == rs_v1[0].name_any())
        .expect("the v1 ReplicaSet");
    assert_eq!(old.spec.as_ref().and_then(|s| s.replicas), Some(10));
    assert_eq!(
        old.annotations()
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("3")
    );
    assert_eq!(
        old.annotations()
            .get("deployment.kubernetes.io/revision-history")
            .map(String::as_str),
        Some("1")
    );
    cm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_that_never_becomes_ready_reports_progress_deadline_exceeded() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let _kubelet = FakeKubelet::start(client.clone(), |p| {
        let image = p
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        if image == "broken" {
            Behaviour::NotReady
        } else {
            Behaviour::Ready
        }
    });
    let cm = Manager::start(&cp, "replicaset,deployment").await;
    let deployments: Api<Deployment> = client.namespaced("default");
    deployments
        .create(&deployment(
            "stuck",
            3,
            "nginx:1",
            "progressDeadlineSeconds: 3",
        ))
        .await
        .expect("create");
    eventually(Duration::from_secs(30), "3 available", || {
        deployment_settled(&client, "stuck", 3)
    })
    .await;
    let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "broken"}]}}}});
    deployments
        .patch("stuck", &Patch::Merge(patch))
        .await
        .expect("patch");
    let cond = eventually(
        Duration::from_secs(30),
        "ProgressDeadlineExceeded",
        || async {
            let d = deployments.get("stuck").await.ok()?;
            d.status?
                .conditions?
                .into_iter()
                .find(|c| c.type_ == "Progressing" && c.status == "False")
        },
    )
    .await;
    assert_eq!(cond.reason.as_deref(), Some("ProgressDeadlineExceeded"));
    assert!(
        cond.message
            .unwrap_or_default()
            .ends_with("has timed out progressing.")
    );
    // The old pods still serve: availability never dropped below 3 - 0 (maxUnavailable 25% of 3 = 0).
    let ready = live_pods(&client, "default", "app=stuck")
        .await
        .iter()
        .filter(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.containers.first())
                .and_then(|c| c.image.as_deref())
                == Some("nginx:1")
        })
        .count();
    assert_eq!(ready, 3);
    cm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_controller_manager_resumes_the_rollout_without_extra_pods() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let _kubelet = FakeKubelet::start(client.clone(), |_| Behaviour::Ready);
    let cm = Manager::start(&cp, "replicaset,deployment").await;
    let deployments: Api<Deployment> = client.namespaced("default");
    deployments
        .create(&deployment("resume", 10, "nginx:1", ""))
        .await
        .expect("create");
    eventually(Duration::from_secs(30), "10 available", || {
        deployment_settled(&client, "resume", 10)
    })
    .await;
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let observer = Observer::start(client.clone(), "resume", armed);
    eventually(
        Duration::from_secs(30),
        "the observer's first list",
        || async { observer.listed().then_some(()) },
    )
    .await;
    let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:2"}]}}}});
    deployments
        .patch("resume", &Patch::Merge(patch))
        .await
        .expect("patch");
    // Mid-rollout: the new ReplicaSet exists and has pods.
    eventually(Duration::from_secs(20), "the rollout to start", || async {
        let rss = replica_sets_of(&client, "resume").await;
        (rss.len() == 2).then_some(())
    })
    .await;
    cm.kill();
    let cm = Manager::start(&cp, "replicaset,deployment").await;
    eventually(
        Duration::from_secs(60),
        "the rollout to complete after the restart",
        || async {
            let d = deployment_settled(&client, "resume", 10).await?;
            (d.metadata
                .annotations
                .as_ref()?
                .get("deployment.kubernetes.io/revision")?
                == "2")
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(live_pods(&client, "default", "app=resume").await.len(), 10);
    let (max_total, _) = observer.worst();
    assert!(max_total <= 13, "extra pods after the restart: {max_total}");
    cm.shutdown().await;
}
