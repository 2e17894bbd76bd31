//! Golden cases for PersistentVolume binding.

use super::*;
use serde_json::json;

fn pv(name: &str, size: &str, v: serde_json::Value) -> PersistentVolume {
    let mut base = json!({"metadata": {"name": name, "labels": {"tier": "fast"}},
        "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
            "storageClassName": "manual", "hostPath": {"path": "/tmp"}}});
    if let (Some(b), Some(o)) = (base["spec"].as_object_mut(), v.as_object()) {
        for (k, val) in o {
            b.insert(k.clone(), val.clone());
        }
    }
    serde_json::from_value(base).expect("pv")
}

fn pvc(size: &str, v: serde_json::Value) -> PersistentVolumeClaim {
    let mut base = json!({"metadata": {"name": "data", "namespace": "d", "uid": "claim-uid"},
        "spec": {"resources": {"requests": {"storage": size}}, "accessModes": ["ReadWriteOnce"],
            "storageClassName": "manual"}});
    if let (Some(b), Some(o)) = (base["spec"].as_object_mut(), v.as_object()) {
        for (k, val) in o {
            b.insert(k.clone(), val.clone());
        }
    }
    serde_json::from_value(base).expect("pvc")
}

#[test]
fn smallest_fitting_volume() {
    let big = pv("big", "10Gi", json!({}));
    let small = pv("small", "2Gi", json!({}));
    let tiny = pv("tiny", "500Mi", json!({}));
    let rox = pv("rox", "2Gi", json!({"accessModes": ["ReadOnlyMany"]}));
    let other = pv("other", "2Gi", json!({"storageClassName": "other"}));
    let all = [&big, &small, &tiny, &rox, &other];
    let c = pvc("1Gi", json!({}));
    assert_eq!(
        choose(&c, &all).and_then(|p| p.metadata.name.as_deref()),
        Some("small")
    );
    let sel = pvc(
        "1Gi",
        json!({"selector": {"matchLabels": {"tier": "slow"}}}),
    );
    assert!(choose(&sel, &all).is_none());
    let named = pvc("1Gi", json!({"volumeName": "big"}));
    assert_eq!(
        choose(&named, &all).and_then(|p| p.metadata.name.as_deref()),
        Some("big")
    );
    let taken = pv(
        "small",
        "2Gi",
        json!({"claimRef": {"name": "x", "namespace": "d", "uid": "other"}}),
    );
    assert_eq!(
        choose(&c, &[&big, &taken]).and_then(|p| p.metadata.name.as_deref()),
        Some("big")
    );
    let pre = pv(
        "pre",
        "20Gi",
        json!({"claimRef": {"name": "data", "namespace": "d"}}),
    );
    assert_eq!(
        choose(&c, &[&small, &pre]).and_then(|p| p.metadata.name.as_deref()),
        Some("pre")
    );
}

#[test]
fn volume_phases_and_reclaim() {
    let c = pvc("1Gi", json!({}));
    let free = pv("a", "1Gi", json!({}));
    assert_eq!(volume_state(&free, None), VolumeState::Available);
    let bound = pv(
        "a",
        "1Gi",
        json!({"claimRef": {"name": "data", "namespace": "d", "uid": "claim-uid"}}),
    );
    assert_eq!(volume_state(&bound, Some(&c)), VolumeState::Bound);
    assert_eq!(volume_state(&bound, None), VolumeState::Released);
    let deleting = pv(
        "a",
        "1Gi",
        json!({"persistentVolumeReclaimPolicy": "Delete",
            "claimRef": {"name": "data", "namespace": "d", "uid": "claim-uid"}}),
    );
    assert_eq!(volume_state(&deleting, None), VolumeState::Delete);
    let pre = pv(
        "a",
        "1Gi",
        json!({"claimRef": {"name": "data", "namespace": "d"}}),
    );
    assert_eq!(volume_state(&pre, None), VolumeState::Available);
}
