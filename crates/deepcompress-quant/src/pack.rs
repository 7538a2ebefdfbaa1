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
        (0..self.len).map(|i| self.code(i)).collect()
    }

    /// Code `i` (no bounds check beyond the byte slice's).
    fn code(&self, i: usize) -> u16 {
        let mask = if self.bits == 16 { u32::from(u16::MAX) } else { (1u32 << self.bits) - 1 };
        let pos = i * self.bits as usize;
        let at = pos / 8;
        let mut v = 0u32;
        for k in 0..3 {
            if let Some(&b) = self.data.get(at + k) {
                v |= u32::from(b) << (8 * k);
            }
        }
        ((v >> (pos % 8)) & mask) as u16
    }

    /// Codes `start..start + out.len()` mapped by `value` into `out`: one block of a
    /// quantized tensor decoded without unpacking the rest. Widths up to 8 bits are read a
    /// byte or a group of 8 codes at a time.
    ///
    /// ```
    /// use deepcompress_quant::pack::Packed;
    /// let p = Packed::pack(&[1, 15, 0, 7, 9], 4)?;
    /// let mut out = [0.0f32; 3];
    /// p.decode_with(1, &mut out, |c| (c as i32 - 8) as f32 * 0.5);
    /// assert_eq!(out, [3.5, -4.0, -0.5]);
    /// # Ok::<(), deepcompress_quant::QuantError>(())
    /// ```
    ///
    /// # Panics
    /// When the range runs past the last code.
    #[inline]
    pub fn decode_with<T>(&self, start: usize, out: &mut [T], value: impl Fn(u32) -> T) {
        assert!(start + out.len() <= self.len, "codes {start}..+{} of {}", out.len(), self.len);
        match self.bits {
            8 => {
                let bytes = &self.data[start..start + out.len()];
                out.iter_mut().zip(bytes).for_each(|(o, &b)| *o = value(u32::from(b)));
            }
            4 if start.is_multiple_of(2) => self.decode_bytes::<4, T>(start, out, &value),
            2 if start.is_multiple_of(4) => self.decode_bytes::<2, T>(start, out, &value),
            1 if start.is_multiple_of(8) => self.decode_bytes::<1, T>(start, out, &value),
            1 => self.decode_words::<1, T>(start, out, &value),
            2 => self.decode_words::<2, T>(start, out, &value),
            3 => self.decode_words::<3, T>(start, out, &value),
            4 => self.decode_words::<4, T>(start, out, &value),
            5 => self.decode_words::<5, T>(start, out, &value),
            6 => self.decode_words::<6, T>(start, out, &value),
            7 => self.decode_words::<7, T>(start, out, &value),
            _ => {
                for (t, o) in out.iter_mut().enumerate() {
                    *o = value(u32::from(self.code(start + t)));
                }
            }
        }
    }

    /// [`Packed::decode_with`] for `B` dividing 8, from a code that starts a byte: `8 / B`
    /// codes per byte, low bits first (`B` a constant, so the inner loop unrolls).
    fn decode_bytes<const B: usize, T>(
        &self,
        start: usize,
        out: &mut [T],
        value: &impl Fn(u32) -> T,
    ) {
        let per = 8 / B;
        let mask = ((1u16 << B) - 1) as u8;
        let bytes = &self.data[start / per..(start + out.len()).div_ceil(per)];
        let mut whole = out.chunks_exact_mut(per);
        for (o, &byte) in (&mut whole).zip(bytes) {
            for (k, v) in o.iter_mut().enumerate() {
                *v = value(u32::from((byte >> (B * k)) & mask));
            }
        }
        let rest = whole.into_remainder();
        if let Some(&byte) = bytes.last().filter(|_| !rest.is_empty()) {
            for (k, v) in rest.iter_mut().enumerate() {
                *v = value(u32::from((byte >> (B * k)) & mask));
            }
        }
    }

    /// [`Packed::decode_with`] for other widths below 8: eight codes fill exactly `B` bytes,
    /// so after a head up to a multiple of 8 each group of 8 is one little-endian word.
    fn decode_words<const B: usize, T>(
        &self,
        start: usize,
        out: &mut [T],
        value: &impl Fn(u32) -> T,
    ) {
        let mask = (1u64 << B) - 1;
        let head = ((8 - start % 8) % 8).min(out.len());
        let (first, rest) = out.split_at_mut(head);
        for (t, o) in first.iter_mut().enumerate() {
            *o = value(u32::from(self.code(start + t)));
        }
        let rest_len = rest.len();
        let at = (start + head) / 8 * B;
        let mut groups = rest.chunks_exact_mut(8);
        for (g, o) in (&mut groups).enumerate() {
            let from = at + g * B;
            // Eight bytes where they exist (the bits past 8 B are not used).
            let word = match self.data.get(from..from + 8) {
                Some(w) => u64::from_le_bytes(w.try_into().expect("8 bytes")),
                None => {
                    let mut w = [0u8; 8];
                    w[..B].copy_from_slice(&self.data[from..from + B]);
                    u64::from_le_bytes(w)
                }
            };
            for (k, v) in o.iter_mut().enumerate() {
                *v = value(((word >> (B * k)) & mask) as u32);
            }
        }
        let tail = groups.into_remainder();
        let done = start + head + rest_len - tail.len();
        for (t, o) in tail.iter_mut().enumerate() {
            *o = value(u32::from(self.code(done + t)));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_decoded_range_matches_the_unpacked_codes() {
        for bits in 1..=16u8 {
            let max = if bits == 16 { u16::MAX as u32 } else { (1u32 << bits) - 1 };
            let codes: Vec<u16> =
                (0..37u32).map(|i| ((i * 40_503 + 7) % (max + 1)) as u16).collect();
            let p = Packed::pack(&codes, bits).expect("codes fit");
            for start in 0..codes.len() {
                for len in 0..=(codes.len() - start).min(11) {
                    let mut out = vec![f32::NAN; len];
                    p.decode_with(start, &mut out, |c| (c as i32 - 3) as f32 * 0.25);
                    let want: Vec<f32> = codes[start..start + len]
                        .iter()
                        .map(|&c| (c as i32 - 3) as f32 * 0.25)
                        .collect();
                    assert_eq!(out, want, "{bits} bits, codes {start}..+{len}");
                }
            }
        }
    }
}
