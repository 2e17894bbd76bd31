//! Which pods each Service selects, kept up to date incrementally, IO-free: what the Endpoints
//! and EndpointSlice controllers ask on every sync ("the pods of this Service") and on every pod
//! change ("the Services this pod is in, now and before").
//!
//! Without it every pod change matched the pod against every Service of its namespace, and every
//! sync matched every pod of the namespace against the Service: with 1,000 Services × 10 pods in
//! one namespace that is 10,000 label matches per sync, twice per pod change (two controllers).
//! Here a pod change costs one lookup when its labels did not change (the usual case: a status
//! update) and a match against the Services indexed under one of its labels when they did; a
//! Service's pods are a set lookup.
//!
//! Services are indexed under one `(namespace, key, value)` pair of their selector (the first:
//! every pair must match anyway), pods under each of their labels' pairs, so either side finds
//! its candidates without scanning the namespace.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use niwa_client::ObjectRef;

type Labels = BTreeMap<String, String>;
/// `(namespace, label key, label value)`.
type Pair = (String, String, String);

/// The Service ⇄ pod membership of a set of pods and Services.
#[derive(Debug, Default, Clone)]
pub struct PodIndex {
    /// Services with a (non-empty) selector.
    selectors: HashMap<ObjectRef, Labels>,
    /// Services by the first pair of their selector.
    services_by_pair: HashMap<Pair, BTreeSet<ObjectRef>>,
    /// Pods' labels.
    pods: HashMap<ObjectRef, Labels>,
    /// Pods by each pair of their labels.
    pods_by_pair: HashMap<Pair, BTreeSet<ObjectRef>>,
    /// Service → the pods it selects.
    members: HashMap<ObjectRef, BTreeSet<ObjectRef>>,
    /// Pod → the Services that select it.
    memberships: HashMap<ObjectRef, BTreeSet<ObjectRef>>,
}

fn namespace(key: &ObjectRef) -> String {
    key.namespace.clone().unwrap_or_default()
}

fn matches(selector: &Labels, labels: &Labels) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn first_pair(ns: &str, selector: &Labels) -> Option<Pair> {
    selector
        .iter()
        .next()
        .map(|(k, v)| (ns.to_string(), k.clone(), v.clone()))
}

fn pairs<'a>(ns: &'a str, labels: &'a Labels) -> impl Iterator<Item = Pair> + 'a {
    labels
        .iter()
        .map(move |(k, v)| (ns.to_string(), k.clone(), v.clone()))
}

impl PodIndex {
    /// A pod was created or changed (its current labels). Returns the Services to sync: those
    /// that select it now and those that did before (a relabelled pod leaves its old Services).
    pub fn apply_pod(&mut self, pod: &ObjectRef, labels: &Labels) -> Vec<ObjectRef> {
        if self.pods.get(pod) == Some(labels) {
            // A status change: the membership is what it was.
            return self.services_of(pod);
        }
        let mut affected = self.remove_pod(pod);
        let ns = namespace(pod);
        let mut now = BTreeSet::new();
        for pair in pairs(&ns, labels) {
            self.pods_by_pair
                .entry(pair.clone())
                .or_default()
                .insert(pod.clone());
            for svc in self.services_by_pair.get(&pair).into_iter().flatten() {
                if self.selectors.get(svc).is_some_and(|s| matches(s, labels)) {
                    now.insert(svc.clone());
                }
            }
        }
        for svc in &now {
            self.members
                .entry(svc.clone())
                .or_default()
                .insert(pod.clone());
        }
        affected.extend(now.iter().cloned());
        if !now.is_empty() {
            self.memberships.insert(pod.clone(), now);
        }
        self.pods.insert(pod.clone(), labels.clone());
        affected.sort();
        affected.dedup();
        affected
    }

    /// A pod was deleted. Returns the Services that selected it.
    pub fn delete_pod(&mut self, pod: &ObjectRef) -> Vec<ObjectRef> {
        self.remove_pod(pod)
    }

    fn remove_pod(&mut self, pod: &ObjectRef) -> Vec<ObjectRef> {
        if let Some(labels) = self.pods.remove(pod) {
            for pair in pairs(&namespace(pod), &labels) {
                if let Some(set) = self.pods_by_pair.get_mut(&pair) {
                    set.remove(pod);
                    if set.is_empty() {
                        self.pods_by_pair.remove(&pair);
                    }
                }
            }
        }
        let old = self.memberships.remove(pod).unwrap_or_default();
        for svc in &old {
            if let Some(set) = self.members.get_mut(svc) {
                set.remove(pod);
            }
        }
        old.into_iter().collect()
    }

    /// A Service was created or changed: `selector` is its selector (None for a selector-less
    /// Service, which selects nothing).
    pub fn apply_service(&mut self, svc: &ObjectRef, selector: Option<&Labels>) {
        let selector = selector.filter(|s| !s.is_empty());
        if self.selectors.get(svc) == selector {
            return;
        }
        self.delete_service(svc);
        let Some(selector) = selector else { return };
        let ns = namespace(svc);
        let Some(pair) = first_pair(&ns, selector) else {
            return;
        };
        let mut members = BTreeSet::new();
        for pod in self.pods_by_pair.get(&pair).into_iter().flatten() {
            if self.pods.get(pod).is_some_and(|l| matches(selector, l)) {
                members.insert(pod.clone());
            }
        }
        for pod in &members {
            self.memberships
                .entry(pod.clone())
                .or_default()
                .insert(svc.clone());
        }
        self.members.insert(svc.clone(), members);
        self.services_by_pair
            .entry(pair)
            .or_default()
            .insert(svc.clone());
        self.selectors.insert(svc.clone(), selector.clone());
    }

    /// A Service was deleted.
    pub fn delete_service(&mut self, svc: &ObjectRef) {
        let Some(selector) = self.selectors.remove(svc) else {
            return;
        };
        if let Some(pair) = first_pair(&namespace(svc), &selector)
            && let Some(set) = self.services_by_pair.get_mut(&pair)
        {
            set.remove(svc);
            if set.is_empty() {
                self.services_by_pair.remove(&pair);
            }
        }
        for pod in self.members.remove(svc).unwrap_or_default() {
            if let Some(set) = self.memberships.get_mut(&pod) {
                set.remove(svc);
                if set.is_empty() {
                    self.memberships.remove(&pod);
                }
            }
        }
    }

    /// The pods `svc` selects (sorted).
    pub fn pods_of(&self, svc: &ObjectRef) -> Vec<ObjectRef> {
        self.members
            .get(svc)
            .map(|m| m.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The Services that select `pod` (sorted).
    pub fn services_of(&self, pod: &ObjectRef) -> Vec<ObjectRef> {
        self.memberships
            .get(pod)
            .map(|m| m.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Every Service with a selector.
    pub fn services(&self) -> Vec<ObjectRef> {
        self.selectors.keys().cloned().collect()
    }

    /// Every pod.
    pub fn pods(&self) -> Vec<ObjectRef> {
        self.pods.keys().cloned().collect()
    }
}

#[cfg(test)]
#[path = "index/tests.rs"]
mod tests;
