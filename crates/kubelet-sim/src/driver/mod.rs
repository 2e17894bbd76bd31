//! The pod driver: the IO shell around the state machines of every pod of this process's nodes.
//! One task owns all of them (no locks on the hot path): it takes watch events (the pods bound to
//! its nodes), runtime reports and its own timers, steps the machines, hands their actions to the
//! runtime, and gives changed statuses to the [`writer::StatusWriter`].

mod dispatch;
mod index;
pub mod ipam;
pub mod writer;

pub use index::{IndexedPod, PodIndex};

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ObjectReference, Pod, PodStatus};
use niwa_client::runtime::watcher;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::{NodeIdentity, PodCidr};
use crate::metrics::Metrics;
use crate::pod::{Action, Event, EventType, MachineConfig, PodMachine, pod_status, qos::qos_class};
use crate::runtime::{EventSink, PodHandle, Runtime, RuntimeEvent, Scheduled};
use crate::time::{Timestamp, after, elapsed};
use ipam::Ipam;
use writer::StatusWriter;

/// Messages to the driver from the rest of the kubelet.
#[derive(Debug)]
pub enum Command {
    /// A node's `spec.podCIDR` is (now) this.
    PodCidr { node: String, cidr: PodCidr },
}

/// Core/v1 Events to publish (bounded; dropped when the publisher is behind).
pub type Recording = (ObjectReference, EventType, &'static str, String);

/// Capacity of the Events queue.
pub const RECORD_QUEUE: usize = 1024;

struct NodeSlot {
    identity: Arc<NodeIdentity>,
    ipam: Ipam,
}

struct PodEntry {
    handle: PodHandle,
    machine: PodMachine,
    qos: &'static str,
    last_sent: Option<Arc<PodStatus>>,
    wake: Option<(Timestamp, u64)>,
    first_seen: Instant,
    start_recorded: bool,
    running_containers: i64,
    sandbox_running: bool,
}

enum Timer {
    Wake(String),
    Deliver(String, Event),
}

/// How long a finished pod's UID is remembered, so late watch events do not resurrect it.
const FORGET_AFTER: Duration = Duration::from_secs(600);

pub struct Driver {
    nodes: HashMap<String, NodeSlot>,
    pods: HashMap<String, PodEntry>,
    finished: HashMap<String, Instant>,
    timers: BTreeMap<(Timestamp, u64), Timer>,
    seq: u64,
    runtime: Arc<dyn Runtime>,
    sink: EventSink,
    writer: StatusWriter,
    records: Option<mpsc::Sender<Recording>>,
    config: MachineConfig,
    index: Arc<PodIndex>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("pods", &self.pods.len())
            .finish_non_exhaustive()
    }
}

/// The watch selector for a set of nodes: one node's pods, or every scheduled pod (filtered here)
/// when one process serves many nodes — one shared watch instead of one per node.
pub fn pod_selector(nodes: &[Arc<NodeIdentity>]) -> String {
    match nodes {
        [one] => format!("spec.nodeName={}", one.name),
        _ => "spec.nodeName!=".to_string(),
    }
}

#[allow(clippy::too_many_arguments)]
impl Driver {
    pub fn new(
        nodes: &[Arc<NodeIdentity>],
        runtime: Arc<dyn Runtime>,
        sink: EventSink,
        writer: StatusWriter,
        records: Option<mpsc::Sender<Recording>>,
        config: MachineConfig,
        index: Arc<PodIndex>,
        metrics: Arc<Metrics>,
    ) -> Driver {
        let nodes = nodes
            .iter()
            .map(|n| {
                (
                    n.name.clone(),
                    NodeSlot {
                        identity: n.clone(),
                        ipam: Ipam::new(n.pod_cidr),
                    },
                )
            })
            .collect();
        Driver {
            nodes,
            pods: HashMap::new(),
            finished: HashMap::new(),
            timers: BTreeMap::new(),
            seq: 0,
            runtime,
            sink,
            writer,
            records,
            config,
            index,
            metrics,
        }
    }

    /// Runs until `shutdown`. Pods keep running when the kubelet stops (as a real kubelet's
    /// containers do); a restarted kubelet adopts them.
    pub async fn run<S>(
        mut self,
        pods: S,
        mut reports: mpsc::Receiver<RuntimeEvent>,
        mut commands: mpsc::Receiver<Command>,
        shutdown: CancellationToken,
    ) where
        S: Stream<Item = Result<watcher::Event<Pod>, niwa_client::Error>> + Send,
    {
        let mut pods = std::pin::pin!(pods);
        let mut listing: Option<HashMap<String, ()>> = None;
        loop {
            let next_timer = self.timers.keys().next().map(|(t, _)| *t);
            let sleep = match next_timer {
                Some(t) => elapsed(t, Timestamp::now()),
                None => Duration::from_secs(3600),
            };
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(report) = reports.recv() => self.on_report(report),
                Some(command) = commands.recv() => self.on_command(command),
                event = pods.next() => match event {
                    Some(Ok(event)) => self.on_watch(event, &mut listing),
                    Some(Err(e)) => warn!(error = %e, "pod watch failed; it resumes"),
                    None => break,
                },
                _ = tokio::time::sleep(sleep), if next_timer.is_some() => self.fire_timers(),
            }
        }
        info!(
            pods = self.pods.len(),
            "pod driver stopped; pods keep running"
        );
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::PodCidr { node, cidr } => {
                if let Some(slot) = self.nodes.get_mut(&node)
                    && slot.ipam.cidr() != cidr
                {
                    info!(node, %cidr, "node podCIDR set");
                    slot.ipam.set_cidr(cidr);
                    let mut identity = (*slot.identity).clone();
                    identity.pod_cidr = cidr;
                    slot.identity = Arc::new(identity);
                }
            }
        }
    }

    fn on_watch(&mut self, event: watcher::Event<Pod>, listing: &mut Option<HashMap<String, ()>>) {
        match event {
            watcher::Event::Init => *listing = Some(HashMap::new()),
            watcher::Event::InitApply(pod) => {
                if let Some(seen) = listing.as_mut()
                    && let Some(uid) = pod.metadata.uid.clone()
                {
                    seen.insert(uid, ());
                }
                self.on_pod(pod);
            }
            watcher::Event::InitDone => {
                // Pods that vanished while the watch was down were deleted.
                if let Some(seen) = listing.take() {
                    let gone: Vec<String> = self
                        .pods
                        .keys()
                        .filter(|uid| !seen.contains_key(*uid))
                        .cloned()
                        .collect();
                    for uid in gone {
                        self.on_deleted(&uid);
                    }
                }
            }
            watcher::Event::Apply(pod) => self.on_pod(pod),
            watcher::Event::Delete(pod) => {
                if let Some(uid) = pod.metadata.uid.as_deref() {
                    self.on_deleted(uid);
                }
            }
        }
    }

    fn on_pod(&mut self, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            return;
        };
        let Some(slot) = self.nodes.get(&node) else {
            return;
        };
        let now = Timestamp::now();
        let pod = Arc::new(pod);
        if let Some(entry) = self.pods.get_mut(&uid) {
            entry.handle.pod = pod.clone();
            entry.machine.update(&pod, now);
            self.sync(&uid);
            return;
        }
        if self.finished.contains_key(&uid) {
            return;
        }
        let handle = PodHandle {
            uid: uid.clone(),
            pod: pod.clone(),
            node: slot.identity.clone(),
        };
        let mut machine = PodMachine::new(&pod, self.config.clone());
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let already_ours = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .is_some();
        if matches!(phase, Some("Succeeded" | "Failed")) {
            machine.adopt_finished(&pod, now);
        } else if already_ours && let Some(adopted) = self.runtime.adopt(&handle, &self.sink) {
            if let (Some(ip), Some(slot)) = (adopted.pod_ip, self.nodes.get_mut(&node)) {
                slot.ipam.claim(&uid, ip);
            }
            info!(
                pod = handle.name(),
                namespace = handle.namespace(),
                running = adopted.running.len(),
                "adopted pod"
            );
            machine.adopt(
                &pod,
                adopted.pod_ip.map(|ip| ip.to_string()),
                &adopted.running,
                &adopted.exited,
                now,
            );
        }
        machine.update(&pod, now);
        let qos = pod.spec.as_ref().map(qos_class).unwrap_or("BestEffort");
        self.pods.insert(
            uid.clone(),
            PodEntry {
                handle,
                machine,
                qos,
                last_sent: None,
                wake: None,
                first_seen: Instant::now(),
                start_recorded: already_ours,
                running_containers: 0,
                sandbox_running: false,
            },
        );
        self.sync(&uid);
    }

    fn on_deleted(&mut self, uid: &str) {
        let now = Timestamp::now();
        if let Some(entry) = self.pods.get_mut(uid) {
            entry.machine.object_deleted(now);
            self.sync(uid);
        }
    }

    fn on_report(&mut self, report: RuntimeEvent) {
        let now = Timestamp::now();
        if let Some(entry) = self.pods.get_mut(&report.uid) {
            entry.machine.handle(report.event, now);
            self.sync(&report.uid);
        }
    }

    fn fire_timers(&mut self) {
        let now = Timestamp::now();
        let mut due = Vec::new();
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            due.push(entry.remove());
        }
        for timer in due {
            match timer {
                Timer::Wake(uid) => {
                    if let Some(entry) = self.pods.get_mut(&uid) {
                        entry.wake = None;
                        self.sync(&uid);
                    }
                }
                Timer::Deliver(uid, event) => {
                    if let Some(entry) = self.pods.get_mut(&uid) {
                        entry.machine.handle(event, now);
                        self.sync(&uid);
                    }
                }
            }
        }
    }

    fn add_timer(&mut self, at: Timestamp, timer: Timer) -> (Timestamp, u64) {
        self.seq += 1;
        let key = (at, self.seq);
        self.timers.insert(key, timer);
        key
    }

    /// Steps one pod's machine until it has nothing more to do right now, carries out the
    /// actions, and publishes a changed status.
    fn sync(&mut self, uid: &str) {
        let started = Instant::now();
        let now = Timestamp::now();
        let Some(mut entry) = self.pods.remove(uid) else {
            return;
        };
        let mut immediate: Vec<Event> = Vec::new();
        let mut remove = false;
        for _ in 0..64 {
            let actions = entry.machine.step(now);
            if actions.is_empty() && immediate.is_empty() {
                break;
            }
            for action in actions {
                self.dispatch(&mut entry, action, now, &mut immediate, &mut remove);
            }
            for event in immediate.drain(..) {
                entry.machine.handle(event, now);
            }
        }
        self.publish(&mut entry, now, remove);
        if let Some(key) = entry.wake.take() {
            self.timers.remove(&key);
        }
        if let Some(at) = entry.machine.next_wake() {
            entry.wake = Some(self.add_timer(at, Timer::Wake(uid.to_string())));
        }
        self.metrics
            .pod_worker_duration
            .observe(started.elapsed().as_secs_f64());
        if entry.machine.finished() {
            self.finish(uid, entry);
        } else {
            self.pods.insert(uid.to_string(), entry);
        }
    }

    /// Computes the status and hands it to the writer when it changed.
    fn publish(&mut self, entry: &mut PodEntry, now: Timestamp, remove: bool) {
        let previous =
            previous_status(entry.last_sent.as_deref(), entry.handle.pod.status.as_ref());
        let host_ip = entry.handle.node.ip.to_string();
        let status = pod_status(&entry.machine, &host_ip, entry.qos, previous.as_ref(), now);
        self.account(entry, &status);
        let h = &entry.handle;
        let changed = entry.last_sent.as_deref() != Some(&status);
        if changed || remove {
            let status = Arc::new(status);
            if remove {
                self.writer
                    .remove(h.namespace(), h.name(), &h.uid, (*status).clone());
            } else {
                self.writer
                    .status(h.namespace(), h.name(), &h.uid, (*status).clone());
            }
            self.index.put(h, status.clone());
            entry.last_sent = Some(status);
        }
    }

    /// Keeps the running-pods/containers gauges and the pod start latency.
    fn account(&self, entry: &mut PodEntry, status: &PodStatus) {
        let running = status
            .container_statuses
            .iter()
            .flatten()
            .chain(status.init_container_statuses.iter().flatten())
            .filter(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
            .count() as i64;
        self.metrics
            .running_containers
            .inc_by(running - entry.running_containers);
        entry.running_containers = running;
        let sandbox = matches!(entry.machine.sandbox, crate::pod::machine::Sandbox::Ready);
        if sandbox != entry.sandbox_running {
            if sandbox {
                self.metrics.running_pods.inc();
                self.metrics.started_pods.inc();
            } else {
                self.metrics.running_pods.dec();
            }
            entry.sandbox_running = sandbox;
        }
        if !entry.start_recorded && status.phase.as_deref() == Some("Running") {
            entry.start_recorded = true;
            self.metrics
                .pod_start_duration
                .observe(entry.first_seen.elapsed().as_secs_f64());
        }
    }

    fn finish(&mut self, uid: &str, entry: PodEntry) {
        let h = &entry.handle;
        self.runtime.forget(uid);
        if let Some(slot) = self.nodes.get_mut(&h.node.name) {
            slot.ipam.release(uid);
        }
        self.index.remove(h.namespace(), h.name(), uid);
        self.metrics
            .running_containers
            .dec_by(entry.running_containers);
        if entry.sandbox_running {
            self.metrics.running_pods.dec();
        }
        let now = Instant::now();
        self.finished
            .retain(|_, t| now.duration_since(*t) < FORGET_AFTER);
        self.finished.insert(uid.to_string(), now);
        debug!(pod = h.name(), "pod finished");
    }

    /// Pod addresses in use on a node (for tests and metrics).
    pub fn pod_ip(&self, uid: &str) -> Option<Ipv4Addr> {
        self.pods.get(uid)?.machine.pod_ip.as_ref()?.parse().ok()
    }
}

/// What the status is computed against: the kubelet's own last status (its transition times)
/// with the conditions others own taken from the object as last seen.
fn previous_status(
    last_sent: Option<&PodStatus>,
    observed: Option<&PodStatus>,
) -> Option<PodStatus> {
    match (last_sent, observed) {
        (None, observed) => observed.cloned(),
        (Some(sent), None) => Some(sent.clone()),
        (Some(sent), Some(observed)) => {
            let mut merged = sent.clone();
            let ours = [
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled",
            ];
            let mut conditions: Vec<_> = observed
                .conditions
                .iter()
                .flatten()
                .filter(|c| !ours.contains(&c.type_.as_str()))
                .cloned()
                .collect();
            conditions.extend(
                sent.conditions
                    .iter()
                    .flatten()
                    .filter(|c| ours.contains(&c.type_.as_str()))
                    .cloned(),
            );
            merged.conditions = Some(conditions);
            Some(merged)
        }
    }
}

fn host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}
