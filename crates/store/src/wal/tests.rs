//! The zeroed segment tail: frames overwrite zeros ahead of them, replay stops at the zeros, and a
//! torn write inside them is cut without giving the zeroed length up.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use super::record::{LeaseRecord, RecordKind, WalBatch, WalRecord, encode_frame};
use super::{Recovered, Wal, ZEROED_AHEAD, segment_path};
use crate::state::State;

fn open(dir: &Path) -> Recovered {
    Wal::open(dir, State::new(2, 1), Instant::now()).expect("open the WAL")
}

fn grant(wal: &mut Wal, id: i64) {
    let mut frame = Vec::new();
    let records = vec![WalRecord {
        kind: Some(RecordKind::LeaseGrant(LeaseRecord { id, ttl: 60 })),
    }];
    encode_frame(&WalBatch { records }, &mut frame);
    wal.write_frames(&frame).expect("write");
    wal.sync().expect("sync");
}

#[test]
fn segments_are_zeroed_ahead_and_replay_stops_at_the_zeros() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let mut wal = open(dir).wal;
    for id in 1..=3 {
        grant(&mut wal, id);
    }
    let segment = segment_path(dir, 1);
    let len = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    assert_eq!(len(&segment), ZEROED_AHEAD);
    let end = wal.offset;
    drop(wal);

    // Reopening replays the three frames and writes the next one right after them.
    let recovered = open(dir);
    assert_eq!(recovered.state.leases.len(), 3);
    assert_eq!(recovered.truncated_bytes, 0);
    let mut wal = recovered.wal;
    assert_eq!(wal.offset, end);
    grant(&mut wal, 4);
    let end = wal.offset;
    drop(wal);

    // A torn write inside the zeros (a later block of an unacknowledged frame) is zeroed again;
    // the segment keeps its zeroed length.
    let file = fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .expect("open segment");
    file.write_all_at(b"torn", end + 600).expect("garbage");
    drop(file);
    let recovered = open(dir);
    assert_eq!(recovered.state.leases.len(), 4);
    assert!(recovered.truncated_bytes > 0);
    assert_eq!(len(&segment), ZEROED_AHEAD);
    let bytes = fs::read(&segment).expect("read segment");
    assert!(bytes[end as usize..].iter().all(|b| *b == 0));
    drop(recovered);
    assert_eq!(open(dir).truncated_bytes, 0);
}
