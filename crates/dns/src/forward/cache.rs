//! The response cache of forwarded questions, with negative caching (RFC 2308), as CoreDNS's
//! `cache` plugin keeps it: bounded, TTLs counted down on every hit, entries evicted when full.
//!
//! IO-free: callers pass `now`, so expiry is tested without sleeping.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, LowerName, RData, Record, RecordType};

/// A forwarded answer, as it is cached and replayed.
#[derive(Clone, Debug, Default)]
pub struct Response {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub name: LowerName,
    pub qtype: RecordType,
    pub class: DNSClass,
    /// DNSSEC records are only in answers to queries with the DO bit: cache those apart.
    pub dnssec_ok: bool,
}

/// Whether an entry answered the question or denied it (metric label values, as CoreDNS's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Success,
    Denial,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Success => "success",
            Kind::Denial => "denial",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct CacheConfig {
    /// Most entries kept (CoreDNS: 9984 per kind).
    pub capacity: usize,
    /// Longest time a positive answer is kept (CoreDNS: 3600 s).
    pub max_success_ttl: u32,
    /// Longest time a negative answer is kept (CoreDNS: 1800 s).
    pub max_denial_ttl: u32,
    /// How long an upstream SERVFAIL is kept (CoreDNS: 5 s).
    pub servfail_ttl: u32,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            max_success_ttl: 3600,
            max_denial_ttl: 1800,
            servfail_ttl: 5,
        }
    }
}

#[derive(Debug)]
struct Entry {
    response: Arc<Response>,
    stored: Instant,
    expires: Instant,
    kind: Kind,
}

#[derive(Debug)]
pub struct Cache {
    config: CacheConfig,
    entries: HashMap<Key, Entry>,
    last_sweep: Option<Instant>,
}

/// How long a response may be cached, and as what; `None` if it must not be.
pub fn cacheable(config: &CacheConfig, response: &Response) -> Option<(Duration, Kind)> {
    let (ttl, kind) = match response.rcode {
        ResponseCode::NoError if !response.answers.is_empty() => {
            let ttl = response
                .answers
                .iter()
                .chain(&response.authorities)
                .map(|r| r.ttl)
                .min()?;
            (ttl.min(config.max_success_ttl), Kind::Success)
        }
        ResponseCode::NoError | ResponseCode::NXDomain => {
            // RFC 2308 §5: the negative TTL is the SOA's TTL capped by its MINIMUM field.
            let soa_ttl = response.authorities.iter().find_map(|r| match &r.data {
                RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                _ => None,
            })?;
            (soa_ttl.min(config.max_denial_ttl), Kind::Denial)
        }
        ResponseCode::ServFail => (config.servfail_ttl, Kind::Denial),
        _ => return None,
    };
    (ttl > 0).then(|| (Duration::from_secs(u64::from(ttl)), kind))
}

impl Cache {
    pub fn new(config: CacheConfig) -> Self {
        Self {
            config,
            entries: HashMap::new(),
            last_sweep: None,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries by kind: (success, denial).
    pub fn counts(&self) -> (usize, usize) {
        let denial = self
            .entries
            .values()
            .filter(|e| e.kind == Kind::Denial)
            .count();
        (self.entries.len() - denial, denial)
    }

    /// The cached response with every TTL lowered by the time it has spent in the cache.
    pub fn get(&self, key: &Key, now: Instant) -> Option<(Response, Kind)> {
        let entry = self.entries.get(key)?;
        if now >= entry.expires {
            return None;
        }
        let age = u32::try_from(now.duration_since(entry.stored).as_secs()).unwrap_or(u32::MAX);
        let age_records = |records: &[Record]| {
            records
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    r.ttl = r.ttl.saturating_sub(age);
                    r
                })
                .collect()
        };
        let cached = &entry.response;
        Some((
            Response {
                rcode: cached.rcode,
                answers: age_records(&cached.answers),
                authorities: age_records(&cached.authorities),
                additionals: age_records(&cached.additionals),
            },
            entry.kind,
        ))
    }

    /// Stores `response` if it may be cached; returns whether it was.
    pub fn insert(&mut self, key: Key, response: &Response, now: Instant) -> bool {
        let Some((ttl, kind)) = cacheable(&self.config, response) else {
            return false;
        };
        if self.entries.len() >= self.config.capacity && !self.entries.contains_key(&key) {
            self.make_room(now);
        }
        self.entries.insert(
            key,
            Entry {
                response: Arc::new(response.clone()),
                stored: now,
                expires: now + ttl,
                kind,
            },
        );
        true
    }

    /// Drops expired entries (at most once a second: a sweep is O(entries)), then, if the cache
    /// is still full, an arbitrary entry (CoreDNS evicts a random one too).
    fn make_room(&mut self, now: Instant) {
        let due = self
            .last_sweep
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1));
        if due {
            self.entries.retain(|_, e| e.expires > now);
            self.last_sweep = Some(now);
        }
        if self.entries.len() >= self.config.capacity
            && let Some(victim) = self.entries.keys().next().cloned()
        {
            self.entries.remove(&victim);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::Name;
    use hickory_proto::rr::rdata::{A, SOA};

    fn key(name: &str) -> Key {
        Key {
            name: LowerName::new(&Name::from_ascii(name).expect("name")),
            qtype: RecordType::A,
            class: DNSClass::IN,
            dnssec_ok: false,
        }
    }

    fn a(ttl: u32) -> Record {
        Record::from_rdata(
            Name::from_ascii("www.example.test.").expect("name"),
            ttl,
            RData::A(A::new(127, 0, 0, 7)),
        )
    }

    fn soa(ttl: u32, minimum: u32) -> Record {
        let n = Name::from_ascii("example.test.").expect("name");
        Record::from_rdata(
            n.clone(),
            ttl,
            RData::SOA(SOA::new(n.clone(), n, 1, 60, 60, 60, minimum)),
        )
    }

    #[test]
    fn positive_answers_count_down_and_expire() {
        let mut cache = Cache::new(CacheConfig::default());
        let t0 = Instant::now();
        let response = Response {
            answers: vec![a(30)],
            ..Default::default()
        };
        assert!(cache.insert(key("www.example.test."), &response, t0));
        let (hit, kind) = cache
            .get(&key("WWW.example.test."), t0 + Duration::from_secs(10))
            .expect("hit");
        assert_eq!(kind, Kind::Success);
        assert_eq!(hit.answers[0].ttl, 20);
        assert!(
            cache
                .get(&key("www.example.test."), t0 + Duration::from_secs(30))
                .is_none()
        );
    }

    #[test]
    fn negative_answers_use_the_soa_minimum() {
        let config = CacheConfig::default();
        let nx = Response {
            rcode: ResponseCode::NXDomain,
            authorities: vec![soa(300, 15)],
            ..Default::default()
        };
        assert_eq!(
            cacheable(&config, &nx),
            Some((Duration::from_secs(15), Kind::Denial))
        );
        let nodata = Response {
            authorities: vec![soa(10, 600)],
            ..Default::default()
        };
        assert_eq!(
            cacheable(&config, &nodata),
            Some((Duration::from_secs(10), Kind::Denial))
        );
        // Without an SOA a negative answer is not cached (RFC 2308 §5).
        let bare = Response {
            rcode: ResponseCode::NXDomain,
            ..Default::default()
        };
        assert_eq!(cacheable(&config, &bare), None);
        let refused = Response {
            rcode: ResponseCode::Refused,
            ..Default::default()
        };
        assert_eq!(cacheable(&config, &refused), None);
        let servfail = Response {
            rcode: ResponseCode::ServFail,
            ..Default::default()
        };
        assert_eq!(
            cacheable(&config, &servfail),
            Some((Duration::from_secs(5), Kind::Denial))
        );
        let long = Response {
            answers: vec![a(86_400)],
            ..Default::default()
        };
        assert_eq!(
            cacheable(&config, &long),
            Some((Duration::from_secs(3600), Kind::Success))
        );
        let zero = Response {
            answers: vec![a(0)],
            ..Default::default()
        };
        assert_eq!(cacheable(&config, &zero), None);
    }

    #[test]
    fn bounded() {
        let mut cache = Cache::new(CacheConfig {
            capacity: 3,
            ..Default::default()
        });
        let t0 = Instant::now();
        let response = Response {
            answers: vec![a(30)],
            ..Default::default()
        };
        for i in 0..10 {
            cache.insert(key(&format!("n{i}.example.test.")), &response, t0);
            assert!(cache.len() <= 3);
        }
        assert!(
            cache.get(&key("n9.example.test."), t0).is_some(),
            "the newest entry is kept"
        );
    }
}
