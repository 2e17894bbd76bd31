//! An Ingress backend → the endpoints that serve it (IO-free). niwa-ingress sends requests
//! straight to ready endpoints, as ingress-nginx does, not through the ClusterIP: balancing and
//! retries stay in the ingress, and endpoint changes apply at once.

use std::net::SocketAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use niwa_proxy::model::Protocol;
use niwa_proxy::model::endpoints::{endpoints_for_port, usable};

use crate::routing::{Backend, ObjectKey, PortRef};

/// Why a backend has nowhere to send a request (answered 503 with this text).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("service {0} does not exist")]
    NoService(ObjectKey),
    #[error("service {service} has no port {port}")]
    NoPort { service: ObjectKey, port: String },
    #[error("service {0} has no ready endpoints")]
    NoEndpoints(ObjectKey),
    #[error("service {0} is of type ExternalName, which niwa-ingress does not proxy")]
    ExternalName(ObjectKey),
    #[error("{0}")]
    Invalid(String),
}

/// The ready endpoints of `backend` (sorted), given its Service and that Service's slices.
pub fn resolve<'a>(
    backend: &Backend,
    service: Option<&Service>,
    slices: impl IntoIterator<Item = &'a EndpointSlice> + Clone,
) -> Result<Vec<SocketAddr>, Unavailable> {
    let (key, port) = match backend {
        Backend::Service { service, port } => (service, port),
        Backend::Invalid { reason } => return Err(Unavailable::Invalid(reason.clone())),
    };
    let service = service.ok_or_else(|| Unavailable::NoService(key.clone()))?;
    let spec = service.spec.clone().unwrap_or_default();
    if spec.type_.as_deref() == Some("ExternalName") {
        return Err(Unavailable::ExternalName(key.clone()));
    }
    let service_port = spec.ports.iter().flatten().find(|p| match port {
        PortRef::Number(n) => p.port == i32::from(*n),
        PortRef::Name(name) => p.name.as_deref() == Some(name.as_str()),
    });
    let Some(service_port) = service_port else {
        let port = match port {
            PortRef::Number(n) => n.to_string(),
            PortRef::Name(name) => name.clone(),
        };
        return Err(Unavailable::NoPort {
            service: key.clone(),
            port,
        });
    };
    let port_name = service_port.name.clone().unwrap_or_default();
    let endpoints = endpoints_for_port(slices.clone(), &port_name, Protocol::Tcp);
    let mut ready = usable(&endpoints, None, true);
    ready.extend(usable(&endpoints, None, false));
    if ready.is_empty() {
        return Err(Unavailable::NoEndpoints(key.clone()));
    }
    Ok(ready)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> ObjectKey {
        ObjectKey {
            namespace: "ns".into(),
            name: "web".into(),
        }
    }

    #[test]
    fn ports_by_number_and_name_and_the_503_reasons() {
        let svc: Service =
            serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "ns"},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}))
            .expect("svc");
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "ns", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": ["127.244.0.2"]}, {"addresses": ["127.244.0.3"],
                           "conditions": {"ready": false}}]}))
        .expect("slice");
        let by_number = Backend::Service {
            service: key(),
            port: PortRef::Number(80),
        };
        let by_name = Backend::Service {
            service: key(),
            port: PortRef::Name("http".into()),
        };
        let want: Vec<SocketAddr> = vec!["127.244.0.2:8080".parse().expect("addr")];
        assert_eq!(resolve(&by_number, Some(&svc), [&slice]), Ok(want.clone()));
        assert_eq!(resolve(&by_name, Some(&svc), [&slice]), Ok(want));
        assert_eq!(
            resolve(&by_name, None, [&slice]),
            Err(Unavailable::NoService(key()))
        );
        assert_eq!(
            resolve(&by_name, Some(&svc), []),
            Err(Unavailable::NoEndpoints(key()))
        );
        let wrong = Backend::Service {
            service: key(),
            port: PortRef::Number(81),
        };
        assert!(matches!(
            resolve(&wrong, Some(&svc), [&slice]),
            Err(Unavailable::NoPort { .. })
        ));
    }
}
