//! Garbage at the WAL tail, as a crash in the middle of an append leaves it: cut off on restart.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::client::put_many;
use crate::common::Store;
use crate::verify::verify;

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
