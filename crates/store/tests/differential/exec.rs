//! Running an operation on one server (or a watch on both) and collecting its normalized outcome.

use std::time::{Duration, Instant};

use etcd_client::proto::PbEvent;
use etcd_client::{
    Client, CompactionOptions, LeaseGrantOptions, LeaseTimeToLiveOptions, WatchFilterType,
    WatchOptions,
};

use crate::compare::{Outcome, Resp, failure, norm_header, norm_range, norm_txn};
use crate::ops::{KvOp, Op, Sel, WatchSpec, delete_options, put_options};

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

pub(crate) async fn run_op(c: &mut Client, op: &Op) -> Outcome {
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
pub(crate) struct WatchOutcome {
    pub(crate) control: Vec<(i64, bool, bool, i64, String, i64)>,
    pub(crate) events: Vec<PbEvent>,
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
pub(crate) async fn run_watch(
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

pub(crate) async fn connect(endpoint: &str) -> Client {
    match Client::connect([format!("http://{endpoint}")], None).await {
        Ok(c) => c,
        Err(e) => panic!("connecting to {endpoint}: {e}"),
    }
}
