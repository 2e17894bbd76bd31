//! Per-kind behaviour of the generic REST layer: what Kubernetes' per-resource strategies do on
//! create and update (status reset, generation, name syntax).

use niwa_api::ResourceInfo;
use serde_json::{Value, json};

pub use niwa_api::validation::meta::NameRule;

pub fn name_rule(info: &ResourceInfo) -> NameRule {
    match info.kind {
        "Namespace" | "Service" => NameRule::Label,
        _ => NameRule::Subdomain,
    }
}

/// Whether status is separated from the main resource (a `status` subresource exists): then
/// updates keep the stored status and status updates keep everything else.
pub fn has_status_subresource(info: &ResourceInfo) -> bool {
    info.has_subresource("status")
}

/// The status a new object starts with, for kinds whose create strategy resets it.
pub fn initial_status(info: &ResourceInfo) -> Option<Value> {
    match (info.group, info.kind) {
        ("", "Pod") => Some(json!({"phase": "Pending"})),
        ("", "Namespace") => Some(json!({"phase": "Active"})),
        ("", "PersistentVolumeClaim") | ("", "PersistentVolume") => {
            Some(json!({"phase": "Pending"}))
        }
        ("", "Service") => Some(json!({"loadBalancer": {}})),
        ("apps", _) | ("batch", _) | ("networking.k8s.io", "Ingress") => Some(json!({})),
        _ => None,
    }
}

/// Kinds whose objects carry `metadata.generation` (those with a spec that controllers observe).
pub fn tracks_generation(obj: &Value) -> bool {
    obj.get("spec").is_some()
}
