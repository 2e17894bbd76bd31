//! Prometheus metrics, named as CoreDNS names them (so that existing cluster-DNS dashboards and
//! alerts work unchanged): `coredns_dns_requests_total`, `coredns_dns_responses_total`,
//! `coredns_dns_request_duration_seconds`, `coredns_cache_*`, `coredns_forward_*`.
//!
//! Label values come from small fixed sets (query types outside CoreDNS's list count as `other`),
//! so a client sending random types cannot grow the metric families.

use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Fixed-size label sets: looking a series up on the hot path allocates nothing.
type Labels<const N: usize> = [(&'static str, &'static str); N];
type Histograms<const N: usize> = Family<Labels<N>, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 25 µs .. ~3.3 s
    Histogram::new(exponential_buckets(0.000_025, 2.0, 18))
}

/// The query type as CoreDNS labels it.
pub fn type_label(qtype: RecordType) -> &'static str {
    match qtype {
        RecordType::A => "A",
        RecordType::AAAA => "AAAA",
        RecordType::ANY => "ANY",
        RecordType::CNAME => "CNAME",
        RecordType::HTTPS => "HTTPS",
        RecordType::MX => "MX",
        RecordType::NS => "NS",
        RecordType::PTR => "PTR",
        RecordType::SOA => "SOA",
        RecordType::SRV => "SRV",
        RecordType::SVCB => "SVCB",
        RecordType::TXT => "TXT",
        RecordType::AXFR => "AXFR",
        RecordType::IXFR => "IXFR",
        _ => "other",
    }
}

/// The response code as dig and CoreDNS spell it.
pub fn rcode_label(rcode: ResponseCode) -> &'static str {
    match rcode {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::BADVERS => "BADVERS",
        _ => "other",
    }
}

/// The request, response and duration series of one (protocol, family, type, rcode).
#[derive(Clone)]
pub struct RequestSeries {
    requests: Counter,
    responses: Counter,
    duration: Histogram,
}

impl RequestSeries {
    pub fn record(&self, took: Duration) {
        self.requests.inc();
        self.responses.inc();
        self.duration.observe(took.as_secs_f64());
    }
}

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<Labels<3>, Counter>,
    responses: Family<Labels<1>, Counter>,
    durations: Histograms<1>,
    cache_hits: Family<Labels<1>, Counter>,
    cache_misses: Counter,
    cache_entries: Family<Labels<1>, Gauge>,
    forward_requests: Family<Labels<1>, Counter>,
    forward_responses: Family<Labels<2>, Counter>,
    forward_durations: Histograms<2>,
    zone_records: Gauge,
    zone_services: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<Labels<3>, Counter>::default();
        registry.register(
            "coredns_dns_requests",
            "Counter of DNS requests made per protocol, family and type",
            requests.clone(),
        );
        let responses = Family::<Labels<1>, Counter>::default();
        registry.register(
            "coredns_dns_responses",
            "Counter of response status codes",
            responses.clone(),
        );
        let durations: Histograms<1> = Family::new_with_constructor(latency_histogram);
        registry.register(
            "coredns_dns_request_duration_seconds",
            "Histogram of the time (in seconds) each request took per type",
            durations.clone(),
        );
        let cache_hits = Family::<Labels<1>, Counter>::default();
        registry.register(
            "coredns_cache_hits",
            "The count of cache hits",
            cache_hits.clone(),
        );
        let cache_misses = Counter::default();
        registry.register(
            "coredns_cache_misses",
            "The count of cache misses",
            cache_misses.clone(),
        );
        let cache_entries = Family::<Labels<1>, Gauge>::default();
        registry.register(
            "coredns_cache_entries",
            "The number of elements in the cache",
            cache_entries.clone(),
        );
        let forward_requests = Family::<Labels<1>, Counter>::default();
        registry.register(
            "coredns_forward_requests",
            "Counter of requests made per upstream",
            forward_requests.clone(),
        );
        let forward_responses = Family::<Labels<2>, Counter>::default();
        registry.register(
            "coredns_forward_responses",
            "Counter of responses received per upstream",
            forward_responses.clone(),
        );
        let forward_durations: Histograms<2> = Family::new_with_constructor(latency_histogram);
        registry.register(
            "coredns_forward_request_duration_seconds",
            "Histogram of the time each request to an upstream took",
            forward_durations.clone(),
        );
        let zone_records = Gauge::default();
        registry.register(
            "niwa_dns_zone_records",
            "Distinct records in the cluster zone",
            zone_records.clone(),
        );
        let zone_services = Gauge::default();
        registry.register(
            "niwa_dns_zone_services",
            "Services known to the cluster zone",
            zone_services.clone(),
        );
        Self {
            registry: Arc::new(registry),
            requests,
            responses,
            durations,
            cache_hits,
            cache_misses,
            cache_entries,
            forward_requests,
            forward_responses,
            forward_durations,
            zone_records,
            zone_services,
        }
    }

    /// One answered request.
    pub fn request(
        &self,
        proto: &'static str,
        ipv6: bool,
        qtype: &'static str,
        rcode: ResponseCode,
        took: Duration,
    ) {
        self.series(proto, ipv6, qtype, rcode).record(took);
    }

    /// The series one kind of request counts in, looked up once (the UDP answer cache keeps them
    /// with each answer, so that a cached answer costs no label lookups).
    pub fn series(
        &self,
        proto: &'static str,
        ipv6: bool,
        qtype: &'static str,
        rcode: ResponseCode,
    ) -> RequestSeries {
        let family = if ipv6 { "2" } else { "1" };
        RequestSeries {
            requests: self
                .requests
                .get_or_create(&[("proto", proto), ("family", family), ("type", qtype)])
                .clone(),
            responses: self
                .responses
                .get_or_create(&[("rcode", rcode_label(rcode))])
                .clone(),
            duration: self.durations.get_or_create(&[("type", qtype)]).clone(),
        }
    }

    pub fn cache_hit(&self, kind: &'static str) {
        self.cache_hits.get_or_create(&[("type", kind)]).inc();
    }

    pub fn cache_miss(&self) {
        self.cache_misses.inc();
    }

    pub fn set_cache_entries(&self, success: usize, denial: usize) {
        let set = |kind, n: usize| {
            self.cache_entries
                .get_or_create(&[("type", kind)])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        };
        set("success", success);
        set("denial", denial);
    }

    /// One exchange with an upstream; `rcode` is `None` when it failed (timeout, IO).
    pub fn forward(&self, to: &'static str, rcode: Option<ResponseCode>, took: Duration) {
        self.forward_requests.get_or_create(&[("to", to)]).inc();
        let rcode = rcode.map_or("error", rcode_label);
        self.forward_responses
            .get_or_create(&[("to", to), ("rcode", rcode)])
            .inc();
        self.forward_durations
            .get_or_create(&[("to", to), ("rcode", rcode)])
            .observe(took.as_secs_f64());
    }

    pub fn set_zone(&self, records: usize, services: usize) {
        self.zone_records
            .set(i64::try_from(records).unwrap_or(i64::MAX));
        self.zone_services
            .set(i64::try_from(services).unwrap_or(i64::MAX));
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
