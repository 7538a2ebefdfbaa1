//! Bit packing of integer codes: `b` bits per code, little-endian bit order, no padding
//! between codes (two 4-bit codes per byte, eight 2-bit codes per 2 bytes, ...).

use crate::error::{QuantError, Result};

/// Codes of `bits` bits each (1 to 16), packed back to back.
///
/// ```
/// use deepcompress_quant::pack::Packed;
/// let p = Packed::pack(&[1, 15, 0, 7], 4)?;
/// assert_eq!(p.bytes(), &[0xF1, 0x70]); // two codes per byte, low nibble first
/// assert_eq!(p.unpack(), vec![1, 15, 0, 7]);
/// assert_eq!(p.storage_bits(), 16);
/// assert!(Packed::pack(&[4], 2).is_err()); // 4 does not fit in 2 bits
/// # Ok::<(), deepcompress_quant::QuantError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    bits: u8,
    len: usize,
    data: Vec<u8>,
}

impl Packed {
    /// Packs `codes`, each of which must fit in `bits` bits.
    pub fn pack(codes: &[u16], bits: u8) -> Result<Self> {
        if !(1..=16).contains(&bits) {
            return Err(QuantError::param("bits", bits, "a packed code has 1 to 16 bits"));
        }
        let max = if bits == 16 { u16::MAX } else { (1u16 << bits) - 1 };
        if let Some((i, c)) = codes.iter().enumerate().find(|(_, c)| **c > max) {
            return Err(QuantError::param(
                format!("code {i}"),
                c,
                format!("does not fit in {bits} bits"),
            ));
        }
        let total = codes.len() * bits as usize;
        let mut data = vec![0u8; total.div_ceil(8)];
        let mut pos = 0usize;
        for &c in codes {
            // A code spans at most three bytes (16 bits starting mid-byte).
            let v = (c as u32) << (pos % 8);
            let at = pos / 8;
            for k in 0..3 {
                if at + k < data.len() {
                    data[at + k] |= (v >> (8 * k)) as u8;
                }
            }
            pos += bits as usize;
        }
        Ok(Self { bits, len: codes.len(), data })
    }

    /// The codes, in order.
    pub fn unpack(&self) -> Vec<u16> {
        let mask = if self.bits == 16 { u32::from(u16::MAX) } else { (1u32 << self.bits) - 1 };
        (0..self.len)
            .map(|i| {
                let pos = i * self.bits as usize;
                let at = pos / 8;
                let mut v = 0u32;
                for k in 0..3 {
                    if let Some(&b) = self.data.get(at + k) {
                        v |= u32::from(b) << (8 * k);
                    }
                }
                ((v >> (pos % 8)) & mask) as u16
            })
            .collect()
    }

    /// Bits per code.
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// Number of codes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no codes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The packed bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Storage in bits: the packed bytes, so at most 7 bits of padding at the end.
    pub fn storage_bits(&self) -> u64 {
        self.data.len() as u64 * 8
    }
}
