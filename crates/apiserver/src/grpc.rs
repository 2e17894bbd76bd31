//! The `niwa.api.v1.Resources` gRPC service: decodes requests, calls the REST layer, and converts
//! errors to gRPC statuses carrying the Kubernetes Status (the one conversion point).

use std::pin::Pin;

use niwa_api::proto::resources_server::{Resources, ResourcesServer};
use niwa_api::proto::{
    CreateRequest, DeleteRequest, GetRequest, ListRequest, ObjectResponse, PatchRequest,
    ResourceRef, UpdateRequest, WatchEvent as PbWatchEvent, WatchRequest,
};
use niwa_api::{ApiError, Reason, ResourceInfo};
use serde_json::Value;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::rest::{
    self, DeleteOptions, ListOptions, Rest, UpdateScope, WatchOptions, WriteOptions,
};

pub struct ResourcesService {
    rest: Rest,
    shutdown: CancellationToken,
}

impl ResourcesService {
    pub fn server(rest: Rest, shutdown: CancellationToken) -> ResourcesServer<ResourcesService> {
        ResourcesServer::new(ResourcesService { rest, shutdown })
            .max_decoding_message_size(8 << 20)
            .max_encoding_message_size(usize::MAX)
    }
}

fn resolve(r: &Option<ResourceRef>) -> Result<(&'static ResourceInfo, ResourceRef), ApiError> {
    let r = r
        .clone()
        .ok_or_else(|| ApiError::bad_request("the request names no resource"))?;
    let info = rest::resolve(&r.group, &r.version, &r.resource)?;
    Ok((info, r))
}

fn decode(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the object is not valid JSON: {e}")))
}

fn reply(obj: Result<Value, ApiError>) -> Result<Response<ObjectResponse>, Status> {
    let obj = obj.map_err(|e| e.to_grpc())?;
    let object =
        serde_json::to_vec(&obj).map_err(|e| ApiError::internal(e.to_string()).to_grpc())?;
    Ok(Response::new(ObjectResponse { object }))
}

/// Like [`reply`], for a body that is already encoded (lists).
fn reply_encoded(obj: Result<Vec<u8>, ApiError>) -> Result<Response<ObjectResponse>, Status> {
    let object = obj.map_err(|e| e.to_grpc())?;
    Ok(Response::new(ObjectResponse { object }))
}

fn scope(subresource: &str) -> Result<UpdateScope, ApiError> {
    match subresource {
        "" => Ok(UpdateScope::Main),
        "status" => Ok(UpdateScope::Status),
        "finalize" => Ok(UpdateScope::Finalize),
        other => Err(ApiError::new(
            Reason::MethodNotAllowed,
            format!("the subresource {other:?} does not support this verb"),
        )),
    }
}

#[tonic::async_trait]
impl Resources for ResourcesService {
    async fn create(
        &self,
        req: Request<CreateRequest>,
    ) -> Result<Response<ObjectResponse>, Status> {
        let req = req.into_inner();
        reply(
            async {
                let (info, r) = resolve(&req.r#ref)?;
                let body = decode(&req.object)?;
                match r.subresource.as_str() {
                    "" => {
                        let opts = WriteOptions {
                            dry_run: req.dry_run,
                            field_manager: req.field_manager.clone(),
                            force: false,
                        };
                        self.rest.create_with(info, &r.namespace, body, &opts).await
                    }
                    "binding" if info.kind == "Pod" => {
                        self.rest.bind(info, &r.namespace, &r.name, &body).await
                    }
                    other => Err(ApiError::new(
                        Reason::MethodNotAllowed,
                        format!("create is not supported on subresource {other:?}"),
                    )),
                }
            }
            .await,
        )
    }

    async fn get(&self, req: Request<GetRequest>) -> Result<Response<ObjectResponse>, Status> {
        let req = req.into_inner();
        reply(
            async {
                let (info, r) = resolve(&req.r#ref)?;
                match r.subresource.as_str() {
                    "" | "status" => self.rest.get(info, &r.namespace, &r.name).await,
                    "scale" if info.has_subresource("scale") => {
                        self.rest.get_scale(info, &r.namespace, &r.name).await
                    }
                    other => Err(ApiError::new(
                        Reason::MethodNotAllowed,
                        format!("get is not supported on subresource {other:?}"),
                    )),
                }
            }
            .await,
        )
    }

    async fn list(&self, req: Request<ListRequest>) -> Result<Response<ObjectResponse>, Status> {
        let req = req.into_inner();
        reply_encoded(
            async {
                let (info, r) = resolve(&req.r#ref)?;
                let opts = ListOptions {
                    label_selector: req.label_selector,
                    field_selector: req.field_selector,
                    limit: req.limit,
                    continue_token: req.continue_token,
                    resource_version: req.resource_version,
                    resource_version_match: req.resource_version_match,
                };
                self.rest.list(info, &r.namespace, &opts).await
            }
            .await
            .map(|list| list.to_json()),
        )
    }

    async fn update(
        &self,
        req: Request<UpdateRequest>,
    ) -> Result<Response<ObjectResponse>, Status> {
        let req = req.into_inner();
        reply(
            async {
                let (info, r) = resolve(&req.r#ref)?;
                let body = decode(&req.object)?;
                if r.subresource == "scale" && info.has_subresource("scale") {
                    return self
                        .rest
                        .update_scale(info, &r.namespace, &r.name, &body)
                        .await;
                }
                let scope = scope(&r.subresource)?;
                let opts = WriteOptions {
                    dry_run: req.dry_run,
                    field_manager: req.field_manager.clone(),
                    force: false,
                };
                self.rest
                    .update_with(info, &r.namespace, &r.name, body, scope, &opts)
                    .await
            }
            .await,
        )
    }

    async fn patch(&self, req: Request<PatchRequest>) -> Result<Response<ObjectResponse>, Status> {
        let req = req.into_inner();
        reply(
            async {
                let (info, r) = resolve(&req.r#ref)?;
                let scope = scope(&r.subresource)?;
                let opts = WriteOptions {
                    dry_run: req.dry_run,
                    field_manager: req.field_manager.clone(),
                    force: req.force,
                };
                self.rest
                    .patch_with(
                        info,
                        &r.namespace,
                        &r.name,
                        &req.patch_type,
                        &req.patch,
                        scope,
                        &opts,
                    )
                    .await
            }
            .await,
        )
    }

    async fn delete(
        &self,
        req: Request<DeleteRequest>,
    ) -> Result<Response<ObjectResponse>, Status> {
        let req = req.into_inner();
        reply(
            async {
                let (info, r) = resolve(&req.r#ref)?;
                let opts = DeleteOptions::from_json(&req.options)?;
                self.rest.delete(info, &r.namespace, &r.name, opts).await
            }
            .await,
        )
    }

    type WatchStream = Pin<Box<dyn futures::Stream<Item = Result<PbWatchEvent, Status>> + Send>>;

    async fn watch(
        &self,
        req: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let req = req.into_inner();
        let (info, r) = resolve(&req.r#ref).map_err(|e| e.to_grpc())?;
        let opts = WatchOptions {
            label_selector: req.label_selector,
            field_selector: req.field_selector,
            resource_version: req.resource_version,
            allow_bookmarks: req.allow_bookmarks,
        };
        let rx = self
            .rest
            .watch(info, &r.namespace, opts, self.shutdown.clone())
            .await
            .map_err(|e| e.to_grpc())?;
        let stream = rx.map(|ev| {
            Ok(PbWatchEvent {
                r#type: ev.kind.to_string(),
                // Shared with every other watcher of the event, not copied.
                object: ev.object,
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
