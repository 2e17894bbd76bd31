//! Scenarios "job" and "cronjob": run-to-completion workloads.

use super::*;

/// A Job of 3 completions, 2 at a time, runs to completion.
pub(super) async fn job(c: &Cluster) -> Result<()> {
    let ns = "jobs";
    c.namespace(ns).await?;
    c.apply(
        ns,
        r#"
apiVersion: batch/v1
kind: Job
metadata: {name: count}
spec:
  completions: 3
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: c, image: busybox, command: ["sh", "-c", "echo counted"]}
"#,
    )
    .await?;
    eventually("job complete", Duration::from_secs(90), || async {
        let complete = c
            .jsonpath(
                ns,
                &["job", "count"],
                "{.status.conditions[?(@.type==\"Complete\")].status}",
            )
            .await?;
        let succeeded = c
            .jsonpath(ns, &["job", "count"], "{.status.succeeded}")
            .await?;
        ensure!(
            complete == "True" && succeeded == "3",
            "Complete={complete:?} succeeded={succeeded:?}"
        );
        Ok(())
    })
    .await?;
    let logs = c.kubectl(&["logs", "job/count", "-n", ns]).await?;
    ensure!(logs.contains("counted"), "job logs: {logs}");

    // The README's one-liner, waited for with `kubectl wait`.
    c.kubectl(&[
        "create",
        "job",
        "pi",
        "-n",
        ns,
        "--image=busybox",
        "--",
        "sh",
        "-c",
        "echo 3.14159",
    ])
    .await?;
    c.kubectl(&[
        "wait",
        "--for=condition=complete",
        "job/pi",
        "-n",
        ns,
        "--timeout=90s",
    ])
    .await?;
    let logs = c.kubectl(&["logs", "job/pi", "-n", ns]).await?;
    ensure!(logs.contains("3.14159"), "job/pi logs: {logs}");
    Ok(())
}

/// A CronJob on `*/1 * * * *` creates a Job that completes (within the next minute boundary).
pub(super) async fn cronjob(c: &Cluster) -> Result<()> {
    let ns = "cron";
    c.namespace(ns).await?;
    c.kubectl(&[
        "create",
        "cronjob",
        "tick",
        "-n",
        ns,
        "--image=busybox",
        "--schedule=*/1 * * * *",
        "--",
        "sh",
        "-c",
        "echo tick",
    ])
    .await?;
    let job = eventually("a Job of the CronJob succeeded", Duration::from_secs(100), || async {
        let out = c
            .jsonpath(ns, &["jobs"], "{range .items[*]}{.metadata.ownerReferences[0].name}={.metadata.name}={.status.succeeded} {end}")
            .await?;
        for entry in out.split_whitespace() {
            let parts: Vec<&str> = entry.split('=').collect();
            if let [owner, name, "1"] = parts[..]
                && owner == "tick"
            {
                return Ok(name.to_string());
            }
        }
        bail!("jobs: {out:?}")
    })
    .await?;
    ensure!(job.starts_with("tick-"), "job name {job}");
    let last = c
        .jsonpath(ns, &["cronjob", "tick"], "{.status.lastScheduleTime}")
        .await
        .context("lastScheduleTime")?;
    ensure!(!last.is_empty(), "CronJob status.lastScheduleTime not set");
    Ok(())
}
