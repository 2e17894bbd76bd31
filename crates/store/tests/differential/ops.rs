//! The operations the differential test runs, and how each becomes an `etcd-client` request.

use etcd_client::{
    Compare, DeleteOptions, GetOptions, PutOptions, SortOrder, SortTarget, Txn, TxnOp,
    WatchFilterType,
};

/// Which keys an operation covers, relative to its key.
#[derive(Debug, Clone)]
pub(crate) enum Sel {
    Key,
    Prefix,
    FromKey,
    Range(String),
}

#[derive(Debug, Clone)]
pub(crate) struct RangeSpec {
    pub(crate) key: String,
    pub(crate) sel: Sel,
    pub(crate) revision: i64,
    pub(crate) limit: i64,
    pub(crate) sort: Option<(SortTarget, SortOrder)>,
    pub(crate) keys_only: bool,
    pub(crate) count_only: bool,
    pub(crate) min_mod: i64,
    pub(crate) max_mod: i64,
    pub(crate) min_create: i64,
    pub(crate) max_create: i64,
}

impl RangeSpec {
    pub(crate) fn options(&self) -> GetOptions {
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
pub(crate) enum KvOp {
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
pub(crate) struct TxnSpec {
    pub(crate) compares: Vec<Compare>,
    pub(crate) success: Vec<KvOp>,
    pub(crate) failure: Vec<KvOp>,
}

impl TxnSpec {
    pub(crate) fn build(&self) -> Txn {
        Txn::new()
            .when(self.compares.clone())
            .and_then(self.success.iter().map(txn_op).collect::<Vec<_>>())
            .or_else(self.failure.iter().map(txn_op).collect::<Vec<_>>())
    }
}

pub(crate) fn put_options(
    lease: i64,
    prev_kv: bool,
    ignore_value: bool,
    ignore_lease: bool,
) -> PutOptions {
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

pub(crate) fn delete_options(sel: &Sel, prev_kv: bool) -> DeleteOptions {
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
pub(crate) struct WatchSpec {
    pub(crate) start_revision: i64,
    /// The narrower watch compared after the all-keys one.
    pub(crate) key: String,
    pub(crate) sel: Sel,
    pub(crate) prev_kv: bool,
    pub(crate) filter: Option<WatchFilterType>,
}

#[derive(Debug, Clone)]
pub(crate) enum Op {
    Kv(KvOp),
    Compact { revision: i64, physical: bool },
    HashKv(i64),
    LeaseGrant { id: i64, ttl: i64 },
    LeaseRevoke(i64),
    LeaseTimeToLive { id: i64, keys: bool },
    LeaseLeases,
    Watch(WatchSpec),
}
