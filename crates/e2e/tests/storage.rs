//! Test group "storage" (one 2-node cluster): the default `local-path` StorageClass, as k3s has
//! it. A StatefulSet with `volumeClaimTemplates` (no class named: the DefaultStorageClass
//! admission gives its claim `local-path`) gets a directory volume provisioned on its pod's node;
//! the pod writes a file; the pod is deleted and its replacement sees the file; deleting the
//! claim deletes the volume and its directory. `kubectl get sc` and `kubectl get pvc,pv` print
//! as they do against Kubernetes.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use niwa_e2e::{Cluster, eventually, run_all, scenario};

const MIN: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage() {
    let c = Cluster::up(2).expect("cluster up");
    run_all(vec![scenario(
        "local-path statefulset keeps its data",
        statefulset_keeps_its_data(&c),
    )])
    .await;
}

const STATEFULSET: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox
        command: ["sh", "-c", "echo started >> /data/log; exec sleep 3600"]
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
"#;

/// The lines of /data/log as the pod sees them.
async fn log_lines(c: &Cluster, ns: &str) -> Result<usize> {
    let out = c
        .kubectl(&["exec", "web-0", "-n", ns, "--", "cat", "/data/log"])
        .await?;
    Ok(out.lines().filter(|l| *l == "started").count())
}

async fn statefulset_keeps_its_data(c: &Cluster) -> Result<()> {
    let ns = "storage";
    c.namespace(ns).await?;
    let classes = c.kubectl(&["get", "sc"]).await?;
    let row = classes
        .lines()
        .find(|l| l.starts_with("local-path "))
        .with_context(|| format!("no local-path class: {classes}"))?;
    let cells: Vec<&str> = row.split_whitespace().collect();
    ensure!(
        cells[..6]
            == [
                "local-path",
                "(default)",
                "rancher.io/local-path",
                "Delete",
                "WaitForFirstConsumer",
                "false"
            ],
        "kubectl get sc: {classes}"
    );
    ensure!(
        classes.starts_with("NAME")
            && classes.contains("PROVISIONER")
            && classes.contains("VOLUMEBINDINGMODE")
            && classes.contains("ALLOWVOLUMEEXPANSION"),
        "kubectl get sc header: {classes}"
    );

    c.apply(ns, STATEFULSET).await?;
    c.wait_pod_ready(ns, "web-0", MIN).await?;
    let class = c
        .jsonpath(ns, &["pvc", "data-web-0"], "{.spec.storageClassName}")
        .await?;
    ensure!(class == "local-path", "the claim's class: {class:?}");
    let volume = c
        .jsonpath(ns, &["pvc", "data-web-0"], "{.spec.volumeName}")
        .await?;
    let node = c
        .jsonpath(ns, &["pod", "web-0"], "{.spec.nodeName}")
        .await?;
    let path = c
        .jsonpath("default", &["pv", &volume], "{.spec.hostPath.path}")
        .await?;
    let affinity = c
        .jsonpath(
            "default",
            &["pv", &volume],
            "{.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]}",
        )
        .await?;
    ensure!(affinity == node, "volume on {affinity}, pod on {node}");
    let dir = PathBuf::from(&path);
    ensure!(
        dir.starts_with(c.data_dir().join("nodes").join(&node).join("storage")),
        "volume path {path} is not under node {node}'s storage dir"
    );
    eventually("the pod's first line", MIN, || async {
        let n = log_lines(c, ns).await?;
        ensure!(n == 1, "{n} lines");
        Ok(())
    })
    .await?;
    let listed = c.kubectl(&["get", "pvc,pv", "-n", ns]).await?;
    let pvc_row = listed
        .lines()
        .find(|l| l.starts_with("persistentvolumeclaim/data-web-0 "))
        .with_context(|| format!("kubectl get pvc,pv: {listed}"))?;
    ensure!(
        pvc_row.split_whitespace().collect::<Vec<_>>()[1..6]
            == ["Bound", volume.as_str(), "1Gi", "RWO", "local-path"],
        "pvc row: {pvc_row}"
    );
    let pv_row = listed
        .lines()
        .find(|l| l.starts_with(&format!("persistentvolume/{volume} ")))
        .with_context(|| format!("kubectl get pvc,pv: {listed}"))?;
    let claim = format!("{ns}/data-web-0");
    ensure!(
        pv_row.split_whitespace().collect::<Vec<_>>()[1..7]
            == [
                "1Gi",
                "RWO",
                "Delete",
                "Bound",
                claim.as_str(),
                "local-path"
            ],
        "pv row: {pv_row}"
    );

    // The pod goes; its replacement mounts the same volume and sees the file.
    let old_uid = c.jsonpath(ns, &["pod", "web-0"], "{.metadata.uid}").await?;
    c.kubectl(&["delete", "pod", "web-0", "-n", ns]).await?;
    eventually("web-0 recreated and Ready", MIN, || async {
        let uid = c.jsonpath(ns, &["pod", "web-0"], "{.metadata.uid}").await?;
        ensure!(!uid.is_empty() && uid != old_uid, "still the old pod");
        c.wait_pod_ready(ns, "web-0", Duration::from_secs(1)).await
    })
    .await?;
    eventually("the replacement appended to the old file", MIN, || async {
        let n = log_lines(c, ns).await?;
        ensure!(n == 2, "{n} lines");
        Ok(())
    })
    .await?;

    // Deleting the StatefulSet keeps the claim (as Kubernetes does); deleting the claim deletes
    // the volume (reclaim policy Delete) and its directory.
    c.kubectl(&["delete", "statefulset", "web", "-n", ns, "--wait=true"])
        .await?;
    eventually("web-0 gone", MIN, || async {
        let pods = c.kubectl(&["get", "pods", "-n", ns, "-o", "name"]).await?;
        ensure!(pods.trim().is_empty(), "pods left: {pods}");
        Ok(())
    })
    .await?;
    c.kubectl(&["delete", "pvc", "data-web-0", "-n", ns])
        .await?;
    eventually("the volume and its directory deleted", MIN, || async {
        let pvs = c.kubectl(&["get", "pv", "-o", "name"]).await?;
        ensure!(!pvs.contains(&volume), "volumes: {pvs}");
        ensure!(!dir.exists(), "{} still exists", dir.display());
        Ok(())
    })
    .await?;
    Ok(())
}
