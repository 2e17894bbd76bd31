//! Fan-out of committed changes to watch streams, never blocking the writer.
//!
//! Each stream registers once and gets a bounded queue of committed batches. Publishing is a
//! `try_send` of an `Arc`: when a stream's queue is full the batch is dropped for that stream and the
//! stream is flagged as lagging; the stream then catches up from the MVCC history (which holds every
//! change until compaction) at its own pace. A slow watcher therefore costs at most its queue bound
//! and never delays writers or other watchers (etcd's synced/unsynced watcher groups).
//!
//! Streams are grouped by the engine's reply lane (the server thread) they run on. The sync thread
//! publishes straight to the streams on no lane, and hands each lane the batch to publish to its
//! own streams from its own thread (`engine/lanes.rs`): a task woken from another thread costs a
//! cross-thread wake-up (an eventfd `write`, ~0.7 per delivered event in the 1,000-watcher
//! fan-out), while tasks woken from their own thread are just queued there, all before the
//! connections run. (That each stream still flushed on its own was h2's doing; see `coalesce.rs`.)

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{Notify, mpsc};

use crate::mvcc::{Change, KeyRange};

/// Batches queued per stream before it is switched to catching up from history.
pub const STREAM_QUEUE: usize = 256;

/// The changes of one group commit, in revision order.
#[derive(Debug)]
pub struct CommittedBatch {
    /// The highest main revision in the batch (== the committed revision after it).
    pub revision: i64,
    pub changes: Vec<Change>,
}

struct Slot {
    tx: mpsc::Sender<Arc<CommittedBatch>>,
    lagging: Arc<AtomicBool>,
    wake: Arc<Notify>,
    interest: Arc<RwLock<Vec<KeyRange>>>,
}

/// The streams of one lane (index `lane + 1`) or of no lane (index 0).
type Group = Mutex<HashMap<u64, Slot>>;

#[derive(Default)]
pub struct Hub {
    groups: RwLock<Vec<Arc<Group>>>,
    next_id: AtomicU64,
    /// Counts each switch of a stream to catching up (its queue was full).
    overflows: Counter,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("streams", &self.stream_count())
            .finish()
    }
}

/// A stream's end of the hub; unregisters on drop.
pub struct Subscription {
    group: Arc<Group>,
    id: u64,
    pub rx: mpsc::Receiver<Arc<CommittedBatch>>,
    pub lagging: Arc<AtomicBool>,
    pub wake: Arc<Notify>,
    /// The key ranges the stream watches; batches touching none of them are not queued.
    pub interest: Arc<RwLock<Vec<KeyRange>>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.group.lock().remove(&self.id);
    }
}

impl Hub {
    /// A hub that counts overflowing streams in `overflows`.
    pub fn new(overflows: Counter) -> Hub {
        Hub {
            overflows,
            ..Hub::default()
        }
    }

    /// The group of `lane` (`None`: no lane), created on first use.
    fn group(&self, lane: Option<usize>) -> Arc<Group> {
        let index = lane.map_or(0, |l| l + 1);
        if let Some(group) = self.groups.read().get(index) {
            return group.clone();
        }
        let mut groups = self.groups.write();
        while groups.len() <= index {
            groups.push(Arc::default());
        }
        groups[index].clone()
    }

    /// Registers a stream that runs on `lane`'s thread (`None`: any other thread).
    pub fn subscribe(&self, lane: Option<usize>) -> Subscription {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let lagging = Arc::new(AtomicBool::new(false));
        let wake = Arc::new(Notify::new());
        let interest = Arc::new(RwLock::new(Vec::new()));
        let group = self.group(lane);
        group.lock().insert(
            id,
            Slot {
                tx,
                lagging: lagging.clone(),
                wake: wake.clone(),
                interest: interest.clone(),
            },
        );
        Subscription {
            group,
            id,
            rx,
            lagging,
            wake,
            interest,
        }
    }

    pub fn stream_count(&self) -> usize {
        self.groups.read().iter().map(|g| g.lock().len()).sum()
    }

    /// True if `lane` has streams to publish to.
    pub fn lane_has_streams(&self, lane: usize) -> bool {
        self.groups
            .read()
            .get(lane + 1)
            .is_some_and(|g| !g.lock().is_empty())
    }

    /// Hands a committed batch to every interested stream of `lane` (`None`: of no lane). Never
    /// blocks.
    pub fn publish(&self, batch: &Arc<CommittedBatch>, lane: Option<usize>) {
        let Some(group) = self.groups.read().get(lane.map_or(0, |l| l + 1)).cloned() else {
            return;
        };
        let slots = group.lock();
        for slot in slots.values() {
            let interested = slot
                .interest
                .read()
                .iter()
                .any(|range| batch.changes.iter().any(|c| range.contains(&c.key)));
            if !interested {
                continue;
            }
            if slot.tx.try_send(batch.clone()).is_err() {
                if !slot.lagging.swap(true, Ordering::AcqRel) {
                    self.overflows.inc();
                }
                slot.wake.notify_one();
            }
        }
    }
}
