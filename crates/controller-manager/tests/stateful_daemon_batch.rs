//! StatefulSet, DaemonSet, Job, CronJob and leader election against a real apiserver (testkit),
//! with a fake kubelet.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use niwa_client::k8s::api::apps::v1::{DaemonSet, StatefulSet};
use niwa_client::k8s::api::batch::v1::{CronJob, Job};
use niwa_client::k8s::api::core::v1::{Node, PersistentVolumeClaim, Pod};
use niwa_client::runtime::watcher;
use niwa_client::{Api, ListParams, Patch, ResourceExt};
use niwa_controller_manager::clock::Clock;
use niwa_testkit::ControlPlane;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_scales_up_in_order_and_down_in_reverse() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let _kubelet = FakeKubelet::start(client.clone(), |_| Behaviour::Ready);
    // Record the order in which pods appear and disappear.
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let l = log.clone();
    let pods_api: Api<Pod> = client.namespaced("default");
    let recorder = tokio::spawn(async move {
        let mut ev = std::pin::pin!(watcher::watcher(
            pods_api,
            watcher::Config::default().labels("app=web")
        ));
        let mut seen = std::collections::BTreeSet::new();
        while let Some(e) = ev.next().await {
            let mut g = l.lock().unwrap_or_else(|e| e.into_inner());
            match e {
                Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p))
                    if seen.insert(p.name_any()) =>
                {
                    g.push(format!("+{}", p.name_any()))
                }
                Ok(watcher::Event::Delete(p)) => {
                    seen.remove(&p.name_any());
                    g.push(format!("-{}", p.name_any()));
                }
                _ => {}
            }
        }
    });
    let cm = Manager::start(&cp, "statefulset").await;
    let sets: Api<StatefulSet> = client.namespaced("default");
    let set: StatefulSet = from_yaml(
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web, namespace: default}
spec:
  replicas: 3
  serviceName: nginx
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: main, image: "nginx:1"}]}
  volumeClaimTemplates:
  - metadata: {name: www}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
"#,
    );
    sets.create(&set).await.expect("create");
    eventually(Duration::from_secs(30), "3 ready replicas", || async {
        let s = sets.get("web").await.ok()?;
        (s.status?.ready_replicas == Some(3)).then_some(())
    })
    .await;
    let pods = live_pods(&client, "default", "app=web").await;
    let web1 = pods
        .iter()
        .find(|p| p.name_any() == "web-1")
        .expect("web-1");
    let spec = web1.spec.clone().unwrap_or_default();
    assert_eq!(spec.hostname.as_deref(), Some("web-1"));
    assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
    let pvcs: Api<PersistentVolumeClaim> = client.namespaced("default");
    let names: Vec<String> = pvcs
        .list(&ListParams::default())
        .await
        .expect("pvcs")
        .items
        .iter()
        .map(|c| c.name_any())
        .collect();
    assert_eq!(names.len(), 3);
    for n in ["www-web-0", "www-web-1", "www-web-2"] {
        assert!(names.contains(&n.to_string()), "{names:?}");
    }
    sets.patch(
        "web",
        &Patch::Merge(serde_json::json!({"spec": {"replicas": 0}})),
    )
    .await
    .expect("scale down");
    eventually(Duration::from_secs(30), "no pods", || async {
        live_pods(&client, "default", "app=web")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(
        log,
        vec!["+web-0", "+web-1", "+web-2", "-web-2", "-web-1", "-web-0"]
    );
    assert_eq!(
        pvcs.list(&ListParams::default())
            .await
            .expect("pvcs")
            .items
            .len(),
        3,
        "claims are kept"
    );
    recorder.abort();
    cm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemonset_runs_one_pod_per_eligible_node() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let nodes: Api<Node> = client.cluster();
    for (name, taint) in [("n1", false), ("n2", false), ("n3", true)] {
        let mut n: Node = from_yaml(&format!(
            "apiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}\n"
        ));
        if taint {
            n = from_yaml(&format!(
                "apiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}\nspec: {{taints: [{{key: dedicated, value: db, effect: NoSchedule}}]}}\n"
            ));
        }
        nodes.create(&n).await.expect("node");
    }
    let cm = Manager::start(&cp, "daemonset").await;
    let dss: Api<DaemonSet> = client.namespaced("default");
    let ds: DaemonSet = from_yaml(
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: default}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: main, image: "agent:1"}]}
"#,
    );
    dss.create(&ds).await.expect("create");
    let target = |p: &Pod| {
        niwa_controller_manager::controllers::daemonset::core::target_node(p).unwrap_or_default()
    };
    eventually(Duration::from_secs(20), "pods on n1 and n2", || async {
        let mut on: Vec<String> = live_pods(&client, "default", "app=agent")
            .await
            .iter()
            .map(target)
            .collect();
        on.sort();
        (on == vec!["n1", "n2"]).then_some(())
    })
    .await;
    nodes
        .create(&from_yaml(
            "apiVersion: v1\nkind: Node\nmetadata: {name: n4}\n",
        ))
        .await
        .expect("node");
    nodes
        .delete("n1", &Default::default())
        .await
        .expect("delete node");
    eventually(Duration::from_secs(20), "pods follow the nodes", || async {
        let mut on: Vec<String> = live_pods(&client, "default", "app=agent")
            .await
            .iter()
            .map(target)
            .collect();
        on.sort();
        (on == vec!["n2", "n4"]).then_some(())
    })
    .await;
    let st = eventually(Duration::from_secs(20), "status", || async {
        let st = dss.get("agent").await.ok()?.status?;
        (st.desired_number_scheduled == 2 && st.current_number_scheduled == 2).then_some(st)
    })
    .await;
    assert_eq!(st.number_misscheduled, 0);
    cm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_retries_failing_pods_up_to_the_backoff_limit_then_fails() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let _kubelet = FakeKubelet::start(client.clone(), |_| Behaviour::Fail);
    // The exponential pod backoff (10 s, 20 s, …) is real behaviour; skip it with the clock.
    let clock = Clock::system();
    clock.advance(Duration::from_secs(3600));
    let cm = Manager::start_with(&cp, "job", clock, false).await;
    let jobs: Api<Job> = client.namespaced("default");
    let job: Job = from_yaml(
        r#"
apiVersion: batch/v1
kind: Job
metadata: {name: flaky, namespace: default}
spec:
  backoffLimit: 2
  template:
    spec: {restartPolicy: Never, containers: [{name: main, image: "busybox"}]}
"#,
    );
    jobs.create(&job).await.expect("create");
    let st = eventually(Duration::from_secs(30), "the Failed condition", || async {
        let st = jobs.get("flaky").await.ok()?.status?;
        st.conditions
            .clone()?
            .iter()
            .any(|c| c.type_ == "Failed" && c.status == "True")
            .then_some(st)
    })
    .await;
    let failed = st
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Failed")
        .expect("cond");
    assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!(st.failed, Some(3));
    let pods: Api<Pod> = client.namespaced("default");
    let all = pods
        .list(&ListParams::default().labels("batch.kubernetes.io/job-name=flaky"))
        .await
        .expect("pods")
        .items;
    assert_eq!(all.len(), 3, "backoffLimit 2: three attempts");
    assert!(
        all.iter().all(|p| p.finalizers().is_empty()),
        "tracking finalizers released"
    );
    cm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_with_completions_and_parallelism_completes() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let _kubelet = FakeKubelet::start(client.clone(), |_| Behaviour::Succeed);
    let cm = Manager::start(&cp, "job").await;
    let jobs: Api<Job> = client.namespaced("default");
    let job: Job = from_yaml(
        r#"
apiVersion: batch/v1
kind: Job
metadata: {name: pi, namespace: default}
spec:
  completions: 4
  parallelism: 2
  completionMode: Indexed
  template:
    spec: {restartPolicy: Never, containers: [{name: main, image: "perl"}]}
"#,
    );
    jobs.create(&job).await.expect("create");
    let st = eventually(Duration::from_secs(30), "Complete", || async {
        let st = jobs.get("pi").await.ok()?.status?;
        st.conditions
            .clone()?
            .iter()
            .any(|c| c.type_ == "Complete" && c.status == "True")
            .then_some(st)
    })
    .await;
    assert_eq!(st.succeeded, Some(4));
    assert_eq!(st.completed_indexes.as_deref(), Some("0-3"));
    assert!(st.completion_time.is_some());
    cm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cronjob_creates_jobs_on_schedule_and_trims_history() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let _kubelet = FakeKubelet::start(client.clone(), |_| Behaviour::Succeed);
    let clock = Clock::system();
    let cm = Manager::start_with(&cp, "cronjob,job", clock.clone(), false).await;
    let cronjobs: Api<CronJob> = client.namespaced("default");
    let cj: CronJob = from_yaml(
        r#"
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick, namespace: default}
spec:
  schedule: "*/1 * * * *"
  timeZone: "Etc/UTC"
  successfulJobsHistoryLimit: 2
  jobTemplate:
    spec:
      template:
        spec: {restartPolicy: Never, containers: [{name: main, image: "busybox"}]}
"#,
    );
    cronjobs.create(&cj).await.expect("create");
    let jobs: Api<Job> = client.namespaced("default");
    let mut names = Vec::new();
    for minute in 1..=4 {
        // One minute passes for the controllers; the CronJob is looked at again (the requeue
        // timer runs on real time, so nudge it with a no-op label change).
        clock.advance(Duration::from_secs(60));
        cronjobs
            .patch(
                "tick",
                &Patch::Merge(
                    serde_json::json!({"metadata": {"labels": {"nudge": minute.to_string()}}}),
                ),
            )
            .await
            .expect("nudge");
        let created = eventually(Duration::from_secs(20), "a job for this minute", || async {
            let list = jobs.list(&ListParams::default()).await.ok()?.items;
            let new: Vec<String> = list
                .iter()
                .map(|j| j.name_any())
                .filter(|n| !names.contains(n))
                .collect();
            (new.len() == 1).then(|| new[0].clone())
        })
        .await;
        assert!(created.starts_with("tick-"));
        names.push(created.clone());
        eventually(Duration::from_secs(20), "the job to complete", || async {
            let j = jobs.get_opt(&created).await.ok()??;
            j.status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Complete")
                .then_some(())
        })
        .await;
    }
    // History: only the newest 2 completed Jobs are kept.
    cronjobs
        .patch(
            "tick",
            &Patch::Merge(serde_json::json!({"metadata": {"labels": {"nudge": "done"}}})),
        )
        .await
        .expect("nudge");
    eventually(Duration::from_secs(20), "history trimmed to 2", || async {
        let list: Vec<String> = jobs
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .iter()
            .map(|j| j.name_any())
            .collect();
        (list.len() == 2 && list.contains(&names[3]) && list.contains(&names[2])).then_some(())
    })
    .await;
    let st = cronjobs
        .get("tick")
        .await
        .expect("get")
        .status
        .unwrap_or_default();
    assert!(st.last_schedule_time.is_some());
    assert!(st.last_successful_time.is_some());
    cm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_works_and_a_standby_takes_over() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let _kubelet = FakeKubelet::start(client.clone(), |_| Behaviour::Ready);
    let a = Manager::start_with(&cp, "replicaset", Clock::system(), true).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let b = Manager::start_with(&cp, "replicaset", Clock::system(), true).await;
    let rss: Api<niwa_client::k8s::api::apps::v1::ReplicaSet> = client.namespaced("default");
    let rs: niwa_client::k8s::api::apps::v1::ReplicaSet = from_yaml(
        r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: ha, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: ha}}
  template:
    metadata: {labels: {app: ha}}
    spec: {containers: [{name: main, image: "nginx"}]}
"#,
    );
    rss.create(&rs).await.expect("create");
    eventually(Duration::from_secs(20), "2 pods", || async {
        (live_pods(&client, "default", "app=ha").await.len() == 2).then_some(())
    })
    .await;
    // The leader goes away gracefully (releasing the Lease); the standby takes over.
    a.shutdown().await;
    rss.patch(
        "ha",
        &Patch::Merge(serde_json::json!({"spec": {"replicas": 4}})),
    )
    .await
    .expect("scale");
    eventually(
        Duration::from_secs(20),
        "4 pods from the new leader",
        || async { (live_pods(&client, "default", "app=ha").await.len() == 4).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        live_pods(&client, "default", "app=ha").await.len(),
        4,
        "no duplicates"
    );
    b.shutdown().await;
}
