//! Crash tests: `kill -9` niwa-store under concurrent write load (once and repeatedly), tear the
//! WAL tail, compact and restart, and check after every restart that
//! * every acknowledged write is there, at the revision its response reported;
//! * the history is gap-free: a watch from revision 2 replays every revision up to the current one
//!   exactly once, in order, with versions and create revisions consistent per key;
//! * everything a watcher saw before the crash is still there, and a watch resumed from the last
//!   revision it saw delivers exactly the rest;
//! * compaction survives restarts and reclaims disk space.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Store, data_dir_size};
use etcd_client::proto::PbEvent;
use etcd_client::{Client, CompactionOptions, GetOptions, WatchOptions};
use parking_lot::Mutex;

/// A write the store acknowledged: it must survive any crash at exactly this revision.
#[derive(Debug, Clone)]
struct Ack {
    key: String,
    value: String,
    revision: i64,
}

async fn connect(store: &Store) -> Client {
    let endpoint = format!("http://{}", store.endpoint());
    match Client::connect([endpoint.as_str()], None).await {
        Ok(c) => c,
        Err(e) => panic!("connecting to {endpoint}: {e}"),
    }
}

/// The store's current revision (a linearizable count-only range over all keys). Retries for a
/// while, since right after a restart the store may still be replaying its log.
async fn current_revision(c: &mut Client) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let opts = GetOptions::new().with_all_keys().with_count_only();
        match c.get("", Some(opts)).await {
            Ok(r) => return r.header().map(|h| h.revision()).unwrap_or(0),
            Err(e) if Instant::now() > deadline => panic!("store does not answer: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Concurrent writers putting keys until told to stop or until the store goes away.
struct Load {
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<Ack>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// `writers` tasks, each with its own connection, overwriting `keys_per_writer` keys of its own.
    async fn start(store: &Store, round: usize, writers: usize, keys_per_writer: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for w in 0..writers {
            let mut client = connect(store).await;
            let stop = stop.clone();
            let acks = acks.clone();
            tasks.push(tokio::spawn(async move {
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("r{round}/w{w}/{}", i % keys_per_writer);
                    let value = format!("r{round}-w{w}-{i}");
                    let put = client.put(key.as_str(), value.as_str(), None);
                    match tokio::time::timeout(Duration::from_secs(10), put).await {
                        Ok(Ok(resp)) => {
                            let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
                            acks.lock().push(Ack {
                                key,
                                value,
                                revision,
                            });
                        }
                        // The store died (or hung): this write is not acknowledged; stop.
                        _ => break,
                    }
                    i += 1;
                }
            }));
        }
        Load { stop, acks, tasks }
    }

    fn acked(&self) -> usize {
        self.acks.lock().len()
    }

    /// Waits until at least `n` writes were acknowledged.
    async fn wait_for_acks(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.acked() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} writes acknowledged within 60 s",
                self.acked()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the writers (they also stop by themselves once the store is gone) and returns every
    /// acknowledged write.
    async fn finish(self) -> Vec<Ack> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            if tokio::time::timeout(Duration::from_secs(20), t)
                .await
                .is_err()
            {
                panic!("a writer did not stop within 20 s");
            }
        }
        self.acks.lock().clone()
    }
}

/// A watch on all keys running in the background, recording every event it sees until the stream
/// breaks (the store was killed).
struct Watcher {
    events: Arc<Mutex<Vec<PbEvent>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    async fn start(store: &Store, from: i64) -> Watcher {
        let mut client = connect(store).await;
        let opts = WatchOptions::new()
            .with_all_keys()
            .with_start_revision(from);
        let mut stream = match client.watch("", Some(opts)).await {
            Ok(s) => s,
            Err(e) => panic!("watch: {e}"),
        };
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let task = tokio::spawn(async move {
            let _client = client;
            while let Ok(Some(resp)) = stream.message().await {
                if resp.canceled() {
                    break;
                }
                sink.lock().extend(resp.0.events);
            }
        });
        Watcher { events, task }
    }

    /// Waits for the stream to end (after the crash) and returns what it saw.
    async fn finish(self) -> Vec<PbEvent> {
        if tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .is_err()
        {
            panic!("the watch stream did not end within 20 s of the crash");
        }
        self.events.lock().clone()
    }
}

fn event_rev(e: &PbEvent) -> i64 {
    e.kv.as_ref().map(|kv| kv.mod_revision).unwrap_or(0)
}

/// Every event from `from` up to revision `to` on all keys.
async fn replay(c: &mut Client, from: i64, to: i64) -> Vec<PbEvent> {
    let opts = WatchOptions::new()
        .with_all_keys()
        .with_start_revision(from);
    let mut stream = match c.watch("", Some(opts)).await {
        Ok(s) => s,
        Err(e) => panic!("watch: {e}"),
    };
    let mut events: Vec<PbEvent> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while from <= to && events.last().map(event_rev).unwrap_or(0) < to {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.message()).await {
            Ok(Ok(Some(resp))) => {
                assert!(
                    !resp.canceled(),
                    "replay from {from} was canceled: {:?}",
                    resp.0
                );
                events.extend(resp.0.events);
            }
            Ok(Ok(None)) => panic!("watch stream ended during replay"),
            Ok(Err(e)) => panic!("watch failed during replay: {e}"),
            Err(_) => panic!(
                "replay from {from} to {to} stalled at revision {:?} after {} events",
                events.last().map(event_rev),
                events.len()
            ),
        }
    }
    events
}

/// Checks the whole history of a put-only store: revisions 2..=current each exactly once, in order;
/// per key consecutive versions and a stable create revision; every acknowledged write at its
/// revision; everything a pre-crash watcher saw unchanged; a watch resumed after the last revision
/// that watcher saw delivering exactly the rest; and the latest values served by Range.
/// Returns the current revision.
async fn verify(store: &Store, acks: &[Ack], seen_before_crash: &[PbEvent]) -> i64 {
    let mut c = connect(store).await;
    let current = current_revision(&mut c).await;
    let events = replay(&mut c, 2, current).await;

    // Gap-free, duplicate-free, in order: a put-only history has one event per revision.
    assert_eq!(
        events.len() as i64,
        current - 1,
        "replay of revisions 2..={current} returned {} events",
        events.len()
    );
    for (i, e) in events.iter().enumerate() {
        assert_eq!(
            event_rev(e),
            i as i64 + 2,
            "event #{i} of the replay has the wrong revision: {e:?}"
        );
        assert_eq!(
            e.r#type, 0,
            "unexpected delete in a put-only history: {e:?}"
        );
    }

    // Per key: versions count up from 1, the create revision is the first put's.
    let mut latest: BTreeMap<Vec<u8>, (i64, i64, Vec<u8>)> = BTreeMap::new();
    for e in &events {
        let Some(kv) = &e.kv else {
            panic!("event without kv: {e:?}")
        };
        let (create, version) = match latest.get(&kv.key) {
            Some((create, version, _)) => (*create, version + 1),
            None => (kv.mod_revision, 1),
        };
        assert_eq!(
            (kv.create_revision, kv.version),
            (create, version),
            "inconsistent create revision / version for {:?} at revision {}",
            String::from_utf8_lossy(&kv.key),
            kv.mod_revision
        );
        latest.insert(kv.key.clone(), (create, version, kv.value.clone()));
    }

    // Every acknowledged write, at the revision its response reported.
    for ack in acks {
        assert!(
            ack.revision >= 2 && ack.revision <= current,
            "acknowledged write {ack:?} is beyond the recovered revision {current}"
        );
        let e = &events[(ack.revision - 2) as usize];
        let kv = e.kv.as_ref();
        assert_eq!(
            kv.map(|kv| (kv.key.as_slice(), kv.value.as_slice())),
            Some((ack.key.as_bytes(), ack.value.as_bytes())),
            "acknowledged write {ack:?} is not in the recovered history"
        );
    }

    // What a watcher saw before the crash was durable: it must be there unchanged.
    for e in seen_before_crash {
        let rev = event_rev(e);
        assert!(
            rev >= 2 && rev <= current,
            "a watcher saw revision {rev} before the crash, but the store recovered only up to {current}"
        );
        assert_eq!(
            &events[(rev - 2) as usize],
            e,
            "the event a watcher saw at revision {rev} changed across the crash"
        );
    }

    // A watch resumed from the last revision seen misses nothing and repeats nothing.
    if let Some(last) = seen_before_crash.last().map(event_rev) {
        let resumed = replay(&mut c, last + 1, current).await;
        assert_eq!(
            resumed.as_slice(),
            &events[(last - 1) as usize..],
            "a watch resumed from revision {} differs from the replayed history",
            last + 1
        );
    }

    // Range serves the latest value of every key.
    let all = match c.get("", Some(GetOptions::new().with_all_keys())).await {
        Ok(r) => r,
        Err(e) => panic!("range over all keys: {e}"),
    };
    let served: BTreeMap<Vec<u8>, (i64, i64, Vec<u8>)> = all
        .kvs()
        .iter()
        .map(|kv| {
            (
                kv.key().to_vec(),
                (kv.create_revision(), kv.version(), kv.value().to_vec()),
            )
        })
        .collect();
    assert_eq!(served, latest, "Range disagrees with the replayed history");
    current
}

/// One crash under load: start writers and a watcher, kill -9 after `min_acks` acknowledged
/// writes, restart, verify. Returns the acknowledged writes of this round.
async fn crash_round(store: &mut Store, round: usize, min_acks: usize, all_acks: &mut Vec<Ack>) {
    let mut c = connect(store).await;
    let from = current_revision(&mut c).await + 1;
    let watcher = Watcher::start(store, from).await;
    let load = Load::start(store, round, 8, 40).await;
    load.wait_for_acks(min_acks).await;
    store.kill9();
    let acks = load.finish().await;
    let seen = watcher.finish().await;
    assert!(acks.len() >= min_acks);
    let acked = acks.len();
    all_acks.extend(acks);
    store.restart();
    let current = verify(store, all_acks, &seen).await;
    eprintln!(
        "round {round}: {acked} writes acknowledged, the watcher saw {} events, recovered revision {current}",
        seen.len()
    );

    // New writes continue right after the recovered revision: no revision is handed out twice.
    let mut c = connect(store).await;
    let resp = match c.put(format!("r{round}/after"), "x", None).await {
        Ok(r) => r,
        Err(e) => panic!("put after restart: {e}"),
    };
    let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
    assert_eq!(rev, current + 1, "the first write after restart");
    all_acks.push(Ack {
        key: format!("r{round}/after"),
        value: "x".into(),
        revision: rev,
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_under_load_keeps_every_acknowledged_write() {
    let mut store = Store::start();
    let mut acks = Vec::new();
    crash_round(&mut store, 0, 1500, &mut acks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_kill9_under_load() {
    let mut store = Store::start();
    let mut acks = Vec::new();
    for round in 0..5 {
        crash_round(&mut store, round, 300, &mut acks).await;
    }
    // A graceful stop after all that loses nothing either.
    store.stop();
    store.restart();
    verify(&store, &acks, &[]).await;
}

/// The newest WAL segment (the one being appended to).
fn newest_segment(dir: &Path) -> PathBuf {
    let wal = dir.join("wal");
    let newest = std::fs::read_dir(&wal)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .max()
        })
        .ok()
        .flatten();
    match newest {
        Some(p) => p,
        None => panic!("no WAL segment in {}", wal.display()),
    }
}

fn append(path: &Path, bytes: &[u8]) {
    let appended = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()));
    if let Err(e) = appended {
        panic!("appending to {}: {e}", path.display());
    }
}

async fn put_many(store: &Store, prefix: &str, n: usize) -> Vec<Ack> {
    let mut c = connect(store).await;
    let mut acks = Vec::new();
    for i in 0..n {
        let key = format!("{prefix}/{}", i % 17);
        let value = format!("{prefix}-{i}");
        let resp = match c.put(key.as_str(), value.as_str(), None).await {
            Ok(r) => r,
            Err(e) => panic!("put {key}: {e}"),
        };
        acks.push(Ack {
            key,
            value,
            revision: resp.header().map(|h| h.revision()).unwrap_or(0),
        });
    }
    acks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_wal_tail_is_cut_and_the_rest_recovered() {
    let mut store = Store::start();
    let mut acks = put_many(&store, "a", 100).await;

    // Garbage of several shapes, as a crash in the middle of an append can leave: random bytes, a
    // frame header promising more than is there, a complete frame with a wrong checksum, and a
    // lone partial header.
    let mut frame_bad_crc = Vec::new();
    frame_bad_crc.extend_from_slice(&6u32.to_le_bytes());
    frame_bad_crc.extend_from_slice(&0xdead_beefu32.to_le_bytes());
    frame_bad_crc.extend_from_slice(&[0x0a, 0x04, 0x28, 0x07, 0x00, 0x00]);
    let mut frame_short = Vec::new();
    frame_short.extend_from_slice(&4096u32.to_le_bytes());
    frame_short.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    let garbage: [&[u8]; 4] = [
        &[
            0x5a, 0x13, 0xff, 0x00, 0x81, 0x7e, 0x42, 0x99, 0x01, 0xc3, 0x66, 0x2d,
        ],
        &frame_short,
        &frame_bad_crc,
        &[0x10, 0x00],
    ];
    for (i, junk) in garbage.iter().enumerate() {
        store.kill9();
        let segment = newest_segment(&store.dir);
        let len_before = std::fs::metadata(&segment).map(|m| m.len()).unwrap_or(0);
        append(&segment, junk);
        store.restart();
        verify(&store, &acks, &[]).await;
        assert!(
            store.log().contains("torn"),
            "the store should log that it cut garbage #{i} off the WAL tail:\n{}",
            store.log()
        );
        // The tail was cut back, so what is written next is not stuck behind garbage: it
        // survives the next restart too.
        let len_after_restart = std::fs::metadata(&segment).map(|m| m.len()).unwrap_or(0);
        assert_eq!(
            len_after_restart,
            len_before,
            "garbage #{i} was not cut off {}",
            segment.display()
        );
        acks.extend(put_many(&store, &format!("b{i}"), 20).await);
        store.kill9();
        store.restart();
        verify(&store, &acks, &[]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_survives_restart_and_reclaims_space() {
    let mut store = Store::start();
    let mut c = connect(&store).await;
    // Many overwrites of a few keys with large values.
    let value = "x".repeat(2048);
    let mut last: HashMap<String, String> = HashMap::new();
    for i in 0..1500 {
        let key = format!("big/{}", i % 10);
        let v = format!("{i}-{value}");
        if let Err(e) = c.put(key.as_str(), v.as_str(), None).await {
            panic!("put: {e}");
        }
        last.insert(key, v);
    }
    let before = data_dir_size(&store.dir);
    let current = current_revision(&mut c).await;
    assert!(before > 1500 * 2048, "data dir only {before} bytes");

    let compact_at = current - 5;
    if let Err(e) = c
        .compact(compact_at, Some(CompactionOptions::new().with_physical()))
        .await
    {
        panic!("compact: {e}");
    }
    // The snapshot and segment cleanup run in the background: poll for the space to come back.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = data_dir_size(&store.dir);
    while after * 4 > before {
        assert!(
            Instant::now() < deadline,
            "disk usage {before} -> {after} bytes after compacting 1500 revisions of 10 keys"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = data_dir_size(&store.dir);
    }

    let check = |store: &Store| {
        let store_endpoint = store.endpoint();
        let last = last.clone();
        async move {
            let endpoint = format!("http://{store_endpoint}");
            let mut c = match Client::connect([endpoint.as_str()], None).await {
                Ok(c) => c,
                Err(e) => panic!("connect: {e}"),
            };
            assert_eq!(
                current_revision(&mut c).await,
                current,
                "revision after restart"
            );
            // Latest values intact.
            for (key, v) in &last {
                let got = match c.get(key.as_str(), None).await {
                    Ok(r) => r.kvs().first().map(|kv| kv.value().to_vec()),
                    Err(e) => panic!("get {key}: {e}"),
                };
                assert_eq!(got.as_deref(), Some(v.as_bytes()), "value of {key}");
            }
            // The compaction revision was kept: older revisions are gone, it itself is readable.
            match c
                .get(
                    "big/0",
                    Some(GetOptions::new().with_revision(compact_at - 1)),
                )
                .await
            {
                Err(etcd_client::Error::GRpcStatus(s)) => {
                    assert_eq!(s.code(), tonic::Code::OutOfRange);
                    assert_eq!(
                        s.message(),
                        "etcdserver: mvcc: required revision has been compacted"
                    );
                }
                other => panic!("range below the compaction revision: {other:?}"),
            }
            if let Err(e) = c
                .get("big/0", Some(GetOptions::new().with_revision(compact_at)))
                .await
            {
                panic!("range at the compaction revision: {e}");
            }
            match c.hash_kv(0).await {
                Ok(h) => assert_eq!(h.compact_version(), compact_at),
                Err(e) => panic!("hashkv: {e}"),
            }
            // History after the compaction revision is still watchable.
            let events = replay(&mut c, compact_at, current).await;
            assert_eq!(events.len() as i64, current - compact_at + 1);
        }
    };
    check(&store).await;

    // Graceful stop, then kill -9: both keep data and compaction.
    store.stop();
    store.restart();
    check(&store).await;
    store.kill9();
    store.restart();
    check(&store).await;
    assert!(
        data_dir_size(&store.dir) * 4 <= before,
        "disk usage grew back after restarts"
    );

    // Compact again and crash right away, before the background snapshot can finish.
    let mut c = connect(&store).await;
    if let Err(e) = c.compact(current, None).await {
        panic!("second compact: {e}");
    }
    store.kill9();
    store.restart();
    let mut c = connect(&store).await;
    match c.hash_kv(0).await {
        Ok(h) => assert_eq!(h.compact_version(), current, "second compaction lost"),
        Err(e) => panic!("hashkv: {e}"),
    }
    for (key, v) in &last {
        let got = match c.get(key.as_str(), None).await {
            Ok(r) => r.kvs().first().map(|kv| kv.value().to_vec()),
            Err(e) => panic!("get {key}: {e}"),
        };
        assert_eq!(got.as_deref(), Some(v.as_bytes()), "value of {key}");
    }
}
