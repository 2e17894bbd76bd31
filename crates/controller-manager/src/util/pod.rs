//! Pod predicates every workload controller shares: active, ready, available, and the facts the
//! ReplicaSet deletion ranking reads — as Kubernetes' `pkg/api/v1/pod` and `pkg/controller` define them.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Pod;

/// `Pending`, `Running`, `Succeeded`, `Failed` or `Unknown`; a pod without a phase counts as `Pending`.
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// Whether the pod is being deleted (it has a deletionTimestamp).
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// A pod that counts towards a controller's replicas: not finished and not being deleted
/// (Kubernetes' `controller.IsPodActive`).
pub fn is_active(pod: &Pod) -> bool {
    let p = phase(pod);
    p != "Succeeded" && p != "Failed" && !is_terminating(pod)
}

/// The pod's Ready condition: `Some(since)` when it is True (since its last transition, if recorded).
fn ready_condition(pod: &Pod) -> Option<Option<Timestamp>> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    let ready = conditions.iter().find(|c| c.type_ == "Ready")?;
    (ready.status == "True").then(|| ready.last_transition_time.as_ref().map(|t| t.0))
}

/// Whether the pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some()
}

/// When a ready pod became ready (None when it is not ready or the time is unknown).
pub fn ready_since(pod: &Pod) -> Option<Timestamp> {
    ready_condition(pod).flatten()
}

/// Ready for at least `min_ready_seconds` (Kubernetes' `podutil.IsPodAvailable`: the ready
/// transition plus minReadySeconds must lie strictly before `now`).
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match ready_condition(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(Some(since)) => since + SignedDuration::from_secs(i64::from(min_ready_seconds)) < now,
        Some(None) => false,
    }
}

/// How long until a ready pod becomes available, if it is ready but not yet available.
pub fn time_until_available(
    pod: &Pod,
    min_ready_seconds: i32,
    now: Timestamp,
) -> Option<std::time::Duration> {
    let since = ready_since(pod)?;
    let at = since + SignedDuration::from_secs(i64::from(min_ready_seconds));
    let left = at.duration_since(now);
    (!left.is_negative()).then(|| left.unsigned_abs() + std::time::Duration::from_millis(1))
}

/// The highest restart count among the pod's containers.
pub fn max_container_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

/// The pod's creation time, if the apiserver recorded one.
pub fn created_at(pod: &Pod) -> Option<Timestamp> {
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// The node the pod is bound to ("" when unscheduled).
pub fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

/// The `controller.kubernetes.io/pod-deletion-cost` annotation (0 when absent or malformed).
pub fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("controller.kubernetes.io/pod-deletion-cost"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod test_pods {
    //! Builders for pods in the states the decision cores care about.
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerStatus, PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use std::collections::BTreeMap;

    pub fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    pub fn pod(name: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
                creation_timestamp: Some(Time(ts(0))),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            status: Some(PodStatus {
                phase: Some("Pending".into()),
                ..Default::default()
            }),
        }
    }

    pub fn on_node(mut p: Pod, node: &str) -> Pod {
        if let Some(spec) = p.spec.as_mut() {
            spec.node_name = Some(node.into());
        }
        p
    }

    pub fn running(mut p: Pod) -> Pod {
        if let Some(st) = p.status.as_mut() {
            st.phase = Some("Running".into());
        }
        p
    }

    pub fn phase_of(mut p: Pod, phase: &str) -> Pod {
        if let Some(st) = p.status.as_mut() {
            st.phase = Some(phase.into());
        }
        p
    }

    pub fn ready_at(p: Pod, secs: i64) -> Pod {
        let mut p = running(p);
        if let Some(st) = p.status.as_mut() {
            st.conditions = Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(Time(ts(secs))),
                ..Default::default()
            }]);
        }
        p
    }

    pub fn created(mut p: Pod, secs: i64) -> Pod {
        p.metadata.creation_timestamp = Some(Time(ts(secs)));
        p
    }

    pub fn restarts(mut p: Pod, n: i32) -> Pod {
        if let Some(st) = p.status.as_mut() {
            st.container_statuses = Some(vec![ContainerStatus {
                name: "c".into(),
                restart_count: n,
                ..Default::default()
            }]);
        }
        p
    }

    pub fn deleting(mut p: Pod) -> Pod {
        p.metadata.deletion_timestamp = Some(Time(ts(100)));
        p
    }
}

#[cfg(test)]
mod tests {
    use super::test_pods::*;
    use super::*;

    #[test]
    fn availability_needs_min_ready_seconds_strictly_elapsed() {
        let p = ready_at(pod("a"), 10);
        assert!(is_available(&p, 0, ts(10)));
        assert!(!is_available(&p, 5, ts(15)));
        assert!(is_available(&p, 5, ts(16)));
        assert!(!is_available(&pod("b"), 0, ts(100)));
        assert_eq!(
            time_until_available(&p, 5, ts(12)),
            Some(std::time::Duration::from_millis(3001))
        );
    }

    #[test]
    fn active_excludes_finished_and_terminating() {
        assert!(is_active(&pod("a")));
        assert!(!is_active(&phase_of(pod("a"), "Succeeded")));
        assert!(!is_active(&phase_of(pod("a"), "Failed")));
        assert!(!is_active(&deleting(pod("a"))));
    }
}
