//! The scheduling queue (kube's `PriorityQueue`), IO-free with an injected clock:
//! * **active**: pods ready to be tried, highest `spec.priority` first, then oldest;
//! * **backoff**: pods that failed, waiting 1 s doubling per attempt up to 10 s;
//! * **unschedulable**: pods no node fits, parked until a cluster event that could help one of
//!   the plugins that rejected them (node added or changed, a pod deleted, …), or 5 minutes.
//!
//! A pod is in at most one of the three, or *in flight* (popped, being scheduled). Bounded by the
//! number of pending pods of this scheduler (one entry per pod).

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::plugins::Plugin;
use crate::pod_info::PodInfo;

pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// kube's `podMaxInUnschedulablePodsDuration`.
pub const MAX_IN_UNSCHEDULABLE: Duration = Duration::from_secs(300);

/// A pending pod and its scheduling history.
#[derive(Debug, Clone)]
pub struct QueuedPod {
    pub info: Arc<PodInfo>,
    /// Scheduling attempts so far.
    pub attempts: u32,
    /// When the pod was last added or attempted (orders the active queue, starts backoff).
    pub timestamp: Instant,
    /// When the pod first entered the queue (end-to-end latency).
    pub initial: Instant,
    /// Plugins that rejected the pod in its last attempt (empty: any event may help).
    pub rejected_by: BTreeSet<Plugin>,
}

impl QueuedPod {
    pub fn new(info: Arc<PodInfo>, now: Instant) -> QueuedPod {
        QueuedPod {
            info,
            attempts: 0,
            timestamp: now,
            initial: now,
            rejected_by: BTreeSet::new(),
        }
    }

    /// kube's `calculateBackoffDuration`.
    pub fn backoff(&self) -> Duration {
        let mut d = INITIAL_BACKOFF;
        for _ in 1..self.attempts {
            if d > MAX_BACKOFF - d {
                return MAX_BACKOFF;
            }
            d += d;
        }
        d
    }

    fn backoff_expiry(&self) -> Instant {
        self.timestamp + self.backoff()
    }
}

/// A cluster change that may make parked pods schedulable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterEvent {
    NodeAdd,
    NodeAllocatableChange,
    NodeLabelChange,
    NodeTaintChange,
    AssignedPodAdd,
    AssignedPodLabelChange,
    AssignedPodDelete,
    /// A PersistentVolumeClaim was added or updated.
    PvcChange,
    /// A PersistentVolume was added or updated.
    PvChange,
}

impl ClusterEvent {
    /// kube's `EventsToRegister` of the default plugins, inverted.
    pub fn may_help(self, plugin: Plugin) -> bool {
        use ClusterEvent::*;
        use Plugin::*;
        match self {
            NodeAdd => true,
            NodeAllocatableChange => plugin == NodeResourcesFit,
            NodeLabelChange => matches!(
                plugin,
                NodeAffinity | VolumeBinding | InterPodAffinity | PodTopologySpread
            ),
            NodeTaintChange => matches!(
                plugin,
                TaintToleration | NodeUnschedulable | PodTopologySpread
            ),
            AssignedPodAdd | AssignedPodLabelChange => {
                matches!(plugin, InterPodAffinity | PodTopologySpread)
            }
            AssignedPodDelete => matches!(
                plugin,
                NodeResourcesFit | NodePorts | InterPodAffinity | PodTopologySpread
            ),
            PvcChange | PvChange => plugin == VolumeBinding,
        }
    }
}

#[derive(Debug)]
struct Active {
    priority: i32,
    timestamp: Instant,
    seq: u64,
    uid: String,
}

impl Ord for Active {
    fn cmp(&self, o: &Self) -> Ordering {
        self.priority
            .cmp(&o.priority)
            .then(o.timestamp.cmp(&self.timestamp))
            .then(o.seq.cmp(&self.seq))
    }
}
impl PartialOrd for Active {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl PartialEq for Active {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Active {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Where {
    Active,
    Backoff,
    Unschedulable,
    InFlight,
}

#[derive(Debug)]
struct Entry {
    pod: QueuedPod,
    place: Where,
    /// Bumped when the pod moves, so stale heap entries are recognised and skipped.
    version: u64,
    /// Scheduling cycle in which the pod was popped.
    cycle: u64,
    /// A newer version of the pod arrived while it was in flight.
    updated_in_flight: Option<Arc<PodInfo>>,
}

/// The three queues.
#[derive(Debug, Default)]
pub struct SchedulingQueue {
    entries: HashMap<String, Entry>,
    active: BinaryHeap<Active>,
    backoff: BinaryHeap<Reverse<(Instant, u64, String)>>,
    seq: u64,
    /// Uids of the parked (unschedulable) pods, so events do not scan every pending pod.
    parked: std::collections::HashSet<String>,
    scheduling_cycle: u64,
    /// The cycle of the last move request: a pod that failed in a cycle at or before it may have
    /// missed the event, so it goes to backoff instead of parking.
    move_request_cycle: u64,
}

impl SchedulingQueue {
    pub fn new() -> SchedulingQueue {
        SchedulingQueue::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// (active, backoff, unschedulable) counts — the `scheduler_pending_pods` gauge.
    pub fn pending(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for e in self.entries.values() {
            match e.place {
                Where::Active | Where::InFlight => c.0 += 1,
                Where::Backoff => c.1 += 1,
                Where::Unschedulable => c.2 += 1,
            }
        }
        c
    }

    pub fn uids(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    pub fn contains(&self, uid: &str) -> bool {
        self.entries.contains_key(uid)
    }

    fn push_active(&mut self, uid: &str) {
        self.parked.remove(uid);
        self.seq += 1;
        let Some(e) = self.entries.get_mut(uid) else {
            return;
        };
        e.place = Where::Active;
        e.version = self.seq;
        self.active.push(Active {
            priority: e.pod.info.priority,
            timestamp: e.pod.timestamp,
            seq: self.seq,
            uid: uid.to_string(),
        });
    }

    fn push_backoff(&mut self, uid: &str) {
        self.parked.remove(uid);
        self.seq += 1;
        let Some(e) = self.entries.get_mut(uid) else {
            return;
        };
        e.place = Where::Backoff;
        e.version = self.seq;
        self.backoff
            .push(Reverse((e.pod.backoff_expiry(), self.seq, uid.to_string())));
    }

    /// A new pending pod.
    pub fn add(&mut self, info: Arc<PodInfo>, now: Instant) {
        let uid = info.uid.clone();
        if self.entries.contains_key(&uid) {
            self.update(info, now);
            return;
        }
        self.entries.insert(
            uid.clone(),
            Entry {
                pod: QueuedPod::new(info, now),
                place: Where::Active,
                version: 0,
                cycle: 0,
                updated_in_flight: None,
            },
        );
        self.push_active(&uid);
    }

    /// A pending pod changed: refresh it; a parked pod is given another chance.
    pub fn update(&mut self, info: Arc<PodInfo>, now: Instant) {
        let uid = info.uid.clone();
        let Some(e) = self.entries.get_mut(&uid) else {
            self.add(info, now);
            return;
        };
        match e.place {
            Where::InFlight => e.updated_in_flight = Some(info),
            Where::Active => {
                e.pod.info = info;
                self.push_active(&uid);
            }
            Where::Backoff => e.pod.info = info,
            Where::Unschedulable => {
                e.pod.info = info;
                if e.pod.backoff_expiry() > now {
                    self.push_backoff(&uid);
                } else {
                    self.push_active(&uid);
                }
            }
        }
    }

    /// The pod was deleted or bound by someone else.
    pub fn delete(&mut self, uid: &str) {
        self.parked.remove(uid);
        self.entries.remove(uid);
    }

    /// Moves expired backoff entries and over-long parked pods to active.
    fn flush(&mut self, now: Instant) {
        while let Some(Reverse((at, version, uid))) = self.backoff.peek().cloned() {
            if at > now {
                break;
            }
            self.backoff.pop();
            if self
                .entries
                .get(&uid)
                .is_some_and(|e| e.version == version && e.place == Where::Backoff)
            {
                self.push_active(&uid);
            }
        }
    }

    /// Parked pods waiting longer than [`MAX_IN_UNSCHEDULABLE`] get retried anyway.
    pub fn flush_unschedulable_leftover(&mut self, now: Instant) {
        let stale: Vec<String> = self
            .parked
            .iter()
            .filter_map(|u| self.entries.get(u).map(|e| (u, e)))
            .filter(|(_, e)| {
                e.place == Where::Unschedulable
                    && now.duration_since(e.pod.timestamp) >= MAX_IN_UNSCHEDULABLE
            })
            .map(|(u, _)| u.clone())
            .collect();
        for uid in stale {
            self.requeue_moved(&uid, now);
        }
    }

    /// Pops the next pod to schedule, or `None` if none is ready now.
    pub fn pop(&mut self, now: Instant) -> Option<QueuedPod> {
        self.flush(now);
        while let Some(a) = self.active.pop() {
            let Some(e) = self.entries.get_mut(&a.uid) else {
                continue;
            };
            if e.version != a.seq || e.place != Where::Active {
                continue;
            }
            self.scheduling_cycle += 1;
            e.place = Where::InFlight;
            e.cycle = self.scheduling_cycle;
            e.pod.attempts += 1;
            return Some(e.pod.clone());
        }
        None
    }

    /// When the next backoff expires (for the shell's timer).
    pub fn next_backoff_expiry(&self) -> Option<Instant> {
        self.backoff.peek().map(|Reverse((at, _, _))| *at)
    }

    /// The in-flight pod was bound (or given up on): forget it.
    pub fn done(&mut self, uid: &str) {
        if self
            .entries
            .get(uid)
            .is_some_and(|e| e.place == Where::InFlight)
        {
            self.entries.remove(uid);
        }
    }

    /// The in-flight pod did not fit: park it until an event that could help `rejected_by`, or
    /// back it off if such an event may already have passed during its cycle.
    pub fn unschedulable(&mut self, uid: &str, rejected_by: BTreeSet<Plugin>, now: Instant) {
        let move_cycle = self.move_request_cycle;
        let Some(e) = self.entries.get_mut(uid) else {
            return;
        };
        if e.place != Where::InFlight {
            return;
        }
        e.pod.timestamp = now;
        e.pod.rejected_by = rejected_by;
        if let Some(info) = e.updated_in_flight.take() {
            e.pod.info = info;
        }
        if move_cycle >= e.cycle {
            self.push_backoff(uid);
        } else {
            e.place = Where::Unschedulable;
            self.parked.insert(uid.to_string());
        }
    }

    /// The in-flight pod hit an error (API failure, failed bind): retry after its backoff.
    pub fn error(&mut self, uid: &str, now: Instant) {
        let Some(e) = self.entries.get_mut(uid) else {
            return;
        };
        if e.place != Where::InFlight {
            return;
        }
        e.pod.timestamp = now;
        e.pod.rejected_by.clear();
        if let Some(info) = e.updated_in_flight.take() {
            e.pod.info = info;
        }
        self.push_backoff(uid);
    }

    fn requeue_moved(&mut self, uid: &str, now: Instant) {
        let Some(e) = self.entries.get(uid) else {
            return;
        };
        if e.pod.backoff_expiry() > now {
            self.push_backoff(uid);
        } else {
            self.push_active(uid);
        }
    }

    /// A cluster event: parked pods it could help move to active (or backoff, if still backing
    /// off). Returns how many moved.
    pub fn on_event(&mut self, event: ClusterEvent, now: Instant) -> usize {
        self.move_request_cycle = self.scheduling_cycle;
        if self.parked.is_empty() {
            return 0;
        }
        let moving: Vec<String> = self
            .parked
            .iter()
            .filter_map(|u| self.entries.get(u).map(|e| (u, e)))
            .filter(|(_, e)| {
                e.place == Where::Unschedulable
                    && (e.pod.rejected_by.is_empty()
                        || e.pod.rejected_by.iter().any(|p| event.may_help(*p)))
            })
            .map(|(u, _)| u.clone())
            .collect();
        for uid in &moving {
            self.requeue_moved(uid, now);
        }
        moving.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod_info::test_pods::pod;
    use serde_json::json;

    fn p(name: &str, priority: i32) -> Arc<PodInfo> {
        pod(name, json!({}), json!({"priority": priority}))
    }

    #[test]
    fn priority_then_age() {
        let t = Instant::now();
        let mut q = SchedulingQueue::new();
        q.add(p("old-low", 0), t);
        q.add(p("high", 10), t + Duration::from_millis(2));
        q.add(p("young-low", 0), t + Duration::from_millis(1));
        let order: Vec<_> = std::iter::from_fn(|| q.pop(t + Duration::from_secs(1)))
            .map(|q| q.info.name.clone())
            .collect();
        assert_eq!(order, vec!["high", "old-low", "young-low"]);
    }

    #[test]
    fn backoff_doubles_to_ten_seconds() {
        let mut qp = QueuedPod::new(p("a", 0), Instant::now());
        let secs: Vec<u64> = (1..=6)
            .map(|n| {
                qp.attempts = n;
                qp.backoff().as_secs()
            })
            .collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn errors_back_off_then_retry() {
        let t = Instant::now();
        let mut q = SchedulingQueue::new();
        q.add(p("a", 0), t);
        let a = q.pop(t).expect("a");
        q.error(&a.info.uid, t);
        assert!(
            q.pop(t + Duration::from_millis(900)).is_none(),
            "1 s backoff"
        );
        assert_eq!(q.next_backoff_expiry(), Some(t + Duration::from_secs(1)));
        let again = q.pop(t + Duration::from_secs(1)).expect("retried");
        assert_eq!(again.attempts, 2);
        q.done(&again.info.uid);
        assert!(q.is_empty());
    }

    #[test]
    fn parked_pods_move_only_on_relevant_events() {
        let t = Instant::now();
        let mut q = SchedulingQueue::new();
        q.add(p("fit", 0), t);
        q.add(p("taint", 0), t);
        let a = q.pop(t).expect("pod");
        let b = q.pop(t).expect("pod");
        let (fit, taint) = if a.info.name == "fit" { (a, b) } else { (b, a) };
        q.unschedulable(&fit.info.uid, [Plugin::NodeResourcesFit].into(), t);
        q.unschedulable(&taint.info.uid, [Plugin::TaintToleration].into(), t);
        // The move request of the cycle above happened before these failures: they park.
        assert_eq!(q.pending(), (0, 0, 2));
        let later = t + Duration::from_secs(20);
        assert_eq!(q.on_event(ClusterEvent::AssignedPodDelete, later), 1);
        assert_eq!(q.pop(later).expect("fit pod").info.name, "fit");
        assert!(q.pop(later).is_none());
        assert_eq!(q.on_event(ClusterEvent::NodeAdd, later), 1);
        assert_eq!(q.pop(later).expect("taint pod").info.name, "taint");
    }

    #[test]
    fn volume_binding_rejections_move_on_claim_and_volume_events() {
        let t = Instant::now();
        let mut q = SchedulingQueue::new();
        q.add(p("vol", 0), t);
        let a = q.pop(t).expect("vol");
        q.unschedulable(&a.info.uid, [Plugin::VolumeBinding].into(), t);
        let later = t + Duration::from_secs(20);
        assert_eq!(q.on_event(ClusterEvent::AssignedPodDelete, later), 0);
        assert_eq!(q.on_event(ClusterEvent::PvcChange, later), 1);
        let a = q.pop(later).expect("vol again");
        q.unschedulable(&a.info.uid, [Plugin::VolumeBinding].into(), later);
        let later = later + Duration::from_secs(20);
        assert_eq!(q.on_event(ClusterEvent::PvChange, later), 1);
    }

    #[test]
    fn a_failure_racing_an_event_backs_off_instead_of_parking() {
        let t = Instant::now();
        let mut q = SchedulingQueue::new();
        q.add(p("a", 0), t);
        let a = q.pop(t).expect("a");
        q.on_event(ClusterEvent::NodeAdd, t); // a node arrived while `a` was being scheduled
        q.unschedulable(&a.info.uid, [Plugin::NodeResourcesFit].into(), t);
        assert_eq!(q.pending(), (0, 1, 0));
    }

    #[test]
    fn parked_pods_are_retried_after_five_minutes() {
        let t = Instant::now();
        let mut q = SchedulingQueue::new();
        q.add(p("a", 0), t);
        let a = q.pop(t).expect("a");
        q.unschedulable(
            &a.info.uid,
            [Plugin::NodeAffinity].into(),
            t + Duration::from_secs(1),
        );
        q.flush_unschedulable_leftover(t + Duration::from_secs(60));
        assert_eq!(q.pending(), (0, 0, 1));
        q.flush_unschedulable_leftover(t + Duration::from_secs(302));
        assert!(q.pop(t + Duration::from_secs(302)).is_some());
    }
}
