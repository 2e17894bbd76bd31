//! What the cluster needs in the apiserver before the rest of it starts — the objects a kubeadm
//! cluster gets from its addons: the `kube-dns` Service at the documented address, pointing at
//! niwa-dns; and, as k3s ships, the default `local-path` StorageClass (served by the
//! controller-manager's built-in provisioner), so a tutorial's PersistentVolumeClaim or
//! StatefulSet `volumeClaimTemplates` just work.

use std::net::IpAddr;
use std::time::Duration;

use niwa_client::k8s::api::storage::v1::StorageClass;
use niwa_client::k8s::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::plan::ClusterPlan;

/// How long the apiserver gets to accept the bootstrap objects after it first answers /healthz.
const ATTEMPTS: u32 = 50;
const RETRY: Duration = Duration::from_millis(200);

/// The default StorageClass's name, provisioner and annotation (k3s' local-path).
pub const LOCAL_PATH_CLASS: &str = "local-path";
pub const LOCAL_PATH_PROVISIONER: &str = "rancher.io/local-path";
const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("cannot create the kube-dns Service at {ip}: {message}")]
    KubeDns { ip: IpAddr, message: String },
    #[error("cannot create the local-path StorageClass: {0}")]
    StorageClass(String),
}

/// The `local-path` StorageClass, marked default: WaitForFirstConsumer (a local volume is made on
/// the node of the claim's first pod) and reclaim policy Delete, as k3s defines it.
pub fn local_path_class() -> StorageClass {
    StorageClass {
        metadata: ObjectMeta {
            name: Some(LOCAL_PATH_CLASS.into()),
            annotations: Some([(DEFAULT_CLASS_ANNOTATION.to_string(), "true".to_string())].into()),
            ..Default::default()
        },
        provisioner: LOCAL_PATH_PROVISIONER.into(),
        reclaim_policy: Some("Delete".into()),
        volume_binding_mode: Some("WaitForFirstConsumer".into()),
        ..Default::default()
    }
}

/// Creates the local-path StorageClass unless one of that name exists (a user's edit or
/// replacement is left alone, as k3s leaves a modified addon when told to).
pub async fn ensure_local_path_class(
    client: &niwa_client::Client,
) -> Result<(), niwa_client::Error> {
    let api = client.cluster::<StorageClass>();
    if api.get_opt(LOCAL_PATH_CLASS).await?.is_some() {
        return Ok(());
    }
    match api.create(&local_path_class()).await {
        Ok(_) => {
            tracing::info!(class = LOCAL_PATH_CLASS, "created the default StorageClass");
            Ok(())
        }
        Err(e) if e.is_already_exists() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Runs once the apiserver is healthy. Idempotent: a resumed cluster keeps its objects.
pub async fn after_apiserver(plan: &ClusterPlan) -> Result<(), BootstrapError> {
    let ip = IpAddr::V4(plan.network.dns_service_ip);
    let url = plan.network.apiserver_url();
    let dns_error = |message: String| BootstrapError::KubeDns { ip, message };
    let mut last = dns_error(String::new());
    for _ in 0..ATTEMPTS {
        match niwa_client::Client::connect(&url).await {
            Ok(client) => {
                match niwa_dns::ensure_kube_dns_service(&client, ip, Some(plan.dns_endpoint()))
                    .await
                {
                    Ok(_) => match ensure_local_path_class(&client).await {
                        Ok(()) => return Ok(()),
                        Err(e) => last = BootstrapError::StorageClass(e.to_string()),
                    },
                    Err(e) => last = dns_error(e.to_string()),
                }
            }
            Err(e) => last = dns_error(e.to_string()),
        }
        tokio::time::sleep(RETRY).await;
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_path_class_is_k3s_default() {
        let v = serde_json::to_value(local_path_class()).unwrap_or_default();
        assert_eq!(
            v,
            serde_json::json!({
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {"name": "local-path",
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                "provisioner": "rancher.io/local-path",
                "reclaimPolicy": "Delete",
                "volumeBindingMode": "WaitForFirstConsumer"
            })
        );
    }
}
