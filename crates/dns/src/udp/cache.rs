//! Pre-encoded UDP answers, keyed by the request's bytes after its ID (flags, question, EDNS).
//!
//! An answer from the zone depends on nothing but the request and the zone (forwarded answers,
//! which depend on the upstream and its TTLs, are never stored). So two requests whose bytes are
//! equal except for the ID get the same response except for the ID, for as long as the zone's SOA
//! serial — which changes whenever an answer may change — stays the same. Serving a query is then
//! a hash lookup and a copy, as a static-zone server serves it, instead of decoding the request,
//! building records and encoding the response. Keying on the exact bytes keeps every detail right
//! without reasoning about it: the question's letter case, RD/CD, the EDNS payload size (and so
//! truncation) and DO bit are all part of the key.
//!
//! Entries carry the serial they were computed at; a lookup at another serial misses (and the
//! entry is replaced). Memory is bounded: each shard holds at most its share of
//! [`AnswerCache::new`]'s byte budget and is emptied when full (a cheap, allocation-free policy;
//! a working set larger than the budget only loses the cache's benefit, never correctness).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use parking_lot::Mutex;

/// Shards, so that the UDP workers rarely wait for one another.
const SHARDS: usize = 32;
/// Requests longer than this are not cached (normal queries are under 100 bytes).
const MAX_KEY: usize = 512;
/// Responses longer than this are not cached (they are rare and would crowd the budget).
const MAX_RESPONSE: usize = 1232;
/// Bytes an entry costs beyond its key and response (map slot, boxes, serial, `meta`).
const ENTRY_OVERHEAD: usize = 96;

struct Entry<M> {
    serial: u32,
    response: Box<[u8]>,
    meta: M,
}

struct Shard<M> {
    map: HashMap<Box<[u8]>, Entry<M>, RandomState>,
    bytes: usize,
}

/// The cache; `M` is what a hit needs besides the bytes (the metrics series it counts in).
pub struct AnswerCache<M> {
    shards: Box<[Mutex<Shard<M>>]>,
    hasher: RandomState,
    shard_budget: usize,
}

impl<M> std::fmt::Debug for AnswerCache<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerCache")
            .field("shard_budget", &self.shard_budget)
            .finish_non_exhaustive()
    }
}

impl<M: Clone> AnswerCache<M> {
    /// A cache of at most about `budget` bytes.
    pub fn new(budget: usize) -> Self {
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    map: HashMap::default(),
                    bytes: 0,
                })
            })
            .collect();
        Self {
            shards,
            hasher: RandomState::new(),
            shard_budget: budget / SHARDS,
        }
    }

    fn shard(&self, key: &[u8]) -> &Mutex<Shard<M>> {
        let hash = self.hasher.hash_one(key);
        // The low bits pick the shard; the map inside hashes with its own keys.
        &self.shards[usize::try_from(hash % SHARDS as u64).unwrap_or(0)]
    }

    /// The response to `request` (a whole DNS message) at zone `serial`, written to `out` with the
    /// request's ID; `None` if not cached.
    pub fn lookup(&self, request: &[u8], serial: u32, out: &mut Vec<u8>) -> Option<M> {
        let key = request.get(2..)?;
        let shard = self.shard(key).lock();
        let entry = shard.map.get(key).filter(|e| e.serial == serial)?;
        out.clear();
        out.extend_from_slice(&request[..2]);
        out.extend_from_slice(entry.response.get(2..)?);
        Some(entry.meta.clone())
    }

    /// Stores `response`, computed for `request` at zone `serial`.
    pub fn insert(&self, request: &[u8], serial: u32, response: &[u8], meta: M) {
        let (Some(key), true) = (request.get(2..), response.len() >= 12) else {
            return;
        };
        if key.len() > MAX_KEY || response.len() > MAX_RESPONSE {
            return;
        }
        let cost = key.len() + response.len() + ENTRY_OVERHEAD;
        let mut shard = self.shard(key).lock();
        let shard = &mut *shard;
        if shard.bytes + cost > self.shard_budget && !shard.map.contains_key(key) {
            shard.map.clear();
            shard.bytes = 0;
        }
        let entry = Entry {
            serial,
            response: response.into(),
            meta,
        };
        match shard.map.get_mut(key) {
            Some(old) => {
                shard.bytes = shard.bytes + response.len() - old.response.len();
                *old = entry;
            }
            None => {
                shard.map.insert(key.into(), entry);
                shard.bytes += cost;
            }
        }
    }

    /// Entries held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: u16, body: &[u8]) -> Vec<u8> {
        let mut m = id.to_be_bytes().to_vec();
        m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn answers_equal_requests_with_their_own_id() {
        let cache = AnswerCache::new(1 << 20);
        let request = message(7, b"\x03web\x00\x00\x01\x00\x01");
        let response = message(7, b"answer");
        cache.insert(&request, 3, &response, "A");

        let mut out = Vec::new();
        let again = message(0xbeef, b"\x03web\x00\x00\x01\x00\x01");
        assert_eq!(cache.lookup(&again, 3, &mut out), Some("A"));
        assert_eq!(out, message(0xbeef, b"answer"));

        // Another question, or the same one in another letter case, is another key.
        let other = message(7, b"\x03WEB\x00\x00\x01\x00\x01");
        assert_eq!(cache.lookup(&other, 3, &mut out), None);
        // Too short to have an ID.
        assert_eq!(cache.lookup(&[1], 3, &mut out), None);
    }

    #[test]
    fn a_new_serial_misses_and_replaces() {
        let cache = AnswerCache::new(1 << 20);
        let request = message(1, b"q");
        cache.insert(&request, 3, &message(1, b"old"), ());
        let mut out = Vec::new();
        assert_eq!(cache.lookup(&request, 4, &mut out), None);
        cache.insert(&request, 4, &message(1, b"new"), ());
        assert_eq!(cache.lookup(&request, 4, &mut out), Some(()));
        assert_eq!(out, message(1, b"new"));
        assert_eq!(cache.lookup(&request, 3, &mut out), None);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn stays_within_its_budget() {
        let budget = 64 * 1024;
        let cache = AnswerCache::new(budget);
        for i in 0..10_000u32 {
            let request = message(1, &i.to_be_bytes());
            cache.insert(&request, 1, &message(1, &[0; 100]), ());
        }
        let per_entry = 4 + 12 - 2 + 112 + ENTRY_OVERHEAD;
        assert!(cache.len() * per_entry <= budget, "{} entries", cache.len());
        assert!(!cache.is_empty());
        // Oversized requests and responses are not stored.
        let cache = AnswerCache::new(budget);
        cache.insert(&message(1, &[0; MAX_KEY]), 1, &message(1, b"r"), ());
        cache.insert(&message(1, b"q"), 1, &message(1, &[0; MAX_RESPONSE]), ());
        assert!(cache.is_empty());
    }
}
