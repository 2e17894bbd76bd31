//! The watcher and reflector against a real store + apiserver: initial list, live events,
//! resumption after the apiserver restarts, and a re-list after 410 Expired.

use std::time::Duration;

use futures::{Stream, StreamExt};
use niwa_client::k8s::api::core::v1::ConfigMap;
use niwa_client::k8s::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use niwa_client::runtime::watcher;
use niwa_client::runtime::watcher::Event;
use niwa_client::runtime::{Backoff, reflector};
use niwa_client::{Api, DeleteParams, ObjectRef, Patch, ResourceExt};
use niwa_testkit::ControlPlane;
use serde_json::json;

fn cm(name: &str, app: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some([("app".to_string(), app.to_string())].into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A short description of an event: `Init`, `InitApply a`, `Apply b`, `Delete c`, `InitDone`.
fn describe(ev: &Event<ConfigMap>) -> String {
    match ev {
        Event::Init => "Init".into(),
        Event::InitDone => "InitDone".into(),
        Event::InitApply(c) => format!("InitApply {}", c.name_any()),
        Event::Apply(c) => format!("Apply {}", c.name_any()),
        Event::Delete(c) => format!("Delete {}", c.name_any()),
    }
}

/// The next `n` events (errors are skipped: they are retried), within 20 s.
async fn take<S>(stream: &mut S, n: usize) -> Vec<String>
where
    S: Stream<Item = niwa_client::Result<Event<ConfigMap>>> + Unpin,
{
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while out.len() < n {
        let next = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("only {out:?} within 20 s"));
        match next {
            Some(Ok(ev)) => out.push(describe(&ev)),
            Some(Err(err)) => eprintln!("watcher error (retried): {err}"),
            None => panic!("the watcher ended"),
        }
    }
    out
}

fn fast_config() -> watcher::Config {
    watcher::Config::default().backoff(Backoff::new(
        Duration::from_millis(50),
        Duration::from_millis(500),
    ))
}

#[tokio::test]
async fn lists_then_follows_changes() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await;
    let cms: Api<ConfigMap> = cp.client().namespaced("default");
    cms.create(&cm("a", "x")).await?;
    cms.create(&cm("b", "y")).await?;
    let mut events = Box::pin(watcher(cms.clone(), fast_config().labels("app=x")));
    assert_eq!(
        take(&mut events, 3).await,
        ["Init", "InitApply a", "InitDone"]
    );
    cms.create(&cm("c", "x")).await?;
    cms.create(&cm("d", "y")).await?; // not selected
    cms.patch("a", &Patch::Merge(json!({"data": {"k": "v"}})))
        .await?;
    // Leaving the selection is a deletion for this watcher.
    cms.patch(
        "c",
        &Patch::Merge(json!({"metadata": {"labels": {"app": "z"}}})),
    )
    .await?;
    cms.delete("a", &DeleteParams::default()).await?;
    assert_eq!(
        take(&mut events, 4).await,
        ["Apply c", "Apply a", "Delete c", "Delete a"]
    );
    Ok(())
}

#[tokio::test]
async fn pages_the_initial_list() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await;
    let cms: Api<ConfigMap> = cp.client().namespaced("default");
    for i in 0..5 {
        cms.create(&cm(&format!("c{i}"), "x")).await?;
    }
    let mut events = Box::pin(watcher(cms.clone(), fast_config().page_size(2)));
    let got = take(&mut events, 7).await;
    assert_eq!(got.first().map(String::as_str), Some("Init"));
    assert_eq!(got.last().map(String::as_str), Some("InitDone"));
    assert_eq!(got.iter().filter(|e| e.starts_with("InitApply")).count(), 5);
    cms.create(&cm("after", "x")).await?;
    assert_eq!(take(&mut events, 1).await, ["Apply after"]);
    Ok(())
}

#[tokio::test]
async fn resumes_after_the_apiserver_restarts_without_a_relist() -> anyhow::Result<()> {
    let mut cp = ControlPlane::start().await;
    let cms: Api<ConfigMap> = cp.client().namespaced("default");
    cms.create(&cm("a", "x")).await?;
    let mut events = Box::pin(watcher(cms.clone(), fast_config()));
    assert_eq!(
        take(&mut events, 3).await,
        ["Init", "InitApply a", "InitDone"]
    );
    cms.create(&cm("b", "x")).await?;
    assert_eq!(take(&mut events, 1).await, ["Apply b"]);

    cp.restart_apiserver().await;
    cms.create(&cm("c", "x")).await?;
    // Resumed from the last resourceVersion: only the new change, no Init, no repeats.
    assert_eq!(take(&mut events, 1).await, ["Apply c"]);
    Ok(())
}

#[tokio::test]
async fn relists_after_expired_and_the_store_drops_what_vanished() -> anyhow::Result<()> {
    let mut cp = ControlPlane::start().await;
    let cms: Api<ConfigMap> = cp.client().namespaced("default");
    cms.create(&cm("keep", "x")).await?;
    cms.create(&cm("vanish", "x")).await?;
    let (store, writer) = niwa_client::store::<ConfigMap>();
    let mut events = Box::pin(reflector(writer, watcher(cms.clone(), fast_config())));
    assert_eq!(take(&mut events, 4).await.len(), 4);
    assert_eq!(store.len(), 2);

    // While the apiserver is down, `vanish` is deleted under it and history is compacted, so
    // the watcher's resourceVersion is gone when it comes back.
    cp.stop_apiserver().await;
    let mut etcd = cp.etcd().await?;
    etcd.delete("/registry/core/configmaps/default/vanish", None)
        .await?;
    let put = etcd
        .put(
            "/registry/core/configmaps/default/unrelated-marker",
            "{}",
            None,
        )
        .await?;
    etcd.delete("/registry/core/configmaps/default/unrelated-marker", None)
        .await?;
    let revision = put.header().map(|h| h.revision()).unwrap_or(0) + 1;
    cp.compact(revision).await?;
    cp.start_apiserver().await?;

    let relist = take(&mut events, 3).await;
    assert_eq!(relist, ["Init", "InitApply keep", "InitDone"]);
    assert!(
        store
            .get(&ObjectRef::new("vanish").within("default"))
            .is_none()
    );
    assert!(
        store
            .get(&ObjectRef::new("keep").within("default"))
            .is_some()
    );
    cms.create(&cm("new", "x")).await?;
    assert_eq!(take(&mut events, 1).await, ["Apply new"]);
    assert_eq!(store.len(), 2);
    Ok(())
}

#[tokio::test]
async fn a_store_is_ready_after_the_first_list() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await;
    let cms: Api<ConfigMap> = cp.client().namespaced("default");
    for i in 0..3 {
        cms.create(&cm(&format!("c{i}"), "x")).await?;
    }
    let (store, writer) = niwa_client::store::<ConfigMap>();
    let events = reflector(writer, watcher(cms.clone(), fast_config()));
    let drive = tokio::spawn(events.for_each(|_| async {}));
    tokio::time::timeout(Duration::from_secs(10), store.wait_until_ready()).await?;
    assert_eq!(store.len(), 3);
    drive.abort();
    Ok(())
}
