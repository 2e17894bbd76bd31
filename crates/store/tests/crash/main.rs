//! Crash tests: `kill -9` niwa-store under concurrent write load (once and repeatedly), tear the
//! WAL tail, compact and restart, and check after every restart that
//! * every acknowledged write is there, at the revision its response reported;
//! * the history is gap-free: a watch from revision 2 replays every revision up to the current one
//!   exactly once, in order, with versions and create revisions consistent per key;
//! * everything a watcher saw before the crash is still there, and a watch resumed from the last
//!   revision it saw delivers exactly the rest;
//! * compaction survives restarts and reclaims disk space.
//!
//! Layout: `client` (connecting, the current revision, acknowledged writes, replaying the history),
//! `load` (the concurrent writers and the watcher running while the store is killed), `verify` (the
//! check after every restart), and the scenarios: `kill9`, `torn_wal`, `compaction`. The store
//! process itself (start, `kill -9`, graceful stop, restart) is `common::Store`, shared with the
//! other store tests.

#[path = "../common/mod.rs"]
mod common;

mod client;
mod compaction;
mod kill9;
mod load;
mod torn_wal;
mod verify;
