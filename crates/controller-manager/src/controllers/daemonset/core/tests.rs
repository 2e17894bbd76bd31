//! Golden cases for the DaemonSet decisions.

use super::*;
use k8s_openapi::api::apps::v1::{DaemonSetSpec, DaemonSetUpdateStrategy, RollingUpdateDaemonSet};
use k8s_openapi::api::core::v1::{NodeSpec, PodCondition, PodSpec, PodStatus, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn tpl(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(BTreeMap::from([("app".to_string(), "agent".to_string())])),
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

fn ds() -> DaemonSet {
    DaemonSet {
        metadata: ObjectMeta {
            name: Some("agent".into()),
            namespace: Some("kube-system".into()),
            uid: Some("ds-uid".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([("app".to_string(), "agent".to_string())])),
                ..Default::default()
            },
            template: tpl("v1"),
            ..Default::default()
        }),
        status: None,
    }
}

fn node(name: &str, taints: Vec<Taint>) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            taints: Some(taints),
            ..Default::default()
        }),
        status: None,
    }
}

struct World {
    ds: DaemonSet,
    nodes: Vec<Node>,
    pods: Vec<Pod>,
    revisions: Vec<ControllerRevision>,
    n: u32,
    log: Vec<String>,
}

impl World {
    fn new(ds: DaemonSet, nodes: Vec<Node>) -> World {
        World {
            ds,
            nodes,
            pods: vec![],
            revisions: vec![],
            n: 0,
            log: vec![],
        }
    }

    fn sync(&mut self) -> Plan {
        let nodes: Vec<&Node> = self.nodes.iter().collect();
        let pods: Vec<&Pod> = self.pods.iter().collect();
        let revs: Vec<&ControllerRevision> = self.revisions.iter().collect();
        let plan = sync(&self.ds, &nodes, &pods, &revs, ts(100));
        for s in &plan.steps {
            match s {
                Step::Revision(r) => crate::util::revision::apply_in_memory(&mut self.revisions, r),
                Step::CreatePod { node, pod } => {
                    let mut p = (**pod).clone();
                    self.n += 1;
                    p.metadata.name = Some(format!("agent-{}", self.n));
                    p.metadata.creation_timestamp = Some(Time(ts(i64::from(self.n))));
                    self.log.push(format!("+{node}"));
                    self.pods.push(p);
                }
                Step::DeletePod(n) => {
                    let node = self
                        .pods
                        .iter()
                        .find(|p| p.metadata.name.as_ref() == Some(n))
                        .and_then(target_node)
                        .unwrap_or_default();
                    self.log.push(format!("-{node}"));
                    self.pods.retain(|p| p.metadata.name.as_ref() != Some(n));
                }
                Step::UpdateStatus(st) => self.ds.status = Some(st.clone()),
                Step::Event { .. } => {}
            }
        }
        plan
    }

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

    fn nodes_with_pods(&self) -> Vec<String> {
        let mut v: Vec<String> = self.pods.iter().filter_map(target_node).collect();
        v.sort();
        v
    }
}

#[test]
fn one_pod_per_eligible_node_following_nodes() {
    let nodes = vec![
        node("n1", vec![]),
        node(
            "n2",
            vec![Taint {
                key: "dedicated".into(),
                value: Some("db".into()),
                effect: "NoSchedule".into(),
                time_added: None,
            }],
        ),
        node(
            "n3",
            vec![Taint {
                key: "node.kubernetes.io/unschedulable".into(),
                value: None,
                effect: "NoSchedule".into(),
                time_added: None,
            }],
        ),
    ];
    let mut w = World::new(ds(), nodes);
    w.sync();
    assert_eq!(
        w.nodes_with_pods(),
        vec!["n1", "n3"],
        "tainted n2 skipped; unschedulable tolerated"
    );
    let p = &w.pods[0];
    assert_eq!(
        p.spec.as_ref().and_then(|s| s.node_name.clone()),
        None,
        "the scheduler binds it"
    );
    let st = w.ds.status.clone().unwrap_or_default();
    assert_eq!(
        (st.desired_number_scheduled, st.current_number_scheduled),
        (2, 0)
    );
    w.sync();
    let st = w.ds.status.clone().unwrap_or_default();
    assert_eq!(
        (
            st.desired_number_scheduled,
            st.current_number_scheduled,
            st.number_ready
        ),
        (2, 2, 0)
    );
    w.ready_all();
    w.sync();
    assert_eq!(
        w.ds.status.clone().unwrap_or_default().number_available,
        Some(2)
    );
    // A node joins, a node leaves.
    w.nodes.push(node("n4", vec![]));
    w.nodes.retain(|n| n.metadata.name.as_deref() != Some("n1"));
    w.sync();
    assert_eq!(w.nodes_with_pods(), vec!["n3", "n4"]);
    // A NoExecute taint evicts the daemon pod.
    if let Some(s) = w.nodes[1].spec.as_mut() {
        s.taints = Some(vec![Taint {
            key: "k".into(),
            value: None,
            effect: "NoExecute".into(),
            time_added: None,
        }]);
    }
    w.sync();
    assert_eq!(w.nodes_with_pods(), vec!["n4"]);
}

#[test]
fn rolling_update_replaces_at_most_max_unavailable_at_a_time() {
    let nodes: Vec<Node> = (1..=4).map(|i| node(&format!("n{i}"), vec![])).collect();
    let mut w = World::new(ds(), nodes);
    w.sync();
    w.ready_all();
    w.sync();
    if let Some(s) = w.ds.spec.as_mut() {
        s.template = tpl("v2");
        s.update_strategy = Some(DaemonSetUpdateStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateDaemonSet {
                max_unavailable: Some(IntOrString::Int(2)),
                max_surge: None,
            }),
        });
    }
    w.log.clear();
    w.sync();
    assert_eq!(w.log, vec!["-n1", "-n2"], "two old pods at a time");
    w.sync();
    assert_eq!(w.log, vec!["-n1", "-n2", "+n1", "+n2"]);
    w.sync();
    assert_eq!(w.log.len(), 4, "waits for the new pods to be available");
    w.ready_all();
    for _ in 0..4 {
        w.sync();
        w.ready_all();
    }
    assert_eq!(w.log.len(), 8);
    let st = w.ds.status.clone().unwrap_or_default();
    assert_eq!(st.updated_number_scheduled, Some(4));
    assert_eq!(w.revisions.len(), 2);
}

#[test]
fn rolling_update_with_surge_starts_new_before_stopping_old() {
    let nodes: Vec<Node> = (1..=2).map(|i| node(&format!("n{i}"), vec![])).collect();
    let mut w = World::new(ds(), nodes);
    w.sync();
    w.ready_all();
    if let Some(s) = w.ds.spec.as_mut() {
        s.template = tpl("v2");
        s.update_strategy = Some(DaemonSetUpdateStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateDaemonSet {
                max_unavailable: Some(IntOrString::Int(0)),
                max_surge: Some(IntOrString::Int(1)),
            }),
        });
    }
    w.log.clear();
    w.sync();
    assert_eq!(w.log, vec!["+n1"]);
    w.sync();
    assert_eq!(
        w.log,
        vec!["+n1"],
        "the old pod stays until the new one is available"
    );
    w.ready_all();
    w.sync();
    assert_eq!(w.log, vec!["+n1", "-n1", "+n2"]);
}

#[test]
fn on_delete_leaves_old_pods() {
    let mut d = ds();
    if let Some(s) = d.spec.as_mut() {
        s.update_strategy = Some(DaemonSetUpdateStrategy {
            type_: Some("OnDelete".into()),
            rolling_update: None,
        });
    }
    let mut w = World::new(d, vec![node("n1", vec![])]);
    w.sync();
    w.ready_all();
    if let Some(s) = w.ds.spec.as_mut() {
        s.template = tpl("v2");
    }
    w.log.clear();
    w.sync();
    assert!(w.log.is_empty());
}

#[test]
fn duplicate_and_failed_pods_are_removed() {
    let mut w = World::new(ds(), vec![node("n1", vec![])]);
    w.sync();
    let mut dup = w.pods[0].clone();
    dup.metadata.name = Some("agent-dup".into());
    dup.metadata.creation_timestamp = Some(Time(ts(50)));
    w.pods.push(dup);
    w.ready_all();
    w.log.clear();
    w.sync();
    assert_eq!(w.pods.len(), 1);
    assert_eq!(
        w.pods[0].metadata.name.as_deref(),
        Some("agent-1"),
        "the oldest stays"
    );
    if let Some(st) = w.pods[0].status.as_mut() {
        st.phase = Some("Failed".into());
    }
    w.sync();
    w.sync();
    assert_eq!(w.pods.len(), 1);
    assert_ne!(w.pods[0].metadata.name.as_deref(), Some("agent-1"));
}
