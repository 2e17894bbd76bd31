//! The generic registry: Kubernetes object semantics for every resource of the registry, shared by
//! the gRPC API (and later the REST API). Requests arrive as JSON objects and leave as JSON objects;
//! errors are [`ApiError`]s (Kubernetes `Status`).
//!
//! * `write.rs` — create, update, status update: server-set metadata, validation, concurrency.
//! * `delete.rs` — deletion with preconditions, finalizers, graceful pod deletion.
//! * `read.rs` — get and list with selectors, limit/continue and resourceVersion semantics.
//! * `watch.rs` — watch streams with initial events, selector transitions and bookmarks.

mod delete;
mod patch;
mod read;
mod subresources;
mod watch;
mod write;

use std::sync::Arc;

use niwa_api::{ApiError, Reason, Registry, ResourceInfo};
use serde_json::Value;

use crate::cache::Caches;
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
        Rest { storage, caches }
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Creates the system namespaces that do not exist yet.
    pub async fn bootstrap(&self) -> Result<(), ApiError> {
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
