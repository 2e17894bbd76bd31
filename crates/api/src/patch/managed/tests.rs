//! Golden tests of field ownership and server-side apply.

use super::*;
use crate::patch::schema::root;

fn w<'a>(manager: &'a str) -> Writer<'a> {
    Writer {
        manager,
        api_version: "apps/v1",
        time: "2025-01-01T00:00:00Z",
        subresource: "",
    }
}

fn deploy(replicas: i64, image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d",
        "labels": {"app": "web"}},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [
            {"name": "web", "image": image}]}}}})
}

#[test]
fn fields_v1_round_trips() {
    let set = field_set(&deploy(1, "nginx"), root("apps", "Deployment"));
    let encoded = encode(&set);
    assert_eq!(
        encoded,
        json!({"f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}})
    );
    assert_eq!(decode(&encoded), set);
}

#[test]
fn apply_conflicts_force_and_removal() {
    let ty = root("apps", "Deployment");
    let created = apply(None, &deploy(1, "nginx"), ty, &w("alice"), false).expect("create");
    assert_eq!(created["spec"]["replicas"], 1);
    // Bob scales with an ordinary update: he now owns .spec.replicas.
    let mut scaled = created.clone();
    scaled["spec"]["replicas"] = json!(3);
    track_update(Some(&created), &mut scaled, ty, &w("bob"));
    // Alice re-applies replicas 1: conflict with bob.
    let err =
        apply(Some(&scaled), &deploy(1, "nginx"), ty, &w("alice"), false).expect_err("conflict");
    assert_eq!(
        conflict_message(&err),
        "Apply failed with 1 conflict: conflict with \"bob\" using apps/v1: .spec.replicas"
    );
    // The same value is shared ownership, not a conflict.
    assert!(apply(Some(&scaled), &deploy(3, "nginx"), ty, &w("alice"), false).is_ok());
    // Forced: alice takes replicas back.
    let forced = apply(Some(&scaled), &deploy(1, "nginx:2"), ty, &w("alice"), true).expect("force");
    assert_eq!(forced["spec"]["replicas"], 1);
    let bob = entries(&forced).into_iter().find(|e| e.manager == "bob");
    assert!(bob.is_none(), "bob owned nothing else");
    // Alice stops applying the label: it is removed.
    let mut smaller = deploy(1, "nginx:2");
    smaller["metadata"]
        .as_object_mut()
        .map(|m| m.remove("labels"));
    let next = apply(Some(&forced), &smaller, ty, &w("alice"), false).expect("apply");
    assert!(
        next["metadata"]
            .get("labels")
            .is_none_or(|l| l.get("app").is_none())
    );
    assert_eq!(
        next["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:2"
    );
}

#[test]
fn render_paths() {
    let p: Path = vec![
        "f:spec".into(),
        "f:containers".into(),
        "k:{\"name\":\"web\"}".into(),
        "f:image".into(),
    ];
    assert_eq!(render(&p), ".spec.containers[name=\"web\"].image");
}
