//! Bit-level storage: a bit writer and reader, and b-bit packed integer arrays.
//!
//! Compressed encodings store indices in as few bits as they need (4-bit index gaps,
//! 5-bit codebook indices, Huffman codes); these are the two primitives they share.

use crate::{PruneError, Result};

/// Appends bit fields to a byte buffer, least significant bit first.
///
/// ```
/// use deepcompress_prune::bits::{BitReader, BitWriter};
/// let mut w = BitWriter::new();
/// w.write(0b101, 3);
/// w.write(0xABCD, 16);
/// assert_eq!(w.bit_len(), 19);
/// let bytes = w.finish();
/// assert_eq!(bytes.len(), 3);
/// let mut r = BitReader::new(&bytes);
/// assert_eq!(r.read(3).unwrap(), 0b101);
/// assert_eq!(r.read(16).unwrap(), 0xABCD);
/// ```
#[derive(Debug, Clone, Default)]
pub struct BitWriter {
    bytes: Vec<u8>,
    acc: u64,
    filled: u32,
    bits: u64,
}

impl BitWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes the low `n` bits of `value` (`n` at most 32).
    pub fn write(&mut self, value: u32, n: u32) {
        debug_assert!(n <= 32);
        if n == 0 {
            return;
        }
        let v = (value as u64) & ((1u64 << n) - 1);
        self.acc |= v << self.filled;
        self.filled += n;
        self.bits += n as u64;
        while self.filled >= 8 {
            self.bytes.push(self.acc as u8);
            self.acc >>= 8;
            self.filled -= 8;
        }
    }

    /// Number of bits written so far.
    pub fn bit_len(&self) -> u64 {
        self.bits
    }

    /// The bytes, the last one padded with zero bits.
    pub fn finish(mut self) -> Vec<u8> {
        if self.filled > 0 {
            self.bytes.push(self.acc as u8);
        }
        self.bytes
    }
}

/// Reads bit fields written by [`BitWriter`].
///
/// Reading past the end is an error, never a panic:
///
/// ```
/// use deepcompress_prune::bits::BitReader;
/// let mut r = BitReader::new(&[0xFF]);
/// assert_eq!(r.read(8).unwrap(), 0xFF);
/// assert!(r.read(1).is_err());
/// ```
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    bytes: &'a [u8],
    pos: u64,
}

impl<'a> BitReader<'a> {
    /// A reader at the first bit of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// Bits left to read.
    pub fn remaining(&self) -> u64 {
        self.bytes.len() as u64 * 8 - self.pos
    }

    /// Position in bits from the start.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Reads one bit.
    #[inline]
    pub fn read_bit(&mut self) -> Result<u32> {
        let byte = (self.pos / 8) as usize;
        let Some(b) = self.bytes.get(byte) else {
            return Err(self.truncated(1));
        };
        let bit = (b >> (self.pos % 8)) & 1;
        self.pos += 1;
        Ok(bit as u32)
    }

    /// Reads `n` bits (at most 32) written by [`BitWriter::write`].
    pub fn read(&mut self, n: u32) -> Result<u32> {
        debug_assert!(n <= 32);
        if n as u64 > self.remaining() {
            return Err(self.truncated(n));
        }
        let mut out = 0u64;
        let mut got = 0u32;
        while got < n {
            let byte = self.bytes[(self.pos / 8) as usize] as u64;
            let offset = (self.pos % 8) as u32;
            let take = (8 - offset).min(n - got);
            let field = (byte >> offset) & ((1 << take) - 1);
            out |= field << got;
            got += take;
            self.pos += take as u64;
        }
        Ok(out as u32)
    }

    fn truncated(&self, wanted: u32) -> PruneError {
        PruneError::corrupt(
            "bit stream",
            format!(
                "truncated: wanted {wanted} bits at bit {} of {}",
                self.pos,
                self.bytes.len() * 8
            ),
        )
    }
}

/// Unsigned integers of a fixed width `bits` (1 to 32) packed back to back.
///
/// Storage is exactly `ceil(len * bits / 8)` bytes; [`PackedInts::storage_bits`] reports
/// the unpadded `len * bits`.
///
/// ```
/// use deepcompress_prune::bits::PackedInts;
/// let p = PackedInts::pack(&[3, 0, 7, 5], 3).unwrap();
/// assert_eq!(p.len(), 4);
/// assert_eq!(p.storage_bits(), 12);
/// assert_eq!(p.get(2), 7);
/// assert_eq!(p.unpack(), vec![3, 0, 7, 5]);
/// assert!(PackedInts::pack(&[8], 3).is_err()); // 8 needs 4 bits
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedInts {
    words: Vec<u64>,
    bits: u32,
    len: usize,
}

impl PackedInts {
    /// Packs `values`, each of which must fit in `bits` bits.
    pub fn pack(values: &[u32], bits: u32) -> Result<Self> {
        if !(1..=32).contains(&bits) {
            return Err(PruneError::param("bits", bits, "packed integers need 1 to 32 bits"));
        }
        let limit = if bits == 32 { u64::MAX } else { (1u64 << bits) - 1 };
        if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| **v as u64 > limit) {
            return Err(PruneError::param(
                "value",
                v,
                format!("element {i} does not fit in {bits} bits"),
            ));
        }
        let total = values.len() as u64 * bits as u64;
        let mut words = vec![0u64; total.div_ceil(64) as usize];
        for (i, &v) in values.iter().enumerate() {
            let at = i as u64 * bits as u64;
            let (w, o) = ((at / 64) as usize, (at % 64) as u32);
            words[w] |= (v as u64) << o;
            if o + bits > 64 {
                words[w + 1] |= (v as u64) >> (64 - o);
            }
        }
        Ok(Self { words, bits, len: values.len() })
    }

    /// Rebuilds packed integers from bytes written by [`PackedInts::to_bytes`].
    pub fn from_bytes(bytes: &[u8], bits: u32, len: usize) -> Result<Self> {
        if !(1..=32).contains(&bits) {
            return Err(PruneError::param("bits", bits, "packed integers need 1 to 32 bits"));
        }
        let need = (len as u64 * bits as u64).div_ceil(8);
        if (bytes.len() as u64) < need {
            return Err(PruneError::corrupt(
                "packed integers",
                format!("{len} values of {bits} bits need {need} bytes, got {}", bytes.len()),
            ));
        }
        let mut words = vec![0u64; (len as u64 * bits as u64).div_ceil(64) as usize];
        for (i, b) in bytes[..need as usize].iter().enumerate() {
            words[i / 8] |= (*b as u64) << ((i % 8) * 8);
        }
        Ok(Self { words, bits, len })
    }

    /// The packed bytes, `ceil(len * bits / 8)` of them.
    pub fn to_bytes(&self) -> Vec<u8> {
        let need = (self.len as u64 * self.bits as u64).div_ceil(8) as usize;
        self.words.iter().flat_map(|w| w.to_le_bytes()).take(need).collect()
    }

    /// Width of each value in bits.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no values.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Exact payload size: `len * bits`.
    pub fn storage_bits(&self) -> u64 {
        self.len as u64 * self.bits as u64
    }

    /// Value `i`; panics when `i >= len` like slice indexing.
    #[inline]
    pub fn get(&self, i: usize) -> u32 {
        assert!(i < self.len, "index {i} out of {} packed values", self.len);
        let at = i as u64 * self.bits as u64;
        let (w, o) = ((at / 64) as usize, (at % 64) as u32);
        let mut v = self.words[w] >> o;
        if o + self.bits > 64 {
            v |= self.words[w + 1] << (64 - o);
        }
        let mask = if self.bits == 32 { u32::MAX as u64 } else { (1u64 << self.bits) - 1 };
        (v & mask) as u32
    }

    /// All values, unpacked.
    pub fn unpack(&self) -> Vec<u32> {
        (0..self.len).map(|i| self.get(i)).collect()
    }

    /// Smallest width that holds `max_value` (at least 1).
    pub fn bits_for(max_value: u32) -> u32 {
        (32 - max_value.leading_zeros()).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn packed_round_trip(bits in 1u32..=32, raw in proptest::collection::vec(any::<u32>(), 0..200)) {
            let mask = if bits == 32 { u32::MAX } else { (1u32 << bits) - 1 };
            let values: Vec<u32> = raw.iter().map(|v| v & mask).collect();
            let p = PackedInts::pack(&values, bits).unwrap();
            prop_assert_eq!(p.unpack(), values.clone());
            let q = PackedInts::from_bytes(&p.to_bytes(), bits, values.len()).unwrap();
            prop_assert_eq!(q, p);
        }

        #[test]
        fn bit_stream_round_trip(fields in proptest::collection::vec((any::<u32>(), 0u32..=32), 0..100)) {
            let mut w = BitWriter::new();
            for &(v, n) in &fields { w.write(v, n); }
            let bytes = w.finish();
            let mut r = BitReader::new(&bytes);
            for &(v, n) in &fields {
                let mask = if n == 32 { u32::MAX } else { (1u32 << n) - 1 };
                prop_assert_eq!(r.read(n).unwrap(), v & mask);
            }
            prop_assert!(r.remaining() < 8);
        }
    }

    #[test]
    fn truncated_bytes_are_an_error() {
        assert!(PackedInts::from_bytes(&[0u8; 2], 5, 4).is_err());
        assert!(PackedInts::pack(&[1], 0).is_err());
    }
}
