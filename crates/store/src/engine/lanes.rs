//! Reply lanes: a group commit answers the writes of a single-threaded runtime from inside that
//! runtime, all at once, so that its HTTP/2 connections flush every reply of the group with one
//! `writev` instead of one per reply.
//!
//! Why: the sync thread used to complete each write's oneshot itself. Every completion is a wake
//! from outside the runtime; the woken request task hands its response to the h2 connection task,
//! which tokio then runs next (the multi-threaded scheduler's LIFO slot, or the local queue ahead
//! of the remaining remote wakes on a current-thread runtime), and that task flushes. That was one
//! `writev` (and one TCP segment to the client) per put: ~1.0 per put measured at c=64, about a
//! fifth of the store's CPU. A lane instead receives the whole group's replies for its runtime in
//! one message; its task completes them in a loop, which queues every request task on the local run
//! queue before the connection task, so the connection task runs once, after all of them, and
//! writes all their responses together.
//!
//! The same message carries the group's committed batch to the lane's watch streams (see
//! `watch/hub.rs`): the lane task publishes it before answering the replies, so every stream task
//! it wakes is queued locally, without a cross-thread wake-up each.
//!
//! A thread becomes a lane with [`super::Engine::reply_lane`]; writes issued on any other thread
//! are answered directly by the sync thread, as before.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::RwLock;
use tokio::sync::mpsc;

use super::WriteReply;
use super::syncer::ReplyTx;
use crate::error::StoreError;
use crate::watch::hub::{CommittedBatch, Hub};

/// One write's reply on its way to the task that waits for it.
pub(super) type Reply = (ReplyTx, Result<WriteReply, StoreError>);

/// Batches handed to a lane and not yet published by it. Beyond this (a lane thread that stopped
/// keeping up), the sync thread publishes to the lane's streams itself, so batches never pile up
/// in a lane's inbox; each stream's own queue bounds the rest.
const LANE_BATCHES: usize = 256;

/// A group commit's share for one lane.
struct LaneMsg {
    /// The group's changes, when the lane has watch streams to publish them to.
    batch: Option<Arc<CommittedBatch>>,
    replies: Vec<Reply>,
}

struct Inbox {
    tx: mpsc::UnboundedSender<LaneMsg>,
    /// Batches in `tx` not yet published (bounded by [`LANE_BATCHES`]).
    pending_batches: Arc<AtomicUsize>,
}

thread_local! {
    /// The lane of the current thread, if it is one: (address of its engine's [`Lanes`], index).
    static LANE: Cell<Option<(usize, usize)>> = const { Cell::new(None) };
}

/// The lanes' inboxes. Unbounded channels, yet bounded in effect: every reply in them belongs to a
/// write that still holds one of the engine's `WRITE_QUEUE` permits, and batches are capped at
/// [`LANE_BATCHES`] per lane.
#[derive(Default)]
pub(super) struct Lanes {
    inboxes: RwLock<Vec<Inbox>>,
}

impl Lanes {
    fn id(&self) -> usize {
        self as *const Lanes as usize
    }

    /// The lane the calling thread answers on, if it is one of this engine's.
    pub(super) fn current(&self) -> Option<usize> {
        LANE.with(Cell::get)
            .filter(|(engine, _)| *engine == self.id())
            .map(|(_, lane)| lane)
    }

    /// Registers the calling thread as a new lane; the returned future publishes its batches to
    /// `hub` and answers its replies.
    pub(super) fn register(&self, hub: Arc<Hub>) -> impl Future<Output = ()> + Send + 'static {
        let (tx, mut rx) = mpsc::unbounded_channel::<LaneMsg>();
        let pending_batches = Arc::new(AtomicUsize::new(0));
        let lane = {
            let mut inboxes = self.inboxes.write();
            inboxes.push(Inbox {
                tx,
                pending_batches: pending_batches.clone(),
            });
            inboxes.len() - 1
        };
        LANE.with(|l| l.set(Some((self.id(), lane))));
        async move {
            while let Some(msg) = rx.recv().await {
                if let Some(batch) = msg.batch {
                    hub.publish(&batch, Some(lane));
                    pending_batches.fetch_sub(1, Ordering::Release);
                }
                for (tx, reply) in msg.replies {
                    let _ = tx.send(reply);
                }
            }
        }
    }

    /// Hands out a group commit: `batch` (if any) to the watch streams of every lane and of no
    /// lane, and the replies, in order, to their lanes (each lane's share in one message to its
    /// task). Whatever a lane cannot take (it has stopped, or is too far behind with batches) is
    /// delivered right here.
    pub(super) fn deliver(
        &self,
        batch: Option<Arc<CommittedBatch>>,
        replies: Vec<(Reply, Option<usize>)>,
        hub: &Hub,
    ) {
        if let Some(batch) = &batch {
            hub.publish(batch, None);
        }
        let inboxes = self.inboxes.read();
        let mut per_lane: Vec<Vec<Reply>> = Vec::new();
        per_lane.resize_with(inboxes.len(), Vec::new);
        for (reply, lane) in replies {
            match lane.and_then(|l| per_lane.get_mut(l)) {
                Some(share) => share.push(reply),
                None => {
                    let _ = reply.0.send(reply.1);
                }
            }
        }
        for (lane, (inbox, replies)) in inboxes.iter().zip(per_lane).enumerate() {
            let mut lane_batch = batch.clone().filter(|_| hub.lane_has_streams(lane));
            if let Some(b) = &lane_batch
                && inbox.pending_batches.fetch_add(1, Ordering::AcqRel) >= LANE_BATCHES
            {
                // The lane is far behind: publish from here rather than queue more for it.
                inbox.pending_batches.fetch_sub(1, Ordering::Release);
                hub.publish(b, Some(lane));
                lane_batch = None;
            }
            if lane_batch.is_none() && replies.is_empty() {
                continue;
            }
            let msg = LaneMsg {
                batch: lane_batch,
                replies,
            };
            if let Err(mpsc::error::SendError(msg)) = inbox.tx.send(msg) {
                if let Some(b) = msg.batch {
                    hub.publish(&b, Some(lane));
                }
                for (tx, reply) in msg.replies {
                    let _ = tx.send(reply);
                }
            }
        }
    }
}
