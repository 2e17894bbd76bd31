//! Keeps this process's nodes alive in the apiserver: registers them (create, or update an
//! existing Node's labels and status), renews each node's Lease in `kube-node-lease` every
//! `lease_interval` (renewals of many nodes are spread evenly over the interval), posts node
//! status when it changes (pressure) and at least every `status_report_interval`, re-registers a
//! node whose object was deleted, and tells the driver the podCIDR the controller-manager gives a
//! node. One task serves every node of the process.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, NodeCondition};
use niwa_client::{Api, Client, Patch};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::host::{HostInfo, real_pressure};
use super::{NodeFacts, node_object, node_status};
use crate::config::{Capacity, KubeletConfig, NodeIdentity, PodCidr, RuntimeKind};
use crate::driver::Command;
use crate::metrics::Metrics;
use crate::runtime::{Pressure, Runtime};
use crate::time::Timestamp;

/// The namespace of node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// Requests in flight at once while registering or renewing many nodes.
const CONCURRENCY: usize = 32;

struct NodeState {
    id: Arc<NodeIdentity>,
    uid: Option<String>,
    conditions: Option<Vec<NodeCondition>>,
    next_status: Instant,
    /// The last successful Lease renewal. A renewal long after it means this kubelet was away
    /// (frozen, partitioned): the node lifecycle controller has meanwhile marked the node
    /// Ready=Unknown, so status is posted at once instead of at the next report interval.
    last_renewed: Option<Instant>,
}

pub struct NodeManager {
    client: Client,
    config: Arc<KubeletConfig>,
    host: HostInfo,
    capacity: Capacity,
    kubelet_port: u16,
    runtime: Arc<dyn Runtime>,
    metrics: Arc<Metrics>,
    commands: mpsc::Sender<Command>,
    nodes: Vec<NodeState>,
    pressure: Pressure,
}

impl std::fmt::Debug for NodeManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeManager")
            .field("nodes", &self.nodes.len())
            .finish_non_exhaustive()
    }
}

#[allow(clippy::too_many_arguments)]
impl NodeManager {
    pub fn new(
        client: Client,
        config: Arc<KubeletConfig>,
        nodes: &[Arc<NodeIdentity>],
        host: HostInfo,
        capacity: Capacity,
        kubelet_port: u16,
        runtime: Arc<dyn Runtime>,
        metrics: Arc<Metrics>,
        commands: mpsc::Sender<Command>,
    ) -> NodeManager {
        let now = Instant::now();
        NodeManager {
            client,
            config,
            host,
            capacity,
            kubelet_port,
            runtime,
            metrics,
            commands,
            nodes: nodes
                .iter()
                .map(|id| NodeState {
                    id: id.clone(),
                    uid: None,
                    conditions: None,
                    next_status: now,
                    last_renewed: None,
                })
                .collect(),
            pressure: Pressure::default(),
        }
    }

    fn node_api(&self) -> Api<Node> {
        self.client.cluster()
    }

    /// Registers every node (concurrently). Fails only if none could be registered.
    pub async fn register_all(&mut self) -> Result<(), niwa_client::Error> {
        self.pressure = self.current_pressure();
        let this = &*self;
        let results: Vec<(usize, Result<Node, niwa_client::Error>)> = futures::stream::iter(
            (0..this.nodes.len()).map(|i| async move { (i, this.register(&this.nodes[i]).await) }),
        )
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
        let mut last_error = None;
        let mut ok = 0;
        for (i, result) in results {
            match result {
                Ok(node) => {
                    ok += 1;
                    self.learn(i, &node).await;
                }
                Err(e) => {
                    warn!(node = %self.nodes[i].id.name, error = %e, "node registration failed; retrying later");
                    last_error = Some(e);
                }
            }
        }
        match (ok, last_error) {
            (0, Some(e)) => Err(e),
            _ => Ok(()),
        }
    }

    /// Creates the Node, or updates an existing one (labels, annotations, status).
    async fn register(&self, n: &NodeState) -> Result<Node, niwa_client::Error> {
        let api = self.node_api();
        let object = node_object(&n.id, &self.config, &self.host);
        let node = match api.create(&object).await {
            Ok(node) => {
                info!(node = %n.id.name, ip = %n.id.ip, pod_cidr = %n.id.pod_cidr, "registered node");
                node
            }
            Err(e) if e.is_already_exists() => {
                let patch = json!({"metadata": {
                    "labels": object.metadata.labels,
                    "annotations": object.metadata.annotations,
                }});
                api.patch(&n.id.name, &Patch::Merge(patch)).await?
            }
            Err(e) => return Err(e),
        };
        self.post_status(
            n,
            node.status.as_ref().and_then(|s| s.conditions.as_deref()),
        )
        .await?;
        Ok(node)
    }

    /// Remembers the node's UID (for Lease owner references) and its podCIDR.
    async fn learn(&mut self, i: usize, node: &Node) {
        self.nodes[i].uid = node.metadata.uid.clone();
        if let Some(cidr) = node.spec.as_ref().and_then(|s| s.pod_cidr.as_deref())
            && let Ok(cidr) = PodCidr::parse(cidr)
        {
            let _ = self
                .commands
                .send(Command::PodCidr {
                    node: self.nodes[i].id.name.clone(),
                    cidr,
                })
                .await;
        }
    }

    async fn post_status(
        &self,
        n: &NodeState,
        previous: Option<&[NodeCondition]>,
    ) -> Result<Vec<NodeCondition>, niwa_client::Error> {
        let facts = NodeFacts {
            host: &self.host,
            capacity: &self.capacity,
            kubelet_port: self.kubelet_port,
        };
        let status = node_status(
            &n.id,
            &self.config,
            &facts,
            self.pressure,
            previous.or(n.conditions.as_deref()),
            Timestamp::now(),
        );
        let conditions = status.conditions.clone().unwrap_or_default();
        self.node_api()
            .patch_status(&n.id.name, &Patch::Merge(json!({"status": status})))
            .await?;
        self.metrics.node_status_updates.inc();
        Ok(conditions)
    }

    fn current_pressure(&self) -> Pressure {
        match self.config.runtime {
            RuntimeKind::Process => {
                let mut p = real_pressure(&self.config.root_dir);
                let rt = self.runtime.pressure();
                p.memory |= rt.memory;
                p.disk |= rt.disk;
                p.pid |= rt.pid;
                p
            }
            RuntimeKind::Sim => self.runtime.pressure(),
        }
    }

    async fn ensure_lease_namespace(&self) {
        let api: Api<Namespace> = self.client.cluster();
        let ns: Namespace = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LEASE_NAMESPACE},
        }))
        .unwrap_or_default();
        match api.create(&ns).await {
            Ok(_) => info!("created namespace {LEASE_NAMESPACE}"),
            Err(e) if e.is_already_exists() => {}
            Err(e) => warn!(error = %e, "cannot create namespace {LEASE_NAMESPACE}"),
        }
    }

    fn lease_object(&self, n: &NodeState) -> Lease {
        let owner = n.uid.as_ref().map(
            |uid| json!([{"apiVersion": "v1", "kind": "Node", "name": n.id.name, "uid": uid}]),
        );
        serde_json::from_value(json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": n.id.name, "namespace": LEASE_NAMESPACE, "ownerReferences": owner},
            "spec": {
                "holderIdentity": n.id.name,
                "leaseDurationSeconds": self.config.lease_duration_seconds,
                "renewTime": micro_now(),
            },
        }))
        .unwrap_or_default()
    }

    /// Renews one node's Lease (creating it when missing).
    async fn renew(&self, n: &NodeState) -> Result<(), niwa_client::Error> {
        let api: Api<Lease> = self.client.namespaced(LEASE_NAMESPACE);
        let patch = json!({"spec": {
            "holderIdentity": n.id.name,
            "leaseDurationSeconds": self.config.lease_duration_seconds,
            "renewTime": micro_now(),
        }});
        match api.patch(&n.id.name, &Patch::Merge(patch)).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => match api.create(&self.lease_object(n)).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_already_exists() => Ok(()),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// Runs the heartbeats until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        self.ensure_lease_namespace().await;
        let interval = self.config.lease_interval;
        let count = self.nodes.len().max(1) as u32;
        let start = Instant::now();
        // Renewal schedule: node i renews at start + i·interval/count, then every interval.
        let mut schedule: BTreeMap<(Instant, usize), ()> = BTreeMap::new();
        for i in 0..self.nodes.len() {
            schedule.insert((start + interval * (i as u32) / count, i), ());
        }
        for n in &mut self.nodes {
            n.next_status = start + self.config.status_report_interval;
        }
        let mut pressure_check = tokio::time::interval(Duration::from_secs(10));
        let mut registered: HashMap<usize, bool> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (i, n.uid.is_some()))
            .collect();
        loop {
            let next = schedule
                .keys()
                .next()
                .map(|(t, _)| *t)
                .unwrap_or(start + interval);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = pressure_check.tick() => {
                    let pressure = self.current_pressure();
                    if pressure != self.pressure {
                        info!(?pressure, "node pressure changed");
                        self.pressure = pressure;
                        let now = Instant::now();
                        for n in &mut self.nodes {
                            n.next_status = now;
                        }
                    }
                }
                _ = tokio::time::sleep_until(next) => {
                    let now = Instant::now();
                    let mut due = Vec::new();
                    while let Some(entry) = schedule.first_entry() {
                        if entry.key().0 > now {
                            break;
                        }
                        let (at, i) = *entry.key();
                        entry.remove();
                        due.push((at, i));
                    }
                    self.renew_batch(&due, &mut registered).await;
                    for (at, i) in due {
                        let mut next = at + interval;
                        if next <= now {
                            next = now + interval;
                        }
                        schedule.insert((next, i), ());
                    }
                }
            }
        }
    }

    async fn renew_batch(
        &mut self,
        due: &[(Instant, usize)],
        registered: &mut HashMap<usize, bool>,
    ) {
        let now = Instant::now();
        let interval = self.config.lease_interval;
        let this = &*self;
        let known: &HashMap<usize, bool> = registered;
        let results: Vec<RenewOutcome> =
            futures::stream::iter(due.iter().copied().map(|(at, i)| async move {
                let n = &this.nodes[i];
                this.metrics
                    .lease_renewal_lateness
                    .observe(now.saturating_duration_since(at).as_secs_f64());
                if !known.get(&i).copied().unwrap_or(false) {
                    let r = this.register(n).await.map(|_| Vec::new());
                    return (i, Ok(()), Some(r));
                }
                let away = n
                    .last_renewed
                    .is_some_and(|t| now.saturating_duration_since(t) > interval * 2);
                let lease = this.renew(n).await;
                let status = if n.next_status <= now || (away && lease.is_ok()) {
                    Some(this.post_status(n, None).await)
                } else {
                    None
                };
                (i, lease, status)
            }))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (i, lease, status) in results {
            match lease {
                Ok(()) => {
                    self.metrics.lease_renewals.inc();
                    self.nodes[i].last_renewed = Some(now);
                }
                Err(e) => {
                    self.metrics.lease_renewal_errors.inc();
                    warn!(node = %self.nodes[i].id.name, error = %e, "lease renewal failed");
                }
            }
            match status {
                Some(Ok(conditions)) => {
                    let n = &mut self.nodes[i];
                    if !conditions.is_empty() {
                        n.conditions = Some(conditions);
                    }
                    n.next_status = now + self.config.status_report_interval;
                    if !registered.get(&i).copied().unwrap_or(false) {
                        registered.insert(i, true);
                        if let Ok(node) = self.node_api().get(&self.nodes[i].id.name).await {
                            self.learn(i, &node).await;
                        }
                    }
                }
                Some(Err(e)) if e.is_not_found() => {
                    warn!(node = %self.nodes[i].id.name, "node object is gone; registering it again");
                    registered.insert(i, false);
                }
                Some(Err(e)) => {
                    warn!(node = %self.nodes[i].id.name, error = %e, "node status update failed")
                }
                None => {}
            }
        }
    }
}

/// A node's Lease renewal result and, when one was due, its status update's.
type RenewOutcome = (
    usize,
    Result<(), niwa_client::Error>,
    Option<Result<Vec<NodeCondition>, niwa_client::Error>>,
);

/// Now as a Kubernetes MicroTime string.
fn micro_now() -> String {
    Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string()
}
