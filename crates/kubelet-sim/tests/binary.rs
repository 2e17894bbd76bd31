//! The `niwa-kubelet` binary as `niwa up` runs it: one process per node on one host, side by side
//! on different node IPs with the same kubelet and health ports (bound on the node IP), distinct
//! root dirs and podCIDRs; an nginx pod on each node serves port 80 on its own pod IP.

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{condition, http_get, kill_containers, random_block, wait_pod};
use k8s_openapi::api::core::v1::{Node, Pod};
use niwa_client::Api;
use niwa_testkit::ControlPlane;
use serde_json::json;

const T: Duration = Duration::from_secs(30);

/// One `niwa-kubelet` child process; SIGTERMed (then its containers killed) on drop.
struct KubeletProcess {
    child: tokio::process::Child,
    root: PathBuf,
}

impl Drop for KubeletProcess {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        kill_containers(&self.root);
    }
}

/// A port free on `ip` right now.
fn free_port(ip: Ipv4Addr) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("free port on {ip}: {e}"))
}

fn spawn_kubelet(api: &str, block: u8, n: u8, dir: &Path, ports: (u16, u16)) -> KubeletProcess {
    let root = dir.join(format!("node-{n}"));
    let log = std::fs::File::create(dir.join(format!("kubelet-{n}.log")))
        .unwrap_or_else(|e| panic!("log file: {e}"));
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_niwa-kubelet"));
    cmd.args(["--apiserver", api])
        .args(["--node-name", &format!("node-{n}")])
        .args(["--node-ip", &format!("127.{block}.1.{n}")])
        .args(["--runtime", "process"])
        .arg("--root-dir")
        .arg(&root)
        .args(["--pod-cidr", &format!("127.{block}.{}.0/24", 128 + n)])
        .args(["--cluster-dns", &format!("127.{block}.96.10")])
        .args(["--cluster-domain", "cluster.local"])
        .args(["--healthz-port", &ports.0.to_string()])
        .args(["--port", &ports.1.to_string()])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn niwa-kubelet: {e}"));
    KubeletProcess { child, root }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelets_side_by_side_as_niwa_up_runs_them() {
    let cp = ControlPlane::start().await;
    let block = random_block();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let api = format!("http://{}", cp.api_addr);
    // The same two ports for both kubelets: each binds them on its own node IP.
    let ports = (
        free_port(Ipv4Addr::new(127, block, 1, 1)),
        free_port(Ipv4Addr::new(127, block, 1, 1)),
    );
    let mut kubelets = vec![
        spawn_kubelet(&api, block, 1, dir.path(), ports),
        spawn_kubelet(&api, block, 2, dir.path(), ports),
    ];
    let nodes: Api<Node> = cp.client().cluster();
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let ready = nodes
            .list(&Default::default())
            .await
            .map(|l| l.items.len())
            .unwrap_or(0);
        if ready == 2 {
            break;
        }
        for k in &mut kubelets {
            if let Ok(Some(status)) = k.child.try_wait() {
                let log = std::fs::read_to_string(dir.path().join("kubelet-1.log"))
                    .unwrap_or_default()
                    + &std::fs::read_to_string(dir.path().join("kubelet-2.log"))
                        .unwrap_or_default();
                panic!("a kubelet exited ({status}): {log}");
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nodes not registered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for n in 1..=2u8 {
        let health = http_get(&format!("127.{block}.1.{n}:{}", ports.0), "/healthz").await;
        assert!(
            health.as_deref().is_ok_and(|h| h.ends_with("ok")),
            "node {n} /healthz: {health:?}"
        );
        let node = nodes.get(&format!("node-{n}")).await.unwrap_or_default();
        let v = serde_json::to_value(&node).unwrap_or_default();
        assert_eq!(
            v["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"],
            ports.1
        );
        assert_eq!(
            v["spec"]["podCIDR"],
            format!("127.{block}.{}.0/24", 128 + n)
        );
    }

    let pods: Api<Pod> = cp.client().namespaced("default");
    for n in 1..=2u8 {
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("web-{n}")},
            "spec": {"nodeName": format!("node-{n}"), "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "nginx", "image": "nginx:1.27",
                    "ports": [{"containerPort": 80}]}]},
        }))
        .unwrap_or_default();
        let created = pods.create(&pod).await;
        assert!(created.is_ok(), "{created:?}");
    }
    for n in 1..=2u8 {
        let p = wait_pod(&pods, &format!("web-{n}"), T, |p| {
            condition(p, "Ready") == "True"
        })
        .await;
        let ip = p
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .unwrap_or_default();
        assert!(
            ip.starts_with(&format!("127.{block}.{}.", 128 + n)),
            "{ip} inside node-{n}'s podCIDR"
        );
        let page = http_get(&format!("{ip}:80"), "/").await;
        assert!(
            page.as_deref()
                .is_ok_and(|p| p.contains(&format!("<b>web-{n}</b>"))),
            "{page:?}"
        );
    }
    // SIGTERM stops a kubelet cleanly (its containers stay, for the next kubelet to adopt).
    for k in &mut kubelets {
        if let Some(pid) = k.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let status = tokio::time::timeout(Duration::from_secs(10), k.child.wait()).await;
        assert!(
            matches!(status, Ok(Ok(s)) if s.success()),
            "kubelet exit: {status:?}"
        );
    }
}
