//! The watch cache: many watchers share one store watch, lists after a write see it, and a watcher
//! that stops reading is ended with 410 Expired instead of holding anyone up.

mod common;

use std::time::Duration;

use common::*;
use niwa_api::proto::{ListRequest, WatchRequest};
use serde_json::json;

fn cm(name: &str, n: usize) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": "default", "labels": {"n": n.to_string()}},
           "data": {"payload": "x".repeat(200)}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_watchers_see_every_event_and_a_slow_one_is_ended() {
    let cluster = Cluster::start().await;
    let mut c = cluster.client();
    let req = WatchRequest {
        r#ref: Some(rref("configmaps", "default", "")),
        ..Default::default()
    };
    // 50 readers, each counting ADDED events in a task of its own, and one watcher that never
    // reads its stream.
    const N: usize = 3000;
    let mut readers = Vec::new();
    for _ in 0..50 {
        let mut rx = watch(&mut c, req.clone()).await;
        readers.push(tokio::spawn(async move {
            for _ in 0..N {
                let (kind, obj) = next(&mut rx).await;
                assert_eq!(kind, "ADDED", "{obj}");
            }
        }));
    }
    // Its own connection, with small HTTP/2 windows: unread data holds flow-control credit of
    // the connection it shares, and the default windows would absorb every event of this test.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", cluster.api))
        .expect("endpoint")
        .initial_stream_window_size(64 * 1024)
        .initial_connection_window_size(64 * 1024)
        .connect()
        .await
        .expect("connect");
    let mut own = niwa_api::proto::resources_client::ResourcesClient::new(channel);
    let mut stuck = own.watch(req.clone()).await.expect("watch").into_inner();

    let mut tasks = Vec::new();
    for t in 0..16 {
        let mut c = niwa_api::proto::resources_client::ResourcesClient::connect(format!(
            "http://{}",
            cluster.api
        ))
        .await
        .expect("connect");
        tasks.push(tokio::spawn(async move {
            for i in (t..N).step_by(16) {
                create(
                    &mut c,
                    rref("configmaps", "default", ""),
                    cm(&format!("cm-{i}"), i),
                )
                .await
                .expect("create");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }

    // A list right after the writes sees all of them (consistent read from the cache).
    let list = list(
        &mut c,
        ListRequest {
            r#ref: Some(rref("configmaps", "default", "")),
            ..Default::default()
        },
    )
    .await
    .expect("list");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(N));

    for reader in readers {
        reader.await.expect("reader saw every event");
    }

    // The stuck watcher's buffer overflowed: once it reads, it finds a 410 after what was buffered.
    let mut last = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), stuck.message()).await {
            Ok(Ok(Some(ev))) => last = Some(ev),
            _ => break,
        }
    }
    let last = last.expect("some events");
    assert_eq!(last.r#type, "ERROR");
    let status: serde_json::Value = serde_json::from_slice(&last.object).expect("status");
    assert_eq!(status["code"], 410, "{status}");
}

#[tokio::test]
async fn label_selected_list_and_namespace_scoped_list_come_from_the_cache() {
    let cluster = Cluster::start().await;
    let mut c = cluster.client();
    for i in 0..20 {
        create(
            &mut c,
            rref("configmaps", "default", ""),
            cm(&format!("c{i}"), i % 3),
        )
        .await
        .expect("create");
    }
    let req = |sel: &str, ns: &str, rv: &str| ListRequest {
        r#ref: Some(rref("configmaps", ns, "")),
        label_selector: sel.into(),
        resource_version: rv.into(),
        ..Default::default()
    };
    let l = list(&mut c, req("n=1", "default", "")).await.expect("list");
    assert_eq!(l["items"].as_array().map(Vec::len), Some(7));
    let l = list(&mut c, req("n in (0,2)", "", "0"))
        .await
        .expect("list");
    assert_eq!(l["items"].as_array().map(Vec::len), Some(13));
    let l = list(&mut c, req("", "kube-system", ""))
        .await
        .expect("list");
    assert_eq!(l["items"].as_array().map(Vec::len), Some(0));
    // Items carry their own resourceVersion; the list carries the cache's.
    let l = list(&mut c, req("", "default", "")).await.expect("list");
    let list_rv: i64 = rv(&l).parse().expect("rv");
    for item in l["items"].as_array().expect("items") {
        let item_rv: i64 = rv(item).parse().expect("rv");
        assert!(item_rv > 0 && item_rv <= list_rv);
    }
}

/// A cache's initial list larger than gRPC's default 4 MiB message limit (six ~900 KiB
/// ConfigMaps): a freshly started apiserver must still load it, rather than retrying forever with
/// "the watch cache of configmaps is not ready yet".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_initial_list_larger_than_four_mib_loads() {
    let cluster = Cluster::start().await;
    let mut c = cluster.client();
    for i in 0..6 {
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("big-{i}"), "namespace": "default"},
            "data": {"payload": "x".repeat(900 * 1024)}});
        create(&mut c, rref("configmaps", "default", ""), body)
            .await
            .expect("create");
    }
    let (fresh, _token) = cluster.another_apiserver().await;
    let mut fresh = fresh.max_decoding_message_size(64 << 20);
    let req = ListRequest {
        r#ref: Some(rref("configmaps", "default", "")),
        ..Default::default()
    };
    let listed = tokio::time::timeout(Duration::from_secs(20), list(&mut fresh, req))
        .await
        .expect("the list answers in time")
        .expect("list");
    let names: Vec<&str> = listed["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["metadata"]["name"].as_str())
                .filter(|n| n.starts_with("big-"))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(names.len(), 6, "{names:?}");
}

/// Watchers of pods indexed by `spec.nodeName` (kube's trigger function): a node's watcher gets
/// the pods bound to its node — ADDED at the binding, MODIFIED while bound, DELETED at the
/// deletion — and nothing of other nodes' pods, while untriggered watchers (`!=`, no selector)
/// still see everything they select.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_name_watchers_see_only_their_nodes_pods() {
    let cluster = Cluster::start().await;
    let mut c = cluster.client();
    let pods = || rref("pods", "default", "");
    let watch_req = |fields: &str| WatchRequest {
        r#ref: Some(rref("pods", "", "")),
        field_selector: fields.into(),
        ..Default::default()
    };
    let mut on_a = watch(&mut c, watch_req("spec.nodeName=node-a")).await;
    let mut on_b = watch(&mut c, watch_req("spec.nodeName=node-b")).await;
    let mut scheduled = watch(&mut c, watch_req("spec.nodeName!=")).await;
    let mut all = watch(&mut c, watch_req("")).await;

    let pod = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
               "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    };
    let bind = |name: &str, node: &str| {
        json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
               "target": {"kind": "Node", "name": node}})
    };
    for (name, node) in [("p1", "node-a"), ("p2", "node-b")] {
        create(&mut c, pods(), pod(name)).await.expect("create");
        create(
            &mut c,
            sub(rref("pods", "default", name), "binding"),
            bind(name, node),
        )
        .await
        .expect("bind");
    }
    patch(
        &mut c,
        sub(rref("pods", "default", "p1"), "status"),
        "application/merge-patch+json",
        json!({"status": {"phase": "Running"}}),
    )
    .await
    .expect("status");
    // p2's deletion, last, marks the end of what node-a's watcher could have received.
    for name in ["p1", "p2"] {
        let now = json!({"gracePeriodSeconds": 0});
        delete(&mut c, rref("pods", "default", name), now)
            .await
            .expect("delete");
    }

    let name = |o: &serde_json::Value| o["metadata"]["name"].as_str().unwrap_or("").to_string();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (kind, o) = next(&mut on_a).await;
        seen.push((kind, name(&o)));
    }
    let want = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(k, n)| (k.to_string(), n.to_string()))
            .collect()
    };
    assert_eq!(
        seen,
        want(&[("ADDED", "p1"), ("MODIFIED", "p1"), ("DELETED", "p1")])
    );
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (kind, o) = next(&mut on_b).await;
        seen.push((kind, name(&o)));
    }
    assert_eq!(seen, want(&[("ADDED", "p2"), ("DELETED", "p2")]));
    // Nothing else reached node-a's or node-b's watcher.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(on_a.try_recv().is_err(), "node-a's watcher got another pod");
    assert!(on_b.try_recv().is_err(), "node-b's watcher got another pod");

    // `spec.nodeName!=` sees each pod from its binding (ADDED) to its deletion.
    let mut seen = Vec::new();
    for _ in 0..5 {
        let (kind, o) = next(&mut scheduled).await;
        seen.push((kind, name(&o)));
    }
    assert_eq!(
        seen,
        want(&[
            ("ADDED", "p1"),
            ("ADDED", "p2"),
            ("MODIFIED", "p1"),
            ("DELETED", "p1"),
            ("DELETED", "p2"),
        ])
    );
    // Without a selector: creation, binding, status and deletion of both.
    for _ in 0..7 {
        next(&mut all).await;
    }
}
