//! Golden cases for the Deployment decisions, including the rolling update step table for
//! replicas 10, maxSurge 25 %, maxUnavailable 25 %.

use super::*;
use k8s_openapi::api::apps::v1::{
    DeploymentSpec, DeploymentStrategy, ReplicaSetStatus, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn tpl(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "web".into(),
                image: Some(image.into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

fn deployment(replicas: i32, image: &str) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("d-uid".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
                ..Default::default()
            },
            template: tpl(image),
            ..Default::default()
        }),
        status: None,
    }
}

fn with_strategy(mut d: Deployment, surge: IntOrString, unavailable: IntOrString) -> Deployment {
    if let Some(s) = d.spec.as_mut() {
        s.strategy = Some(DeploymentStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(surge),
                max_unavailable: Some(unavailable),
            }),
        });
    }
    d
}

fn pct(s: &str) -> IntOrString {
    IntOrString::String(s.into())
}

/// A tiny world: the apiserver applies the plan's writes; the ReplicaSet controller and kubelets
/// are modelled by `settle` (every RS gets as many pods as it wants; `available` decides how many of
/// them are available).
struct World {
    d: Deployment,
    rss: Vec<ReplicaSet>,
    clock: i64,
    next_uid: u32,
}

impl World {
    fn new(d: Deployment) -> World {
        World {
            d,
            rss: Vec::new(),
            clock: 0,
            next_uid: 0,
        }
    }

    fn sync(&mut self) -> Plan {
        self.clock += 1;
        let plan = sync(&self.d, &self.rss, &[], ts(self.clock)).unwrap_or_default();
        for step in &plan.steps {
            match step {
                Step::CreateReplicaSet(rs) => {
                    let mut rs = rs.clone();
                    self.next_uid += 1;
                    rs.metadata.uid = Some(format!("rs-{}", self.next_uid));
                    rs.metadata.creation_timestamp = Some(Time(ts(self.clock)));
                    rs.metadata.generation = Some(1);
                    self.rss.push(rs);
                }
                Step::UpdateReplicaSet(rs) => {
                    if let Some(slot) = self
                        .rss
                        .iter_mut()
                        .find(|r| r.metadata.name == rs.metadata.name)
                    {
                        *slot = rs.clone();
                    }
                }
                Step::DeleteReplicaSet(name) => self.rss.retain(|r| rs_name(r) != name),
                Step::SetRevision(rev) => {
                    self.d
                        .metadata
                        .annotations
                        .get_or_insert_with(BTreeMap::new)
                        .insert(REVISION_ANNOTATION.into(), rev.clone());
                }
                Step::UpdateStatus(st) => self.d.status = Some(st.clone()),
                Step::Event { .. } => {}
            }
        }
        plan
    }

    /// Pods follow the ReplicaSets; `available(rs, replicas) -> available count`.
    fn settle(&mut self, available: impl Fn(&ReplicaSet, i32) -> i32) {
        for rs in &mut self.rss {
            let n = rs_replicas(rs);
            let a = available(rs, n).min(n);
            rs.status = Some(ReplicaSetStatus {
                replicas: n,
                ready_replicas: Some(a),
                available_replicas: Some(a),
                observed_generation: rs.metadata.generation,
                ..Default::default()
            });
        }
    }

    fn sizes(&self) -> Vec<(String, i32)> {
        let mut v: Vec<(String, i32)> = self
            .rss
            .iter()
            .map(|r| (rs_name(r).to_string(), rs_replicas(r)))
            .collect();
        v.sort();
        v
    }

    fn new_and_old(&self) -> (i32, i32) {
        let t = template(&self.d);
        let mut new = 0;
        let mut old = 0;
        for rs in &self.rss {
            let same = rs
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|x| equal_ignore_hash(x, &t));
            if same {
                new += rs_replicas(rs)
            } else {
                old += rs_replicas(rs)
            }
        }
        (new, old)
    }

    fn set_image(&mut self, image: &str) {
        if let Some(s) = self.d.spec.as_mut() {
            s.template = tpl(image);
        }
        self.d.metadata.generation = Some(self.d.metadata.generation.unwrap_or(0) + 1);
    }

    fn condition(&self, t: &str) -> Option<(String, String)> {
        let st = self.d.status.as_ref()?;
        let c = condition(st, t)?;
        Some((c.status.clone(), c.reason.clone().unwrap_or_default()))
    }
}

fn all_available(_: &ReplicaSet, n: i32) -> i32 {
    n
}

fn converge(w: &mut World) {
    for _ in 0..50 {
        w.settle(all_available);
        let plan = w.sync();
        if plan
            .steps
            .iter()
            .all(|s| matches!(s, Step::UpdateStatus(_) | Step::Event { .. }))
            && w.d
                .status
                .as_ref()
                .is_some_and(|s| deployment_complete(&w.d, s))
        {
            w.settle(all_available);
            w.sync();
            return;
        }
    }
    panic!("did not converge: {:?}", w.sizes());
}

#[test]
fn first_rollout_creates_the_replicaset_with_all_replicas() {
    let mut w = World::new(deployment(3, "nginx:1"));
    let plan = w.sync();
    let Some(Step::CreateReplicaSet(rs)) = plan.steps.first() else {
        panic!("expected a create first: {plan:?}");
    };
    let hash = rs
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL))
        .cloned()
        .unwrap_or_default();
    assert_eq!(rs_name(rs), format!("web-{hash}"));
    assert_eq!(rs_replicas(rs), 3);
    assert_eq!(revision(rs), 1);
    let sel = rs
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default();
    assert_eq!(sel.get(POD_TEMPLATE_HASH_LABEL), Some(&hash));
    assert!(plan.steps.contains(&Step::Event {
        type_: "Normal",
        reason: "ScalingReplicaSet",
        message: format!("Scaled up replica set web-{hash} from 0 to 3"),
    }));
    assert!(plan.steps.contains(&Step::SetRevision("1".into())));
    assert_eq!(
        w.condition("Progressing"),
        Some(("True".into(), NEW_RS_REASON.into()))
    );
    assert_eq!(
        w.condition("Available"),
        Some(("False".into(), MIN_UNAVAILABLE_REASON.into()))
    );
    converge(&mut w);
    assert_eq!(
        w.condition("Progressing"),
        Some(("True".into(), NEW_RS_AVAILABLE_REASON.into()))
    );
    assert_eq!(
        w.condition("Available"),
        Some(("True".into(), MIN_AVAILABLE_REASON.into()))
    );
    let st = w.d.status.clone().unwrap_or_default();
    assert_eq!(
        (st.replicas, st.updated_replicas, st.available_replicas),
        (Some(3), Some(3), Some(3))
    );
}

/// The step table of a rolling update of 10 replicas with maxSurge 25 % (→ 3, rounded up) and
/// maxUnavailable 25 % (→ 2, rounded down), pods becoming available between passes.
#[test]
fn rolling_update_step_table_10_replicas_25_percent() {
    let mut w = World::new(with_strategy(deployment(10, "v1"), pct("25%"), pct("25%")));
    converge(&mut w);
    w.set_image("v2");
    let mut table = Vec::new();
    for _ in 0..8 {
        w.sync();
        table.push(w.new_and_old());
        w.settle(all_available);
    }
    assert_eq!(
        table,
        vec![
            (3, 8),
            (5, 8),
            (5, 3),
            (10, 3),
            (10, 0),
            (10, 0),
            (10, 0),
            (10, 0)
        ]
    );
    assert_eq!(
        w.condition("Progressing"),
        Some(("True".into(), NEW_RS_AVAILABLE_REASON.into()))
    );
    let revs: Vec<i64> = w.rss.iter().map(revision).collect();
    assert!(revs.contains(&1) && revs.contains(&2), "{revs:?}");
}

/// The same rollout when new pods take two passes to become available: never more than 13 pods,
/// never fewer than 8 available.
#[test]
fn rolling_update_respects_surge_and_unavailability_bounds() {
    let mut w = World::new(with_strategy(deployment(10, "v1"), pct("25%"), pct("25%")));
    converge(&mut w);
    w.set_image("v2");
    // Per RS name: how many of its replicas are "old enough" to be available.
    let mut ready: BTreeMap<String, i32> = w
        .rss
        .iter()
        .map(|r| (rs_name(r).to_string(), rs_replicas(r)))
        .collect();
    let mut prev: BTreeMap<String, i32> = ready.clone();
    for _ in 0..40 {
        w.sync();
        let total: i32 = w.rss.iter().map(rs_replicas).sum();
        assert!(total <= 13, "surge exceeded: {:?}", w.sizes());
        // Available = pods that existed in the previous pass too (one pass of lag).
        let now_sizes: BTreeMap<String, i32> = w
            .rss
            .iter()
            .map(|r| (rs_name(r).to_string(), rs_replicas(r)))
            .collect();
        for (name, n) in &now_sizes {
            let before = prev.get(name).copied().unwrap_or(0);
            ready.insert(name.clone(), before.min(*n));
        }
        prev = now_sizes;
        w.settle(|rs, _| ready.get(rs_name(rs)).copied().unwrap_or(0));
        let available: i32 = w.rss.iter().map(rs_available).sum();
        assert!(available >= 8, "availability dropped: {:?}", w.sizes());
    }
    assert_eq!(w.new_and_old(), (10, 0));
}

#[test]
fn rollback_reuses_the_old_replicaset_and_bumps_its_revision() {
    let mut w = World::new(deployment(2, "v1"));
    converge(&mut w);
    let first = w.rss[0].metadata.name.clone();
    w.set_image("v2");
    converge(&mut w);
    assert_eq!(w.rss.len(), 2);
    // `kubectl rollout undo`: the template goes back to v1.
    w.set_image("v1");
    converge(&mut w);
    assert_eq!(
        w.rss.len(),
        2,
        "no new ReplicaSet for a template that already has one"
    );
    let old = w
        .rss
        .iter()
        .find(|r| r.metadata.name == first)
        .cloned()
        .unwrap_or_default();
    assert_eq!(rs_replicas(&old), 2);
    assert_eq!(revision(&old), 3);
    assert_eq!(
        old.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION_HISTORY_ANNOTATION))
            .map(String::as_str),
        Some("1")
    );
    assert_eq!(
        w.d.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION_ANNOTATION))
            .map(String::as_str),
        Some("3")
    );
}

#[test]
fn recreate_scales_old_to_zero_and_waits_for_pods() {
    let mut d = deployment(3, "v1");
    if let Some(s) = d.spec.as_mut() {
        s.strategy = Some(DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        });
    }
    let mut w = World::new(d);
    converge(&mut w);
    w.set_image("v2");
    w.sync();
    assert_eq!(
        w.new_and_old(),
        (0, 0),
        "old scaled to 0 before anything new"
    );
    // The old pods are still terminating: status still reports them, so nothing new yet.
    let plan = sync(&w.d, &w.rss, &[], ts(100)).unwrap_or_default();
    assert!(
        !plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::CreateReplicaSet(_)))
    );
    converge(&mut w);
    assert_eq!(w.new_and_old(), (3, 0));
}

#[test]
fn revision_history_limit_deletes_the_oldest_scaled_down_replicasets() {
    let mut d = deployment(1, "v1");
    if let Some(s) = d.spec.as_mut() {
        s.revision_history_limit = Some(1);
    }
    let mut w = World::new(d);
    for v in ["v1", "v2", "v3", "v4"] {
        w.set_image(v);
        converge(&mut w);
    }
    // The current one plus one old.
    assert_eq!(w.rss.len(), 2, "{:?}", w.sizes());
    let mut revs: Vec<i64> = w.rss.iter().map(revision).collect();
    revs.sort();
    assert_eq!(revs, vec![3, 4]);
}

#[test]
fn proportional_scaling_during_a_rollout() {
    // Kubernetes' documented example: 10 replicas, maxSurge 3, maxUnavailable 2, a rollout to a
    // stuck image, then a scale to 15: the 5 extra are spread 3 to the old RS and 2 to the new.
    let mut w = World::new(with_strategy(
        deployment(10, "v1"),
        IntOrString::Int(3),
        IntOrString::Int(2),
    ));
    converge(&mut w);
    w.set_image("bad");
    w.sync(); // new 3, old 8 (new pods never become available)
    w.settle(|rs, n| {
        if rs_name(rs).contains("web") && revision(rs) == 2 {
            0
        } else {
            n
        }
    });
    w.sync();
    assert_eq!(w.new_and_old(), (5, 8));
    w.settle(|rs, n| if revision(rs) == 2 { 0 } else { n });
    w.sync();
    assert_eq!(
        w.new_and_old(),
        (5, 8),
        "stuck: the new pods never become available"
    );
    if let Some(s) = w.d.spec.as_mut() {
        s.replicas = Some(15);
    }
    w.settle(|rs, n| if revision(rs) == 2 { 0 } else { n });
    let plan = w.sync();
    assert!(
        plan.steps
            .iter()
            .any(|s| matches!(s, Step::UpdateReplicaSet(_)))
    );
    // 15 + 3 surge = 18 allowed, 13 now: +5 spread by size: old (8) gets 8*18/13-8 = 3, new gets 2.
    assert_eq!(w.new_and_old(), (7, 11));
}

#[test]
fn paused_deployment_does_not_roll_out_but_scales() {
    let mut w = World::new(deployment(2, "v1"));
    converge(&mut w);
    if let Some(s) = w.d.spec.as_mut() {
        s.paused = Some(true);
    }
    w.set_image("v2");
    w.sync();
    assert_eq!(w.rss.len(), 1, "paused: no new ReplicaSet");
    assert_eq!(
        w.condition("Progressing"),
        Some(("Unknown".into(), PAUSED_REASON.into()))
    );
    if let Some(s) = w.d.spec.as_mut() {
        s.replicas = Some(4);
    }
    w.settle(all_available);
    w.sync();
    assert_eq!(w.new_and_old(), (0, 4));
    if let Some(s) = w.d.spec.as_mut() {
        s.paused = Some(false);
    }
    w.settle(all_available);
    w.sync();
    assert_eq!(w.rss.len(), 2, "resumed: the new ReplicaSet is created");
    assert_eq!(w.condition("Progressing").map(|c| c.0), Some("True".into()));
    converge(&mut w);
    assert_eq!(w.new_and_old(), (4, 0));
}

#[test]
fn progress_deadline_exceeded_when_pods_never_become_ready() {
    let mut d = deployment(2, "v1");
    if let Some(s) = d.spec.as_mut() {
        s.progress_deadline_seconds = Some(10);
    }
    let mut w = World::new(d);
    w.sync();
    w.settle(|_, _| 0);
    let plan = w.sync();
    assert!(
        plan.requeue_after
            .is_some_and(|d| d <= Duration::from_secs(11)),
        "{plan:?}"
    );
    assert_eq!(w.condition("Progressing").map(|c| c.0), Some("True".into()));
    w.clock += 20;
    w.settle(|_, _| 0);
    w.sync();
    assert_eq!(
        w.condition("Progressing"),
        Some(("False".into(), TIMED_OUT_REASON.into()))
    );
    let msg =
        w.d.status
            .as_ref()
            .and_then(|s| condition(s, "Progressing"))
            .and_then(|c| c.message.clone())
            .unwrap_or_default();
    assert!(
        msg.starts_with("ReplicaSet \"web-") && msg.ends_with("\" has timed out progressing."),
        "{msg}"
    );
}

#[test]
fn selecting_everything_is_refused_with_a_warning() {
    let mut d = deployment(1, "v1");
    if let Some(s) = d.spec.as_mut() {
        s.selector = LabelSelector::default();
    }
    let plan = sync(&d, &[], &[], ts(0)).unwrap_or_default();
    assert!(matches!(
        plan.steps.first(),
        Some(Step::Event {
            reason: "SelectingAll",
            ..
        })
    ));
    assert!(
        !plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::CreateReplicaSet(_)))
    );
}

#[test]
fn invalid_percentages_are_reported() {
    let d = with_strategy(deployment(1, "v1"), pct("abc"), pct("25%"));
    assert!(sync(&d, &[], &[], ts(0)).is_err());
}

/// The old ReplicaSet's status still reports its size before this controller scaled it down (its
/// own controller has not caught up) while the new one reports fresh availability: the scale-down
/// must not count the old pods twice and drop below replicas - maxUnavailable.
#[test]
fn a_stale_old_replicaset_status_does_not_scale_down_past_max_unavailable() {
    let mut w = World::new(with_strategy(deployment(10, "v1"), pct("25%"), pct("25%")));
    converge(&mut w);
    w.set_image("v2");
    w.sync();
    assert_eq!(w.new_and_old(), (3, 8));
    // Only the new ReplicaSet's controller has run: its 3 pods are available; the old one's
    // status still says 10 available although its spec is 8.
    let t = template(&w.d);
    for rs in &mut w.rss {
        let is_new = rs
            .spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .is_some_and(|x| equal_ignore_hash(x, &t));
        if is_new {
            rs.status = Some(ReplicaSetStatus {
                replicas: 3,
                ready_replicas: Some(3),
                available_replicas: Some(3),
                observed_generation: rs.metadata.generation,
                ..Default::default()
            });
        }
    }
    // The first pass scales the new ReplicaSet up to the surge (5) and stops there; the second
    // scales the old one down, still seeing the stale status.
    w.sync();
    assert_eq!(w.new_and_old(), (5, 8));
    w.sync();
    let (new, old) = w.new_and_old();
    assert!(
        new.min(3) + old >= 8,
        "scaled the old ReplicaSet to {old} with {new} new (3 available): fewer than 8 available"
    );
}
