//! The kubelet with the sim runtime against a real apiserver (in-process): node registration and
//! heartbeats, pods bound by spec.nodeName driven through their lifecycle, logs over the kubelet
//! API (and attach's clear refusal: a simulated container has no process), many nodes in one
//! process.

mod common;

use std::time::Duration;

use common::{Cluster, condition, container, phase, restarts, wait_gone, wait_pod};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use niwa_api::proto::kubelet::kubelet_client::KubeletClient;
use niwa_api::proto::kubelet::{ExecInput, ExecStart, LogsRequest, exec_input};
use niwa_client::{Api, DeleteParams};
use niwa_kubelet::config::RuntimeKind;
use serde_json::json;

const T: Duration = Duration::from_secs(20);

#[tokio::test]
async fn node_registers_with_lease_and_status() {
    let c = Cluster::start(RuntimeKind::Sim, |cfg| {
        cfg.roles = vec!["worker".into()];
        cfg.lease_interval = Duration::from_millis(300);
    })
    .await;
    let nodes: Api<Node> = c.client().cluster();
    let node = nodes.get(&c.node_name()).await.unwrap_or_default();
    let v = serde_json::to_value(&node).unwrap_or_default();
    assert_eq!(
        v["metadata"]["labels"]["kubernetes.io/hostname"],
        c.node_name().as_str()
    );
    assert_eq!(
        v["metadata"]["labels"]["node-role.kubernetes.io/worker"],
        ""
    );
    assert_eq!(v["spec"]["podCIDR"], format!("127.{}.1.0/24", c.block));
    assert_eq!(
        v["status"]["addresses"][0]["address"],
        format!("127.{}.0.1", c.block)
    );
    let port = c.kubelet.as_ref().map(|k| k.api_port).unwrap_or_default();
    assert_eq!(
        v["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"],
        port
    );
    assert_eq!(v["status"]["capacity"]["pods"], "110");
    let ready = v["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .cloned();
    assert_eq!(ready.map(|r| r["status"].clone()), Some(json!("True")));

    let leases: Api<Lease> = c.client().namespaced("kube-node-lease");
    let first = wait_lease(&leases, &c.node_name()).await;
    assert_eq!(
        first.spec.as_ref().and_then(|s| s.holder_identity.clone()),
        Some(c.node_name())
    );
    assert_eq!(
        first.spec.as_ref().and_then(|s| s.lease_duration_seconds),
        Some(40)
    );
    let renewed = first.spec.as_ref().and_then(|s| s.renew_time.clone());
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let later = leases.get(&c.node_name()).await.unwrap_or_default();
    assert_ne!(
        later.spec.and_then(|s| s.renew_time),
        renewed,
        "lease renewed"
    );
}

async fn wait_lease(leases: &Api<Lease>, name: &str) -> Lease {
    for _ in 0..100 {
        if let Ok(Some(l)) = leases.get_opt(name).await {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no lease {name}");
}

#[tokio::test]
async fn pod_runs_to_completion_with_kubernetes_status() {
    let c = Cluster::start(RuntimeKind::Sim, |_| {}).await;
    c.create_pod(json!({
        "metadata": {"name": "job-like", "annotations": {"sim.niwa.io/run-duration": "500ms"}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "work", "image": "busybox"}]},
    }))
    .await;
    let pods = c.pods();
    let running = wait_pod(&pods, "job-like", T, |p| phase(p) == "Running").await;
    let status = running.status.clone().unwrap_or_default();
    let ip = status.pod_ip.unwrap_or_default();
    assert!(
        ip.starts_with(&format!("127.{}.1.", c.block)),
        "pod IP {ip} from the node's podCIDR"
    );
    assert_eq!(
        status.host_ip.as_deref(),
        Some(format!("127.{}.0.1", c.block).as_str())
    );
    assert_eq!(condition(&running, "Ready"), "True");
    assert_eq!(status.qos_class.as_deref(), Some("BestEffort"));
    let done = wait_pod(&pods, "job-like", T, |p| phase(p) == "Succeeded").await;
    let work = container(&done, "work");
    assert_eq!(work["state"]["terminated"]["reason"], "Completed");
    assert_eq!(work["state"]["terminated"]["exitCode"], 0);
    assert_eq!(condition(&done, "Ready"), "False");
}

#[tokio::test]
async fn crashing_container_backs_off_with_growing_delays() {
    let c = Cluster::start(RuntimeKind::Sim, |cfg| {
        cfg.machine.restart_backoff.initial = Duration::from_millis(400);
        cfg.machine.restart_backoff.max = Duration::from_secs(2);
    })
    .await;
    c.create_pod(json!({
        "metadata": {"name": "crasher", "annotations": {"sim.niwa.io/exit-code": "2", "sim.niwa.io/run-duration": "100ms"}},
        "spec": {"containers": [{"name": "app", "image": "busybox"}]},
    }))
    .await;
    let pods = c.pods();
    let p = wait_pod(&pods, "crasher", T, |p| {
        container(p, "app")["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    })
    .await;
    let app = container(&p, "app");
    assert_eq!(app["lastState"]["terminated"]["exitCode"], 2);
    assert_eq!(app["lastState"]["terminated"]["reason"], "Error");
    let message = app["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(message.starts_with("back-off "), "{message}");
    assert!(
        message.contains("ms restarting failed container=app pod=crasher_default(")
            || message.contains("s restarting failed container=app pod=crasher_default("),
        "{message}"
    );
    assert_eq!(phase(&p), "Running");
    // Restart times: immediate, then 0.4 s, 0.8 s, 1.6 s after each crash.
    let started = std::time::Instant::now();
    wait_pod(&pods, "crasher", T, |p| restarts(p, "app") >= 4).await;
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "back-off delays grow: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn deleting_a_pod_stops_it_and_removes_the_object() {
    let c = Cluster::start(RuntimeKind::Sim, |_| {}).await;
    c.create_pod(json!({
        "metadata": {"name": "victim"},
        "spec": {"terminationGracePeriodSeconds": 30, "containers": [{"name": "app", "image": "nginx"}]},
    }))
    .await;
    let pods = c.pods();
    wait_pod(&pods, "victim", T, |p| phase(p) == "Running").await;
    let deleted = pods.delete("victim", &DeleteParams::default()).await;
    assert!(deleted.is_ok(), "{deleted:?}");
    wait_gone(&pods, "victim", T).await;
}

#[tokio::test]
async fn probes_drive_readiness_and_liveness_restarts() {
    let c = Cluster::start(RuntimeKind::Sim, |cfg| {
        cfg.machine.restart_backoff.initial = Duration::from_millis(100);
    })
    .await;
    c.create_pod(json!({
        "metadata": {"name": "slow", "annotations": {"sim.niwa.io/ready-after": "1500ms"}},
        "spec": {"containers": [{"name": "app", "image": "nginx",
            "readinessProbe": {"httpGet": {"port": 80}, "periodSeconds": 1}}]},
    }))
    .await;
    c.create_pod(json!({
        "metadata": {"name": "sick", "annotations": {"sim.niwa.io/fail-probes": "liveness"}},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "app", "image": "nginx",
            "livenessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 1, "failureThreshold": 2}}]},
    }))
    .await;
    let pods = c.pods();
    let p = wait_pod(&pods, "slow", T, |p| phase(p) == "Running").await;
    assert_eq!(condition(&p, "Ready"), "False");
    wait_pod(&pods, "slow", T, |p| condition(p, "Ready") == "True").await;
    let p = wait_pod(&pods, "sick", T, |p| restarts(p, "app") >= 1).await;
    assert!(!container(&p, "app")["lastState"]["terminated"].is_null());
}

#[tokio::test]
async fn logs_are_served_over_the_kubelet_api() {
    let c = Cluster::start(RuntimeKind::Sim, |_| {}).await;
    c.create_pod(json!({
        "metadata": {"name": "chatty", "annotations": {"sim.niwa.io/logs": "hello\nworld"}},
        "spec": {"containers": [{"name": "app", "image": "busybox"}]},
    }))
    .await;
    wait_pod(&c.pods(), "chatty", T, |p| phase(p) == "Running").await;
    let port = c.kubelet.as_ref().map(|k| k.api_port).unwrap_or_default();
    let url = format!("http://127.{}.0.1:{port}", c.block);
    let mut client = match KubeletClient::connect(url).await {
        Ok(c) => c,
        Err(e) => panic!("connect kubelet API: {e}"),
    };
    let read = |req: LogsRequest| {
        let mut client = client.clone();
        async move {
            let mut out = String::new();
            match client.logs(req).await {
                Ok(resp) => {
                    let mut s = resp.into_inner();
                    while let Some(Ok(chunk)) = s.next().await {
                        out.push_str(&String::from_utf8_lossy(&chunk.data));
                    }
                    Ok(out)
                }
                Err(status) => Err(status),
            }
        }
    };
    let base = LogsRequest {
        namespace: "default".into(),
        pod: "chatty".into(),
        ..Default::default()
    };
    assert_eq!(
        read(base.clone()).await.ok().as_deref(),
        Some("hello\nworld\n")
    );
    assert_eq!(
        read(LogsRequest {
            tail_lines: Some(1),
            ..base.clone()
        })
        .await
        .ok()
        .as_deref(),
        Some("world\n")
    );
    let err = read(LogsRequest {
        previous: true,
        ..base.clone()
    })
    .await
    .err();
    assert_eq!(
        err.map(|e| e.message().to_string()),
        Some("previous terminated container \"app\" in pod \"chatty\" not found".to_string())
    );
    let err = read(LogsRequest {
        pod: "nope".into(),
        ..base.clone()
    })
    .await
    .err();
    assert_eq!(err.map(|e| e.code()), Some(tonic::Code::NotFound));
    let _ = client
        .logs(LogsRequest {
            container: "bad".into(),
            ..base
        })
        .await
        .map(|_| ());

    // Attach: a clear error, not a fake session.
    let start = ExecInput {
        input: Some(exec_input::Input::Start(ExecStart {
            namespace: "default".into(),
            pod: "chatty".into(),
            stdout: true,
            ..Default::default()
        })),
    };
    let err = client
        .attach(futures::stream::iter([start]))
        .await
        .err()
        .map(|e| niwa_api::ApiError::from_grpc(&e));
    let Some(err) = err else {
        panic!("attach to a simulated container succeeded");
    };
    assert_eq!(err.code(), 400, "{err:?}");
    assert!(
        err.message
            .starts_with("attach is not supported by the sim runtime"),
        "{err:?}"
    );
}

#[tokio::test]
async fn many_nodes_in_one_process_share_one_pod_watch() {
    let c = Cluster::start(RuntimeKind::Sim, |cfg| cfg.nodes = 20).await;
    let names: Vec<String> = c
        .config
        .node_identities()
        .into_iter()
        .map(|n| n.name)
        .collect();
    let nodes: Api<Node> = c.client().cluster();
    let list = nodes
        .list(&Default::default())
        .await
        .map(|l| l.items.len())
        .unwrap_or(0);
    assert_eq!(list, 20);
    for (i, node) in names.iter().enumerate().step_by(5) {
        c.create_pod(json!({
            "metadata": {"name": format!("p{i}")},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "nginx"}]},
        }))
        .await;
    }
    for (i, _) in names.iter().enumerate().step_by(5) {
        let p = wait_pod(&c.pods(), &format!("p{i}"), T, |p| phase(p) == "Running").await;
        let ids = c.config.node_identities();
        let ip = p.status.and_then(|s| s.pod_ip).unwrap_or_default();
        assert!(
            ip.starts_with(
                &ids[i].pod_cidr.base.to_string()[..ids[i].pod_cidr.base.to_string().len() - 1]
            ),
            "{ip}"
        );
    }
}
