//! The `ResponseHeader` every etcd response carries.

use etcd_client::proto::PbResponseHeader;

/// Identity of this single-member cluster. There is no raft: the term is constant.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    pub cluster_id: u64,
    pub member_id: u64,
}

/// etcd reports term 2 on a fresh single-member cluster (one election after start); niwa has no
/// elections, so the term never moves.
pub const RAFT_TERM: u64 = 2;

impl Header {
    pub fn with(&self, revision: i64) -> Option<PbResponseHeader> {
        Some(PbResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: RAFT_TERM,
        })
    }

    /// Fills identity into a header that a core function produced with only a revision.
    pub fn fill(&self, header: &mut Option<PbResponseHeader>, revision: i64) {
        let rev = header
            .as_ref()
            .map(|h| h.revision)
            .filter(|r| *r != 0)
            .unwrap_or(revision);
        *header = self.with(rev);
    }
}
