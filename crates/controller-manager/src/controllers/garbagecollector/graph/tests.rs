//! Golden cases for the garbage collector's graph and decisions.

use super::*;

fn info(kind: &str) -> &'static ResourceInfo {
    niwa_api::Registry.resolve(kind).expect("kind in registry")
}

fn owner(uid: &str, block: bool) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: format!("n-{uid}"),
        uid: uid.into(),
        controller: Some(true),
        block_owner_deletion: Some(block),
    }
}

fn node(kind: &str, owners: Vec<OwnerReference>, deleting: bool, fins: &[&str]) -> Node {
    Node {
        info: info(kind),
        namespace: Some("d".into()),
        name: "x".into(),
        owners,
        deleting,
        finalizers: fins.iter().map(|s| s.to_string()).collect(),
    }
}

fn in_graph(g: &Graph) -> impl Fn(&OwnerReference) -> OwnerState + '_ {
    move |o| match g.get(&o.uid) {
        Some(n) if n.waiting_for_dependents() => OwnerState::Waiting,
        Some(_) => OwnerState::Solid,
        None => OwnerState::Absent,
    }
}

#[test]
fn dangling_dependents_are_deleted_in_the_background() {
    let mut g = Graph::default();
    assert_eq!(
        g.upsert("rs".into(), node("replicasets", vec![], false, &[])),
        Vec::<String>::new()
    );
    assert_eq!(
        g.upsert(
            "p1".into(),
            node("pods", vec![owner("rs", true)], false, &[])
        ),
        vec!["p1"]
    );
    assert_eq!(decide(&g, "p1", in_graph(&g)), Decision::Nothing);
    // The owner goes: its dependent is looked at and collected.
    assert_eq!(g.remove("rs"), vec!["p1"]);
    assert_eq!(
        decide(&g, "p1", in_graph(&g)),
        Decision::Delete("Background")
    );
    // An unknown owner kind is left alone.
    assert_eq!(decide(&g, "p1", |_| OwnerState::Unknown), Decision::Nothing);
}

#[test]
fn live_owners_keep_a_dependent_and_dangling_references_go() {
    let mut g = Graph::default();
    g.upsert("a".into(), node("replicasets", vec![], false, &[]));
    g.upsert(
        "p".into(),
        node(
            "pods",
            vec![owner("a", true), owner("gone", false)],
            false,
            &[],
        ),
    );
    assert_eq!(
        decide(&g, "p", in_graph(&g)),
        Decision::FixReferences {
            remove: vec!["gone".into()],
            unblock: vec![]
        }
    );
}

#[test]
fn orphan_finalizer() {
    let mut g = Graph::default();
    g.upsert("rs".into(), node("replicasets", vec![], false, &[]));
    g.upsert(
        "p1".into(),
        node("pods", vec![owner("rs", true)], false, &[]),
    );
    g.upsert(
        "p2".into(),
        node("pods", vec![owner("rs", true)], false, &[]),
    );
    let look = g.upsert("rs".into(), node("replicasets", vec![], true, &[ORPHAN]));
    assert_eq!(look, vec!["rs"]);
    assert_eq!(
        decide(&g, "rs", in_graph(&g)),
        Decision::Orphan(vec!["p1".into(), "p2".into()])
    );
}

#[test]
fn foreground_deletes_dependents_first() {
    let mut g = Graph::default();
    g.upsert("dep".into(), node("deployments", vec![], false, &[]));
    g.upsert(
        "rs".into(),
        node("replicasets", vec![owner("dep", true)], false, &[]),
    );
    g.upsert(
        "p1".into(),
        node("pods", vec![owner("rs", true)], false, &[]),
    );
    // The Deployment is deleted in the foreground: the ReplicaSet is looked at.
    let look = g.upsert(
        "dep".into(),
        node("deployments", vec![], true, &[FOREGROUND]),
    );
    assert_eq!(look, vec!["dep", "rs"]);
    assert_eq!(
        decide(&g, "dep", in_graph(&g)),
        Decision::Foreground {
            dependents: vec!["rs".into()],
            finalize: false
        }
    );
    // The ReplicaSet has dependents of its own: it goes in the foreground too.
    assert_eq!(
        decide(&g, "rs", in_graph(&g)),
        Decision::Delete("Foreground")
    );
    g.upsert(
        "rs".into(),
        node("replicasets", vec![owner("dep", true)], true, &[FOREGROUND]),
    );
    // Its pod has no dependents: background.
    assert_eq!(
        decide(&g, "p1", in_graph(&g)),
        Decision::Delete("Background")
    );
    // The pod goes → the ReplicaSet may finalize → then the Deployment.
    assert_eq!(g.remove("p1"), vec!["rs"]);
    assert_eq!(
        decide(&g, "rs", in_graph(&g)),
        Decision::Foreground {
            dependents: vec![],
            finalize: true
        }
    );
    assert_eq!(g.remove("rs"), vec!["dep"]);
    assert_eq!(
        decide(&g, "dep", in_graph(&g)),
        Decision::Foreground {
            dependents: vec![],
            finalize: true
        }
    );
}

#[test]
fn a_solid_owner_unblocks_a_waiting_one() {
    let mut g = Graph::default();
    g.upsert("a".into(), node("replicasets", vec![], false, &[]));
    g.upsert("b".into(), node("replicasets", vec![], true, &[FOREGROUND]));
    g.upsert(
        "p".into(),
        node(
            "pods",
            vec![owner("a", false), owner("b", true)],
            false,
            &[],
        ),
    );
    assert_eq!(
        decide(&g, "p", in_graph(&g)),
        Decision::FixReferences {
            remove: vec![],
            unblock: vec!["b".into()]
        }
    );
}

#[test]
fn relist_drops_missing_nodes() {
    let mut g = Graph::default();
    g.upsert("rs".into(), node("replicasets", vec![], false, &[]));
    g.upsert(
        "p".into(),
        node("pods", vec![owner("rs", true)], false, &[]),
    );
    let look = g.retain_listed(info("replicasets"), &BTreeSet::new());
    assert_eq!(look, vec!["p"]);
    assert!(g.get("rs").is_none() && g.get("p").is_some());
}
