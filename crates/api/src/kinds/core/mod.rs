//! Core-group kinds other than Pods and Services: Namespaces, Nodes, ConfigMaps, Secrets,
//! ServiceAccounts, Events, PersistentVolumes(Claims), ResourceQuotas and LimitRanges.
//!
//! Volumes and quotas (PersistentVolume, PersistentVolumeClaim, ResourceQuota, LimitRange) are in
//! `claims`.

mod claims;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    ConfigMap, Event, LimitRange, Namespace, NamespaceSpec, NamespaceStatus, Node,
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimStatus, PersistentVolumeStatus,
    ResourceQuota, Secret, ServiceAccount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use super::{Strategy, or_str};
use crate::quantity::Quantity;
use crate::status::Cause;
use crate::validation::field::{self, Path};
use crate::validation::names;

/// The label every Namespace carries with its own name (`kubernetes.io/metadata.name`).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// The finalizer that keeps a terminating Namespace until the namespace controller emptied it.
pub const NAMESPACE_FINALIZER: &str = "kubernetes";
/// ConfigMaps and Secrets hold at most 1 MiB.
const MAX_DATA_BYTES: usize = 1024 * 1024;
const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];
const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

fn quantities(map: Option<&BTreeMap<String, ApiQuantity>>, path: &Path) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (name, q) in map.into_iter().flatten() {
        let p = path.key(name);
        for problem in names::qualified_name(name) {
            causes.push(field::invalid(&p, name.as_str(), &problem));
        }
        match Quantity::parse(&q.0) {
            Ok(v) if v.is_negative() => {
                causes.push(field::invalid(&p, q.0.as_str(), field::NEGATIVE))
            }
            Ok(_) => {}
            Err(e) => causes.push(field::invalid(&p, q.0.as_str(), &e.to_string())),
        }
    }
    causes
}

fn data_keys<'a>(keys: impl Iterator<Item = &'a String>, path: &Path) -> Vec<Cause> {
    let mut causes = Vec::new();
    for k in keys {
        for problem in names::config_map_key(k) {
            causes.push(field::invalid(&path.key(k), k.as_str(), &problem));
        }
    }
    causes
}

// ---------------------------------------------------------------------------------------------
// Namespace

impl Strategy for Namespace {
    fn default(&mut self) {
        let name = self.metadata.name.clone().unwrap_or_default();
        self.metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(NAMESPACE_NAME_LABEL.into(), name);
    }

    fn prepare_create(&mut self) {
        self.spec = Some(NamespaceSpec {
            finalizers: Some(vec![NAMESPACE_FINALIZER.into()]),
        });
        self.status = Some(NamespaceStatus {
            phase: Some("Active".into()),
            conditions: None,
        });
    }

    /// spec.finalizers change only through the `finalize` subresource: an update keeps them.
    fn prepare_update(&mut self, old: &Self) {
        self.spec.clone_from(&old.spec);
    }
}

// ---------------------------------------------------------------------------------------------
// Node

impl Strategy for Node {
    fn default(&mut self) {
        // `SetDefaults_NodeStatus`: allocatable defaults to capacity.
        if let Some(status) = self.status.as_mut()
            && status.allocatable.is_none()
        {
            status.allocatable.clone_from(&status.capacity);
        }
        if let Some(spec) = self.spec.as_mut()
            && spec.pod_cidrs.as_ref().is_none_or(Vec::is_empty)
            && let Some(cidr) = spec.pod_cidr.clone().filter(|c| !c.is_empty())
        {
            spec.pod_cidrs = Some(vec![cidr]);
        }
    }

    fn validate(&self) -> Vec<Cause> {
        let mut causes = Vec::new();
        let spec = self.spec.clone().unwrap_or_default();
        let path = Path::new("spec");
        for (i, cidr) in spec.pod_cidrs.iter().flatten().enumerate() {
            let ok = cidr.split_once('/').is_some_and(|(ip, len)| {
                names::ip(ip).is_empty() && len.parse::<u8>().is_ok_and(|l| l <= 128)
            });
            if !ok {
                causes.push(field::invalid(
                    &path.child("podCIDRs").index(i),
                    cidr.as_str(),
                    "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                ));
            }
        }
        for (i, t) in spec.taints.iter().flatten().enumerate() {
            let p = path.child("taints").index(i);
            if t.key.is_empty() {
                causes.push(field::required(&p.child("key"), ""));
            } else {
                for problem in names::qualified_name(&t.key) {
                    causes.push(field::invalid(&p.child("key"), t.key.as_str(), &problem));
                }
            }
            if let Some(v) = t.value.as_deref() {
                for problem in names::label_value(v) {
                    causes.push(field::invalid(&p.child("value"), v, &problem));
                }
            }
            if t.effect.is_empty() {
                causes.push(field::required(&p.child("effect"), ""));
            } else if !TAINT_EFFECTS.contains(&t.effect.as_str()) {
                causes.push(field::not_supported(
                    &p.child("effect"),
                    t.effect.as_str(),
                    TAINT_EFFECTS,
                ));
            }
        }
        if let Some(status) = &self.status {
            causes.extend(quantities(
                status.capacity.as_ref(),
                &Path::new("status").child("capacity"),
            ));
            causes.extend(quantities(
                status.allocatable.as_ref(),
                &Path::new("status").child("allocatable"),
            ));
        }
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = self.validate();
        let new_cidrs = self
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidrs.clone())
            .unwrap_or_default();
        let old_cidrs = old
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidrs.clone())
            .unwrap_or_default();
        if !old_cidrs.is_empty() && new_cidrs != old_cidrs {
            causes.push(field::forbidden(
                &Path::new("spec").child("podCIDRs"),
                "node updates may not change podCIDR except from \"\" to valid",
            ));
        }
        causes
    }

    fn validate_status(&self, _old: &Self) -> Vec<Cause> {
        let mut causes = Vec::new();
        if let Some(status) = &self.status {
            let p = Path::new("status");
            causes.extend(quantities(status.capacity.as_ref(), &p.child("capacity")));
            causes.extend(quantities(
                status.allocatable.as_ref(),
                &p.child("allocatable"),
            ));
        }
        causes
    }
}

// ---------------------------------------------------------------------------------------------
// ConfigMap and Secret

impl Strategy for ConfigMap {
    fn validate(&self) -> Vec<Cause> {
        let mut causes = data_keys(self.data.iter().flat_map(|m| m.keys()), &Path::new("data"));
        causes.extend(data_keys(
            self.binary_data.iter().flat_map(|m| m.keys()),
            &Path::new("binaryData"),
        ));
        let mut size = 0;
        for (k, v) in self.data.iter().flatten() {
            size += k.len() + v.len();
            if self.binary_data.as_ref().is_some_and(|b| b.contains_key(k)) {
                causes.push(field::invalid(
                    &Path::new("data").key(k),
                    k.as_str(),
                    "duplicate of key present in binaryData",
                ));
            }
        }
        for (k, v) in self.binary_data.iter().flatten() {
            size += k.len() + v.0.len();
        }
        if size > MAX_DATA_BYTES {
            causes.push(field::too_long(&Path::new(""), MAX_DATA_BYTES));
        }
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = self.validate();
        if old.immutable == Some(true) {
            if self.immutable != Some(true) {
                causes.push(field::forbidden(
                    &Path::new("immutable"),
                    "field is immutable when `immutable` is set",
                ));
            }
            if self.data != old.data {
                causes.push(field::forbidden(
                    &Path::new("data"),
                    "field is immutable when `immutable` is set",
                ));
            }
            if self.binary_data != old.binary_data {
                causes.push(field::forbidden(
                    &Path::new("binaryData"),
                    "field is immutable when `immutable` is set",
                ));
            }
        }
        causes
    }
}

/// Keys each built-in Secret type must have.
fn secret_type_rules(secret: &Secret) -> Vec<Cause> {
    let data = secret.data.clone().unwrap_or_default();
    let need = |key: &str| -> Vec<Cause> {
        if data.contains_key(key) {
            Vec::new()
        } else {
            vec![field::required(&Path::new("data").key(key), "")]
        }
    };
    match secret.type_.as_deref().unwrap_or_default() {
        "kubernetes.io/tls" => {
            let mut c = need("tls.crt");
            c.extend(need("tls.key"));
            c
        }
        "kubernetes.io/dockerconfigjson" => need(".dockerconfigjson"),
        "kubernetes.io/dockercfg" => need(".dockercfg"),
        "kubernetes.io/basic-auth" => {
            if data.contains_key("username") || data.contains_key("password") {
                Vec::new()
            } else {
                vec![field::required(&Path::new("data").key("username"), "")]
            }
        }
        "kubernetes.io/ssh-auth" => need("ssh-privatekey"),
        "kubernetes.io/service-account-token" => {
            let named = secret
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key("kubernetes.io/service-account.name"));
            if named {
                Vec::new()
            } else {
                vec![field::required(
                    &Path::new("metadata")
                        .child("annotations")
                        .key("kubernetes.io/service-account.name"),
                    "",
                )]
            }
        }
        _ => Vec::new(),
    }
}

impl Strategy for Secret {
    fn default(&mut self) {
        or_str(&mut self.type_, "Opaque");
        // stringData is write-only: it is merged into data on the way in.
        if let Some(strings) = self.string_data.take() {
            let data = self.data.get_or_insert_with(BTreeMap::new);
            for (k, v) in strings {
                data.insert(k, ByteString(v.into_bytes()));
            }
        }
    }

    fn validate(&self) -> Vec<Cause> {
        let mut causes = data_keys(self.data.iter().flat_map(|m| m.keys()), &Path::new("data"));
        let size: usize = self
            .data
            .iter()
            .flatten()
            .map(|(k, v)| k.len() + v.0.len())
            .sum();
        if size > MAX_DATA_BYTES {
            causes.push(field::too_long(&Path::new("data"), MAX_DATA_BYTES));
        }
        causes.extend(secret_type_rules(self));
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = self.validate();
        if self.type_ != old.type_ {
            causes.push(field::invalid(
                &Path::new("type"),
                self.type_.clone().unwrap_or_default(),
                field::IMMUTABLE,
            ));
        }
        if old.immutable == Some(true) {
            if self.immutable != Some(true) {
                causes.push(field::forbidden(
                    &Path::new("immutable"),
                    "field is immutable when `immutable` is set",
                ));
            }
            if self.data != old.data {
                causes.push(field::forbidden(
                    &Path::new("data"),
                    "field is immutable when `immutable` is set",
                ));
            }
        }
        causes
    }
}

impl Strategy for ServiceAccount {
    fn validate(&self) -> Vec<Cause> {
        let mut causes = Vec::new();
        for (i, s) in self.secrets.iter().flatten().enumerate() {
            if s.name.as_deref().is_none_or(str::is_empty) {
                causes.push(field::required(
                    &Path::new("secrets").index(i).child("name"),
                    "",
                ));
            }
        }
        causes
    }
}

// ---------------------------------------------------------------------------------------------
// Event (core/v1)

impl Strategy for Event {
    fn default(&mut self) {
        or_str(&mut self.type_, "Normal");
    }

    fn validate(&self) -> Vec<Cause> {
        let mut causes = Vec::new();
        let ns = self.metadata.namespace.as_deref().unwrap_or_default();
        let involved = self
            .involved_object
            .namespace
            .as_deref()
            .unwrap_or_default();
        if !involved.is_empty() && involved != ns {
            causes.push(field::invalid(
                &Path::new("involvedObject").child("namespace"),
                involved,
                "does not match event.namespace",
            ));
        }
        if let Some(t) = self.type_.as_deref()
            && t != "Normal"
            && t != "Warning"
        {
            causes.push(field::not_supported(
                &Path::new("type"),
                t,
                &["Normal", "Warning"],
            ));
        }
        causes.extend(field::nonnegative(
            &Path::new("count"),
            self.count.map(i64::from),
        ));
        causes
    }
}
