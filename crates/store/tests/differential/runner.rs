//! Running seeded sequences on an etcd / niwa-store pair: one op on both servers with the
//! comparison, the model update and the statistics of what was exercised.

use etcd_client::{Client, GetOptions};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::common::{Etcd, Store};
use crate::compare::{Outcome, Resp, failure, header_revision};
use crate::exec::{connect, run_op, run_watch};
use crate::generate::{Gen, Model};
use crate::ops::{KvOp, Op};

/// What a run exercised, so the test can insist that it compared something meaningful.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// op kind → (successes, errors)
    pub(crate) kinds: std::collections::BTreeMap<&'static str, (usize, usize)>,
    pub(crate) txn_branches: [usize; 2],
    pub(crate) watch_events: usize,
    pub(crate) watch_cancels: usize,
}

impl Stats {
    pub(crate) fn count(&mut self, op: &Op, outcome: &Outcome) {
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

    pub(crate) fn ok(&self, kind: &str) -> usize {
        self.kinds.get(kind).map(|k| k.0).unwrap_or(0)
    }

    pub(crate) fn errors(&self) -> usize {
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
pub(crate) async fn step(
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

pub(crate) async fn differential(default_seeds: &[u64], ops: usize, weights: [u32; 8]) -> Stats {
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
