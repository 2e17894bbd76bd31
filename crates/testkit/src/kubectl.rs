//! The real `kubectl` (the one on PATH) run against a test cluster, as the apiserver's and the
//! kubelet's kubectl tests and the e2e suite run it: with the cluster's kubeconfig, a cache
//! directory and `HOME` in the test's temp dir (so nothing of the user's `~/.kube` is read or
//! written), `KUBECONFIG` removed, killed when dropped, and a time limit so a hung kubectl fails
//! the test instead of hanging it. [`run`] panics when kubectl cannot run or takes longer than
//! [`KUBECTL_TIMEOUT`]; [`try_run`] takes the limit and returns those failures, for callers that
//! report errors as values (the e2e suite, whose `rollout status` waits up to two minutes).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// How long one kubectl run may take in [`run`].
pub const KUBECTL_TIMEOUT: Duration = Duration::from_secs(60);

/// What one kubectl run printed.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Panics with the output unless kubectl succeeded.
    pub fn ok(self) -> Output {
        assert_eq!(self.code, 0, "kubectl failed: {self:#?}");
        self
    }

    /// Panics unless kubectl failed.
    pub fn failed(self) -> Output {
        assert_ne!(self.code, 0, "kubectl should have failed: {self:#?}");
        self
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }

    /// stdout as lines of whitespace-separated columns.
    pub fn rows(&self) -> Vec<Vec<String>> {
        self.stdout
            .lines()
            .map(|l| l.split_whitespace().map(String::from).collect())
            .collect()
    }
}

/// Why [`try_run`] has no [`Output`] to give.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// kubectl could not be started or fed its stdin.
    #[error("running kubectl (is it on PATH?): {0}")]
    Io(#[from] std::io::Error),
    /// kubectl took longer than the limit and was killed.
    #[error("kubectl did not finish within {} s", .0.as_secs())]
    Timeout(Duration),
}

/// Runs `kubectl <args>` with `kubeconfig`, its cache and `HOME` under `home`, and the extra
/// `env`. `stdin`: `Some` is written to a pipe that is then closed (`Some("")` gives an empty
/// stdin), `None` leaves stdin at /dev/null. Panics when kubectl cannot run or takes longer than
/// [`KUBECTL_TIMEOUT`]: a test cannot go on without it.
pub async fn run(
    kubeconfig: &Path,
    home: &Path,
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> Output {
    match try_run(kubeconfig, home, args, stdin, env, KUBECTL_TIMEOUT).await {
        Ok(out) => out,
        Err(err) => panic!("kubectl {args:?}: {err}"),
    }
}

/// [`run`] with the time limit `timeout`, returning a kubectl that cannot run or does not finish
/// in time (it is killed then) as an error instead of panicking. A kubectl that ran and failed is
/// an `Ok` [`Output`] with its non-zero `code`, as with [`run`].
pub async fn try_run(
    kubeconfig: &Path,
    home: &Path,
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<Output, RunError> {
    let mut cmd = tokio::process::Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(home.join("cache"))
        .args(args)
        .env("HOME", home)
        .env_remove("KUBECONFIG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let run = async {
        let mut child = cmd.spawn()?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes()).await?;
            // Dropped here: kubectl sees the end of its input.
        }
        child.wait_with_output().await
    };
    let out = match tokio::time::timeout(timeout, run).await {
        Ok(out) => out?,
        Err(_) => return Err(RunError::Timeout(timeout)),
    };
    Ok(Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}
