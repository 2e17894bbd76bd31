//! Reply lanes: a lane thread's writes are answered through its lane task, other threads' writes
//! directly by the sync thread.

use std::path::Path;
use std::time::Duration;

use etcd_client::proto::PbPutRequest as PutRequest;

use super::{Engine, EngineConfig, WriteOp, WriteReply};

fn open(dir: &Path) -> Engine {
    let (engine, _sync) = Engine::open(&EngineConfig {
        data_dir: dir.to_path_buf(),
        lease_min_ttl: 2,
        commit_metrics: Default::default(),
    })
    .expect("open the engine");
    engine
}

fn put(key: &str) -> WriteOp {
    WriteOp::Put(PutRequest {
        key: key.as_bytes().to_vec(),
        value: b"v".to_vec(),
        ..PutRequest::default()
    })
}

fn revision(reply: WriteReply) -> i64 {
    match reply {
        WriteReply::Put(resp) => resp.header.expect("header").revision,
        other => panic!("not a put reply: {other:?}"),
    }
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn a_lane_answers_its_threads_writes_in_one_group() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let engine = open(tmp.path());
    current_thread().block_on(async {
        let lane = engine.reply_lane();
        // Until the lane task runs, nothing answers this thread's writes: they are routed to it.
        let pending = tokio::time::timeout(Duration::from_millis(300), engine.write(put("/a")));
        assert!(
            pending.await.is_err(),
            "a lane's write was answered elsewhere"
        );

        tokio::spawn(lane);
        let writes = (0..64).map(|i| engine.write(put(&format!("/k/{i}"))));
        let replies =
            tokio::time::timeout(Duration::from_secs(10), futures::future::join_all(writes))
                .await
                .expect("the lane answers");
        let revisions: Vec<i64> = replies
            .into_iter()
            .map(|r| revision(r.expect("put")))
            .collect();
        // Applied in order on one thread, so answered with consecutive revisions.
        let first = revisions[0];
        assert_eq!(revisions, (first..first + 64).collect::<Vec<_>>());
        assert!(engine.committed() >= first + 63);
    });
}

#[test]
fn other_threads_and_other_engines_are_answered_directly() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (a, b) = (open(&tmp.path().join("a")), open(&tmp.path().join("b")));
    // This thread is a lane of `a` whose task never runs: `b`'s writes must not be routed to it.
    let _lane = a.reply_lane();
    let rt = current_thread();
    let reply = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), b.write(put("/b"))).await
    });
    assert!(revision(reply.expect("answered").expect("put")) > 1);
    // A thread that is no lane at all.
    let reply = std::thread::spawn(move || {
        current_thread().block_on(async {
            tokio::time::timeout(Duration::from_secs(10), a.write(put("/a"))).await
        })
    })
    .join()
    .expect("thread");
    assert!(revision(reply.expect("answered").expect("put")) > 1);
}
