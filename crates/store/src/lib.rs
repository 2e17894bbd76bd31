//! # niwa-store
//!
//! An etcd-v3-API-compatible MVCC key-value store: the embedded default store of niwa, and a
//! drop-in for a single etcd member (`etcdctl` and the `etcd-client` crate work against it).
//!
//! Where to start reading:
//! * [`mvcc`] — the IO-free core: revisions, key history, range/txn/compaction semantics.
//! * [`engine`] — applies writes and group-commits them to the [`wal`] on one sync thread, which
//!   acknowledges them and publishes to watchers once they are durable.
//! * [`watch`] — the bounded fan-out hub and the per-stream watch state machine.
//! * [`grpc`] — thin tonic shells implementing etcd's KV, Watch, Lease, Maintenance and Cluster.
//! * [`server::run`] — wiring and the one shutdown path; `main.rs` only parses flags.
//! * [`coalesce`] — the connection wrapper that sends one HTTP/2 flush with one `write`.

pub mod coalesce;
pub mod engine;
pub mod error;
pub mod grpc;
pub mod header;
pub mod http;
pub mod lease;
pub mod metrics;
pub mod mvcc;
pub mod server;
pub mod state;
pub mod wal;
pub mod watch;

pub use server::{ServeError, StoreConfig, run};
