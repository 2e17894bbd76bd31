//! What goes to disk: one length- and CRC-framed protobuf [`WalBatch`] per group commit. A frame is
//! `u32 len (LE) | u32 crc32c(payload) (LE) | payload`; a torn tail fails its length or CRC check.

use etcd_client::proto::PbKeyValue as KeyValue;
use prost::Message;

#[derive(Clone, PartialEq, prost::Message)]
pub struct WalBatch {
    #[prost(message, repeated, tag = "1")]
    pub records: Vec<WalRecord>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WalRecord {
    #[prost(oneof = "RecordKind", tags = "1, 2, 3, 4, 5, 6")]
    pub kind: Option<RecordKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum RecordKind {
    /// A new version of a key (the kv carries key, revisions, version, value and lease).
    #[prost(message, tag = "1")]
    Put(PutRecord),
    #[prost(message, tag = "2")]
    Delete(DeleteRecord),
    #[prost(message, tag = "3")]
    LeaseGrant(LeaseRecord),
    #[prost(int64, tag = "4")]
    LeaseRevoke(i64),
    #[prost(int64, tag = "5")]
    Compact(i64),
    /// Only in snapshots: the revision counters at the time of the snapshot.
    #[prost(message, tag = "6")]
    Header(SnapshotHeader),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PutRecord {
    #[prost(int64, tag = "1")]
    pub sub: i64,
    #[prost(message, optional, tag = "2")]
    pub kv: Option<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteRecord {
    #[prost(int64, tag = "1")]
    pub main: i64,
    #[prost(int64, tag = "2")]
    pub sub: i64,
    #[prost(bytes = "vec", tag = "3")]
    pub key: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseRecord {
    #[prost(int64, tag = "1")]
    pub id: i64,
    #[prost(int64, tag = "2")]
    pub ttl: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SnapshotHeader {
    #[prost(int64, tag = "1")]
    pub current: i64,
    #[prost(int64, tag = "2")]
    pub compacted: i64,
    /// The first WAL segment that is not contained in this snapshot.
    #[prost(uint64, tag = "3")]
    pub next_segment: u64,
    #[prost(uint64, tag = "4")]
    pub cluster_id: u64,
    #[prost(uint64, tag = "5")]
    pub member_id: u64,
}

pub const FRAME_HEADER: usize = 8;

/// Largest frame accepted when reading; anything larger is treated as corruption.
pub const MAX_FRAME: usize = 256 << 20;

/// Appends one frame to `out`, encoding the payload in place (no intermediate buffer).
pub fn encode_frame(batch: &WalBatch, out: &mut Vec<u8>) {
    let start = out.len();
    let len = batch.encoded_len();
    out.reserve(FRAME_HEADER + len);
    out.extend_from_slice(&[0; FRAME_HEADER]);
    // Encoding into a Vec cannot run out of room (it grows), so this never fails.
    let _ = batch.encode(out);
    let crc = crc32c::crc32c(&out[start + FRAME_HEADER..]);
    out[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    out[start + 4..start + FRAME_HEADER].copy_from_slice(&crc.to_le_bytes());
}

/// Outcome of decoding the frame at the start of `buf`.
#[derive(Debug)]
pub enum Frame {
    Ok {
        batch: WalBatch,
        len: usize,
    },
    /// The buffer ends inside the frame (a torn write at the tail).
    Incomplete,
    /// An all-zero header: the end of the written part of a segment, whose tail the writer zeroes
    /// ahead of use (no real frame has an empty payload, the only one whose header is all zero).
    End,
    Corrupt(String),
}

pub fn decode_frame(buf: &[u8]) -> Frame {
    if buf.len() < FRAME_HEADER {
        return Frame::Incomplete;
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if len == 0 && crc == 0 {
        return Frame::End;
    }
    if len > MAX_FRAME {
        return Frame::Corrupt(format!("frame length {len} too large"));
    }
    let Some(payload) = buf.get(FRAME_HEADER..FRAME_HEADER + len) else {
        return Frame::Incomplete;
    };
    if crc32c::crc32c(payload) != crc {
        return Frame::Corrupt("checksum mismatch".into());
    }
    match WalBatch::decode(payload) {
        Ok(batch) => Frame::Ok {
            batch,
            len: FRAME_HEADER + len,
        },
        Err(e) => Frame::Corrupt(format!("undecodable batch: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_detect_damage() {
        let batch = WalBatch {
            records: vec![WalRecord {
                kind: Some(RecordKind::Compact(7)),
            }],
        };
        let mut buf = Vec::new();
        encode_frame(&batch, &mut buf);
        match decode_frame(&buf) {
            Frame::Ok { batch: b, len } => {
                assert_eq!(b, batch);
                assert_eq!(len, buf.len());
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode_frame(&buf[..buf.len() - 1]),
            Frame::Incomplete
        ));
        assert!(matches!(decode_frame(&[0; 64]), Frame::End));
        let last = buf.len() - 1;
        buf[last] ^= 0xff;
        assert!(matches!(decode_frame(&buf), Frame::Corrupt(_)));
    }
}
