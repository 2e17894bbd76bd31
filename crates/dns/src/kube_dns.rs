//! The `kube-dns` Service in `kube-system`: the address pods use as their nameserver. Whoever
//! brings the cluster up (`niwa up`) calls [`ensure_kube_dns_service`].
//!
//! niwa-dns runs as a daemon, not as a pod, so nothing selects it. Two ways to front it:
//! * niwa-dns listens on the Service's cluster IP itself (`--listen 127.96.0.10:53`): no proxy in
//!   the path. Pass `endpoint: None`.
//! * niwa-dns listens elsewhere; the Service gets an EndpointSlice pointing there
//!   (`endpoint: Some(addr)`), and the Service proxy forwards `127.96.0.10:53` to it.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::core::v1::{Namespace, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use niwa_client::Client;

pub const NAMESPACE: &str = "kube-system";
pub const SERVICE_NAME: &str = "kube-dns";
/// The default cluster IP of `kube-dns` (ARCHITECTURE.md §5).
pub const DEFAULT_CLUSTER_IP: &str = "127.96.0.10";
/// The EndpointSlice written for an explicit endpoint.
pub const SLICE_NAME: &str = "kube-dns-niwa";
/// Port of CoreDNS's metrics endpoint, kept on the Service for tools that expect it.
const METRICS_PORT: i32 = 9153;

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("k8s-app".to_string(), "kube-dns".to_string()),
        (
            "kubernetes.io/cluster-service".to_string(),
            "true".to_string(),
        ),
        ("kubernetes.io/name".to_string(), "niwa-dns".to_string()),
    ])
}

fn port(name: &str, protocol: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_string()),
        protocol: Some(protocol.to_string()),
        port,
        ..Default::default()
    }
}

/// The Service as CoreDNS's manifest defines it (ports `dns`/UDP, `dns-tcp`/TCP, `metrics`).
pub fn kube_dns_service(cluster_ip: IpAddr, selector: bool) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(SERVICE_NAME.to_string()),
            namespace: Some(NAMESPACE.to_string()),
            labels: Some(labels()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some(cluster_ip.to_string()),
            cluster_ips: Some(vec![cluster_ip.to_string()]),
            ports: Some(vec![
                port("dns", "UDP", 53),
                port("dns-tcp", "TCP", 53),
                port("metrics", "TCP", METRICS_PORT),
            ]),
            selector: selector
                .then(|| BTreeMap::from([("k8s-app".to_string(), "kube-dns".to_string())])),
            type_: Some("ClusterIP".to_string()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The EndpointSlice that points `kube-dns` at a niwa-dns listening on `endpoint`.
pub fn kube_dns_endpoint_slice(endpoint: SocketAddr) -> EndpointSlice {
    let mut slice_labels = BTreeMap::from([
        (
            "kubernetes.io/service-name".to_string(),
            SERVICE_NAME.to_string(),
        ),
        (
            "endpointslice.kubernetes.io/managed-by".to_string(),
            "niwa-dns".to_string(),
        ),
    ]);
    slice_labels.extend(labels());
    let dns_port = i32::from(endpoint.port());
    let endpoint_port = |name: &str, protocol: &str| EndpointPort {
        name: Some(name.to_string()),
        protocol: Some(protocol.to_string()),
        port: Some(dns_port),
        ..Default::default()
    };
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(SLICE_NAME.to_string()),
            namespace: Some(NAMESPACE.to_string()),
            labels: Some(slice_labels),
            ..Default::default()
        },
        address_type: if endpoint.is_ipv4() { "IPv4" } else { "IPv6" }.to_string(),
        endpoints: vec![Endpoint {
            addresses: vec![endpoint.ip().to_string()],
            conditions: Some(EndpointConditions {
                ready: Some(true),
                serving: Some(true),
                terminating: Some(false),
            }),
            ..Default::default()
        }],
        ports: Some(vec![
            endpoint_port("dns", "UDP"),
            endpoint_port("dns-tcp", "TCP"),
        ]),
    }
}

/// Creates `kube-system` and the `kube-dns` Service (and, with `endpoint`, its EndpointSlice)
/// unless they exist. Idempotent: an existing Service is returned unchanged, so a user's edits
/// survive a restart of the cluster.
pub async fn ensure_kube_dns_service(
    client: &Client,
    cluster_ip: IpAddr,
    endpoint: Option<SocketAddr>,
) -> Result<Service, niwa_client::Error> {
    let namespaces = client.cluster::<Namespace>();
    if namespaces.get_opt(NAMESPACE).await?.is_none() {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(NAMESPACE.to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        match namespaces.create(&ns).await {
            Ok(_) => {}
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(e),
        }
    }

    let services = client.namespaced::<Service>(NAMESPACE);
    let service = match services.get_opt(SERVICE_NAME).await? {
        Some(existing) => existing,
        None => match services
            .create(&kube_dns_service(cluster_ip, endpoint.is_none()))
            .await
        {
            Ok(created) => created,
            Err(e) if e.is_already_exists() => services.get(SERVICE_NAME).await?,
            Err(e) => return Err(e),
        },
    };

    if let Some(endpoint) = endpoint {
        let slices = client.namespaced::<EndpointSlice>(NAMESPACE);
        let wanted = kube_dns_endpoint_slice(endpoint);
        match slices.get_opt(SLICE_NAME).await? {
            None => match slices.create(&wanted).await {
                Ok(_) => {}
                Err(e) if e.is_already_exists() => {}
                Err(e) => return Err(e),
            },
            Some(mut existing) => {
                // The address may have changed since the last `niwa up`.
                if existing.endpoints != wanted.endpoints || existing.ports != wanted.ports {
                    existing.endpoints = wanted.endpoints;
                    existing.ports = wanted.ports;
                    slices.replace(&existing).await?;
                }
            }
        }
    }
    Ok(service)
}
