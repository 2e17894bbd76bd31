//! Golden cases for the Service ⇄ pod index.

use super::*;

fn key(ns: &str, name: &str) -> ObjectRef {
    ObjectRef::new(name).within(ns)
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn names(keys: &[ObjectRef]) -> Vec<&str> {
    keys.iter().map(|k| k.name.as_str()).collect()
}

#[test]
fn pods_and_services_meet_in_either_order() {
    let mut ix = PodIndex::default();
    // A pod before its Service, another after.
    assert!(
        ix.apply_pod(&key("d", "a"), &labels(&[("app", "web")]))
            .is_empty()
    );
    ix.apply_service(&key("d", "web"), Some(&labels(&[("app", "web")])));
    let affected = ix.apply_pod(&key("d", "b"), &labels(&[("app", "web"), ("x", "1")]));
    assert_eq!(names(&affected), ["web"]);
    assert_eq!(names(&ix.pods_of(&key("d", "web"))), ["a", "b"]);
    assert_eq!(names(&ix.services_of(&key("d", "b"))), ["web"]);
}

#[test]
fn every_selector_pair_must_match_and_namespaces_are_apart() {
    let mut ix = PodIndex::default();
    ix.apply_service(
        &key("d", "web"),
        Some(&labels(&[("app", "web"), ("tier", "front")])),
    );
    ix.apply_pod(&key("d", "only-app"), &labels(&[("app", "web")]));
    ix.apply_pod(
        &key("d", "both"),
        &labels(&[("app", "web"), ("tier", "front")]),
    );
    ix.apply_pod(
        &key("other", "both"),
        &labels(&[("app", "web"), ("tier", "front")]),
    );
    assert_eq!(names(&ix.pods_of(&key("d", "web"))), ["both"]);
    assert_eq!(
        ix.pods_of(&key("d", "web"))[0].namespace.as_deref(),
        Some("d")
    );
}

#[test]
fn a_status_change_syncs_the_pods_services_and_a_relabel_also_the_old_ones() {
    let mut ix = PodIndex::default();
    ix.apply_service(&key("d", "web"), Some(&labels(&[("app", "web")])));
    ix.apply_service(&key("d", "all"), Some(&labels(&[("team", "t")])));
    ix.apply_service(&key("d", "api"), Some(&labels(&[("app", "api")])));
    let p = key("d", "p");
    ix.apply_pod(&p, &labels(&[("app", "web"), ("team", "t")]));
    // Same labels (a readiness flip): the Services that select it.
    assert_eq!(
        names(&ix.apply_pod(&p, &labels(&[("app", "web"), ("team", "t")]))),
        ["all", "web"]
    );
    // Relabelled: the Service it left and the one it joined.
    assert_eq!(
        names(&ix.apply_pod(&p, &labels(&[("app", "api"), ("team", "t")]))),
        ["all", "api", "web"]
    );
    assert!(ix.pods_of(&key("d", "web")).is_empty());
    assert_eq!(names(&ix.pods_of(&key("d", "api"))), ["p"]);
    // Deleted: the Services it was in.
    assert_eq!(names(&ix.delete_pod(&p)), ["all", "api"]);
    assert!(ix.pods_of(&key("d", "all")).is_empty());
    assert!(ix.pods().is_empty());
}

#[test]
fn selector_changes_and_selectorless_services() {
    let mut ix = PodIndex::default();
    ix.apply_pod(&key("d", "a"), &labels(&[("app", "a")]));
    ix.apply_pod(&key("d", "b"), &labels(&[("app", "b")]));
    let s = key("d", "s");
    ix.apply_service(&s, Some(&labels(&[("app", "a")])));
    assert_eq!(names(&ix.pods_of(&s)), ["a"]);
    ix.apply_service(&s, Some(&labels(&[("app", "b")])));
    assert_eq!(names(&ix.pods_of(&s)), ["b"]);
    assert!(ix.services_of(&key("d", "a")).is_empty());
    // No selector, or an empty one: nothing selected, not a Service of the index.
    ix.apply_service(&s, Some(&Labels::new()));
    assert!(ix.pods_of(&s).is_empty());
    assert!(ix.services().is_empty());
    ix.apply_service(&s, Some(&labels(&[("app", "a")])));
    ix.apply_service(&s, None);
    assert!(ix.services_of(&key("d", "a")).is_empty());
    ix.apply_service(&s, Some(&labels(&[("app", "a")])));
    ix.delete_service(&s);
    assert!(ix.pods_of(&s).is_empty());
    assert!(ix.services_of(&key("d", "a")).is_empty());
}
