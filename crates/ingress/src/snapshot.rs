//! One consistent view for request handling: the route table, every backend resolved to its
//! endpoints (with a round-robin cursor), and the TLS certificates. Rebuilt after changes and
//! swapped in whole, so a request never sees half an update.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use rustls::sign::CertifiedKey;

use crate::backends::{Unavailable, resolve};
use crate::routing::{Backend, ObjectKey, RouteTable};
use crate::tls::certified_key;

/// The endpoints of one backend.
#[derive(Debug)]
pub struct Target {
    pub endpoints: Vec<SocketAddr>,
    next: AtomicUsize,
}

impl Target {
    /// The next endpoint, round robin.
    pub fn pick(&self) -> Option<SocketAddr> {
        if self.endpoints.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.endpoints.len();
        Some(self.endpoints[i])
    }
}

/// Everything a request needs.
#[derive(Default)]
pub struct Snapshot {
    pub routes: RouteTable,
    targets: HashMap<String, Result<Arc<Target>, Unavailable>>,
    pub certs: HashMap<ObjectKey, Arc<CertifiedKey>>,
    /// Secrets that are missing or do not hold a usable certificate, with the reason.
    pub cert_problems: Vec<String>,
}

fn backend_id(backend: &Backend) -> String {
    format!("{backend:?}")
}

/// What the snapshot is built from (the watch caches).
pub struct Inputs<'a> {
    pub ingresses: Vec<&'a Ingress>,
    pub services: &'a dyn Fn(&ObjectKey) -> Option<Arc<Service>>,
    pub slices: &'a dyn Fn(&ObjectKey) -> Vec<Arc<EndpointSlice>>,
    pub secrets: &'a dyn Fn(&ObjectKey) -> Option<Arc<Secret>>,
}

impl Snapshot {
    pub fn build(inputs: Inputs<'_>) -> Snapshot {
        let routes = RouteTable::build(inputs.ingresses.iter().copied());
        let mut targets = HashMap::new();
        let backends = routes
            .all_backends()
            .map(|b| (backend_id(b), b.clone()))
            .collect::<Vec<_>>();
        for (id, backend) in backends {
            if targets.contains_key(&id) {
                continue;
            }
            let resolved = match &backend {
                Backend::Service { service, .. } => {
                    let svc = (inputs.services)(service);
                    let slices = (inputs.slices)(service);
                    resolve(&backend, svc.as_deref(), slices.iter().map(|s| s.as_ref()))
                }
                Backend::Invalid { .. } => resolve(&backend, None, []),
            };
            let target = resolved.map(|endpoints| {
                Arc::new(Target {
                    endpoints,
                    next: AtomicUsize::new(0),
                })
            });
            targets.insert(id, target);
        }
        let mut certs = HashMap::new();
        let mut cert_problems = Vec::new();
        for key in routes.tls_secrets() {
            match (inputs.secrets)(key) {
                None => cert_problems.push(format!("TLS secret {key} does not exist")),
                Some(secret) => match certified_key(&secret) {
                    Ok(ck) => {
                        certs.insert(key.clone(), Arc::new(ck));
                    }
                    Err(e) => cert_problems.push(format!("TLS secret {key}: {e}")),
                },
            }
        }
        Snapshot {
            routes,
            targets,
            certs,
            cert_problems,
        }
    }

    /// Carries round-robin cursors over from the previous snapshot, so that frequent rebuilds do
    /// not send every first request to the first endpoint.
    pub fn inherit_cursors(&self, previous: &Snapshot) {
        for (id, target) in &self.targets {
            if let (Ok(new), Some(Ok(old))) = (target, previous.targets.get(id)) {
                new.next
                    .store(old.next.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
    }

    /// Where a request for `backend` goes.
    pub fn target(&self, backend: &Backend) -> Result<Arc<Target>, Unavailable> {
        match self.targets.get(&backend_id(backend)) {
            Some(t) => t.clone(),
            None => resolve(backend, None, []).map(|endpoints| {
                Arc::new(Target {
                    endpoints,
                    next: AtomicUsize::new(0),
                })
            }),
        }
    }

    /// The certificate for the TLS server name `sni`.
    pub fn cert_for(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let secret = self.routes.tls_secret(sni)?;
        self.certs.get(secret).cloned()
    }
}
