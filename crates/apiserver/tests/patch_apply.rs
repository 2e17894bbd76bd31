//! Strategic merge patch with Kubernetes' merge keys and directives, and server-side apply with
//! field managers, over gRPC against a real store.
mod common;

use common::*;
use niwa_api::Reason;
use serde_json::json;

const SMP: &str = "application/strategic-merge-patch+json";
const APPLY: &str = "application/apply-patch+yaml";

fn deployment(image: &str, replicas: i64) -> serde_json::Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                {"name": "web", "image": image, "ports": [{"containerPort": 80}]},
                {"name": "log", "image": "busybox"}]}}}})
}

#[tokio::test]
async fn strategic_merge_patch_merges_containers_by_name() {
    let cluster = Cluster::start().await;
    let mut c = cluster.client();
    create(
        &mut c,
        rref("deploy", "default", ""),
        deployment("nginx:1", 1),
    )
    .await
    .expect("create");
    let patched = patch(
        &mut c,
        rref("deploy", "default", "web"),
        SMP,
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "nginx:2", "env": [{"name": "MODE", "value": "prod"}]},
            {"name": "log", "$patch": "delete"}]}}}}),
    )
    .await
    .expect("strategic merge patch");
    let containers = &patched["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers.as_array().map(Vec::len), Some(1));
    assert_eq!(containers[0]["image"], "nginx:2");
    assert_eq!(containers[0]["ports"][0]["containerPort"], 80, "kept");
    assert_eq!(containers[0]["env"][0]["name"], "MODE");
    assert_eq!(patched["metadata"]["generation"], 2);
    // A merge key missing from an element is a clear 400.
    let err = patch(
        &mut c,
        rref("deploy", "default", "web"),
        SMP,
        json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}),
    )
    .await
    .expect_err("no merge key");
    assert_eq!(err.reason, Reason::BadRequest);
    assert!(
        err.message
            .contains("does not contain declared merge key: name"),
        "{}",
        err.message
    );
    // A patch that makes the object invalid is rejected naming the field.
    let err = patch(
        &mut c,
        rref("deploy", "default", "web"),
        SMP,
        json!({"spec": {"replicas": -2}}),
    )
    .await
    .expect_err("invalid");
    assert_eq!(err.reason, Reason::Invalid);
    assert_eq!(err.causes[0].field, "spec.replicas");
}

#[tokio::test]
async fn server_side_apply_creates_tracks_owners_and_conflicts() {
    let cluster = Cluster::start().await;
    let mut c = cluster.client();
    let r = rref("deploy", "default", "web");
    // Without a field manager: Kubernetes' error.
    let err = patch(&mut c, r.clone(), APPLY, deployment("nginx:1", 2))
        .await
        .expect_err("manager required");
    assert_eq!(err.reason, Reason::Invalid);
    assert!(
        err.message.contains("fieldManager: Required value"),
        "{}",
        err.message
    );

    // Apply creates.
    let created = patch_as(
        &mut c,
        r.clone(),
        APPLY,
        deployment("nginx:1", 2),
        "alice",
        false,
    )
    .await
    .expect("apply creates");
    assert_eq!(created["spec"]["replicas"], 2);
    let mf = &created["metadata"]["managedFields"][0];
    assert_eq!(
        (mf["manager"].as_str(), mf["operation"].as_str()),
        (Some("alice"), Some("Apply"))
    );
    assert_eq!(mf["fieldsV1"]["f:spec"]["f:replicas"], json!({}));

    // Bob changes replicas with an ordinary patch under his name: he owns it now.
    patch_as(
        &mut c,
        r.clone(),
        "application/merge-patch+json",
        json!({"spec": {"replicas": 5}}),
        "bob",
        false,
    )
    .await
    .expect("bob scales");
    let err = patch_as(
        &mut c,
        r.clone(),
        APPLY,
        deployment("nginx:2", 2),
        "alice",
        false,
    )
    .await
    .expect_err("conflict");
    assert_eq!(err.reason, Reason::Conflict);
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"bob\" using apps/v1: .spec.replicas"
    );
    assert_eq!(err.causes[0].reason, "FieldManagerConflict");
    assert_eq!(err.causes[0].field, ".spec.replicas");

    // Forced, alice wins and bob loses the field; the image changed too.
    let forced = patch_as(
        &mut c,
        r.clone(),
        APPLY,
        deployment("nginx:2", 2),
        "alice",
        true,
    )
    .await
    .expect("forced apply");
    assert_eq!(forced["spec"]["replicas"], 2);
    assert_eq!(
        forced["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:2"
    );
    let managers: Vec<&str> = forced["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert_eq!(managers, vec!["alice"], "bob owned nothing else");

    // Alice stops applying the log container: it goes.
    let mut smaller = deployment("nginx:2", 2);
    if let Some(cs) = smaller["spec"]["template"]["spec"]["containers"].as_array_mut() {
        cs.truncate(1);
    }
    let applied = patch_as(&mut c, r.clone(), APPLY, smaller, "alice", false)
        .await
        .expect("apply fewer fields");
    let names: Vec<&str> = applied["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, vec!["web"]);
}
