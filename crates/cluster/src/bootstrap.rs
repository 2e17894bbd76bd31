//! What the cluster needs in the apiserver before the rest of it starts — the objects a kubeadm
//! cluster gets from its addons: the `kube-dns` Service at the documented address, pointing at
//! niwa-dns.

use std::net::IpAddr;
use std::time::Duration;

use crate::plan::ClusterPlan;

/// How long the apiserver gets to accept the bootstrap objects after it first answers /healthz.
const ATTEMPTS: u32 = 50;
const RETRY: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("cannot create the kube-dns Service at {ip}: {message}")]
    KubeDns { ip: IpAddr, message: String },
}

/// Runs once the apiserver is healthy. Idempotent: a resumed cluster keeps its objects.
pub async fn after_apiserver(plan: &ClusterPlan) -> Result<(), BootstrapError> {
    let ip = IpAddr::V4(plan.network.dns_service_ip);
    let url = plan.network.apiserver_url();
    let mut last = String::new();
    for _ in 0..ATTEMPTS {
        match niwa_client::Client::connect(&url).await {
            Ok(client) => {
                match niwa_dns::ensure_kube_dns_service(&client, ip, Some(plan.dns_endpoint()))
                    .await
                {
                    Ok(_) => return Ok(()),
                    Err(e) => last = e.to_string(),
                }
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(RETRY).await;
    }
    Err(BootstrapError::KubeDns { ip, message: last })
}
