//! Watches feeding the scheduler: pods (bound ones into the cache, pending ones of this
//! scheduler into the queue), nodes, and the objects default spreading and namespace selectors
//! read (namespaces, Services, ReplicaSets, StatefulSets, and ReplicationControllers once niwa serves them), and
//! the PersistentVolumeClaims and PersistentVolumes VolumeBinding reads. Each change that could
//! help a parked pod becomes a [`ClusterEvent`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{
    Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, Service,
};
use niwa_api::selector::LabelSelector;
use niwa_client::runtime::watcher::{self, Event};
use niwa_client::{Api, Client, Object};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::node_info::NodeStatic;
use crate::plugins::volume_binding::{Claim, Volume, VolumeObjects};
use crate::pod_info::{Labels, PodInfo};
use crate::queue::ClusterEvent;
use crate::runtime::{Shared, State};
use crate::snapshot::ClusterObjects;

/// What an informer hands its handler: single changes, or a full (re)list to reconcile with.
enum Change<K> {
    Apply(K),
    Delete(K),
    Relist(Vec<K>),
}

/// Objects indexed by kind for [`ClusterObjects`].
#[derive(Debug, Default)]
pub(crate) struct ObjectIndex {
    namespaces: HashMap<String, Labels>,
    services: HashMap<(String, String), Labels>,
    replica_sets: HashMap<(String, String), LabelSelector>,
    stateful_sets: HashMap<(String, String), LabelSelector>,
    /// Copied on write only while a snapshot still holds the previous version.
    volumes: Arc<VolumeObjects>,
}

impl ObjectIndex {
    fn build(&self) -> ClusterObjects {
        ClusterObjects {
            namespace_labels: self.namespaces.clone(),
            services: self
                .services
                .iter()
                .map(|((ns, _), s)| (ns.clone(), s.clone()))
                .collect(),
            replica_sets: self.replica_sets.clone(),
            stateful_sets: self.stateful_sets.clone(),
            replication_controllers: Default::default(),
            volumes: self.volumes.clone(),
        }
    }
}

fn key<K: Object>(o: &K) -> (String, String) {
    let m = o.metadata();
    (
        m.namespace.clone().unwrap_or_default(),
        m.name.clone().unwrap_or_default(),
    )
}

/// Starts every informer; `synced` counts those that finished their first list.
pub(crate) fn spawn_all(
    tasks: &mut JoinSet<()>,
    client: &Client,
    shared: &Arc<Shared>,
    stop: &CancellationToken,
    synced: &Arc<AtomicUsize>,
) {
    let pods_cfg =
        watcher::Config::default().fields("status.phase!=Succeeded,status.phase!=Failed");
    spawn(
        tasks,
        client.all::<Pod>(),
        pods_cfg,
        shared,
        stop,
        synced,
        on_pod,
    );
    spawn(
        tasks,
        client.all::<Node>(),
        watcher::Config::default(),
        shared,
        stop,
        synced,
        on_node,
    );
    spawn(
        tasks,
        client.all::<Namespace>(),
        watcher::Config::default(),
        shared,
        stop,
        synced,
        |st, c| {
            index(
                st,
                c,
                |ix| ix.namespaces.clear(),
                |ix, k, o: Option<&Namespace>| {
                    match o {
                        Some(ns) => ix
                            .namespaces
                            .insert(k.1, ns.metadata.labels.clone().unwrap_or_default()),
                        None => ix.namespaces.remove(&k.1),
                    };
                },
            )
        },
    );
    spawn(
        tasks,
        client.all::<Service>(),
        watcher::Config::default(),
        shared,
        stop,
        synced,
        |st, c| {
            index(
                st,
                c,
                |ix| ix.services.clear(),
                |ix, k, o: Option<&Service>| {
                    match o
                        .and_then(|s| s.spec.as_ref())
                        .and_then(|s| s.selector.clone())
                        .filter(|s| !s.is_empty())
                    {
                        Some(sel) => ix.services.insert(k, sel),
                        None => ix.services.remove(&k),
                    };
                },
            )
        },
    );
    spawn(
        tasks,
        client.all::<ReplicaSet>(),
        watcher::Config::default(),
        shared,
        stop,
        synced,
        |st, c| {
            index(
                st,
                c,
                |ix| ix.replica_sets.clear(),
                |ix, k, o: Option<&ReplicaSet>| {
                    match o.and_then(|r| r.spec.as_ref()) {
                        Some(spec) => ix.replica_sets.insert(
                            k,
                            LabelSelector::from_api(Some(&spec.selector))
                                .unwrap_or(LabelSelector::Nothing),
                        ),
                        None => ix.replica_sets.remove(&k),
                    };
                },
            )
        },
    );
    spawn(
        tasks,
        client.all::<StatefulSet>(),
        watcher::Config::default(),
        shared,
        stop,
        synced,
        |st, c| {
            index(
                st,
                c,
                |ix| ix.stateful_sets.clear(),
                |ix, k, o: Option<&StatefulSet>| {
                    match o.and_then(|r| r.spec.as_ref()) {
                        Some(spec) => ix.stateful_sets.insert(
                            k,
                            LabelSelector::from_api(Some(&spec.selector))
                                .unwrap_or(LabelSelector::Nothing),
                        ),
                        None => ix.stateful_sets.remove(&k),
                    };
                },
            )
        },
    );
    spawn(
        tasks,
        client.all::<PersistentVolumeClaim>(),
        watcher::Config::default(),
        shared,
        stop,
        synced,
        |st, c| {
            let event = !matches!(c, Change::Delete(_));
            index(
                st,
                c,
                |ix| Arc::make_mut(&mut ix.volumes).claims.clear(),
                |ix, k, o: Option<&PersistentVolumeClaim>| {
                    let claims = &mut Arc::make_mut(&mut ix.volumes).claims;
                    match o {
                        Some(c) => claims.insert(k, Claim::new(c)),
                        None => claims.remove(&k),
                    };
                },
            );
            // kube's VolumeBinding registers PVC Add/Update (a deletion cannot help a pod).
            if event {
                st.queue.on_event(ClusterEvent::PvcChange, Instant::now());
            }
        },
    );
    spawn(
        tasks,
        client.all::<PersistentVolume>(),
        watcher::Config::default(),
        shared,
        stop,
        synced,
        |st, c| {
            let event = !matches!(c, Change::Delete(_));
            index(
                st,
                c,
                |ix| Arc::make_mut(&mut ix.volumes).volumes.clear(),
                |ix, k, o: Option<&PersistentVolume>| {
                    let volumes = &mut Arc::make_mut(&mut ix.volumes).volumes;
                    match o {
                        Some(v) => volumes.insert(k.1, Volume::new(v)),
                        None => volumes.remove(&k.1),
                    };
                },
            );
            if event {
                st.queue.on_event(ClusterEvent::PvChange, Instant::now());
            }
        },
    );
}

/// Number of informers [`spawn_all`] starts.
pub(crate) const INFORMERS: usize = 8;

fn spawn<K: Object>(
    tasks: &mut JoinSet<()>,
    api: Api<K>,
    config: watcher::Config,
    shared: &Arc<Shared>,
    stop: &CancellationToken,
    synced: &Arc<AtomicUsize>,
    mut handle: impl FnMut(&mut State, Change<K>) + Send + 'static,
) {
    let shared = shared.clone();
    let stop = stop.clone();
    let synced = synced.clone();
    let kind = K::KIND;
    tasks.spawn(async move {
        let stream = watcher::watcher(api, config);
        futures::pin_mut!(stream);
        let mut listing: Option<Vec<K>> = None;
        let mut first = true;
        loop {
            let item = tokio::select! {
                _ = stop.cancelled() => return,
                item = stream.next() => item,
            };
            let change = match item {
                None => return,
                Some(Err(e)) => {
                    tracing::warn!(kind, error = %e, "watch failed; retrying");
                    continue;
                }
                Some(Ok(Event::Init)) => {
                    listing = Some(Vec::new());
                    continue;
                }
                Some(Ok(Event::InitApply(o))) => {
                    listing.get_or_insert_default().push(o);
                    continue;
                }
                Some(Ok(Event::InitDone)) => Change::Relist(listing.take().unwrap_or_default()),
                Some(Ok(Event::Apply(o))) => Change::Apply(o),
                Some(Ok(Event::Delete(o))) => Change::Delete(o),
            };
            let relist = matches!(change, Change::Relist(_));
            {
                let mut st = shared.state.lock();
                handle(&mut st, change);
            }
            shared.wake.notify_all();
            if relist && first {
                first = false;
                synced.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
}

fn index<K: Object>(
    st: &mut State,
    change: Change<K>,
    clear: impl FnOnce(&mut ObjectIndex),
    mut set: impl FnMut(&mut ObjectIndex, (String, String), Option<&K>),
) {
    match change {
        Change::Apply(o) => set(&mut st.objects, key(&o), Some(&o)),
        Change::Delete(o) => set(&mut st.objects, key(&o), None),
        Change::Relist(all) => {
            clear(&mut st.objects);
            for o in &all {
                set(&mut st.objects, key(o), Some(o));
            }
        }
    }
    let objects = Arc::new(st.objects.build());
    st.cache.set_objects(objects);
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

fn on_pod(st: &mut State, change: Change<Pod>) {
    let now = Instant::now();
    match change {
        Change::Apply(pod) => apply_pod(st, pod, now),
        Change::Delete(pod) => delete_pod(st, pod.metadata.uid.as_deref().unwrap_or_default(), now),
        Change::Relist(all) => {
            let keep: HashSet<String> = all.iter().filter_map(|p| p.metadata.uid.clone()).collect();
            for uid in st.cache.pod_uids().into_iter().chain(st.queue.uids()) {
                if !keep.contains(&uid) {
                    delete_pod(st, &uid, now);
                }
            }
            for p in all {
                apply_pod(st, p, now);
            }
        }
    }
}

fn apply_pod(st: &mut State, pod: Pod, now: Instant) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    if is_terminal(&pod) {
        delete_pod(st, &uid, now);
        return;
    }
    let info = Arc::new(PodInfo::new(Arc::new(pod)));
    if info.node_name.is_some() {
        st.queue.delete(&uid);
        let old = st.cache.pod(&uid);
        let labels_changed = old.as_ref().is_some_and(|o| o.labels != info.labels);
        let was_known_bound = old.is_some() && !st.cache.is_assumed(&uid);
        st.cache.set_pod(info);
        if !was_known_bound {
            st.queue.on_event(ClusterEvent::AssignedPodAdd, now);
        } else if labels_changed {
            st.queue.on_event(ClusterEvent::AssignedPodLabelChange, now);
        }
        return;
    }
    if info.scheduler_name != st.scheduler_name || info.terminating || st.cache.is_assumed(&uid) {
        return;
    }
    st.queue.update(info, now);
}

fn delete_pod(st: &mut State, uid: &str, now: Instant) {
    st.queue.delete(uid);
    if st.cache.remove_pod(uid).is_some() {
        st.queue.on_event(ClusterEvent::AssignedPodDelete, now);
    }
}

fn on_node(st: &mut State, change: Change<Node>) {
    let now = Instant::now();
    match change {
        Change::Apply(node) => apply_node(st, node, now),
        Change::Delete(node) => st
            .cache
            .remove_node(node.metadata.name.as_deref().unwrap_or_default()),
        Change::Relist(all) => {
            let keep: HashSet<String> =
                all.iter().filter_map(|n| n.metadata.name.clone()).collect();
            for name in st.cache.node_names() {
                if !keep.contains(&name) {
                    st.cache.remove_node(&name);
                }
            }
            for n in all {
                apply_node(st, n, now);
            }
        }
    }
}

fn apply_node(st: &mut State, node: Node, now: Instant) {
    let new = Arc::new(NodeStatic::new(Arc::new(node)));
    let events: Vec<ClusterEvent> = match st.cache.node_static(&new.name) {
        None => vec![ClusterEvent::NodeAdd],
        Some(old) => {
            let mut e = Vec::new();
            let a = (&old.allocatable, &new.allocatable);
            if a.1.milli_cpu > a.0.milli_cpu
                || a.1.memory > a.0.memory
                || a.1.ephemeral_storage > a.0.ephemeral_storage
                || a.1.allowed_pod_number > a.0.allowed_pod_number
                || a.1.scalar != a.0.scalar
            {
                e.push(ClusterEvent::NodeAllocatableChange);
            }
            if old.labels != new.labels {
                e.push(ClusterEvent::NodeLabelChange);
            }
            if old.taints != new.taints || old.unschedulable != new.unschedulable {
                e.push(ClusterEvent::NodeTaintChange);
            }
            e
        }
    };
    st.cache.set_node_static(new);
    for e in events {
        st.queue.on_event(e, now);
    }
}
