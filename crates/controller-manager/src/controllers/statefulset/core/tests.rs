//! Golden cases for the StatefulSet decisions.

use super::*;
use k8s_openapi::api::apps::v1::{
    RollingUpdateStatefulSetStrategy, StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};

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
            containers: vec![k8s_openapi::api::core::v1::Container {
                name: "c".into(),
                image: Some(image.into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

fn set(replicas: i32) -> StatefulSet {
    StatefulSet {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("sts-uid".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some("nginx".into()),
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
                ..Default::default()
            },
            template: tpl("v1"),
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some("www".into()),
                    ..Default::default()
                },
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

struct World {
    set: StatefulSet,
    pods: Vec<Pod>,
    claims: Vec<String>,
    revisions: Vec<ControllerRevision>,
    /// Every pod creation and deletion, in order.
    log: Vec<String>,
}

impl World {
    fn new(set: StatefulSet) -> World {
        World {
            set,
            pods: vec![],
            claims: vec![],
            revisions: vec![],
            log: vec![],
        }
    }

    fn sync(&mut self) -> Plan {
        let pods: Vec<&Pod> = self.pods.iter().collect();
        let revs: Vec<&ControllerRevision> = self.revisions.iter().collect();
        let plan = sync(&self.set, &pods, &self.claims, &revs, ts(100));
        for s in &plan.steps {
            match s {
                Step::Revision(r) => crate::util::revision::apply_in_memory(&mut self.revisions, r),
                Step::CreateClaim(c) => self
                    .claims
                    .push(c.metadata.name.clone().unwrap_or_default()),
                Step::CreatePod(p) => {
                    self.log
                        .push(format!("+{}", p.metadata.name.clone().unwrap_or_default()));
                    self.pods.push((**p).clone());
                }
                Step::DeletePod(n) => {
                    self.log.push(format!("-{n}"));
                    self.pods.retain(|p| p.metadata.name.as_ref() != Some(n));
                }
                Step::UpdateStatus(st) => self.set.status = Some(st.clone()),
                Step::Event { .. } => {}
            }
        }
        plan
    }

    /// The kubelet: every pod becomes Running and Ready.
    fn ready_all(&mut self) {
        for p in &mut self.pods {
            p.status = Some(PodStatus {
                phase: Some("Running".into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(ts(0))),
                    ..Default::default()
                }]),
                ..Default::default()
            });
        }
    }

    fn converge(&mut self) {
        for _ in 0..30 {
            self.sync();
            self.ready_all();
        }
    }

    fn revision_of(&self, name: &str) -> Option<String> {
        self.pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
            .and_then(|p| revision_of(p).map(String::from))
    }
}

#[test]
fn scales_up_in_order_one_ready_pod_at_a_time() {
    let mut w = World::new(set(3));
    w.sync();
    assert_eq!(w.log, vec!["+web-0"]);
    w.sync();
    assert_eq!(
        w.log,
        vec!["+web-0"],
        "waits for web-0 to be Running and Ready"
    );
    w.ready_all();
    w.sync();
    w.ready_all();
    w.sync();
    assert_eq!(w.log, vec!["+web-0", "+web-1", "+web-2"]);
    assert_eq!(w.claims, vec!["www-web-0", "www-web-1", "www-web-2"]);
    let p = &w.pods[1];
    let spec = p.spec.clone().unwrap_or_default();
    assert_eq!(spec.hostname.as_deref(), Some("web-1"));
    assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
    let vol = spec.volumes.unwrap_or_default();
    assert_eq!(
        vol[0]
            .persistent_volume_claim
            .as_ref()
            .map(|c| c.claim_name.as_str()),
        Some("www-web-1")
    );
    let labels = p.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get(POD_NAME_LABEL).map(String::as_str),
        Some("web-1")
    );
    assert_eq!(labels.get(POD_INDEX_LABEL).map(String::as_str), Some("1"));
}

#[test]
fn scales_down_in_reverse_order_and_keeps_claims() {
    let mut w = World::new(set(3));
    w.converge();
    if let Some(s) = w.set.spec.as_mut() {
        s.replicas = Some(0);
    }
    w.log.clear();
    w.converge();
    assert_eq!(w.log, vec!["-web-2", "-web-1", "-web-0"]);
    assert_eq!(w.claims.len(), 3, "claims outlive their pods");
    // Scaling up again reuses the claims (no new ones).
    if let Some(s) = w.set.spec.as_mut() {
        s.replicas = Some(1);
    }
    let plan = w.sync();
    assert!(!plan.steps.iter().any(|s| matches!(s, Step::CreateClaim(_))));
}

#[test]
fn parallel_creates_all_at_once() {
    let mut s = set(3);
    if let Some(sp) = s.spec.as_mut() {
        sp.pod_management_policy = Some("Parallel".into());
    }
    let mut w = World::new(s);
    w.sync();
    assert_eq!(w.log, vec!["+web-0", "+web-1", "+web-2"]);
}

#[test]
fn rolling_update_goes_in_reverse_ordinal_and_honours_partition() {
    let mut s = set(3);
    if let Some(sp) = s.spec.as_mut() {
        sp.update_strategy = Some(StatefulSetUpdateStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateStatefulSetStrategy {
                partition: Some(1),
                max_unavailable: None,
            }),
        });
    }
    let mut w = World::new(s);
    w.converge();
    let v1 = w.revision_of("web-0");
    if let Some(sp) = w.set.spec.as_mut() {
        sp.template = tpl("v2");
    }
    w.log.clear();
    w.converge();
    assert_eq!(w.log, vec!["-web-2", "+web-2", "-web-1", "+web-1"]);
    assert_eq!(w.revision_of("web-0"), v1, "below the partition: untouched");
    assert_ne!(w.revision_of("web-2"), v1);
    let st = w.set.status.clone().unwrap_or_default();
    assert_eq!(st.updated_replicas, Some(2));
    assert_eq!(st.current_revision, v1);
    // Lowering the partition finishes the rollout.
    if let Some(sp) = w.set.spec.as_mut() {
        sp.update_strategy = Some(StatefulSetUpdateStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: None,
        });
    }
    w.converge();
    let st = w.set.status.clone().unwrap_or_default();
    assert_eq!(st.updated_replicas, Some(3));
    assert_eq!(st.current_revision, st.update_revision);
    assert_eq!(w.revisions.len(), 2);
}

#[test]
fn on_delete_waits_for_the_user() {
    let mut s = set(2);
    if let Some(sp) = s.spec.as_mut() {
        sp.update_strategy = Some(StatefulSetUpdateStrategy {
            type_: Some("OnDelete".into()),
            rolling_update: None,
        });
    }
    let mut w = World::new(s);
    w.converge();
    let v1 = w.revision_of("web-1");
    if let Some(sp) = w.set.spec.as_mut() {
        sp.template = tpl("v2");
    }
    w.log.clear();
    w.converge();
    assert!(w.log.is_empty());
    w.pods
        .retain(|p| p.metadata.name.as_deref() != Some("web-1"));
    w.converge();
    assert_ne!(w.revision_of("web-1"), v1);
    assert_eq!(w.revision_of("web-0"), v1);
}

#[test]
fn failed_pods_are_recreated() {
    let mut w = World::new(set(1));
    w.converge();
    if let Some(st) = w.pods[0].status.as_mut() {
        st.phase = Some("Failed".into());
    }
    w.log.clear();
    w.sync();
    w.sync();
    assert_eq!(w.log, vec!["-web-0", "+web-0"]);
}

#[test]
fn ordinals_parse_strictly() {
    let s = set(1);
    let mut p = Pod::default();
    for (name, want) in [
        ("web-0", Some(0)),
        ("web-12", Some(12)),
        ("web-01", None),
        ("web-x", None),
        ("webby-1", None),
    ] {
        p.metadata.name = Some(name.into());
        assert_eq!(ordinal(&s, &p), want, "{name}");
    }
}
