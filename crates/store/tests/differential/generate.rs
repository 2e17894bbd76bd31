//! The seeded random generator of operations over a small colliding key space, and the model of
//! the store (current and compacted revision) it draws revisions from.

use etcd_client::{Compare, CompareOp, SortOrder, SortTarget, WatchFilterType};
use rand::Rng;
use rand::rngs::StdRng;

use crate::ops::{KvOp, Op, RangeSpec, Sel, TxnSpec, WatchSpec};

/// The key space: few enough keys that operations collide, nested so that prefixes matter.
const KEYS: &[&str] = &["k/a", "k/a/1", "k/a/2", "k/b", "k/c", "k/d", "k/e"];
/// Extra range ends and prefixes around the key space.
const BOUNDS: &[&str] = &["k/", "k/a/", "k/c/", "k/z", "j", "l"];
/// Few values, so VALUE compares hit and sorting by value has ties.
const VALUES: &[&str] = &["", "v1", "v2", "v3", "v10"];
/// Lease IDs both sides are asked to grant explicitly.
const LEASE_IDS: &[i64] = &[0x1111, 0x2222, 0x3333, 0x7fff_0000_0000_0001];

/// What the generator knows about the store (taken from etcd's answers).
#[derive(Debug)]
pub(crate) struct Model {
    pub(crate) current: i64,
    pub(crate) compacted: i64,
}

pub(crate) struct Gen {
    pub(crate) rng: StdRng,
    /// Percent weights of the op kinds (put, get, delete, txn, compact, lease, watch, hashkv).
    pub(crate) weights: [u32; 8],
}

impl Gen {
    pub(crate) fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.rng.random_range(0..items.len())]
    }

    pub(crate) fn key(&mut self) -> String {
        self.pick(KEYS).to_string()
    }

    pub(crate) fn value(&mut self) -> String {
        self.pick(VALUES).to_string()
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    pub(crate) fn sel(&mut self) -> Sel {
        match self.rng.random_range(0..10) {
            0..=4 => Sel::Key,
            5..=6 => Sel::Prefix,
            7 => Sel::FromKey,
            _ => {
                let end = if self.chance(0.5) {
                    self.pick(KEYS)
                } else {
                    self.pick(BOUNDS)
                };
                Sel::Range(end.to_string())
            }
        }
    }

    /// A key for a selection: prefixes and ranges also start at the extra bounds.
    pub(crate) fn sel_key(&mut self, sel: &Sel) -> String {
        if !matches!(sel, Sel::Key) && self.chance(0.3) {
            self.pick(&["k/", "k/a/", "a", "k/c"]).to_string()
        } else {
            self.key()
        }
    }

    /// A revision around the interesting window: mostly valid, sometimes compacted or future.
    pub(crate) fn revision(&mut self, m: &Model) -> i64 {
        let lo = (m.compacted - 1).max(0);
        self.rng.random_range(lo..=m.current + 1)
    }

    pub(crate) fn range(&mut self, m: &Model) -> RangeSpec {
        let sel = self.sel();
        let key = self.sel_key(&sel);
        let targets = [
            SortTarget::Key,
            SortTarget::Version,
            SortTarget::Create,
            SortTarget::Mod,
            SortTarget::Value,
        ];
        let orders = [SortOrder::None, SortOrder::Ascend, SortOrder::Descend];
        let sort = self.chance(0.4).then(|| {
            (
                targets[self.rng.random_range(0..targets.len())],
                orders[self.rng.random_range(0..orders.len())],
            )
        });
        let filter = |g: &mut Gen| {
            if g.chance(0.12) {
                g.rng.random_range(0..=m.current + 1)
            } else {
                0
            }
        };
        RangeSpec {
            revision: if self.chance(0.35) {
                self.revision(m)
            } else {
                0
            },
            limit: if self.chance(0.3) {
                self.rng.random_range(1..=4)
            } else {
                0
            },
            sort,
            keys_only: self.chance(0.2),
            count_only: self.chance(0.1),
            min_mod: filter(self),
            max_mod: filter(self),
            min_create: filter(self),
            max_create: filter(self),
            key,
            sel,
        }
    }

    pub(crate) fn lease_ref(&mut self) -> i64 {
        if self.chance(0.75) {
            0
        } else {
            LEASE_IDS[self.rng.random_range(0..LEASE_IDS.len())]
        }
    }

    pub(crate) fn put(&mut self, key: String) -> KvOp {
        let ignore_value = self.chance(0.05);
        let ignore_lease = self.chance(0.05);
        KvOp::Put {
            key,
            // ignore_value with a value is an error; keep that case rare.
            value: if ignore_value && self.chance(0.8) {
                String::new()
            } else {
                self.value()
            },
            lease: if ignore_lease && self.chance(0.8) {
                0
            } else {
                self.lease_ref()
            },
            prev_kv: self.chance(0.5),
            ignore_value,
            ignore_lease,
        }
    }

    pub(crate) fn delete(&mut self) -> KvOp {
        let sel = self.sel();
        KvOp::Delete {
            key: self.sel_key(&sel),
            sel,
            prev_kv: self.chance(0.5),
        }
    }

    pub(crate) fn compare(&mut self, m: &Model) -> Compare {
        let key = self.key();
        let ops = [
            CompareOp::Equal,
            CompareOp::Greater,
            CompareOp::Less,
            CompareOp::NotEqual,
        ];
        let op = ops[self.rng.random_range(0..ops.len())];
        let rev = (m.current - self.rng.random_range(-1..=4)).max(0);
        let c = match self.rng.random_range(0..5) {
            0 => Compare::version(key.as_str(), op, self.rng.random_range(0..=3)),
            1 => Compare::create_revision(key.as_str(), op, rev),
            2 => Compare::mod_revision(key.as_str(), op, rev),
            3 => Compare::value(key.as_str(), op, self.value()),
            _ => Compare::lease(key.as_str(), op, self.lease_ref()),
        };
        if self.chance(0.15) {
            c.with_prefix()
        } else {
            c
        }
    }

    /// Ops of one txn branch; puts mostly go to distinct keys so not every txn is a duplicate-key
    /// error (some still are, on purpose).
    pub(crate) fn branch(&mut self, m: &Model, depth: u32) -> Vec<KvOp> {
        let n = self.rng.random_range(0..=3);
        let mut used: Vec<String> = Vec::new();
        let mut ops = Vec::new();
        for _ in 0..n {
            let op = match self.rng.random_range(0..10) {
                0..=3 => {
                    let mut key = self.key();
                    if used.contains(&key)
                        && self.chance(0.9)
                        && let Some(free) = KEYS.iter().find(|k| !used.iter().any(|u| u == *k))
                    {
                        key = free.to_string();
                    }
                    used.push(key.clone());
                    self.put(key)
                }
                4..=6 => KvOp::Get(self.range(m)),
                7..=8 => self.delete(),
                _ if depth < 2 => KvOp::Txn(self.txn(m, depth + 1)),
                _ => KvOp::Get(self.range(m)),
            };
            ops.push(op);
        }
        ops
    }

    pub(crate) fn txn(&mut self, m: &Model, depth: u32) -> TxnSpec {
        let n = self.rng.random_range(0..=3);
        TxnSpec {
            compares: (0..n).map(|_| self.compare(m)).collect(),
            success: self.branch(m, depth),
            failure: self.branch(m, depth),
        }
    }

    pub(crate) fn op(&mut self, m: &Model) -> Op {
        let total: u32 = self.weights.iter().sum();
        let mut roll = self.rng.random_range(0..total);
        let mut kind = 0;
        for (i, w) in self.weights.iter().enumerate() {
            if roll < *w {
                kind = i;
                break;
            }
            roll -= w;
        }
        match kind {
            0 => {
                let key = self.key();
                Op::Kv(self.put(key))
            }
            1 => Op::Kv(KvOp::Get(self.range(m))),
            2 => Op::Kv(self.delete()),
            3 => Op::Kv(KvOp::Txn(self.txn(m, 0))),
            4 => {
                // Mostly a valid revision; sometimes an already compacted or a future one.
                let revision = if self.chance(0.8) && m.current > m.compacted {
                    self.rng.random_range(m.compacted + 1..=m.current)
                } else {
                    self.revision(m)
                };
                Op::Compact {
                    revision,
                    physical: self.chance(0.5),
                }
            }
            5 => {
                let id = LEASE_IDS[self.rng.random_range(0..LEASE_IDS.len())];
                match self.rng.random_range(0..10) {
                    0..=3 => Op::LeaseGrant {
                        id,
                        ttl: self.rng.random_range(300..=3000),
                    },
                    4..=6 => Op::LeaseRevoke(id),
                    7..=8 => Op::LeaseTimeToLive {
                        id,
                        keys: self.chance(0.7),
                    },
                    _ => Op::LeaseLeases,
                }
            }
            6 => Op::Watch(self.watch(m)),
            _ => Op::HashKv(if self.chance(0.5) {
                0
            } else {
                self.revision(m)
            }),
        }
    }

    pub(crate) fn watch(&mut self, m: &Model) -> WatchSpec {
        let lo = (m.compacted - 2).max(1);
        let sel = self.sel();
        let filters = [
            None,
            None,
            Some(WatchFilterType::NoPut),
            Some(WatchFilterType::NoDelete),
        ];
        WatchSpec {
            start_revision: self.rng.random_range(lo..=m.current.max(lo)),
            key: self.sel_key(&sel),
            sel,
            prev_kv: self.chance(0.6),
            filter: filters[self.rng.random_range(0..filters.len())],
        }
    }
}
