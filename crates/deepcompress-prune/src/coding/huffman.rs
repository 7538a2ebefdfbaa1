//! Canonical, length-limited Huffman codes over symbols `0..n` (`n` up to 65,536).
//!
//! Deep Compression (Han, Mao and Dally, 2015, arXiv 1510.00149, section 4) Huffman-codes
//! the codebook indices and the sparse index gaps of every layer; their distributions are
//! skewed, which saves a further 20-30 % of the storage. This module is that last stage.
//!
//! # Method
//!
//! 1. **Code lengths.** Symbols with a non-zero frequency are sorted by `(frequency,
//!    symbol)` and merged with the two-queue Huffman algorithm (a leaf wins ties against
//!    an internal node), so the same frequencies always give the same lengths.
//! 2. **Length limit.** Lengths above [`MAX_CODE_LEN`] (24 bits) are folded back with the
//!    rebalancing of the JPEG standard (ITU T.81, Annex K.3, `Adjust_BITS`): two leaves at
//!    the deepest level are removed, one of them becomes a sibling of a shallower leaf that
//!    moves one level down, and the other replaces their parent. Each step keeps the Kraft
//!    sum at exactly 1. The lengths per level are then handed out again in order of
//!    decreasing frequency, so frequent symbols keep the short codes. The limit is only
//!    reached for Fibonacci-like frequencies over at least ~75,000 symbols.
//! 3. **Canonical codes.** Codes are assigned in order of `(length, symbol)` as in DEFLATE
//!    (RFC 1951, 3.2.2), so the code lengths alone describe the code: the table stored in
//!    a file is just the lengths.
//! 4. **Bit order.** Codes are written most significant bit first into the
//!    least-significant-bit-first [`BitWriter`] (each code is stored bit-reversed), so a
//!    decoder can read them one bit at a time or look up the next few bits at once.
//! 5. **Decoding.** A 2^10-entry table resolves every code of up to 10 bits with one
//!    look-up; longer codes fall back to the canonical decoder (first code and count per
//!    length). A bit pattern that matches no code, or a stream that ends inside a code, is
//!    [`PruneError::Corrupt`].
//!
//! A one-symbol alphabet gets a 1-bit code (`0`), so its stream still has one bit per
//! symbol and stays decodable; an empty alphabet gets the empty code.
//!
//! # Table format
//!
//! [`HuffmanCode::write_table`] stores the code lengths of symbols `0..=max_symbol` (the
//! largest symbol with a code):
//!
//! | field        | bits       | meaning                                                     |
//! |--------------|------------|-------------------------------------------------------------|
//! | `n`          | 17         | number of length entries, `max_symbol + 1` (0 = empty code)  |
//! | `w`          | 3          | width of a length field, 1 to 5 (absent when `n = 0`)       |
//! | entries      | variable   | a `w`-bit length; a length of 0 is followed by the length `r` of the whole run of unused symbols it starts, Elias-gamma coded |
//!
//! The last entry is never 0. A dense 32-symbol alphabet with codes up to 15 bits thus
//! costs `17 + 3 + 32·4 = 148` bits.
//!
//! ```
//! use deepcompress_prune::bits::{BitReader, BitWriter};
//! use deepcompress_prune::coding::HuffmanCode;
//!
//! let symbols = [0u32, 0, 0, 0, 1, 1, 2, 3];
//! let code = HuffmanCode::from_symbols(&symbols).unwrap();
//! assert_eq!(code.lengths(), &[1, 2, 3, 3]);
//! assert_eq!(code.encoded_bits(&symbols).unwrap(), 4 + 4 + 3 + 3);
//!
//! let mut w = BitWriter::new();
//! code.write_table(&mut w);
//! code.encode(&symbols, &mut w).unwrap();
//! assert_eq!(w.bit_len(), code.table_bits() + 14);
//! let bytes = w.finish();
//!
//! let mut r = BitReader::new(&bytes);
//! let read = HuffmanCode::read_table(&mut r).unwrap();
//! assert_eq!(read, code);
//! assert_eq!(read.decode(&mut r, symbols.len()).unwrap(), symbols);
//! ```

use crate::bits::{BitReader, BitWriter};
use crate::{PruneError, Result};

/// Longest code length produced or accepted.
pub const MAX_CODE_LEN: u32 = 24;

/// Largest alphabet: symbols are below 2^16.
pub const MAX_SYMBOLS: usize = 1 << 16;

/// Codes up to this length are decoded with a single table look-up.
const LOOKUP_BITS: u32 = 10;

/// Bits of the `n` field of the serialized table (65,536 needs 17).
const TABLE_COUNT_BITS: u32 = 17;

/// A canonical Huffman code: code lengths per symbol plus the encoder and decoder tables
/// derived from them.
///
/// Build it from frequencies ([`HuffmanCode::from_frequencies`]), from the symbols to
/// encode ([`HuffmanCode::from_symbols`]) or from stored lengths
/// ([`HuffmanCode::from_lengths`], [`HuffmanCode::read_table`]). Two codes are equal when
/// their lengths are.
///
/// ```
/// use deepcompress_prune::coding::HuffmanCode;
/// let code = HuffmanCode::from_frequencies(&[10, 0, 1, 1]).unwrap();
/// assert_eq!(code.code_len(0), Some(1));
/// assert_eq!(code.code_len(1), None); // frequency 0: no code
/// assert_eq!(code.max_len(), 2);
/// // A single symbol still gets a 1-bit code.
/// let one = HuffmanCode::from_frequencies(&[0, 0, 7]).unwrap();
/// assert_eq!(one.lengths(), &[0, 0, 1]);
/// ```
#[derive(Debug, Clone)]
pub struct HuffmanCode {
    /// Code length per symbol, 0 = no code; no trailing zeros.
    lengths: Vec<u8>,
    /// Canonical code per symbol, bit-reversed so the LSB-first writer emits MSB first.
    codes: Vec<u32>,
    max_len: u32,
    /// Number of codes of each length.
    count: [u32; MAX_CODE_LEN as usize + 1],
    /// Symbols in canonical order `(length, symbol)`.
    sorted: Vec<u32>,
    lookup_bits: u32,
    /// `symbol << 8 | length` for codes of at most `lookup_bits` bits, 0 otherwise.
    lookup: Vec<u32>,
}

impl PartialEq for HuffmanCode {
    fn eq(&self, other: &Self) -> bool {
        // Everything else is derived from the lengths.
        self.lengths == other.lengths
    }
}

impl Eq for HuffmanCode {}

impl HuffmanCode {
    /// Builds an optimal length-limited code for symbol frequencies `freqs[s]`.
    ///
    /// Symbols with frequency 0 get no code. At most [`MAX_SYMBOLS`] frequencies.
    pub fn from_frequencies(freqs: &[u64]) -> Result<Self> {
        if freqs.len() > MAX_SYMBOLS {
            return Err(PruneError::param(
                "alphabet size",
                freqs.len(),
                format!("Huffman codes cover at most {MAX_SYMBOLS} symbols"),
            ));
        }
        Self::from_lengths(huffman_lengths(freqs, MAX_CODE_LEN))
    }

    /// Builds the code for the frequencies of `symbols` (each below [`MAX_SYMBOLS`]).
    pub fn from_symbols(symbols: &[u32]) -> Result<Self> {
        let max = symbols.iter().copied().max().map_or(0, |m| m as usize + 1);
        if max > MAX_SYMBOLS {
            return Err(PruneError::param(
                "symbol",
                max - 1,
                format!("Huffman symbols must be below {MAX_SYMBOLS}"),
            ));
        }
        let mut freqs = vec![0u64; max];
        for &s in symbols {
            freqs[s as usize] += 1;
        }
        Self::from_frequencies(&freqs)
    }

    /// Rebuilds a code from its code lengths (0 = symbol without code).
    ///
    /// Lengths above [`MAX_CODE_LEN`], more than [`MAX_SYMBOLS`] entries or an
    /// over-subscribed set (Kraft sum above 1) are [`PruneError::Corrupt`]; incomplete sets
    /// are accepted and the unused bit patterns are rejected when decoding.
    pub fn from_lengths(mut lengths: Vec<u8>) -> Result<Self> {
        while lengths.last() == Some(&0) {
            lengths.pop();
        }
        if lengths.len() > MAX_SYMBOLS {
            return Err(PruneError::corrupt(
                "Huffman table",
                format!("{} symbols, at most {MAX_SYMBOLS}", lengths.len()),
            ));
        }
        let mut count = [0u32; MAX_CODE_LEN as usize + 1];
        for (s, &l) in lengths.iter().enumerate() {
            if l as u32 > MAX_CODE_LEN {
                return Err(PruneError::corrupt(
                    "Huffman table",
                    format!("symbol {s} has length {l}, at most {MAX_CODE_LEN}"),
                ));
            }
            count[l as usize] += 1;
        }
        count[0] = 0;
        // Kraft check: `left` is the number of unused codes at the current length.
        let mut left: i64 = 1;
        for len in 1..=MAX_CODE_LEN as usize {
            left = left * 2 - count[len] as i64;
            if left < 0 {
                return Err(PruneError::corrupt(
                    "Huffman table",
                    format!("over-subscribed at length {len}"),
                ));
            }
        }
        let max_len = (1..=MAX_CODE_LEN).rev().find(|&l| count[l as usize] > 0).unwrap_or(0);

        // Canonical code values per length (RFC 1951, 3.2.2).
        let mut next = [0u32; MAX_CODE_LEN as usize + 2];
        let mut code = 0u32;
        for len in 1..=MAX_CODE_LEN as usize {
            code = (code + count[len - 1]) << 1;
            next[len] = code;
        }
        let mut codes = vec![0u32; lengths.len()];
        for (s, &l) in lengths.iter().enumerate() {
            if l > 0 {
                codes[s] = reverse(next[l as usize], l as u32);
                next[l as usize] += 1;
            }
        }

        let mut sorted: Vec<u32> =
            (0..lengths.len() as u32).filter(|&s| lengths[s as usize] > 0).collect();
        sorted.sort_by_key(|&s| (lengths[s as usize], s));

        let lookup_bits = max_len.min(LOOKUP_BITS);
        let mut lookup = vec![0u32; 1 << lookup_bits];
        for &s in &sorted {
            let l = lengths[s as usize] as u32;
            if l > lookup_bits {
                break;
            }
            let rev = codes[s as usize];
            for fill in 0..(1u32 << (lookup_bits - l)) {
                lookup[(rev | (fill << l)) as usize] = (s << 8) | l;
            }
        }
        Ok(Self { lengths, codes, max_len, count, sorted, lookup_bits, lookup })
    }

    /// Code length of each symbol `0..=max_symbol` (0 = no code).
    pub fn lengths(&self) -> &[u8] {
        &self.lengths
    }

    /// Code length of `symbol`, `None` when it has no code.
    pub fn code_len(&self, symbol: u32) -> Option<u32> {
        match self.lengths.get(symbol as usize) {
            Some(&l) if l > 0 => Some(l as u32),
            _ => None,
        }
    }

    /// Longest code length (0 for the empty code).
    pub fn max_len(&self) -> u32 {
        self.max_len
    }

    /// Number of symbols with a code.
    pub fn num_codes(&self) -> usize {
        self.sorted.len()
    }

    /// Exact number of bits [`HuffmanCode::encode`] writes for `symbols`.
    ///
    /// A symbol without a code is [`PruneError::InvalidParam`].
    pub fn encoded_bits(&self, symbols: &[u32]) -> Result<u64> {
        let mut total = 0u64;
        for &s in symbols {
            total += self.len_or_err(s)? as u64;
        }
        Ok(total)
    }

    /// Appends the codes of `symbols` to `w`.
    ///
    /// Every symbol is checked before anything is written: a symbol without a code is
    /// [`PruneError::InvalidParam`] and leaves `w` unchanged.
    pub fn encode(&self, symbols: &[u32], w: &mut BitWriter) -> Result<()> {
        self.encoded_bits(symbols)?;
        for &s in symbols {
            let s = s as usize;
            w.write(self.codes[s], self.lengths[s] as u32);
        }
        Ok(())
    }

    /// Decodes one symbol.
    ///
    /// For many symbols [`HuffmanCode::decode`] is several times faster.
    pub fn decode_symbol(&self, r: &mut BitReader<'_>) -> Result<u32> {
        let at = r.position();
        let have = r.remaining().min(self.max_len as u64) as u32;
        let bits = r.clone().read(have)?;
        let (symbol, len) = self.match_code(bits as u64, have, at)?;
        r.read(len)?;
        Ok(symbol)
    }

    /// The symbol and code length at the start of `bits`, of which `have` are valid
    /// (the first bit of the stream in bit 0); `at` is the stream position for errors.
    #[inline]
    fn match_code(&self, bits: u64, have: u32, at: u64) -> Result<(u32, u32)> {
        let entry = self.lookup[(bits & ((1 << self.lookup_bits) - 1)) as usize];
        let len = entry & 0xFF;
        if len != 0 && len <= have {
            return Ok((entry >> 8, len));
        }
        self.match_slow(bits, have, at)
    }

    /// Canonical decoding one bit at a time, for codes longer than the look-up table and
    /// for the error paths (truncation, unused bit patterns, empty code).
    fn match_slow(&self, bits: u64, have: u32, at: u64) -> Result<(u32, u32)> {
        let (mut code, mut first, mut index) = (0u32, 0u32, 0u32);
        for len in 1..=self.max_len {
            if len > have {
                return Err(PruneError::corrupt(
                    "Huffman stream",
                    format!("truncated inside a code at bit {at}"),
                ));
            }
            code |= ((bits >> (len - 1)) & 1) as u32;
            let n = self.count[len as usize];
            if code.wrapping_sub(first) < n {
                return Ok((self.sorted[(index + code - first) as usize], len));
            }
            index += n;
            first = (first + n) << 1;
            code <<= 1;
        }
        let reason = if self.max_len == 0 {
            format!("symbol at bit {at} but the code is empty")
        } else {
            format!("no code matches the bits at bit {at}")
        };
        Err(PruneError::corrupt("Huffman stream", reason))
    }

    /// Decodes `count` symbols.
    ///
    /// Every code takes at least one bit, so a `count` larger than the bits left is
    /// rejected before anything is allocated. The bits are pulled 32 at a time into a
    /// 64-bit buffer, so each symbol costs one table look-up.
    pub fn decode(&self, r: &mut BitReader<'_>, count: usize) -> Result<Vec<u32>> {
        if count as u64 > r.remaining() {
            return Err(PruneError::corrupt(
                "Huffman stream",
                format!("{count} symbols cannot fit in the {} bits left", r.remaining()),
            ));
        }
        let start = r.position();
        // Decode from a copy: the buffer reads ahead of the last code.
        let mut src = r.clone();
        let (mut buf, mut have, mut used) = (0u64, 0u32, 0u64);
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            if have < MAX_CODE_LEN {
                let n = src.remaining().min(32) as u32;
                buf |= (src.read(n)? as u64) << have;
                have += n;
            }
            let (symbol, len) = self.match_code(buf, have, start + used)?;
            out.push(symbol);
            buf >>= len;
            have -= len;
            used += len as u64;
        }
        // Advance the caller's reader past exactly the bits the codes used.
        while used > 0 {
            let n = used.min(32) as u32;
            r.read(n)?;
            used -= n as u64;
        }
        Ok(out)
    }

    /// Writes the code lengths (the format is in the [module docs](self)).
    pub fn write_table(&self, w: &mut BitWriter) {
        let n = self.lengths.len();
        w.write(n as u32, TABLE_COUNT_BITS);
        if n == 0 {
            return;
        }
        let width = bit_width(self.max_len);
        w.write(width, 3);
        let mut i = 0;
        while i < n {
            let l = self.lengths[i];
            w.write(l as u32, width);
            if l == 0 {
                let run = self.lengths[i..].iter().take_while(|&&l| l == 0).count();
                write_gamma(w, run as u32);
                i += run;
            } else {
                i += 1;
            }
        }
    }

    /// Exact size of [`HuffmanCode::write_table`]'s output in bits.
    pub fn table_bits(&self) -> u64 {
        let mut w = BitWriter::new();
        self.write_table(&mut w);
        w.bit_len()
    }

    /// Reads a table written by [`HuffmanCode::write_table`].
    pub fn read_table(r: &mut BitReader<'_>) -> Result<Self> {
        let start = r.position();
        let corrupt = |reason: String| {
            PruneError::corrupt("Huffman table", format!("{reason} (table at bit {start})"))
        };
        let n = r.read(TABLE_COUNT_BITS)? as usize;
        if n > MAX_SYMBOLS {
            return Err(corrupt(format!("{n} symbols, at most {MAX_SYMBOLS}")));
        }
        if n == 0 {
            return Self::from_lengths(Vec::new());
        }
        let width = r.read(3)?;
        if !(1..=bit_width(MAX_CODE_LEN)).contains(&width) {
            return Err(corrupt(format!("length width {width}")));
        }
        let mut lengths = Vec::with_capacity(n);
        while lengths.len() < n {
            let l = r.read(width)?;
            if l == 0 {
                let run = read_gamma(r)? as usize;
                if run > n - lengths.len() {
                    return Err(corrupt(format!(
                        "a run of {run} unused symbols after {} of {n}",
                        lengths.len()
                    )));
                }
                lengths.resize(lengths.len() + run, 0);
            } else {
                lengths.push(l as u8);
            }
        }
        if lengths.last() == Some(&0) {
            return Err(corrupt("the last symbol has no code".into()));
        }
        Self::from_lengths(lengths)
    }

    fn len_or_err(&self, s: u32) -> Result<u32> {
        self.code_len(s).ok_or_else(|| {
            PruneError::param("symbol", s, "has no Huffman code (it had frequency 0)")
        })
    }
}

/// Optimal code lengths for `freqs`, limited to `limit` bits; see the module docs.
fn huffman_lengths(freqs: &[u64], limit: u32) -> Vec<u8> {
    let mut lengths = vec![0u8; freqs.len()];
    let mut leaves: Vec<(u64, u32)> =
        freqs.iter().enumerate().filter(|(_, f)| **f > 0).map(|(s, &f)| (f, s as u32)).collect();
    match leaves.len() {
        0 => return lengths,
        1 => {
            lengths[leaves[0].1 as usize] = 1;
            return lengths;
        }
        _ => {}
    }
    leaves.sort_unstable();
    let n = leaves.len();

    // Two-queue merge: leaves 0..n in ascending weight, internal nodes n..2n-1 are created
    // in ascending weight too, so the two lightest are always at the queue fronts.
    let mut weight: Vec<u64> = leaves.iter().map(|l| l.0).collect();
    let mut parent = vec![0usize; 2 * n - 1];
    let (mut next_leaf, mut next_node) = (0usize, n);
    for new in n..2 * n - 1 {
        let mut pick = || {
            let take_leaf =
                next_leaf < n && (next_node >= new || weight[next_leaf] <= weight[next_node]);
            if take_leaf {
                next_leaf += 1;
                next_leaf - 1
            } else {
                next_node += 1;
                next_node - 1
            }
        };
        let (a, b) = (pick(), pick());
        weight.push(weight[a].saturating_add(weight[b]));
        parent[a] = new;
        parent[b] = new;
    }
    // A parent is always created after its children, so one backward sweep gives depths.
    let root = 2 * n - 2;
    let mut depth = vec![0u32; 2 * n - 1];
    for i in (0..root).rev() {
        depth[i] = depth[parent[i]] + 1;
    }
    let deepest = depth[..n].iter().copied().max().unwrap_or(0) as usize;
    let mut count = vec![0u64; deepest.max(limit as usize) + 1];
    for &d in &depth[..n] {
        count[d as usize] += 1;
    }

    // JPEG Annex K.3 rebalancing; n <= 2^16 <= 2^limit guarantees a shallower leaf exists.
    for i in (limit as usize + 1..=deepest).rev() {
        while count[i] > 0 {
            let mut j = i - 2;
            while j > 0 && count[j] == 0 {
                j -= 1;
            }
            debug_assert!(j > 0, "no leaf to move down");
            count[i] -= 2;
            count[i - 1] += 1;
            count[j + 1] += 2;
            count[j] -= 1;
        }
    }

    // Shortest lengths to the most frequent symbols; ties by symbol for determinism.
    leaves.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut it = leaves.iter();
    for (len, &c) in count.iter().enumerate().skip(1) {
        for leaf in it.by_ref().take(c as usize) {
            lengths[leaf.1 as usize] = len as u8;
        }
    }
    lengths
}

/// Reverses the low `n` bits of `code`.
fn reverse(code: u32, n: u32) -> u32 {
    if n == 0 { 0 } else { code.reverse_bits() >> (32 - n) }
}

/// Bits needed to hold `v` (at least 1).
fn bit_width(v: u32) -> u32 {
    (32 - v.leading_zeros()).max(1)
}

/// Elias gamma code of `v >= 1`: `floor(log2 v)` zeros, a one, then the low bits of `v`.
fn write_gamma(w: &mut BitWriter, v: u32) {
    debug_assert!(v >= 1);
    let n = 31 - v.leading_zeros();
    w.write(1 << n, n + 1);
    w.write(v, n);
}

fn read_gamma(r: &mut BitReader<'_>) -> Result<u32> {
    let start = r.position();
    let mut zeros = 0;
    while r.read_bit()? == 0 {
        zeros += 1;
        // Runs are at most 2^16 long.
        if zeros > 16 {
            return Err(PruneError::corrupt(
                "Huffman table",
                format!("run length too long at bit {start}"),
            ));
        }
    }
    Ok((1 << zeros) | r.read(zeros)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(symbols: &[u32]) -> HuffmanCode {
        let code = HuffmanCode::from_symbols(symbols).unwrap();
        let mut w = BitWriter::new();
        code.write_table(&mut w);
        let table_bits = w.bit_len();
        assert_eq!(table_bits, code.table_bits());
        code.encode(symbols, &mut w).unwrap();
        assert_eq!(w.bit_len() - table_bits, code.encoded_bits(symbols).unwrap());
        // A trailing field shows that decoding stops exactly after the last code.
        w.write(0x5A5, 11);
        let bytes = w.finish();
        let mut r = BitReader::new(&bytes);
        let read = HuffmanCode::read_table(&mut r).unwrap();
        assert_eq!(read, code);
        let mut one_by_one = r.clone();
        assert_eq!(read.decode(&mut r, symbols.len()).unwrap(), symbols);
        assert_eq!(r.read(11).unwrap(), 0x5A5);
        for &s in symbols.iter().take(500) {
            assert_eq!(read.decode_symbol(&mut one_by_one).unwrap(), s);
        }
        code
    }

    fn entropy_bits(symbols: &[u32]) -> f64 {
        let mut freq = std::collections::HashMap::new();
        for &s in symbols {
            *freq.entry(s).or_insert(0usize) += 1;
        }
        let n = symbols.len() as f64;
        freq.values().map(|&c| -(c as f64 / n) * (c as f64 / n).log2()).sum()
    }

    /// Exponentially distributed symbols with a random scale: many small values, a tail.
    fn skewed() -> impl Strategy<Value = Vec<u32>> {
        (0.2f64..40.0, proptest::collection::vec(any::<u32>(), 1..2000)).prop_map(|(scale, raw)| {
            raw.iter()
                .map(|r| {
                    let u = ((r % 4096) as f64 + 0.5) / 4096.0;
                    (-u.ln() * scale) as u32
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn huffman_round_trip_uniform(
            alphabet in 1u32..=70_000,
            raw in proptest::collection::vec(any::<u32>(), 0..3000),
        ) {
            let alphabet = alphabet.min(MAX_SYMBOLS as u32);
            let symbols: Vec<u32> = raw.iter().map(|r| r % alphabet).collect();
            round_trip(&symbols);
        }

        #[test]
        fn huffman_round_trip_skewed(symbols in skewed()) {
            round_trip(&symbols);
        }

        #[test]
        fn huffman_average_length_within_one_bit_of_entropy(symbols in skewed()) {
            let code = round_trip(&symbols);
            prop_assume!(code.max_len() < MAX_CODE_LEN);
            let avg = code.encoded_bits(&symbols).unwrap() as f64 / symbols.len() as f64;
            let h = entropy_bits(&symbols);
            prop_assert!(avg >= h - 1e-9, "avg {avg} below entropy {h}");
            prop_assert!(avg <= h + 1.0 + 1e-9, "avg {avg} vs entropy {h}");
        }

        #[test]
        fn huffman_corrupt_streams_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
            count in 0usize..600,
        ) {
            let mut r = BitReader::new(&bytes);
            if let Ok(code) = HuffmanCode::read_table(&mut r) {
                let _ = code.decode(&mut r, count);
            }
        }
    }

    #[test]
    fn single_symbol_gets_one_bit() {
        let symbols = vec![5u32; 100];
        let code = round_trip(&symbols);
        assert_eq!(code.code_len(5), Some(1));
        assert_eq!(code.encoded_bits(&symbols).unwrap(), 100);
        // The unused pattern `1` matches nothing.
        let mut r = BitReader::new(&[0b1]);
        assert!(matches!(code.decode_symbol(&mut r), Err(PruneError::Corrupt { .. })));
    }

    #[test]
    fn empty_code() {
        let code = round_trip(&[]);
        assert_eq!(code.table_bits(), 17);
        let mut r = BitReader::new(&[0]);
        assert!(code.decode_symbol(&mut r).is_err());
    }

    #[test]
    fn fibonacci_frequencies_hit_the_length_limit() {
        // Fibonacci weights make a maximally deep tree: 40 symbols need 39 bits unlimited.
        let mut freqs = vec![1u64, 1];
        while freqs.len() < 40 {
            let k = freqs.len();
            freqs.push(freqs[k - 1] + freqs[k - 2]);
        }
        let unlimited = huffman_lengths(&freqs, 64);
        assert_eq!(*unlimited.iter().max().unwrap(), 39);
        let code = HuffmanCode::from_frequencies(&freqs).unwrap();
        assert_eq!(code.max_len(), MAX_CODE_LEN);
        let kraft: f64 = code.lengths().iter().map(|&l| 0.5f64.powi(l as i32)).sum();
        assert!((kraft - 1.0).abs() < 1e-12);
        // Frequent symbols keep short codes.
        assert_eq!(code.code_len(39), Some(1));
        // Long codes decode through the slow path.
        let symbols: Vec<u32> = (0..40).chain((0..40).rev()).collect();
        let mut w = BitWriter::new();
        code.encode(&symbols, &mut w).unwrap();
        let bytes = w.finish();
        assert_eq!(code.decode(&mut BitReader::new(&bytes), symbols.len()).unwrap(), symbols);
    }

    #[test]
    fn tie_breaking_is_deterministic() {
        let a = HuffmanCode::from_frequencies(&[3, 3, 3, 3, 3]).unwrap();
        assert_eq!(a.lengths(), &[2, 2, 2, 3, 3]);
    }

    #[test]
    fn bad_tables_and_symbols_are_errors() {
        assert!(HuffmanCode::from_lengths(vec![1, 1, 1]).is_err()); // over-subscribed
        assert!(HuffmanCode::from_lengths(vec![25]).is_err());
        assert!(HuffmanCode::from_frequencies(&vec![1; MAX_SYMBOLS + 1]).is_err());
        assert!(HuffmanCode::from_symbols(&[MAX_SYMBOLS as u32]).is_err());
        let code = HuffmanCode::from_symbols(&[0, 1]).unwrap();
        let mut w = BitWriter::new();
        assert!(code.encode(&[0, 2], &mut w).is_err());
        assert_eq!(w.bit_len(), 0);
        // More symbols asked for than bits left.
        assert!(code.decode(&mut BitReader::new(&[0]), 9).is_err());
        // Truncated in the middle of a long code.
        let long = HuffmanCode::from_lengths(vec![1, 2, 3, 3]).unwrap();
        assert!(long.decode_symbol(&mut BitReader::new(&[])).is_err());
    }

    #[test]
    fn large_sparse_alphabet_table_is_compact() {
        // Two symbols far apart: the zero run costs a gamma code, not 65,000 fields.
        let code = round_trip(&[0, 65_535, 65_535]);
        assert!(code.table_bits() < 17 + 3 + 3 * 2 + 33);
    }
}
