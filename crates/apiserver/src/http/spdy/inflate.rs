//! A small DEFLATE decoder (RFC 1951) for SPDY header blocks: one zlib stream (RFC 1950) per
//! connection and direction, started with SPDY's preset dictionary, each header block a
//! sync-flushed piece of it. Decoding a piece needs the history of every earlier piece (back
//! references reach into earlier header blocks and into the dictionary), which is why this is
//! a stateful [`Inflater`] rather than a one-shot function.
//!
//! Written here instead of taking a zlib crate: the workspace has none, header blocks are a few
//! hundred bytes per forwarded connection, and the decoder is ~200 lines with golden tests
//! (zlib's own output, `tests` below). It follows the structure of zlib's `puff.c`: canonical
//! Huffman tables as counts and symbols, decoded one bit at a time.

use thiserror::Error;

/// How far back a DEFLATE distance can reach.
const WINDOW: usize = 32 * 1024;
const MAX_BITS: usize = 15;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum InflateError {
    #[error("compressed header block ends early")]
    Truncated,
    #[error("bad zlib header")]
    Header,
    #[error("invalid compressed data: {0}")]
    Invalid(&'static str),
}

/// Decoder state of one zlib stream.
#[derive(Debug)]
pub struct Inflater {
    /// The dictionary, then everything decoded so far (trimmed to the last [`WINDOW`] bytes).
    history: Vec<u8>,
    header_read: bool,
    finished: bool,
}

struct Bits<'a> {
    input: &'a [u8],
    pos: usize,
    buf: u32,
    count: u32,
}

impl Bits<'_> {
    fn bits(&mut self, need: u32) -> Result<u32, InflateError> {
        while self.count < need {
            let byte = *self.input.get(self.pos).ok_or(InflateError::Truncated)?;
            self.pos += 1;
            self.buf |= u32::from(byte) << self.count;
            self.count += 8;
        }
        let value = self.buf & ((1u32 << need) - 1);
        self.buf >>= need;
        self.count -= need;
        Ok(value)
    }

    /// Drops the bits left in the current byte (stored blocks start on a byte boundary).
    fn align(&mut self) {
        self.buf = 0;
        self.count = 0;
    }

    fn at_end(&self) -> bool {
        self.pos >= self.input.len() && self.count < 3
    }
}

/// A canonical Huffman code: how many codes of each length, and the symbols in code order.
struct Huffman {
    count: [u16; MAX_BITS + 1],
    symbol: Vec<u16>,
}

impl Huffman {
    fn new(lengths: &[u8]) -> Result<Huffman, InflateError> {
        let mut count = [0u16; MAX_BITS + 1];
        for &l in lengths {
            count[usize::from(l)] += 1;
        }
        // Over-subscribed codes are invalid; incomplete ones are allowed (a single distance
        // code is common).
        let mut left: i32 = 1;
        for &c in &count[1..] {
            left = (left << 1) - i32::from(c);
            if left < 0 {
                return Err(InflateError::Invalid("over-subscribed Huffman code"));
            }
        }
        let mut offs = [0u16; MAX_BITS + 1];
        for len in 1..MAX_BITS {
            offs[len + 1] = offs[len] + count[len];
        }
        let mut symbol = vec![0u16; lengths.len()];
        for (sym, &l) in lengths.iter().enumerate() {
            if l != 0 {
                symbol[usize::from(offs[usize::from(l)])] = sym as u16;
                offs[usize::from(l)] += 1;
            }
        }
        Ok(Huffman { count, symbol })
    }

    fn decode(&self, bits: &mut Bits<'_>) -> Result<u16, InflateError> {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..=MAX_BITS {
            code |= bits.bits(1)? as i32;
            let count = i32::from(self.count[len]);
            if code - count < first {
                let at = (index + code - first) as usize;
                return self
                    .symbol
                    .get(at)
                    .copied()
                    .ok_or(InflateError::Invalid("Huffman symbol"));
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        Err(InflateError::Invalid("no such Huffman code"))
    }
}

const LENGTH_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LENGTH_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
/// The order code-length code lengths are sent in (RFC 1951 3.2.7).
const CODE_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

impl Inflater {
    /// A stream whose window starts with `dictionary` (zlib's `inflateSetDictionary`).
    pub fn with_dictionary(dictionary: &[u8]) -> Inflater {
        Inflater {
            history: dictionary.to_vec(),
            header_read: false,
            finished: false,
        }
    }

    /// Decodes the next piece of the stream: whole DEFLATE blocks ending on a byte boundary (what
    /// a zlib sync flush produces). Returns the bytes it decodes to.
    pub fn inflate(&mut self, input: &[u8]) -> Result<Vec<u8>, InflateError> {
        let mut bits = Bits {
            input,
            pos: 0,
            buf: 0,
            count: 0,
        };
        if !self.header_read {
            let cmf = bits.bits(8)?;
            let flg = bits.bits(8)?;
            if cmf & 0x0f != 8 || (cmf << 8 | flg) % 31 != 0 {
                return Err(InflateError::Header);
            }
            if flg & 0x20 != 0 {
                // The dictionary's Adler-32: the dictionary is fixed by the protocol.
                bits.bits(16)?;
                bits.bits(16)?;
            }
            self.header_read = true;
        }
        let start = self.history.len();
        while !self.finished && !bits.at_end() {
            let last = bits.bits(1)? == 1;
            match bits.bits(2)? {
                0 => self.stored(&mut bits)?,
                1 => self.fixed(&mut bits)?,
                2 => self.dynamic(&mut bits)?,
                _ => return Err(InflateError::Invalid("block type 3")),
            }
            self.finished = last;
        }
        let out = self.history[start..].to_vec();
        if self.history.len() > 2 * WINDOW {
            let cut = self.history.len() - WINDOW;
            self.history.drain(..cut);
        }
        Ok(out)
    }

    fn stored(&mut self, bits: &mut Bits<'_>) -> Result<(), InflateError> {
        bits.align();
        let len = bits.bits(16)?;
        let nlen = bits.bits(16)?;
        if len != !nlen & 0xffff {
            return Err(InflateError::Invalid("stored block length"));
        }
        let end = bits.pos + len as usize;
        let data = bits
            .input
            .get(bits.pos..end)
            .ok_or(InflateError::Truncated)?;
        self.history.extend_from_slice(data);
        bits.pos = end;
        Ok(())
    }

    fn fixed(&mut self, bits: &mut Bits<'_>) -> Result<(), InflateError> {
        let mut lengths = [0u8; 288];
        for (i, l) in lengths.iter_mut().enumerate() {
            *l = match i {
                0..=143 => 8,
                144..=255 => 9,
                256..=279 => 7,
                _ => 8,
            };
        }
        let lit = Huffman::new(&lengths)?;
        let dist = Huffman::new(&[5u8; 30])?;
        self.codes(bits, &lit, &dist)
    }

    fn dynamic(&mut self, bits: &mut Bits<'_>) -> Result<(), InflateError> {
        let nlen = bits.bits(5)? as usize + 257;
        let ndist = bits.bits(5)? as usize + 1;
        let ncode = bits.bits(4)? as usize + 4;
        if nlen > 286 || ndist > 30 {
            return Err(InflateError::Invalid("too many length or distance codes"));
        }
        let mut code_lengths = [0u8; 19];
        for &at in CODE_ORDER.iter().take(ncode) {
            code_lengths[at] = bits.bits(3)? as u8;
        }
        let lencode = Huffman::new(&code_lengths)?;
        let mut lengths = vec![0u8; nlen + ndist];
        let mut i = 0;
        while i < nlen + ndist {
            let sym = lencode.decode(bits)?;
            let (value, repeat) = match sym {
                0..=15 => (sym as u8, 1),
                16 => {
                    let prev = *i
                        .checked_sub(1)
                        .and_then(|p| lengths.get(p))
                        .ok_or(InflateError::Invalid("repeat with no previous length"))?;
                    (prev, 3 + bits.bits(2)? as usize)
                }
                17 => (0, 3 + bits.bits(3)? as usize),
                _ => (0, 11 + bits.bits(7)? as usize),
            };
            if i + repeat > nlen + ndist {
                return Err(InflateError::Invalid("too many code lengths"));
            }
            lengths[i..i + repeat].fill(value);
            i += repeat;
        }
        if lengths[256] == 0 {
            return Err(InflateError::Invalid("no end-of-block code"));
        }
        let lit = Huffman::new(&lengths[..nlen])?;
        let dist = Huffman::new(&lengths[nlen..])?;
        self.codes(bits, &lit, &dist)
    }

    fn codes(
        &mut self,
        bits: &mut Bits<'_>,
        lit: &Huffman,
        dist: &Huffman,
    ) -> Result<(), InflateError> {
        loop {
            let sym = usize::from(lit.decode(bits)?);
            if sym < 256 {
                self.history.push(sym as u8);
                continue;
            }
            if sym == 256 {
                return Ok(());
            }
            let at = sym - 257;
            let (Some(&base), Some(&extra)) = (LENGTH_BASE.get(at), LENGTH_EXTRA.get(at)) else {
                return Err(InflateError::Invalid("length code"));
            };
            let len = usize::from(base) + bits.bits(u32::from(extra))? as usize;
            let d = usize::from(dist.decode(bits)?);
            let (Some(&base), Some(&extra)) = (DIST_BASE.get(d), DIST_EXTRA.get(d)) else {
                return Err(InflateError::Invalid("distance code"));
            };
            let back = usize::from(base) + bits.bits(u32::from(extra))? as usize;
            if back > self.history.len() {
                return Err(InflateError::Invalid("distance too far back"));
            }
            let from = self.history.len() - back;
            for k in 0..len {
                let byte = self.history[from + k];
                self.history.push(byte);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0))
            .collect()
    }

    /// A SPDY name/value block.
    fn block(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_be_bytes().to_vec();
        for (k, v) in pairs {
            out.extend_from_slice(&(k.len() as u32).to_be_bytes());
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(&(v.len() as u32).to_be_bytes());
            out.extend_from_slice(v.as_bytes());
        }
        out
    }

    /// Golden: zlib 1.2.13 (Python's `zlib.compressobj(9, zdict=<SPDY dictionary>)`, each block
    /// followed by `Z_SYNC_FLUSH`, as Go's spdystream framer writes them). The second block
    /// refers back into the first, the first into the dictionary.
    #[test]
    fn decodes_sync_flushed_header_blocks_with_the_spdy_dictionary() {
        let dict = super::super::dictionary();
        let mut z = Inflater::with_dictionary(&dict);
        let a = "78f9e3c6a7c202253a48f95b044aab4c16064092b308125b99a054cc68004e872545a989b9d0a2863515141100000000ffff";
        let b = "224b2ba8944a04000000ffff";
        let c = "024981127005b0bc03e523ee1d8949c9402fa46764668db24659a3ac51d6286b9435ca1a658db24659a3acc1ca02000000ffff";
        assert_eq!(
            z.inflate(&hex(a)),
            Ok(block(&[
                ("port", "80"),
                ("requestid", "0"),
                ("streamtype", "error")
            ]))
        );
        assert_eq!(
            z.inflate(&hex(b)),
            Ok(block(&[
                ("port", "80"),
                ("requestid", "0"),
                ("streamtype", "data")
            ]))
        );
        let long = "abcdefghij".repeat(300);
        assert_eq!(z.inflate(&hex(c)), Ok(block(&[("x-long", &long)])));
    }

    /// A dynamic-Huffman block (the other two are fixed-Huffman), zlib as above.
    #[test]
    fn decodes_dynamic_huffman_blocks() {
        let words = [
            "alpha", "beta", "gamma", "delta", "pod", "port", "stream", "error", "data", "kubectl",
        ];
        let text: Vec<&str> = (0..400usize)
            .map(|i| words[(i * 7 + i * i * 3 + i / 5) % 10])
            .collect();
        let text = text.join(" ");
        let z = "78f9e3c6a7c2ec54410e80200cd3a327bfc0077cd48c44132512c5c4e7bbad43ff6076a094434b53c8f81fb5f297ee412e6b9aaea72d2f1480673922a5c093e5e5238f174094d708eb35f294d9ec34534a64a82af828e599fe6255a9513de47dd2050d4cc0f37e14800ae0a1d452d9068d78802114102235b124544104e620b4e6f972b106264abd216fc81bf286bc216fc81bfa79430f000000ffff";
        let mut inflater = Inflater::with_dictionary(&super::super::dictionary());
        assert_eq!(inflater.inflate(&hex(z)), Ok(block(&[("x-text", &text)])));
    }

    #[test]
    fn rejects_garbage() {
        let mut z = Inflater::with_dictionary(b"");
        assert_eq!(z.inflate(&[0x12, 0x34]), Err(InflateError::Header));
        let mut z = Inflater::with_dictionary(b"");
        assert_eq!(z.inflate(&[0x78]), Err(InflateError::Truncated));
    }
}
