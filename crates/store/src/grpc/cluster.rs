//! Cluster service: MemberList describes the single member; membership changes are not capable.

use etcd_client::proto::{
    PbClusterService, PbMember, PbMemberAddRequest, PbMemberAddResponse, PbMemberListRequest,
    PbMemberListResponse, PbMemberPromoteRequest, PbMemberPromoteResponse, PbMemberRemoveRequest,
    PbMemberRemoveResponse, PbMemberUpdateRequest, PbMemberUpdateResponse,
};
use tonic::{Request, Response, Status};

use super::Ctx;
use crate::error::StoreError;

pub struct ClusterService(pub Ctx);

#[tonic::async_trait]
impl PbClusterService for ClusterService {
    async fn member_add(
        &self,
        _request: Request<PbMemberAddRequest>,
    ) -> Result<Response<PbMemberAddResponse>, Status> {
        Err(StoreError::NotCapable.into())
    }

    async fn member_remove(
        &self,
        _request: Request<PbMemberRemoveRequest>,
    ) -> Result<Response<PbMemberRemoveResponse>, Status> {
        Err(StoreError::NotCapable.into())
    }

    async fn member_update(
        &self,
        _request: Request<PbMemberUpdateRequest>,
    ) -> Result<Response<PbMemberUpdateResponse>, Status> {
        Err(StoreError::NotCapable.into())
    }

    async fn member_list(
        &self,
        _request: Request<PbMemberListRequest>,
    ) -> Result<Response<PbMemberListResponse>, Status> {
        let mut header = self.0.header.with(0);
        // etcd leaves the revision out of the MemberList header.
        if let Some(h) = header.as_mut() {
            h.revision = 0;
        }
        Ok(Response::new(PbMemberListResponse {
            header,
            members: vec![PbMember {
                id: self.0.header.member_id,
                name: self.0.name.clone(),
                peer_ur_ls: vec!["http://localhost:2380".into()],
                client_ur_ls: vec![self.0.client_url.clone()],
                is_learner: false,
            }],
        }))
    }

    async fn member_promote(
        &self,
        _request: Request<PbMemberPromoteRequest>,
    ) -> Result<Response<PbMemberPromoteResponse>, Status> {
        Err(StoreError::NotCapable.into())
    }
}
