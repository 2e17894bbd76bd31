//! The `binding` (pods) and `scale` (deployments, replicasets, statefulsets) subresources.

use niwa_api::{ApiError, ResourceInfo};
use serde_json::{Value, json};

use super::Rest;
use super::write::UpdateScope;
use crate::object;
use crate::storage::StorageError;

impl Rest {
    /// `POST pods/{name}/binding`: assigns the pod to `target.name`, once.
    pub async fn bind(
        &self,
        pods: &'static ResourceInfo,
        namespace: &str,
        name: &str,
        binding: &Value,
    ) -> Result<Value, ApiError> {
        let node = binding["target"]["name"].as_str().unwrap_or_default();
        if node.is_empty() {
            return Err(ApiError::invalid(
                pods,
                name,
                vec![niwa_api::Cause::required("target.name")],
            ));
        }
        let key = Self::key(pods, namespace, name)?;
        for _ in 0..8 {
            let Some(stored) = self.storage.get(&key, 0).await? else {
                return Err(ApiError::not_found(pods, name));
            };
            let mut pod = stored.object;
            if object::is_deleting(&pod) {
                return Err(ApiError::conflict(
                    pods,
                    name,
                    "pod is being deleted, cannot be assigned to a host",
                ));
            }
            if let Some(current) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                return Err(ApiError::conflict(
                    pods,
                    name,
                    &format!("pod {name} is already assigned to node {current:?}"),
                ));
            }
            if !pod["spec"].is_object() {
                return Err(ApiError::internal(format!("stored pod {name} has no spec")));
            }
            pod["spec"]["nodeName"] = json!(node);
            if !pod["status"].is_object() {
                pod["status"] = json!({});
            }
            let mut conditions: Vec<Value> = pod["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c["type"] != "PodScheduled")
                .collect();
            conditions.push(json!({"type": "PodScheduled", "status": "True",
                "lastTransitionTime": object::now(), "lastProbeTime": null}));
            pod["status"]["conditions"] = Value::Array(conditions);
            // Binding writes spec.nodeName and the condition together, bypassing the rule that
            // pod updates may not change the spec (as the Kubernetes binding REST does).
            match self.storage.update(&key, &pod, stored.revision).await {
                Ok(_) => {
                    return Ok(json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Success", "code": 201}));
                }
                Err(StorageError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::stale(pods, name))
    }

    /// `GET {resource}/{name}/scale` as an `autoscaling/v1` Scale.
    pub async fn get_scale(
        &self,
        info: &'static ResourceInfo,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        let obj = self.get(info, namespace, name).await?;
        Ok(scale_of(&obj))
    }

    /// `PUT {resource}/{name}/scale`: sets `spec.replicas`.
    pub async fn update_scale(
        &self,
        info: &'static ResourceInfo,
        namespace: &str,
        name: &str,
        scale: &Value,
    ) -> Result<Value, ApiError> {
        let Some(replicas) = scale["spec"]["replicas"].as_i64().filter(|r| *r >= 0) else {
            return Err(ApiError::invalid(
                info,
                name,
                vec![niwa_api::Cause::invalid(
                    "spec.replicas",
                    &scale["spec"]["replicas"].to_string(),
                    "must be greater than or equal to 0",
                )],
            ));
        };
        let mut obj = self.get(info, namespace, name).await?;
        let wanted = object::str_field(scale, "resourceVersion");
        if !wanted.is_empty() && wanted != object::str_field(&obj, "resourceVersion") {
            return Err(ApiError::stale(info, name));
        }
        obj["spec"]["replicas"] = json!(replicas);
        let updated = self
            .update(info, namespace, name, obj, UpdateScope::Main, false)
            .await?;
        Ok(scale_of(&updated))
    }
}

fn scale_of(obj: &Value) -> Value {
    let selector = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            let mut parts: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect();
            parts.sort();
            parts.join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": object::name(obj),
            "namespace": object::namespace(obj),
            "uid": object::uid(obj),
            "resourceVersion": object::str_field(obj, "resourceVersion"),
            "creationTimestamp": object::str_field(obj, "creationTimestamp"),
        },
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}
