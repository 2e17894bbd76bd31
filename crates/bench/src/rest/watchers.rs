//! Watch fan-out (issue 3): `--watchers` gRPC watches of all pods while a writer patches pods at
//! `--watch-rate` per second; every watcher timestamps every event it receives against the send
//! time the writer put in the pod's annotation. Reports delivery latency p50/p99 and events/s
//! delivered (and how many events each watcher missed, which should be none).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use futures::StreamExt;
use niwa_api::proto::resources_client::ResourcesClient;
use niwa_api::proto::{PatchRequest, ResourceRef, WatchRequest};
use serde_json::json;
use tonic::transport::Channel;

/// The annotation carrying the writer's send time (µs since the epoch).
const SENT: &str = "bench.niwa.dev/sent-us";
/// Watch streams per HTTP/2 connection (below common concurrent-stream limits).
const STREAMS_PER_CONNECTION: usize = 100;

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The send time in an event's object, found without decoding the whole object (a thousand
/// watchers decoding every event would measure the benchmark, not the apiserver).
fn sent_of(object: &[u8]) -> Option<u64> {
    let key = format!("\"{SENT}\":\"");
    let at = memfind(object, key.as_bytes())? + key.len();
    let digits = object[at..].iter().take_while(|b| b.is_ascii_digit());
    let mut n: u64 = 0;
    for d in digits {
        n = n * 10 + u64::from(d - b'0');
    }
    Some(n)
}

fn memfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub struct WatchResult {
    pub watchers: usize,
    pub rate: f64,
    pub sent: usize,
    pub delivered: u64,
    pub events_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

fn pods_ref(namespace: &str, name: &str) -> ResourceRef {
    ResourceRef {
        group: String::new(),
        version: "v1".into(),
        resource: "pods".into(),
        namespace: namespace.into(),
        name: name.into(),
        subresource: String::new(),
    }
}

/// Runs the fan-out measurement against `api`, patching the pods `targets` (namespace, name).
pub async fn run(
    api: &str,
    targets: &[(String, String)],
    watchers: usize,
    rate: f64,
    seconds: f64,
) -> Result<WatchResult> {
    let mut channels = Vec::new();
    for _ in 0..watchers.div_ceil(STREAMS_PER_CONNECTION).max(1) {
        channels.push(
            Channel::from_shared(format!("http://{api}"))?
                .connect()
                .await
                .context("connecting a watch connection")?,
        );
    }
    let delivered = Arc::new(AtomicU64::new(0));
    let latencies: Arc<Mutex<Vec<u32>>> = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = tokio::task::JoinSet::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(watchers.max(1));
    for w in 0..watchers {
        let mut client = ResourcesClient::new(channels[w / STREAMS_PER_CONNECTION].clone())
            .max_decoding_message_size(usize::MAX);
        let delivered = delivered.clone();
        let latencies = latencies.clone();
        let ready = ready_tx.clone();
        tasks.spawn(async move {
            // From "now": no initial events, only the changes to come.
            let resource_version = current_rv(&mut client).await;
            let stream = client
                .watch(WatchRequest {
                    r#ref: Some(pods_ref("", "")),
                    resource_version,
                    ..Default::default()
                })
                .await;
            let _ = ready.send(()).await;
            let Ok(stream) = stream else { return };
            let mut stream = stream.into_inner();
            // Recorded as they arrive: the watches are aborted, not ended, when the run is over.
            while let Some(Ok(ev)) = stream.next().await {
                if let Some(sent) = sent_of(&ev.object) {
                    let lat = now_us().saturating_sub(sent);
                    if let Ok(mut all) = latencies.lock() {
                        all.push(u32::try_from(lat).unwrap_or(u32::MAX));
                    }
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    drop(ready_tx);
    for _ in 0..watchers {
        if ready_rx.recv().await.is_none() {
            break;
        }
    }
    // Let every watch register with the cache before the first write.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Patches go out on schedule, each on its own task, so that a slow apiserver shows up as
    // latency rather than as a lower offered rate.
    let writer = ResourcesClient::new(channels[0].clone());
    let total = (rate * seconds) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..total {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let (ns, name) = targets[i % targets.len()].clone();
        let mut writer = writer.clone();
        writes.spawn(async move {
            let patch = json!({"metadata": {"annotations": {SENT: now_us().to_string()}}});
            writer
                .patch(PatchRequest {
                    r#ref: Some(pods_ref(&ns, &name)),
                    patch_type: "application/merge-patch+json".into(),
                    patch: serde_json::to_vec(&patch)?,
                    ..Default::default()
                })
                .await
                .context("patching a pod")?;
            Ok::<(), anyhow::Error>(())
        });
    }
    let mut sent = 0;
    while let Some(done) = writes.join_next().await {
        done??;
        sent += 1;
    }
    // Give the last events time to arrive, then end the watches by dropping the connections.
    let expected = (sent * watchers) as u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    while delivered.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    drop(channels);

    let mut lat = latencies
        .lock()
        .map(|mut l| std::mem::take(&mut *l))
        .unwrap_or_default();
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        f64::from(lat[i]) / 1000.0
    };
    let got = delivered.load(Ordering::Relaxed);
    Ok(WatchResult {
        watchers,
        rate,
        sent,
        delivered: got,
        events_per_s: got as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: pct(1.0),
    })
}

/// The current resourceVersion of the pods list (a watch from it starts "now").
async fn current_rv(client: &mut ResourcesClient<Channel>) -> String {
    let resp = client
        .list(niwa_api::proto::ListRequest {
            r#ref: Some(pods_ref("", "")),
            limit: 1,
            ..Default::default()
        })
        .await;
    resp.ok()
        .and_then(|r| serde_json::from_slice::<serde_json::Value>(&r.into_inner().object).ok())
        .and_then(|v| v["metadata"]["resourceVersion"].as_str().map(String::from))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_send_time_without_decoding() {
        let obj = format!(r#"{{"metadata":{{"annotations":{{"{SENT}":"1234567"}}}}}}"#);
        assert_eq!(sent_of(obj.as_bytes()), Some(1_234_567));
        assert_eq!(sent_of(b"{}"), None);
    }
}
