//! Durability: a write-ahead log of group-committed batches plus a snapshot rewritten on compaction.
//!
//! Layout of the data dir: `snapshot` (the state as of the start of segment `next_segment`) and
//! `wal/<seq>.log` segments. Every write request appends one frame, and frames are `fdatasync`ed
//! before any client hears back (many frames per sync: the engine's group commit). Start-up loads
//! the snapshot, replays the segments after it, and cuts a torn frame off the tail of the last
//! segment (a crash mid-append). Compaction and defragmentation rotate to a new segment and write a
//! fresh snapshot in the background; once it is renamed into place the older segments are deleted,
//! which is how space is reclaimed.
//!
//! Why a log and not redb/fjall: the whole MVCC index lives in memory anyway (as etcd's does), so the
//! disk only has to make commits durable and rebuild the index at start-up. An append + `fdatasync`
//! per group commit is the cheapest durable write there is; see docs/BENCHMARKS.md for the figures.

pub mod record;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use record::{Frame, RecordKind, WalBatch, decode_frame, encode_frame};

use crate::error::WalError;
use crate::state::State;

const SNAPSHOT_FILE: &str = "snapshot";
const SNAPSHOT_TMP: &str = "snapshot.tmp";
const WAL_DIR: &str = "wal";

/// How far ahead of the write position a segment is filled with zeros. Appending to a file makes
/// every `fdatasync` write the inode (its size) and allocate blocks as well as the data; overwriting
/// zeros that an earlier sync already made durable writes the data only, which roughly halves the
/// sync time on this project's disk (docs/BENCHMARKS.md). The zeros cost one larger sync per
/// megabyte of log; replay stops at them.
const ZEROED_AHEAD: u64 = 1 << 20;
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(WAL_DIR).join(format!("{seq:016}.log"))
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// The open write-ahead log.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    segment: File,
    seq: u64,
    /// Where the next frame goes: the end of the last frame in the segment.
    offset: u64,
    /// The segment's length; everything from `offset` to here is zeros.
    allocated: u64,
    /// Bytes of snapshot plus segments on disk, shared with the Status RPC.
    disk_bytes: Arc<AtomicU64>,
    pub cluster_id: u64,
    pub member_id: u64,
}

/// What start-up recovered.
#[derive(Debug)]
pub struct Recovered {
    pub state: State,
    pub wal: Wal,
    /// Bytes cut off a torn tail, if any (logged by the caller).
    pub truncated_bytes: u64,
}

fn read_file(path: &Path) -> Result<Vec<u8>, WalError> {
    let mut buf = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut buf))
        .map_err(io_err(path))?;
    Ok(buf)
}

fn list_segments(dir: &Path) -> Result<Vec<u64>, WalError> {
    let wal_dir = dir.join(WAL_DIR);
    let mut seqs: Vec<u64> = fs::read_dir(&wal_dir)
        .map_err(io_err(&wal_dir))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".log")?.parse::<u64>().ok()
        })
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
}

impl Wal {
    /// Opens (or initialises) the data dir and rebuilds the state from it.
    pub fn open(dir: &Path, mut state: State, now: Instant) -> Result<Recovered, WalError> {
        fs::create_dir_all(dir.join(WAL_DIR)).map_err(io_err(dir))?;
        let snap_path = dir.join(SNAPSHOT_FILE);
        let fresh = !snap_path.exists();
        let (mut cluster_id, mut member_id, mut next_segment) = (0, 0, 1);
        if fresh {
            cluster_id = rand::random::<u64>() >> 1;
            member_id = rand::random::<u64>() >> 1;
            let batches = state.snapshot(1, cluster_id, member_id);
            write_snapshot_file(dir, &batches)?;
        } else {
            let buf = read_file(&snap_path)?;
            let mut offset = 0;
            while offset < buf.len() {
                match decode_frame(&buf[offset..]) {
                    Frame::Ok { batch, len } => {
                        for rec in batch.records.into_iter().filter_map(|r| r.kind) {
                            if let RecordKind::Header(h) = &rec {
                                cluster_id = h.cluster_id;
                                member_id = h.member_id;
                                next_segment = h.next_segment;
                            }
                            state.replay(rec, now);
                        }
                        offset += len;
                    }
                    Frame::Incomplete | Frame::End => {
                        return Err(WalError::Corrupt {
                            path: snap_path,
                            offset: offset as u64,
                            reason: "truncated snapshot".into(),
                        });
                    }
                    Frame::Corrupt(reason) => {
                        return Err(WalError::Corrupt {
                            path: snap_path,
                            offset: offset as u64,
                            reason,
                        });
                    }
                }
            }
        }

        let segments: Vec<u64> = list_segments(dir)?
            .into_iter()
            .filter(|s| *s >= next_segment)
            .collect();
        let mut truncated_bytes = 0;
        let mut tail_offset = 0;
        for (i, seq) in segments.iter().enumerate() {
            let path = segment_path(dir, *seq);
            let buf = read_file(&path)?;
            let mut offset = 0;
            while offset < buf.len() {
                match decode_frame(&buf[offset..]) {
                    Frame::Ok { batch, len } => {
                        for rec in batch.records.into_iter().filter_map(|r| r.kind) {
                            state.replay(rec, now);
                        }
                        offset += len;
                    }
                    Frame::End if buf[offset..].iter().all(|b| *b == 0) => break,
                    // A crash mid-append leaves a partial or garbled last frame (or a later block of
                    // it without the first): nothing in it was acknowledged, so it is cut off.
                    // Damage anywhere else is real corruption.
                    _ if i + 1 == segments.len() => {
                        truncated_bytes = (buf.len() - offset) as u64;
                        cut_torn_tail(&path, &buf, offset)?;
                        break;
                    }
                    Frame::End => {
                        return Err(WalError::Corrupt {
                            path,
                            offset: offset as u64,
                            reason: "data after the end of a sealed segment".into(),
                        });
                    }
                    Frame::Incomplete => {
                        return Err(WalError::Corrupt {
                            path,
                            offset: offset as u64,
                            reason: "truncated frame in a sealed segment".into(),
                        });
                    }
                    Frame::Corrupt(reason) => {
                        return Err(WalError::Corrupt {
                            path,
                            offset: offset as u64,
                            reason,
                        });
                    }
                }
            }
            tail_offset = offset as u64;
        }
        state.finish_replay(now);

        let seq = segments.last().copied().unwrap_or(next_segment);
        let path = segment_path(dir, seq);
        let segment = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(&path))?;
        let allocated = segment.metadata().map_err(io_err(&path))?.len();
        sync_dir(&dir.join(WAL_DIR))?;
        let wal = Wal {
            dir: dir.to_path_buf(),
            segment,
            seq,
            offset: tail_offset.min(allocated),
            allocated,
            disk_bytes: Arc::new(AtomicU64::new(0)),
            cluster_id,
            member_id,
        };
        wal.refresh_disk_bytes();
        Ok(Recovered {
            state,
            wal,
            truncated_bytes,
        })
    }

    pub fn disk_bytes(&self) -> Arc<AtomicU64> {
        self.disk_bytes.clone()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends already encoded frames ([`encode_frame`]) to the open segment without syncing them.
    pub fn write_frames(&mut self, frames: &[u8]) -> Result<(), WalError> {
        // The path is built only for an error: joining it per call was 2 % of the store's CPU.
        let failed = |source| WalError::Io {
            path: segment_path(&self.dir, self.seq),
            source,
        };
        self.segment
            .write_all_at(frames, self.offset)
            .map_err(failed)?;
        self.offset += frames.len() as u64;
        if self.offset > self.allocated {
            let to = self.offset.next_multiple_of(ZEROED_AHEAD);
            write_zeros(&self.segment, self.offset, to).map_err(failed)?;
            self.allocated = to;
        }
        self.disk_bytes
            .fetch_add(frames.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// `fdatasync`s the open segment: everything written to it so far is durable on return.
    pub fn sync(&self) -> Result<(), WalError> {
        self.segment.sync_data().map_err(|source| WalError::Io {
            path: segment_path(&self.dir, self.seq),
            source,
        })
    }

    /// Starts a new segment; returns its sequence number. Everything before it is covered by the
    /// snapshot the caller writes next.
    pub fn rotate(&mut self) -> Result<u64, WalError> {
        let seq = self.seq + 1;
        let path = segment_path(&self.dir, seq);
        self.segment = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(&path))?;
        sync_dir(&self.dir.join(WAL_DIR))?;
        self.seq = seq;
        self.offset = 0;
        self.allocated = 0;
        Ok(seq)
    }

    /// Recomputes the on-disk size (after a snapshot replaced older segments).
    pub fn refresh_disk_bytes(&self) {
        refresh_disk_bytes(&self.dir, &self.disk_bytes);
    }
}

fn write_zeros(file: &File, mut from: u64, to: u64) -> std::io::Result<()> {
    while from < to {
        let n = (to - from).min(ZEROS.len() as u64);
        file.write_all_at(&ZEROS[..n as usize], from)?;
        from += n;
    }
    Ok(())
}

/// Cuts a torn write off the last segment: zeroes whatever it left after the last good frame, up
/// to the zeroed length the writer had extended the segment to (kept, so later writes still
/// overwrite allocated blocks), and drops anything beyond that.
fn cut_torn_tail(path: &Path, buf: &[u8], offset: usize) -> Result<(), WalError> {
    let keep = (offset as u64)
        .next_multiple_of(ZEROED_AHEAD)
        .min(buf.len() as u64);
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    let garbage_inside = buf[offset..keep as usize].iter().any(|b| *b != 0);
    if garbage_inside {
        write_zeros(&f, offset as u64, keep).map_err(io_err(path))?;
    }
    f.set_len(keep)
        .and_then(|_| f.sync_all())
        .map_err(io_err(path))
}

fn refresh_disk_bytes(dir: &Path, counter: &AtomicU64) {
    let mut total = fs::metadata(dir.join(SNAPSHOT_FILE))
        .map(|m| m.len())
        .unwrap_or(0);
    if let Ok(seqs) = list_segments(dir) {
        for seq in seqs {
            total += fs::metadata(segment_path(dir, seq))
                .map(|m| m.len())
                .unwrap_or(0);
        }
    }
    counter.store(total, Ordering::Relaxed);
}

/// Writes a snapshot atomically (temp file, fsync, rename, fsync dir), then deletes the segments it
/// covers. Runs off the commit path.
pub fn install_snapshot(
    dir: &Path,
    batches: &[WalBatch],
    next_segment: u64,
    disk_bytes: &AtomicU64,
) -> Result<(), WalError> {
    write_snapshot_file(dir, batches)?;
    for seq in list_segments(dir)? {
        if seq < next_segment {
            let path = segment_path(dir, seq);
            fs::remove_file(&path).map_err(io_err(&path))?;
        }
    }
    sync_dir(&dir.join(WAL_DIR))?;
    refresh_disk_bytes(dir, disk_bytes);
    Ok(())
}

fn write_snapshot_file(dir: &Path, batches: &[WalBatch]) -> Result<(), WalError> {
    let tmp = dir.join(SNAPSHOT_TMP);
    let mut buf = Vec::new();
    for batch in batches {
        encode_frame(batch, &mut buf);
    }
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(&buf)
        .and_then(|_| f.sync_all())
        .map_err(io_err(&tmp))?;
    let dst = dir.join(SNAPSHOT_FILE);
    fs::rename(&tmp, &dst).map_err(io_err(&dst))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests;
