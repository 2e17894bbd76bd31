//! The group commit: one thread that makes applied writes durable and then acknowledges them.
//!
//! A write request is applied to the state by the task that received it (under the state lock), and
//! its WAL frame, reply and changes are queued here in apply order ([`Log::push`]). The sync thread
//! takes everything queued, writes it to the WAL with one `write` and one `fdatasync`, and only then
//! advances the committed revision, publishes the changes to watchers and answers the clients, in
//! apply order. While it syncs, new requests keep being applied and queued, and all of them share the
//! next sync: the disk syncs back to back and the group grows with the load, with no thread hop
//! between the request and the apply.
//!
//! Closed-loop writers come back as a cohort: the writers a sync answered resubmit together, and
//! syncing as soon as the first of them arrives splits them over two syncs (steady state then
//! alternates a small group with a big one). So when most of the last group is still missing, the
//! sync thread waits for it, at most as long as the last sync took and never more than
//! `NIWA_STORE_COHORT_WAIT_US` (default 1000; 0 turns the wait off), and syncs them all at once.
//!
//! Durability is unchanged: nothing is acknowledged, visible to reads (they read at the committed
//! revision) or sent to watchers before an `fdatasync` that started after its frame was written.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;

use super::WriteReply;
use super::lanes::{Lanes, Reply};
use crate::error::{StoreError, WalError};
use crate::metrics::CommitMetrics;
use crate::mvcc::Change;
use crate::state::change_ref;
use crate::wal::record::{RecordKind, RecordRef, WalBatch, WalRecord, encode_frame_of};
use crate::wal::{Wal, install_snapshot};
use crate::watch::hub::{CommittedBatch, Hub};

pub(super) type ReplyTx = oneshot::Sender<Result<WriteReply, StoreError>>;

/// Frames of the queue that go to one segment; a snapshot request starts a new one.
#[derive(Default)]
struct Chunk {
    /// Rotate to a new segment before writing `frames`, and install this snapshot of the state as
    /// of the rotation (its header's `next_segment` is filled in once the new segment exists).
    rotate: Option<Vec<WalBatch>>,
    frames: Vec<u8>,
}

/// Everything applied but not yet durable, in apply order.
#[derive(Default)]
struct Queue {
    chunks: Vec<Chunk>,
    /// Each reply with the lane that answers it ([`Lanes`]).
    replies: Vec<(Reply, Option<usize>)>,
    changes: Vec<Change>,
    /// The store's revision after the newest queued write.
    revision: i64,
    closed: bool,
    /// While the sync thread waits for a cohort: the queue length that wakes it (0: none).
    want: usize,
}

impl Queue {
    fn is_empty(&self) -> bool {
        self.replies.is_empty() && self.chunks.is_empty()
    }
}

/// The queue shared by the writing tasks and the sync thread.
#[derive(Default)]
pub(super) struct Log {
    queue: Mutex<Queue>,
    wake: Condvar,
}

impl Log {
    /// Queues one applied request: its WAL frame holds its changes' records (puts encoded straight
    /// from the state's `KeyValue`s) followed by `records`, its others. Call it while still holding
    /// the state lock the request was applied under, so the queue order is the apply order.
    pub(super) fn push(
        &self,
        revision: i64,
        records: Vec<WalRecord>,
        changes: Vec<Change>,
        snapshot: Option<Vec<WalBatch>>,
        reply: Reply,
        lane: Option<usize>,
    ) {
        let mut q = self.queue.lock();
        if q.chunks.is_empty() {
            q.chunks.push(Chunk::default());
        }
        // The changes' records first, then the request's others (lease, compaction): replay must
        // see keys deleted before their lease disappears.
        if (!changes.is_empty() || !records.is_empty())
            && let Some(chunk) = q.chunks.last_mut()
        {
            let refs: Vec<RecordRef<'_>> = changes
                .iter()
                .map(change_ref)
                .chain(records.into_iter().map(RecordRef::Owned))
                .collect();
            encode_frame_of(&refs, &mut chunk.frames);
        }
        if snapshot.is_some() {
            // The snapshot covers this request: everything after it goes to the next segment.
            q.chunks.push(Chunk {
                rotate: snapshot,
                frames: Vec::new(),
            });
        }
        if q.changes.is_empty() {
            q.changes = changes;
        } else {
            q.changes.extend(changes);
        }
        q.replies.push((reply, lane));
        q.revision = revision;
        let len = q.replies.len();
        let wake = len == 1 || len == q.want;
        drop(q);
        if wake {
            self.wake.notify_one();
        }
    }

    /// Lets the sync thread finish what is queued and stop.
    pub(super) fn close(&self) {
        self.queue.lock().closed = true;
        self.wake.notify_one();
    }

    /// Waits for queued work; `None` once closed and drained. With a [`Cohort`], once something is
    /// queued it also waits (until the cohort's deadline) for the queue to reach the cohort's size.
    fn take(&self, cohort: Option<Cohort>) -> Option<Queue> {
        let mut q = self.queue.lock();
        // Writes queued during the last sync came from other writers: the cohort comes on top.
        let want = q.replies.len() + cohort.map_or(0, |c| c.writers);
        while q.is_empty() && !q.closed {
            self.wake.wait(&mut q);
        }
        // Only a cohort that is mostly still missing is worth holding the disk for: with many
        // writers in flight the group is big anyway, and waiting for the last of them only idles
        // the disk (measured: slower at 256 writers).
        if let Some(cohort) = cohort
            && q.replies.len() * 2 < want
        {
            q.want = want;
            while q.replies.len() < want && !q.closed {
                if self.wake.wait_until(&mut q, cohort.deadline).timed_out() {
                    break;
                }
            }
            q.want = 0;
        }
        if q.is_empty() {
            return None;
        }
        Some(Queue {
            chunks: std::mem::take(&mut q.chunks),
            replies: std::mem::take(&mut q.replies),
            changes: std::mem::take(&mut q.changes),
            revision: q.revision,
            closed: false,
            want: 0,
        })
    }
}

/// Longest the sync thread holds a sync back to let the writers it just answered join it, unless
/// `NIWA_STORE_COHORT_WAIT_US` says otherwise (0 turns the wait off).
const MAX_COHORT_WAIT: Duration = Duration::from_micros(1000);

/// The cohort wait in effect (see [`MAX_COHORT_WAIT`]).
pub(super) fn max_cohort_wait() -> Duration {
    std::env::var("NIWA_STORE_COHORT_WAIT_US")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(MAX_COHORT_WAIT, Duration::from_micros)
}

/// The writers the last sync answered, expected back soon (see the module docs).
#[derive(Debug, Clone, Copy)]
struct Cohort {
    writers: usize,
    deadline: Instant,
}

pub(super) struct Syncer {
    pub(super) log: Arc<Log>,
    pub(super) wal: Wal,
    pub(super) committed: Arc<AtomicI64>,
    pub(super) hub: Arc<Hub>,
    pub(super) lanes: Arc<Lanes>,
    pub(super) failed: Arc<AtomicBool>,
    pub(super) snapshot_job: Option<JoinHandle<()>>,
    pub(super) max_cohort_wait: Duration,
    pub(super) metrics: CommitMetrics,
}

impl Syncer {
    pub(super) fn run(mut self) {
        let mut broken: Option<String> = None;
        let mut cohort = None;
        while let Some(group) = self.log.take(cohort) {
            let started = Instant::now();
            if broken.is_none()
                && let Err(err) = self.persist(group.chunks)
            {
                // The in-memory state is ahead of the disk, and after a failed fsync the kernel
                // may have dropped the dirty pages: nothing more is ever acknowledged.
                tracing::error!(%err, "WAL write failed; the store refuses further writes");
                self.failed.store(true, Ordering::Release);
                broken = Some(err.to_string());
            }
            if let Some(err) = &broken {
                for ((tx, _), _) in group.replies {
                    let _ = tx.send(Err(StoreError::Storage(err.clone())));
                }
                continue;
            }
            self.committed.store(group.revision, Ordering::Release);
            let batch = (!group.changes.is_empty()).then(|| {
                Arc::new(CommittedBatch {
                    revision: group.revision,
                    changes: group.changes,
                })
            });
            let writers = group.replies.len();
            self.metrics.group_writes.observe(writers as f64);
            let synced = started.elapsed();
            self.lanes.deliver(batch, group.replies, &self.hub);
            // Waiting costs the queued writes at most about one sync, and saves one.
            cohort = (writers > 1 && !self.max_cohort_wait.is_zero()).then(|| Cohort {
                writers,
                deadline: Instant::now() + synced.min(self.max_cohort_wait),
            });
        }
        if let Some(job) = self.snapshot_job.take() {
            let _ = job.join();
        }
    }

    /// Writes the group's frames and syncs them (the old segment before a rotation too).
    fn persist(&mut self, chunks: Vec<Chunk>) -> Result<(), WalError> {
        let mut dirty = false;
        for chunk in chunks {
            if let Some(snapshot) = chunk.rotate {
                if dirty {
                    self.sync()?;
                    dirty = false;
                }
                self.start_snapshot(snapshot);
            }
            if !chunk.frames.is_empty() {
                self.wal.write_frames(&chunk.frames)?;
                dirty = true;
            }
        }
        if dirty {
            self.sync()?;
        }
        Ok(())
    }

    fn sync(&self) -> Result<(), WalError> {
        let started = Instant::now();
        self.wal.sync()?;
        self.metrics.fsync.observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Rotates the WAL and writes the snapshot on a background thread.
    fn start_snapshot(&mut self, mut batches: Vec<WalBatch>) {
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
        if let Some(RecordKind::Header(h)) = batches
            .first_mut()
            .and_then(|b| b.records.first_mut())
            .and_then(|r| r.kind.as_mut())
        {
            h.next_segment = next_segment;
        }
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
