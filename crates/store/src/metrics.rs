//! Prometheus metrics of the store, named after etcd's where one exists.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, &'static str)>;

fn request_histogram() -> Histogram {
    // 50 µs .. ~1.6 s
    Histogram::new(exponential_buckets(0.00005, 2.0, 16))
}

/// The figures the sync thread records: how many writes share one `fdatasync` and what the disk
/// charges for it (the two numbers that set put throughput), and how often its fan-out to watchers
/// found a stream too far behind to queue for.
#[derive(Clone, Debug)]
pub struct CommitMetrics {
    /// One observation per `fdatasync` of the WAL (etcd's `etcd_disk_wal_fsync_duration_seconds`).
    pub fsync: Histogram,
    /// Write requests answered by one group commit (one `fdatasync`, unless none of them changed
    /// anything, e.g. all failed their checks).
    pub group_writes: Histogram,
    /// Times a watch stream's queue was full when a commit was published to it, so that the stream
    /// went on to catch up from history instead (a slow watcher; see `watch/hub.rs`).
    pub watch_overflows: Counter,
}

impl Default for CommitMetrics {
    fn default() -> Self {
        CommitMetrics {
            // 50 µs .. ~1.6 s
            fsync: Histogram::new(exponential_buckets(0.00005, 2.0, 16)),
            // 1 .. 4096 writes
            group_writes: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            watch_overflows: Counter::default(),
        }
    }
}

/// The methods whose histograms are looked up once, not per request (the write and read hot path).
const HOT_METHODS: [&str; 4] = ["Put", "Range", "Txn", "DeleteRange"];

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<Labels, Histogram, fn() -> Histogram>,
    /// The histograms of [`HOT_METHODS`], in that order.
    hot: Arc<[Histogram; 4]>,
    pub watch_streams: Gauge,
    pub revision: Gauge<i64, std::sync::atomic::AtomicI64>,
    pub db_bytes: Gauge<u64, AtomicU64>,
    pub keys: Gauge,
    /// Handed to the engine ([`crate::engine::EngineConfig`]), which records into it.
    pub commit: CommitMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests: Family<Labels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(request_histogram);
        registry.register(
            "etcd_grpc_request_duration_seconds",
            "Latency of handled gRPC requests by method",
            requests.clone(),
        );
        let watch_streams = Gauge::default();
        registry.register(
            "etcd_debugging_mvcc_watch_stream_total",
            "Open watch streams",
            watch_streams.clone(),
        );
        let revision = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
        registry.register(
            "etcd_debugging_mvcc_current_revision",
            "Committed revision of the store",
            revision.clone(),
        );
        let db_bytes = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "etcd_mvcc_db_total_size_in_bytes",
            "Bytes of snapshot and WAL on disk",
            db_bytes.clone(),
        );
        let keys = Gauge::default();
        registry.register("etcd_debugging_mvcc_keys_total", "Live keys", keys.clone());
        let commit = CommitMetrics::default();
        registry.register(
            "etcd_disk_wal_fsync_duration_seconds",
            "Latency of the WAL's fdatasync calls",
            commit.fsync.clone(),
        );
        registry.register(
            "niwa_store_commit_group_writes",
            "Write requests answered by one group commit (one fdatasync unless none changed the store)",
            commit.group_writes.clone(),
        );
        registry.register(
            "niwa_store_watch_stream_overflows",
            "Times a watch stream fell too far behind for its queue and switched to catching up from history",
            commit.watch_overflows.clone(),
        );
        let hot = Arc::new(
            HOT_METHODS.map(|m| requests.get_or_create(&vec![("grpc_method", m)]).clone()),
        );
        Metrics {
            registry: Arc::new(registry),
            requests,
            hot,
            watch_streams,
            revision,
            db_bytes,
            keys,
            commit,
        }
    }

    pub fn observe(&self, method: &'static str, started: Instant) {
        let seconds = started.elapsed().as_secs_f64();
        match HOT_METHODS.iter().position(|m| *m == method) {
            Some(i) => self.hot[i].observe(seconds),
            None => self
                .requests
                .get_or_create(&vec![("grpc_method", method)])
                .observe(seconds),
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
