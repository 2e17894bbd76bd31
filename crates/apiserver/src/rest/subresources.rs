//! The `binding` (pods) and `scale` (deployments, replicasets, statefulsets) subresources.

use niwa_api::{ApiError, ResourceInfo};
use serde_json::{Value, json};

use super::Rest;
use super::write::UpdateScope;
use crate::object;
use crate::storage::StorageError;

/// Binding attempts before giving up with a conflict: each retry follows a concurrent write to the
/// pod (a status update racing the bind), re-read from the store.
const BIND_ATTEMPTS: usize = 8;

impl Rest {
    /// `POST pods/{name}/binding`: assigns the pod to `target.name`, once.
    ///
    /// As kube-apiserver's `BindingREST` through `Cacher.GuaranteedUpdate`: the first attempt starts
    /// from the watch cache's copy of the pod, so a bind is one store transaction (compare on the
    /// copy's mod revision). A stale copy shows up as a failed compare, or as a copy the binding
    /// is refused on; either way the decision is taken again on a fresh read from the store, so
    /// only the store's current pod can make a bind fail (409 when bound or being deleted, 404
    /// when gone).
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
        let binding_name = object::name(binding);
        if !binding_name.is_empty() && binding_name != name {
            return Err(ApiError::bad_request(
                "name in URL does not match name in Binding object",
            ));
        }
        let key = Self::key(pods, namespace, name)?;
        let mut cached = self
            .caches
            .peek(pods)
            .and_then(|cache| cache.get(&key))
            .map(|c| (c.value(), c.revision));
        for _ in 0..BIND_ATTEMPTS {
            let (pod, revision, fresh) = match cached.take() {
                Some((mut pod, revision)) => {
                    // The cache's encoding carries its resourceVersion; the store's does not.
                    object::meta_mut(&mut pod).remove("resourceVersion");
                    (pod, revision, false)
                }
                None => match self.storage.get(&key, 0).await? {
                    Some(stored) => (stored.object, stored.revision, true),
                    None => return Err(ApiError::not_found(pods, name)),
                },
            };
            let pod = match assign(pod, binding, node, &object::now()) {
                Ok(pod) => pod,
                Err(_) if !fresh => continue,
                Err(Refusal::Conflict(msg)) => return Err(ApiError::conflict(pods, name, &msg)),
                Err(Refusal::Internal(msg)) => return Err(ApiError::internal(msg)),
            };
            match self.storage.update(&key, &pod, revision).await {
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

/// Why a pod cannot take a binding (the messages are kube-apiserver's).
#[derive(Debug, PartialEq)]
enum Refusal {
    Conflict(String),
    Internal(String),
}

/// The pod bound to `node` as `binding` asks (kube's `setPodHostAndAnnotations`): spec.nodeName,
/// the Binding's annotations, and PodScheduled=True — or why it cannot be. `now` stamps the
/// condition's transition.
fn assign(mut pod: Value, binding: &Value, node: &str, now: &str) -> Result<Value, Refusal> {
    let name = object::name(&pod).to_string();
    let wanted_uid = object::uid(binding);
    if !wanted_uid.is_empty() && wanted_uid != object::uid(&pod) {
        return Err(Refusal::Conflict(format!(
            "Precondition failed: UID in precondition: {wanted_uid}, UID in object meta: {}",
            object::uid(&pod)
        )));
    }
    if object::is_deleting(&pod) {
        return Err(Refusal::Conflict(format!(
            "pod {name} is being deleted, cannot be assigned to a host"
        )));
    }
    if let Some(current) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
        return Err(Refusal::Conflict(format!(
            "pod {name} is already assigned to node {current:?}"
        )));
    }
    if pod["spec"]["schedulingGates"]
        .as_array()
        .is_some_and(|g| !g.is_empty())
    {
        return Err(Refusal::Conflict(format!(
            "pod {name} has non-empty .spec.schedulingGates"
        )));
    }
    if !pod["spec"].is_object() {
        return Err(Refusal::Internal(format!("stored pod {name} has no spec")));
    }
    pod["spec"]["nodeName"] = json!(node);
    if let Some(annotations) = binding["metadata"]["annotations"]
        .as_object()
        .filter(|a| !a.is_empty())
    {
        let md = object::meta_mut(&mut pod);
        if !md.get("annotations").is_some_and(Value::is_object) {
            md.insert("annotations".into(), json!({}));
        }
        if let Some(Value::Object(mine)) = md.get_mut("annotations") {
            for (k, v) in annotations {
                mine.insert(k.clone(), v.clone());
            }
        }
    }
    if !pod["status"].is_object() {
        pod["status"] = json!({});
    }
    // kube's UpdatePodCondition: replaced in place, its transition time kept unless the status
    // changes (an Unschedulable PodScheduled=False becomes True now).
    let mut scheduled = json!({"type": "PodScheduled", "status": "True",
        "lastTransitionTime": now, "lastProbeTime": null});
    if !pod["status"]["conditions"].is_array() {
        pod["status"]["conditions"] = json!([]);
    }
    if let Some(conditions) = pod["status"]["conditions"].as_array_mut() {
        match conditions.iter().position(|c| c["type"] == "PodScheduled") {
            Some(i) => {
                if conditions[i]["status"] == "True" {
                    scheduled["lastTransitionTime"] = conditions[i]["lastTransitionTime"].clone();
                }
                conditions[i] = scheduled;
            }
            None => conditions.push(scheduled),
        }
    }
    Ok(pod)
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

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-11-29T17:00:00Z";

    fn pending() -> Value {
        json!({"metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "lastTransitionTime": "2026-11-29T16:00:00Z"},
                {"type": "Other", "status": "True"}]}})
    }

    fn binding(uid: &str) -> Value {
        json!({"metadata": {"name": "p", "uid": uid, "annotations": {"a": "b"}},
            "target": {"kind": "Node", "name": "n1"}})
    }

    #[test]
    fn a_pending_pod_takes_the_node_the_condition_and_the_annotations() {
        let Ok(pod) = assign(pending(), &binding(""), "n1", NOW) else {
            panic!("refused");
        };
        assert_eq!(pod["spec"]["nodeName"], "n1");
        assert_eq!(pod["metadata"]["annotations"]["a"], "b");
        // Replaced in place; status False -> True is a transition.
        assert_eq!(
            pod["status"]["conditions"],
            json!([{"type": "PodScheduled", "status": "True", "lastTransitionTime": NOW,
                    "lastProbeTime": null}, {"type": "Other", "status": "True"}])
        );
        let mut bare = pending();
        bare["status"] = json!({});
        let Ok(pod) = assign(bare, &binding("u1"), "n1", NOW) else {
            panic!("refused");
        };
        assert_eq!(pod["status"]["conditions"][0]["type"], "PodScheduled");
    }

    #[test]
    fn refusals_are_kubes() {
        let mut bound = pending();
        bound["spec"]["nodeName"] = json!("n0");
        assert_eq!(
            assign(bound, &binding(""), "n1", NOW).err(),
            Some(Refusal::Conflict(
                "pod p is already assigned to node \"n0\"".into()
            ))
        );
        let mut deleting = pending();
        deleting["metadata"]["deletionTimestamp"] = json!(NOW);
        assert_eq!(
            assign(deleting, &binding(""), "n1", NOW).err(),
            Some(Refusal::Conflict(
                "pod p is being deleted, cannot be assigned to a host".into()
            ))
        );
        let mut gated = pending();
        gated["spec"]["schedulingGates"] = json!([{"name": "g"}]);
        assert_eq!(
            assign(gated, &binding(""), "n1", NOW).err(),
            Some(Refusal::Conflict(
                "pod p has non-empty .spec.schedulingGates".into()
            ))
        );
        assert_eq!(
            assign(pending(), &binding("u2"), "n1", NOW).err(),
            Some(Refusal::Conflict(
                "Precondition failed: UID in precondition: u2, UID in object meta: u1".into()
            ))
        );
    }
}
