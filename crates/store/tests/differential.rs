//! Differential test: the same randomized operation sequences against a real etcd 3.4 and against
//! niwa-store, through the `etcd-client` crate, comparing every response field by field (header
//! identity fields excepted) and every error by gRPC code and message.
//!
//! Each sequence is driven by a fixed-seed RNG over a small key space so that operations collide:
//! puts (prev_kv, ignore_value/ignore_lease, leases), deletes (single, prefix, range, from-key,
//! prev_kv), txns (all compare targets and results, nested txns, both branches with puts, deletes
//! and ranges), ranges at old revisions with every option, compactions, HashKV, leases with explicit
//! IDs (grant, revoke, time-to-live, list) and watches from past revisions (all keys, prefixes,
//! filters, prev_kv, compacted start revisions). A failure prints the seed, the op index, the op and
//! both answers; rerun one seed with `NIWA_DIFF_SEED=<seed>`.

mod common;

use std::time::{Duration, Instant};

use common::{Etcd, Store};
use etcd_client::proto::{
    PbCompactionResponse, PbDeleteResponse, PbEvent, PbHashKvResponse, PbKeyValue,
    PbLeaseGrantResponse, PbLeaseLeasesResponse, PbLeaseRevokeResponse, PbLeaseTimeToLiveResponse,
    PbPutResponse, PbRangeResponse, PbResponseHeader, PbTxnOpResponse, PbTxnResponse,
};
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, DeleteOptions, GetOptions, LeaseGrantOptions,
    LeaseTimeToLiveOptions, PutOptions, SortOrder, SortTarget, Txn, TxnOp, WatchFilterType,
    WatchOptions,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The key space: few enough keys that operations collide, nested so that prefixes matter.
const KEYS: &[&str] = &["k/a", "k/a/1", "k/a/2", "k/b", "k/c", "k/d", "k/e"];
/// Extra range ends and prefixes around the key space.
const BOUNDS: &[&str] = &["k/", "k/a/", "k/c/", "k/z", "j", "l"];
/// Few values, so VALUE compares hit and sorting by value has ties.
const VALUES: &[&str] = &["", "v1", "v2", "v3", "v10"];
/// Lease IDs both sides are asked to grant explicitly.
const LEASE_IDS: &[i64] = &[0x1111, 0x2222, 0x3333, 0x7fff_0000_0000_0001];

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

/// Which keys an operation covers, relative to its key.
#[derive(Debug, Clone)]
enum Sel {
    Key,
    Prefix,
    FromKey,
    Range(String),
}

#[derive(Debug, Clone)]
struct RangeSpec {
    key: String,
    sel: Sel,
    revision: i64,
    limit: i64,
    sort: Option<(SortTarget, SortOrder)>,
    keys_only: bool,
    count_only: bool,
    min_mod: i64,
    max_mod: i64,
    min_create: i64,
    max_create: i64,
}

impl RangeSpec {
    fn options(&self) -> GetOptions {
        let mut o = GetOptions::new();
        o = match &self.sel {
            Sel::Key => o,
            Sel::Prefix => o.with_prefix(),
            Sel::FromKey => o.with_from_key(),
            Sel::Range(end) => o.with_range(end.as_str()),
        };
        if let Some((t, ord)) = self.sort {
            o = o.with_sort(t, ord);
        }
        o = o
            .with_revision(self.revision)
            .with_limit(self.limit)
            .with_min_mod_revision(self.min_mod)
            .with_max_mod_revision(self.max_mod)
            .with_min_create_revision(self.min_create)
            .with_max_create_revision(self.max_create);
        if self.keys_only {
            o = o.with_keys_only();
        }
        if self.count_only {
            o = o.with_count_only();
        }
        o
    }
}

#[derive(Debug, Clone)]
enum KvOp {
    Put {
        key: String,
        value: String,
        lease: i64,
        prev_kv: bool,
        ignore_value: bool,
        ignore_lease: bool,
    },
    Get(RangeSpec),
    Delete {
        key: String,
        sel: Sel,
        prev_kv: bool,
    },
    Txn(TxnSpec),
}

#[derive(Debug, Clone)]
struct TxnSpec {
    compares: Vec<Compare>,
    success: Vec<KvOp>,
    failure: Vec<KvOp>,
}

impl TxnSpec {
    fn build(&self) -> Txn {
        Txn::new()
            .when(self.compares.clone())
            .and_then(self.success.iter().map(txn_op).collect::<Vec<_>>())
            .or_else(self.failure.iter().map(txn_op).collect::<Vec<_>>())
    }
}

fn put_options(lease: i64, prev_kv: bool, ignore_value: bool, ignore_lease: bool) -> PutOptions {
    let mut o = PutOptions::new().with_lease(lease);
    if prev_kv {
        o = o.with_prev_key();
    }
    if ignore_value {
        o = o.with_ignore_value();
    }
    if ignore_lease {
        o = o.with_ignore_lease();
    }
    o
}

fn delete_options(sel: &Sel, prev_kv: bool) -> DeleteOptions {
    let mut o = DeleteOptions::new();
    o = match sel {
        Sel::Key => o,
        Sel::Prefix => o.with_prefix(),
        Sel::FromKey => o.with_from_key(),
        Sel::Range(end) => o.with_range(end.as_str()),
    };
    if prev_kv {
        o = o.with_prev_key();
    }
    o
}

fn txn_op(op: &KvOp) -> TxnOp {
    match op {
        KvOp::Put {
            key,
            value,
            lease,
            prev_kv,
            ignore_value,
            ignore_lease,
        } => TxnOp::put(
            key.as_str(),
            value.as_str(),
            Some(put_options(*lease, *prev_kv, *ignore_value, *ignore_lease)),
        ),
        KvOp::Get(r) => TxnOp::get(r.key.as_str(), Some(r.options())),
        KvOp::Delete { key, sel, prev_kv } => {
            TxnOp::delete(key.as_str(), Some(delete_options(sel, *prev_kv)))
        }
        KvOp::Txn(t) => TxnOp::txn(t.build()),
    }
}

#[derive(Debug, Clone)]
struct WatchSpec {
    start_revision: i64,
    /// The narrower watch compared after the all-keys one.
    key: String,
    sel: Sel,
    prev_kv: bool,
    filter: Option<WatchFilterType>,
}

#[derive(Debug, Clone)]
enum Op {
    Kv(KvOp),
    Compact { revision: i64, physical: bool },
    HashKv(i64),
    LeaseGrant { id: i64, ttl: i64 },
    LeaseRevoke(i64),
    LeaseTimeToLive { id: i64, keys: bool },
    LeaseLeases,
    Watch(WatchSpec),
}

// ---------------------------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------------------------

/// What the generator knows about the store (taken from etcd's answers).
#[derive(Debug)]
struct Model {
    current: i64,
    compacted: i64,
}

struct Gen {
    rng: StdRng,
    /// Percent weights of the op kinds (put, get, delete, txn, compact, lease, watch, hashkv).
    weights: [u32; 8],
}

impl Gen {
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.rng.random_range(0..items.len())]
    }

    fn key(&mut self) -> String {
        self.pick(KEYS).to_string()
    }

    fn value(&mut self) -> String {
        self.pick(VALUES).to_string()
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn sel(&mut self) -> Sel {
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
    fn sel_key(&mut self, sel: &Sel) -> String {
        if !matches!(sel, Sel::Key) && self.chance(0.3) {
            self.pick(&["k/", "k/a/", "a", "k/c"]).to_string()
        } else {
            self.key()
        }
    }

    /// A revision around the interesting window: mostly valid, sometimes compacted or future.
    fn revision(&mut self, m: &Model) -> i64 {
        let lo = (m.compacted - 1).max(0);
        self.rng.random_range(lo..=m.current + 1)
    }

    fn range(&mut self, m: &Model) -> RangeSpec {
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

    fn lease_ref(&mut self) -> i64 {
        if self.chance(0.75) {
            0
        } else {
            LEASE_IDS[self.rng.random_range(0..LEASE_IDS.len())]
        }
    }

    fn put(&mut self, key: String) -> KvOp {
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

    fn delete(&mut self) -> KvOp {
        let sel = self.sel();
        KvOp::Delete {
            key: self.sel_key(&sel),
            sel,
            prev_kv: self.chance(0.5),
        }
    }

    fn compare(&mut self, m: &Model) -> Compare {
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
    fn branch(&mut self, m: &Model, depth: u32) -> Vec<KvOp> {
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

    fn txn(&mut self, m: &Model, depth: u32) -> TxnSpec {
        let n = self.rng.random_range(0..=3);
        TxnSpec {
            compares: (0..n).map(|_| self.compare(m)).collect(),
            success: self.branch(m, depth),
            failure: self.branch(m, depth),
        }
    }

    fn op(&mut self, m: &Model) -> Op {
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

    fn watch(&mut self, m: &Model) -> WatchSpec {
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

// ---------------------------------------------------------------------------------------------
// Execution and normalization
// ---------------------------------------------------------------------------------------------

/// A response with the fields that may differ between two servers normalized away.
#[derive(Debug, Clone, PartialEq)]
enum Resp {
    Put(PbPutResponse),
    Range(PbRangeResponse),
    Delete(PbDeleteResponse),
    Txn(PbTxnResponse),
    Compact(PbCompactionResponse),
    HashKv(PbHashKvResponse),
    LeaseGrant(PbLeaseGrantResponse),
    LeaseRevoke(PbLeaseRevokeResponse),
    LeaseTimeToLive(PbLeaseTimeToLiveResponse),
    LeaseLeases(PbLeaseLeasesResponse),
    Watch(WatchOutcome),
}

#[derive(Debug, Clone, PartialEq)]
struct Failure {
    code: tonic::Code,
    message: String,
}

type Outcome = Result<Resp, Failure>;

fn failure(e: etcd_client::Error) -> Failure {
    match e {
        etcd_client::Error::GRpcStatus(s) => Failure {
            code: s.code(),
            message: s.message().to_string(),
        },
        other => panic!("transport-level error (not a gRPC status): {other}"),
    }
}

/// Drops the identity fields (cluster_id, member_id, raft_term) and keeps the revision.
fn norm_header(h: &mut Option<PbResponseHeader>) {
    if let Some(h) = h {
        h.cluster_id = 0;
        h.member_id = 0;
        h.raft_term = 0;
    }
}

/// etcd sorts with Go's `sort.Sort`, which is not stable in general, so rows with equal sort keys
/// are put in key order before comparing (the sorted-by order itself is still compared, since the
/// tie groups are only formed from adjacent equal rows).
fn norm_range(r: &mut PbRangeResponse, spec: &RangeSpec) {
    norm_header(&mut r.header);
    let Some((target, _)) = spec.sort else { return };
    let sort_key = |kv: &PbKeyValue| -> (i64, Vec<u8>) {
        match target {
            SortTarget::Key => (0, kv.key.clone()),
            SortTarget::Version => (kv.version, Vec::new()),
            SortTarget::Create => (kv.create_revision, Vec::new()),
            SortTarget::Mod => (kv.mod_revision, Vec::new()),
            SortTarget::Value => (0, kv.value.clone()),
        }
    };
    let mut i = 0;
    while i < r.kvs.len() {
        let k = sort_key(&r.kvs[i]);
        let mut j = i + 1;
        while j < r.kvs.len() && sort_key(&r.kvs[j]) == k {
            j += 1;
        }
        r.kvs[i..j].sort_by(|a, b| a.key.cmp(&b.key));
        i = j;
    }
}

fn norm_txn(t: &mut PbTxnResponse, spec: &TxnSpec) {
    norm_header(&mut t.header);
    let ops = if t.succeeded {
        &spec.success
    } else {
        &spec.failure
    };
    for (resp, op) in t.responses.iter_mut().zip(ops) {
        match (&mut resp.response, op) {
            (Some(PbTxnOpResponse::ResponseRange(r)), KvOp::Get(spec)) => norm_range(r, spec),
            (Some(PbTxnOpResponse::ResponsePut(p)), _) => norm_header(&mut p.header),
            (Some(PbTxnOpResponse::ResponseDeleteRange(d)), _) => norm_header(&mut d.header),
            (Some(PbTxnOpResponse::ResponseTxn(t)), KvOp::Txn(spec)) => norm_txn(t, spec),
            // A response of the wrong kind stays as it is and shows up in the comparison.
            _ => {}
        }
    }
}

async fn run_kv(c: &mut Client, op: &KvOp) -> Outcome {
    match op {
        KvOp::Put {
            key,
            value,
            lease,
            prev_kv,
            ignore_value,
            ignore_lease,
        } => {
            let opts = put_options(*lease, *prev_kv, *ignore_value, *ignore_lease);
            let mut r = c
                .put(key.as_str(), value.as_str(), Some(opts))
                .await
                .map_err(failure)?
                .0;
            norm_header(&mut r.header);
            Ok(Resp::Put(r))
        }
        KvOp::Get(spec) => {
            let mut r = c
                .get(spec.key.as_str(), Some(spec.options()))
                .await
                .map_err(failure)?
                .0;
            norm_range(&mut r, spec);
            Ok(Resp::Range(r))
        }
        KvOp::Delete { key, sel, prev_kv } => {
            let mut r = c
                .delete(key.as_str(), Some(delete_options(sel, *prev_kv)))
                .await
                .map_err(failure)?
                .0;
            norm_header(&mut r.header);
            Ok(Resp::Delete(r))
        }
        KvOp::Txn(spec) => {
            let mut r = c.txn(spec.build()).await.map_err(failure)?.0;
            norm_txn(&mut r, spec);
            Ok(Resp::Txn(r))
        }
    }
}

async fn run_op(c: &mut Client, op: &Op) -> Outcome {
    match op {
        Op::Kv(kv) => run_kv(c, kv).await,
        Op::Compact { revision, physical } => {
            let opts = if *physical {
                CompactionOptions::new().with_physical()
            } else {
                CompactionOptions::new()
            };
            let mut r = c.compact(*revision, Some(opts)).await.map_err(failure)?.0;
            norm_header(&mut r.header);
            Ok(Resp::Compact(r))
        }
        Op::HashKv(rev) => {
            let mut r = c.hash_kv(*rev).await.map_err(failure)?.0;
            norm_header(&mut r.header);
            // `hash_revision` is an etcd 3.5+ field (3.4 never sends it); niwa-store fills it in.
            r.hash_revision = 0;
            Ok(Resp::HashKv(r))
        }
        Op::LeaseGrant { id, ttl } => {
            let opts = LeaseGrantOptions::new().with_id(*id);
            let mut r = c.lease_grant(*ttl, Some(opts)).await.map_err(failure)?.0;
            norm_header(&mut r.header);
            Ok(Resp::LeaseGrant(r))
        }
        Op::LeaseRevoke(id) => {
            let mut r = c.lease_revoke(*id).await.map_err(failure)?.0;
            norm_header(&mut r.header);
            Ok(Resp::LeaseRevoke(r))
        }
        Op::LeaseTimeToLive { id, keys } => {
            let opts = if *keys {
                LeaseTimeToLiveOptions::new().with_keys()
            } else {
                LeaseTimeToLiveOptions::new()
            };
            let mut r = c
                .lease_time_to_live(*id, Some(opts))
                .await
                .map_err(failure)?
                .0;
            norm_header(&mut r.header);
            // The remaining TTL depends on when each server granted the lease: only compare that
            // it is within the granted TTL. etcd lists the keys in map order: sort them.
            if r.ttl > 0 {
                assert!(
                    r.ttl <= r.granted_ttl,
                    "remaining TTL {} above granted {}",
                    r.ttl,
                    r.granted_ttl
                );
                r.ttl = 1;
            }
            r.keys.sort();
            Ok(Resp::LeaseTimeToLive(r))
        }
        Op::LeaseLeases => {
            let mut r = c.leases().await.map_err(failure)?.0;
            norm_header(&mut r.header);
            r.leases.sort_by_key(|l| l.id);
            Ok(Resp::LeaseLeases(r))
        }
        Op::Watch(_) => unreachable!("watches run through run_watch"),
    }
}

/// What a watch produced: its control responses (created / canceled) and all its events, flattened
/// (how events are split into responses legitimately differs between servers).
#[derive(Debug, Clone, PartialEq, Default)]
struct WatchOutcome {
    control: Vec<(i64, bool, bool, i64, String, i64)>,
    events: Vec<PbEvent>,
}

/// Opens a watch and reads until `done` says so or the deadline passes.
async fn collect_watch(
    c: &mut Client,
    key: &str,
    opts: WatchOptions,
    done: impl Fn(&WatchOutcome) -> bool,
) -> WatchOutcome {
    let mut out = WatchOutcome::default();
    let mut stream = match c.watch(key, Some(opts)).await {
        Ok(s) => s,
        Err(e) => panic!("opening a watch failed: {e}"),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(&out) {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = match tokio::time::timeout(left, stream.message()).await {
            Ok(Ok(Some(m))) => m.0,
            // Timed out, ended or failed: whatever was collected gets compared.
            _ => break,
        };
        if msg.created || msg.canceled || msg.compact_revision != 0 || msg.events.is_empty() {
            out.control.push((
                msg.header.as_ref().map(|h| h.revision).unwrap_or(0),
                msg.created,
                msg.canceled,
                msg.compact_revision,
                msg.cancel_reason.clone(),
                msg.watch_id,
            ));
        }
        out.events.extend(msg.events);
        if msg.canceled {
            break;
        }
    }
    out
}

fn in_sel(key: &[u8], start: &str, sel: &Sel) -> bool {
    let start = start.as_bytes();
    match sel {
        Sel::Key => key == start,
        Sel::FromKey => key >= start,
        Sel::Prefix => key.starts_with(start),
        Sel::Range(end) => key >= start && key < end.as_bytes(),
    }
}

/// Runs a watch spec on both servers: first an all-keys watch from the start revision (which must
/// deliver every revision up to `current`), then the narrower filtered one, reading as many events
/// as etcd's all-keys history says it should produce.
async fn run_watch(
    etcd: &mut Client,
    store: &mut Client,
    spec: &WatchSpec,
    current: i64,
) -> (Outcome, Outcome) {
    let all = || {
        WatchOptions::new()
            .with_all_keys()
            .with_start_revision(spec.start_revision)
            .with_prev_key()
    };
    let done_all = |o: &WatchOutcome| {
        !o.control.is_empty()
            && (spec.start_revision > current
                || o.events
                    .last()
                    .and_then(|e| e.kv.as_ref())
                    .is_some_and(|kv| kv.mod_revision >= current))
    };
    let (e_all, s_all) = tokio::join!(
        collect_watch(etcd, "", all(), done_all),
        collect_watch(store, "", all(), done_all)
    );
    if e_all != s_all || e_all.control.iter().any(|c| c.2) {
        return (Ok(Resp::Watch(e_all)), Ok(Resp::Watch(s_all)));
    }

    let expected = e_all
        .events
        .iter()
        .filter(|e| {
            let key = e.kv.as_ref().map(|kv| kv.key.as_slice()).unwrap_or(&[]);
            let kind_ok = match spec.filter {
                Some(WatchFilterType::NoPut) => e.r#type != 0,
                Some(WatchFilterType::NoDelete) => e.r#type != 1,
                None => true,
            };
            kind_ok && in_sel(key, &spec.key, &spec.sel)
        })
        .count();
    let narrow = || {
        let mut o = WatchOptions::new().with_start_revision(spec.start_revision);
        o = match &spec.sel {
            Sel::Key => o,
            Sel::Prefix => o.with_prefix(),
            Sel::FromKey => o.with_from_key(),
            Sel::Range(end) => o.with_range(end.as_str()),
        };
        if spec.prev_kv {
            o = o.with_prev_key();
        }
        if let Some(f) = spec.filter {
            o = o.with_filters([f]);
        }
        o
    };
    let done_narrow = |o: &WatchOutcome| !o.control.is_empty() && o.events.len() >= expected;
    let (e_n, s_n) = tokio::join!(
        collect_watch(etcd, &spec.key, narrow(), done_narrow),
        collect_watch(store, &spec.key, narrow(), done_narrow)
    );
    (Ok(Resp::Watch(e_n)), Ok(Resp::Watch(s_n)))
}

fn header_revision(r: &Resp) -> Option<i64> {
    let h = match r {
        Resp::Put(r) => &r.header,
        Resp::Range(r) => &r.header,
        Resp::Delete(r) => &r.header,
        Resp::Txn(r) => &r.header,
        Resp::Compact(r) => &r.header,
        Resp::LeaseRevoke(r) => &r.header,
        _ => return None,
    };
    h.as_ref().map(|h| h.revision)
}

async fn connect(endpoint: &str) -> Client {
    match Client::connect([format!("http://{endpoint}")], None).await {
        Ok(c) => c,
        Err(e) => panic!("connecting to {endpoint}: {e}"),
    }
}

/// What a run exercised, so the test can insist that it compared something meaningful.
#[derive(Debug, Default)]
struct Stats {
    /// op kind → (successes, errors)
    kinds: std::collections::BTreeMap<&'static str, (usize, usize)>,
    txn_branches: [usize; 2],
    watch_events: usize,
    watch_cancels: usize,
}

impl Stats {
    fn count(&mut self, op: &Op, outcome: &Outcome) {
        let kind = match op {
            Op::Kv(KvOp::Put { .. }) => "put",
            Op::Kv(KvOp::Get(_)) => "range",
            Op::Kv(KvOp::Delete { .. }) => "delete",
            Op::Kv(KvOp::Txn(_)) => "txn",
            Op::Compact { .. } => "compact",
            Op::HashKv(_) => "hashkv",
            Op::LeaseGrant { .. } => "lease_grant",
            Op::LeaseRevoke(_) => "lease_revoke",
            Op::LeaseTimeToLive { .. } => "lease_ttl",
            Op::LeaseLeases => "lease_leases",
            Op::Watch(_) => "watch",
        };
        let entry = self.kinds.entry(kind).or_default();
        match outcome {
            Ok(r) => {
                entry.0 += 1;
                match r {
                    Resp::Txn(t) => self.txn_branches[usize::from(t.succeeded)] += 1,
                    Resp::Watch(w) => {
                        self.watch_events += w.events.len();
                        self.watch_cancels += usize::from(w.control.iter().any(|c| c.2));
                    }
                    _ => {}
                }
            }
            Err(_) => entry.1 += 1,
        }
    }

    fn ok(&self, kind: &str) -> usize {
        self.kinds.get(kind).map(|k| k.0).unwrap_or(0)
    }

    fn errors(&self) -> usize {
        self.kinds.values().map(|k| k.1).sum()
    }
}

/// Runs `ops` random operations from `seed` against both servers, panicking on the first
/// difference.
async fn run_seed(
    etcd: &mut Client,
    store: &mut Client,
    seed: u64,
    ops: usize,
    weights: [u32; 8],
    stats: &mut Stats,
) {
    let mut g = Gen {
        rng: StdRng::seed_from_u64(seed),
        weights,
    };
    // Pick up where a previous seed on the same pair left off.
    let probe = GetOptions::new().with_all_keys().with_count_only();
    let now = etcd.get("", Some(probe)).await.map_err(failure);
    let current = now
        .ok()
        .and_then(|r| r.0.header.map(|h| h.revision))
        .unwrap_or(1);
    let compacted = match etcd.hash_kv(0).await {
        Ok(h) => h.0.compact_revision,
        Err(e) => panic!("seed {seed}: HashKV on etcd: {e}"),
    };
    let mut m = Model {
        current,
        compacted: compacted.max(0),
    };
    for i in 0..ops {
        let op = g.op(&m);
        let label = format!("seed {seed}: op #{i} (NIWA_DIFF_SEED={seed} reruns it)");
        let _ = step(etcd, store, &op, &mut m, stats, &label).await;
    }
}

/// Runs one op on both servers, panics if the outcomes differ, and updates the model.
async fn step(
    etcd: &mut Client,
    store: &mut Client,
    op: &Op,
    m: &mut Model,
    stats: &mut Stats,
    label: &str,
) -> Outcome {
    let (e, s) = match op {
        Op::Watch(spec) => run_watch(etcd, store, spec, m.current).await,
        _ => tokio::join!(run_op(etcd, op), run_op(store, op)),
    };
    if e != s {
        panic!(
            "{label} differs\n\
             op: {op:?}\n\
             etcd:       {e:?}\n\
             niwa-store: {s:?}\n\
             model before the op: {m:?}"
        );
    }
    stats.count(op, &e);
    if let Ok(r) = &e {
        if let Some(rev) = header_revision(r) {
            m.current = rev;
        }
        if let Op::Compact { revision, .. } = op {
            m.compacted = *revision;
        }
    }
    e
}

fn seeds(default: &[u64]) -> Vec<u64> {
    match std::env::var("NIWA_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(seed) => vec![seed],
        None => default.to_vec(),
    }
}

async fn differential(default_seeds: &[u64], ops: usize, weights: [u32; 8]) -> Stats {
    let etcd_server = Etcd::start();
    let store_server = Store::start();
    let mut etcd = connect(&etcd_server.endpoint()).await;
    let mut store = connect(&store_server.endpoint()).await;
    // Seeds run one after another on the same pair, so later seeds start from a store with
    // history, compactions and leases left by earlier ones.
    let mut stats = Stats::default();
    let seeds = seeds(default_seeds);
    for seed in &seeds {
        run_seed(&mut etcd, &mut store, *seed, ops, weights, &mut stats).await;
    }
    eprintln!("seeds {seeds:?}: {stats:?}");
    let total = seeds.len() * ops;
    assert!(
        stats.errors() * 3 < total,
        "{} of {total} ops were errors; the generator should mostly produce valid requests",
        stats.errors()
    );
    assert!(
        stats.txn_branches[0] > 0 && stats.txn_branches[1] > 0,
        "txns took only one branch: {stats:?}"
    );
    stats
}

// Weights: put, get, delete, txn, compact, lease, watch, hashkv.

/// Mostly key-value traffic: puts, ranges with every option, deletes and txns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_and_txn_sequences_match_etcd() {
    let stats = differential(&[1, 2, 3, 4], 400, [30, 25, 12, 25, 2, 3, 2, 1]).await;
    for kind in ["put", "range", "delete", "txn"] {
        assert!(stats.ok(kind) > 50, "too few successful {kind}s: {stats:?}");
    }
}

/// History-heavy: compactions, reads at old revisions, HashKV, and watches from the past.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_history_and_watch_sequences_match_etcd() {
    let stats = differential(&[11, 12, 13], 300, [30, 20, 10, 12, 6, 4, 10, 8]).await;
    assert!(stats.ok("compact") > 10, "too few compactions: {stats:?}");
    assert!(stats.ok("hashkv") > 10, "too few HashKVs: {stats:?}");
    assert!(
        stats.watch_events > 100 && stats.watch_cancels > 0,
        "watches compared too little: {stats:?}"
    );
}

/// Lease-heavy: grants with explicit IDs, puts attached to leases, revokes deleting keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_sequences_match_etcd() {
    let stats = differential(&[21, 22, 23], 300, [25, 15, 8, 15, 2, 30, 4, 1]).await;
    for kind in ["lease_grant", "lease_revoke", "lease_ttl"] {
        assert!(stats.ok(kind) > 10, "too few successful {kind}s: {stats:?}");
    }
}

fn get(key: &str, sel: Sel) -> RangeSpec {
    RangeSpec {
        key: key.to_string(),
        sel,
        revision: 0,
        limit: 0,
        sort: None,
        keys_only: false,
        count_only: false,
        min_mod: 0,
        max_mod: 0,
        min_create: 0,
        max_create: 0,
    }
}

fn put(key: &str, value: &str) -> KvOp {
    KvOp::Put {
        key: key.to_string(),
        value: value.to_string(),
        lease: 0,
        prev_kv: true,
        ignore_value: false,
        ignore_lease: false,
    }
}

fn delete(key: &str, sel: Sel) -> KvOp {
    KvOp::Delete {
        key: key.to_string(),
        sel,
        prev_kv: true,
    }
}

fn txn(compares: Vec<Compare>, success: Vec<KvOp>, failure: Vec<KvOp>) -> KvOp {
    KvOp::Txn(TxnSpec {
        compares,
        success,
        failure,
    })
}

fn watch(start_revision: i64, key: &str, sel: Sel) -> Op {
    Op::Watch(WatchSpec {
        start_revision,
        key: key.to_string(),
        sel,
        prev_kv: true,
        filter: None,
    })
}

/// Hand-picked corner cases, run in order on a fresh pair: boundaries of revisions, compaction,
/// empty and inverted ranges, empty keys, lease limits, txn limits and nested duplicate keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corner_cases_match_etcd() {
    let etcd_server = Etcd::start();
    let store_server = Store::start();
    let mut etcd = connect(&etcd_server.endpoint()).await;
    let mut store = connect(&store_server.endpoint()).await;
    let mut m = Model {
        current: 1,
        compacted: 0,
    };
    let mut stats = Stats::default();
    let with = |f: fn(&mut RangeSpec), mut r: RangeSpec| {
        f(&mut r);
        r
    };
    let kv = Op::Kv;
    let ops: Vec<Op> = vec![
        // A fresh store.
        kv(KvOp::Get(get("k/a", Sel::Prefix))),
        Op::HashKv(0),
        Op::HashKv(1),
        Op::Compact {
            revision: 1,
            physical: false,
        },
        kv(put("k/a", "1")),
        kv(put("k/b", "2")),
        kv(put("k/a", "3")),
        // Revision boundaries.
        kv(KvOp::Get(with(|r| r.revision = -1, get("k/a", Sel::Key)))),
        kv(KvOp::Get(with(|r| r.revision = 1, get("k/a", Sel::Key)))),
        kv(KvOp::Get(with(|r| r.revision = 5, get("k/a", Sel::Key)))),
        kv(KvOp::Get(with(|r| r.revision = 6, get("k/a", Sel::Key)))),
        kv(KvOp::Get(with(|r| r.limit = -1, get("k/", Sel::Prefix)))),
        // Inverted and empty ranges; empty keys.
        kv(KvOp::Get(get("k/c", Sel::Range("k/a".into())))),
        kv(KvOp::Get(get("k/a", Sel::Range("k/a".into())))),
        kv(delete("k/c", Sel::Range("k/a".into()))),
        kv(KvOp::Get(get("", Sel::Key))),
        kv(put("", "x")),
        kv(delete("", Sel::Key)),
        kv(KvOp::Get(get("", Sel::FromKey))),
        kv(KvOp::Get(get("", Sel::Prefix))),
        // Txns: empty, read-only, nested duplicates, a range at a future revision inside.
        kv(txn(vec![], vec![], vec![])),
        kv(txn(vec![], vec![KvOp::Get(get("k/", Sel::Prefix))], vec![])),
        kv(txn(
            vec![],
            vec![put("k/c", "x"), txn(vec![], vec![put("k/c", "y")], vec![])],
            vec![],
        )),
        kv(txn(
            vec![],
            vec![txn(
                vec![Compare::version("k/a", CompareOp::Greater, 0)],
                vec![put("k/c", "then")],
                vec![put("k/c", "else")],
            )],
            vec![],
        )),
        kv(txn(
            vec![],
            vec![delete("k/", Sel::Prefix), put("k/a", "x")],
            vec![],
        )),
        kv(txn(
            vec![],
            vec![delete("k/", Sel::FromKey), put("k/a", "x")],
            vec![],
        )),
        kv(txn(
            vec![],
            vec![
                put("k/d", "x"),
                KvOp::Get(with(|r| r.revision = 100, get("k/a", Sel::Key))),
            ],
            vec![],
        )),
        kv(txn(
            vec![Compare::value("k/none", CompareOp::NotEqual, "x")],
            vec![put("k/d", "then")],
            vec![put("k/d", "else")],
        )),
        kv(txn(
            vec![Compare::version("k/", CompareOp::Equal, 0).with_prefix()],
            vec![put("k/e", "then")],
            vec![put("k/e", "else")],
        )),
        kv(txn(
            vec![],
            (0..129).map(|i| put(&format!("k/many/{i}"), "x")).collect(),
            vec![],
        )),
        kv(txn(
            vec![],
            (0..128).map(|i| put(&format!("k/many/{i}"), "x")).collect(),
            vec![],
        )),
        // Leases: limits, unknown IDs, revoking keys.
        Op::LeaseGrant { id: 7, ttl: 0 },
        Op::LeaseGrant { id: 8, ttl: -5 },
        Op::LeaseGrant {
            id: 9,
            ttl: 9_000_000_001,
        },
        Op::LeaseGrant { id: -3, ttl: 100 },
        Op::LeaseGrant { id: 10, ttl: 600 },
        Op::LeaseGrant { id: 10, ttl: 600 },
        Op::LeaseRevoke(0),
        Op::LeaseRevoke(11),
        Op::LeaseTimeToLive { id: 11, keys: true },
        kv(KvOp::Put {
            key: "k/leased".into(),
            value: "l".into(),
            lease: 10,
            prev_kv: false,
            ignore_value: false,
            ignore_lease: false,
        }),
        kv(KvOp::Put {
            key: "k/leased".into(),
            value: "".into(),
            lease: 0,
            prev_kv: true,
            ignore_value: true,
            ignore_lease: true,
        }),
        Op::LeaseTimeToLive { id: 10, keys: true },
        Op::LeaseLeases,
        Op::LeaseRevoke(10),
        Op::LeaseTimeToLive { id: 10, keys: true },
        // Watches: from the start, from the future, inverted range.
        watch(1, "k/", Sel::Prefix),
        watch(2, "k/c", Sel::Range("k/a".into())),
        // Compaction boundaries.
        Op::Compact {
            revision: 0,
            physical: true,
        },
        Op::Compact {
            revision: 4,
            physical: true,
        },
        Op::Compact {
            revision: 4,
            physical: true,
        },
        Op::Compact {
            revision: 3,
            physical: true,
        },
        Op::Compact {
            revision: 1000,
            physical: true,
        },
        Op::HashKv(4),
        Op::HashKv(5),
        Op::HashKv(0),
        kv(KvOp::Get(with(|r| r.revision = 3, get("k/a", Sel::Key)))),
        kv(KvOp::Get(with(|r| r.revision = 4, get("k/", Sel::Prefix)))),
        watch(3, "k/", Sel::Prefix),
        watch(4, "k/", Sel::Prefix),
        watch(5, "k/", Sel::Prefix),
    ];
    let n = ops.len();
    for (i, op) in ops.iter().enumerate() {
        let label = format!("corner case #{i}");
        let _ = step(&mut etcd, &mut store, op, &mut m, &mut stats, &label).await;
    }
    eprintln!("{n} corner cases: {stats:?}");
    let last = Op::Compact {
        revision: m.current,
        physical: true,
    };
    let _ = step(
        &mut etcd,
        &mut store,
        &last,
        &mut m,
        &mut stats,
        "final compaction",
    )
    .await;
    let after = watch(m.current, "k/", Sel::Prefix);
    let _ = step(
        &mut etcd,
        &mut store,
        &after,
        &mut m,
        &mut stats,
        "watch at the compaction",
    )
    .await;
}
