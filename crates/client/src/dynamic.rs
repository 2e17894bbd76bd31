//! [`DynamicApi`]: the same verbs as [`crate::Api`] for any resource, on `serde_json::Value`
//! objects — for code that learns the kind at run time (the CLI, garbage collection, quota).

use futures::{Stream, StreamExt};
use serde_json::Value;
use std::pin::Pin;

use crate::error::{Error, Result};
use crate::object::{ObjectList, WatchEvent};
use crate::params::{DeleteParams, ListParams, Patch, WatchParams};
use crate::raw::RawApi;

/// A boxed stream of untyped watch events.
pub type DynamicWatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent<Value>>> + Send>>;

/// Untyped verbs of one resource, made by [`crate::Client::dynamic`].
#[derive(Clone, Debug)]
pub struct DynamicApi {
    raw: RawApi,
}

fn decode(bytes: &[u8], what: &str) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|e| Error::decode(what, e))
}

fn encode(obj: &Value) -> Result<Vec<u8>> {
    serde_json::to_vec(obj).map_err(|e| Error::encode("an object", e))
}

fn str_at<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj["metadata"][field].as_str().unwrap_or_default()
}

impl DynamicApi {
    pub(crate) fn new(raw: RawApi) -> DynamicApi {
        DynamicApi { raw }
    }

    /// The namespace this API is bound to.
    pub fn namespace(&self) -> Option<&str> {
        (!self.raw.namespace.is_empty()).then_some(self.raw.namespace.as_str())
    }

    /// The same resource in another namespace.
    pub fn in_namespace(&self, namespace: &str) -> DynamicApi {
        DynamicApi::new(self.raw.with_namespace(namespace))
    }

    pub fn field_manager(mut self, manager: &str) -> DynamicApi {
        self.raw.params.field_manager = Some(manager.to_string());
        self
    }

    pub fn dry_run(mut self) -> DynamicApi {
        self.raw.params.dry_run = true;
        self
    }

    fn namespace_of<'a>(&'a self, obj: &'a Value) -> Option<&'a str> {
        self.namespace().or_else(|| {
            let ns = str_at(obj, "namespace");
            (!ns.is_empty()).then_some(ns)
        })
    }

    pub async fn get(&self, name: &str) -> Result<Value> {
        decode(&self.raw.get(name, "").await?, "an object")
    }

    pub async fn get_opt(&self, name: &str) -> Result<Option<Value>> {
        match self.get(name).await {
            Ok(obj) => Ok(Some(obj)),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// A subresource (`scale`, `status`) of an object.
    pub async fn get_subresource(&self, name: &str, subresource: &str) -> Result<Value> {
        decode(&self.raw.get(name, subresource).await?, subresource)
    }

    pub async fn list(&self, lp: &ListParams) -> Result<ObjectList<Value>> {
        ObjectList::from_json(&self.raw.list(lp).await?, &self.raw.resource)
    }

    pub async fn create(&self, obj: &Value) -> Result<Value> {
        let bytes = self
            .raw
            .create(self.namespace_of(obj), "", "", encode(obj)?)
            .await?;
        decode(&bytes, "a created object")
    }

    pub async fn replace(&self, obj: &Value) -> Result<Value> {
        self.update(obj, "").await
    }

    pub async fn replace_status(&self, obj: &Value) -> Result<Value> {
        self.update(obj, "status").await
    }

    /// Replaces a subresource (`scale`) of the object named `name`.
    pub async fn replace_subresource(
        &self,
        name: &str,
        subresource: &str,
        obj: &Value,
    ) -> Result<Value> {
        let bytes = self
            .raw
            .update(self.namespace_of(obj), name, subresource, encode(obj)?)
            .await?;
        decode(&bytes, subresource)
    }

    async fn update(&self, obj: &Value, subresource: &str) -> Result<Value> {
        let bytes = self
            .raw
            .update(
                self.namespace_of(obj),
                str_at(obj, "name"),
                subresource,
                encode(obj)?,
            )
            .await?;
        decode(&bytes, "an updated object")
    }

    pub async fn patch(&self, name: &str, patch: &Patch) -> Result<Value> {
        decode(&self.raw.patch(name, "", patch).await?, "a patched object")
    }

    pub async fn patch_status(&self, name: &str, patch: &Patch) -> Result<Value> {
        decode(
            &self.raw.patch(name, "status", patch).await?,
            "a patched object",
        )
    }

    /// Deletes the object; returns what the apiserver answered (the object as the deletion left
    /// it, or a success `Status`).
    pub async fn delete(&self, name: &str, dp: &DeleteParams) -> Result<Value> {
        decode(&self.raw.delete(name, dp).await?, "a delete response")
    }

    pub async fn watch(
        &self,
        wp: &WatchParams,
        resource_version: &str,
    ) -> Result<DynamicWatchStream> {
        let raw = self.raw.watch(wp, resource_version).await?;
        Ok(Box::pin(raw.map(|ev| {
            ev.and_then(|ev| WatchEvent::decode(&ev.kind, &ev.object, "object"))
        })))
    }
}
