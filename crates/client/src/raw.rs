//! The gRPC calls of one resource, on JSON bytes: the layer [`crate::Api`] (typed) and
//! [`crate::DynamicApi`] (`serde_json::Value`) share.

use futures::{Stream, StreamExt};
use niwa_api::proto::resources_client::ResourcesClient;
use niwa_api::proto::{
    CreateRequest, DeleteRequest, GetRequest, ListRequest, PatchRequest, ResourceRef,
    UpdateRequest, WatchRequest,
};
use tonic::transport::Channel;

use crate::error::{Error, Result};
use crate::params::{DeleteParams, ListParams, Patch, PostParams, VersionMatch, WatchParams};

/// One raw watch event: its type (`ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`, `ERROR`) and the
/// object's JSON.
#[derive(Debug, Clone)]
pub struct RawEvent {
    pub kind: String,
    pub object: Vec<u8>,
}

/// The calls of one resource (group, version, plural) in one namespace ("" = all or none).
#[derive(Clone)]
pub struct RawApi {
    grpc: ResourcesClient<Channel>,
    pub(crate) group: String,
    pub(crate) version: String,
    pub(crate) resource: String,
    pub(crate) namespace: String,
    pub(crate) params: PostParams,
}

impl std::fmt::Debug for RawApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.describe())
    }
}

impl RawApi {
    pub fn new(
        grpc: ResourcesClient<Channel>,
        group: &str,
        version: &str,
        resource: &str,
        namespace: &str,
    ) -> RawApi {
        RawApi {
            grpc,
            group: group.into(),
            version: version.into(),
            resource: resource.into(),
            namespace: namespace.into(),
            params: PostParams::default(),
        }
    }

    /// `pods.v1 in default` — for error messages and logs.
    pub fn describe(&self) -> String {
        let group = if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}.{}", self.version, self.group)
        };
        if self.namespace.is_empty() {
            format!("{}.{group}", self.resource)
        } else {
            format!("{}.{group} in {}", self.resource, self.namespace)
        }
    }

    /// The same resource in another namespace.
    pub fn with_namespace(&self, namespace: &str) -> RawApi {
        let mut raw = self.clone();
        raw.namespace = namespace.to_string();
        raw
    }

    fn rref(&self, namespace: Option<&str>, name: &str, subresource: &str) -> ResourceRef {
        ResourceRef {
            group: self.group.clone(),
            version: self.version.clone(),
            resource: self.resource.clone(),
            namespace: namespace.unwrap_or(&self.namespace).to_string(),
            name: name.to_string(),
            subresource: subresource.to_string(),
        }
    }

    fn field_manager(&self) -> String {
        self.params.field_manager.clone().unwrap_or_default()
    }

    pub async fn get(&self, name: &str, subresource: &str) -> Result<Vec<u8>> {
        let req = GetRequest {
            r#ref: Some(self.rref(None, name, subresource)),
            resource_version: String::new(),
        };
        let resp = self.grpc.clone().get(req).await?;
        Ok(resp.into_inner().object)
    }

    pub async fn list(&self, lp: &ListParams) -> Result<Vec<u8>> {
        let req = ListRequest {
            r#ref: Some(self.rref(None, "", "")),
            label_selector: lp.label_selector.clone().unwrap_or_default(),
            field_selector: lp.field_selector.clone().unwrap_or_default(),
            limit: lp.limit.unwrap_or(0),
            continue_token: lp.continue_token.clone().unwrap_or_default(),
            resource_version: lp.resource_version.clone().unwrap_or_default(),
            resource_version_match: match lp.version_match {
                None => String::new(),
                Some(VersionMatch::NotOlderThan) => "NotOlderThan".into(),
                Some(VersionMatch::Exact) => "Exact".into(),
            },
        };
        let resp = self.grpc.clone().list(req).await?;
        Ok(resp.into_inner().object)
    }

    /// Creates `object`; `namespace` overrides the API's (for all-namespace APIs).
    pub async fn create(
        &self,
        namespace: Option<&str>,
        name: &str,
        subresource: &str,
        object: Vec<u8>,
    ) -> Result<Vec<u8>> {
        let req = CreateRequest {
            r#ref: Some(self.rref(namespace, name, subresource)),
            object,
            dry_run: self.params.dry_run,
            field_manager: self.field_manager(),
        };
        let resp = self.grpc.clone().create(req).await?;
        Ok(resp.into_inner().object)
    }

    pub async fn update(
        &self,
        namespace: Option<&str>,
        name: &str,
        subresource: &str,
        object: Vec<u8>,
    ) -> Result<Vec<u8>> {
        let req = UpdateRequest {
            r#ref: Some(self.rref(namespace, name, subresource)),
            object,
            dry_run: self.params.dry_run,
            field_manager: self.field_manager(),
        };
        let resp = self.grpc.clone().update(req).await?;
        Ok(resp.into_inner().object)
    }

    pub async fn patch(&self, name: &str, subresource: &str, patch: &Patch) -> Result<Vec<u8>> {
        let body = serde_json::to_vec(patch.value()).map_err(|e| Error::encode("the patch", e))?;
        let (field_manager, force) = match patch {
            Patch::Apply {
                field_manager,
                force,
                ..
            } => (field_manager.clone(), *force),
            _ => (self.field_manager(), false),
        };
        let req = PatchRequest {
            r#ref: Some(self.rref(None, name, subresource)),
            patch_type: patch.content_type().into(),
            patch: body,
            field_manager,
            force,
            dry_run: self.params.dry_run,
        };
        let resp = self.grpc.clone().patch(req).await?;
        Ok(resp.into_inner().object)
    }

    pub async fn delete(&self, name: &str, dp: &DeleteParams) -> Result<Vec<u8>> {
        let options = dp.to_json();
        let options = if options.as_object().is_some_and(|o| o.is_empty()) {
            Vec::new()
        } else {
            serde_json::to_vec(&options).map_err(|e| Error::encode("DeleteOptions", e))?
        };
        let req = DeleteRequest {
            r#ref: Some(self.rref(None, name, "")),
            options,
        };
        let resp = self.grpc.clone().delete(req).await?;
        Ok(resp.into_inner().object)
    }

    /// Opens a watch from `resource_version` ("" or "0": the current state as ADDED events
    /// first, then changes).
    pub async fn watch(
        &self,
        wp: &WatchParams,
        resource_version: &str,
    ) -> Result<impl Stream<Item = Result<RawEvent>> + Send + use<>> {
        let req = WatchRequest {
            r#ref: Some(self.rref(None, "", "")),
            label_selector: wp.label_selector.clone().unwrap_or_default(),
            field_selector: wp.field_selector.clone().unwrap_or_default(),
            resource_version: resource_version.to_string(),
            allow_bookmarks: wp.bookmarks,
        };
        let stream = self.grpc.clone().watch(req).await?.into_inner();
        Ok(stream.map(|item| {
            item.map(|ev| RawEvent {
                kind: ev.r#type,
                object: ev.object.into(),
            })
            .map_err(Error::from_grpc)
        }))
    }
}
