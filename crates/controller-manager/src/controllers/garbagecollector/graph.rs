//! The garbage collector's ownership graph and decisions, IO-free (Kubernetes'
//! `GraphBuilder` + `attemptToDeleteItem` / `orphanDependents` / `processDeletingDependentsItem`).
//!
//! Nodes are objects (by UID) with their owner references, deletion state and finalizers; the
//! graph indexes dependents by owner UID. [`Graph::upsert`] / [`Graph::remove`] return the UIDs
//! whose decision may have changed; [`decide`] turns one node and the state of its owners into
//! what to do:
//! * an object whose owners are all gone (or all waiting for their dependents in foreground
//!   deletion) is deleted — Foreground when it has dependents of its own and an owner waits;
//! * one with some live owners loses the references to the gone ones (and `blockOwnerDeletion`
//!   towards owners waiting in foreground deletion, so they are not held up);
//! * an owner deleted with `orphan` has its references removed from its dependents, then the
//!   finalizer;
//! * an owner deleted with `foregroundDeletion` has its dependents deleted, and keeps the
//!   finalizer until no dependent with `blockOwnerDeletion` is left.

use std::collections::{BTreeSet, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use niwa_api::ResourceInfo;

pub const ORPHAN: &str = "orphan";
pub const FOREGROUND: &str = "foregroundDeletion";

/// One object of the graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub info: &'static ResourceInfo,
    pub namespace: Option<String>,
    pub name: String,
    pub owners: Vec<OwnerReference>,
    pub deleting: bool,
    pub finalizers: Vec<String>,
}

impl Node {
    pub fn from_meta(info: &'static ResourceInfo, meta: &ObjectMeta) -> Option<(String, Node)> {
        let uid = meta.uid.clone().filter(|u| !u.is_empty())?;
        Some((
            uid,
            Node {
                info,
                namespace: meta.namespace.clone().filter(|n| !n.is_empty()),
                name: meta.name.clone().unwrap_or_default(),
                owners: meta.owner_references.clone().unwrap_or_default(),
                deleting: meta.deletion_timestamp.is_some(),
                finalizers: meta.finalizers.clone().unwrap_or_default(),
            },
        ))
    }

    pub fn has_finalizer(&self, f: &str) -> bool {
        self.finalizers.iter().any(|x| x == f)
    }

    /// Deleting and waiting for its dependents (foreground).
    pub fn waiting_for_dependents(&self) -> bool {
        self.deleting && self.has_finalizer(FOREGROUND)
    }
}

#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
    dependents: HashMap<String, BTreeSet<String>>,
}

impl Graph {
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The UIDs of the objects that name `owner` in an ownerReference.
    pub fn dependents(&self, owner: &str) -> Vec<String> {
        self.dependents
            .get(owner)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Dependents that hold `owner`'s foreground deletion (blockOwnerDeletion=true).
    pub fn blocking_dependents(&self, owner: &str) -> Vec<String> {
        self.dependents(owner)
            .into_iter()
            .filter(|d| {
                self.nodes.get(d).is_some_and(|n| {
                    n.owners
                        .iter()
                        .any(|o| o.uid == owner && o.block_owner_deletion == Some(true))
                })
            })
            .collect()
    }

    /// Add or update a node; returns the UIDs to look at.
    pub fn upsert(&mut self, uid: String, node: Node) -> Vec<String> {
        let old = self.nodes.insert(uid.clone(), node.clone());
        if let Some(old) = &old {
            for o in &old.owners {
                if !node.owners.iter().any(|n| n.uid == o.uid)
                    && let Some(set) = self.dependents.get_mut(&o.uid)
                {
                    set.remove(&uid);
                    if set.is_empty() {
                        self.dependents.remove(&o.uid);
                    }
                }
            }
        }
        for o in &node.owners {
            self.dependents
                .entry(o.uid.clone())
                .or_default()
                .insert(uid.clone());
        }
        let changed = old.as_ref().is_none_or(|old| {
            old.owners != node.owners
                || old.deleting != node.deleting
                || old.finalizers != node.finalizers
        });
        let mut out = Vec::new();
        if changed
            && (!node.owners.is_empty()
                || (node.deleting
                    && (node.has_finalizer(ORPHAN) || node.has_finalizer(FOREGROUND))))
        {
            out.push(uid.clone());
        }
        // An owner that starts waiting for its dependents: they must look again.
        if changed && node.waiting_for_dependents() {
            out.extend(self.dependents(&uid));
        }
        out
    }

    /// Remove a node (the object is gone); returns the UIDs to look at: its dependents (maybe
    /// dangling now) and its owners (a foreground owner may have lost its last blocker).
    pub fn remove(&mut self, uid: &str) -> Vec<String> {
        let Some(node) = self.nodes.remove(uid) else {
            return Vec::new();
        };
        let mut out = self.dependents(uid);
        for o in &node.owners {
            if let Some(set) = self.dependents.get_mut(&o.uid) {
                set.remove(uid);
                if set.is_empty() {
                    self.dependents.remove(&o.uid);
                }
            }
            if self.nodes.contains_key(&o.uid) {
                out.push(o.uid.clone());
            }
        }
        out
    }

    /// After a (re-)list of one resource: the nodes of it not listed are gone.
    pub fn retain_listed(&mut self, info: &ResourceInfo, listed: &BTreeSet<String>) -> Vec<String> {
        let stale: Vec<String> = self
            .nodes
            .iter()
            .filter(|(uid, n)| {
                n.info.plural == info.plural && n.info.group == info.group && !listed.contains(*uid)
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        stale.iter().flat_map(|uid| self.remove(uid)).collect()
    }
}

/// What is known of one owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    /// Exists (same UID) and is not waiting for its dependents.
    Solid,
    /// Exists and is being deleted in the foreground.
    Waiting,
    /// Does not exist (or exists with another UID).
    Absent,
    /// Cannot be told (unknown kind): leave the dependent alone.
    Unknown,
}

/// What to do about one node.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Nothing,
    /// Delete the object with this propagation policy.
    Delete(&'static str),
    /// Keep it, but drop the references to these owner UIDs and clear blockOwnerDeletion towards
    /// those.
    FixReferences {
        remove: Vec<String>,
        unblock: Vec<String>,
    },
    /// Remove the owner's reference from these dependents, then the `orphan` finalizer.
    Orphan(Vec<String>),
    /// Delete these dependents (their own decision runs); remove `foregroundDeletion` when
    /// `finalize`.
    Foreground {
        dependents: Vec<String>,
        finalize: bool,
    },
}

/// The decision for `uid`; `owner_state` answers for each of its owner references.
pub fn decide(
    graph: &Graph,
    uid: &str,
    owner_state: impl Fn(&OwnerReference) -> OwnerState,
) -> Decision {
    let Some(node) = graph.get(uid) else {
        return Decision::Nothing;
    };
    if node.deleting {
        if node.has_finalizer(ORPHAN) {
            return Decision::Orphan(graph.dependents(uid));
        }
        if node.has_finalizer(FOREGROUND) {
            let dependents: Vec<String> = graph
                .dependents(uid)
                .into_iter()
                .filter(|d| graph.get(d).is_some_and(|n| !n.deleting))
                .collect();
            return Decision::Foreground {
                dependents,
                finalize: graph.blocking_dependents(uid).is_empty(),
            };
        }
        return Decision::Nothing;
    }
    if node.owners.is_empty() {
        return Decision::Nothing;
    }
    let states: Vec<(&OwnerReference, OwnerState)> =
        node.owners.iter().map(|o| (o, owner_state(o))).collect();
    if states.iter().any(|(_, s)| *s == OwnerState::Unknown) {
        return Decision::Nothing;
    }
    let solid = states.iter().any(|(_, s)| *s == OwnerState::Solid);
    if solid {
        let remove: Vec<String> = states
            .iter()
            .filter(|(_, s)| *s == OwnerState::Absent)
            .map(|(o, _)| o.uid.clone())
            .collect();
        let unblock: Vec<String> = states
            .iter()
            .filter(|(o, s)| *s == OwnerState::Waiting && o.block_owner_deletion == Some(true))
            .map(|(o, _)| o.uid.clone())
            .collect();
        if remove.is_empty() && unblock.is_empty() {
            return Decision::Nothing;
        }
        return Decision::FixReferences { remove, unblock };
    }
    let waiting = states.iter().any(|(_, s)| *s == OwnerState::Waiting);
    let policy = if waiting && !graph.dependents(uid).is_empty() {
        "Foreground"
    } else if node.has_finalizer(ORPHAN) {
        "Orphan"
    } else if node.has_finalizer(FOREGROUND) {
        "Foreground"
    } else {
        "Background"
    };
    Decision::Delete(policy)
}

#[cfg(test)]
#[path = "graph/tests.rs"]
mod tests;
