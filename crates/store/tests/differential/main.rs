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
//!
//! Layout: `ops` (the operations and their requests), `generate` (the seeded generator), `exec`
//! (running them), `compare` (normalized outcomes), `runner` (sequences on a server pair) and
//! `scenarios` (the tests).

#[path = "../common/mod.rs"]
mod common;
mod compare;
mod exec;
mod generate;
mod ops;
mod runner;
mod scenarios;
