//! Which ReplicaSets a pod change makes sync, and how soon: at once or batched.
//!
//! A ReplicaSet sync reads every pod it owns (claims, status), so one sync per pod event makes a
//! 10,000-pod ReplicaSet do O(n) work for each of its ~40,000 pod events (created, bound,
//! running, ready, …): in the 10,000-replica bench that was most of the controller-manager's CPU.
//! Kubernetes batches pod events the same way where it matters (the Job controller's
//! `syncJobBatchPeriod`, the EndpointSlice controller's `--endpointslice-updates-batch-period`):
//!
//! * **at once** — the event that completes the ReplicaSet's expectations (the last of the pods
//!   it created has shown up, or the last it deleted has gone: the next create/delete burst can
//!   go), a pod that vanished without terminating first (it must be replaced), an orphan it may
//!   adopt, and a re-list;
//! * **batched** ([`BATCH_PERIOD`]) — everything else: status changes (bound, running, ready),
//!   pods of a burst still being awaited, pods going away after terminating. The work queue keeps
//!   the earliest requested time, so while events keep coming a ReplicaSet syncs at most once per
//!   period; its status (ready/available counts) lags its pods by at most that much.
//!
//! IO-free apart from reading the caches it is given.

use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use niwa_client::{ObjectRef, ResourceExt, Store};

use super::core;
use crate::informer::Change;
use crate::util::expectations::{Expectations, Observation, Seen};
use crate::util::owner;

/// How long a batched pod change waits; the most a ReplicaSet's status lags its pods.
pub const BATCH_PERIOD: Duration = Duration::from_millis(100);

/// How soon a ReplicaSet syncs for a pod change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Now,
    Batched,
}

impl When {
    /// The delay to queue with.
    pub fn delay(self) -> Duration {
        match self {
            When::Now => Duration::ZERO,
            When::Batched => BATCH_PERIOD,
        }
    }
}

/// The ReplicaSets `change` concerns and when each should sync. `expectations` are told the
/// change (see [`Expectations::observe`]).
pub fn route(
    change: &Change<Pod>,
    rs_store: &Store<ReplicaSet>,
    expectations: &Expectations,
) -> Vec<(ObjectRef, When)> {
    let (pod, deleted) = match change {
        Change::Applied(p) => (p, false),
        Change::Deleted(p) => (p, true),
        Change::Resync => {
            return rs_store
                .state()
                .iter()
                .map(|r| (r.object_ref(), When::Now))
                .collect();
        }
    };
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let Some(c) = owner::controller_of(&pod.metadata) else {
        // An orphan: every ReplicaSet in its namespace that selects it may adopt it.
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        return rs_store
            .filter(|rs| {
                rs.metadata.namespace.as_deref() == Some(ns)
                    && core::selector(rs).is_ok_and(|s| !s.is_everything() && s.matches(&labels))
            })
            .iter()
            .map(|r| (r.object_ref(), When::Now))
            .collect();
    };
    if c.kind != "ReplicaSet" {
        return Vec::new();
    }
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let seen = match (deleted, terminating) {
        (true, _) => Seen::Absent,
        (false, true) => Seen::Terminating,
        (false, false) => Seen::Present,
    };
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let key = format!("{ns}/{}", c.name);
    let when = match expectations.observe(&key, name, seen) {
        Observation::Complete => When::Now,
        Observation::Waiting => When::Batched,
        // A pod gone without terminating first (force-deleted, evicted by a node's removal)
        // leaves the ReplicaSet short: replace it now.
        Observation::NotExpected if deleted && !terminating => When::Now,
        Observation::NotExpected => When::Batched,
    };
    vec![(ObjectRef::new(&c.name).within(ns), when)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::pod::test_pods::{deleting, pod};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use niwa_client::runtime::reflector;
    use niwa_client::runtime::watcher::Event;
    use std::sync::Arc;
    use std::time::Instant;

    fn owned(mut p: Pod) -> Pod {
        p.metadata.namespace = Some("default".into());
        p.metadata.owner_references = Some(vec![OwnerReference {
            kind: "ReplicaSet".into(),
            name: "web".into(),
            uid: "rs-uid".into(),
            controller: Some(true),
            ..Default::default()
        }]);
        p
    }

    fn when(change: Change<Pod>, ex: &Expectations) -> Vec<(String, When)> {
        let (store, _writer) = reflector::store::<ReplicaSet>();
        route(&change, &store, ex)
            .into_iter()
            .map(|(k, w)| (k.to_string(), w))
            .collect()
    }

    #[test]
    fn status_changes_are_batched_and_a_completed_burst_syncs_now() {
        let ex = Expectations::new();
        let applied = |p: Pod| Change::Applied(Arc::new(owned(p)));
        // No expectations: a status change waits for the batch.
        assert_eq!(
            when(applied(pod("a")), &ex),
            [("default/web".to_string(), When::Batched)]
        );
        ex.expect(
            "default/web",
            vec!["b".into(), "c".into()],
            vec![],
            Instant::now(),
        );
        assert_eq!(when(applied(pod("b")), &ex)[0].1, When::Batched);
        assert_eq!(when(applied(pod("c")), &ex)[0].1, When::Now);
        // Another controller's kind: nothing.
        let mut job_pod = owned(pod("j"));
        if let Some(r) = job_pod.metadata.owner_references.as_mut() {
            r[0].kind = "Job".into();
        }
        assert!(when(Change::Applied(Arc::new(job_pod)), &ex).is_empty());
    }

    #[test]
    fn a_vanished_pod_syncs_now_a_terminated_one_waits() {
        let ex = Expectations::new();
        let gone = |p: Pod| Change::Deleted(Arc::new(owned(p)));
        assert_eq!(when(gone(pod("a")), &ex)[0].1, When::Now);
        assert_eq!(when(gone(deleting(pod("a"))), &ex)[0].1, When::Batched);
        // The last of a scale-down burst going (terminating) unblocks the next burst.
        ex.expect(
            "default/web",
            vec![],
            vec!["x".into(), "y".into()],
            Instant::now(),
        );
        let terminating = |p: Pod| Change::Applied(Arc::new(owned(deleting(p))));
        assert_eq!(when(terminating(pod("x")), &ex)[0].1, When::Batched);
        assert_eq!(when(terminating(pod("y")), &ex)[0].1, When::Now);
    }

    #[test]
    fn a_relist_syncs_every_replicaset_now() {
        let (store, mut writer) = reflector::store::<ReplicaSet>();
        let mut rs = ReplicaSet::default();
        rs.metadata.name = Some("web".into());
        rs.metadata.namespace = Some("default".into());
        writer.apply(&Event::Apply(rs));
        let routed = route(&Change::Resync, &store, &Expectations::new());
        assert_eq!(routed.len(), 1);
        assert_eq!(routed[0].1, When::Now);
    }
}
