//! LEB128 variable-length unsigned integers.
//!
//! Seven payload bits per byte, least significant group first, high bit set on every byte
//! but the last. Lengths and counts in the container are small most of the time, so a
//! varint costs one or two bytes where a fixed `u64` would cost eight.

use crate::{PruneError, Result};

/// Longest encoding of a `u64`: `ceil(64 / 7)` bytes.
pub const MAX_VARINT_BYTES: usize = 10;

/// Appends the LEB128 encoding of `value` to `out`.
///
/// ```
/// use deepcompress_prune::coding::varint;
/// let mut out = Vec::new();
/// varint::write_u64(&mut out, 300);
/// assert_eq!(out, [0xAC, 0x02]);
/// assert_eq!(varint::encoded_len(300), 2);
/// let mut pos = 0;
/// assert_eq!(varint::read_u64(&out, &mut pos).unwrap(), 300);
/// assert_eq!(pos, 2);
/// ```
pub fn write_u64(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Number of bytes [`write_u64`] uses for `value` (1 to 10).
pub fn encoded_len(value: u64) -> u64 {
    let significant = 64 - value.leading_zeros() as u64;
    significant.div_ceil(7).max(1)
}

/// Reads one varint from `bytes` at `*pos` and advances `*pos` past it.
///
/// Truncated input, more than 64 bits, and over-long encodings (a redundant trailing zero
/// group, which would let two byte strings mean the same container) are
/// [`PruneError::Corrupt`] naming the byte offset.
pub fn read_u64(bytes: &[u8], pos: &mut usize) -> Result<u64> {
    let start = *pos;
    let mut value = 0u64;
    for i in 0..MAX_VARINT_BYTES {
        let Some(&b) = bytes.get(start + i) else {
            return Err(PruneError::corrupt("varint", format!("truncated at byte {}", start + i)));
        };
        let group = (b & 0x7F) as u64;
        // The tenth byte may only carry the single remaining bit of a u64.
        if i == MAX_VARINT_BYTES - 1 && group > 1 {
            return Err(PruneError::corrupt("varint", format!("overflows u64 at byte {start}")));
        }
        value |= group << (7 * i);
        if b & 0x80 == 0 {
            if i > 0 && b == 0 {
                return Err(PruneError::corrupt("varint", format!("over-long at byte {start}")));
            }
            *pos = start + i + 1;
            return Ok(value);
        }
    }
    Err(PruneError::corrupt("varint", format!("more than 10 bytes at byte {start}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varint_round_trip(v in any::<u64>()) {
            let mut out = Vec::new();
            write_u64(&mut out, v);
            prop_assert_eq!(out.len() as u64, encoded_len(v));
            let mut pos = 0;
            prop_assert_eq!(read_u64(&out, &mut pos).unwrap(), v);
            prop_assert_eq!(pos, out.len());
            for cut in 0..out.len() {
                let mut pos = 0;
                prop_assert!(read_u64(&out[..cut], &mut pos).is_err());
            }
        }
    }

    #[test]
    fn varint_rejects_overflow_and_overlong() {
        let mut pos = 0;
        assert!(read_u64(&[0xFF; 10], &mut pos).is_err());
        assert!(read_u64(&[0x80, 0x00], &mut pos).is_err());
        assert_eq!(read_u64(&[0x00], &mut pos).unwrap(), 0);
        let mut max = Vec::new();
        write_u64(&mut max, u64::MAX);
        assert_eq!(max.len(), 10);
    }
}
