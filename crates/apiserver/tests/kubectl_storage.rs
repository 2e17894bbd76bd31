//! storage.k8s.io/v1 StorageClasses through the real kubectl: discovery and `sc`, defaulting and
//! validation as Kubernetes words it, `kubectl get sc` with `(default)`, `kubectl explain`, and the
//! DefaultStorageClass admission of PersistentVolumeClaims.

mod kubectl_common;

use kubectl_common::Cluster;

const CLASSES: &str = "apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local-path
  annotations: {storageclass.kubernetes.io/is-default-class: \"true\"}
provisioner: rancher.io/local-path
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: fast}
provisioner: example.com/fast
allowVolumeExpansion: true
";

fn claim(name: &str, class: Option<&str>) -> String {
    let class = class
        .map(|c| format!("  storageClassName: \"{c}\"\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: {name}, namespace: default}}
spec:
{class}  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Gi}}}}
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_classes_with_kubectl() {
    let c = Cluster::start().await;
    let rows = c.kubectl(&["api-resources"]).await.ok().rows();
    assert!(
        rows.iter().any(|r| r
            == &[
                "storageclasses",
                "sc",
                "storage.k8s.io/v1",
                "false",
                "StorageClass"
            ]),
        "{rows:?}"
    );

    // A claim before any default class exists keeps no class.
    c.with_manifest(&["create"], &claim("early", None))
        .await
        .ok();
    let early = c
        .kubectl(&[
            "get",
            "pvc",
            "early",
            "-o",
            "jsonpath={.spec.storageClassName}",
        ])
        .await
        .ok();
    assert_eq!(early.stdout, "");

    c.with_manifest(&["create"], CLASSES).await.ok();
    let out = c.kubectl(&["get", "sc"]).await.ok();
    let rows = out.rows();
    assert_eq!(
        rows[0],
        [
            "NAME",
            "PROVISIONER",
            "RECLAIMPOLICY",
            "VOLUMEBINDINGMODE",
            "ALLOWVOLUMEEXPANSION",
            "AGE"
        ]
    );
    assert_eq!(
        rows[1][..5],
        ["fast", "example.com/fast", "Delete", "Immediate", "true"]
    );
    assert_eq!(
        rows[2][..6],
        [
            "local-path",
            "(default)",
            "rancher.io/local-path",
            "Delete",
            "WaitForFirstConsumer",
            "false"
        ]
    );
    // Defaults are stored.
    let fast = c
        .kubectl(&["get", "sc", "fast", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(fast["reclaimPolicy"], "Delete");
    assert_eq!(fast["volumeBindingMode"], "Immediate");

    // DefaultStorageClass: no class → the default; an explicit "" or class is kept.
    c.with_manifest(&["create"], &claim("plain", None))
        .await
        .ok();
    c.with_manifest(&["create"], &claim("none", Some("")))
        .await
        .ok();
    c.with_manifest(&["create"], &claim("quick", Some("fast")))
        .await
        .ok();
    for (name, want) in [("plain", "local-path"), ("none", ""), ("quick", "fast")] {
        let got = c
            .kubectl(&[
                "get",
                "pvc",
                name,
                "-o",
                "jsonpath={.spec.storageClassName}",
            ])
            .await
            .ok();
        assert_eq!(got.stdout, want, "{name}");
    }

    // Validation and immutability, in Kubernetes' words.
    let bad = c
        .with_manifest(
            &["create"],
            "apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: bad}
provisioner: \"\"
reclaimPolicy: Recycle
",
        )
        .await
        .failed();
    assert!(
        bad.stderr.contains("provisioner: Required value")
            && bad.stderr.contains(
                "reclaimPolicy: Unsupported value: \"Recycle\": supported values: \"Delete\", \"Retain\""
            ),
        "{}",
        bad.stderr
    );
    let changed = c
        .kubectl(&[
            "patch",
            "sc",
            "fast",
            "--type=merge",
            "-p",
            "{\"provisioner\": \"example.com/slow\"}",
        ])
        .await
        .failed();
    assert!(
        changed
            .stderr
            .contains("provisioner: Forbidden: updates to provisioner are forbidden."),
        "{}",
        changed.stderr
    );
    // Annotations may change: unmark the default.
    c.kubectl(&[
        "annotate",
        "sc",
        "local-path",
        "--overwrite",
        "storageclass.kubernetes.io/is-default-class=false",
    ])
    .await
    .ok();
    let out = c.kubectl(&["get", "sc", "local-path"]).await.ok();
    assert_eq!(out.rows()[1][..2], ["local-path", "rancher.io/local-path"]);

    let explained = c
        .kubectl(&["explain", "storageclass.volumeBindingMode"])
        .await
        .ok();
    assert!(
        explained.stdout.contains("StorageClass") && explained.stdout.contains("volumeBindingMode"),
        "{}",
        explained.stdout
    );
}
