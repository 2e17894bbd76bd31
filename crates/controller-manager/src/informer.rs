//! Shared informers, as kube-controller-manager's `SharedInformerFactory`: one watch and one cache
//! per kind for all controllers (10,000 pods are cached once, not once per controller), and a
//! fan-out of changes to the controllers that subscribed.
//!
//! Every subscriber gets a bounded channel ([`SUBSCRIBER_BUFFER`] changes); the informer waits for
//! room rather than dropping (a controller's consumer only maps changes to queue keys, so it never
//! falls far behind), and a subscriber that went away is forgotten.
//!
//! The pod informer also keeps an [`OwnerIndex`] (pods by controller UID), so that a workload
//! controller's sync reads its own pods ([`Informer::owned_by`]) rather than every pod.

use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use niwa_client::runtime::watcher;
use niwa_client::{Api, ObjectRef, Store, reflector};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::owner_index::OwnerIndex;

/// Changes buffered per subscriber.
pub const SUBSCRIBER_BUFFER: usize = 4096;

/// What a subscriber is told.
#[derive(Debug)]
pub enum Change<K> {
    /// Created or updated (the new state).
    Applied(Arc<K>),
    /// Deleted (the last state).
    Deleted(Arc<K>),
    /// A re-list completed: deletions during a watch gap may have been missed; look at everything.
    Resync,
}

impl<K> Clone for Change<K> {
    fn clone(&self) -> Self {
        match self {
            Change::Applied(k) => Change::Applied(k.clone()),
            Change::Deleted(k) => Change::Deleted(k.clone()),
            Change::Resync => Change::Resync,
        }
    }
}

impl<K> Change<K> {
    pub fn object(&self) -> Option<&K> {
        match self {
            Change::Applied(k) | Change::Deleted(k) => Some(k),
            Change::Resync => None,
        }
    }
}

/// One kind's shared watch, cache and subscribers.
pub struct Informer<K> {
    store: Store<K>,
    subscribers: Arc<Mutex<Vec<mpsc::Sender<Change<K>>>>>,
    /// By controller UID, when started with one.
    index: Option<Arc<OwnerIndex<K>>>,
}

impl<K> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Informer {
            store: self.store.clone(),
            subscribers: self.subscribers.clone(),
            index: self.index.clone(),
        }
    }
}

impl<K: niwa_client::Object> Informer<K> {
    /// Start watching `api` (the task runs in `tasks` until `shutdown`).
    pub fn start(
        api: Api<K>,
        config: watcher::Config,
        tasks: &mut JoinSet<()>,
        shutdown: CancellationToken,
    ) -> Informer<K> {
        Self::start_indexed(api, config, tasks, shutdown, None)
    }

    /// [`Informer::start`], keeping `index` (by controller UID) in step with the cache.
    pub fn start_with_owner_index(
        api: Api<K>,
        config: watcher::Config,
        tasks: &mut JoinSet<()>,
        shutdown: CancellationToken,
    ) -> Informer<K> {
        Self::start_indexed(
            api,
            config,
            tasks,
            shutdown,
            Some(Arc::new(OwnerIndex::new())),
        )
    }

    fn start_indexed(
        api: Api<K>,
        config: watcher::Config,
        tasks: &mut JoinSet<()>,
        shutdown: CancellationToken,
        index: Option<Arc<OwnerIndex<K>>>,
    ) -> Informer<K> {
        let (store, mut writer) = reflector::store::<K>();
        let subscribers: Arc<Mutex<Vec<mpsc::Sender<Change<K>>>>> = Arc::default();
        let subs = subscribers.clone();
        let reader = store.clone();
        let task_index = index.clone();
        let span = tracing::info_span!("informer", kind = K::KIND);
        tasks.spawn(
            async move {
                let mut events = std::pin::pin!(watcher::watcher(api, config));
                loop {
                    let ev = tokio::select! {
                        _ = shutdown.cancelled() => break,
                        ev = events.next() => ev,
                    };
                    let ev = match ev {
                        None => break,
                        Some(Err(err)) => {
                            tracing::warn!(%err, "watch failed; the watcher retries");
                            continue;
                        }
                        Some(Ok(ev)) => ev,
                    };
                    // The store under the index's lock, so that the index never lags it (see
                    // `owner_index`).
                    match &task_index {
                        Some(ix) => ix.apply(&ev, &reader, |e| writer.apply(e)),
                        None => writer.apply(&ev),
                    }
                    let change = match ev {
                        // The store's own copy, not another clone of the object.
                        watcher::Event::Apply(k) => Change::Applied(
                            reader
                                .get(&ObjectRef::from_obj(&k))
                                .unwrap_or_else(|| Arc::new(k)),
                        ),
                        watcher::Event::InitApply(k) => Change::Applied(Arc::new(k)),
                        watcher::Event::Delete(k) => Change::Deleted(Arc::new(k)),
                        watcher::Event::InitDone => Change::Resync,
                        watcher::Event::Init => continue,
                    };
                    let senders: Vec<_> = lock(&subs).clone();
                    let mut closed = false;
                    for s in &senders {
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            sent = s.send(change.clone()) => closed |= sent.is_err(),
                        }
                    }
                    if closed {
                        lock(&subs).retain(|s| !s.is_closed());
                    }
                }
            }
            .instrument(span),
        );
        Informer {
            store,
            subscribers,
            index,
        }
    }

    /// The cached objects whose controller reference carries `owner`'s UID, and with
    /// `include_orphans` the objects of its namespace without a controller (Kubernetes'
    /// `FilterPodsByOwner`). Only for an informer started with an owner index; others scan.
    pub fn owned_by(&self, owner: &ObjectMeta, include_orphans: bool) -> Vec<Arc<K>> {
        let ns = owner.namespace.as_deref().unwrap_or("");
        let uid = owner.uid.as_deref().unwrap_or("");
        let Some(ix) = &self.index else {
            return self.store.filter(|k| {
                let meta = k.metadata();
                meta.namespace.as_deref().unwrap_or("") == ns
                    && match crate::util::owner::controller_of(meta) {
                        Some(c) => !uid.is_empty() && c.uid == uid,
                        None => include_orphans,
                    }
            });
        };
        ix.owned_by(ns, uid, include_orphans)
    }

    /// The shared cache.
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Changes from now on.
    pub fn subscribe(&self) -> impl Stream<Item = Change<K>> + Send + 'static {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        lock(&self.subscribers).push(tx);
        tokio_stream_from(rx)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update under this lock is a single push/retain: a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
