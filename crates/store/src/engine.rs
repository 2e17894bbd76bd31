//! The engine: the one place that changes the store. A write request is applied to the in-memory
//! state right in the task that received it, under the state's write lock, and queued for the
//! [`syncer`] thread together with its WAL frame; that thread group-commits everything queued with
//! one `write` and one `fdatasync`, then advances the committed revision, publishes to watchers and
//! answers the clients (through [`lanes`]: each server thread gets its share of a group's replies in
//! one message). Requests keep being applied while a sync runs and share the next one, so the
//! disk syncs back to back under load. Reads run concurrently on any task under a read lock, at the
//! committed revision, so nobody ever sees a write that is not yet durable.

mod apply;
mod lanes;
mod syncer;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use etcd_client::proto::{
    PbDeleteRequest as DeleteRangeRequest, PbDeleteResponse, PbPutRequest as PutRequest,
    PbPutResponse, PbTxnRequest as TxnRequest, PbTxnResponse,
};
use parking_lot::RwLock;
use tokio::sync::{Semaphore, oneshot};

use crate::error::StoreError;
use crate::metrics::CommitMetrics;
use crate::state::State;
use crate::wal::Wal;
use crate::watch::hub::{Hub, Subscription};
use apply::apply;
use lanes::Lanes;
use syncer::{Log, Syncer};

/// Write requests applied but not yet durable; beyond this, callers wait (backpressure on clients,
/// not memory growth).
pub const WRITE_QUEUE: usize = 4096;

/// A request that changes state.
#[derive(Debug)]
pub enum WriteOp {
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
    Txn(TxnRequest),
    Compact(i64),
    LeaseGrant {
        id: i64,
        ttl: i64,
    },
    LeaseRevoke(i64),
    /// Revoke leases whose TTL ran out (sent by the expiry ticker).
    ExpireLeases,
    /// Rewrite the snapshot and drop covered WAL segments (defragment).
    Snapshot,
}

#[derive(Debug)]
pub enum WriteReply {
    Put(PbPutResponse),
    DeleteRange(PbDeleteResponse),
    Txn(PbTxnResponse),
    /// The header revision of a write that returns nothing else.
    Revision(i64),
    LeaseGrant {
        id: i64,
        ttl: i64,
        revision: i64,
    },
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub data_dir: PathBuf,
    /// Minimum lease TTL in seconds (etcd: 2 with default raft timing).
    pub lease_min_ttl: i64,
    /// Where the sync thread records its fsync times, group sizes and watch-queue overflows.
    pub commit_metrics: CommitMetrics,
}

/// Closes the commit queue when the last engine handle is dropped, which ends the sync thread.
struct Closer(Arc<Log>);

impl Drop for Closer {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// A cheap, cloneable handle on the store.
#[derive(Clone)]
pub struct Engine {
    state: Arc<RwLock<State>>,
    committed: Arc<AtomicI64>,
    log: Arc<Log>,
    in_flight: Arc<Semaphore>,
    lanes: Arc<Lanes>,
    _closer: Arc<Closer>,
    pub hub: Arc<Hub>,
    pub cluster_id: u64,
    pub member_id: u64,
    disk_bytes: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("committed", &self.committed())
            .finish()
    }
}

impl Engine {
    /// Recovers the data dir and starts the sync thread. The thread ends when every handle is
    /// dropped, after the last queued write is durable and answered; join it to be sure.
    pub fn open(config: &EngineConfig) -> Result<(Engine, JoinHandle<()>), StoreError> {
        let seed = (rand::random::<u32>() as i64) << 24 | 1;
        let state = State::new(config.lease_min_ttl, seed);
        let recovered = Wal::open(&config.data_dir, state, Instant::now())?;
        if recovered.truncated_bytes > 0 {
            tracing::warn!(
                bytes = recovered.truncated_bytes,
                "cut a torn frame off the WAL tail (a write that was never acknowledged)"
            );
        }
        let wal = recovered.wal;
        let committed = Arc::new(AtomicI64::new(recovered.state.mvcc.current_revision()));
        let state = Arc::new(RwLock::new(recovered.state));
        let log = Arc::new(Log::default());
        let engine = Engine {
            state,
            committed: committed.clone(),
            log: log.clone(),
            in_flight: Arc::new(Semaphore::new(WRITE_QUEUE)),
            lanes: Arc::new(Lanes::default()),
            _closer: Arc::new(Closer(log.clone())),
            hub: Arc::new(Hub::new(config.commit_metrics.watch_overflows.clone())),
            cluster_id: wal.cluster_id,
            member_id: wal.member_id,
            disk_bytes: wal.disk_bytes(),
            failed: Arc::new(AtomicBool::new(false)),
        };
        let syncer = Syncer {
            log,
            wal,
            committed,
            hub: engine.hub.clone(),
            lanes: engine.lanes.clone(),
            failed: engine.failed.clone(),
            snapshot_job: None,
            max_cohort_wait: syncer::max_cohort_wait(),
            metrics: config.commit_metrics.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("niwa-store-sync".into())
            .spawn(move || syncer.run())
            .map_err(|e| StoreError::Storage(format!("spawning the sync thread: {e}")))?;
        Ok((engine, handle))
    }

    /// Applies a write and waits until it is durable.
    pub async fn write(&self, op: WriteOp) -> Result<WriteReply, StoreError> {
        if self.failed.load(Ordering::Acquire) {
            return Err(StoreError::Storage(
                "the store stopped after a disk error".into(),
            ));
        }
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| StoreError::Stopped)?;
        let (reply, rx) = oneshot::channel();
        let lane = self.lanes.current();
        {
            let mut state = self.state.write();
            let applied = apply(&mut state, op, self.committed(), Instant::now());
            let revision = state.mvcc.current_revision();
            // The snapshot is taken here, in apply order, so it holds exactly the writes queued
            // before the rotation; the sync thread fills in the new segment's number.
            let snapshot = applied
                .wants_snapshot
                .then(|| state.snapshot(0, self.cluster_id, self.member_id));
            self.log.push(
                revision,
                applied.records,
                applied.changes,
                snapshot,
                (reply, applied.reply),
                lane,
            );
        }
        rx.await.map_err(|_| StoreError::Stopped)?
    }

    /// Makes the calling thread a reply lane of this engine and returns the task that answers its
    /// writes: call it on the thread of a current-thread runtime and spawn the future there. The
    /// replies of each group commit then reach that runtime in one message (see `lanes.rs`).
    pub fn reply_lane(&self) -> impl Future<Output = ()> + Send + 'static {
        self.lanes.register(self.hub.clone())
    }

    /// Registers a watch stream that runs on the calling thread (see `watch/hub.rs`).
    pub fn subscribe_watch(&self) -> Subscription {
        self.hub.subscribe(self.lanes.current())
    }

    /// The newest durable revision.
    pub fn committed(&self) -> i64 {
        self.committed.load(Ordering::Acquire)
    }

    /// Runs `f` on the state with the committed revision it may read at.
    pub fn read<R>(&self, f: impl FnOnce(&State, i64) -> R) -> R {
        let state = self.state.read();
        f(&state, self.committed())
    }

    /// Renews a lease (not persisted, as in etcd: a restart gives every lease a full TTL).
    pub fn renew_lease(&self, id: i64) -> Result<i64, StoreError> {
        self.state.write().leases.renew(id, Instant::now())
    }

    /// True once a disk write failed; the store then refuses writes until restarted.
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    pub fn disk_bytes(&self) -> u64 {
        self.disk_bytes.load(Ordering::Relaxed)
    }
}
