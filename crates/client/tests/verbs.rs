//! Every verb of `Api<K>` and `DynamicApi` against a real store + apiserver.

use std::time::Duration;

use futures::StreamExt;
use niwa_client::k8s::api::coordination::v1::Lease;
use niwa_client::k8s::api::core::v1::{ConfigMap, Container, Namespace, Node, Pod, PodSpec};
use niwa_client::k8s::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use niwa_client::{
    Api, DeleteParams, ListParams, Patch, ResourceExt, WatchEvent, WatchParams, retry,
};
use niwa_testkit::ControlPlane;
use serde_json::json;

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        data: Some([("k".to_string(), "v".to_string())].into()),
        ..Default::default()
    }
}

fn pod(name: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "main".into(),
                image: Some("busybox".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn create_get_list_replace_delete() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await;
    let cms: Api<ConfigMap> = cp.client().namespaced("default");

    let created = cms.create(&cm("a", &[("app", "x")])).await?;
    assert_eq!(created.name_any(), "a");
    assert_eq!(created.namespace().as_deref(), Some("default"));
    assert!(created.uid().is_some());
    let rv1 = created.resource_version().unwrap_or_default();
    assert!(!rv1.is_empty());

    let err = cms.create(&cm("a", &[])).await.expect_err("duplicate");
    assert!(err.is_already_exists(), "{err}");

    cms.create(&cm("b", &[("app", "y")])).await?;
    let got = cms.get("a").await?;
    assert_eq!(got.data, created.data);
    assert!(cms.get_opt("missing").await?.is_none());
    let err = cms.get("missing").await.expect_err("missing");
    assert!(err.is_not_found());
    assert_eq!(err.code(), Some(404));

    let all = cms.list(&ListParams::default()).await?;
    let mut names: Vec<String> = all.items.iter().map(|c| c.name_any()).collect();
    names.sort();
    assert_eq!(names, ["a", "b"]);
    assert!(!all.resource_version.is_empty());
    let x = cms.list(&ListParams::default().labels("app=x")).await?;
    assert_eq!(x.items.len(), 1);
    let by_name = cms
        .list(&ListParams::default().fields("metadata.name=b"))
        .await?;
    assert_eq!(by_name.items[0].name_any(), "b");

    // Replace is a compare-and-swap on resourceVersion.
    let mut changed = got.clone();
    changed
        .data
        .get_or_insert_default()
        .insert("k".into(), "v2".into());
    let replaced = cms.replace(&changed).await?;
    assert_ne!(replaced.resource_version(), got.resource_version());
    let err = cms.replace(&changed).await.expect_err("stale");
    assert!(err.is_conflict(), "{err}");

    let deleted = cms.delete("a", &DeleteParams::default()).await?;
    assert!(deleted.is_some_and(|d| d.name_any() == "a"));
    assert!(cms.get_opt("a").await?.is_none());
    let err = cms
        .delete("a", &DeleteParams::default())
        .await
        .expect_err("gone");
    assert!(err.is_not_found());
    Ok(())
}

#[tokio::test]
async fn validation_errors_name_the_field() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await;
    let cms: Api<ConfigMap> = cp.client().namespaced("default");
    let err = cms
        .create(&cm("Not_Valid", &[]))
        .await
        .expect_err("invalid name");
    assert!(err.is_invalid(), "{err}");
    let status = err.api().expect("api error");
    assert!(
        status.causes.iter().any(|c| c.field == "metadata.name"),
        "{status:?}"
    );
    Ok(())
}

#[tokio::test]
async fn pagination_and_list_all() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await;
    let cms: Api<ConfigMap> = cp.client().namespaced("default");
    for i in 0..7 {
        cms.create(&cm(&format!("c{i}"), &[])).await?;
    }
    let page = cms.list(&ListParams::default().limit(3)).await?;
    assert_eq!(page.items.len(), 3);
    assert!(page.continue_token.is_some());
    let all = cms.list_all(&ListParams::default().limit(3)).await?;
    assert_eq!(all.items.len(), 7);
    assert!(all.continue_token.is_none());
    Ok(())
}

#[tokio::test]
async fn patches_and_status() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let cms: Api<ConfigMap> = client.namespaced("default");
    cms.create(&cm("p", &[])).await?;
    let merged = cms
        .patch(
            "p",
            &Patch::Merge(json!({"metadata": {"labels": {"a": "1"}}, "data": {"extra": "x"}})),
        )
        .await?;
    assert_eq!(merged.labels().get("a").map(String::as_str), Some("1"));
    assert_eq!(
        merged
            .data
            .as_ref()
            .and_then(|d| d.get("extra"))
            .map(String::as_str),
        Some("x")
    );
    let patched = cms
        .patch(
            "p",
            &Patch::Json(json!([{"op": "remove", "path": "/data/extra"}])),
        )
        .await?;
    assert!(
        patched
            .data
            .as_ref()
            .is_some_and(|d| !d.contains_key("extra"))
    );

    // Status is separate from spec: replace ignores status, replace_status keeps only status.
    let nodes: Api<Node> = client.cluster();
    let mut node = Node {
        metadata: ObjectMeta {
            name: Some("n1".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    node = nodes.create(&node).await?;
    let mut with_status = node.clone();
    with_status.status = Some(serde_json::from_value(json!({"phase": "Running"}))?);
    let updated = nodes.replace_status(&with_status).await?;
    assert_eq!(
        updated.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Running")
    );
    let patched = nodes
        .patch_status(
            "n1",
            &Patch::Merge(json!({"status": {"phase": "Terminated"}})),
        )
        .await?;
    assert_eq!(
        patched.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Terminated")
    );
    Ok(())
}

#[tokio::test]
async fn bind_assigns_a_pod_once() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await;
    let pods: Api<Pod> = cp.client().namespaced("default");
    pods.create(&pod("web")).await?;
    pods.bind("web", "n1").await?;
    let bound = pods.get("web").await?;
    assert_eq!(
        bound.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some("n1")
    );
    let err = pods.bind("web", "n2").await.expect_err("already bound");
    assert!(err.is_conflict(), "{err}");
    Ok(())
}

#[tokio::test]
async fn watch_sees_changes_from_a_resource_version() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await;
    let cms: Api<ConfigMap> = cp.client().namespaced("default");
    cms.create(&cm("before", &[])).await?;
    let list = cms.list(&ListParams::default()).await?;
    let mut stream = cms
        .watch(&WatchParams::default(), &list.resource_version)
        .await?;
    cms.create(&cm("w", &[])).await?;
    cms.patch("w", &Patch::Merge(json!({"data": {"k": "2"}})))
        .await?;
    cms.delete("w", &DeleteParams::default()).await?;
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await?
            .expect("stream open")?;
        match ev {
            WatchEvent::Added(c) => seen.push(format!("ADDED {}", c.name_any())),
            WatchEvent::Modified(c) => seen.push(format!("MODIFIED {}", c.name_any())),
            WatchEvent::Deleted(c) => seen.push(format!("DELETED {}", c.name_any())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => anyhow::bail!("watch error {e}"),
        }
    }
    assert_eq!(seen, ["ADDED w", "MODIFIED w", "DELETED w"]);
    Ok(())
}

#[tokio::test]
async fn concurrent_updaters_with_retry_lose_nothing() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await;
    let cms: Api<ConfigMap> = cp.client().namespaced("default");
    let mut counter = cm("counter", &[]);
    counter.data = Some([("n".to_string(), "0".to_string())].into());
    cms.create(&counter).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let cms = cms.clone();
        tasks.spawn(async move {
            for _ in 0..5 {
                retry::on_conflict(|| async {
                    let mut c = cms.get("counter").await?;
                    let data = c.data.get_or_insert_default();
                    let n: u64 = data.get("n").and_then(|n| n.parse().ok()).unwrap_or(0);
                    data.insert("n".into(), (n + 1).to_string());
                    cms.replace(&c).await
                })
                .await?;
            }
            Ok::<(), niwa_client::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let c = cms.get("counter").await?;
    assert_eq!(
        c.data.as_ref().and_then(|d| d.get("n")).map(String::as_str),
        Some("40")
    );
    Ok(())
}

#[tokio::test]
async fn all_namespaces_cluster_scope_and_dynamic() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let namespaces: Api<Namespace> = client.cluster();
    let ns = namespaces.list(&ListParams::default()).await?;
    let names: Vec<String> = ns.items.iter().map(|n| n.name_any()).collect();
    for system in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(names.iter().any(|n| n == system), "{system} in {names:?}");
    }

    // An all-namespaces API writes into the object's namespace.
    let leases: Api<Lease> = client.all();
    let mut lease = Lease::default();
    lease.metadata.name = Some("l".into());
    lease.metadata.namespace = Some("kube-system".into());
    leases.create(&lease).await?;
    let in_ns: Api<Lease> = client.namespaced("kube-system");
    assert!(in_ns.get_opt("l").await?.is_some());
    assert_eq!(leases.list(&ListParams::default()).await?.items.len(), 1);

    let dynamic = client.dynamic("coordination.k8s.io", "v1", "leases", Some("kube-system"));
    let got = dynamic.get("l").await?;
    assert_eq!(got["kind"], "Lease");
    let created = dynamic
        .create(
            &json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                        "metadata": {"name": "d"}, "spec": {"holderIdentity": "me"}}),
        )
        .await?;
    assert_eq!(created["spec"]["holderIdentity"], "me");
    let patched = dynamic
        .patch(
            "d",
            &Patch::Merge(json!({"spec": {"holderIdentity": "you"}})),
        )
        .await?;
    assert_eq!(patched["spec"]["holderIdentity"], "you");
    assert_eq!(dynamic.list(&ListParams::default()).await?.items.len(), 2);
    dynamic.delete("d", &DeleteParams::default()).await?;
    assert!(dynamic.get_opt("d").await?.is_none());
    let err = client
        .dynamic("", "v1", "nonsense", Some("default"))
        .get("x")
        .await
        .expect_err("unknown resource");
    assert!(err.is_not_found(), "{err}");
    Ok(())
}

#[tokio::test]
async fn transport_errors_are_not_api_errors() {
    // Nothing listens on a port we just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let err = niwa_client::Client::connect(&format!("http://{port}"))
        .await
        .expect_err("nothing listens");
    assert!(err.is_transport(), "{err}");
    let lazy = niwa_client::Client::connect_lazy(&port.to_string()).expect("lazy");
    let err = lazy
        .namespaced::<ConfigMap>("default")
        .get("x")
        .await
        .expect_err("nothing listens");
    assert!(err.is_transport(), "{err}");
    assert!(!err.is_not_found());
}
