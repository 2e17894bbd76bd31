//! The IO-free lease table (etcd's lessor): grants, renewals, expiry and the keys attached to each
//! lease. Time is passed in (`now`), so expiry is tested without sleeping.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::error::StoreError;
use crate::mvcc::Key;

/// etcd's largest lease TTL (`MaxLeaseTTL`, seconds).
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

#[derive(Debug, Clone)]
pub struct Lease {
    pub id: i64,
    /// Granted TTL in seconds (after raising to the minimum).
    pub ttl: i64,
    pub expiry: Instant,
    pub keys: BTreeSet<Key>,
}

impl Lease {
    /// Remaining whole seconds, never negative. Truncated, not rounded up: etcd 3.4 answers
    /// LeaseTimeToLive with `int64(le.Remaining().Seconds())`, so a lease granted for 600 s reports
    /// 599 right after the grant (observed with `etcdctl lease timetolive`).
    pub fn remaining(&self, now: Instant) -> i64 {
        self.expiry.saturating_duration_since(now).as_secs() as i64
    }
}

#[derive(Debug)]
pub struct Leases {
    leases: HashMap<i64, Lease>,
    /// Shortest TTL handed out; shorter requests are raised to it (etcd: 2 s with default raft timing).
    min_ttl: i64,
    next_id: i64,
}

impl Leases {
    pub fn new(min_ttl: i64, id_seed: i64) -> Leases {
        Leases {
            leases: HashMap::new(),
            min_ttl: min_ttl.max(1),
            next_id: id_seed.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.leases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }

    pub fn get(&self, id: i64) -> Option<&Lease> {
        self.leases.get(&id)
    }

    pub fn contains(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    pub fn ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.leases.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Picks the ID for a grant that asked for 0, skipping IDs in use.
    pub fn pick_id(&mut self) -> i64 {
        loop {
            let id = self.next_id;
            self.next_id = if self.next_id >= i64::MAX - 1 {
                1
            } else {
                self.next_id + 1
            };
            if !self.leases.contains_key(&id) {
                return id;
            }
        }
    }

    /// The TTL a grant of `requested` seconds really gets.
    pub fn effective_ttl(&self, requested: i64) -> Result<i64, StoreError> {
        if requested > MAX_LEASE_TTL {
            return Err(StoreError::LeaseTtlTooLarge);
        }
        Ok(requested.max(self.min_ttl))
    }

    pub fn grant(&mut self, id: i64, ttl: i64, now: Instant) -> Result<&Lease, StoreError> {
        if self.leases.contains_key(&id) {
            return Err(StoreError::LeaseExists);
        }
        let ttl = self.effective_ttl(ttl)?;
        let lease = Lease {
            id,
            ttl,
            expiry: now + Duration::from_secs(ttl as u64),
            keys: BTreeSet::new(),
        };
        Ok(self.leases.entry(id).or_insert(lease))
    }

    /// Removes a lease, returning the keys that were attached (the caller deletes them).
    pub fn revoke(&mut self, id: i64) -> Result<Lease, StoreError> {
        self.leases.remove(&id).ok_or(StoreError::LeaseNotFound)
    }

    /// Extends a lease to a full TTL from `now`; returns the TTL. An expired lease cannot be renewed.
    pub fn renew(&mut self, id: i64, now: Instant) -> Result<i64, StoreError> {
        let lease = self.leases.get_mut(&id).ok_or(StoreError::LeaseNotFound)?;
        if lease.expiry <= now {
            return Err(StoreError::LeaseNotFound);
        }
        lease.expiry = now + Duration::from_secs(lease.ttl as u64);
        Ok(lease.ttl)
    }

    /// Leases whose time is up, oldest expiry first, at most `max` of them.
    pub fn expired(&self, now: Instant, max: usize) -> Vec<i64> {
        let mut due: Vec<(Instant, i64)> = self
            .leases
            .values()
            .filter(|l| l.expiry <= now)
            .map(|l| (l.expiry, l.id))
            .collect();
        due.sort_unstable();
        due.into_iter().take(max).map(|(_, id)| id).collect()
    }

    /// Gives every lease a full TTL from `now` (done at start-up, as etcd does when a leader is elected).
    pub fn refresh_all(&mut self, now: Instant) {
        for lease in self.leases.values_mut() {
            lease.expiry = now + Duration::from_secs(lease.ttl as u64);
        }
    }

    pub fn attach(&mut self, id: i64, key: &Key) {
        if let Some(lease) = self.leases.get_mut(&id) {
            lease.keys.insert(key.clone());
        }
    }

    pub fn detach(&mut self, id: i64, key: &[u8]) {
        if let Some(lease) = self.leases.get_mut(&id) {
            lease.keys.remove(key);
        }
    }

    /// Restores a lease at start-up without the minimum-TTL rule (it was applied at grant time).
    pub fn restore(&mut self, id: i64, ttl: i64, now: Instant) {
        self.leases.insert(
            id,
            Lease {
                id,
                ttl,
                expiry: now + Duration::from_secs(ttl.max(0) as u64),
                keys: BTreeSet::new(),
            },
        );
        self.next_id = self.next_id.max(id.saturating_add(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_raises_short_ttls_and_rejects_huge_ones() {
        let mut leases = Leases::new(2, 1);
        let now = Instant::now();
        assert_eq!(leases.grant(7, 1, now).map(|l| l.ttl), Ok(2));
        assert_eq!(
            leases.grant(7, 10, now).err(),
            Some(StoreError::LeaseExists)
        );
        assert_eq!(
            leases.grant(8, MAX_LEASE_TTL + 1, now).err(),
            Some(StoreError::LeaseTtlTooLarge)
        );
    }

    #[test]
    fn expiry_and_renewal_follow_the_injected_clock() {
        let mut leases = Leases::new(2, 1);
        let t0 = Instant::now();
        leases.grant(1, 10, t0).map(|_| ()).unwrap_or_default();
        assert_eq!(leases.get(1).map(|l| l.remaining(t0)), Some(10));
        assert!(leases.expired(t0 + Duration::from_secs(9), 10).is_empty());
        assert_eq!(leases.renew(1, t0 + Duration::from_secs(9)), Ok(10));
        assert!(leases.expired(t0 + Duration::from_secs(18), 10).is_empty());
        assert_eq!(leases.expired(t0 + Duration::from_secs(19), 10), vec![1]);
        assert_eq!(
            leases.renew(1, t0 + Duration::from_secs(30)),
            Err(StoreError::LeaseNotFound)
        );
    }

    #[test]
    fn pick_id_skips_ids_in_use() {
        let mut leases = Leases::new(2, 5);
        leases.restore(5, 10, Instant::now());
        assert_eq!(leases.pick_id(), 6);
    }
}
