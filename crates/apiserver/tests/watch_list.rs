//! List and Watch semantics: selectors, limit/continue, watch resume from a resourceVersion, selector
//! transitions, and 410 Expired after compaction.
mod common;

use common::*;
use niwa_api::Reason;
use niwa_api::proto::{ListRequest, WatchRequest};
use serde_json::json;

fn cm(name: &str, ns: &str, tier: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": {"tier": tier}}})
}

async fn make_ns(
    c: &mut niwa_api::proto::resources_client::ResourcesClient<tonic::transport::Channel>,
    ns: &str,
) {
    create(c, rref("ns", "", ""), json!({"metadata": {"name": ns}}))
        .await
        .expect("namespace");
}

#[tokio::test]
async fn list_selectors_and_pagination() {
    let cluster = Cluster::start().await;
    let mut c = cluster.client();
    make_ns(&mut c, "a").await;
    make_ns(&mut c, "b").await;
    for i in 0..7 {
        let tier = if i % 2 == 0 { "fe" } else { "be" };
        create(&mut c, rref("cm", "a", ""), cm(&format!("c{i}"), "a", tier))
            .await
            .expect("create");
    }
    create(&mut c, rref("cm", "b", ""), cm("other", "b", "fe"))
        .await
        .expect("create");

    let names = |l: &serde_json::Value| -> Vec<String> {
        l["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|o| {
                        o["metadata"]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string()
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let all = list(
        &mut c,
        ListRequest {
            r#ref: Some(rref("cm", "", "")),
            ..Default::default()
        },
    )
    .await
    .expect("list all namespaces");
    assert_eq!(names(&all).len(), 8);
    let fe = list(
        &mut c,
        ListRequest {
            r#ref: Some(rref("cm", "a", "")),
            label_selector: "tier=fe".into(),
            ..Default::default()
        },
    )
    .await
    .expect("label selector");
    assert_eq!(names(&fe), vec!["c0", "c2", "c4", "c6"]);
    let set = list(
        &mut c,
        ListRequest {
            r#ref: Some(rref("cm", "", "")),
            label_selector: "tier in (fe),tier notin (be)".into(),
            field_selector: "metadata.namespace=b".into(),
            ..Default::default()
        },
    )
    .await
    .expect("set + field");
    assert_eq!(names(&set), vec!["other"]);
    let bad = list(
        &mut c,
        ListRequest {
            r#ref: Some(rref("cm", "a", "")),
            field_selector: "spec.nodeName=x".into(),
            ..Default::default()
        },
    )
    .await
    .expect_err("unsupported field");
    assert_eq!(bad.reason, Reason::BadRequest);
    assert!(
        bad.message
            .contains("field label not supported: spec.nodeName"),
        "{}",
        bad.message
    );

    // Pages of 3 at one consistent revision.
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut rvs = Vec::new();
    loop {
        let page = list(
            &mut c,
            ListRequest {
                r#ref: Some(rref("cm", "a", "")),
                limit: 3,
                continue_token: token.clone(),
                ..Default::default()
            },
        )
        .await
        .expect("page");
        seen.extend(names(&page));
        rvs.push(
            page["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
        if seen.len() == 3 {
            assert_eq!(page["metadata"]["remainingItemCount"], 4);
            // A write between pages does not show up in later pages of the same list.
            create(&mut c, rref("cm", "a", ""), cm("c9", "a", "fe"))
                .await
                .expect("create mid-list");
        }
        match page["metadata"]["continue"].as_str() {
            Some(t) => token = t.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, vec!["c0", "c1", "c2", "c3", "c4", "c5", "c6"]);
    assert!(
        rvs.windows(2).all(|w| w[0] == w[1]),
        "pages share one revision: {rvs:?}"
    );
    // A filtered, limited list still fills pages.
    let page = list(
        &mut c,
        ListRequest {
            r#ref: Some(rref("cm", "a", "")),
            limit: 2,
            label_selector: "tier=be".into(),
            ..Default::default()
        },
    )
    .await
    .expect("filtered page");
    assert_eq!(names(&page), vec!["c1", "c3"]);
    assert!(page["metadata"]["continue"].is_string());
}

#[tokio::test]
async fn watch_initial_events_resume_and_selector_transitions() {
    let cluster = Cluster::start().await;
    let mut c = cluster.client();
    create(&mut c, rref("cm", "default", ""), cm("a", "default", "fe"))
        .await
        .expect("create");
    let mut w = watch(
        &mut c,
        WatchRequest {
            r#ref: Some(rref("cm", "default", "")),
            label_selector: "tier=fe".into(),
            ..Default::default()
        },
    )
    .await;
    let (t, o) = next(&mut w).await;
    assert_eq!(
        (t.as_str(), o["metadata"]["name"].as_str()),
        ("ADDED", Some("a"))
    );
    let mut b = create(&mut c, rref("cm", "default", ""), cm("b", "default", "be"))
        .await
        .expect("create b");
    // b enters the selection: ADDED; leaves it: DELETED.
    b["metadata"]["labels"]["tier"] = json!("fe");
    let b = update(&mut c, rref("cm", "default", "b"), b)
        .await
        .expect("relabel");
    let (t, o) = next(&mut w).await;
    assert_eq!(
        (t.as_str(), o["metadata"]["name"].as_str()),
        ("ADDED", Some("b"))
    );
    assert_eq!(rv(&o), rv(&b));
    let mut b2 = b.clone();
    b2["metadata"]["labels"]["tier"] = json!("be");
    update(&mut c, rref("cm", "default", "b"), b2)
        .await
        .expect("relabel back");
    let (t, _) = next(&mut w).await;
    assert_eq!(t, "DELETED");

    // Resume: events after a remembered resourceVersion, exactly once each.
    let mark = rv(&b);
    let mut a = get(&mut c, rref("cm", "default", "a"))
        .await
        .expect("get a");
    a["data"] = json!({"x": "1"});
    update(&mut c, rref("cm", "default", "a"), a)
        .await
        .expect("update a");
    delete(&mut c, rref("cm", "default", "a"), serde_json::Value::Null)
        .await
        .expect("delete a");
    let mut resumed = watch(
        &mut c,
        WatchRequest {
            r#ref: Some(rref("cm", "default", "")),
            resource_version: mark,
            ..Default::default()
        },
    )
    .await;
    let mut kinds = Vec::new();
    for _ in 0..3 {
        let (t, o) = next(&mut resumed).await;
        kinds.push(format!(
            "{t} {}",
            o["metadata"]["name"].as_str().unwrap_or_default()
        ));
    }
    assert_eq!(kinds, vec!["MODIFIED b", "MODIFIED a", "DELETED a"]);
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), resumed.recv())
            .await
            .is_err(),
        "no extra events"
    );
}

#[tokio::test]
async fn watch_from_a_compacted_revision_is_expired() {
    let cluster = Cluster::start().await;
    let mut c = cluster.client();
    let first = create(&mut c, rref("cm", "default", ""), cm("a", "default", "fe"))
        .await
        .expect("create");
    let mut last = first.clone();
    for i in 0..5 {
        last["data"] = json!({"i": i.to_string()});
        last = update(&mut c, rref("cm", "default", "a"), last)
            .await
            .expect("update");
    }
    let mut etcd = etcd_client::Client::connect([cluster.store.to_string()], None)
        .await
        .expect("etcd client");
    let compact_at: i64 = rv(&last).parse().expect("rv");
    etcd.compact(compact_at, None).await.expect("compact");
    let mut w = watch(
        &mut c,
        WatchRequest {
            r#ref: Some(rref("cm", "default", "")),
            resource_version: rv(&first),
            ..Default::default()
        },
    )
    .await;
    let (t, status) = next(&mut w).await;
    assert_eq!(t, "ERROR");
    assert_eq!(
        (status["code"].as_i64(), status["reason"].as_str()),
        (Some(410), Some("Expired"))
    );
    // A fresh list + watch from its revision works again.
    let l = list(
        &mut c,
        ListRequest {
            r#ref: Some(rref("cm", "default", "")),
            ..Default::default()
        },
    )
    .await
    .expect("relist");
    let mut w = watch(
        &mut c,
        WatchRequest {
            r#ref: Some(rref("cm", "default", "")),
            resource_version: l["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .into(),
            ..Default::default()
        },
    )
    .await;
    create(&mut c, rref("cm", "default", ""), cm("z", "default", "fe"))
        .await
        .expect("create");
    let (t, o) = next(&mut w).await;
    assert_eq!(
        (t.as_str(), o["metadata"]["name"].as_str()),
        ("ADDED", Some("z"))
    );
}
