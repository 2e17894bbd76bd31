//! KV service: Range, Put, DeleteRange, Txn, Compact.

use std::time::Instant;

use etcd_client::proto::{
    PbCompactionRequest as CompactionRequest, PbCompactionResponse, PbDeleteRequest,
    PbDeleteResponse, PbKvService, PbPutRequest, PbPutResponse, PbRangeRequest, PbRangeResponse,
    PbRangeStreamResponse, PbTxnRequest, PbTxnResponse,
};
use prost::Message;
use tonic::{Request, Response, Status};

use super::{BoxStream, Ctx};
use crate::engine::{WriteOp, WriteReply};
use crate::error::StoreError;
use crate::mvcc::check_txn;
use crate::mvcc::range::check_range;
use crate::mvcc::txn::{check_delete, check_put};

pub struct KvService(pub Ctx);

fn unexpected() -> Status {
    Status::internal("engine answered with the wrong reply kind")
}

impl KvService {
    fn check_size(&self, encoded_len: usize) -> Result<(), StoreError> {
        if encoded_len > self.0.max_request_bytes {
            return Err(StoreError::RequestTooLarge);
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl PbKvService for KvService {
    async fn range(
        &self,
        request: Request<PbRangeRequest>,
    ) -> Result<Response<PbRangeResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        check_range(&req)?;
        let mut resp = self
            .0
            .engine
            .read(|s, committed| s.mvcc.range(&req, committed))?;
        let rev = self.0.engine.committed();
        self.0.header.fill(&mut resp.header, rev);
        self.0.metrics.observe("Range", started);
        Ok(Response::new(resp))
    }

    type RangeStreamStream = BoxStream<PbRangeStreamResponse>;

    async fn range_stream(
        &self,
        _request: Request<PbRangeRequest>,
    ) -> Result<Response<Self::RangeStreamStream>, Status> {
        Err(StoreError::NotCapable.into())
    }

    async fn put(&self, request: Request<PbPutRequest>) -> Result<Response<PbPutResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        self.check_size(req.encoded_len())?;
        check_put(&req)?;
        let WriteReply::Put(mut resp) = self.0.engine.write(WriteOp::Put(req)).await? else {
            return Err(unexpected());
        };
        self.0.header.fill(&mut resp.header, 0);
        self.0.metrics.observe("Put", started);
        Ok(Response::new(resp))
    }

    async fn delete_range(
        &self,
        request: Request<PbDeleteRequest>,
    ) -> Result<Response<PbDeleteResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        check_delete(&req)?;
        let WriteReply::DeleteRange(mut resp) =
            self.0.engine.write(WriteOp::DeleteRange(req)).await?
        else {
            return Err(unexpected());
        };
        self.0.header.fill(&mut resp.header, 0);
        self.0.metrics.observe("DeleteRange", started);
        Ok(Response::new(resp))
    }

    async fn txn(&self, request: Request<PbTxnRequest>) -> Result<Response<PbTxnResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        self.check_size(req.encoded_len())?;
        check_txn(&req)?;
        // Every txn goes through the writer, even read-only ones: compares must see the latest
        // state in write order. A txn that writes nothing costs no fsync.
        let WriteReply::Txn(mut resp) = self.0.engine.write(WriteOp::Txn(req)).await? else {
            return Err(unexpected());
        };
        self.0.header.fill(&mut resp.header, 0);
        self.0.metrics.observe("Txn", started);
        Ok(Response::new(resp))
    }

    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<PbCompactionResponse>, Status> {
        let req = request.into_inner();
        let WriteReply::Revision(rev) = self.0.engine.write(WriteOp::Compact(req.revision)).await?
        else {
            return Err(unexpected());
        };
        Ok(Response::new(PbCompactionResponse {
            header: self.0.header.with(rev),
        }))
    }
}
