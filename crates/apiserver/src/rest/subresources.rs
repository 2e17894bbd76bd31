//! The `binding` (pods) and `scale` (deployments, replicasets, statefulsets) subresources.

use niwa_api::{ApiError, Reason, ResourceInfo};
use serde_json::{Value, json};

use super::Rest;
use super::write::UpdateScope;
use crate::object;

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
        for _ in 0..8 {
            let mut pod = self.get(pods, namespace, name).await?;
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
            pod["spec"]["nodeName"] = json!(node);
            let conditions = pod["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut conditions: Vec<Value> = conditions
                .into_iter()
                .filter(|c| c["type"] != "PodScheduled")
                .collect();
            conditions.push(json!({"type": "PodScheduled", "status": "True",
                "lastTransitionTime": object::now(), "lastProbeTime": null}));
            // Binding writes spec and status together, as the Kubernetes binding REST does.
            match self
                .update_whole(pods, namespace, name, pod, conditions)
                .await
            {
                Err(e)
                    if e.reason == Reason::Conflict && !e.message.contains("already assigned") =>
                {
                    continue;
                }
                Err(e) => return Err(e),
                Ok(_) => {
                    return Ok(json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Success", "code": 201}));
                }
            }
        }
        Err(ApiError::stale(pods, name))
    }

    async fn update_whole(
        &self,
        info: &'static ResourceInfo,
        namespace: &str,
        name: &str,
        mut pod: Value,
        conditions: Vec<Value>,
    ) -> Result<Value, ApiError> {
        let updated = self
            .update(info, namespace, name, pod.clone(), UpdateScope::Main, false)
            .await?;
        pod = updated;
        pod["status"]["conditions"] = Value::Array(conditions);
        self.update(info, namespace, name, pod, UpdateScope::Status, false)
            .await
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
