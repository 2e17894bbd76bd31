//! The controller loop: watch a kind (and the kinds it owns or depends on), keep them in reflector
//! stores, queue the keys of objects that may need work, and reconcile each key with bounded
//! concurrency, never the same key twice at once.
//!
//! Reconciles are level-triggered: a key only says "look at this object"; `reconcile` reads the
//! object from the store (the latest state the watch delivered), compares desired with observed,
//! acts, and says when to look again ([`Action`]). Events are hints, so reconciles must be
//! idempotent. An object that is gone from the store by the time its key comes up is skipped
//! (use finalizers for clean-up that must happen).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::NamespaceResourceScope;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::queue::WorkQueue;
use super::reflector::{self, Store};
use super::watcher::{self, Event};
use crate::api::{Api, Object};
use crate::object::{ObjectRef, ResourceExt};

/// What a reconcile asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    next: Next,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Await,
    After(Duration),
    Backoff,
}

impl Action {
    /// Reconcile again after `after` (also when nothing changes: periodic re-sync, timers).
    pub fn requeue(after: Duration) -> Action {
        Action {
            next: Next::After(after),
        }
    }

    /// Reconcile again only when a watched object changes.
    pub fn await_change() -> Action {
        Action { next: Next::Await }
    }

    /// Reconcile again after the key's exponential backoff (5 ms doubling to 1000 s, reset by
    /// the next success) — the usual answer of an error policy.
    pub fn requeue_with_backoff() -> Action {
        Action {
            next: Next::Backoff,
        }
    }

    /// The fixed delay asked for, if any.
    pub fn requeue_after(&self) -> Option<Duration> {
        match self.next {
            Next::After(d) => Some(d),
            _ => None,
        }
    }
}

/// A source of keys to reconcile.
type Trigger = Pin<Box<dyn Stream<Item = Vec<ObjectRef>> + Send>>;

/// A controller of kind `K`; see the module docs and the crate docs for an example.
pub struct Controller<K: Object> {
    store: Store<K>,
    triggers: Vec<Trigger>,
    stores: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
    queue: WorkQueue<ObjectRef>,
}

impl<K: Object> std::fmt::Debug for Controller<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("kind", &K::KIND)
            .field("triggers", &self.triggers.len())
            .field("queue", &self.queue)
            .finish()
    }
}

/// The watcher of one kind, kept in a store, turned into keys by `keys`.
fn trigger<C, F>(api: Api<C>, config: watcher::Config, keys: F) -> (Store<C>, Trigger)
where
    C: Object,
    F: Fn(&Event<C>) -> Vec<ObjectRef> + Send + 'static,
{
    let (store, writer) = reflector::store::<C>();
    let events = reflector::reflector(writer, watcher::watcher(api, config));
    let stream = events.map(move |ev| match ev {
        Ok(ev) => keys(&ev),
        Err(err) => {
            tracing::warn!(kind = C::KIND, %err, "watch failed; retrying");
            Vec::new()
        }
    });
    (store, Box::pin(stream))
}

fn is_namespaced<K: Object>() -> bool {
    TypeId::of::<K::Scope>() == TypeId::of::<NamespaceResourceScope>()
}

impl<K: Object> Controller<K> {
    /// A controller of the objects of `api` that `config` selects.
    pub fn new(api: Api<K>, config: watcher::Config) -> Controller<K> {
        let (store, main) = trigger(api, config, |ev| match ev {
            // A deleted object has nothing left to reconcile.
            Event::Apply(obj) | Event::InitApply(obj) => vec![obj.object_ref()],
            _ => Vec::new(),
        });
        let mut stores: HashMap<TypeId, Box<dyn Any + Send + Sync>> = HashMap::new();
        stores.insert(TypeId::of::<K>(), Box::new(store.clone()));
        Controller {
            store,
            triggers: vec![main],
            stores,
            queue: WorkQueue::new(),
        }
    }

    /// Also watches child objects of kind `C`: a change to a child (or its deletion) queues the
    /// object of kind `K` named by its controller ownerReference.
    pub fn owns<C: Object>(mut self, api: Api<C>, config: watcher::Config) -> Controller<K> {
        let owner_namespaced = is_namespaced::<K>();
        let (store, stream) = trigger(api, config, move |ev| {
            let Some(child) = ev.object() else {
                return Vec::new();
            };
            child
                .owner_references()
                .iter()
                .filter(|o| {
                    o.controller == Some(true)
                        && o.kind == K::KIND
                        && o.api_version == K::API_VERSION
                })
                .map(|o| {
                    let key = ObjectRef::new(&o.name);
                    match child.namespace() {
                        Some(ns) if owner_namespaced => key.within(&ns),
                        _ => key,
                    }
                })
                .collect()
        });
        self.stores
            .entry(TypeId::of::<C>())
            .or_insert_with(|| Box::new(store));
        self.triggers.push(stream);
        self
    }

    /// Also watches objects of kind `O`; `mapper` names the `K` objects a change to one of them
    /// concerns (a Service → the EndpointSlices to recompute, a Node → its pods).
    pub fn watches<O, F>(mut self, api: Api<O>, config: watcher::Config, mapper: F) -> Controller<K>
    where
        O: Object,
        F: Fn(&O) -> Vec<ObjectRef> + Send + Sync + 'static,
    {
        let (store, stream) = trigger(api, config, move |ev| match ev.object() {
            Some(obj) => mapper(obj),
            None => Vec::new(),
        });
        self.stores
            .entry(TypeId::of::<O>())
            .or_insert_with(|| Box::new(store));
        self.triggers.push(stream);
        self
    }

    /// Reconciles `keys` as they arrive, in addition to the watches (external triggers).
    pub fn reconcile_on<S>(mut self, keys: S) -> Controller<K>
    where
        S: Stream<Item = ObjectRef> + Send + 'static,
    {
        self.triggers.push(Box::pin(keys.map(|k| vec![k])));
        self
    }

    /// The store of the main kind (filled once [`Controller::run`] runs).
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// The store of an owned or watched kind `C` (the main kind's too).
    pub fn store_for<C: Object>(&self) -> Option<Store<C>> {
        self.stores
            .get(&TypeId::of::<C>())
            .and_then(|s| s.downcast_ref::<Store<C>>())
            .cloned()
    }

    /// The work queue, to queue keys from elsewhere (`queue().add(key)`).
    pub fn queue(&self) -> WorkQueue<ObjectRef> {
        self.queue.clone()
    }

    /// Runs until `shutdown` is cancelled, then lets in-flight reconciles finish and returns.
    ///
    /// * `reconcile(object, ctx)` → `Ok(Action)`, or `Err(e)` handed to `error_policy(object,
    ///   &e, ctx)`, whose `Action` decides the retry (usually [`Action::requeue_with_backoff`]).
    /// * `concurrency` workers (at least 1) reconcile different keys in parallel.
    /// * Reconciles start once the main kind's store holds its first complete list.
    pub async fn run<Ctx, F, Fut, E, P>(
        self,
        reconcile: F,
        error_policy: P,
        ctx: Arc<Ctx>,
        concurrency: usize,
        shutdown: CancellationToken,
    ) where
        Ctx: Send + Sync + 'static,
        F: Fn(Arc<K>, Arc<Ctx>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        E: Display + Send + 'static,
        P: Fn(Arc<K>, &E, Arc<Ctx>) -> Action + Send + Sync + 'static,
    {
        let Controller {
            store,
            triggers,
            queue,
            ..
        } = self;
        let reconcile = Arc::new(reconcile);
        let error_policy = Arc::new(error_policy);
        let mut tasks = JoinSet::new();
        for mut trigger in triggers {
            let queue = queue.clone();
            let shutdown = shutdown.clone();
            tasks.spawn(async move {
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        keys = trigger.next() => match keys {
                            Some(keys) => keys.into_iter().for_each(|k| queue.add(k)),
                            None => break,
                        },
                    }
                }
            });
        }
        for id in 0..concurrency.max(1) {
            let worker = Worker {
                store: store.clone(),
                queue: queue.clone(),
                reconcile: reconcile.clone(),
                error_policy: error_policy.clone(),
                ctx: ctx.clone(),
                shutdown: shutdown.clone(),
            };
            tasks.spawn(worker.run().instrument(tracing::debug_span!(
                "worker",
                kind = K::KIND,
                id
            )));
        }
        shutdown.cancelled().await;
        queue.shut_down();
        while let Some(joined) = tasks.join_next().await {
            if let Err(err) = joined
                && err.is_panic()
            {
                tracing::error!(kind = K::KIND, "a controller task panicked");
            }
        }
    }
}

struct Worker<K, Ctx, F, P> {
    store: Store<K>,
    queue: WorkQueue<ObjectRef>,
    reconcile: Arc<F>,
    error_policy: Arc<P>,
    ctx: Arc<Ctx>,
    shutdown: CancellationToken,
}

impl<K, Ctx, F, Fut, E, P> Worker<K, Ctx, F, P>
where
    K: Object,
    Ctx: Send + Sync + 'static,
    F: Fn(Arc<K>, Arc<Ctx>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    E: Display + Send + 'static,
    P: Fn(Arc<K>, &E, Arc<Ctx>) -> Action + Send + Sync + 'static,
{
    async fn run(self) {
        tokio::select! {
            _ = self.store.wait_until_ready() => {}
            _ = self.shutdown.cancelled() => return,
        }
        while let Some(key) = self.queue.next().await {
            if self.shutdown.is_cancelled() {
                self.queue.done(&key);
                break;
            }
            if let Some(obj) = self.store.get(&key) {
                let span = tracing::debug_span!("reconcile", kind = K::KIND, object = %key);
                self.reconcile_one(&key, obj).instrument(span).await;
            }
            self.queue.done(&key);
        }
    }

    async fn reconcile_one(&self, key: &ObjectRef, obj: Arc<K>) {
        // Spawned so that a panicking reconcile fails this key, not the worker.
        let outcome = tokio::spawn((self.reconcile)(obj.clone(), self.ctx.clone())).await;
        let action = match outcome {
            Ok(Ok(action)) => {
                self.queue.forget(key);
                action
            }
            Ok(Err(err)) => {
                tracing::warn!(kind = K::KIND, object = %key, %err, "reconcile failed");
                (self.error_policy)(obj, &err, self.ctx.clone())
            }
            Err(join) => {
                tracing::error!(kind = K::KIND, object = %key, %join, "reconcile panicked");
                Action::requeue_with_backoff()
            }
        };
        match action.next {
            Next::Await => {}
            Next::After(after) => self.queue.add_after(key.clone(), after),
            Next::Backoff => self.queue.add_rate_limited(key.clone()),
        }
    }
}
