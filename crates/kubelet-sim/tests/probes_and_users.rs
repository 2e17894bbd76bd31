//! gRPC probes and securityContext users with the process runtime, as Kubernetes' own
//! walkthroughs do them: the gRPC-probe blog post's agnhost `grpc-health-checking` pod, and
//! kubernetes.io's "Configure a Security Context for a Pod or Container" task.

mod common;

use std::time::Duration;

use common::http_get;
use common::process::{ProcessCluster, pod_ip};
use common::{condition, container, phase, wait_pod};
use serde_json::json;

const T: Duration = Duration::from_secs(30);

/// Kubernetes' gRPC-probe walkthrough (kubernetes.io blog "gRPC container probes"): agnhost
/// `grpc-health-checking` with a gRPC readiness probe; `/make-not-serving` makes the pod not
/// ready with the kubelet's message, `/make-serving` ready again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_readiness_probe_follows_the_health_service() {
    let pc = ProcessCluster::start().await;
    pc.c.create_pod(json!({
        "metadata": {"name": "test-grpc"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "agnhost", "image": "registry.k8s.io/e2e-test-images/agnhost:2.35",
            "command": ["/agnhost", "grpc-health-checking"],
            "ports": [{"containerPort": 5000}, {"containerPort": 8080}],
            "readinessProbe": {"grpc": {"port": 5000}, "periodSeconds": 1, "failureThreshold": 1},
        }]},
    }))
    .await;
    let pods = pc.c.pods();
    let p = wait_pod(&pods, "test-grpc", T, |p| condition(p, "Ready") == "True").await;
    let addr = format!("{}:8080", pod_ip(&p));
    let set = http_get(&addr, "/make-not-serving").await;
    assert!(
        set.as_ref().is_ok_and(|r| r.contains("NOT_SERVING")),
        "{set:?}"
    );
    let p = wait_pod(&pods, "test-grpc", T, |p| condition(p, "Ready") == "False").await;
    assert_eq!(phase(&p), "Running");
    let events = pc
        .kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=test-grpc",
        ])
        .await;
    assert!(
        events.contains(
            r#"Readiness probe failed: service unhealthy (responded with "NOT_SERVING")"#
        ),
        "{events}"
    );
    let set = http_get(&addr, "/make-serving").await;
    assert!(set.is_ok(), "{set:?}");
    wait_pod(&pods, "test-grpc", T, |p| condition(p, "Ready") == "True").await;
}

/// kubernetes.io "Configure a Security Context for a Pod": runAsUser 1000, runAsGroup 3000,
/// fsGroup 2000. The process and `kubectl exec` sessions run as 1000:3000 with group 2000, and a
/// file made in the emptyDir belongs to 1000:2000; runAsNonRoot without a user does not start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_context_users_and_fs_group() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: changing users needs root");
        return;
    }
    let pc = ProcessCluster::start().await;
    pc.c.create_pod(json!({
        "metadata": {"name": "security-context-demo"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000},
            "volumes": [{"name": "sec-ctx-vol", "emptyDir": {}}],
            "containers": [{
                "name": "sec-ctx-demo", "image": "busybox:1.28",
                "command": ["sh", "-c", "sleep 1h"],
                "volumeMounts": [{"name": "sec-ctx-vol", "mountPath": "/data/demo"}],
                "securityContext": {"allowPrivilegeEscalation": false},
            }],
        },
    }))
    .await;
    let pods = pc.c.pods();
    wait_pod(&pods, "security-context-demo", T, |p| {
        condition(p, "Ready") == "True"
    })
    .await;
    let id = pc
        .kubectl_ok(&[
            "exec",
            "security-context-demo",
            "--",
            "sh",
            "-c",
            "id -u; id -g; id -G",
        ])
        .await;
    let lines: Vec<&str> = id.lines().collect();
    assert_eq!(lines.first(), Some(&"1000"), "{id}");
    assert_eq!(lines.get(1), Some(&"3000"), "{id}");
    let mut groups: Vec<&str> = lines
        .get(2)
        .map(|g| g.split_whitespace().collect())
        .unwrap_or_default();
    groups.sort_unstable();
    assert_eq!(groups, ["2000", "3000"], "{id}");
    let owner = pc
        .kubectl_ok(&[
            "exec", "security-context-demo", "--", "sh", "-c",
            "echo hello > /data/demo/testfile && stat -c '%u %g' /data/demo/testfile && stat -c '%g %A' /data/demo",
        ])
        .await;
    assert_eq!(owner, "1000 2000\n2000 drwxrwsrwx\n");

    pc.c.create_pod(json!({
        "metadata": {"name": "non-root"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"runAsNonRoot": true},
            "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}],
        },
    }))
    .await;
    let p = wait_pod(&pods, "non-root", T, |p| {
        container(p, "c")["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    })
    .await;
    let message = container(&p, "c")["state"]["waiting"]["message"].to_string();
    assert!(
        message.contains("container has runAsNonRoot and image will run as root"),
        "{message}"
    );
}
