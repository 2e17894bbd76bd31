//! PersistentVolumes, PersistentVolumeClaims, ResourceQuotas and LimitRanges.

use super::*;

// PersistentVolume and PersistentVolumeClaim

fn access_modes(modes: Option<&Vec<String>>, path: &Path) -> Vec<Cause> {
    let modes = modes.cloned().unwrap_or_default();
    let mut causes = Vec::new();
    if modes.is_empty() {
        causes.push(field::required(path, "at least 1 access mode is required"));
    }
    for m in &modes {
        if !ACCESS_MODES.contains(&m.as_str()) {
            causes.push(field::not_supported(path, m.as_str(), ACCESS_MODES));
        }
    }
    if modes.iter().any(|m| m == "ReadWriteOncePod") && modes.len() > 1 {
        causes.push(field::forbidden(
            path,
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
    causes
}

impl Strategy for PersistentVolume {
    fn default(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        or_str(&mut spec.persistent_volume_reclaim_policy, "Retain");
        or_str(&mut spec.volume_mode, "Filesystem");
    }

    fn prepare_create(&mut self) {
        self.status = Some(PersistentVolumeStatus {
            phase: Some("Pending".into()),
            ..Default::default()
        });
    }

    fn validate(&self) -> Vec<Cause> {
        let path = Path::new("spec");
        let Some(spec) = &self.spec else {
            return vec![field::required(&path, "")];
        };
        let mut causes = access_modes(spec.access_modes.as_ref(), &path.child("accessModes"));
        match spec.capacity.as_ref().and_then(|c| c.get("storage")) {
            None => causes.push(field::required(&path.child("capacity").key("storage"), "")),
            Some(_) => causes.extend(quantities(spec.capacity.as_ref(), &path.child("capacity"))),
        }
        let json = serde_json::to_value(spec).unwrap_or_default();
        const NOT_SOURCES: &[&str] = &[
            "accessModes",
            "capacity",
            "claimRef",
            "mountOptions",
            "nodeAffinity",
            "persistentVolumeReclaimPolicy",
            "storageClassName",
            "volumeAttributesClassName",
            "volumeMode",
        ];
        let sources = json
            .as_object()
            .map(|m| {
                m.keys()
                    .filter(|k| !NOT_SOURCES.contains(&k.as_str()))
                    .count()
            })
            .unwrap_or(0);
        if sources == 0 {
            causes.push(field::required(&path, "must specify a volume type"));
        } else if sources > 1 {
            causes.push(field::forbidden(
                &path,
                "may not specify more than 1 volume type",
            ));
        }
        if let Some(p) = spec.persistent_volume_reclaim_policy.as_deref()
            && !["Delete", "Recycle", "Retain"].contains(&p)
        {
            causes.push(field::not_supported(
                &path.child("persistentVolumeReclaimPolicy"),
                p,
                &["Delete", "Recycle", "Retain"],
            ));
        }
        causes
    }
}

const PVC_SPEC_IMMUTABLE: &str = "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims";

impl Strategy for PersistentVolumeClaim {
    fn default(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        or_str(&mut spec.volume_mode, "Filesystem");
    }

    fn prepare_create(&mut self) {
        self.status = Some(PersistentVolumeClaimStatus {
            phase: Some("Pending".into()),
            ..Default::default()
        });
    }

    fn validate(&self) -> Vec<Cause> {
        let path = Path::new("spec");
        let Some(spec) = &self.spec else {
            return vec![field::required(&path, "")];
        };
        let mut causes = access_modes(spec.access_modes.as_ref(), &path.child("accessModes"));
        let requests = spec.resources.as_ref().and_then(|r| r.requests.as_ref());
        let storage = path.child("resources").key("storage");
        match requests.and_then(|r| r.get("storage")) {
            None => causes.push(field::required(&storage, "")),
            Some(q) => match Quantity::parse(&q.0) {
                Ok(v) if v <= Quantity::ZERO => {
                    causes.push(field::invalid(
                        &storage,
                        q.0.as_str(),
                        "must be greater than zero",
                    ));
                }
                Ok(_) => {}
                Err(e) => causes.push(field::invalid(&storage, q.0.as_str(), &e.to_string())),
            },
        }
        if let Some(sel) = &spec.selector {
            causes.extend(super::super::selector::validate(
                sel,
                &path.child("selector"),
            ));
        }
        if let Some(m) = spec.volume_mode.as_deref()
            && m != "Filesystem"
            && m != "Block"
        {
            causes.push(field::not_supported(
                &path.child("volumeMode"),
                m,
                &["Block", "Filesystem"],
            ));
        }
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = self.validate();
        let (Some(new), Some(old_spec)) = (&self.spec, &old.spec) else {
            return causes;
        };
        let mut comparable = new.clone();
        // The volume name may be set once; storage requests may grow.
        if old_spec.volume_name.as_deref().is_none_or(str::is_empty) {
            comparable.volume_name.clone_from(&old_spec.volume_name);
        }
        comparable.resources.clone_from(&old_spec.resources);
        if comparable != *old_spec {
            causes.push(field::forbidden(&Path::new("spec"), PVC_SPEC_IMMUTABLE));
        }
        let size = |s: &k8s_openapi::api::core::v1::PersistentVolumeClaimSpec| {
            s.resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("storage"))
                .and_then(|q| Quantity::parse(&q.0).ok())
        };
        if let (Some(n), Some(o)) = (size(new), size(old_spec))
            && n < o
        {
            causes.push(field::forbidden(
                &Path::new("spec")
                    .child("resources")
                    .child("requests")
                    .child("storage"),
                "field can not be less than previous value",
            ));
        }
        causes
    }
}

// ---------------------------------------------------------------------------------------------
// ResourceQuota and LimitRange

impl Strategy for ResourceQuota {
    fn validate(&self) -> Vec<Cause> {
        let spec = self.spec.clone().unwrap_or_default();
        quantities(spec.hard.as_ref(), &Path::new("spec").child("hard"))
    }
}

impl Strategy for LimitRange {
    fn validate(&self) -> Vec<Cause> {
        let mut causes = Vec::new();
        let Some(spec) = &self.spec else {
            return vec![field::required(&Path::new("spec"), "")];
        };
        for (i, item) in spec.limits.iter().enumerate() {
            let p = Path::new("spec").child("limits").index(i);
            if !["Pod", "Container", "PersistentVolumeClaim"].contains(&item.type_.as_str()) {
                causes.push(field::not_supported(
                    &p.child("type"),
                    item.type_.as_str(),
                    &["Container", "PersistentVolumeClaim", "Pod"],
                ));
            }
            for (name, map) in [
                ("max", &item.max),
                ("min", &item.min),
                ("default", &item.default),
                ("defaultRequest", &item.default_request),
                ("maxLimitRequestRatio", &item.max_limit_request_ratio),
            ] {
                causes.extend(quantities(map.as_ref(), &p.child(name)));
            }
        }
        causes
    }
}
