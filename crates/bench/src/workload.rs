//! The workloads: closed-loop puts and gets, watch fan-out latency, memory growth.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use etcd_client::WatchOptions;
use etcd_client::proto::{
    PbPutRequest as PutRequest, PbPutResponse as PutResponse, PbRangeRequest as RangeRequest,
    PbRangeResponse as RangeResponse,
};
use tokio::task::JoinSet;

use crate::grpc::Grpc;
use crate::server::Server;
use crate::{KEYS, VALUE_BYTES, WATCHERS_PER_CLIENT, WORKERS_PER_CLIENT};

/// Latencies in microseconds plus the measured window.
#[derive(Debug, Default)]
pub(crate) struct Samples {
    pub(crate) micros: Vec<u64>,
    pub(crate) window: Duration,
}

impl Samples {
    pub(crate) fn sort(&mut self) {
        self.micros.sort_unstable();
    }

    /// Nearest-rank percentile in milliseconds (samples must be sorted).
    pub(crate) fn percentile_ms(&self, p: f64) -> f64 {
        if self.micros.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * self.micros.len() as f64).ceil() as usize;
        let idx = rank.clamp(1, self.micros.len()) - 1;
        self.micros[idx] as f64 / 1000.0
    }

    pub(crate) fn ops_per_sec(&self) -> f64 {
        self.micros.len() as f64 / self.window.as_secs_f64()
    }
}

pub(crate) fn key(i: usize) -> String {
    format!("/bench/kv/{i:04}")
}

pub(crate) fn value() -> Vec<u8> {
    vec![b'v'; VALUE_BYTES]
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Op {
    Put,
    GetLinearizable,
    GetSerializable,
}

/// Writes every one of the KEYS keys once, so gets always find a value.
pub(crate) async fn preload(server: &Server) -> Result<()> {
    let clients = server.clients(1).await?;
    let mut set = JoinSet::new();
    for w in 0..16 {
        let mut kv = clients[0].kv_client();
        set.spawn(async move {
            for i in (w..KEYS).step_by(16) {
                kv.put(key(i), value(), None).await?;
            }
            Ok::<_, etcd_client::Error>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(())
}

/// Closed loop: `concurrency` workers, each issuing its next request as soon as the previous one
/// is answered. Requests started during the warm-up are not recorded.
///
/// The workers run on one current-thread runtime per core, each runtime with its own share of the
/// connections (worker `w` uses connection `w % connections`, connection `i` lives on thread
/// `i % threads`), the way the servers under test serve them, and speak gRPC through [`Grpc`]. Why:
/// on one multi-thread runtime, the 16 workers sharing a connection were woken on either thread and
/// contended for h2's stream lock; with `etcd-client` on top, the client spent ~78 µs of CPU per put
/// at c=16, more than niwa-store's whole server side, so on a 2-core machine the put figures of both
/// servers measured the client as much as the servers (docs/BENCHMARKS.md, 2026-11-30).
pub(crate) async fn closed_loop(
    server: &Server,
    op: Op,
    concurrency: usize,
    warmup: Duration,
    window: Duration,
) -> Result<Samples> {
    let connections = concurrency.div_ceil(WORKERS_PER_CLIENT).max(1);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(connections);
    // Every thread connects first; the clock starts once all of them are connected.
    let ready = Arc::new(Barrier::new(threads));
    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        let endpoint = server.endpoint.clone();
        let ready = ready.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("bench-client-{t}"))
            .spawn(move || -> Result<Vec<u64>> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async move {
                    // This thread's connections: t, t + threads, t + 2·threads, ...
                    let mine = (t..connections).step_by(threads).count();
                    let mut clients = Vec::with_capacity(mine);
                    for _ in 0..mine {
                        match Grpc::connect(&endpoint).await {
                            Ok(conn) => clients.push(conn),
                            Err(err) => {
                                // Every thread passes the barrier once, failed or not.
                                ready.wait();
                                return Err(err);
                            }
                        }
                    }
                    ready.wait();
                    let start = Instant::now();
                    let (measure_from, end) = (start + warmup, start + warmup + window);
                    let mut set = JoinSet::new();
                    for w in (0..concurrency).filter(|w| (w % connections) % threads == t) {
                        let slot = (w % connections) / threads;
                        set.spawn(worker(clients[slot].clone(), op, w, measure_from, end));
                    }
                    let mut micros = Vec::new();
                    while let Some(r) = set.join_next().await {
                        micros.extend(r??);
                    }
                    Ok(micros)
                })
            })?;
        handles.push(spawned);
    }
    let micros = tokio::task::spawn_blocking(move || -> Result<Vec<u64>> {
        let mut all = Vec::new();
        for handle in handles {
            let part = handle
                .join()
                .map_err(|_| anyhow!("a bench client thread panicked"))??;
            all.extend(part);
        }
        Ok(all)
    })
    .await??;
    let mut samples = Samples { micros, window };
    samples.sort();
    Ok(samples)
}

/// One closed-loop worker: its latencies (µs) of the requests started in the measured window.
async fn worker(
    mut grpc: Grpc,
    op: Op,
    w: usize,
    measure_from: Instant,
    end: Instant,
) -> Result<Vec<u64>> {
    let mut lat = Vec::with_capacity(1 << 14);
    // A cheap per-worker key walk that covers all keys and differs between workers.
    let mut k = (w * 7919) % KEYS;
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        k = (k + 617) % KEYS;
        match op {
            Op::Put => {
                let put = PutRequest {
                    key: key(k).into_bytes(),
                    value: value(),
                    ..PutRequest::default()
                };
                let _: PutResponse = grpc.unary("/etcdserverpb.KV/Put", &put).await?;
            }
            Op::GetLinearizable | Op::GetSerializable => {
                let range = RangeRequest {
                    key: key(k).into_bytes(),
                    serializable: matches!(op, Op::GetSerializable),
                    ..RangeRequest::default()
                };
                let resp: RangeResponse = grpc.unary("/etcdserverpb.KV/Range", &range).await?;
                if resp.kvs.is_empty() {
                    bail!("Range of {} found nothing", key(k));
                }
            }
        }
        if t0 >= measure_from {
            lat.push(t0.elapsed().as_micros() as u64);
        }
    }
    Ok(lat)
}

/// Result of one watch fan-out run.
pub(crate) struct WatchResult {
    pub(crate) samples: Samples,
    pub(crate) expected: u64,
    pub(crate) received: u64,
}

/// Nanoseconds since `base`, stored in the first 8 bytes of each watched value (0 = warm-up put).
pub(crate) fn stamp(base: Instant, measured: bool) -> Vec<u8> {
    let mut v = vec![b'w'; VALUE_BYTES];
    let ns: u64 = if measured {
        base.elapsed().as_nanos() as u64
    } else {
        0
    };
    v[..8].copy_from_slice(&ns.to_le_bytes());
    v
}

pub(crate) async fn watch_fanout(
    server: &Server,
    watchers: usize,
    rate: u64,
    warmup: Duration,
    window: Duration,
) -> Result<WatchResult> {
    const PREFIX: &str = "/bench/watch/";
    let clients = server
        .clients(watchers.div_ceil(WATCHERS_PER_CLIENT))
        .await?;
    let base = Instant::now();

    // Create every watch and wait for its `created` response before any put.
    let mut created = JoinSet::new();
    for w in 0..watchers {
        let mut wc = clients[w % clients.len()].watch_client();
        created.spawn(async move {
            let mut stream = wc
                .watch(PREFIX, Some(WatchOptions::new().with_prefix()))
                .await?;
            match stream.message().await? {
                Some(r) if r.created() => Ok(stream),
                _ => Err(anyhow!("watch was not created")),
            }
        });
    }
    let mut streams = Vec::with_capacity(watchers);
    while let Some(r) = created.join_next().await {
        streams.push(r??);
    }

    let puts_total = (warmup + window).as_secs_f64() * rate as f64;
    let grace = Duration::from_secs(3);
    let stop_at = tokio::time::Instant::now() + warmup + window + grace;
    let mut set = JoinSet::new();
    for mut stream in streams {
        set.spawn(async move {
            let mut lat = Vec::new();
            let mut received = 0u64;
            while let Ok(msg) = tokio::time::timeout_at(stop_at, stream.message()).await {
                let Some(resp) = msg? else { break };
                let now = base.elapsed().as_nanos() as u64;
                for ev in resp.events() {
                    let Some(kv) = ev.kv() else { continue };
                    let Some(ts) = kv.value().get(..8) else {
                        continue;
                    };
                    let mut b = [0u8; 8];
                    b.copy_from_slice(ts);
                    let sent = u64::from_le_bytes(b);
                    if sent != 0 {
                        received += 1;
                        lat.push(now.saturating_sub(sent) / 1000);
                    }
                }
            }
            Ok::<_, anyhow::Error>((lat, received))
        });
    }

    // The single writer: open loop at a fixed rate, each put stamped just before it is sent and
    // not waiting for the previous ack, so both servers get exactly the same offered load even if
    // acks slow down under the fan-out.
    let kv = clients[0].kv_client();
    let mut puts = JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let measure_from = Instant::now() + warmup;
    let end = measure_from + window;
    let mut measured_puts = 0u64;
    for n in 0..(puts_total as usize) {
        tick.tick().await;
        let now = Instant::now();
        if now >= end {
            break;
        }
        let measured = now >= measure_from;
        measured_puts += u64::from(measured);
        let mut kv = kv.clone();
        let value = stamp(base, measured);
        puts.spawn(async move {
            kv.put(format!("{PREFIX}{:04}", n % KEYS), value, None)
                .await
        });
    }
    while let Some(r) = puts.join_next().await {
        r??;
    }

    let mut samples = Samples {
        micros: Vec::new(),
        window,
    };
    let mut received = 0;
    while let Some(r) = set.join_next().await {
        let (lat, got) = r??;
        samples.micros.extend(lat);
        received += got;
    }
    samples.sort();
    Ok(WatchResult {
        samples,
        expected: measured_puts * watchers as u64,
        received,
    })
}

/// RSS growth (KiB) of the server while loading `keys` fresh keys with 256-byte values.
pub(crate) async fn memory(server: &Server, keys: usize) -> Result<u64> {
    let clients = server.clients(4).await?;
    // Touch every connection once so their buffers are part of the "before" figure.
    for c in &clients {
        c.kv_client().get("warm", None).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.rss_kib()?;
    let mut set = JoinSet::new();
    let workers = 64;
    for w in 0..workers {
        let mut kv = clients[w % clients.len()].kv_client();
        set.spawn(async move {
            for i in (w..keys).step_by(workers) {
                kv.put(format!("/bench/mem/{i:08}"), value(), None).await?;
            }
            Ok::<_, etcd_client::Error>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = server.rss_kib()?;
    Ok(after.saturating_sub(before))
}
