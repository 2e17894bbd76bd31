//! Mutating admission that needs other objects (what kube-apiserver's admission plugins do between
//! decoding and validation). IO only to read the watch cache; the decisions live in
//! `niwa_api::kinds`.
//!
//! * `DefaultStorageClass`: a PersistentVolumeClaim created without `spec.storageClassName` (and
//!   without the beta `volume.beta.kubernetes.io/storage-class` annotation) gets the cluster's
//!   default StorageClass — the newest class annotated
//!   `storageclass.kubernetes.io/is-default-class: "true"`. An explicit `""` means "no class" and
//!   is kept, as in Kubernetes.

use k8s_openapi::api::storage::v1::StorageClass;
use niwa_api::ApiError;
use niwa_api::kinds::storage::default_class;
use serde_json::{Value, json};

use super::{ListOptions, Rest, resolve};

/// The annotation that named a claim's class before `spec.storageClassName` existed.
const BETA_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";

/// Whether the DefaultStorageClass plugin leaves this claim alone.
fn has_class(pvc: &Value) -> bool {
    !pvc["spec"]["storageClassName"].is_null()
        || !pvc["metadata"]["annotations"][BETA_CLASS_ANNOTATION].is_null()
}

impl Rest {
    /// Runs the create-time admission plugins of `kind` on `body`.
    pub(super) async fn admit_create_plugins(
        &self,
        group: &str,
        kind: &str,
        body: &mut Value,
    ) -> Result<(), ApiError> {
        if (group, kind) == ("", "PersistentVolumeClaim") && !has_class(body) {
            // Read like an informer's lister: the watch cache as it is, without waiting.
            let classes = resolve("storage.k8s.io", "v1", "storageclasses")?;
            let opts = ListOptions {
                resource_version: "0".into(),
                ..Default::default()
            };
            let list: Vec<StorageClass> = self
                .list(classes, "", &opts)
                .await?
                .values()
                .into_iter()
                .filter_map(|v| serde_json::from_value(v).ok())
                .collect();
            let refs: Vec<&StorageClass> = list.iter().collect();
            if let Some(name) = default_class(&refs).and_then(|c| c.metadata.name.clone()) {
                tracing::debug!(class = %name, "DefaultStorageClass: claim gets the default class");
                if !body["spec"].is_object() {
                    body["spec"] = json!({});
                }
                body["spec"]["storageClassName"] = json!(name);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_or_annotated_class_is_kept() {
        assert!(!has_class(&json!({"spec": {}})));
        assert!(!has_class(&json!({})));
        assert!(has_class(&json!({"spec": {"storageClassName": ""}})));
        assert!(has_class(
            &json!({"metadata": {"annotations": {BETA_CLASS_ANNOTATION: "slow"}}, "spec": {}})
        ));
    }
}
