//! Golden cases for the ReplicaSet decisions.

use super::*;
use crate::util::pod::test_pods::*;
use k8s_openapi::api::apps::v1::ReplicaSetSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as ApiSelector;

fn rs(replicas: i32) -> ReplicaSet {
    let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("rs-uid".into()),
            generation: Some(3),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            selector: ApiSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            },
            template: Some(PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: None,
            }),
            min_ready_seconds: None,
        }),
        status: None,
    }
}

fn owned(mut p: Pod) -> Pod {
    p.metadata.owner_references = Some(vec![OwnerReference {
        uid: "rs-uid".into(),
        controller: Some(true),
        ..Default::default()
    }]);
    p
}

fn names(pods: &[&Pod]) -> Vec<String> {
    pods.iter()
        .map(|p| p.metadata.name.clone().unwrap_or_default())
        .collect()
}

#[test]
fn claims_adopt_orphans_release_mismatches_and_skip_inactive() {
    let r = rs(3);
    let sel = selector(&r).unwrap_or_default();
    let mut foreign = pod("foreign");
    foreign.metadata.owner_references = Some(vec![OwnerReference {
        uid: "other".into(),
        controller: Some(true),
        ..Default::default()
    }]);
    let mut relabeled = owned(pod("relabeled"));
    relabeled.metadata.labels = Some(BTreeMap::from([("app".into(), "db".into())]));
    let pods = [
        owned(pod("mine")),
        pod("orphan"),
        foreign,
        relabeled,
        owned(phase_of(pod("done"), "Succeeded")),
        deleting(pod("going")),
    ];
    let refs: Vec<&Pod> = pods.iter().collect();
    let c = claim_pods(&r, &sel, &refs);
    assert_eq!(names(&c.owned), vec!["mine"]);
    assert_eq!(names(&c.adopt), vec!["orphan"]);
    assert_eq!(names(&c.release), vec!["relabeled"]);
}

#[test]
fn manage_creates_the_shortfall_capped_by_burst() {
    let r = rs(3);
    let p = pod("a");
    assert_eq!(
        manage_replicas(&r, &[&p], &[&p], ts(0)),
        Manage {
            create: 2,
            delete: vec![]
        }
    );
    let big = rs(10_000);
    assert_eq!(
        manage_replicas(&big, &[], &[], ts(0)).create,
        BURST_REPLICAS
    );
    assert_eq!(
        manage_replicas(&r, &[&p, &p, &p], &[], ts(0)),
        Manage::default()
    );
}

/// The deletion order golden table: each row is strictly preferred for deletion over the next.
#[test]
fn deletion_ranking_follows_kubernetes() {
    let now = ts(100_000);
    let pods = [
        pod("unscheduled"),
        on_node(pod("pending"), "n1"),
        on_node(phase_of(pod("unknown"), "Unknown"), "n1"),
        on_node(running(pod("running-not-ready")), "n1"),
        // Ready pods on n2: the one with a lower deletion cost goes first.
        {
            let mut p = on_node(ready_at(pod("cheap"), 99_000), "n2");
            p.metadata.annotations = Some(BTreeMap::from([(
                "controller.kubernetes.io/pod-deletion-cost".into(),
                "-10".into(),
            )]));
            p
        },
        // n3 holds two related pods: doubled-up pods go before lone ones.
        on_node(ready_at(pod("doubled"), 10), "n3"),
        // Lone pods: recently ready (≈1000 s) before long ready (≈99 990 s).
        on_node(ready_at(pod("young"), 99_000), "n4"),
        // Same ready bucket: more restarts first.
        on_node(restarts(ready_at(pod("restarting"), 10), 4), "n5"),
        on_node(created(ready_at(pod("newer"), 10), 50_000), "n6"),
        on_node(created(ready_at(pod("older"), 10), 1), "n7"),
    ];
    let mut related: Vec<&Pod> = pods.iter().collect();
    let sibling = on_node(ready_at(pod("sibling"), 10), "n3");
    related.push(&sibling);
    // Feed them in reverse so the sort has work to do.
    let input: Vec<&Pod> = pods.iter().rev().collect();
    let chosen = pods_to_delete(&input, &related, pods.len() - 1, now);
    assert_eq!(
        names(&chosen),
        vec![
            "unscheduled",
            "pending",
            "unknown",
            "running-not-ready",
            "cheap",
            "doubled",
            "young",
            "restarting",
            "newer",
        ]
    );
}

/// Kubernetes' comparator orders two pods whose ready times differ within one log2 bucket by UID
/// at once, but two with equal times by the later rules: p3 < p1 (restarts), p1 < p2 and p2 < p3
/// (UID) is a cycle, and Rust's sort panics on such a comparator (it did on every scale-down sync
/// of a 10,000-pod rolling update). One bucket is one rank for all of them here.
#[test]
fn deletion_order_is_total_within_a_bucket() {
    let now = ts(100_000);
    let p1 = on_node(ready_at(pod("p1"), 10), "n1");
    let p2 = on_node(ready_at(pod("p2"), 11), "n2");
    let p3 = on_node(restarts(ready_at(pod("p3"), 10), 3), "n3");
    let chosen = pods_to_delete(&[&p2, &p1, &p3], &[], 2, now);
    assert_eq!(names(&chosen), vec!["p3", "p1"]);

    // Many such pods: sorting must not panic, and the order must not depend on the input order.
    let many: Vec<Pod> = (0..200)
        .map(|i| {
            let p = ready_at(pod(&format!("m{i:03}")), 10 + (i % 3));
            on_node(restarts(p, (i % 5) as i32), &format!("n{}", i % 7))
        })
        .collect();
    let forward: Vec<&Pod> = many.iter().collect();
    let backward: Vec<&Pod> = many.iter().rev().collect();
    assert_eq!(
        names(&pods_to_delete(&forward, &forward, 150, now)),
        names(&pods_to_delete(&backward, &forward, 150, now))
    );
}

#[test]
fn scale_down_deletes_the_least_valuable_pods() {
    let r = rs(1);
    let a = on_node(ready_at(pod("a"), 0), "n1");
    let b = on_node(pod("b"), "n1");
    let c = pod("c");
    let m = manage_replicas(&r, &[&a, &b, &c], &[&a, &b, &c], ts(10));
    assert_eq!(m.delete, vec!["c", "b"]);
}

#[test]
fn status_counts_labeled_ready_available_and_tracks_failures() {
    let mut r = rs(3);
    if let Some(s) = r.spec.as_mut() {
        s.min_ready_seconds = Some(10);
    }
    let mut unlabeled = ready_at(pod("c"), 0);
    unlabeled.metadata.labels = None;
    let a = ready_at(pod("a"), 0);
    let b = ready_at(pod("b"), 95);
    let st = calculate_status(&r, &[&a, &b, &unlabeled], None, ts(100));
    assert_eq!(st.replicas, 3);
    assert_eq!(st.fully_labeled_replicas, Some(2));
    assert_eq!(st.ready_replicas, Some(3));
    assert_eq!(st.available_replicas, Some(2));
    assert_eq!(st.observed_generation, Some(3));
    assert_eq!(
        requeue_for_availability(&r, &st),
        Some(Duration::from_secs(10))
    );

    let st = calculate_status(&r, &[&a], Some("pods \"x\" is forbidden: quota"), ts(100));
    let cond = st.conditions.clone().unwrap_or_default();
    assert_eq!(cond.len(), 1);
    assert_eq!(cond[0].reason.as_deref(), Some("FailedCreate"));
    r.status = Some(st);
    let st = calculate_status(&r, &[&a], None, ts(100));
    assert_eq!(st.conditions, None);
}

#[test]
fn pods_are_stamped_from_the_template() {
    let r = rs(1);
    let oref = owner::controller_reference("apps/v1", "ReplicaSet", &r.metadata);
    let tpl = r
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let p = pod_from_template(&tpl, &r.metadata, oref);
    assert_eq!(p.metadata.generate_name.as_deref(), Some("web-"));
    assert_eq!(p.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(
        p.metadata
            .labels
            .and_then(|l| l.get("app").cloned())
            .as_deref(),
        Some("web")
    );
    let refs = p.metadata.owner_references.unwrap_or_default();
    assert_eq!(refs[0].uid, "rs-uid");
    assert_eq!(refs[0].controller, Some(true));
    assert_eq!(refs[0].block_owner_deletion, Some(true));
}
