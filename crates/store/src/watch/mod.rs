//! Watches: the hub that fans committed changes out, and the per-stream state machine that turns them
//! into etcd `WatchResponse`s.
pub mod hub;
pub mod stream;
