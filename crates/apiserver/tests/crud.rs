//! Object semantics over gRPC against a real store: CRUD, server-set metadata, validation,
//! namespaces, optimistic concurrency, subresources, deletion.
mod common;

use common::*;
use niwa_api::Reason;
use niwa_api::proto::ListRequest;
use serde_json::json;

fn cm(name: &str, ns: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": {"k": "v"}})
}

#[tokio::test]
async fn system_namespaces_exist_and_crud_works() {
    let cluster = Cluster::start().await;
    let mut c = cluster.client();
    let namespaces = list(
        &mut c,
        ListRequest {
            r#ref: Some(rref("ns", "", "")),
            ..Default::default()
        },
    )
    .await
    .expect("list namespaces");
    let names: Vec<&str> = namespaces["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        vec!["default", "kube-node-lease", "kube-public", "kube-system"]
    );
    assert_eq!(namespaces["kind"], "NamespaceList");

    let created = create(&mut c, rref("cm", "default", ""), cm("one", "default"))
        .await
        .expect("create");
    assert_eq!(created["metadata"]["name"], "one");
    assert!(
        !created["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
    );
    assert!(
        created["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap_or_default()
            .ends_with('Z')
    );
    let first_rv = rv(&created);
    assert!(first_rv.parse::<i64>().is_ok());

    let dup = create(&mut c, rref("cm", "default", ""), cm("one", "default")).await;
    let err = dup.expect_err("duplicate create fails");
    assert_eq!(
        (err.reason, err.message.as_str()),
        (Reason::AlreadyExists, "configmaps \"one\" already exists")
    );

    let mut changed = created.clone();
    changed["data"]["k"] = json!("v2");
    let updated = update(&mut c, rref("cm", "default", "one"), changed.clone())
        .await
        .expect("update");
    assert_ne!(rv(&updated), first_rv);
    assert_eq!(updated["metadata"]["uid"], created["metadata"]["uid"]);
    // The same stale body again: Conflict.
    let stale = update(&mut c, rref("cm", "default", "one"), changed)
        .await
        .expect_err("stale update");
    assert_eq!(stale.reason, Reason::Conflict);
    assert!(
        stale.message.contains("the object has been modified"),
        "{}",
        stale.message
    );

    let got = get(&mut c, rref("cm", "default", "one"))
        .await
        .expect("get");
    assert_eq!(got["data"]["k"], "v2");
    delete(
        &mut c,
        rref("cm", "default", "one"),
        serde_json::Value::Null,
    )
    .await
    .expect("delete");
    let gone = get(&mut c, rref("cm", "default", "one"))
        .await
        .expect_err("gone");
    assert_eq!((gone.reason, gone.code()), (Reason::NotFound, 404));
}

#[tokio::test]
async fn validation_names_every_bad_field_and_namespaces_must_exist() {
    let cluster = Cluster::start().await;
    let mut c = cluster.client();
    let bad = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "Bad_Name", "labels": {"bad key": "v"}}});
    let err = create(&mut c, rref("cm", "default", ""), bad)
        .await
        .expect_err("invalid");
    assert_eq!(err.reason, Reason::Invalid);
    let fields: Vec<&str> = err.causes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(fields, vec!["metadata.name", "metadata.labels"]);
    assert!(
        err.message
            .starts_with("ConfigMap \"Bad_Name\" is invalid: ["),
        "{}",
        err.message
    );

    let err = create(&mut c, rref("cm", "nope", ""), cm("x", "nope"))
        .await
        .expect_err("no namespace");
    assert_eq!(
        (err.reason, err.message.as_str()),
        (Reason::NotFound, "namespaces \"nope\" not found")
    );

    let wrong_kind = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}});
    let err = create(&mut c, rref("cm", "default", ""), wrong_kind)
        .await
        .expect_err("kind mismatch");
    assert_eq!(err.reason, Reason::BadRequest);

    let generated = create(
        &mut c,
        rref("cm", "default", ""),
        json!({"metadata": {"generateName": "web-"}, "data": {}}),
    )
    .await
    .expect("generateName");
    let name = generated["metadata"]["name"].as_str().unwrap_or_default();
    assert!(name.starts_with("web-") && name.len() == 9, "{name}");
}

#[tokio::test]
async fn concurrent_updaters_lose_no_update() {
    let cluster = Cluster::start().await;
    let mut c = cluster.client();
    create(&mut c, rref("cm", "default", ""), cm("counter", "default"))
        .await
        .expect("create");
    let workers = 8;
    let per_worker = 10;
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let mut c = cluster.client();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_worker {
                loop {
                    let mut cur = get(&mut c, rref("cm", "default", "counter"))
                        .await
                        .expect("get");
                    let n: i64 = cur["metadata"]["annotations"]["count"]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    cur["metadata"]["annotations"] = json!({"count": (n + 1).to_string()});
                    match update(&mut c, rref("cm", "default", "counter"), cur).await {
                        Ok(_) => break,
                        Err(e) if e.reason == Reason::Conflict => continue,
                        Err(e) => panic!("unexpected error {e:?}"),
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker");
    }
    let cur = get(&mut c, rref("cm", "default", "counter"))
        .await
        .expect("get");
    assert_eq!(
        cur["metadata"]["annotations"]["count"],
        (workers * per_worker).to_string()
    );
}

#[tokio::test]
async fn status_is_separate_and_generation_follows_spec() {
    let cluster = Cluster::start().await;
    let mut c = cluster.client();
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"}, "spec": {"replicas": 1,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
        "status": {"replicas": 42}});
    let d = create(&mut c, rref("deploy", "default", ""), deploy)
        .await
        .expect("create");
    assert_eq!(d["metadata"]["generation"], 1);
    assert_eq!(d["status"], json!({}), "status is reset on create");
    let mut s = d.clone();
    s["status"] = json!({"replicas": 1});
    s["spec"]["replicas"] = json!(5);
    let after_status = update(&mut c, sub(rref("deploy", "default", "web"), "status"), s)
        .await
        .expect("status");
    assert_eq!(after_status["status"]["replicas"], 1);
    assert_eq!(
        after_status["spec"]["replicas"], 1,
        "status update ignores spec"
    );
    assert_eq!(after_status["metadata"]["generation"], 1);
    let scaled = update(
        &mut c,
        sub(rref("deploy", "default", "web"), "scale"),
        json!({"spec": {"replicas": 3}}),
    )
    .await
    .expect("scale");
    assert_eq!(scaled["kind"], "Scale");
    assert_eq!(scaled["status"]["selector"], "app=web");
    let d = get(&mut c, rref("deploy", "default", "web"))
        .await
        .expect("get");
    assert_eq!(
        (
            d["spec"]["replicas"].as_i64(),
            d["metadata"]["generation"].as_i64()
        ),
        (Some(3), Some(2))
    );
    assert_eq!(d["status"]["replicas"], 1, "spec update keeps status");
    let patched = patch(
        &mut c,
        rref("deploy", "default", "web"),
        "application/merge-patch+json",
        json!({"metadata": {"labels": {"tier": "fe"}}}),
    )
    .await
    .expect("merge patch");
    assert_eq!(patched["metadata"]["labels"]["tier"], "fe");
    assert_eq!(
        patched["metadata"]["generation"], 2,
        "metadata-only change keeps generation"
    );
}

#[tokio::test]
async fn binding_and_graceful_pod_deletion() {
    let cluster = Cluster::start().await;
    let mut c = cluster.client();
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let p = create(&mut c, rref("pods", "default", ""), pod)
        .await
        .expect("create pod");
    assert_eq!(p["status"]["phase"], "Pending");
    create(&mut c, sub(rref("pods", "default", "p"), "binding"),
        json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "node-1"}}))
        .await.expect("bind");
    let again = create(
        &mut c,
        sub(rref("pods", "default", "p"), "binding"),
        json!({"target": {"name": "node-2"}}),
    )
    .await
    .expect_err("second bind");
    assert_eq!(again.reason, Reason::Conflict);
    let p = get(&mut c, rref("pods", "default", "p"))
        .await
        .expect("get");
    assert_eq!(p["spec"]["nodeName"], "node-1");
    // A bound pod is only marked: the kubelet finishes the deletion.
    let marked = delete(
        &mut c,
        rref("pods", "default", "p"),
        serde_json::Value::Null,
    )
    .await
    .expect("delete");
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 30);
    assert!(get(&mut c, rref("pods", "default", "p")).await.is_ok());
    delete(
        &mut c,
        rref("pods", "default", "p"),
        json!({"gracePeriodSeconds": 0}),
    )
    .await
    .expect("force delete");
    assert_eq!(
        get(&mut c, rref("pods", "default", "p"))
            .await
            .expect_err("gone")
            .reason,
        Reason::NotFound
    );
    // Preconditions.
    let cmap = create(&mut c, rref("cm", "default", ""), cm("pre", "default"))
        .await
        .expect("create");
    let err = delete(
        &mut c,
        rref("cm", "default", "pre"),
        json!({"preconditions": {"uid": "other"}}),
    )
    .await
    .expect_err("uid precondition");
    assert_eq!(err.reason, Reason::Conflict);
    delete(
        &mut c,
        rref("cm", "default", "pre"),
        json!({"preconditions": {"uid": cmap["metadata"]["uid"]}}),
    )
    .await
    .expect("delete with matching uid");
}

#[tokio::test]
async fn finalizers_hold_objects_until_removed() {
    let cluster = Cluster::start().await;
    let mut c = cluster.client();
    let mut body = cm("held", "default");
    body["metadata"]["finalizers"] = json!(["example.com/hold"]);
    create(&mut c, rref("cm", "default", ""), body)
        .await
        .expect("create");
    let marked = delete(
        &mut c,
        rref("cm", "default", "held"),
        serde_json::Value::Null,
    )
    .await
    .expect("delete");
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    let mut cur = get(&mut c, rref("cm", "default", "held"))
        .await
        .expect("still there");
    cur["metadata"]["finalizers"] = json!([]);
    update(&mut c, rref("cm", "default", "held"), cur)
        .await
        .expect("remove finalizer");
    assert_eq!(
        get(&mut c, rref("cm", "default", "held"))
            .await
            .expect_err("gone")
            .reason,
        Reason::NotFound
    );
}
