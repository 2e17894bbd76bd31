//! The real `kubectl` (from PATH) against a [`Cluster`]: testkit's runner
//! ([`niwa_testkit::kubectl::try_run`]) with the cluster's kubeconfig and kubectl's `HOME` and
//! cache in the cluster's data dir, its failures as errors.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use niwa_testkit::kubectl::try_run;

use crate::cluster::Cluster;

/// Longest a single kubectl call may take (`rollout status` passes its own `--timeout`).
const KUBECTL_TIMEOUT: Duration = Duration::from_secs(150);

impl Cluster {
    /// `kubectl <args>`; its stdout, or an error with the command and its stderr.
    pub async fn kubectl(&self, args: &[&str]) -> Result<String> {
        self.kubectl_stdin(args, None).await
    }

    /// `kubectl <args>` with `input` on stdin (for `-f -`).
    pub async fn kubectl_stdin(&self, args: &[&str], input: Option<&str>) -> Result<String> {
        let out = try_run(
            &self.kubeconfig(),
            &self.kubectl_home(),
            args,
            input,
            &[],
            KUBECTL_TIMEOUT,
        )
        .await
        .with_context(|| format!("kubectl {}", args.join(" ")))?;
        if out.code != 0 {
            bail!(
                "kubectl {} failed (exit status: {}): {}{}",
                args.join(" "),
                out.code,
                out.stdout,
                out.stderr.trim_end()
            );
        }
        Ok(out.stdout)
    }

    /// kubectl's `HOME` (its discovery and HTTP cache go to `cache/` there): in the data dir, so
    /// nothing of the user's `~/.kube` is read or written and it is kept with the logs.
    fn kubectl_home(&self) -> PathBuf {
        self.data_dir().join("kubectl")
    }

    /// `kubectl apply -f -` of a YAML document (stream).
    pub async fn apply(&self, namespace: &str, yaml: &str) -> Result<String> {
        self.kubectl_stdin(&["apply", "-n", namespace, "-f", "-"], Some(yaml))
            .await
    }

    /// `kubectl get <what> -n <ns> -o jsonpath=<path>`, trimmed.
    pub async fn jsonpath(&self, namespace: &str, what: &[&str], path: &str) -> Result<String> {
        let mut args = vec!["get", "-n", namespace];
        args.extend_from_slice(what);
        let jp = format!("jsonpath={path}");
        args.extend_from_slice(&["-o", &jp]);
        Ok(self.kubectl(&args).await?.trim().to_string())
    }

    /// `kubectl create namespace <ns>`.
    pub async fn namespace(&self, ns: &str) -> Result<()> {
        self.kubectl(&["create", "namespace", ns]).await?;
        Ok(())
    }

    /// Waits until the pod is Ready (polling its conditions), up to `timeout`.
    pub async fn wait_pod_ready(&self, ns: &str, pod: &str, timeout: Duration) -> Result<()> {
        crate::wait::eventually(&format!("pod {ns}/{pod} Ready"), timeout, || async {
            let ready = self
                .jsonpath(
                    ns,
                    &["pod", pod],
                    "{.status.conditions[?(@.type==\"Ready\")].status}",
                )
                .await?;
            if ready == "True" {
                Ok(())
            } else {
                bail!("Ready={ready:?}")
            }
        })
        .await
    }

    /// Waits until the pod has ended in `phase` (Succeeded/Failed), up to `timeout`.
    pub async fn wait_pod_phase(
        &self,
        ns: &str,
        pod: &str,
        phase: &str,
        timeout: Duration,
    ) -> Result<()> {
        crate::wait::eventually(&format!("pod {ns}/{pod} {phase}"), timeout, || async {
            let got = self.jsonpath(ns, &["pod", pod], "{.status.phase}").await?;
            if got == phase {
                Ok(())
            } else {
                bail!("phase {got:?}")
            }
        })
        .await
    }

    /// `kubectl rollout status deployment/<name>` with a timeout.
    pub async fn rollout_status(&self, ns: &str, deployment: &str) -> Result<String> {
        self.kubectl(&[
            "rollout",
            "status",
            "-n",
            ns,
            &format!("deployment/{deployment}"),
            "--timeout=120s",
        ])
        .await
    }

    /// Names of the pods matching a label selector (`-o name` without the `pod/`).
    pub async fn pod_names(&self, ns: &str, selector: &str) -> Result<Vec<String>> {
        let out = self
            .kubectl(&["get", "pods", "-n", ns, "-l", selector, "-o", "name"])
            .await?;
        let mut names: Vec<String> = out
            .lines()
            .filter_map(|l| l.trim().strip_prefix("pod/").map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }
}
