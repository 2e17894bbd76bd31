//! The work queue: client-go's `workqueue` (rate-limiting, delaying, deduplicating) for async
//! Rust.
//!
//! * **Dedupe**: a key added while it waits is not queued twice.
//! * **In-flight exclusivity**: a key handed out by [`WorkQueue::next`] is not handed out again
//!   until [`WorkQueue::done`]; adds in between mark it dirty and it is queued again at `done`.
//!   So two workers never process the same object at once.
//! * **Delays**: [`WorkQueue::add_after`] queues a key later (the earliest of several requested
//!   times wins).
//! * **Rate limiting**: [`WorkQueue::add_rate_limited`] delays a key by its own exponential
//!   backoff, 5 ms doubling per failure up to 1000 s (client-go's `ItemExponentialFailureRateLimiter`
//!   defaults); [`WorkQueue::forget`] resets it after a success.
//!
//! Bound: the queue holds each distinct key at most once (queued, in flight or waiting), so its
//! size is bounded by the number of distinct keys — the objects a controller watches.
//!
//! Time is tokio's, so tests can run it under a paused clock.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Per-key exponential backoff of [`WorkQueue::add_rate_limited`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub base: Duration,
    pub max: Duration,
}

impl Default for RateLimit {
    /// client-go's defaults: 5 ms, doubling, capped at 1000 s.
    fn default() -> Self {
        RateLimit {
            base: Duration::from_millis(5),
            max: Duration::from_secs(1000),
        }
    }
}

impl RateLimit {
    /// The delay after `failures` failures (1 → base).
    pub fn delay(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(40);
        let factor = 2u64.saturating_pow(exp);
        let nanos = (self.base.as_nanos() as u64).saturating_mul(factor);
        Duration::from_nanos(nanos).min(self.max)
    }
}

struct State<T> {
    /// Keys ready to be handed out, in order.
    queue: VecDeque<T>,
    /// Keys that need processing: queued, or added again while in flight.
    dirty: HashSet<T>,
    /// Keys handed out and not yet `done`.
    processing: HashSet<T>,
    /// Keys waiting for a time, with the earliest time each is wanted.
    waiting: HashMap<T, Instant>,
    /// (when, sequence, key); entries whose time no longer matches `waiting` are stale.
    timers: BinaryHeap<Reverse<(Instant, u64, T)>>,
    seq: u64,
    failures: HashMap<T, u32>,
    shutting_down: bool,
}

impl<T: Clone + Eq + Hash + Ord> State<T> {
    fn add(&mut self, key: T) -> bool {
        if self.shutting_down || self.dirty.contains(&key) {
            return false;
        }
        self.dirty.insert(key.clone());
        if self.processing.contains(&key) {
            return false;
        }
        self.queue.push_back(key);
        true
    }

    /// Moves keys whose time has come into the queue; returns the next wake-up time.
    fn promote(&mut self, now: Instant) -> Option<Instant> {
        while let Some(Reverse((when, _, key))) = self.timers.peek() {
            if self.waiting.get(key) != Some(when) {
                self.timers.pop();
                continue;
            }
            if *when > now {
                return Some(*when);
            }
            if let Some(Reverse((_, _, key))) = self.timers.pop() {
                self.waiting.remove(&key);
                self.add(key);
            }
        }
        None
    }
}

/// A deduplicating, delaying, rate-limiting queue of keys shared by a controller's workers.
/// Cheap to clone (clones share the queue).
pub struct WorkQueue<T> {
    state: Arc<Mutex<State<T>>>,
    notify: Arc<Notify>,
    rate_limit: RateLimit,
}

impl<T> Clone for WorkQueue<T> {
    fn clone(&self) -> Self {
        WorkQueue {
            state: self.state.clone(),
            notify: self.notify.clone(),
            rate_limit: self.rate_limit,
        }
    }
}

impl<T> std::fmt::Debug for WorkQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state.lock();
        f.debug_struct("WorkQueue")
            .field("queued", &s.queue.len())
            .field("processing", &s.processing.len())
            .field("waiting", &s.waiting.len())
            .finish()
    }
}

impl<T: Clone + Eq + Hash + Ord + Send + 'static> Default for WorkQueue<T> {
    fn default() -> Self {
        WorkQueue::new()
    }
}

impl<T: Clone + Eq + Hash + Ord + Send + 'static> WorkQueue<T> {
    pub fn new() -> WorkQueue<T> {
        WorkQueue::with_rate_limit(RateLimit::default())
    }

    pub fn with_rate_limit(rate_limit: RateLimit) -> WorkQueue<T> {
        WorkQueue {
            state: Arc::new(Mutex::new(State {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                waiting: HashMap::new(),
                timers: BinaryHeap::new(),
                seq: 0,
                failures: HashMap::new(),
                shutting_down: false,
            })),
            notify: Arc::new(Notify::new()),
            rate_limit,
        }
    }

    /// Queues `key` now (no-op if it is already queued; if it is in flight it is queued again
    /// when its worker calls [`WorkQueue::done`]).
    pub fn add(&self, key: T) {
        let added = {
            let mut s = self.state.lock();
            s.waiting.remove(&key);
            s.add(key)
        };
        if added {
            self.notify.notify_one();
        }
    }

    /// Queues `key` after `delay`. If it is already waiting, the earlier time wins.
    pub fn add_after(&self, key: T, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        let when = Instant::now() + delay;
        {
            let mut s = self.state.lock();
            if s.shutting_down {
                return;
            }
            if s.waiting.get(&key).is_some_and(|w| *w <= when) {
                return;
            }
            s.waiting.insert(key.clone(), when);
            s.seq += 1;
            let seq = s.seq;
            s.timers.push(Reverse((when, seq, key)));
        }
        // A waiting worker may need to wake earlier than it planned.
        self.notify.notify_one();
    }

    /// Queues `key` after its own backoff (5 ms, 10 ms, 20 ms, ... up to 1000 s), counting one
    /// more failure for it.
    pub fn add_rate_limited(&self, key: T) {
        let failures = {
            let mut s = self.state.lock();
            let n = s.failures.entry(key.clone()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        self.add_after(key, self.rate_limit.delay(failures));
    }

    /// Forgets `key`'s failures: its next rate-limited add waits the base delay again.
    pub fn forget(&self, key: &T) {
        self.state.lock().failures.remove(key);
    }

    /// How many failures `key` has had since it was last forgotten.
    pub fn num_requeues(&self, key: &T) -> u32 {
        self.state.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// Waits for the next key and marks it in flight. `None` once the queue is shut down and
    /// drained.
    pub async fn next(&self) -> Option<T> {
        loop {
            let wake_at = {
                let mut s = self.state.lock();
                let wake_at = if s.shutting_down {
                    None
                } else {
                    s.promote(Instant::now())
                };
                if let Some(key) = s.queue.pop_front() {
                    s.dirty.remove(&key);
                    s.processing.insert(key.clone());
                    let more = !s.queue.is_empty();
                    drop(s);
                    if more {
                        // Pass the baton: another worker may take the next key.
                        self.notify.notify_one();
                    }
                    return Some(key);
                }
                if s.shutting_down {
                    return None;
                }
                wake_at
            };
            match wake_at {
                Some(at) => {
                    tokio::select! {
                        _ = self.notify.notified() => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => self.notify.notified().await,
            }
        }
    }

    /// Marks `key` as processed; if it was added while in flight, it is queued again.
    pub fn done(&self, key: &T) {
        let requeued = {
            let mut s = self.state.lock();
            s.processing.remove(key);
            if s.dirty.contains(key) && !s.shutting_down {
                s.queue.push_back(key.clone());
                true
            } else {
                false
            }
        };
        if requeued {
            self.notify.notify_one();
        }
    }

    /// Stops accepting keys; [`WorkQueue::next`] hands out what is queued, then returns `None`.
    /// Keys waiting for a delay are dropped.
    pub fn shut_down(&self) {
        {
            let mut s = self.state.lock();
            s.shutting_down = true;
            s.waiting.clear();
            s.timers.clear();
        }
        self.notify.notify_waiters();
        // `notify_waiters` does not leave a permit: wake one late arrival too.
        self.notify.notify_one();
    }

    pub fn is_shutting_down(&self) -> bool {
        self.state.lock().shutting_down
    }

    /// Keys ready to be handed out.
    pub fn len(&self) -> usize {
        self.state.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys waiting for a delay to pass.
    pub fn waiting(&self) -> usize {
        self.state.lock().waiting.len()
    }

    /// Keys in flight.
    pub fn in_flight(&self) -> usize {
        self.state.lock().processing.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn next_now(q: &WorkQueue<&'static str>) -> Option<&'static str> {
        tokio::time::timeout(Duration::from_millis(1), q.next())
            .await
            .ok()
            .flatten()
    }

    #[tokio::test(start_paused = true)]
    async fn dedupes_queued_keys() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("b");
        q.add("a");
        assert_eq!(q.len(), 2);
        assert_eq!(q.next().await, Some("a"));
        assert_eq!(q.next().await, Some("b"));
        assert_eq!(next_now(&q).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_in_flight_is_not_handed_out_twice() {
        let q = WorkQueue::new();
        q.add("a");
        assert_eq!(q.next().await, Some("a"));
        q.add("a");
        q.add("a");
        assert_eq!(next_now(&q).await, None, "a is in flight");
        assert_eq!(q.in_flight(), 1);
        q.done(&"a");
        assert_eq!(
            q.next().await,
            Some("a"),
            "re-added while in flight: queued at done"
        );
        q.done(&"a");
        assert_eq!(next_now(&q).await, None, "only once");
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_keys_come_at_their_time_and_the_earliest_wins() {
        let q = WorkQueue::new();
        let start = Instant::now();
        q.add_after("late", Duration::from_secs(10));
        q.add_after("soon", Duration::from_secs(2));
        q.add_after("late", Duration::from_secs(5));
        q.add_after("late", Duration::from_secs(50));
        assert_eq!(q.waiting(), 2);
        assert_eq!(q.next().await, Some("soon"));
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert_eq!(q.next().await, Some("late"));
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        assert_eq!(q.waiting(), 0);
        assert_eq!(
            next_now(&q).await,
            None,
            "the 10 s and 50 s entries were superseded"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_immediate_add_overrides_a_delay() {
        let q = WorkQueue::new();
        q.add_after("a", Duration::from_secs(60));
        q.add("a");
        assert_eq!(q.next().await, Some("a"));
        q.done(&"a");
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert_eq!(next_now(&q).await, None, "the delayed entry was cancelled");
    }

    #[tokio::test(start_paused = true)]
    async fn a_sleeping_worker_wakes_for_an_earlier_key() {
        let q = WorkQueue::new();
        q.add_after("far", Duration::from_secs(100));
        let worker = tokio::spawn({
            let q = q.clone();
            async move { (q.next().await, Instant::now()) }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        let start = Instant::now();
        q.add_after("near", Duration::from_secs(3));
        let (key, at) = worker.await.expect("worker");
        assert_eq!(key, Some("near"));
        assert_eq!(at - start, Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limited_requeues_back_off_exponentially_until_forgotten() {
        let q = WorkQueue::new();
        let mut waits = Vec::new();
        for _ in 0..4 {
            let start = Instant::now();
            q.add_rate_limited("a");
            assert_eq!(q.next().await, Some("a"));
            q.done(&"a");
            waits.push(start.elapsed().as_millis());
        }
        assert_eq!(waits, vec![5, 10, 20, 40]);
        assert_eq!(q.num_requeues(&"a"), 4);
        q.forget(&"a");
        let start = Instant::now();
        q.add_rate_limited("a");
        assert_eq!(q.next().await, Some("a"));
        assert_eq!(start.elapsed(), Duration::from_millis(5));
        assert_eq!(RateLimit::default().delay(30), Duration::from_secs(1000));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_workers_share_keys_without_overlap() {
        let q: WorkQueue<u32> = WorkQueue::new();
        let in_flight = Arc::new(Mutex::new(HashSet::new()));
        let processed = Arc::new(Mutex::new(Vec::new()));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let q = q.clone();
            let in_flight = in_flight.clone();
            let processed = processed.clone();
            workers.spawn(async move {
                while let Some(k) = q.next().await {
                    assert!(in_flight.lock().insert(k), "{k} handed out twice");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    in_flight.lock().remove(&k);
                    processed.lock().push(k);
                    q.done(&k);
                }
            });
        }
        for round in 0..3 {
            for k in 0..20 {
                q.add(k);
            }
            tokio::time::sleep(Duration::from_millis(5 + round)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        q.shut_down();
        while workers.join_next().await.is_some() {}
        let processed = processed.lock();
        for k in 0..20 {
            assert!(processed.contains(&k), "{k} processed");
        }
        assert!(processed.len() <= 60);
    }

    #[tokio::test(start_paused = true)]
    async fn shut_down_drains_queued_keys_then_ends() {
        let q = WorkQueue::new();
        q.add("a");
        q.add_after("later", Duration::from_secs(1));
        let waiter = tokio::spawn({
            let q = q.clone();
            async move {
                let first = q.next().await;
                let second = q.next().await;
                (first, second)
            }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        q.shut_down();
        q.add("ignored");
        assert_eq!(waiter.await.expect("task"), (Some("a"), None));
    }
}
