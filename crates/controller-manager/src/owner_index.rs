//! An informer's objects indexed by their managing controller (Kubernetes'
//! `PodControllerUIDIndex` with its `OrphanPodIndexKey`): a ReplicaSet, Job or Deployment sync
//! asks for the pods whose controller reference carries its UID, plus the orphans of its namespace
//! it may adopt, instead of scanning every pod in the cache (`FilterPodsByOwner`). With one
//! 10,000-pod Deployment that is the difference between touching 10,000 pods per sync and touching
//! the sync's own.
//!
//! The index holds keys, not objects: readers fetch the objects from the informer's store. The
//! informer updates the index *before* the store, so the index never lags it: a sync that checks
//! its expectations against the store and then reads the index finds every pod the expectations saw
//! (with the index behind the store, a pod could pass the expectations and still be missing from
//! the sync's count, and be created twice). A re-list is staged aside and swapped in whole at
//! `InitDone`, as the store does.
//!
//! IO-free: [`OwnerIndex::apply`] takes the watcher's events.

use std::collections::{HashMap, HashSet};

use k8s_openapi::Metadata;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use niwa_client::ObjectRef;
use niwa_client::runtime::watcher::Event;
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::util::owner;

/// Where an object is indexed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Slot {
    /// Controlled by the object with this UID.
    Controller(String),
    /// No controller: an orphan of this namespace (any controller there may adopt it).
    Orphan(Option<String>),
}

fn slot_of(meta: &ObjectMeta) -> Slot {
    match owner::controller_of(meta) {
        Some(r) => Slot::Controller(r.uid.clone()),
        None => Slot::Orphan(meta.namespace.clone().filter(|n| !n.is_empty())),
    }
}

#[derive(Debug, Default)]
struct Slots {
    members: HashMap<Slot, HashSet<ObjectRef>>,
    /// The slot each object is in, to move it when its controller reference changes.
    slot: HashMap<ObjectRef, Slot>,
}

impl Slots {
    fn put(&mut self, key: ObjectRef, slot: Slot) {
        if let Some(old) = self.slot.get(&key) {
            if *old == slot {
                return;
            }
            let old = old.clone();
            self.take_from(&old, &key);
        }
        self.members
            .entry(slot.clone())
            .or_default()
            .insert(key.clone());
        self.slot.insert(key, slot);
    }

    fn remove(&mut self, key: &ObjectRef) {
        if let Some(old) = self.slot.remove(key) {
            self.take_from(&old, key);
        }
    }

    fn take_from(&mut self, slot: &Slot, key: &ObjectRef) {
        if let Some(set) = self.members.get_mut(slot) {
            set.remove(key);
            if set.is_empty() {
                self.members.remove(slot);
            }
        }
    }

    fn keys(&self, slot: &Slot) -> Vec<ObjectRef> {
        self.members
            .get(slot)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// The index; shared between the informer task (the one writer) and the controllers.
#[derive(Debug, Default)]
pub struct OwnerIndex {
    live: RwLock<Slots>,
    /// A re-list in progress (only the writer touches it).
    staged: Mutex<Option<Slots>>,
}

impl OwnerIndex {
    pub fn new() -> OwnerIndex {
        OwnerIndex::default()
    }

    // Every update under these locks is one insert/remove/swap: a poisoned lock is still consistent.
    fn read(&self) -> RwLockReadGuard<'_, Slots> {
        self.live.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Slots> {
        self.live.write().unwrap_or_else(|e| e.into_inner())
    }

    fn staged(&self) -> MutexGuard<'_, Option<Slots>> {
        self.staged.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Apply one watcher event (call before the store applies it).
    pub fn apply<K: Metadata<Ty = ObjectMeta>>(&self, event: &Event<K>) {
        match event {
            Event::Apply(obj) => {
                let meta = obj.metadata();
                self.write().put(ObjectRef::from_obj(obj), slot_of(meta));
            }
            Event::Delete(obj) => self.write().remove(&ObjectRef::from_obj(obj)),
            Event::Init => *self.staged() = Some(Slots::default()),
            Event::InitApply(obj) => {
                let meta = obj.metadata();
                self.staged()
                    .get_or_insert_with(Slots::default)
                    .put(ObjectRef::from_obj(obj), slot_of(meta));
            }
            Event::InitDone => {
                let fresh = self.staged().take().unwrap_or_default();
                *self.write() = fresh;
            }
        }
    }

    /// Keys of the objects whose controller reference carries `uid`.
    pub fn controlled_by(&self, uid: &str) -> Vec<ObjectRef> {
        self.read().keys(&Slot::Controller(uid.to_string()))
    }

    /// Keys of the objects of `namespace` that have no controller.
    pub fn orphans(&self, namespace: &str) -> Vec<ObjectRef> {
        let ns = (!namespace.is_empty()).then(|| namespace.to_string());
        self.read().keys(&Slot::Orphan(ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn pod(ns: &str, name: &str, controller: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                owner_references: controller.map(|uid| {
                    vec![OwnerReference {
                        api_version: "apps/v1".into(),
                        kind: "ReplicaSet".into(),
                        name: format!("rs-{uid}"),
                        uid: uid.into(),
                        controller: Some(true),
                        block_owner_deletion: Some(true),
                    }]
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn names(mut keys: Vec<ObjectRef>) -> Vec<String> {
        keys.sort();
        keys.into_iter().map(|k| k.to_string()).collect()
    }

    #[test]
    fn follows_controller_references_through_adoption_release_and_deletion() {
        let ix = OwnerIndex::new();
        ix.apply(&Event::Apply(pod("a", "p1", Some("u1"))));
        ix.apply(&Event::Apply(pod("a", "p2", Some("u1"))));
        ix.apply(&Event::Apply(pod("a", "o1", None)));
        ix.apply(&Event::Apply(pod("b", "o2", None)));
        assert_eq!(names(ix.controlled_by("u1")), ["a/p1", "a/p2"]);
        assert_eq!(names(ix.orphans("a")), ["a/o1"]);
        assert_eq!(names(ix.orphans("b")), ["b/o2"]);

        // Adopted by u2, released by u1, deleted.
        ix.apply(&Event::Apply(pod("a", "o1", Some("u2"))));
        ix.apply(&Event::Apply(pod("a", "p2", None)));
        ix.apply(&Event::Delete(pod("a", "p1", Some("u1"))));
        assert_eq!(names(ix.controlled_by("u1")), Vec::<String>::new());
        assert_eq!(names(ix.controlled_by("u2")), ["a/o1"]);
        assert_eq!(names(ix.orphans("a")), ["a/p2"]);
        // A pod controlled by a non-controller owner reference only is an orphan.
        let mut p = pod("a", "p3", Some("u3"));
        if let Some(r) = p.metadata.owner_references.as_mut() {
            r[0].controller = None;
        }
        ix.apply(&Event::Apply(p));
        assert_eq!(names(ix.orphans("a")), ["a/p2", "a/p3"]);
        assert!(ix.controlled_by("u3").is_empty());
    }

    #[test]
    fn a_relist_replaces_the_index_only_when_complete() {
        let ix = OwnerIndex::new();
        ix.apply(&Event::Apply(pod("a", "gone", Some("u1"))));
        ix.apply(&Event::<Pod>::Init);
        ix.apply(&Event::InitApply(pod("a", "p1", Some("u1"))));
        // Mid re-list the old state still answers.
        assert_eq!(names(ix.controlled_by("u1")), ["a/gone"]);
        ix.apply(&Event::<Pod>::InitDone);
        assert_eq!(names(ix.controlled_by("u1")), ["a/p1"]);
    }
}
