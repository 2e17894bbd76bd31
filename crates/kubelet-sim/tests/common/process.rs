//! A kubelet with the process runtime against an in-process control plane, plus a kubeconfig for
//! the real `kubectl`: what the process, streaming and probe tests share.

use std::path::PathBuf;
use std::time::Duration;

use niwa_kubelet::config::RuntimeKind;
use serde_json::json;

use super::{Cluster, condition, kill_containers, wait_pod};

const T: Duration = Duration::from_secs(30);

/// A process-runtime cluster plus a kubeconfig for kubectl; the temp dir holds the kubelet's root.
pub struct ProcessCluster {
    pub c: Cluster,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

impl ProcessCluster {
    pub async fn start() -> ProcessCluster {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let root = dir.path().join("kubelet");
        let c = Cluster::start(RuntimeKind::Process, |cfg| {
            cfg.exe = Some(PathBuf::from(env!("CARGO_BIN_EXE_niwa-kubelet")));
            cfg.root_dir = root;
            cfg.volume_resync = Duration::from_millis(300);
            cfg.machine.restart_backoff.initial = Duration::from_millis(300);
            cfg.machine.restart_backoff.max = Duration::from_secs(2);
        })
        .await;
        let kubeconfig = dir.path().join("kubeconfig");
        if let Err(e) = c.cp.write_kubeconfig(&kubeconfig) {
            panic!("write kubeconfig: {e}");
        }
        ProcessCluster { c, dir, kubeconfig }
    }

    /// Runs kubectl against this cluster; (exit code, stdout, stderr).
    pub async fn kubectl(&self, args: &[&str]) -> (i32, String, String) {
        self.kubectl_in(args, None).await
    }

    /// [`Self::kubectl`] with `input` on its stdin (closed after it).
    pub async fn kubectl_in(&self, args: &[&str], input: Option<&str>) -> (i32, String, String) {
        let out =
            niwa_testkit::kubectl::run(&self.kubeconfig, self.dir.path(), args, input, &[]).await;
        (out.code, out.stdout, out.stderr)
    }

    /// kubectl that must succeed; its stdout.
    pub async fn kubectl_ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.kubectl(args).await;
        assert_eq!(code, 0, "kubectl {args:?} failed: {out}{err}");
        out
    }

    pub fn node_override(&self) -> String {
        json!({"spec": {"nodeName": self.c.node_name()}}).to_string()
    }

    pub fn command(&self, program: &str) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(program);
        cmd.env("HOME", self.dir.path())
            .env("KUBECONFIG", &self.kubeconfig)
            .kill_on_drop(true);
        cmd
    }

    /// `kubectl run <name> --image=nginx` on this cluster's node, Ready.
    pub async fn nginx(&self, name: &str) {
        let over = json!({"spec": {"nodeName": self.c.node_name()}}).to_string();
        self.kubectl_ok(&[
            "run",
            name,
            "--image=nginx",
            "--port=80",
            &format!("--overrides={over}"),
        ])
        .await;
        wait_pod(&self.c.pods(), name, T, |p| condition(p, "Ready") == "True").await;
    }
}

impl Drop for ProcessCluster {
    /// Container processes outlive the kubelet by design (their shims keep them, so a restarted
    /// kubelet adopts them): kill the ones this test started.
    fn drop(&mut self) {
        kill_containers(&self.dir.path().join("kubelet"));
    }
}

pub fn pod_ip(p: &k8s_openapi::api::core::v1::Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_default()
}
