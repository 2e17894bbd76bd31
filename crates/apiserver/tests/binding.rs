//! `pods/binding` against a real store, with the pods' watch cache running (binds start from its
//! copy): one bind wins, later and concurrent ones get kube's 409, a deleted pod 404, and a bind
//! racing other writes to the pod loses none of them.
mod common;

use common::*;
use niwa_api::Reason;
use niwa_api::proto::ListRequest;
use serde_json::{Value, json};

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

fn binding(pod: &str, node: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod},
        "target": {"kind": "Node", "name": node}})
}

/// Lists pods once, which starts their watch cache (as any scheduler or kubelet does).
async fn warm(cluster: &Cluster) {
    let mut c = cluster.client();
    list(
        &mut c,
        ListRequest {
            r#ref: Some(rref("pods", "default", "")),
            ..Default::default()
        },
    )
    .await
    .expect("list pods");
}

#[tokio::test]
async fn one_bind_wins_and_the_rest_conflict() {
    let cluster = Cluster::start().await;
    warm(&cluster).await;
    let (other, _stop) = cluster.another_apiserver().await;
    let mut c = cluster.client();
    create(&mut c, rref("pods", "default", ""), pod("p"))
        .await
        .expect("create");
    // Sixteen binds to different nodes at once, through two apiservers.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let mut c = if i % 2 == 0 {
            cluster.client()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            create(
                &mut c,
                sub(rref("pods", "default", "p"), "binding"),
                binding("p", &format!("node-{i}")),
            )
            .await
        }));
    }
    let mut won = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.expect("task") {
            Ok(status) => {
                assert_eq!(status["status"], "Success");
                won.push(format!("node-{i}"));
            }
            Err(e) => {
                assert_eq!(e.reason, Reason::Conflict, "{e:?}");
                assert!(
                    e.message
                        .contains("pod p is already assigned to node \"node-"),
                    "{}",
                    e.message
                );
            }
        }
    }
    assert_eq!(won.len(), 1, "exactly one bind succeeds: {won:?}");
    let p = get(&mut c, rref("pods", "default", "p"))
        .await
        .expect("get");
    assert_eq!(p["spec"]["nodeName"], won[0].as_str());
    let conditions = p["status"]["conditions"].as_array().expect("conditions");
    assert!(
        conditions
            .iter()
            .any(|c| c["type"] == "PodScheduled" && c["status"] == "True")
    );
    // Later, the message names the node it is bound to.
    let again = create(
        &mut c,
        sub(rref("pods", "default", "p"), "binding"),
        binding("p", "elsewhere"),
    )
    .await
    .expect_err("bound pods are not re-bound");
    assert_eq!(again.reason, Reason::Conflict);
    assert!(
        again
            .message
            .ends_with(&format!("pod p is already assigned to node \"{}\"", won[0])),
        "{}",
        again.message
    );
}

#[tokio::test]
async fn a_deleted_pod_is_not_found_and_a_mismatched_name_is_refused() {
    let cluster = Cluster::start().await;
    warm(&cluster).await;
    let mut c = cluster.client();
    for round in 0..5 {
        let name = format!("gone-{round}");
        create(&mut c, rref("pods", "default", ""), pod(&name))
            .await
            .expect("create");
        // An unbound pod is deleted at once; the bind right after may still find it in the cache.
        delete(
            &mut c,
            rref("pods", "default", &name),
            json!({"gracePeriodSeconds": 0}),
        )
        .await
        .expect("delete");
        let err = create(
            &mut c,
            sub(rref("pods", "default", &name), "binding"),
            binding(&name, "node-1"),
        )
        .await
        .expect_err("bind of a deleted pod");
        assert_eq!(err.reason, Reason::NotFound, "{err:?}");
    }
    create(&mut c, rref("pods", "default", ""), pod("named"))
        .await
        .expect("create");
    let err = create(
        &mut c,
        sub(rref("pods", "default", "named"), "binding"),
        binding("other", "node-1"),
    )
    .await
    .expect_err("name mismatch");
    assert_eq!(err.reason, Reason::BadRequest, "{err:?}");
}

#[tokio::test]
async fn a_bind_racing_status_updates_loses_none_of_them() {
    let cluster = Cluster::start().await;
    warm(&cluster).await;
    let mut c = cluster.client();
    create(&mut c, rref("pods", "default", ""), pod("busy"))
        .await
        .expect("create");
    // Status writes through the other apiserver make this one's cached copy stale while it binds.
    let (mut other, _stop) = cluster.another_apiserver().await;
    let writer = tokio::spawn(async move {
        for i in 0..20 {
            // Each write re-reads and retries until it lands (it may conflict with the bind).
            loop {
                let mut body = get(&mut other, rref("pods", "default", "busy"))
                    .await
                    .expect("get");
                body["status"]["message"] = json!(format!("write {i}"));
                match update(
                    &mut other,
                    sub(rref("pods", "default", "busy"), "status"),
                    body,
                )
                .await
                {
                    Ok(_) => break,
                    Err(e) => assert_eq!(e.reason, Reason::Conflict, "{e:?}"),
                }
            }
        }
    });
    create(
        &mut c,
        sub(rref("pods", "default", "busy"), "binding"),
        binding("busy", "node-1"),
    )
    .await
    .expect("bind");
    writer.await.expect("writer");
    let p = get(&mut c, rref("pods", "default", "busy"))
        .await
        .expect("get");
    assert_eq!(
        p["spec"]["nodeName"], "node-1",
        "no status write undid the bind"
    );
    assert_eq!(
        p["status"]["message"], "write 19",
        "the bind undid no status write"
    );
}
