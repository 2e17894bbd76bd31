//! The Controller against a real store + apiserver: a "copy" controller that keeps, for every
//! ConfigMap labelled `role=source`, a child ConfigMap `<name>-copy` with the same data.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use niwa_client::k8s::api::coordination::v1::Lease;
use niwa_client::k8s::api::core::v1::ConfigMap;
use niwa_client::k8s::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use niwa_client::runtime::watcher;
use niwa_client::{Action, Api, Controller, ObjectRef, Patch, ResourceExt};
use niwa_testkit::ControlPlane;
use parking_lot::Mutex;
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Stats {
    reconciles: HashMap<String, usize>,
    in_flight: HashSet<String>,
    overlaps: usize,
    max_parallel: usize,
}

struct Ctx {
    cms: Api<ConfigMap>,
    stats: Mutex<Stats>,
    /// Names whose reconcile fails this many more times.
    failures: Mutex<HashMap<String, usize>>,
}

#[derive(Debug, thiserror::Error)]
enum CopyError {
    #[error(transparent)]
    Api(#[from] niwa_client::Error),
    #[error("injected failure")]
    Injected,
}

fn source(name: &str, value: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some([("role".to_string(), "source".to_string())].into()),
            ..Default::default()
        },
        data: Some([("v".to_string(), value.to_string())].into()),
        ..Default::default()
    }
}

async fn reconcile(src: Arc<ConfigMap>, ctx: Arc<Ctx>) -> Result<Action, CopyError> {
    let name = src.name_any();
    {
        let mut stats = ctx.stats.lock();
        *stats.reconciles.entry(name.clone()).or_default() += 1;
        if !stats.in_flight.insert(name.clone()) {
            stats.overlaps += 1;
        }
        stats.max_parallel = stats.max_parallel.max(stats.in_flight.len());
    }
    // Hold the key a little, so that concurrent triggers would overlap if the queue let them.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let result = copy(&src, &ctx).await;
    ctx.stats.lock().in_flight.remove(&name);
    result
}

async fn copy(src: &ConfigMap, ctx: &Ctx) -> Result<Action, CopyError> {
    let name = src.name_any();
    if let Some(left) = ctx.failures.lock().get_mut(&name)
        && *left > 0
    {
        *left -= 1;
        return Err(CopyError::Injected);
    }
    let child_name = format!("{name}-copy");
    let want = src.data.clone().unwrap_or_default();
    match ctx.cms.get_opt(&child_name).await? {
        None => {
            let child = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(child_name),
                    labels: Some([("role".to_string(), "copy".to_string())].into()),
                    owner_references: Some(vec![src.controller_owner_ref()]),
                    ..Default::default()
                },
                data: Some(want),
                ..Default::default()
            };
            ctx.cms.create(&child).await?;
        }
        Some(mut child) if child.data.clone().unwrap_or_default() != want => {
            child.data = Some(want);
            ctx.cms.replace(&child).await?;
        }
        Some(_) => {}
    }
    Ok(Action::await_change())
}

fn error_policy(_src: Arc<ConfigMap>, _err: &CopyError, _ctx: Arc<Ctx>) -> Action {
    Action::requeue_with_backoff()
}

async fn eventually<F: FnMut() -> bool>(what: &str, mut check: F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn child_data(cms: &Api<ConfigMap>, name: &str) -> Option<BTreeMap<String, String>> {
    cms.get_opt(name).await.ok().flatten().and_then(|c| c.data)
}

async fn wait_child(cms: &Api<ConfigMap>, name: &str, value: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let data = child_data(cms, name).await;
        if data.as_ref().and_then(|d| d.get("v")).map(String::as_str) == Some(value) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} never got v={value}: {data:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Running {
    ctx: Arc<Ctx>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn start(cp: &ControlPlane, failures: &[(&str, usize)]) -> Running {
    let client = cp.client();
    let cms: Api<ConfigMap> = client.namespaced("default");
    let ctx = Arc::new(Ctx {
        cms: cms.clone(),
        stats: Mutex::new(Stats::default()),
        failures: Mutex::new(failures.iter().map(|(n, c)| (n.to_string(), *c)).collect()),
    });
    let shutdown = CancellationToken::new();
    let controller = Controller::new(
        cms.clone(),
        watcher::Config::default().labels("role=source"),
    )
    .owns(cms.clone(), watcher::Config::default().labels("role=copy"))
    // A Lease named like a source pokes it (an arbitrary dependency).
    .watches(
        client.namespaced::<Lease>("default"),
        watcher::Config::default(),
        |lease: &Lease| vec![ObjectRef::new(&lease.name_any()).within("default")],
    );
    assert!(controller.store_for::<Lease>().is_some());
    assert!(controller.store_for::<ConfigMap>().is_some());
    let task =
        tokio::spawn(controller.run(reconcile, error_policy, ctx.clone(), 4, shutdown.clone()));
    Running {
        ctx,
        shutdown,
        task,
    }
}

#[tokio::test]
async fn converges_and_repairs_children() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await;
    let cms: Api<ConfigMap> = cp.client().namespaced("default");
    cms.create(&source("a", "1")).await?;
    let running = start(&cp, &[]);
    wait_child(&cms, "a-copy", "1").await;
    let child = cms.get("a-copy").await?;
    assert_eq!(child.controller_owner().map(|o| o.name.as_str()), Some("a"));

    // New sources are picked up; source changes propagate.
    cms.create(&source("b", "1")).await?;
    wait_child(&cms, "b-copy", "1").await;
    cms.patch("a", &Patch::Merge(json!({"data": {"v": "2"}})))
        .await?;
    wait_child(&cms, "a-copy", "2").await;

    // A child changed behind the controller's back is repaired (owns → owner requeued).
    cms.patch("a-copy", &Patch::Merge(json!({"data": {"v": "tampered"}})))
        .await?;
    wait_child(&cms, "a-copy", "2").await;

    // A watched Lease named "b" triggers a reconcile of b.
    let before = running
        .ctx
        .stats
        .lock()
        .reconciles
        .get("b")
        .copied()
        .unwrap_or(0);
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some("b".into()),
            ..Default::default()
        },
        spec: None,
    };
    cp.client()
        .namespaced::<Lease>("default")
        .create(&lease)
        .await?;
    let ctx = running.ctx.clone();
    eventually("a reconcile of b after its lease changed", || {
        ctx.stats.lock().reconciles.get("b").copied().unwrap_or(0) > before
    })
    .await;

    running.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), running.task).await??;
    assert_eq!(running.ctx.stats.lock().overlaps, 0);
    Ok(())
}

#[tokio::test]
async fn never_reconciles_one_object_twice_at_once() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await;
    let cms: Api<ConfigMap> = cp.client().namespaced("default");
    for i in 0..6 {
        cms.create(&source(&format!("s{i}"), "0")).await?;
    }
    let running = start(&cp, &[]);
    for i in 0..6 {
        wait_child(&cms, &format!("s{i}-copy"), "0").await;
    }
    // Hammer the same objects with updates while they are being reconciled.
    for round in 1..=5 {
        for i in 0..6 {
            cms.patch(
                &format!("s{i}"),
                &Patch::Merge(json!({"data": {"v": round.to_string()}})),
            )
            .await?;
        }
    }
    for i in 0..6 {
        wait_child(&cms, &format!("s{i}-copy"), "5").await;
    }
    running.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), running.task).await??;
    let stats = running.ctx.stats.lock();
    assert_eq!(stats.overlaps, 0, "a key was reconciled concurrently");
    assert!(stats.max_parallel > 1, "different keys ran in parallel");
    Ok(())
}

#[tokio::test]
async fn failures_are_retried_with_backoff() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await;
    let cms: Api<ConfigMap> = cp.client().namespaced("default");
    cms.create(&source("flaky", "1")).await?;
    let running = start(&cp, &[("flaky", 3)]);
    wait_child(&cms, "flaky-copy", "1").await;
    let attempts = running.ctx.stats.lock().reconciles.get("flaky").copied();
    // Three failures, then the success that created the child (the child's creation may
    // trigger one more, no-op, reconcile).
    assert!(attempts.is_some_and(|n| n >= 4), "{attempts:?}");
    assert_eq!(running.ctx.failures.lock().get("flaky"), Some(&0));
    running.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), running.task).await??;
    Ok(())
}

#[tokio::test]
async fn requeue_after_reconciles_again_without_changes() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let cms: Api<ConfigMap> = client.namespaced("default");
    cms.create(&source("tick", "1")).await?;
    let count = Arc::new(Mutex::new(0usize));
    let shutdown = CancellationToken::new();
    let controller = Controller::new(cms.clone(), watcher::Config::default());
    let store = controller.store();
    let task = tokio::spawn(controller.run(
        |_cm: Arc<ConfigMap>, count: Arc<Mutex<usize>>| async move {
            *count.lock() += 1;
            Ok::<_, niwa_client::Error>(Action::requeue(Duration::from_millis(100)))
        },
        |_cm, _err, _ctx| Action::await_change(),
        count.clone(),
        1,
        shutdown.clone(),
    ));
    let seen = count.clone();
    eventually("five periodic reconciles", || *seen.lock() >= 5).await;
    assert_eq!(store.len(), 1);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task).await??;
    Ok(())
}
