//! The engine: the one place that changes the store. Writes travel over a bounded channel to a
//! dedicated writer thread that group-commits them — apply every queued request to the in-memory
//! state, append all their changes as one WAL frame, `fdatasync` once, then advance the committed
//! revision, publish to watchers and answer the clients. Reads run concurrently on any task under a
//! read lock, at the committed revision, so nobody ever sees a write that is not yet durable.

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
use tokio::sync::{mpsc, oneshot};

use crate::error::StoreError;
use crate::mvcc::Change;
use crate::state::{State, change_record};
use crate::wal::record::{LeaseRecord, RecordKind, WalBatch, WalRecord};
use crate::wal::{Wal, install_snapshot};
use crate::watch::hub::{CommittedBatch, Hub};

/// Queued write requests; beyond this, callers wait (backpressure on clients, not memory growth).
pub const WRITE_QUEUE: usize = 4096;
/// Most requests folded into one group commit.
pub const MAX_BATCH: usize = 1024;
/// Most leases revoked per expiry pass (each is its own revision, as in etcd).
const MAX_EXPIRE_PER_PASS: usize = 256;

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

struct Pending {
    op: WriteOp,
    reply: oneshot::Sender<Result<WriteReply, StoreError>>,
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub data_dir: PathBuf,
    /// Minimum lease TTL in seconds (etcd: 2 with default raft timing).
    pub lease_min_ttl: i64,
}

/// A cheap, cloneable handle on the store.
#[derive(Clone)]
pub struct Engine {
    state: Arc<RwLock<State>>,
    committed: Arc<AtomicI64>,
    tx: mpsc::Sender<Pending>,
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
    /// Recovers the data dir and starts the writer thread. The thread ends when every handle is
    /// dropped; join it to be sure the last commit finished.
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
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let engine = Engine {
            state: state.clone(),
            committed: committed.clone(),
            tx,
            hub: Arc::new(Hub::default()),
            cluster_id: wal.cluster_id,
            member_id: wal.member_id,
            disk_bytes: wal.disk_bytes(),
            failed: Arc::new(AtomicBool::new(false)),
        };
        let writer = Writer {
            rx,
            state,
            committed,
            hub: engine.hub.clone(),
            wal,
            failed: engine.failed.clone(),
            snapshot_job: None,
        };
        let handle = std::thread::Builder::new()
            .name("niwa-store-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::Storage(format!("spawning writer thread: {e}")))?;
        Ok((engine, handle))
    }

    /// Submits a write and waits until it is durable.
    pub async fn write(&self, op: WriteOp) -> Result<WriteReply, StoreError> {
        if self.failed.load(Ordering::Acquire) {
            return Err(StoreError::Storage(
                "the store stopped after a disk error".into(),
            ));
        }
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Pending { op, reply })
            .await
            .map_err(|_| StoreError::Stopped)?;
        rx.await.map_err(|_| StoreError::Stopped)?
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

struct Writer {
    rx: mpsc::Receiver<Pending>,
    state: Arc<RwLock<State>>,
    committed: Arc<AtomicI64>,
    hub: Arc<Hub>,
    wal: Wal,
    failed: Arc<AtomicBool>,
    snapshot_job: Option<JoinHandle<()>>,
}

/// The result of applying one request: its reply and what must be persisted.
struct Applied {
    reply: Result<WriteReply, StoreError>,
    records: Vec<WalRecord>,
    changes: Vec<Change>,
    wants_snapshot: bool,
}

impl Writer {
    fn run(mut self) {
        let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = self.rx.blocking_recv() {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            self.commit(&mut batch);
        }
        if let Some(job) = self.snapshot_job.take() {
            let _ = job.join();
        }
    }

    fn commit(&mut self, batch: &mut Vec<Pending>) {
        let mut replies = Vec::with_capacity(batch.len());
        let mut records = Vec::new();
        let mut changes = Vec::new();
        let mut wants_snapshot = false;
        let revision = {
            let mut state = self.state.write();
            let now = Instant::now();
            for pending in batch.drain(..) {
                let applied = apply(
                    &mut state,
                    pending.op,
                    self.committed.load(Ordering::Acquire),
                    now,
                );
                records.extend(applied.records);
                changes.extend(applied.changes);
                wants_snapshot |= applied.wants_snapshot;
                replies.push((pending.reply, applied.reply));
            }
            state.mvcc.current_revision()
        };

        if !records.is_empty()
            && let Err(err) = self.wal.append(&WalBatch { records })
        {
            // The in-memory state is now ahead of the disk; nothing more can be acknowledged.
            tracing::error!(%err, "WAL append failed; the store refuses further writes");
            self.failed.store(true, Ordering::Release);
            for (tx, _) in replies {
                let _ = tx.send(Err(StoreError::Storage(err.to_string())));
            }
            self.rx.close();
            return;
        }
        self.committed.store(revision, Ordering::Release);
        if !changes.is_empty() {
            self.hub
                .publish(Arc::new(CommittedBatch { revision, changes }));
        }
        for (tx, reply) in replies {
            let _ = tx.send(reply);
        }
        if wants_snapshot {
            self.start_snapshot();
        }
    }

    /// Rotates the WAL and writes a snapshot of the current state on a background thread.
    fn start_snapshot(&mut self) {
        if let Some(job) = self.snapshot_job.take() {
            let _ = job.join();
        }
        let next_segment = match self.wal.rotate() {
            Ok(seq) => seq,
            Err(err) => {
                tracing::error!(%err, "WAL rotation failed; keeping the old segments");
                return;
            }
        };
        let batches =
            self.state
                .read()
                .snapshot(next_segment, self.wal.cluster_id, self.wal.member_id);
        let dir = self.wal.dir().to_path_buf();
        let disk_bytes = self.wal.disk_bytes();
        let spawned = std::thread::Builder::new()
            .name("niwa-store-snapshot".into())
            .spawn(move || {
                if let Err(err) = install_snapshot(&dir, &batches, next_segment, &disk_bytes) {
                    tracing::error!(%err, "writing the snapshot failed; old segments are kept");
                }
            });
        match spawned {
            Ok(job) => self.snapshot_job = Some(job),
            Err(err) => tracing::error!(%err, "could not start the snapshot thread"),
        }
    }
}

fn records_of(changes: &[Change]) -> Vec<WalRecord> {
    changes.iter().map(change_record).collect()
}

fn record(kind: RecordKind) -> WalRecord {
    WalRecord { kind: Some(kind) }
}

/// Applies one request to the state. `committed` is the newest durable revision (compaction may
/// not pass it).
fn apply(state: &mut State, op: WriteOp, committed: i64, now: Instant) -> Applied {
    let mut out = Applied {
        reply: Err(StoreError::Stopped),
        records: Vec::new(),
        changes: Vec::new(),
        wants_snapshot: false,
    };
    let State { mvcc, leases } = state;
    match op {
        WriteOp::Put(req) => {
            out.reply = mvcc.put(leases, &req).map(|o| {
                out.changes = o.changes;
                WriteReply::Put(o.response)
            });
        }
        WriteOp::DeleteRange(req) => {
            out.reply = mvcc.delete_range(leases, &req).map(|o| {
                out.changes = o.changes;
                WriteReply::DeleteRange(o.response)
            });
        }
        WriteOp::Txn(req) => {
            out.reply = mvcc.txn(leases, &req).map(|o| {
                out.changes = o.changes;
                WriteReply::Txn(o.response)
            });
        }
        WriteOp::Compact(rev) => {
            out.reply = mvcc.compact(rev, committed).map(|removed| {
                tracing::info!(revision = rev, removed, "compacted");
                out.records.push(record(RecordKind::Compact(rev)));
                out.wants_snapshot = true;
                WriteReply::Revision(mvcc.current_revision())
            });
        }
        WriteOp::LeaseGrant { id, ttl } => {
            let id = if id == 0 { leases.pick_id() } else { id };
            out.reply = leases.grant(id, ttl, now).map(|lease| {
                out.records.push(record(RecordKind::LeaseGrant(LeaseRecord {
                    id,
                    ttl: lease.ttl,
                })));
                WriteReply::LeaseGrant {
                    id,
                    ttl: lease.ttl,
                    revision: mvcc.current_revision(),
                }
            });
        }
        WriteOp::LeaseRevoke(id) => {
            out.reply = leases.revoke(id).map(|lease| {
                let keys: Vec<_> = lease.keys.into_iter().collect();
                out.changes = mvcc.delete_keys(leases, &keys);
                out.records.push(record(RecordKind::LeaseRevoke(id)));
                WriteReply::Revision(mvcc.current_revision())
            });
        }
        WriteOp::ExpireLeases => {
            let mut revoked = 0;
            for id in leases.expired(now, MAX_EXPIRE_PER_PASS) {
                if let Ok(lease) = leases.revoke(id) {
                    let keys: Vec<_> = lease.keys.into_iter().collect();
                    out.changes.extend(mvcc.delete_keys(leases, &keys));
                    out.records.push(record(RecordKind::LeaseRevoke(id)));
                    revoked += 1;
                }
            }
            if revoked > 0 {
                tracing::debug!(revoked, "expired leases revoked");
            }
            out.reply = Ok(WriteReply::Revision(mvcc.current_revision()));
        }
        WriteOp::Snapshot => {
            out.wants_snapshot = true;
            out.reply = Ok(WriteReply::Revision(mvcc.current_revision()));
        }
    }
    // Deletions and puts go to the log before the lease/compaction records of the same request, so
    // replay sees keys deleted before their lease disappears.
    let mut recs = records_of(&out.changes);
    recs.append(&mut out.records);
    out.records = recs;
    out
}
