//! The scheduler cache: nodes and the pods on them — bound pods from the informers plus pods this
//! scheduler has *assumed* onto a node while their binding is in flight (so the next cycle already
//! counts them). kube's `internal/cache`. Snapshots are updated incrementally: only nodes changed
//! since the last snapshot are copied (copy-on-write `Arc<NodeInfo>`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;

use crate::node_info::{NodeInfo, NodeStatic};
use crate::pod_info::PodInfo;
use crate::snapshot::{ClusterObjects, Snapshot};

/// Why the cache refused an operation (a caller bug or a race with the informers).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    #[error("pod {0} is already in the cache")]
    AlreadyPresent(String),
    #[error("pod {0} is not assumed")]
    NotAssumed(String),
}

#[derive(Debug)]
struct PodState {
    pod: Arc<PodInfo>,
    node: String,
    assumed: bool,
}

#[derive(Debug, Default)]
struct NodeEntry {
    /// `None` while pods name a node the informer has not delivered (or that was deleted).
    info: Option<Arc<NodeInfo>>,
    orphans: Vec<Arc<PodInfo>>,
}

/// Nodes, their pods, and assumed pods.
#[derive(Debug, Default)]
pub struct Cache {
    nodes: HashMap<String, NodeEntry>,
    pods: HashMap<String, PodState>,
    objects: Arc<ClusterObjects>,
    /// Nodes changed since the last snapshot.
    dirty: HashSet<String>,
    /// A node was added or removed since the last snapshot: its order must be rebuilt.
    membership_changed: bool,
    objects_changed: bool,
    /// Nodes known to the informer (entries with `info`).
    live_nodes: usize,
    /// Node name → index in the snapshot's node order, as of the last rebuild of that order.
    positions: HashMap<String, usize>,
}

impl Cache {
    pub fn new() -> Cache {
        Cache::default()
    }

    pub fn node_count(&self) -> usize {
        self.live_nodes
    }

    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    pub fn is_assumed(&self, uid: &str) -> bool {
        self.pods.get(uid).is_some_and(|p| p.assumed)
    }

    /// The node a pod is (or is assumed to be) on.
    pub fn node_of(&self, uid: &str) -> Option<&str> {
        self.pods.get(uid).map(|p| p.node.as_str())
    }

    pub fn pod(&self, uid: &str) -> Option<Arc<PodInfo>> {
        self.pods.get(uid).map(|p| p.pod.clone())
    }

    pub fn pod_uids(&self) -> Vec<String> {
        self.pods.keys().cloned().collect()
    }

    pub fn node_names(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, e)| e.info.is_some())
            .map(|(n, _)| n.clone())
            .collect()
    }

    pub fn node_static(&self, name: &str) -> Option<Arc<NodeStatic>> {
        self.nodes
            .get(name)
            .and_then(|e| e.info.as_ref())
            .map(|i| i.node.clone())
    }

    /// Adds or replaces a node (keeping its pods).
    pub fn set_node(&mut self, node: Arc<Node>) {
        self.set_node_static(Arc::new(NodeStatic::new(node)));
    }

    /// Adds or replaces a node from its parsed form.
    pub fn set_node_static(&mut self, stat: Arc<NodeStatic>) {
        let name = stat.name.clone();
        let entry = self.nodes.entry(name.clone()).or_default();
        match &mut entry.info {
            Some(info) => {
                let info = Arc::make_mut(info);
                info.set_node(stat);
                info.generation += 1;
            }
            None => {
                let mut info = NodeInfo::new(stat);
                for p in entry.orphans.drain(..) {
                    info.add_pod(p);
                }
                entry.info = Some(Arc::new(info));
                self.live_nodes += 1;
                self.membership_changed = true;
            }
        }
        self.dirty.insert(name);
    }

    pub fn remove_node(&mut self, name: &str) {
        let Some(entry) = self.nodes.get_mut(name) else {
            return;
        };
        if let Some(info) = entry.info.take() {
            entry.orphans = info.pods.clone();
            self.live_nodes -= 1;
            self.membership_changed = true;
        }
        if entry.orphans.is_empty() {
            self.nodes.remove(name);
        }
    }

    fn attach(&mut self, pod: Arc<PodInfo>, node: &str) {
        let entry = self.nodes.entry(node.to_string()).or_default();
        match &mut entry.info {
            Some(info) => {
                let info = Arc::make_mut(info);
                info.add_pod(pod);
                info.generation += 1;
                self.dirty.insert(node.to_string());
            }
            None => entry.orphans.push(pod),
        }
    }

    fn detach(&mut self, uid: &str, node: &str) {
        let Some(entry) = self.nodes.get_mut(node) else {
            return;
        };
        match &mut entry.info {
            Some(info) => {
                let info = Arc::make_mut(info);
                if info.remove_pod(uid) {
                    info.generation += 1;
                    self.dirty.insert(node.to_string());
                }
            }
            None => {
                entry.orphans.retain(|p| p.uid != uid);
                if entry.orphans.is_empty() {
                    self.nodes.remove(node);
                }
            }
        }
    }

    /// Records a pod placed by this scheduler before its binding completes.
    pub fn assume(&mut self, pod: Arc<PodInfo>, node: &str) -> Result<(), CacheError> {
        if self.pods.contains_key(&pod.uid) {
            return Err(CacheError::AlreadyPresent(pod.key()));
        }
        self.attach(pod.clone(), node);
        self.pods.insert(
            pod.uid.clone(),
            PodState {
                pod,
                node: node.to_string(),
                assumed: true,
            },
        );
        Ok(())
    }

    /// Undoes an assumption whose binding failed.
    pub fn forget(&mut self, uid: &str) -> Result<(), CacheError> {
        match self.pods.get(uid) {
            Some(p) if p.assumed => {
                let node = p.node.clone();
                self.pods.remove(uid);
                self.detach(uid, &node);
                Ok(())
            }
            _ => Err(CacheError::NotAssumed(uid.to_string())),
        }
    }

    /// A bound pod from the informer (added or updated): confirms an assumption, moves the pod
    /// if it is on another node than assumed, refreshes its info otherwise.
    pub fn set_pod(&mut self, pod: Arc<PodInfo>) {
        let Some(node) = pod.node_name.clone() else {
            return;
        };
        if let Some(old) = self.pods.remove(&pod.uid) {
            self.detach(&pod.uid, &old.node);
        }
        self.attach(pod.clone(), &node);
        self.pods.insert(
            pod.uid.clone(),
            PodState {
                pod,
                node,
                assumed: false,
            },
        );
    }

    /// A pod was deleted (or finished): frees its resources.
    pub fn remove_pod(&mut self, uid: &str) -> Option<Arc<PodInfo>> {
        let old = self.pods.remove(uid)?;
        self.detach(uid, &old.node);
        Some(old.pod)
    }

    pub fn set_objects(&mut self, objects: Arc<ClusterObjects>) {
        self.objects = objects;
        self.objects_changed = true;
    }

    pub fn objects(&self) -> &ClusterObjects {
        &self.objects
    }

    /// Brings `snap` up to date, copying only what changed. Returns whether anything did.
    pub fn update_snapshot(&mut self, snap: &mut Snapshot) -> bool {
        let changed = self.membership_changed || self.objects_changed || !self.dirty.is_empty();
        if self.objects_changed {
            snap.objects = self.objects.clone();
            self.objects_changed = false;
        }
        if self.membership_changed || snap.nodes.len() != self.node_count() {
            let mut names: Vec<&String> = self
                .nodes
                .iter()
                .filter(|(_, e)| e.info.is_some())
                .map(|(n, _)| n)
                .collect();
            names.sort();
            snap.nodes = names
                .into_iter()
                .filter_map(|n| self.nodes[n].info.clone())
                .collect();
            snap.reindex();
            self.positions = snap
                .nodes
                .iter()
                .enumerate()
                .map(|(i, n)| (n.name().to_string(), i))
                .collect();
            self.membership_changed = false;
            self.dirty.clear();
            return true;
        }
        // Only the dirty nodes are touched (a cycle dirties one or two): their slots come from
        // the position index, checked against the name in case `snap` is not the snapshot the
        // index was built for (then the name order's binary search finds the slot).
        for name in self.dirty.drain() {
            let Some(info) = self.nodes.get(&name).and_then(|e| e.info.clone()) else {
                continue;
            };
            let slot = self
                .positions
                .get(&name)
                .copied()
                .filter(|&i| snap.nodes.get(i).is_some_and(|n| n.name() == name))
                .or_else(|| snap.nodes.binary_search_by(|n| n.name().cmp(&name)).ok());
            if let Some(i) = slot {
                snap.replace_node(i, info);
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod_info::test_pods::pod_req;
    use serde_json::json;

    fn node(name: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name},
                "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}))
            .expect("node"),
        )
    }

    fn bound(name: &str, node: &str) -> Arc<PodInfo> {
        let p = pod_req(name, "1", "1Gi");
        let mut raw = (*p.pod).clone();
        raw.spec.get_or_insert_default().node_name = Some(node.into());
        Arc::new(PodInfo::new(Arc::new(raw)))
    }

    #[test]
    fn assume_confirm_forget() {
        let mut cache = Cache::new();
        cache.set_node(node("a"));
        cache.set_node(node("b"));
        let mut snap = Snapshot::default();
        assert!(cache.update_snapshot(&mut snap));
        assert_eq!(snap.nodes.len(), 2);

        let p = pod_req("p", "1", "1Gi");
        cache.assume(p.clone(), "a").expect("assume");
        assert!(cache.assume(p.clone(), "a").is_err(), "twice");
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.nodes[0].requested.milli_cpu, 1000);
        assert!(cache.is_assumed(&p.uid));

        // The informer reports the pod bound to b (another scheduler won): it moves.
        cache.set_pod(bound("p", "b"));
        assert!(!cache.is_assumed(&p.uid));
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.nodes[0].requested.milli_cpu, 0);
        assert_eq!(snap.nodes[1].requested.milli_cpu, 1000);
        assert!(
            cache.forget(&p.uid).is_err(),
            "confirmed pods are not forgotten"
        );

        let q = pod_req("q", "2", "1Gi");
        cache.assume(q.clone(), "a").expect("assume");
        cache.forget(&q.uid).expect("forget");
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.nodes[0].requested.milli_cpu, 0);
    }

    #[test]
    fn pods_before_their_node_and_node_removal() {
        let mut cache = Cache::new();
        cache.set_pod(bound("early", "late-node"));
        let mut snap = Snapshot::default();
        cache.update_snapshot(&mut snap);
        assert!(snap.nodes.is_empty());
        cache.set_node(node("late-node"));
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.nodes[0].pods.len(), 1);
        cache.remove_node("late-node");
        cache.update_snapshot(&mut snap);
        assert!(snap.nodes.is_empty());
        assert!(cache.remove_pod(&bound("early", "x").uid).is_some());
        assert_eq!(cache.pod_count(), 0);
    }

    #[test]
    fn snapshots_share_unchanged_nodes() {
        let mut cache = Cache::new();
        for n in ["a", "b", "c"] {
            cache.set_node(node(n));
        }
        let mut snap = Snapshot::default();
        cache.update_snapshot(&mut snap);
        let before = snap.clone();
        cache.assume(pod_req("p", "1", "1Gi"), "b").expect("assume");
        assert!(cache.update_snapshot(&mut snap));
        assert!(Arc::ptr_eq(&before.nodes[0], &snap.nodes[0]));
        assert!(!Arc::ptr_eq(&before.nodes[1], &snap.nodes[1]));
        assert_eq!(
            before.nodes[1].pods.len(),
            0,
            "old snapshots are not mutated"
        );
        assert!(!cache.update_snapshot(&mut snap), "nothing changed");
    }

    #[test]
    fn incremental_updates_keep_the_affinity_index() {
        let mut cache = Cache::new();
        for n in ["a", "b", "c", "d"] {
            cache.set_node(node(n));
        }
        let mut snap = Snapshot::default();
        cache.update_snapshot(&mut snap);
        let anti = |name: &str| {
            crate::pod_info::test_pods::pod(
                name,
                json!({"labels": {"app": "x"}}),
                json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app": "x"}}, "topologyKey": "kubernetes.io/hostname"}]}}}),
            )
        };
        let (p, q) = (anti("p"), anti("q"));
        cache.assume(p.clone(), "c").expect("assume");
        cache.assume(q.clone(), "a").expect("assume");
        cache
            .assume(pod_req("plain", "1", "1Gi"), "b")
            .expect("assume");
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.have_pods_with_affinity, vec![0, 2]);
        assert_eq!(snap.have_pods_with_required_anti_affinity, vec![0, 2]);
        cache.forget(&p.uid).expect("forget");
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.have_pods_with_affinity, vec![0]);
        let mut full = snap.clone();
        full.reindex();
        assert_eq!(
            full.have_pods_with_required_anti_affinity,
            snap.have_pods_with_required_anti_affinity
        );
        // Another snapshot took the new order: this one catches up with a full rebuild.
        let mut other = Snapshot::default();
        cache.set_node(node("e"));
        cache.update_snapshot(&mut other);
        cache.assume(anti("r"), "d").expect("assume");
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.nodes.len(), 5, "membership change rebuilt the order");
        assert_eq!(snap.nodes[3].pods.len(), 1);
        assert_eq!(snap.have_pods_with_affinity, vec![0, 3]);
    }
}
