//! The issue's end-to-end checks with niwa's scheduler and sim kubelet in the loop (in-process):
//! kill a pod → replaced; a rollout whose readiness probe fails stalls and reports
//! ProgressDeadlineExceeded; a Job whose pods fail retries up to backoffLimit then fails.

mod support;

use std::time::Duration;

use niwa_client::k8s::api::apps::v1::Deployment;
use niwa_client::k8s::api::batch::v1::Job;
use niwa_client::k8s::api::core::v1::Pod;
use niwa_client::{Api, DeleteParams, ListParams, Patch, ResourceExt};
use niwa_controller_manager::clock::Clock;
use niwa_testkit::ControlPlane;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_healing_and_a_stalled_rollout_with_the_sim_kubelet() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let _sim = SimCluster::start(&cp, 3).await;
    let cm = Manager::start(&cp, "*").await;
    let deployments: Api<Deployment> = client.namespaced("default");
    let d: Deployment = from_yaml(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 4
  progressDeadlineSeconds: 5
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: main
        image: "nginx:1"
        readinessProbe: {httpGet: {path: /, port: 80}, periodSeconds: 1}
"#,
    );
    deployments.create(&d).await.expect("create");
    eventually(Duration::from_secs(60), "4 available", || async {
        let st = deployments.get("web").await.ok()?.status?;
        (st.available_replicas == Some(4)).then_some(())
    })
    .await;
    // Kill a pod: it is replaced.
    let pods: Api<Pod> = client.namespaced("default");
    let victim = live_pods(&client, "default", "app=web").await[0].name_any();
    pods.delete(&victim, &DeleteParams::default())
        .await
        .expect("delete");
    eventually(
        Duration::from_secs(60),
        "a replacement, 4 available again",
        || async {
            let live = live_pods(&client, "default", "app=web").await;
            let st = deployments.get("web").await.ok()?.status?;
            (live.len() == 4
                && live.iter().all(|p| p.name_any() != victim)
                && st.available_replicas == Some(4))
            .then_some(())
        },
    )
    .await;
    // A rollout whose readiness probe never passes stalls and times out.
    let patch = serde_json::json!({"spec": {"template": {"metadata": {"annotations": {"sim.niwa.io/fail-probes": "readiness"}}}}});
    deployments
        .patch("web", &Patch::Merge(patch))
        .await
        .expect("patch");
    let cond = eventually(
        Duration::from_secs(60),
        "ProgressDeadlineExceeded",
        || async {
            let d = deployments.get("web").await.ok()?;
            d.status?
                .conditions?
                .into_iter()
                .find(|c| c.type_ == "Progressing" && c.status == "False")
        },
    )
    .await;
    assert_eq!(cond.reason.as_deref(), Some("ProgressDeadlineExceeded"));
    let st = deployments
        .get("web")
        .await
        .expect("get")
        .status
        .unwrap_or_default();
    assert!(
        st.available_replicas.unwrap_or(0) >= 3,
        "maxUnavailable 25% of 4 = 1: {st:?}"
    );
    cm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_with_a_failing_pod_retries_then_fails_with_the_sim_kubelet() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let _sim = SimCluster::start(&cp, 2).await;
    let clock = Clock::system();
    clock.advance(Duration::from_secs(3600)); // skip the 10 s, 20 s pod backoff
    let cm = Manager::start_with(&cp, "*", clock, false).await;
    let jobs: Api<Job> = client.namespaced("default");
    let job: Job = from_yaml(
        r#"
apiVersion: batch/v1
kind: Job
metadata: {name: flaky, namespace: default}
spec:
  backoffLimit: 1
  template:
    metadata: {annotations: {"sim.niwa.io/exit-code": "1"}}
    spec: {restartPolicy: Never, containers: [{name: main, image: "busybox"}]}
"#,
    );
    jobs.create(&job).await.expect("create");
    let st = eventually(Duration::from_secs(60), "Failed", || async {
        let st = jobs.get("flaky").await.ok()?.status?;
        st.conditions
            .clone()?
            .iter()
            .any(|c| c.type_ == "Failed" && c.status == "True")
            .then_some(st)
    })
    .await;
    assert_eq!(st.failed, Some(2));
    let pods: Api<Pod> = client.namespaced("default");
    let all = pods
        .list(&ListParams::default().labels("batch.kubernetes.io/job-name=flaky"))
        .await
        .expect("pods")
        .items;
    assert_eq!(all.len(), 2);
    cm.shutdown().await;
}
