//! Forwarding of non-cluster names to upstream resolvers, through a response cache with negative
//! caching (CoreDNS's `forward` and `cache` plugins).
//!
//! * [`upstream`] asks one upstream (UDP, TCP on truncation, EDNS0).
//! * [`cache`] is the IO-free cache.
//! * [`resolv_conf`] reads the host's resolvers, the default upstreams.

pub mod cache;
pub mod resolv_conf;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::LowerName;
use parking_lot::Mutex;

pub use cache::{Cache, CacheConfig, Response};
pub use upstream::{Question, UpstreamError};

use crate::metrics::Metrics;

#[derive(Clone, Debug)]
pub struct ForwardConfig {
    /// Tried in turn, starting with a different one for each question (load spreading), moving
    /// on when one fails to answer.
    pub upstreams: Vec<SocketAddr>,
    /// Time allowed to each upstream for one question.
    pub timeout: Duration,
    pub cache: CacheConfig,
}

impl ForwardConfig {
    pub fn new(upstreams: Vec<SocketAddr>) -> Self {
        Self {
            upstreams,
            timeout: Duration::from_secs(2),
            cache: CacheConfig::default(),
        }
    }
}

#[derive(Debug)]
pub struct Forwarder {
    upstreams: Vec<(SocketAddr, &'static str)>,
    timeout: Duration,
    cache: Mutex<Cache>,
    next: AtomicUsize,
    metrics: Metrics,
}

impl Forwarder {
    pub fn new(config: ForwardConfig, metrics: Metrics) -> Self {
        // Metric label values must be 'static; the upstream list is fixed for the process's
        // lifetime, so leaking its few short strings once is the simplest way there.
        let upstreams = config
            .upstreams
            .iter()
            .map(|u| (*u, &*Box::leak(u.to_string().into_boxed_str())))
            .collect();
        Self {
            upstreams,
            timeout: config.timeout,
            cache: Mutex::new(Cache::new(config.cache)),
            next: AtomicUsize::new(0),
            metrics,
        }
    }

    pub fn upstreams(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.upstreams.iter().map(|(u, _)| *u)
    }

    /// Refreshes the cache-size gauges (O(entries): called when metrics are scraped).
    pub fn update_metrics(&self) {
        let (success, denial) = self.cache.lock().counts();
        self.metrics.set_cache_entries(success, denial);
    }

    /// The answer to `question`, from the cache or an upstream; SERVFAIL when no upstream
    /// answers (not cached, so that the next question tries again).
    pub async fn resolve(&self, question: Question) -> Response {
        let key = cache::Key {
            name: LowerName::new(&question.name),
            qtype: question.qtype,
            class: question.class,
            dnssec_ok: question.dnssec_ok,
        };
        if let Some((hit, kind)) = self.cache.lock().get(&key, Instant::now()) {
            self.metrics.cache_hit(kind.as_str());
            return hit;
        }
        self.metrics.cache_miss();

        let n = self.upstreams.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            let (upstream, label) = self.upstreams[(start + i) % n];
            let began = Instant::now();
            match upstream::exchange(upstream, &question, self.timeout).await {
                Ok(reply) => {
                    let rcode = reply.metadata.response_code;
                    self.metrics.forward(label, Some(rcode), began.elapsed());
                    let response = Response {
                        rcode,
                        answers: reply.answers,
                        authorities: reply.authorities,
                        additionals: reply.additionals,
                    };
                    self.cache.lock().insert(key, &response, Instant::now());
                    return response;
                }
                Err(error) => {
                    self.metrics.forward(label, None, began.elapsed());
                    tracing::warn!(%error, name = %question.name, "upstream failed");
                }
            }
        }
        Response {
            rcode: ResponseCode::ServFail,
            ..Default::default()
        }
    }
}
