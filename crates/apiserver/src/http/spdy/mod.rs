//! SPDY/3.1 framing, the subset Kubernetes' streaming protocols use (`k8s.io/apimachinery`'s
//! `httpstream/spdy` over `moby/spdystream`): SYN_STREAM / SYN_REPLY / DATA / RST_STREAM / PING /
//! GOAWAY, header blocks compressed with zlib and SPDY's preset dictionary. Flow control
//! (WINDOW_UPDATE, SETTINGS) is parsed and ignored, as spdystream does.
//!
//! IO-free: [`Codec::decode`] takes bytes as they arrive and returns whole frames; the encoders
//! return bytes to write. Header blocks this side sends are zlib *stored* blocks (valid zlib that
//! any inflater reads, no compressor needed): a SYN_REPLY carries no headers anyway.

pub mod inflate;

use bytes::{Bytes, BytesMut};
use thiserror::Error;

use inflate::{InflateError, Inflater};

/// The largest frame accepted (a DATA frame's length field has 24 bits; spdystream writes at
/// most 32 KiB of data per frame).
pub const MAX_FRAME: usize = 1 << 24;

pub const FLAG_FIN: u8 = 0x01;

const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;

/// RST_STREAM status: the stream is not known.
pub const RST_INVALID_STREAM: u32 = 2;

#[derive(Debug, Error)]
pub enum SpdyError {
    #[error("SPDY header block: {0}")]
    Inflate(#[from] InflateError),
    #[error("malformed SPDY frame: {0}")]
    Malformed(&'static str),
    #[error("SPDY version {0} is not supported (only 3)")]
    Version(u16),
}

/// A decoded frame. Header names are lower case on the wire (spdystream writes them so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        fin: bool,
        headers: Vec<(String, String)>,
    },
    Data {
        stream_id: u32,
        fin: bool,
        data: Bytes,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Ping(u32),
    GoAway,
    /// SYN_REPLY, HEADERS, SETTINGS, WINDOW_UPDATE, NOOP and unknown types: nothing to do.
    Ignored,
}

impl Frame {
    /// A header's value (case-insensitive name).
    pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One connection's framing state: the peer's header decompressor and whether this side's
/// header stream has started.
#[derive(Debug)]
pub struct Codec {
    inflater: Inflater,
    deflate_started: bool,
}

impl Default for Codec {
    fn default() -> Self {
        Codec::new()
    }
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, SpdyError> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(SpdyError::Malformed("short frame"))
}

fn parse_header_block(block: &[u8]) -> Result<Vec<(String, String)>, SpdyError> {
    let n = u32_at(block, 0)? as usize;
    let mut at = 4;
    let mut out = Vec::with_capacity(n.min(64));
    let string = |at: &mut usize| -> Result<String, SpdyError> {
        let len = u32_at(block, *at)? as usize;
        let s = block
            .get(*at + 4..*at + 4 + len)
            .ok_or(SpdyError::Malformed("header block ends early"))?;
        *at += 4 + len;
        Ok(String::from_utf8_lossy(s).into_owned())
    };
    for _ in 0..n {
        let name = string(&mut at)?;
        let value = string(&mut at)?;
        out.push((name, value));
    }
    Ok(out)
}

fn control(kind: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.push(flags);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(payload);
    out
}

impl Codec {
    pub fn new() -> Codec {
        Codec {
            inflater: Inflater::with_dictionary(&dictionary()),
            deflate_started: false,
        }
    }

    /// The next whole frame in `buf` (consumed), or `None` until more bytes arrive.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, SpdyError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let len = (usize::from(buf[5]) << 16) | (usize::from(buf[6]) << 8) | usize::from(buf[7]);
        if len > MAX_FRAME {
            return Err(SpdyError::Malformed("frame too large"));
        }
        if buf.len() < 8 + len {
            return Ok(None);
        }
        let head = buf.split_to(8);
        let payload = buf.split_to(len).freeze();
        let flags = head[4];
        let fin = flags & FLAG_FIN != 0;
        if head[0] & 0x80 == 0 {
            let stream_id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & 0x7fff_ffff;
            return Ok(Some(Frame::Data {
                stream_id,
                fin,
                data: payload,
            }));
        }
        let version = u16::from_be_bytes([head[0], head[1]]) & 0x7fff;
        if version != VERSION {
            return Err(SpdyError::Version(version));
        }
        let kind = u16::from_be_bytes([head[2], head[3]]);
        let frame = match kind {
            SYN_STREAM => {
                let stream_id = u32_at(&payload, 0)? & 0x7fff_ffff;
                let block = payload
                    .get(10..)
                    .ok_or(SpdyError::Malformed("short SYN_STREAM"))?;
                let headers = parse_header_block(&self.inflater.inflate(block)?)?;
                Frame::SynStream {
                    stream_id,
                    fin,
                    headers,
                }
            }
            SYN_REPLY | 8 => {
                // Keep the decompressor in step even though nothing is done with the headers.
                if let Some(block) = payload.get(4..).filter(|b| !b.is_empty()) {
                    self.inflater.inflate(block)?;
                }
                Frame::Ignored
            }
            RST_STREAM => Frame::RstStream {
                stream_id: u32_at(&payload, 0)? & 0x7fff_ffff,
                status: u32_at(&payload, 4)?,
            },
            PING => Frame::Ping(u32_at(&payload, 0)?),
            GOAWAY => Frame::GoAway,
            _ => Frame::Ignored,
        };
        Ok(Some(frame))
    }

    /// A header block as this side sends it: the pairs in zlib stored blocks (the first one
    /// after the zlib header), ending with a sync flush.
    fn header_block(&mut self, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut plain = (headers.len() as u32).to_be_bytes().to_vec();
        for (k, v) in headers {
            plain.extend_from_slice(&(k.len() as u32).to_be_bytes());
            plain.extend_from_slice(k.to_ascii_lowercase().as_bytes());
            plain.extend_from_slice(&(v.len() as u32).to_be_bytes());
            plain.extend_from_slice(v.as_bytes());
        }
        let mut out = Vec::with_capacity(plain.len() + 16);
        if !self.deflate_started {
            // CMF: deflate, 32 KiB window; FLG: no preset dictionary, check bits.
            out.extend_from_slice(&[0x78, 0x01]);
            self.deflate_started = true;
        }
        for chunk in plain.chunks(0xffff) {
            let len = chunk.len() as u16;
            out.push(0x00); // BFINAL 0, BTYPE 00 (stored), padded to the byte boundary
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&(!len).to_le_bytes());
            out.extend_from_slice(chunk);
        }
        // The sync-flush marker, an empty stored block: Go's flate reader hands out a block's
        // bytes only when the next block starts (it never reads past the header block, so
        // without this it reports an unexpected EOF and the connection is lost).
        out.extend_from_slice(&[0x00, 0x00, 0x00, 0xff, 0xff]);
        out
    }

    pub fn syn_reply(&mut self, stream_id: u32, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut payload = (stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
        payload.extend_from_slice(&self.header_block(headers));
        control(SYN_REPLY, 0, &payload)
    }
}

pub fn data(stream_id: u32, fin: bool, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + data.len());
    out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
    out.push(if fin { FLAG_FIN } else { 0 });
    out.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(data);
    out
}

pub fn rst_stream(stream_id: u32, status: u32) -> Vec<u8> {
    let mut payload = (stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
    payload.extend_from_slice(&status.to_be_bytes());
    control(RST_STREAM, 0, &payload)
}

pub fn ping(id: u32) -> Vec<u8> {
    control(PING, 0, &id.to_be_bytes())
}

/// SPDY/3's zlib dictionary for header blocks (the draft 3 specification; byte-identical to
/// spdystream's `headerDictionary`, 1,423 bytes): length-prefixed common header names and
/// values, then a run of common status lines, dates and media types.
pub fn dictionary() -> Vec<u8> {
    const WORDS: [&str; 65] = [
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ];
    const TAIL: &str = concat!(
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
        "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
        "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
        "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
        "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,",
        "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=",
        "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
    );
    let mut out = Vec::with_capacity(1423);
    for w in WORDS {
        out.extend_from_slice(&(w.len() as u32).to_be_bytes());
        out.extend_from_slice(w.as_bytes());
    }
    out.extend_from_slice(TAIL.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_is_spdy3s() {
        let d = dictionary();
        // Its length and Adler-32 (what a zlib stream with FDICT names it by) as zlib computes
        // them (`zlib.adler32` of the bytes spdystream uses).
        assert_eq!(d.len(), 1423);
        let (mut a, mut b) = (1u32, 0u32);
        for &x in &d {
            a = (a + u32::from(x)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!(format!("{:08x}", (b << 16) | a), DICT_ADLER);
    }

    const DICT_ADLER: &str = "e3c6a7c2";

    #[test]
    fn frames_round_trip_through_the_decoder() {
        let mut server = Codec::new();
        let mut client = Codec::new();
        // A SYN_REPLY is what the client decodes; check it is well-formed and keeps the
        // decompressor in step over several header blocks.
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&server.syn_reply(1, &[]));
        buf.extend_from_slice(&server.syn_reply(3, &[("Port", "80")]));
        buf.extend_from_slice(&data(3, false, b"hello"));
        buf.extend_from_slice(&data(3, true, b""));
        buf.extend_from_slice(&ping(7));
        buf.extend_from_slice(&rst_stream(5, RST_INVALID_STREAM));
        let mut frames = Vec::new();
        while let Ok(Some(f)) = client.decode(&mut buf) {
            frames.push(f);
        }
        assert_eq!(
            frames,
            vec![
                Frame::Ignored,
                Frame::Ignored,
                Frame::Data {
                    stream_id: 3,
                    fin: false,
                    data: Bytes::from_static(b"hello")
                },
                Frame::Data {
                    stream_id: 3,
                    fin: true,
                    data: Bytes::new()
                },
                Frame::Ping(7),
                Frame::RstStream {
                    stream_id: 5,
                    status: RST_INVALID_STREAM
                },
            ]
        );
        assert!(buf.is_empty());
    }

    /// A SYN_STREAM as kubectl's spdystream writes it (header block compressed by zlib with the
    /// dictionary; see inflate's golden data), split across reads.
    #[test]
    fn decodes_a_kubectl_syn_stream_in_pieces() {
        let block = "78f9e3c6a7c202253a48f95b044aab4c16064092b308125b99a054cc68004e872545a989b9d0a2863515141100000000ffff";
        let block: Vec<u8> = (0..block.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&block[i..i + 2], 16).unwrap_or(0))
            .collect();
        let mut payload = 1u32.to_be_bytes().to_vec();
        payload.extend_from_slice(&0u32.to_be_bytes());
        payload.extend_from_slice(&[0, 0]);
        payload.extend_from_slice(&block);
        let frame = control(SYN_STREAM, 0, &payload);
        let mut codec = Codec::new();
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&frame[..10]);
        assert!(matches!(codec.decode(&mut buf), Ok(None)));
        buf.extend_from_slice(&frame[10..]);
        let Ok(Some(Frame::SynStream {
            stream_id, headers, ..
        })) = codec.decode(&mut buf)
        else {
            panic!("SYN_STREAM");
        };
        assert_eq!(stream_id, 1);
        assert_eq!(Frame::header(&headers, "streamType"), Some("error"));
        assert_eq!(Frame::header(&headers, "port"), Some("80"));
        assert_eq!(Frame::header(&headers, "requestID"), Some("0"));
    }
}
