//! The generic registry: Kubernetes object semantics for every resource of the registry, shared by
//! the gRPC API (and later the REST API). Requests arrive as JSON objects and leave as JSON objects;
//! errors are [`ApiError`]s (Kubernetes `Status`).
//!
//! * `write.rs` — create, update, status update: server-set metadata, validation, concurrency.
//! * `admission.rs` — admission plugins that read other objects (DefaultStorageClass).
//! * `lifecycle.rs` — NamespaceLifecycle admission, answered from the namespaces' watch cache.
//! * `delete.rs` — deletion with preconditions, finalizers, graceful pod deletion.
//! * `read.rs` — get and list with selectors, limit/continue and resourceVersion semantics.
//! * `watch.rs` — watch streams with initial events, selector transitions and bookmarks.

mod admission;
mod commit;
mod delete;
mod lifecycle;
mod patch;
mod read;
mod subresources;
mod watch;
mod write;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use niwa_api::{ApiError, Reason, Registry, ResourceInfo};
use serde_json::Value;

use crate::cache::Caches;
use crate::net::{Ipv4Net, PortRange};
use crate::server::{DEFAULT_NODE_PORT_RANGE, DEFAULT_SERVICE_CIDR};
use crate::services::{self, ServiceAllocator};
use crate::storage::{Storage, StorageError};

pub use delete::DeleteOptions;
pub use patch::{
    APPLY_PATCH, JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, json_patch, merge_patch,
};
pub use read::{Filter, ListOptions, ObjectList};
pub use watch::{EventStream, WatchEvent, WatchOptions};
pub use write::{UpdateScope, WriteOptions};

/// The namespaces every cluster has from the start.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

#[derive(Debug, Clone)]
pub struct Rest {
    storage: Storage,
    caches: Arc<Caches>,
    services: Arc<ServiceAllocator>,
    /// Where clients reach this apiserver (for the `kubernetes` Service); none in tests that
    /// build a bare `Rest`.
    advertise: Option<SocketAddr>,
    /// The revision of this apiserver's last namespace deletion (see `lifecycle.rs`).
    namespace_fence: Arc<AtomicI64>,
}

impl From<StorageError> for ApiError {
    fn from(err: StorageError) -> ApiError {
        match err {
            StorageError::Compacted(_) => {
                ApiError::expired("The resourceVersion for the provided list is too old.")
            }
            StorageError::Unavailable(msg) => ApiError::new(
                Reason::ServiceUnavailable,
                format!("the store is unavailable: {msg}"),
            ),
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// Resolves the `(group, version, resource)` of a request.
pub fn resolve(
    group: &str,
    version: &str,
    resource: &str,
) -> Result<&'static ResourceInfo, ApiError> {
    Registry
        .by_resource(group, version, resource)
        .ok_or_else(|| {
            ApiError::new(
                Reason::NotFound,
                "the server could not find the requested resource",
            )
        })
}

impl Rest {
    pub fn new(storage: Storage, caches: Arc<Caches>) -> Rest {
        Rest {
            storage,
            caches,
            services: Arc::new(ServiceAllocator::new(
                DEFAULT_SERVICE_CIDR,
                DEFAULT_NODE_PORT_RANGE,
            )),
            advertise: None,
            namespace_fence: Arc::new(AtomicI64::new(0)),
        }
    }

    /// Service addresses from `cidr` and `node_ports`; `advertise` is this apiserver's address,
    /// which the `kubernetes` Service and its Endpoints point at.
    pub fn with_services(
        mut self,
        cidr: Ipv4Net,
        node_ports: PortRange,
        advertise: SocketAddr,
    ) -> Rest {
        self.services = Arc::new(ServiceAllocator::new(cidr, node_ports));
        self.advertise = Some(advertise);
        self
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Creates the system namespaces that do not exist yet, rebuilds the Service allocators
    /// from the store, and keeps the `kubernetes` Service and its endpoints current.
    pub async fn bootstrap(&self) -> Result<(), ApiError> {
        self.bootstrap_namespaces().await?;
        self.services.rebuild(&self.storage).await?;
        if let Some(addr) = self.advertise {
            self.bootstrap_kubernetes_service(addr).await?;
        }
        Ok(())
    }

    async fn bootstrap_namespaces(&self) -> Result<(), ApiError> {
        let namespaces = resolve("", "v1", "namespaces")?;
        for ns in SYSTEM_NAMESPACES {
            let body = serde_json::json!({
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}
            });
            match self.create(namespaces, "", body, false).await {
                Ok(_) => tracing::info!(namespace = ns, "created system namespace"),
                Err(e) if e.reason == Reason::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The `kubernetes` Service (first IP of the range, 443 → this apiserver), its Endpoints and
    /// EndpointSlice: created when missing, their ports corrected when the apiserver moved.
    async fn bootstrap_kubernetes_service(&self, addr: SocketAddr) -> Result<(), ApiError> {
        let first = self.services.first_ip();
        let wanted = [
            (
                resolve("", "v1", "services")?,
                services::kubernetes_service(first, addr),
            ),
            (
                resolve("", "v1", "endpoints")?,
                services::kubernetes_endpoints(addr),
            ),
            (
                resolve("discovery.k8s.io", "v1", "endpointslices")?,
                services::kubernetes_endpoint_slice(addr),
            ),
        ];
        for (info, body) in wanted {
            match self.get(info, "default", "kubernetes").await {
                Err(e) if e.reason == Reason::NotFound => {
                    self.create(info, "default", body, false).await?;
                    tracing::info!(
                        resource = info.plural,
                        "created the kubernetes {}",
                        info.kind
                    );
                }
                Err(e) => return Err(e),
                Ok(current) => {
                    let stale = match info.kind {
                        "Service" => {
                            let port = &current["spec"]["ports"][0];
                            port["port"] != 443 || port["targetPort"] != addr.port()
                        }
                        "Endpoints" => current["subsets"] != body["subsets"],
                        _ => {
                            current["endpoints"] != body["endpoints"]
                                || current["ports"] != body["ports"]
                        }
                    };
                    if stale {
                        let mut next = current.clone();
                        for k in ["spec", "subsets", "endpoints", "ports"] {
                            if let Some(v) = body.get(k) {
                                next[k] = v.clone();
                            }
                        }
                        if info.kind == "Service" {
                            next["spec"]["clusterIP"] = current["spec"]["clusterIP"].clone();
                            next["spec"]["clusterIPs"] = current["spec"]["clusterIPs"].clone();
                        }
                        self.update(
                            info,
                            "default",
                            "kubernetes",
                            next,
                            UpdateScope::Main,
                            false,
                        )
                        .await?;
                        tracing::info!(
                            resource = info.plural,
                            "updated the kubernetes {}",
                            info.kind
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// The store key of an object, checking the request's namespace fits the resource's scope.
    fn key(info: &ResourceInfo, namespace: &str, name: &str) -> Result<String, ApiError> {
        if info.namespaced && namespace.is_empty() {
            return Err(ApiError::bad_request(format!(
                "a namespace is required for {}",
                info.plural
            )));
        }
        if name.is_empty() {
            return Err(ApiError::bad_request("resource name may not be empty"));
        }
        Ok(info.store_key(namespace, name))
    }
}

/// Rejects bodies that are not JSON objects, and objects of another kind than the resource.
fn check_body(info: &ResourceInfo, body: &mut Value) -> Result<(), ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    let api_version = info.api_version();
    let kind = body["kind"].as_str().unwrap_or_default();
    let version = body["apiVersion"].as_str().unwrap_or_default();
    if (!kind.is_empty() && kind != info.kind) || (!version.is_empty() && version != api_version) {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({version}) does not match the expected API version \
             ({api_version}) or the kind ({kind}) is not {}",
            info.kind
        )));
    }
    body["kind"] = Value::String(info.kind.into());
    body["apiVersion"] = Value::String(api_version);
    Ok(())
}
