//! PersistentVolume binding decisions, IO-free (Kubernetes' `persistentvolume-binder-controller`
//! for statically provisioned volumes):
//! * a Pending claim binds to the smallest Available volume that fits — same storageClassName
//!   and volumeMode, every requested access mode, capacity ≥ request, `selector.matchLabels` — or
//!   to the volume it names (`spec.volumeName`) or that names it (a pre-bound `claimRef`);
//! * a volume's phase follows its claim: Available without one, Bound while the claim exists,
//!   Released once the claim is gone — then `persistentVolumeReclaimPolicy: Delete` deletes the
//!   volume and `Retain` keeps it Released (an administrator reuses it by clearing `claimRef`).

use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolume, PersistentVolumeClaim};
use niwa_api::quantity::Quantity;

fn storage(
    list: Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >,
) -> Option<Quantity> {
    Quantity::parse(&list?.get("storage")?.0).ok()
}

/// The claim's requested size.
pub fn request(pvc: &PersistentVolumeClaim) -> Option<Quantity> {
    storage(pvc.spec.as_ref()?.resources.as_ref()?.requests.as_ref())
}

/// The volume's capacity.
pub fn capacity(pv: &PersistentVolume) -> Option<Quantity> {
    storage(pv.spec.as_ref()?.capacity.as_ref())
}

fn pvc_class(pvc: &PersistentVolumeClaim) -> &str {
    pvc.spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .unwrap_or("")
}

fn pv_class(pv: &PersistentVolume) -> &str {
    pv.spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .unwrap_or("")
}

fn claim_ref(pv: &PersistentVolume) -> Option<&ObjectReference> {
    pv.spec.as_ref()?.claim_ref.as_ref()
}

/// Whether the volume's claimRef names this claim (by namespace/name, and UID when it has one).
pub fn refers_to(pv: &PersistentVolume, pvc: &PersistentVolumeClaim) -> bool {
    claim_ref(pv).is_some_and(|r| {
        r.name == pvc.metadata.name
            && r.namespace == pvc.metadata.namespace
            && r.uid
                .as_deref()
                .is_none_or(|u| u.is_empty() || Some(u) == pvc.metadata.uid.as_deref())
    })
}

/// Whether `pv` can serve `pvc` (class, mode, access modes, size, selector), ignoring binding.
pub fn fits(pv: &PersistentVolume, pvc: &PersistentVolumeClaim) -> bool {
    let (Some(ps), Some(cs)) = (pv.spec.as_ref(), pvc.spec.as_ref()) else {
        return false;
    };
    if pv.metadata.deletion_timestamp.is_some() || pv_class(pv) != pvc_class(pvc) {
        return false;
    }
    let mode = |m: Option<&String>| m.map_or("Filesystem", |s| s.as_str()).to_string();
    if mode(ps.volume_mode.as_ref()) != mode(cs.volume_mode.as_ref()) {
        return false;
    }
    let pv_modes = ps.access_modes.as_deref().unwrap_or_default();
    if !cs
        .access_modes
        .iter()
        .flatten()
        .all(|m| pv_modes.contains(m))
    {
        return false;
    }
    if let Some(sel) = cs.selector.as_ref()
        && let Some(ml) = sel.match_labels.as_ref()
    {
        let labels = pv.metadata.labels.clone().unwrap_or_default();
        if !ml.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            return false;
        }
    }
    match (capacity(pv), request(pvc)) {
        (Some(c), Some(r)) => c >= r,
        (_, None) => true,
        (None, Some(_)) => false,
    }
}

/// The volume a Pending claim should bind to, if any.
pub fn choose<'a>(
    pvc: &PersistentVolumeClaim,
    pvs: &[&'a PersistentVolume],
) -> Option<&'a PersistentVolume> {
    let named = pvc
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .filter(|n| !n.is_empty());
    if let Some(name) = named {
        return pvs
            .iter()
            .copied()
            .find(|pv| pv.metadata.name.as_deref() == Some(name))
            .filter(|pv| (claim_ref(pv).is_none() || refers_to(pv, pvc)) && fits(pv, pvc));
    }
    if let Some(pre) = pvs
        .iter()
        .copied()
        .find(|pv| refers_to(pv, pvc) && fits(pv, pvc))
    {
        return Some(pre);
    }
    pvs.iter()
        .copied()
        .filter(|pv| claim_ref(pv).is_none() && fits(pv, pvc))
        .min_by(|a, b| {
            capacity(a)
                .cmp(&capacity(b))
                .then(a.metadata.name.cmp(&b.metadata.name))
        })
}

/// The reference a bound volume carries to its claim.
pub fn reference_to(pvc: &PersistentVolumeClaim) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolumeClaim".into()),
        name: pvc.metadata.name.clone(),
        namespace: pvc.metadata.namespace.clone(),
        uid: pvc.metadata.uid.clone(),
        resource_version: pvc.metadata.resource_version.clone(),
        field_path: None,
    }
}

/// What a volume should be, given whether its claim exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeState {
    Available,
    Bound,
    Released,
    /// Released with reclaim policy Delete.
    Delete,
}

/// The volume's state. `claim` is the claim its claimRef names, if it exists.
pub fn volume_state(pv: &PersistentVolume, claim: Option<&PersistentVolumeClaim>) -> VolumeState {
    let Some(r) = claim_ref(pv) else {
        return VolumeState::Available;
    };
    let bound = claim.is_some_and(|c| refers_to(pv, c));
    let uid_set = r.uid.as_deref().is_some_and(|u| !u.is_empty());
    if bound || !uid_set {
        // A pre-bound volume (claimRef without UID) waits for its claim as Available.
        return if bound && uid_set {
            VolumeState::Bound
        } else {
            VolumeState::Available
        };
    }
    let policy = pv
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        .unwrap_or("Retain");
    if policy == "Delete" {
        VolumeState::Delete
    } else {
        VolumeState::Released
    }
}

pub fn phase_name(s: VolumeState) -> &'static str {
    match s {
        VolumeState::Available => "Available",
        VolumeState::Bound => "Bound",
        VolumeState::Released | VolumeState::Delete => "Released",
    }
}

#[cfg(test)]
#[path = "core/tests.rs"]
mod tests;
