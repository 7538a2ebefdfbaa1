//! Deep Compression's relative-index storage of sparse positions.
//!
//! Han, Mao and Dally (2015, arXiv 1510.00149, sec. 2) store the position of each
//! non-zero as its distance from the previous one in `b` bits (4 for conv, 5 for fc
//! layers). A gap too long for `b` bits is bridged by filler entries. Here a filler is
//! the reserved symbol `2^b - 1`, meaning "advance `2^b - 1` positions without a value":
//! unlike the paper's filler zeros it carries no value, so it saves one value per
//! filler. A symbol `s < 2^b - 1` means "the next non-zero is `s + 1` positions on".

use crate::{PruneError, Result};

/// Default gap width for convolution weights (Deep Compression, sec. 2).
pub const CONV_INDEX_BITS: u32 = 4;
/// Default gap width for fully connected weights (Deep Compression, sec. 2).
pub const FC_INDEX_BITS: u32 = 5;

/// Checks a gap width: 1 to 16 bits.
pub(crate) fn check_index_bits(bits: u32) -> Result<()> {
    if (1..=16).contains(&bits) {
        Ok(())
    } else {
        Err(PruneError::param("index_bits", bits, "relative indices need 1 to 16 bits"))
    }
}

/// Gap symbols for strictly increasing flat `positions`, fillers included.
///
/// ```
/// use deepcompress_prune::sparse::{decode_gaps, encode_gaps};
/// // 2-bit gaps: escape symbol 3 advances 3 positions without a value.
/// let symbols = encode_gaps(&[0, 1, 9], 2).unwrap();
/// assert_eq!(symbols, vec![0, 0, 3, 3, 1]);
/// assert_eq!(decode_gaps(&symbols, 2, 10).unwrap(), vec![0, 1, 9]);
/// ```
pub fn encode_gaps(positions: &[usize], bits: u32) -> Result<Vec<u32>> {
    check_index_bits(bits)?;
    let escape = (1usize << bits) - 1;
    let mut out = Vec::with_capacity(positions.len());
    let mut next = 0usize; // first position the next symbol can point at
    for &p in positions {
        if p < next {
            return Err(PruneError::param("positions", p, "must be strictly increasing"));
        }
        let mut d = p - next; // positions skipped
        while d >= escape {
            out.push(escape as u32);
            d -= escape;
        }
        out.push(d as u32);
        next = p + 1;
    }
    Ok(out)
}

/// Flat positions from gap symbols; every position must be below `numel`.
pub fn decode_gaps(symbols: &[u32], bits: u32, numel: usize) -> Result<Vec<usize>> {
    check_index_bits(bits)?;
    let escape = (1u32 << bits) - 1;
    let mut out = Vec::with_capacity(symbols.len());
    let mut next = 0usize;
    for (i, &s) in symbols.iter().enumerate() {
        if s > escape {
            return Err(PruneError::corrupt(
                "relative indices",
                format!("symbol {s} at {i} does not fit in {bits} bits"),
            ));
        }
        if s == escape {
            next += escape as usize;
            continue;
        }
        let p = next + s as usize;
        if p >= numel {
            return Err(PruneError::corrupt(
                "relative indices",
                format!("position {p} at symbol {i} is past the {numel} weights"),
            ));
        }
        out.push(p);
        next = p + 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn gaps_round_trip(bits in 1u32..=8, mask in proptest::collection::vec(any::<bool>(), 0..500),
                           spread in 1usize..40) {
            let positions: Vec<usize> =
                mask.iter().enumerate().filter(|(_, m)| **m).map(|(i, _)| i * spread).collect();
            let numel = mask.len() * spread + 1;
            let symbols = encode_gaps(&positions, bits).unwrap();
            let escape = (1u32 << bits) - 1;
            prop_assert_eq!(symbols.iter().filter(|s| **s != escape).count(), positions.len());
            prop_assert_eq!(decode_gaps(&symbols, bits, numel).unwrap(), positions);
        }
    }

    #[test]
    fn rejects_bad_input() {
        assert!(encode_gaps(&[3, 2], 4).is_err());
        assert!(encode_gaps(&[1], 0).is_err());
        assert!(decode_gaps(&[20], 4, 100).is_err());
        assert!(decode_gaps(&[5], 4, 3).is_err());
    }
}
