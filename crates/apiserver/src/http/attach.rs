//! `pods/{name}/attach`: `kubectl attach` and `kubectl run -i`, over the same WebSocket channel
//! protocols as exec ([`super::exec`]), bridged to the kubelet's `Attach` stream. The query is
//! Kubernetes' PodAttachOptions (`container`, `stdin`, `stdout`, `stderr`, `tty`); the kubelet
//! makes `tty` follow the container's spec. The final Status is Success when the session ends
//! (the container ended or the client detached), as the kubelet reports it.

use axum::extract::Request;
use axum::response::Response;
use niwa_api::ApiError;

use super::exec::{Call, exec_query, stream};
use super::resource::Ctx;

pub async fn attach(ctx: &Ctx, req: Request) -> Result<Response, ApiError> {
    let (parts, _body) = req.into_parts();
    let q = exec_query(parts.uri.query())?;
    stream(ctx, parts, q, Call::Attach).await
}
