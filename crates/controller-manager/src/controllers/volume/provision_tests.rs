//! Golden cases for dynamic provisioning and the local-path provisioner.

use super::*;
use serde_json::json;

const DIR: &str = "/data/nodes/{node}/storage";

fn class(mode: &str, provisioner: &str) -> StorageClass {
    serde_json::from_value(
        json!({"metadata": {"name": "local-path"}, "provisioner": provisioner,
        "reclaimPolicy": "Delete", "volumeBindingMode": mode}),
    )
    .expect("class")
}

fn claim(annotations: serde_json::Value, class: Option<&str>) -> PersistentVolumeClaim {
    serde_json::from_value(json!({
        "metadata": {"name": "data-web-0", "namespace": "shop", "uid": "1234",
            "resourceVersion": "7", "annotations": annotations},
        "spec": {"storageClassName": class, "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}}, "volumeMode": "Filesystem"}}))
    .expect("claim")
}

#[test]
fn a_selected_node_gets_a_directory_volume_pre_bound_to_the_claim() {
    let sc = class("WaitForFirstConsumer", PROVISIONER);
    let pvc = claim(json!({SELECTED_NODE: "node-2"}), Some("local-path"));
    let Provision::Create(pv) = decide(&pvc, Some(&sc), DIR) else {
        panic!("expected a volume");
    };
    let got = serde_json::to_value(&*pv).expect("json");
    assert_eq!(
        got,
        json!({
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": "pvc-1234", "annotations": {
                "local.path.provisioner/selected-node": "node-2",
                "pv.kubernetes.io/provisioned-by": "rancher.io/local-path"}},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "capacity": {"storage": "1Gi"},
                "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "name": "data-web-0", "namespace": "shop", "uid": "1234", "resourceVersion": "7"},
                "hostPath": {"path": "/data/nodes/node-2/storage/pvc-1234_shop_data-web-0",
                    "type": "DirectoryOrCreate"},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-2"]}]}]}},
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": "local-path",
                "volumeMode": "Filesystem"
            }
        })
    );
    assert_eq!(
        removable_dir(&pv, DIR),
        Some(PathBuf::from(
            "/data/nodes/node-2/storage/pvc-1234_shop_data-web-0"
        ))
    );
}

#[test]
fn what_waits_and_what_fails() {
    let wffc = class("WaitForFirstConsumer", PROVISIONER);
    let immediate = class("Immediate", PROVISIONER);
    let external = class("Immediate", "ebs.csi.aws.com");
    let unscheduled = claim(json!({}), Some("local-path"));
    assert_eq!(
        decide(&unscheduled, Some(&wffc), DIR),
        Provision::WaitForFirstConsumer
    );
    assert!(waits_for_consumer(&unscheduled, Some(&wffc)));
    assert!(!waits_for_consumer(&unscheduled, Some(&immediate)));
    assert_eq!(
        decide(&unscheduled, Some(&immediate), DIR),
        Provision::Failed("configuration error, no node was specified".into())
    );
    assert_eq!(
        decide(&unscheduled, Some(&external), DIR),
        Provision::External("ebs.csi.aws.com".into())
    );
    assert_eq!(
        decide(&unscheduled, None, DIR),
        Provision::ClassNotFound("local-path".into())
    );
    assert_eq!(
        decide(&claim(json!({}), Some("")), Some(&wffc), DIR),
        Provision::NoClass
    );
    assert_eq!(
        decide(&claim(json!({}), None), Some(&wffc), DIR),
        Provision::NoClass
    );
}

#[test]
fn only_our_pvc_directories_are_removed() {
    let pv = |ann: serde_json::Value, path: &str| -> PersistentVolume {
        serde_json::from_value(json!({"metadata": {"name": "v", "annotations": ann},
            "spec": {"hostPath": {"path": path}}}))
        .expect("pv")
    };
    let ours = json!({PROVISIONED_BY: PROVISIONER});
    assert!(removable_dir(&pv(ours.clone(), "/data/nodes/n/storage/pvc-1_a_b"), DIR).is_some());
    assert!(removable_dir(&pv(json!({}), "/data/nodes/n/storage/pvc-1_a_b"), DIR).is_none());
    assert!(removable_dir(&pv(ours.clone(), "/etc"), DIR).is_none());
    assert!(removable_dir(&pv(ours.clone(), "/data/nodes/n/storage/x"), DIR).is_none());
    assert!(removable_dir(&pv(ours.clone(), "/data/nodes/../../pvc-1"), DIR).is_none());
    assert!(removable_dir(&pv(ours, "data/nodes/n/pvc-1"), DIR).is_none());
}
