//! Dynamic provisioning decisions, IO-free: what the binder does with a Pending claim that no
//! existing volume fits, given its StorageClass — and niwa's built-in `local-path` provisioner
//! (what k3s ships as rancher's local-path-provisioner): a directory-backed `hostPath` volume on
//! the node the scheduler chose for the claim's first pod.
//!
//! * Class `WaitForFirstConsumer` and no `volume.kubernetes.io/selected-node` yet: wait (the
//!   scheduler sets the annotation when it places the first pod using the claim).
//! * Class provisioned by [`PROVISIONER`]: a PersistentVolume `pvc-<claim uid>` pre-bound to the
//!   claim (claimRef with UID), the class's reclaim policy and mount options, the requested size
//!   and access modes, `hostPath` `<dir>/pvc-<uid>_<namespace>_<name>` (type DirectoryOrCreate)
//!   where `<dir>` is the `--local-path-dir` pattern with `{node}` replaced by the node, and a
//!   required node affinity `kubernetes.io/hostname In [node]`. The binder then binds the pair.
//!   Like local-path-provisioner, `Immediate` classes are refused: a local volume needs a node.
//! * Another provisioner: wait for it (`ExternalProvisioning`).
//! * Reclaim: a released local-path volume with policy Delete has its directory removed (when it
//!   is on this machine — see [`removable_dir`]) before the volume is deleted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec, VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::core::reference_to;

/// The provisioner name of niwa's local-path StorageClass (k3s' name, so manifests written for
/// k3s find what they expect).
pub const PROVISIONER: &str = "rancher.io/local-path";
/// Set by the scheduler on a WaitForFirstConsumer claim: the node of its first pod.
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// Set by the binder: which provisioner is expected to create the claim's volume.
pub const STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
pub const BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
/// Set on a provisioned volume: who made it.
pub const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// The placeholder of the node in `--local-path-dir`.
pub const NODE_PLACEHOLDER: &str = "{node}";

/// What to do with a Pending claim that no existing volume fits.
#[derive(Debug, Clone, PartialEq)]
pub enum Provision {
    /// The claim has no class (or an empty one): only a matching static volume can serve it.
    NoClass,
    /// Its class does not exist (yet).
    ClassNotFound(String),
    /// WaitForFirstConsumer, and no pod has been scheduled with it yet.
    WaitForFirstConsumer,
    /// Another provisioner is expected to create the volume.
    External(String),
    /// Create this volume.
    Create(Box<PersistentVolume>),
    /// It cannot be provisioned (the `ProvisioningFailed` message).
    Failed(String),
}

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// The claim's class name, when it has a non-empty one.
pub fn claim_class(pvc: &PersistentVolumeClaim) -> Option<&str> {
    pvc.spec
        .as_ref()?
        .storage_class_name
        .as_deref()
        .filter(|c| !c.is_empty())
}

/// Whether the claim must wait for its first consumer before binding (also to static volumes).
pub fn waits_for_consumer(pvc: &PersistentVolumeClaim, class: Option<&StorageClass>) -> bool {
    class.is_some_and(|c| c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"))
        && annotation(&pvc.metadata, SELECTED_NODE).is_none()
}

/// The directory of a local-path volume: `dir_pattern` with `{node}` replaced, then
/// `pvc-<uid>_<namespace>_<name>` (local-path-provisioner's folder name).
pub fn volume_dir(dir_pattern: &str, node: &str, pvc: &PersistentVolumeClaim) -> PathBuf {
    let base = dir_pattern.replace(NODE_PLACEHOLDER, node);
    let m = &pvc.metadata;
    Path::new(&base).join(format!(
        "pvc-{}_{}_{}",
        m.uid.as_deref().unwrap_or_default(),
        m.namespace.as_deref().unwrap_or_default(),
        m.name.as_deref().unwrap_or_default()
    ))
}

/// The name of the volume provisioned for a claim (`pvc-<uid>`, as every provisioner names it).
pub fn volume_name(pvc: &PersistentVolumeClaim) -> String {
    format!("pvc-{}", pvc.metadata.uid.as_deref().unwrap_or_default())
}

/// Decides for a Pending claim that no existing volume fits. `class` is the claim's class if it
/// exists; `dir_pattern` is `--local-path-dir`.
pub fn decide(
    pvc: &PersistentVolumeClaim,
    class: Option<&StorageClass>,
    dir_pattern: &str,
) -> Provision {
    let Some(class_name) = claim_class(pvc) else {
        return Provision::NoClass;
    };
    let Some(class) = class else {
        return Provision::ClassNotFound(class_name.to_string());
    };
    if waits_for_consumer(pvc, Some(class)) {
        return Provision::WaitForFirstConsumer;
    }
    if class.provisioner != PROVISIONER {
        return Provision::External(class.provisioner.clone());
    }
    let Some(node) = annotation(&pvc.metadata, SELECTED_NODE) else {
        return Provision::Failed("configuration error, no node was specified".into());
    };
    let spec = pvc.spec.clone().unwrap_or_default();
    if spec.volume_mode.as_deref() == Some("Block") {
        return Provision::Failed("local-path volumes are Filesystem volumes only".into());
    }
    if spec.data_source.is_some() || spec.data_source_ref.is_some() {
        return Provision::Failed(
            "local-path volumes cannot be populated from a data source".into(),
        );
    }
    let Some(storage) = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .cloned()
    else {
        return Provision::Failed("the claim requests no storage".into());
    };
    let path = volume_dir(dir_pattern, node, pvc);
    let pv = PersistentVolume {
        metadata: ObjectMeta {
            name: Some(volume_name(pvc)),
            annotations: Some(BTreeMap::from([
                (PROVISIONED_BY.to_string(), PROVISIONER.to_string()),
                (
                    "local.path.provisioner/selected-node".to_string(),
                    node.to_string(),
                ),
            ])),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            access_modes: spec.access_modes.clone(),
            capacity: Some(BTreeMap::from([("storage".to_string(), storage)])),
            claim_ref: Some(reference_to(pvc)),
            host_path: Some(HostPathVolumeSource {
                path: path.to_string_lossy().into_owned(),
                type_: Some("DirectoryOrCreate".into()),
            }),
            mount_options: class.mount_options.clone(),
            node_affinity: Some(VolumeNodeAffinity {
                required: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: "kubernetes.io/hostname".into(),
                            operator: "In".into(),
                            values: Some(vec![node.to_string()]),
                        }]),
                        match_fields: None,
                    }],
                }),
            }),
            persistent_volume_reclaim_policy: Some(
                class
                    .reclaim_policy
                    .clone()
                    .unwrap_or_else(|| "Delete".into()),
            ),
            storage_class_name: Some(class_name.to_string()),
            volume_mode: Some("Filesystem".into()),
            ..Default::default()
        }),
        status: None,
    };
    Provision::Create(Box::new(pv))
}

/// The directory a deleted local-path volume leaves to remove: only for volumes this provisioner
/// made, whose hostPath is a `pvc-…` directory under the `--local-path-dir` pattern's fixed prefix
/// (so a hand-edited volume can never make the controller delete an arbitrary path).
pub fn removable_dir(pv: &PersistentVolume, dir_pattern: &str) -> Option<PathBuf> {
    if annotation(&pv.metadata, PROVISIONED_BY) != Some(PROVISIONER) {
        return None;
    }
    let path = Path::new(&pv.spec.as_ref()?.host_path.as_ref()?.path);
    let prefix = dir_pattern
        .split(NODE_PLACEHOLDER)
        .next()
        .unwrap_or_default();
    let safe = path.is_absolute()
        && !prefix.is_empty()
        && path.starts_with(prefix.trim_end_matches('/'))
        && path
            .components()
            .all(|c| !matches!(c, std::path::Component::ParentDir))
        && path
            .file_name()
            .and_then(|f| f.to_str())
            .is_some_and(|f| f.starts_with("pvc-"));
    safe.then(|| path.to_path_buf())
}

#[cfg(test)]
#[path = "provision_tests.rs"]
mod tests;
