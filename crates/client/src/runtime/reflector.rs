//! The reflector: a local, always-current copy of the objects a watcher sees.
//!
//! [`store`] makes a [`Store`] (read side, cheap to clone and share) and its [`Writer`];
//! [`reflector`] passes a watcher's events through, applying each to the writer first. A re-list
//! (`Init` … `InitDone`) is collected aside and swapped in whole, so readers never see a
//! half-listed state and objects deleted while the watch was down disappear.

use std::collections::HashMap;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use parking_lot::RwLock;

use super::watcher::Event;
use crate::api::Object;
use crate::error::Result;
use crate::object::ObjectRef;

type Map<K> = HashMap<ObjectRef, Arc<K>>;

struct Shared<K> {
    objects: RwLock<Map<K>>,
    /// `true` once the first list is complete.
    ready: tokio::sync::watch::Sender<bool>,
}

/// The read side: a snapshot-able map of objects by [`ObjectRef`]. Cheap to clone.
pub struct Store<K> {
    shared: Arc<Shared<K>>,
}

impl<K> Clone for Store<K> {
    fn clone(&self) -> Self {
        Store {
            shared: self.shared.clone(),
        }
    }
}

impl<K> std::fmt::Debug for Store<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("len", &self.shared.objects.read().len())
            .field("ready", &*self.shared.ready.borrow())
            .finish()
    }
}

impl<K> Store<K> {
    pub fn get(&self, key: &ObjectRef) -> Option<Arc<K>> {
        self.shared.objects.read().get(key).cloned()
    }

    /// Every object (in no particular order).
    pub fn state(&self) -> Vec<Arc<K>> {
        self.shared.objects.read().values().cloned().collect()
    }

    /// The first object matching `pred`.
    pub fn find(&self, mut pred: impl FnMut(&K) -> bool) -> Option<Arc<K>> {
        self.shared
            .objects
            .read()
            .values()
            .find(|k| pred(k))
            .cloned()
    }

    /// Every object matching `pred`.
    pub fn filter(&self, mut pred: impl FnMut(&K) -> bool) -> Vec<Arc<K>> {
        self.shared
            .objects
            .read()
            .values()
            .filter(|k| pred(k))
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.shared.objects.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.shared.objects.read().is_empty()
    }

    /// Whether the first list has completed.
    pub fn is_ready(&self) -> bool {
        *self.shared.ready.borrow()
    }

    /// Waits until the first list has completed (the store holds the whole state). Returns at
    /// once if it has; never returns if the writer is dropped before that.
    pub async fn wait_until_ready(&self) {
        let mut rx = self.shared.ready.subscribe();
        if rx.wait_for(|ready| *ready).await.is_err() {
            futures::future::pending::<()>().await;
        }
    }
}

/// The write side of a [`Store`]; owned by the one task that drives the watcher.
pub struct Writer<K> {
    store: Store<K>,
    /// The state being re-listed, swapped in at `InitDone`.
    relist: Option<Map<K>>,
}

impl<K> std::fmt::Debug for Writer<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("relisting", &self.relist.is_some())
            .finish()
    }
}

impl<K: Object> Writer<K> {
    /// The store this writer fills.
    pub fn as_reader(&self) -> Store<K> {
        self.store.clone()
    }

    /// Applies one watcher event.
    pub fn apply(&mut self, event: &Event<K>) {
        match event {
            Event::Apply(obj) => {
                let key = ObjectRef::from_obj(obj);
                self.store
                    .shared
                    .objects
                    .write()
                    .insert(key, Arc::new(obj.clone()));
            }
            Event::Delete(obj) => {
                self.store
                    .shared
                    .objects
                    .write()
                    .remove(&ObjectRef::from_obj(obj));
            }
            Event::Init => self.relist = Some(Map::new()),
            Event::InitApply(obj) => {
                let key = ObjectRef::from_obj(obj);
                self.relist
                    .get_or_insert_with(Map::new)
                    .insert(key, Arc::new(obj.clone()));
            }
            Event::InitDone => {
                let fresh = self.relist.take().unwrap_or_default();
                *self.store.shared.objects.write() = fresh;
                self.store.shared.ready.send_replace(true);
            }
        }
    }
}

/// A new empty store and its writer.
pub fn store<K>() -> (Store<K>, Writer<K>) {
    let (ready, _) = tokio::sync::watch::channel(false);
    let store = Store {
        shared: Arc::new(Shared {
            objects: RwLock::new(Map::new()),
            ready,
        }),
    };
    let writer = Writer {
        store: store.clone(),
        relist: None,
    };
    (store, writer)
}

/// Passes `stream`'s events through, applying each to `writer` before it is passed on (so a
/// consumer reacting to an event finds the store already updated).
pub fn reflector<K, S>(mut writer: Writer<K>, stream: S) -> impl Stream<Item = Result<Event<K>>>
where
    K: Object,
    S: Stream<Item = Result<Event<K>>>,
{
    stream.map(move |ev| {
        if let Ok(ev) = &ev {
            writer.apply(ev);
        }
        ev
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn cm(name: &str, value: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            data: Some([("v".to_string(), value.to_string())].into()),
            ..Default::default()
        }
    }

    fn key(name: &str) -> ObjectRef {
        ObjectRef::new(name).within("ns")
    }

    #[test]
    fn a_relist_replaces_the_state_only_when_done() {
        let (store, mut writer) = store::<ConfigMap>();
        assert!(!store.is_ready());
        writer.apply(&Event::Init);
        writer.apply(&Event::InitApply(cm("a", "1")));
        writer.apply(&Event::InitApply(cm("b", "1")));
        assert!(store.is_empty(), "a half-done list is not visible");
        writer.apply(&Event::InitDone);
        assert!(store.is_ready());
        assert_eq!(store.len(), 2);

        writer.apply(&Event::Apply(cm("a", "2")));
        let a = store.get(&key("a")).expect("a");
        assert_eq!(
            a.data.as_ref().and_then(|d| d.get("v")).map(String::as_str),
            Some("2")
        );

        // A re-list after a gap in which b was deleted and c created.
        writer.apply(&Event::Init);
        writer.apply(&Event::InitApply(cm("a", "3")));
        writer.apply(&Event::InitApply(cm("c", "1")));
        assert!(store.get(&key("b")).is_some(), "old state until InitDone");
        writer.apply(&Event::InitDone);
        assert!(store.get(&key("b")).is_none());
        assert!(store.get(&key("c")).is_some());
        writer.apply(&Event::Delete(cm("c", "1")));
        assert_eq!(store.len(), 1);
        assert!(
            store
                .find(|c| c.metadata.name.as_deref() == Some("a"))
                .is_some()
        );
    }

    #[tokio::test]
    async fn wait_until_ready_returns_after_the_first_list() {
        let (store, mut writer) = store::<ConfigMap>();
        let waiter = tokio::spawn({
            let store = store.clone();
            async move { store.wait_until_ready().await }
        });
        writer.apply(&Event::Init);
        writer.apply(&Event::InitDone);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("ready in time")
            .expect("task");
    }
}
