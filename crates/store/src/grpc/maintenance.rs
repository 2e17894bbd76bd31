//! Maintenance service: Status, Alarm, Defragment, Hash, HashKV. Snapshot, MoveLeader and Downgrade
//! are answered "not capable" (single member, no raft).

use etcd_client::proto::{
    PbAlarmRequest, PbAlarmResponse, PbDefragmentRequest, PbDefragmentResponse, PbDowngradeRequest,
    PbDowngradeResponse, PbHashKvRequest, PbHashKvResponse, PbHashRequest, PbHashResponse,
    PbMaintenanceService, PbMoveLeaderRequest, PbMoveLeaderResponse, PbSnapshotRequest,
    PbSnapshotResponse, PbStatusRequest, PbStatusResponse,
};
use tonic::{Request, Response, Status};

use super::{BoxStream, Ctx, ETCD_VERSION};
use crate::engine::WriteOp;
use crate::error::StoreError;
use crate::header::RAFT_TERM;

pub struct MaintenanceService(pub Ctx);

#[tonic::async_trait]
impl PbMaintenanceService for MaintenanceService {
    async fn alarm(
        &self,
        _request: Request<PbAlarmRequest>,
    ) -> Result<Response<PbAlarmResponse>, Status> {
        // No alarms are ever raised (no space quota, no corruption check); etcd 3.4 answers an
        // empty alarm list with a completely empty message, so does niwa.
        Ok(Response::new(PbAlarmResponse::default()))
    }

    async fn status(
        &self,
        _request: Request<PbStatusRequest>,
    ) -> Result<Response<PbStatusResponse>, Status> {
        let engine = &self.0.engine;
        let revision = engine.committed();
        let size = engine.disk_bytes() as i64;
        Ok(Response::new(PbStatusResponse {
            header: self.0.header.with(revision),
            version: ETCD_VERSION.into(),
            db_size: size,
            leader: self.0.header.member_id,
            raft_index: revision as u64,
            raft_term: RAFT_TERM,
            raft_applied_index: revision as u64,
            db_size_in_use: size,
            ..Default::default()
        }))
    }

    async fn defragment(
        &self,
        _request: Request<PbDefragmentRequest>,
    ) -> Result<Response<PbDefragmentResponse>, Status> {
        self.0.engine.write(WriteOp::Snapshot).await?;
        Ok(Response::new(PbDefragmentResponse::default()))
    }

    async fn hash(
        &self,
        _request: Request<PbHashRequest>,
    ) -> Result<Response<PbHashResponse>, Status> {
        let (hash, revision) = self.0.engine.read(|state, committed| {
            state
                .mvcc
                .hash_kv(0, committed)
                .map(|(h, _)| (h, committed))
        })?;
        Ok(Response::new(PbHashResponse {
            header: self.0.header.with(revision),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        request: Request<PbHashKvRequest>,
    ) -> Result<Response<PbHashKvResponse>, Status> {
        let req = request.into_inner();
        let (hash, compact_revision, revision) = self.0.engine.read(|state, committed| {
            state
                .mvcc
                .hash_kv(req.revision, committed)
                .map(|(h, c)| (h, c, committed))
        })?;
        Ok(Response::new(PbHashKvResponse {
            header: self.0.header.with(revision),
            hash,
            compact_revision,
            hash_revision: if req.revision == 0 {
                revision
            } else {
                req.revision
            },
        }))
    }

    type SnapshotStream = BoxStream<PbSnapshotResponse>;

    async fn snapshot(
        &self,
        _request: Request<PbSnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(StoreError::NotCapable.into())
    }

    async fn move_leader(
        &self,
        _request: Request<PbMoveLeaderRequest>,
    ) -> Result<Response<PbMoveLeaderResponse>, Status> {
        Err(StoreError::NotCapable.into())
    }

    async fn downgrade(
        &self,
        _request: Request<PbDowngradeRequest>,
    ) -> Result<Response<PbDowngradeResponse>, Status> {
        Err(StoreError::NotCapable.into())
    }
}
