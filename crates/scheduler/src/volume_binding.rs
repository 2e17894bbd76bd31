//! The PreBind half of kube-scheduler's VolumeBinding plugin, for the claims of a pod about to be
//! bound: a claim of a `WaitForFirstConsumer` class gets `volume.kubernetes.io/selected-node` set
//! to the chosen node (the provisioner makes its volume there), and binding waits until every
//! claim is bound (kube waits up to its bind timeout, 600 s; niwa [`BIND_TIMEOUT`]). A missing
//! claim, or an unbound claim of an `Immediate` class (or none), fails the attempt with kube's
//! message and the pod is retried with backoff.
//!
//! The PreFilter and Filter halves (missing claims, a bound volume's node affinity) are the IO-free
//! plugin [`crate::plugins::volume_binding`], fed by the claim and volume informers.
//!
//! Decisions in [`claim_names`] and [`next_step`] are IO-free; [`pre_bind`] is the shell.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use niwa_client::{Client, Patch};
use serde_json::json;

/// The annotation the scheduler sets on a WaitForFirstConsumer claim.
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// How long binding waits for the claims of a pod to be bound.
pub const BIND_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);

/// The claims a pod's volumes name, in volume order.
pub fn claim_names(pod: &Pod) -> Vec<String> {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.clone())
        .collect()
}

/// What binding does next about one claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The claim is bound: nothing to wait for.
    Bound,
    /// Set the selected-node annotation, then wait.
    SelectNode,
    /// Wait for the provisioner and the binder.
    Wait,
    /// The pod cannot be bound now (kube's message).
    Fail(String),
}

/// The step for `claim` (`None`: it does not exist) of class `class`, for a pod going to `node`.
pub fn next_step(
    name: &str,
    claim: Option<&PersistentVolumeClaim>,
    class: Option<&StorageClass>,
    node: &str,
) -> Step {
    let Some(claim) = claim else {
        return Step::Fail(format!("persistentvolumeclaim \"{name}\" not found"));
    };
    if claim.metadata.deletion_timestamp.is_some() {
        return Step::Fail(format!("persistentvolumeclaim \"{name}\" is being deleted"));
    }
    let bound = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .is_some_and(|v| !v.is_empty());
    if bound {
        return Step::Bound;
    }
    let delayed =
        class.is_some_and(|c| c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"));
    if !delayed {
        return Step::Fail("pod has unbound immediate PersistentVolumeClaims".into());
    }
    let selected = claim
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SELECTED_NODE));
    if selected.map(String::as_str) == Some(node) {
        Step::Wait
    } else {
        Step::SelectNode
    }
}

/// Prepares and waits for the pod's claims before it is bound to `node`; the error is the
/// FailedScheduling message.
pub async fn pre_bind(client: &Client, pod: &Pod, node: &str) -> Result<(), String> {
    let names = claim_names(pod);
    if names.is_empty() {
        return Ok(());
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let claims = client.namespaced::<PersistentVolumeClaim>(ns);
    let classes = client.cluster::<StorageClass>();
    let deadline = Instant::now() + BIND_TIMEOUT;
    for name in names {
        loop {
            let claim = claims.get_opt(&name).await.map_err(|e| e.to_string())?;
            let class_name = claim
                .as_ref()
                .and_then(|c| c.spec.as_ref())
                .and_then(|s| s.storage_class_name.clone())
                .filter(|c| !c.is_empty());
            let class = match class_name {
                Some(c) => classes.get_opt(&c).await.map_err(|e| e.to_string())?,
                None => None,
            };
            match next_step(&name, claim.as_ref(), class.as_ref(), node) {
                Step::Bound => break,
                Step::Fail(msg) => return Err(msg),
                Step::SelectNode => {
                    let patch = json!({"metadata": {"annotations": {SELECTED_NODE: node}}});
                    claims
                        .patch(&name, &Patch::Merge(patch))
                        .await
                        .map_err(|e| e.to_string())?;
                    tracing::debug!(claim = %name, node, "selected node for the claim");
                }
                Step::Wait => {}
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "binding volumes: timed out waiting for persistentvolumeclaim \"{name}\" to be bound"
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(v: serde_json::Value) -> PersistentVolumeClaim {
        serde_json::from_value(v).unwrap_or_default()
    }

    fn class(mode: &str) -> StorageClass {
        serde_json::from_value(json!({"metadata": {"name": "c"}, "provisioner": "p.io/x",
            "volumeBindingMode": mode}))
        .unwrap_or_default()
    }

    #[test]
    fn claims_of_a_pod() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "web-0"},
            "spec": {"containers": [], "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}},
                {"name": "tmp", "emptyDir": {}},
                {"name": "logs", "persistentVolumeClaim": {"claimName": "logs"}}]}}))
        .unwrap_or_default();
        assert_eq!(claim_names(&pod), ["data-web-0", "logs"]);
    }

    #[test]
    fn steps_as_kube_volume_binding() {
        let wffc = class("WaitForFirstConsumer");
        let immediate = class("Immediate");
        let pending = claim(json!({"metadata": {"name": "d"}, "spec": {"storageClassName": "c"}}));
        assert_eq!(
            next_step("d", None, None, "n1"),
            Step::Fail("persistentvolumeclaim \"d\" not found".into())
        );
        assert_eq!(
            next_step("d", Some(&pending), Some(&wffc), "n1"),
            Step::SelectNode
        );
        assert_eq!(
            next_step("d", Some(&pending), Some(&immediate), "n1"),
            Step::Fail("pod has unbound immediate PersistentVolumeClaims".into())
        );
        assert_eq!(
            next_step("d", Some(&pending), None, "n1"),
            Step::Fail("pod has unbound immediate PersistentVolumeClaims".into())
        );
        let selected = claim(json!({"metadata": {"name": "d",
            "annotations": {SELECTED_NODE: "n1"}}, "spec": {"storageClassName": "c"}}));
        assert_eq!(
            next_step("d", Some(&selected), Some(&wffc), "n1"),
            Step::Wait
        );
        assert_eq!(
            next_step("d", Some(&selected), Some(&wffc), "n2"),
            Step::SelectNode
        );
        let bound = claim(json!({"metadata": {"name": "d"}, "spec": {"volumeName": "pv1"}}));
        assert_eq!(
            next_step("d", Some(&bound), Some(&immediate), "n1"),
            Step::Bound
        );
    }
}
