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
//! A thread becomes a lane with [`super::Engine::reply_lane`]; writes issued on any other thread
//! are answered directly by the sync thread, as before.

use std::cell::Cell;

use parking_lot::RwLock;
use tokio::sync::mpsc;

use super::WriteReply;
use super::syncer::ReplyTx;
use crate::error::StoreError;

/// One write's reply on its way to the task that waits for it.
pub(super) type Reply = (ReplyTx, Result<WriteReply, StoreError>);

thread_local! {
    /// The lane of the current thread, if it is one: (address of its engine's [`Lanes`], index).
    static LANE: Cell<Option<(usize, usize)>> = const { Cell::new(None) };
}

/// The lanes' inboxes. Unbounded channels, yet bounded in effect: every reply in them belongs to a
/// write that still holds one of the engine's `WRITE_QUEUE` permits.
#[derive(Default)]
pub(super) struct Lanes {
    inboxes: RwLock<Vec<mpsc::UnboundedSender<Vec<Reply>>>>,
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

    /// Registers the calling thread as a new lane; the returned future answers its replies.
    pub(super) fn register(&self) -> impl Future<Output = ()> + Send + 'static {
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<Reply>>();
        let lane = {
            let mut inboxes = self.inboxes.write();
            inboxes.push(tx);
            inboxes.len() - 1
        };
        LANE.with(|l| l.set(Some((self.id(), lane))));
        async move {
            while let Some(replies) = rx.recv().await {
                for (tx, reply) in replies {
                    let _ = tx.send(reply);
                }
            }
        }
    }

    /// Answers a group commit's replies, in order: each lane's share in one message to its task,
    /// the rest (and any whose lane has stopped) right here.
    pub(super) fn deliver(&self, replies: Vec<(Reply, Option<usize>)>) {
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
        for (inbox, share) in inboxes.iter().zip(per_lane) {
            if share.is_empty() {
                continue;
            }
            if let Err(mpsc::error::SendError(share)) = inbox.send(share) {
                for (tx, reply) in share {
                    let _ = tx.send(reply);
                }
            }
        }
    }
}
