//! The sync loop: watches Services and EndpointSlices, and after each burst of changes (at most
//! `min_sync_period` after the first one) recomputes the changed Services and applies the result
//! to the data plane. A change is thus live well within 100 ms.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use niwa_client::Client;
use niwa_client::runtime::watcher::{self, Event, watcher};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::cache::Cache;
use crate::metrics::Metrics;
use crate::plane::Plane;

/// How often failed binds are retried when nothing else changes.
const RETRY_PERIOD: Duration = Duration::from_secs(5);

/// Collects a re-list until `InitDone`.
struct Relist<K> {
    buffer: Option<Vec<K>>,
    done: bool,
}

impl<K> Relist<K> {
    fn new() -> Relist<K> {
        Relist {
            buffer: None,
            done: false,
        }
    }
}

enum Step<K> {
    Apply(K),
    Delete(K),
    Replace(Vec<K>),
    Nothing,
}

fn step<K>(relist: &mut Relist<K>, event: Event<K>) -> Step<K> {
    match event {
        Event::Init => {
            relist.buffer = Some(Vec::new());
            Step::Nothing
        }
        Event::InitApply(k) => {
            relist.buffer.get_or_insert_with(Vec::new).push(k);
            Step::Nothing
        }
        Event::InitDone => {
            relist.done = true;
            Step::Replace(relist.buffer.take().unwrap_or_default())
        }
        Event::Apply(k) => Step::Apply(k),
        Event::Delete(k) => Step::Delete(k),
    }
}

/// Runs until `shutdown`. `synced` turns true after the first full sync (readiness).
pub async fn run(
    client: Client,
    mut cache: Cache,
    mut plane: Plane,
    metrics: Metrics,
    min_sync_period: Duration,
    synced: Arc<AtomicBool>,
    shutdown: CancellationToken,
) {
    let config = watcher::Config::default();
    let services = watcher(client.all::<Service>(), config.clone());
    let slices = watcher(client.all::<EndpointSlice>(), config);
    tokio::pin!(services);
    tokio::pin!(slices);
    let mut service_list = Relist::new();
    let mut slice_list = Relist::new();
    // When the oldest change not yet applied arrived.
    let mut pending: Option<Instant> = None;
    let mut retry = tokio::time::interval(RETRY_PERIOD);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let ready = service_list.done && slice_list.done;
        let deadline = pending
            .filter(|_| ready)
            .map(|t| tokio::time::Instant::from_std(t + min_sync_period));
        tokio::select! {
            _ = shutdown.cancelled() => break,
            event = services.next() => match event {
                Some(Ok(event)) => {
                    metrics.service_changes.inc();
                    match step(&mut service_list, event) {
                        Step::Apply(s) => cache.apply_service(s),
                        Step::Delete(s) => cache.delete_service(&s),
                        Step::Replace(all) => cache.replace_services(all),
                        Step::Nothing => continue,
                    }
                    pending.get_or_insert_with(Instant::now);
                }
                Some(Err(e)) => warn!(error = %e, "watching Services"),
                None => break,
            },
            event = slices.next() => match event {
                Some(Ok(event)) => {
                    metrics.endpoint_changes.inc();
                    match step(&mut slice_list, event) {
                        Step::Apply(s) => cache.apply_slice(s),
                        Step::Delete(s) => cache.delete_slice(&s),
                        Step::Replace(all) => cache.replace_slices(all),
                        Step::Nothing => continue,
                    }
                    pending.get_or_insert_with(Instant::now);
                }
                Some(Err(e)) => warn!(error = %e, "watching EndpointSlices"),
                None => break,
            },
            _ = sleep_until(deadline), if deadline.is_some() => {
                let since = pending.take();
                sync(&mut cache, &mut plane, &metrics, since).await;
                if !synced.swap(true, Ordering::Relaxed) {
                    info!(services = cache.services(), serving = plane.serving(), mode = plane.name(), "initial sync done");
                }
            }
            _ = retry.tick() => {
                if ready && plane.has_failures() {
                    sync(&mut cache, &mut plane, &metrics, None).await;
                }
            }
        }
    }
    plane.close().await;
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn sync(
    cache: &mut Cache,
    plane: &mut Plane,
    metrics: &Metrics,
    changed_at: Option<Instant>,
) {
    let start = Instant::now();
    let (desired, problems) = cache.desired();
    for problem in problems {
        warn!("{problem}");
    }
    for conflict in &desired.conflicts {
        warn!(listener = %conflict.key, kept = %conflict.kept, dropped = %conflict.dropped,
              "two Services claim one address; the first keeps it");
    }
    let report = plane.apply(&desired.listeners).await;
    for failure in &report.failures {
        warn!("{failure}");
    }
    let took = start.elapsed();
    metrics.sync_duration.observe(took.as_secs_f64());
    if let Some(changed_at) = changed_at {
        metrics
            .network_programming
            .observe(changed_at.elapsed().as_secs_f64());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    metrics.last_sync.set(now);
    debug!(
        changed = report.changed,
        took_ms = took.as_secs_f64() * 1000.0,
        "synced"
    );
}
