//! Owner references and the adopt/release rule of Kubernetes' `ControllerRefManager`: a controller
//! owns the objects whose controller reference carries its UID; it adopts matching orphans and
//! releases owned objects that no longer match its selector.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use niwa_api::selector::LabelSelector;

/// The reference that makes `owner` the managing controller of an object (controller=true and
/// blockOwnerDeletion=true, as every built-in controller writes it).
pub fn controller_reference(api_version: &str, kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The object's managing controller, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// Whether the object's controller reference carries this UID.
pub fn is_controlled_by(meta: &ObjectMeta, owner_uid: &str) -> bool {
    controller_of(meta).is_some_and(|r| r.uid == owner_uid)
}

/// What a controller should do with each candidate object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Already ours and matching: it counts.
    Owned,
    /// A matching orphan: set our controller reference, then it counts.
    Adopt,
    /// Ours but no longer matching: remove our controller reference.
    Release,
    /// Not ours (another controller's, or neither ours nor matching).
    Ignore,
}

/// Kubernetes' `ClaimObject` for one object. `owner_deleting`: the owner has a deletionTimestamp
/// (it then neither adopts nor releases).
pub fn claim(
    meta: &ObjectMeta,
    owner_uid: &str,
    owner_deleting: bool,
    selector: &LabelSelector,
    empty_labels: &std::collections::BTreeMap<String, String>,
) -> Claim {
    let labels = meta.labels.as_ref().unwrap_or(empty_labels);
    let matches = selector.matches(labels);
    match controller_of(meta) {
        Some(r) if r.uid == owner_uid => {
            if matches {
                Claim::Owned
            } else if owner_deleting {
                Claim::Ignore
            } else {
                Claim::Release
            }
        }
        Some(_) => Claim::Ignore,
        None => {
            if matches && !owner_deleting && meta.deletion_timestamp.is_none() {
                Claim::Adopt
            } else {
                Claim::Ignore
            }
        }
    }
}

/// The merge patch that adopts an object (Kubernetes sends a strategic merge patch with the
/// object's UID as a precondition; a merge patch replacing the list is the same on an orphan).
pub fn adopt_patch(meta: &ObjectMeta, owner_ref: &OwnerReference) -> serde_json::Value {
    let mut refs: Vec<OwnerReference> = meta.owner_references.clone().unwrap_or_default();
    refs.retain(|r| r.uid != owner_ref.uid);
    refs.push(owner_ref.clone());
    serde_json::json!({
        "metadata": { "ownerReferences": refs, "uid": meta.uid }
    })
}

/// The merge patch that releases an object from the owner with this UID.
pub fn release_patch(meta: &ObjectMeta, owner_uid: &str) -> serde_json::Value {
    let refs: Vec<OwnerReference> = meta
        .owner_references
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.uid != owner_uid)
        .collect();
    serde_json::json!({
        "metadata": { "ownerReferences": if refs.is_empty() { serde_json::Value::Null } else { serde_json::json!(refs) }, "uid": meta.uid }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn meta(labels: &[(&str, &str)], owner: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some("p".into()),
            uid: Some("pod-uid".into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            owner_references: owner.map(|uid| {
                vec![OwnerReference {
                    uid: uid.into(),
                    controller: Some(true),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }
    }

    #[test]
    fn claim_table() {
        let sel = LabelSelector::parse("app=web").unwrap_or_default();
        let empty = BTreeMap::new();
        let cases = [
            (meta(&[("app", "web")], Some("me")), false, Claim::Owned),
            (meta(&[("app", "db")], Some("me")), false, Claim::Release),
            (meta(&[("app", "db")], Some("me")), true, Claim::Ignore),
            (meta(&[("app", "web")], None), false, Claim::Adopt),
            (meta(&[("app", "web")], None), true, Claim::Ignore),
            (meta(&[("app", "web")], Some("other")), false, Claim::Ignore),
            (meta(&[("app", "db")], None), false, Claim::Ignore),
        ];
        for (m, deleting, want) in cases {
            assert_eq!(claim(&m, "me", deleting, &sel, &empty), want, "{m:?}");
        }
    }

    #[test]
    fn release_patch_clears_the_list_when_we_were_the_only_owner() {
        let m = meta(&[], Some("me"));
        let p = release_patch(&m, "me");
        assert_eq!(p["metadata"]["ownerReferences"], serde_json::Value::Null);
    }
}
