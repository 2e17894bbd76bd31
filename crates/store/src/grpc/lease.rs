//! Lease service: Grant, Revoke, KeepAlive (bidi stream), TimeToLive, Leases.

use std::time::Instant;

use etcd_client::proto::{
    PbLeaseGrantRequest, PbLeaseGrantResponse, PbLeaseKeepAliveRequest, PbLeaseKeepAliveResponse,
    PbLeaseLeasesRequest, PbLeaseLeasesResponse, PbLeaseRevokeRequest, PbLeaseRevokeResponse,
    PbLeaseService, PbLeaseStatus, PbLeaseTimeToLiveRequest, PbLeaseTimeToLiveResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{BoxStream, Ctx};
use crate::engine::{WriteOp, WriteReply};
use crate::error::StoreError;

pub struct LeaseService(pub Ctx);

/// Keep-alive responses buffered per stream.
const KEEPALIVE_QUEUE: usize = 16;

#[tonic::async_trait]
impl PbLeaseService for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<PbLeaseGrantRequest>,
    ) -> Result<Response<PbLeaseGrantResponse>, Status> {
        let req = request.into_inner();
        let op = WriteOp::LeaseGrant {
            id: req.id,
            ttl: req.ttl,
        };
        let WriteReply::LeaseGrant { id, ttl, revision } = self.0.engine.write(op).await? else {
            return Err(Status::internal(
                "engine answered with the wrong reply kind",
            ));
        };
        Ok(Response::new(PbLeaseGrantResponse {
            header: self.0.header.with(revision),
            id,
            ttl,
            error: String::new(),
        }))
    }

    async fn lease_revoke(
        &self,
        request: Request<PbLeaseRevokeRequest>,
    ) -> Result<Response<PbLeaseRevokeResponse>, Status> {
        let req = request.into_inner();
        let WriteReply::Revision(revision) =
            self.0.engine.write(WriteOp::LeaseRevoke(req.id)).await?
        else {
            return Err(Status::internal(
                "engine answered with the wrong reply kind",
            ));
        };
        Ok(Response::new(PbLeaseRevokeResponse {
            header: self.0.header.with(revision),
        }))
    }

    type LeaseKeepAliveStream = BoxStream<PbLeaseKeepAliveResponse>;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<PbLeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut requests = request.into_inner();
        let (tx, rx) = mpsc::channel(KEEPALIVE_QUEUE);
        let ctx = self.0.clone();
        tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    msg = requests.message() => msg,
                    _ = ctx.shutdown.cancelled() => break,
                };
                let Ok(Some(req)) = msg else { break };
                // An unknown or expired lease is answered with TTL 0, not an error (etcd's v3rpc).
                let ttl = match ctx.engine.renew_lease(req.id) {
                    Ok(ttl) => ttl,
                    Err(StoreError::LeaseNotFound) => 0,
                    Err(e) => {
                        let _ = tx.send(Err(Status::from(e))).await;
                        break;
                    }
                };
                let resp = PbLeaseKeepAliveResponse {
                    header: ctx.header.with(ctx.engine.committed()),
                    id: req.id,
                    ttl,
                };
                if tx.send(Ok(resp)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<PbLeaseTimeToLiveRequest>,
    ) -> Result<Response<PbLeaseTimeToLiveResponse>, Status> {
        let req = request.into_inner();
        let now = Instant::now();
        let resp = self.0.engine.read(|state, committed| {
            let header = self.0.header.with(committed);
            match state.leases.get(req.id) {
                Some(lease) => PbLeaseTimeToLiveResponse {
                    header,
                    id: req.id,
                    ttl: lease.remaining(now),
                    granted_ttl: lease.ttl,
                    keys: if req.keys {
                        lease.keys.iter().map(|k| k.to_vec()).collect()
                    } else {
                        Vec::new()
                    },
                },
                // Unknown lease: TTL -1 with an OK status, as etcd answers.
                None => PbLeaseTimeToLiveResponse {
                    header,
                    id: req.id,
                    ttl: -1,
                    ..Default::default()
                },
            }
        });
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        _request: Request<PbLeaseLeasesRequest>,
    ) -> Result<Response<PbLeaseLeasesResponse>, Status> {
        let resp = self
            .0
            .engine
            .read(|state, committed| PbLeaseLeasesResponse {
                header: self.0.header.with(committed),
                leases: state
                    .leases
                    .ids()
                    .into_iter()
                    .map(|id| PbLeaseStatus { id })
                    .collect(),
            });
        Ok(Response::new(resp))
    }
}
