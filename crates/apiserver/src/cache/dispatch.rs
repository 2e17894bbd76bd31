//! The watchers of one resource's cache, indexed by their trigger value, so that an event is
//! offered only to the watchers that can see it (Kubernetes' watch cache `triggerFunc` /
//! `IndexerFuncs`, which for pods indexes `spec.nodeName`).
//!
//! A kind may have a *trigger field* ([`trigger_field`]). A watcher whose field selector pins that
//! field with an equality (`spec.nodeName=node-7`) registers under that value; every other watcher
//! is untriggered. A change is offered to the untriggered watchers and to the watchers registered
//! under the trigger value of the object before or after the change — so a pod bound to `node-7`
//! (before: "", after: "node-7") reaches `node-7`'s watcher, which sees it as ADDED, and a pod that
//! leaves `node-7` reaches it too, as DELETED. Any other watcher's selector cannot match either
//! state, so skipping it changes nothing it sees. With one sim kubelet per node, this turns the
//! per-event cost from O(watchers) into O(1 + watchers of that node).
//!
//! IO-free: the slots are whatever the cache keeps per watcher.

use std::collections::{HashMap, HashSet};

/// The field a kind's watchers are indexed by, as in kube-apiserver (`pod.spec.nodeName` for pods
/// only; no other built-in kind has a trigger function).
pub fn trigger_field(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some("spec.nodeName"),
        _ => None,
    }
}

/// Watchers by id, with the index of the triggered ones.
#[derive(Debug)]
pub struct Watchers<S> {
    slots: HashMap<u64, Entry<S>>,
    /// Trigger value → the ids registered under it.
    by_value: HashMap<String, HashSet<u64>>,
    untriggered: HashSet<u64>,
}

#[derive(Debug)]
struct Entry<S> {
    trigger: Option<String>,
    slot: S,
}

impl<S> Default for Watchers<S> {
    fn default() -> Self {
        Watchers {
            slots: HashMap::new(),
            by_value: HashMap::new(),
            untriggered: HashSet::new(),
        }
    }
}

impl<S> Watchers<S> {
    /// Adds a watcher; `trigger` is the value its selector pins the kind's trigger field to.
    pub fn insert(&mut self, id: u64, trigger: Option<String>, slot: S) {
        self.remove(id);
        match &trigger {
            Some(v) => {
                self.by_value.entry(v.clone()).or_default().insert(id);
            }
            None => {
                self.untriggered.insert(id);
            }
        }
        self.slots.insert(id, Entry { trigger, slot });
    }

    pub fn remove(&mut self, id: u64) -> Option<S> {
        let entry = self.slots.remove(&id)?;
        match &entry.trigger {
            Some(v) => {
                if let Some(ids) = self.by_value.get_mut(v) {
                    ids.remove(&id);
                    if ids.is_empty() {
                        self.by_value.remove(v);
                    }
                }
            }
            None => {
                self.untriggered.remove(&id);
            }
        }
        Some(entry.slot)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Calls `keep` on every watcher that can see an object whose trigger values (before and
    /// after a change) are `values` — untriggered ones, then those registered under a value —
    /// each once, and removes those for which it returns false. `None` means the kind has no
    /// trigger field: every watcher is a candidate.
    pub fn retain_candidates(
        &mut self,
        values: Option<[&str; 2]>,
        mut keep: impl FnMut(&mut S) -> bool,
    ) {
        let Some([a, b]) = values else {
            self.retain(keep);
            return;
        };
        let mut ended = Vec::new();
        let triggered = |v: &str| self.by_value.get(v).into_iter().flatten();
        let candidates: Vec<u64> = if a == b {
            self.untriggered
                .iter()
                .chain(triggered(a))
                .copied()
                .collect()
        } else {
            self.untriggered
                .iter()
                .chain(triggered(a))
                .chain(triggered(b))
                .copied()
                .collect()
        };
        for id in candidates {
            if let Some(entry) = self.slots.get_mut(&id)
                && !keep(&mut entry.slot)
            {
                ended.push(id);
            }
        }
        for id in ended {
            self.remove(id);
        }
    }

    /// Calls `keep` on every watcher; removes those for which it returns false.
    pub fn retain(&mut self, mut keep: impl FnMut(&mut S) -> bool) {
        let ended: Vec<u64> = self
            .slots
            .iter_mut()
            .filter_map(|(id, e)| (!keep(&mut e.slot)).then_some(*id))
            .collect();
        for id in ended {
            self.remove(id);
        }
    }

    /// Removes every watcher, returning them.
    pub fn drain(&mut self) -> Vec<S> {
        self.by_value.clear();
        self.untriggered.clear();
        self.slots.drain().map(|(_, e)| e.slot).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The watchers that `retain_candidates` visits for `values`, sorted.
    fn visited(w: &mut Watchers<u64>, values: Option<[&str; 2]>) -> Vec<u64> {
        let mut seen = Vec::new();
        w.retain_candidates(values, |s| {
            seen.push(*s);
            true
        });
        seen.sort();
        seen
    }

    fn three() -> Watchers<u64> {
        let mut w = Watchers::default();
        w.insert(1, Some("n1".into()), 1);
        w.insert(2, Some("n2".into()), 2);
        w.insert(3, None, 3);
        w
    }

    #[test]
    fn trigger_field_is_pods_node_name_only() {
        assert_eq!(trigger_field("Pod"), Some("spec.nodeName"));
        assert_eq!(trigger_field("Node"), None);
        assert_eq!(trigger_field("ConfigMap"), None);
    }

    #[test]
    fn only_untriggered_and_matching_values_are_visited() {
        let mut w = three();
        assert_eq!(visited(&mut w, Some(["n1", "n1"])), [1, 3]);
        assert_eq!(visited(&mut w, Some(["n2", "n2"])), [2, 3]);
        assert_eq!(visited(&mut w, Some(["", ""])), [3]);
        assert_eq!(visited(&mut w, Some(["n9", "n9"])), [3]);
    }

    #[test]
    fn a_move_between_values_reaches_both_sides_once() {
        let mut w = three();
        // Binding: "" -> n1.
        assert_eq!(visited(&mut w, Some(["", "n1"])), [1, 3]);
        // A change of the trigger value reaches the old and the new value's watchers.
        assert_eq!(visited(&mut w, Some(["n1", "n2"])), [1, 2, 3]);
    }

    #[test]
    fn no_trigger_field_visits_everyone() {
        let mut w = three();
        assert_eq!(visited(&mut w, None), [1, 2, 3]);
    }

    #[test]
    fn ended_watchers_leave_the_index() {
        let mut w = three();
        w.insert(4, Some("n1".into()), 4);
        w.retain_candidates(Some(["n1", "n1"]), |s| *s != 1);
        assert_eq!(w.len(), 3);
        assert_eq!(visited(&mut w, Some(["n1", "n1"])), [3, 4]);
        w.retain(|s| *s != 4);
        assert_eq!(visited(&mut w, Some(["n1", "n1"])), [3]);
        assert!(!w.by_value.contains_key("n1"), "empty sets are dropped");
        assert_eq!(w.remove(2), Some(2));
        assert_eq!(w.remove(2), None);
        assert_eq!(visited(&mut w, None), [3]);
        assert_eq!(w.drain(), vec![3]);
        assert!(w.is_empty());
    }

    #[test]
    fn reinserting_an_id_moves_it() {
        let mut w = three();
        w.insert(1, Some("n2".into()), 1);
        assert_eq!(visited(&mut w, Some(["n1", "n1"])), [3]);
        assert_eq!(visited(&mut w, Some(["n2", "n2"])), [1, 2, 3]);
    }
}
