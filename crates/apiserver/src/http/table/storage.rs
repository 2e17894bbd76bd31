//! Printer of storage.k8s.io StorageClasses (`printStorageClass`): the default class is shown as
//! `NAME (default)`, unset reclaim policy and binding mode as their defaults.

use jiff::Timestamp;
use niwa_api::ResourceInfo;
use serde_json::{Value, json};

use super::{AGE, Column, NAME, age, col, name, str_or};

pub fn columns(info: &ResourceInfo) -> Option<Vec<Column>> {
    let s = "string";
    Some(match (info.group, info.kind) {
        ("storage.k8s.io", "StorageClass") => vec![
            NAME,
            col("Provisioner", s, 0),
            col("ReclaimPolicy", s, 0),
            col("VolumeBindingMode", s, 0),
            col("AllowVolumeExpansion", s, 0),
            AGE,
        ],
        _ => return None,
    })
}

/// `storageutil.IsDefaultAnnotation` on the JSON form.
fn is_default(obj: &Value) -> bool {
    let ann = &obj["metadata"]["annotations"];
    [
        niwa_api::kinds::storage::DEFAULT_CLASS_ANNOTATION,
        niwa_api::kinds::storage::BETA_DEFAULT_CLASS_ANNOTATION,
    ]
    .iter()
    .any(|k| ann[*k] == "true")
}

pub fn cells(info: &ResourceInfo, obj: &Value, now: Timestamp) -> Option<Vec<Value>> {
    Some(match (info.group, info.kind) {
        ("storage.k8s.io", "StorageClass") => {
            let mut n = name(obj).to_string();
            if is_default(obj) {
                n.push_str(" (default)");
            }
            vec![
                json!(n),
                json!(obj["provisioner"].as_str().unwrap_or_default()),
                json!(str_or(&obj["reclaimPolicy"], "Delete")),
                json!(str_or(&obj["volumeBindingMode"], "Immediate")),
                json!(obj["allowVolumeExpansion"].as_bool().unwrap_or(false)),
                age(obj, now),
            ]
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use niwa_api::Registry;

    #[test]
    fn storage_class_rows() {
        let now: Timestamp = "2025-01-01T01:00:00Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let Some(info) = Registry.resolve("sc") else {
            panic!("sc is not served");
        };
        let names: Vec<&str> = columns(info)
            .unwrap_or_default()
            .iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(
            names,
            [
                "Name",
                "Provisioner",
                "ReclaimPolicy",
                "VolumeBindingMode",
                "AllowVolumeExpansion",
                "Age"
            ]
        );
        let local = json!({"metadata": {"name": "local-path", "creationTimestamp": "2025-01-01T00:00:00Z",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer"});
        assert_eq!(
            cells(info, &local, now),
            Some(vec![
                json!("local-path (default)"),
                json!("rancher.io/local-path"),
                json!("Delete"),
                json!("WaitForFirstConsumer"),
                json!(false),
                json!("60m"),
            ])
        );
        let bare = json!({"metadata": {"name": "fast", "creationTimestamp": "2025-01-01T00:59:30Z",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "false"}},
            "provisioner": "x.io/fast", "allowVolumeExpansion": true});
        assert_eq!(
            cells(info, &bare, now),
            Some(vec![
                json!("fast"),
                json!("x.io/fast"),
                json!("Delete"),
                json!("Immediate"),
                json!(true),
                json!("30s"),
            ])
        );
    }
}
