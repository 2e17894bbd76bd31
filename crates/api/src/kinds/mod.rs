//! Per-kind defaulting and validation, as Kubernetes' API types do it (`SetDefaults_*` and
//! `Validate*` in kubernetes/pkg/apis/*). IO-free: JSON in, JSON (or field causes) out.
//!
//! Every kind of the registry has a [`Strategy`]: the REST layer calls [`admit_create`] and
//! [`admit_update`] (and [`admit_status_update`] for the `status` subresource), which decode the
//! object into its `k8s-openapi` type (so a malformed body is a clear 400 naming the problem), apply
//! the kind's defaults, and validate it — metadata and spec — returning every bad field as a
//! Kubernetes cause. Unknown fields are dropped by decoding, as a real apiserver drops them
//! (`fieldValidation=Strict` is checked against the OpenAPI schemas by the HTTP layer).
//!
//! One module per API group: [`pod`] (PodSpec, shared by every template), [`core`], [`service`],
//! [`apps`], [`batch`], [`networking`], [`storage`], [`other`] (coordination, policy, autoscaling, events).

pub mod apps;
pub mod batch;
pub mod core;
pub mod networking;
pub mod other;
pub mod pod;
pub mod selector;
pub mod service;
pub mod storage;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::registry::ResourceInfo;
use crate::status::{ApiError, Cause};
use crate::validation::meta::{NameRule, validate_meta, validate_meta_update};

/// What one kind does on create and update, beyond the generic metadata rules.
pub trait Strategy: DeserializeOwned + Serialize {
    /// Fills in defaults (`SetDefaults_*`).
    fn default(&mut self) {}
    /// What a create does before validation beyond defaults (`PrepareForCreate`): reset status to
    /// its initial value, set server-chosen spec fields.
    fn prepare_create(&mut self) {}
    /// What an update does before validation beyond defaults (`PrepareForUpdate`): keep fields
    /// the main resource may not change, carry over server-allocated values a body omitted.
    fn prepare_update(&mut self, _old: &Self) {}
    /// Validates a new object's spec (metadata is validated generically).
    fn validate(&self) -> Vec<Cause> {
        Vec::new()
    }
    /// Validates an update: by default the new object as if created, plus the kind's immutable
    /// fields.
    fn validate_update(&self, _old: &Self) -> Vec<Cause> {
        self.validate()
    }
    /// Validates a status update (only status has changed).
    fn validate_status(&self, _old: &Self) -> Vec<Cause> {
        Vec::new()
    }
}

/// Which name syntax the kind's objects must follow (`ValidateNameFunc`).
pub fn name_rule(info: &ResourceInfo) -> NameRule {
    match (info.group, info.kind) {
        ("", "Namespace") => NameRule::Label,
        ("", "Service") => NameRule::Dns1035,
        _ => NameRule::Subdomain,
    }
}

fn decode<T: DeserializeOwned>(info: &ResourceInfo, obj: Value) -> Result<T, ApiError> {
    serde_json::from_value(obj).map_err(|e| {
        ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {e}",
            kind = info.kind,
            version = info.version
        ))
    })
}

fn encode<T: Serialize>(obj: &T) -> Result<Value, ApiError> {
    serde_json::to_value(obj).map_err(|e| ApiError::internal(format!("encoding: {e}")))
}

fn invalid_unless_empty(
    info: &ResourceInfo,
    obj: &Value,
    causes: Vec<Cause>,
) -> Result<(), ApiError> {
    if causes.is_empty() {
        Ok(())
    } else {
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        Err(ApiError::invalid(info, name, causes))
    }
}

enum Op<'a> {
    Create,
    Update(&'a Value),
    Status(&'a Value),
}

fn missing_old() -> ApiError {
    ApiError::internal("update without the stored object")
}

fn run<T: Strategy>(info: &ResourceInfo, obj: Value, op: Op<'_>) -> Result<Value, ApiError> {
    let mut typed: T = decode(info, obj)?;
    let old: Option<T> = match op {
        Op::Create => None,
        Op::Update(old) | Op::Status(old) => Some(decode(info, old.clone())?),
    };
    match (&op, &old) {
        (Op::Create, _) => {
            typed.default();
            typed.prepare_create();
        }
        (Op::Update(_), Some(old)) => {
            typed.default();
            typed.prepare_update(old);
        }
        _ => {}
    }
    let out = encode(&typed)?;
    let rule = name_rule(info);
    let mut causes = validate_meta(&out, info.namespaced, rule);
    match op {
        Op::Create => causes.extend(typed.validate()),
        Op::Update(old_json) => {
            causes.extend(validate_meta_update(&out, old_json));
            causes.extend(typed.validate_update(old.as_ref().ok_or_else(missing_old)?));
        }
        Op::Status(old_json) => {
            causes.extend(validate_meta_update(&out, old_json));
            causes.extend(typed.validate_status(old.as_ref().ok_or_else(missing_old)?));
        }
    }
    invalid_unless_empty(info, &out, causes)?;
    Ok(out)
}

macro_rules! dispatch {
    ($info:expr, $obj:expr, $op:expr, { $( ($group:literal, $kind:literal) => $ty:ty ),* $(,)? }) => {
        match ($info.group, $info.kind) {
            $( ($group, $kind) => run::<$ty>($info, $obj, $op), )*
            _ => {
                // A kind without a strategy still gets the generic metadata rules.
                let causes = validate_meta(&$obj, $info.namespaced, name_rule($info));
                invalid_unless_empty($info, &$obj, causes)?;
                Ok($obj)
            }
        }
    };
}

fn admit(info: &ResourceInfo, obj: Value, op: Op<'_>) -> Result<Value, ApiError> {
    use k8s_openapi::api;
    dispatch!(info, obj, op, {
        ("", "Namespace") => api::core::v1::Namespace,
        ("", "Node") => api::core::v1::Node,
        ("", "Pod") => api::core::v1::Pod,
        ("", "Service") => api::core::v1::Service,
        ("", "Endpoints") => api::core::v1::Endpoints,
        ("", "ConfigMap") => api::core::v1::ConfigMap,
        ("", "Secret") => api::core::v1::Secret,
        ("", "ServiceAccount") => api::core::v1::ServiceAccount,
        ("", "Event") => api::core::v1::Event,
        ("", "PersistentVolume") => api::core::v1::PersistentVolume,
        ("", "PersistentVolumeClaim") => api::core::v1::PersistentVolumeClaim,
        ("", "ResourceQuota") => api::core::v1::ResourceQuota,
        ("", "LimitRange") => api::core::v1::LimitRange,
        ("apps", "Deployment") => api::apps::v1::Deployment,
        ("apps", "ReplicaSet") => api::apps::v1::ReplicaSet,
        ("apps", "DaemonSet") => api::apps::v1::DaemonSet,
        ("apps", "StatefulSet") => api::apps::v1::StatefulSet,
        ("apps", "ControllerRevision") => api::apps::v1::ControllerRevision,
        ("batch", "Job") => api::batch::v1::Job,
        ("batch", "CronJob") => api::batch::v1::CronJob,
        ("discovery.k8s.io", "EndpointSlice") => api::discovery::v1::EndpointSlice,
        ("networking.k8s.io", "Ingress") => api::networking::v1::Ingress,
        ("networking.k8s.io", "IngressClass") => api::networking::v1::IngressClass,
        ("storage.k8s.io", "StorageClass") => api::storage::v1::StorageClass,
        ("coordination.k8s.io", "Lease") => api::coordination::v1::Lease,
        ("events.k8s.io", "Event") => api::events::v1::Event,
        ("policy", "PodDisruptionBudget") => api::policy::v1::PodDisruptionBudget,
        ("autoscaling", "HorizontalPodAutoscaler") => api::autoscaling::v2::HorizontalPodAutoscaler,
    })
}

/// Defaults and validates a new object (its server-set metadata already filled in).
pub fn admit_create(info: &ResourceInfo, obj: Value) -> Result<Value, ApiError> {
    admit(info, obj, Op::Create)
}

/// Defaults and validates the new state of an updated object against its stored state.
pub fn admit_update(info: &ResourceInfo, obj: Value, old: &Value) -> Result<Value, ApiError> {
    admit(info, obj, Op::Update(old))
}

/// Validates a status update (no defaulting: status is observed state).
pub fn admit_status_update(
    info: &ResourceInfo,
    obj: Value,
    old: &Value,
) -> Result<Value, ApiError> {
    admit(info, obj, Op::Status(old))
}

/// Sets `slot` to `value` when it is unset (the shape of every `SetDefaults_*` rule).
pub(crate) fn or<T>(slot: &mut Option<T>, value: T) {
    if slot.is_none() {
        *slot = Some(value);
    }
}

/// Sets a string option when unset or empty.
pub(crate) fn or_str(slot: &mut Option<String>, value: &str) {
    if slot.as_deref().is_none_or(str::is_empty) {
        *slot = Some(value.to_string());
    }
}
