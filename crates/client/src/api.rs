//! [`Api<K>`]: the verbs of one kind, on k8s-openapi types.

use std::marker::PhantomData;
use std::pin::Pin;

use futures::{Stream, StreamExt};
use k8s_openapi::Metadata;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::{Error, Result};
use crate::object::{ObjectList, WatchEvent};
use crate::params::{DeleteParams, ListParams, Patch, WatchParams};
use crate::raw::RawApi;

/// What every object kind the typed API handles implements: the k8s-openapi types do.
pub trait Object:
    k8s_openapi::Resource
    + Metadata<Ty = ObjectMeta>
    + Serialize
    + DeserializeOwned
    + Clone
    + Send
    + Sync
    + std::fmt::Debug
    + 'static
{
}

impl<K> Object for K where
    K: k8s_openapi::Resource
        + Metadata<Ty = ObjectMeta>
        + Serialize
        + DeserializeOwned
        + Clone
        + Send
        + Sync
        + std::fmt::Debug
        + 'static
{
}

/// A boxed stream of typed watch events.
pub type WatchStream<K> = Pin<Box<dyn Stream<Item = Result<WatchEvent<K>>> + Send>>;

/// The verbs of kind `K` in one namespace (or all namespaces / cluster scope). Made by
/// [`crate::Client::namespaced`], [`crate::Client::cluster`] or [`crate::Client::all`]. Cheap to
/// clone.
pub struct Api<K> {
    raw: RawApi,
    _kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Api<K> {
    fn clone(&self) -> Self {
        Api {
            raw: self.raw.clone(),
            _kind: PhantomData,
        }
    }
}

impl<K> std::fmt::Debug for Api<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Api({})", self.raw.describe())
    }
}

impl<K: Object> Api<K> {
    pub(crate) fn new(raw: RawApi) -> Api<K> {
        Api {
            raw,
            _kind: PhantomData,
        }
    }

    /// The namespace this API is bound to (`None`: all namespaces or cluster scope).
    pub fn namespace(&self) -> Option<&str> {
        (!self.raw.namespace.is_empty()).then_some(self.raw.namespace.as_str())
    }

    /// The same kind in another namespace.
    pub fn in_namespace(&self, namespace: &str) -> Api<K> {
        Api::new(self.raw.with_namespace(namespace))
    }

    /// Writes through this API record `manager` as the field manager.
    pub fn field_manager(mut self, manager: &str) -> Api<K> {
        self.raw.params.field_manager = Some(manager.to_string());
        self
    }

    /// Writes through this API are validated and defaulted but not stored.
    pub fn dry_run(mut self) -> Api<K> {
        self.raw.params.dry_run = true;
        self
    }

    fn decode(&self, bytes: &[u8]) -> Result<K> {
        serde_json::from_slice(bytes).map_err(|e| Error::decode(format!("a {}", K::KIND), e))
    }

    fn encode(&self, obj: &K) -> Result<Vec<u8>> {
        serde_json::to_vec(obj).map_err(|e| Error::encode(format!("a {}", K::KIND), e))
    }

    /// The namespace a write of `obj` goes to: the API's, else the object's.
    fn namespace_of<'a>(&'a self, obj: &'a K) -> Option<&'a str> {
        match self.namespace() {
            Some(ns) => Some(ns),
            None => obj.metadata().namespace.as_deref(),
        }
    }

    fn name_of(obj: &K) -> &str {
        obj.metadata().name.as_deref().unwrap_or_default()
    }

    pub async fn get(&self, name: &str) -> Result<K> {
        let bytes = self.raw.get(name, "").await?;
        self.decode(&bytes)
    }

    /// Like [`Api::get`], with `None` for an object that does not exist.
    pub async fn get_opt(&self, name: &str) -> Result<Option<K>> {
        match self.get(name).await {
            Ok(obj) => Ok(Some(obj)),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// One page of objects (every object when `lp.limit` is unset).
    pub async fn list(&self, lp: &ListParams) -> Result<ObjectList<K>> {
        let bytes = self.raw.list(lp).await?;
        ObjectList::from_json(&bytes, K::URL_PATH_SEGMENT)
    }

    /// Every object, following continue tokens when `lp.limit` pages the list. All pages come
    /// from one consistent snapshot.
    pub async fn list_all(&self, lp: &ListParams) -> Result<ObjectList<K>> {
        let mut all = self.list(lp).await?;
        while let Some(token) = all.continue_token.take() {
            let page = self.list(&lp.clone().continue_token(&token)).await?;
            all.items.extend(page.items);
            all.continue_token = page.continue_token;
            all.remaining_item_count = page.remaining_item_count;
        }
        Ok(all)
    }

    /// Creates `obj` (in the API's namespace, or the object's for an all-namespaces API).
    pub async fn create(&self, obj: &K) -> Result<K> {
        let body = self.encode(obj)?;
        let bytes = self
            .raw
            .create(self.namespace_of(obj), "", "", body)
            .await?;
        self.decode(&bytes)
    }

    /// Update: replaces the object. Its `metadata.resourceVersion` makes this a
    /// compare-and-swap: a concurrent change answers 409 Conflict.
    pub async fn replace(&self, obj: &K) -> Result<K> {
        self.update(obj, "").await
    }

    /// Updates only the status of the object (the `status` subresource).
    pub async fn replace_status(&self, obj: &K) -> Result<K> {
        self.update(obj, "status").await
    }

    async fn update(&self, obj: &K, subresource: &str) -> Result<K> {
        let body = self.encode(obj)?;
        let bytes = self
            .raw
            .update(
                self.namespace_of(obj),
                Self::name_of(obj),
                subresource,
                body,
            )
            .await?;
        self.decode(&bytes)
    }

    /// Patches the object; a patch that carries `metadata.resourceVersion` is a precondition.
    pub async fn patch(&self, name: &str, patch: &Patch) -> Result<K> {
        let bytes = self.raw.patch(name, "", patch).await?;
        self.decode(&bytes)
    }

    /// Patches the status subresource.
    pub async fn patch_status(&self, name: &str, patch: &Patch) -> Result<K> {
        let bytes = self.raw.patch(name, "status", patch).await?;
        self.decode(&bytes)
    }

    /// Deletes the object. Returns it as the deletion left it — still present with a
    /// `deletionTimestamp` while finalizers or a pod's grace period hold it — or `None` when
    /// the apiserver answered with a bare success `Status`.
    pub async fn delete(&self, name: &str, dp: &DeleteParams) -> Result<Option<K>> {
        let bytes = self.raw.delete(name, dp).await?;
        let is_status = serde_json::from_slice::<serde_json::Value>(&bytes)
            .map_err(|e| Error::decode("a delete response", e))?
            .get("kind")
            .and_then(|k| k.as_str())
            == Some("Status");
        if is_status {
            return Ok(None);
        }
        self.decode(&bytes).map(Some)
    }

    /// Watches from `resource_version` ("" or "0": first the current objects as `Added`, then
    /// every change; a list's resourceVersion: exactly the changes after that list). The stream
    /// ends when the apiserver ends the watch; most code wants the resumable
    /// [`crate::runtime::watcher`] instead.
    pub async fn watch(&self, wp: &WatchParams, resource_version: &str) -> Result<WatchStream<K>> {
        let raw = self.raw.watch(wp, resource_version).await?;
        let what = K::URL_PATH_SEGMENT;
        Ok(Box::pin(raw.map(move |ev| {
            ev.and_then(|ev| WatchEvent::decode(&ev.kind, &ev.object, what))
        })))
    }
}

impl Api<Pod> {
    /// Binds a pod to a node (the `pods/binding` subresource, what the scheduler does). Fails
    /// with Conflict when the pod is already bound.
    pub async fn bind(&self, pod: &str, node: &str) -> Result<()> {
        let binding = json!({
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": pod, "namespace": self.namespace().unwrap_or_default()},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        });
        let body = serde_json::to_vec(&binding).map_err(|e| Error::encode("a Binding", e))?;
        self.raw.create(None, pod, "binding", body).await?;
        Ok(())
    }
}
