//! One Watch RPC stream: many watchers, created and cancelled by the client, fed from the hub and,
//! when they are behind (a start revision in the past, or a queue that overflowed), from history.
//!
//! Every watcher has `next_rev`: all its events below it have been sent. Live batches deliver events
//! at or above it; catch-up reads history from it up to the committed revision. That one invariant
//! makes the two sources safe to mix in any order without loss or duplicates.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use etcd_client::proto::{
    PbEvent as Event, PbKeyValue as KeyValue, PbWatchRequest as WatchRequest,
    PbWatchRequestUnion as RequestUnion, PbWatchResponse as WatchResponse,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::hub::{CommittedBatch, Subscription};
use crate::engine::Engine;
use crate::header::Header;
use crate::mvcc::{Change, KeyRange};

/// Most changes read from history per lock acquisition, so a far-behind watcher cannot hold the
/// state lock (and with it the writer) for long.
const CATCH_UP_CHUNK: usize = 4096;
/// Most events in one response.
const MAX_EVENTS_PER_RESPONSE: usize = 1000;

const FILTER_NOPUT: i32 = 0;
const FILTER_NODELETE: i32 = 1;

#[derive(Debug)]
struct Watcher {
    range: KeyRange,
    next_rev: i64,
    prev_kv: bool,
    no_put: bool,
    no_delete: bool,
    progress_notify: bool,
}

impl Watcher {
    fn event(&self, change: &Change) -> Option<Event> {
        if change.rev.main < self.next_rev || !self.range.contains(&change.key) {
            return None;
        }
        let (kind, kv) = match &change.kv {
            Some(kv) if !self.no_put => (0, KeyValue::clone(kv)),
            None if !self.no_delete => (
                1,
                KeyValue {
                    key: change.key.to_vec(),
                    mod_revision: change.rev.main,
                    ..Default::default()
                },
            ),
            _ => return None,
        };
        Some(Event {
            r#type: kind,
            kv: Some(kv),
            prev_kv: if self.prev_kv {
                change.prev.as_ref().map(|p| KeyValue::clone(p))
            } else {
                None
            },
        })
    }
}

/// How often watchers that asked for `progress_notify` get an empty progress response.
#[derive(Debug, Clone, Copy)]
pub struct StreamOptions {
    pub progress_interval: Duration,
}

pub struct WatchStream {
    engine: Engine,
    header: Header,
    sub: Subscription,
    out: mpsc::Sender<Result<WatchResponse, tonic::Status>>,
    watchers: BTreeMap<i64, Watcher>,
    next_id: i64,
    options: StreamOptions,
}

/// Why the stream loop ended early: the client went away.
struct Gone;

impl WatchStream {
    pub fn new(
        engine: Engine,
        header: Header,
        out: mpsc::Sender<Result<WatchResponse, tonic::Status>>,
        options: StreamOptions,
    ) -> WatchStream {
        let sub = engine.subscribe_watch();
        WatchStream {
            engine,
            header,
            sub,
            out,
            watchers: BTreeMap::new(),
            next_id: 0,
            options,
        }
    }

    pub async fn run(
        mut self,
        mut requests: tonic::Streaming<WatchRequest>,
        shutdown: CancellationToken,
    ) {
        let mut progress = tokio::time::interval(self.options.progress_interval);
        progress.tick().await;
        // The futures that rarely fire live across iterations: `select!` would otherwise build,
        // register and drop each of them for every delivered batch (with 1,000 watch streams that
        // waiter-list churn was ~10 % of the store's CPU in the fan-out benchmark). They borrow
        // clones, so the loop body keeps `&mut self`.
        let (wake, out) = (self.sub.wake.clone(), self.out.clone());
        let lagging = wake.notified();
        let client_gone = out.closed();
        let stopping = shutdown.cancelled();
        tokio::pin!(lagging, client_gone, stopping);
        // A client that closes its side of the stream still gets events, as from etcd (since
        // 3.1; grpc-gateway does that): the stream ends when the client goes away.
        let mut requests_open = true;
        loop {
            let step = tokio::select! {
                Some(batch) = self.sub.rx.recv() => self.deliver(&batch).await,
                msg = requests.message(), if requests_open => match msg {
                    Ok(Some(req)) => self.handle_request(req).await,
                    Ok(None) => {
                        requests_open = false;
                        Ok(())
                    }
                    Err(_) => Err(Gone),
                },
                () = &mut lagging => {
                    lagging.set(wake.notified());
                    self.catch_up_all().await.map(|_| ())
                }
                _ = progress.tick() => self.progress_notify().await,
                () = &mut client_gone => Err(Gone),
                () = &mut stopping => Err(Gone),
            };
            if step.is_err() {
                break;
            }
        }
    }

    async fn send(&self, resp: WatchResponse) -> Result<(), Gone> {
        self.out.send(Ok(resp)).await.map_err(|_| Gone)
    }

    /// Sends a watcher's events at `revision`, at most [`MAX_EVENTS_PER_RESPONSE`] per response,
    /// moving them into the responses rather than copying them.
    async fn send_events(
        &self,
        id: i64,
        revision: i64,
        mut events: Vec<Event>,
    ) -> Result<(), Gone> {
        while !events.is_empty() {
            let rest = events.split_off(events.len().min(MAX_EVENTS_PER_RESPONSE));
            self.send(WatchResponse {
                header: self.header.with(revision),
                watch_id: id,
                events,
                ..Default::default()
            })
            .await?;
            events = rest;
        }
        Ok(())
    }

    fn refresh_interest(&self) {
        *self.sub.interest.write() = self.watchers.values().map(|w| w.range.clone()).collect();
    }

    async fn handle_request(&mut self, req: WatchRequest) -> Result<(), Gone> {
        match req.request_union {
            Some(RequestUnion::CreateRequest(create)) => {
                let range = KeyRange::new(&create.key, &create.range_end);
                // etcd's watchStream.Watch refuses a range with key >= range_end, then a watch ID
                // already in use; both answer created+canceled with watch_id -1 and the error text
                // as cancel_reason (etcdctl prints "watch was canceled (mvcc: watcher range is
                // empty)" and exits).
                let refused = if range.is_empty() {
                    Some("mvcc: watcher range is empty")
                } else if create.watch_id != 0 && self.watchers.contains_key(&create.watch_id) {
                    Some("mvcc: duplicate watch ID provided on the WatchStream")
                } else {
                    None
                };
                if let Some(reason) = refused {
                    return self
                        .send(WatchResponse {
                            header: self.header.with(self.engine.committed()),
                            watch_id: -1,
                            created: true,
                            canceled: true,
                            cancel_reason: reason.into(),
                            ..Default::default()
                        })
                        .await;
                }
                let id = if create.watch_id != 0 {
                    create.watch_id
                } else {
                    while self.watchers.contains_key(&self.next_id) {
                        self.next_id += 1;
                    }
                    // As in etcd, an automatic ID is never handed out twice on a stream, so a late
                    // response of a cancelled watch cannot be mistaken for a new one.
                    self.next_id += 1;
                    self.next_id - 1
                };
                let committed = self.engine.committed();
                let watcher = Watcher {
                    range,
                    next_rev: if create.start_revision <= 0 {
                        committed + 1
                    } else {
                        create.start_revision
                    },
                    prev_kv: create.prev_kv,
                    no_put: create.filters.contains(&FILTER_NOPUT),
                    no_delete: create.filters.contains(&FILTER_NODELETE),
                    progress_notify: create.progress_notify,
                };
                self.watchers.insert(id, watcher);
                self.refresh_interest();
                self.send(WatchResponse {
                    header: self.header.with(committed),
                    watch_id: id,
                    created: true,
                    ..Default::default()
                })
                .await?;
                self.catch_up(id).await
            }
            Some(RequestUnion::CancelRequest(cancel)) => {
                // An unknown ID gets no answer at all, as in etcd 3.4.
                if self.watchers.remove(&cancel.watch_id).is_some() {
                    self.refresh_interest();
                    self.send(WatchResponse {
                        header: self.header.with(self.engine.committed()),
                        watch_id: cancel.watch_id,
                        canceled: true,
                        ..Default::default()
                    })
                    .await?;
                }
                Ok(())
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                let revision = self.catch_up_all().await?;
                self.send(WatchResponse {
                    header: self.header.with(revision),
                    watch_id: -1,
                    ..Default::default()
                })
                .await
            }
            None => Ok(()),
        }
    }

    /// Sends the events of a live batch to every watcher that is up to date with it.
    async fn deliver(&mut self, batch: &Arc<CommittedBatch>) -> Result<(), Gone> {
        let mut out = Vec::new();
        for (id, w) in self.watchers.iter_mut() {
            if batch.revision < w.next_rev {
                continue;
            }
            let events: Vec<Event> = batch.changes.iter().filter_map(|c| w.event(c)).collect();
            w.next_rev = batch.revision + 1;
            if !events.is_empty() {
                out.push((*id, events));
            }
        }
        for (id, events) in out {
            self.send_events(id, batch.revision, events).await?;
        }
        Ok(())
    }

    /// Brings every watcher up to the committed revision from history; returns that revision.
    async fn catch_up_all(&mut self) -> Result<i64, Gone> {
        self.sub.lagging.store(false, Ordering::Release);
        let committed = self.engine.committed();
        let ids: Vec<i64> = self.watchers.keys().copied().collect();
        for id in ids {
            self.catch_up(id).await?;
        }
        Ok(committed)
    }

    /// Replays history for one watcher from its `next_rev` to the committed revision, or cancels it
    /// when that history has been compacted away.
    async fn catch_up(&mut self, id: i64) -> Result<(), Gone> {
        loop {
            let Some(w) = self.watchers.get(&id) else {
                return Ok(());
            };
            let from = w.next_rev;
            let (events, reached, target, compacted) = self.engine.read(|state, committed| {
                let compacted = state.mvcc.compacted_revision();
                if from < compacted {
                    return (Vec::new(), from, committed, Some(compacted));
                }
                let mut events = Vec::new();
                let mut reached = committed;
                let mut last_main = from - 1;
                for (n, change) in state.mvcc.changes_between(from, committed).enumerate() {
                    // Stop only at a revision boundary so a txn's events stay together.
                    if n >= CATCH_UP_CHUNK && change.rev.main != last_main {
                        reached = last_main;
                        break;
                    }
                    last_main = change.rev.main;
                    events.extend(w.event(&change));
                }
                (events, reached, committed, None)
            });
            if let Some(compact_revision) = compacted {
                self.watchers.remove(&id);
                self.refresh_interest();
                // etcd 3.4 leaves the revision out of this header (its watcher response carries
                // only CompactRevision, so the header is built with revision 0); observed with
                // `etcdctl watch --rev=<compacted> -w json`.
                return self
                    .send(WatchResponse {
                        header: self.header.with(0),
                        watch_id: id,
                        canceled: true,
                        compact_revision,
                        ..Default::default()
                    })
                    .await;
            }
            if let Some(w) = self.watchers.get_mut(&id) {
                w.next_rev = w.next_rev.max(reached + 1);
            }
            self.send_events(id, reached, events).await?;
            if reached >= target {
                return Ok(());
            }
        }
    }

    /// Periodic empty responses for watchers that asked for progress notifications.
    async fn progress_notify(&mut self) -> Result<(), Gone> {
        if !self.watchers.values().any(|w| w.progress_notify) {
            return Ok(());
        }
        let revision = self.catch_up_all().await?;
        let ids: Vec<i64> = self
            .watchers
            .iter()
            .filter(|(_, w)| w.progress_notify)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.send(WatchResponse {
                header: self.header.with(revision),
                watch_id: id,
                ..Default::default()
            })
            .await?;
        }
        Ok(())
    }
}
