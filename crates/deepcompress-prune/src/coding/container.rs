//! The compressed-model file: a checksummed list of named records.
//!
//! The container knows nothing about tensor types. A record is a parameter path
//! (`fc1.weight`, PyTorch `state_dict` style), a shape and an [`Encoding`]: raw `f32`s, or
//! the Deep Compression triple (Han, Mao and Dally, 2015, arXiv 1510.00149) of sparse
//! relative positions, non-zero values or codebook indices, each stream stored fixed-width
//! or Huffman-coded. The sparse and sharing modules produce and consume these pieces; the
//! container stores them byte-exactly and accounts for every bit
//! ([`Record::size`]), so the size a report prints is the size of the file.
//!
//! # Byte layout
//!
//! All fixed-width integers are little-endian; `varint` is unsigned LEB128
//! (the [`super::varint`] module); `f32` is the 4 raw little-endian bytes of the IEEE value.
//!
//! | offset | size | field                                                          |
//! |--------|------|----------------------------------------------------------------|
//! | 0      | 4    | magic `b"DCMP"`                                                |
//! | 4      | 2    | version, `u16` = 1                                             |
//! | 6      | 2    | flags, `u16`, must be 0 (reserved)                             |
//! | 8      | 8    | record count, `u64`                                            |
//! | 16     | 8    | body length in bytes, `u64` (the rest of the file, exactly)    |
//! | 24     | 4    | CRC-32 (IEEE 802.3) of bytes 0..24 followed by the body        |
//! | 28     | ...  | body: the records, back to back                                |
//!
//! A **record**:
//!
//! | field      | encoding                                                            |
//! |------------|---------------------------------------------------------------------|
//! | path       | varint byte length, UTF-8 bytes                                     |
//! | shape      | varint rank, one varint per dimension                               |
//! | kind       | `u8`: 0 = [`Encoding::Raw`], 1 = [`Encoding::Encoded`]              |
//! | raw        | kind 0: varint count `n`, `n` × `f32`                               |
//! | encoded    | kind 1: `u8` flags (bit 0: positions present, bit 1: values indexed), then the positions stream if present, then the values: indexed = varint `k`, `k` × `f32` codebook, indices stream; raw = varint `n`, `n` × `f32` |
//!
//! A **symbol stream** ([`SymbolStream`]):
//!
//! | field          | encoding                                                        |
//! |----------------|-----------------------------------------------------------------|
//! | width          | `u8`, 1 to 16: every symbol is below 2^width                    |
//! | coding         | `u8`: 0 = [`Coding::Fixed`], 1 = [`Coding::Huffman`]            |
//! | count          | varint, number of symbols                                       |
//! | payload length | varint, bytes                                                   |
//! | payload        | fixed: the symbols as `width`-bit fields; Huffman: the table ([`HuffmanCode::write_table`]) then the codes. Bit fields are packed least significant bit first ([`BitWriter`]) and the last byte is zero-padded |
//!
//! The container checks the format, not the meaning: that the number of positions and
//! values agrees with the shape, or that indices are below the codebook length, is checked
//! by the sparse and sharing types when they are rebuilt from a record.
//!
//! # Robustness
//!
//! [`Container::from_bytes`] checks the magic, the version, the exact length and the
//! checksum before it parses anything, and every field is bounds-checked anyway: truncated
//! or corrupt input is [`PruneError::Corrupt`] naming the field and its byte offset,
//! never a panic, and no count is trusted for an allocation beyond what the remaining bytes
//! can hold.
//!
//! ```
//! use deepcompress_prune::coding::{Coding, Container, Encoding, Record, SymbolStream, Values};
//!
//! let weight = Record {
//!     path: "fc1.weight".into(),
//!     shape: vec![2, 8],
//!     encoding: Encoding::Encoded {
//!         // Relative gaps of the 4 non-zeros, 3 bits each.
//!         positions: Some(SymbolStream::new(3, vec![1, 0, 6, 2], Coding::Fixed).unwrap()),
//!         values: Values::Indexed {
//!             codebook: vec![-0.5, 0.25],
//!             indices: SymbolStream::smallest(1, vec![0, 1, 1, 0]).unwrap(),
//!         },
//!     },
//! };
//! let bias = Record { path: "fc1.bias".into(), shape: vec![2], encoding: Encoding::Raw(vec![0.1, -0.2]) };
//! let c = Container { records: vec![weight, bias] };
//!
//! let bytes = c.to_bytes();
//! assert_eq!(bytes.len() as u64, c.encoded_bytes());
//! assert_eq!(Container::from_bytes(&bytes).unwrap(), c);
//!
//! let size = c.records[0].size();
//! assert_eq!(size.position_bits, 12);
//! assert_eq!(size.value_bits, 4);
//! assert_eq!(size.codebook_bits, 64);
//! assert_eq!(size.total_bytes, c.records[0].encoded_bytes());
//!
//! // A flipped bit anywhere is caught.
//! let mut bad = bytes.clone();
//! bad[40] ^= 0x10;
//! assert!(Container::from_bytes(&bad).is_err());
//! ```

use std::path::Path;

use deepcompress_core::CoreError;

use super::huffman::HuffmanCode;
use super::varint;
use crate::bits::{BitReader, BitWriter};
use crate::{PruneError, Result};

/// The first four bytes of every container file.
pub const MAGIC: [u8; 4] = *b"DCMP";

/// The format version this code writes and reads.
pub const VERSION: u16 = 1;

/// Size of the fixed header in bytes.
pub const HEADER_BYTES: u64 = 28;

/// Widest symbol a [`SymbolStream`] holds, in bits.
pub const MAX_SYMBOL_BITS: u32 = 16;

/// How a [`SymbolStream`] stores its symbols.
///
/// ```
/// use deepcompress_prune::coding::{Coding, SymbolStream};
/// let s = SymbolStream::new(4, vec![1, 2, 3], Coding::Fixed).unwrap();
/// assert_eq!(s.coding(), Coding::Fixed);
/// assert_eq!(s.payload_bits(), 12);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    /// Every symbol in `bits` bits.
    Fixed,
    /// A canonical Huffman code built from the symbols; the table is stored with them.
    Huffman,
}

/// A sequence of small unsigned symbols (sparse index gaps or codebook indices) below
/// `2^bits`, with the way it is stored.
///
/// The fields are private so that every stream is valid: the width is 1 to
/// [`MAX_SYMBOL_BITS`], every symbol fits, and a Huffman stream carries its code.
///
/// ```
/// use deepcompress_prune::coding::{Coding, SymbolStream};
/// // Skewed indices: Huffman wins once its table is paid for.
/// let symbols: Vec<u32> = (0..1000).map(|i| if i % 10 == 0 { i % 32 } else { 0 }).collect();
/// let s = SymbolStream::smallest(5, symbols.clone()).unwrap();
/// assert_eq!(s.coding(), Coding::Huffman);
/// assert!(s.payload_bits() + s.table_bits() < 5 * 1000);
/// assert_eq!(s.symbols(), &symbols[..]);
/// // Uniform indices: fixed width is smaller.
/// let uniform: Vec<u32> = (0..1000).map(|i| i % 32).collect();
/// assert_eq!(SymbolStream::smallest(5, uniform).unwrap().coding(), Coding::Fixed);
/// assert!(SymbolStream::new(3, vec![8], Coding::Fixed).is_err()); // 8 needs 4 bits
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolStream {
    bits: u32,
    symbols: Vec<u32>,
    // Boxed: the decoder tables would make every stream (and record) large.
    huffman: Option<Box<HuffmanCode>>,
    /// Bits of the codes alone (no table).
    payload_bits: u64,
}

impl SymbolStream {
    /// A stream of `symbols`, each below `2^bits` (`bits` from 1 to 16), stored as `coding`.
    pub fn new(bits: u32, symbols: Vec<u32>, coding: Coding) -> Result<Self> {
        let fixed = Self::fixed(bits, symbols)?;
        match coding {
            Coding::Fixed => Ok(fixed),
            Coding::Huffman => {
                let code = HuffmanCode::from_symbols(&fixed.symbols)?;
                Ok(fixed.with_code(code))
            }
        }
    }

    /// The smaller of the fixed-width and the Huffman stream, counting the Huffman table
    /// and the byte padding; fixed width on a tie.
    pub fn smallest(bits: u32, symbols: Vec<u32>) -> Result<Self> {
        let fixed = Self::fixed(bits, symbols)?;
        let code = HuffmanCode::from_symbols(&fixed.symbols)?;
        let code_bits = code.encoded_bits(&fixed.symbols)?;
        let huffman_payload = (code.table_bits() + code_bits).div_ceil(8);
        if huffman_payload < fixed.payload_bytes() { Ok(fixed.with_code(code)) } else { Ok(fixed) }
    }

    fn fixed(bits: u32, symbols: Vec<u32>) -> Result<Self> {
        if !(1..=MAX_SYMBOL_BITS).contains(&bits) {
            return Err(PruneError::param("bits", bits, "a symbol stream needs 1 to 16 bits"));
        }
        if let Some((i, s)) = symbols.iter().enumerate().find(|(_, s)| **s >> bits != 0) {
            return Err(PruneError::param(
                "symbol",
                s,
                format!("symbol {i} does not fit in {bits} bits"),
            ));
        }
        let payload_bits = symbols.len() as u64 * bits as u64;
        Ok(Self { bits, symbols, huffman: None, payload_bits })
    }

    fn with_code(mut self, code: HuffmanCode) -> Self {
        // Every symbol has a code because the code was built from these symbols.
        self.payload_bits =
            self.symbols.iter().map(|&s| code.code_len(s).unwrap_or(0) as u64).sum();
        self.huffman = Some(Box::new(code));
        self
    }

    /// Width of a symbol in bits (every symbol is below `2^bits`).
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// The symbols.
    pub fn symbols(&self) -> &[u32] {
        &self.symbols
    }

    /// The symbols, by value.
    pub fn into_symbols(self) -> Vec<u32> {
        self.symbols
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    /// True when there are no symbols.
    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    /// How the symbols are stored.
    pub fn coding(&self) -> Coding {
        if self.huffman.is_some() { Coding::Huffman } else { Coding::Fixed }
    }

    /// The Huffman code of a [`Coding::Huffman`] stream.
    pub fn huffman_code(&self) -> Option<&HuffmanCode> {
        self.huffman.as_deref()
    }

    /// Exact bits of the symbol codes: `len * bits` for fixed width, the sum of the code
    /// lengths for Huffman. Excludes the table and the padding.
    pub fn payload_bits(&self) -> u64 {
        self.payload_bits
    }

    /// Exact bits of the Huffman table (0 for fixed width).
    pub fn table_bits(&self) -> u64 {
        self.huffman.as_ref().map_or(0, |c| c.table_bits())
    }

    /// Payload bytes in the file: table and codes, padded to a byte.
    fn payload_bytes(&self) -> u64 {
        (self.table_bits() + self.payload_bits).div_ceil(8)
    }

    /// Exact bytes of this stream in the file, its own header included.
    pub fn encoded_bytes(&self) -> u64 {
        let payload = self.payload_bytes();
        2 + varint::encoded_len(self.symbols.len() as u64) + varint::encoded_len(payload) + payload
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.push(self.bits as u8);
        out.push(match self.coding() {
            Coding::Fixed => 0,
            Coding::Huffman => 1,
        });
        varint::write_u64(out, self.symbols.len() as u64);
        let mut w = BitWriter::new();
        match &self.huffman {
            None => self.symbols.iter().for_each(|&s| w.write(s, self.bits)),
            Some(code) => {
                code.write_table(&mut w);
                // Cannot fail: the code was built from these very symbols.
                let written = code.encode(&self.symbols, &mut w);
                debug_assert!(written.is_ok());
            }
        }
        let payload = w.finish();
        debug_assert_eq!(payload.len() as u64, self.payload_bytes());
        varint::write_u64(out, payload.len() as u64);
        out.extend_from_slice(&payload);
    }

    fn read(c: &mut Cursor<'_>, what: &str) -> Result<Self> {
        let at = c.pos;
        let bits = c.u8(what)? as u32;
        if !(1..=MAX_SYMBOL_BITS).contains(&bits) {
            return Err(c.err(at, what, format!("symbol width {bits}, must be 1 to 16")));
        }
        let coding = match c.u8(what)? {
            0 => Coding::Fixed,
            1 => Coding::Huffman,
            t => return Err(c.err(at + 1, what, format!("unknown coding {t}"))),
        };
        let count = c.varint(what)?;
        let len_at = c.pos;
        let len = c.len(what, 1)?;
        let payload_at = c.pos;
        let payload = c.take(len, what)?;
        let payload_bits = len as u64 * 8;
        let wrap = |e: PruneError| c.err(payload_at, what, e.to_string());
        // Every symbol needs at least one bit, which bounds the allocation below.
        if count > payload_bits {
            return Err(c.err(at, what, format!("{count} symbols in {len} bytes")));
        }
        let count = count as usize;
        let mut r = BitReader::new(payload);
        let stream = match coding {
            Coding::Fixed => {
                let need = (count as u64 * bits as u64).div_ceil(8);
                if need != len as u64 {
                    return Err(c.err(
                        len_at,
                        what,
                        format!("{count} symbols of {bits} bits need {need} bytes, found {len}"),
                    ));
                }
                let mut symbols = Vec::with_capacity(count);
                for _ in 0..count {
                    symbols.push(r.read(bits).map_err(wrap)?);
                }
                Self::fixed(bits, symbols).map_err(wrap)?
            }
            Coding::Huffman => {
                let code = HuffmanCode::read_table(&mut r).map_err(wrap)?;
                if code.lengths().len() > 1 << bits {
                    return Err(c.err(
                        payload_at,
                        what,
                        format!("Huffman table has symbols beyond {bits} bits"),
                    ));
                }
                let symbols = code.decode(&mut r, count).map_err(wrap)?;
                if r.remaining() >= 8 {
                    return Err(c.err(
                        payload_at,
                        what,
                        format!("{} unused bytes after the Huffman codes", r.remaining() / 8),
                    ));
                }
                Self::fixed(bits, symbols).map_err(wrap)?.with_code(code)
            }
        };
        Ok(stream)
    }
}

/// The values of an [`Encoding::Encoded`] record.
///
/// ```
/// use deepcompress_prune::coding::{SymbolStream, Values};
/// let v = Values::Indexed {
///     codebook: vec![-1.0, 0.0, 1.0],
///     indices: SymbolStream::smallest(2, vec![0, 2, 2, 1]).unwrap(),
/// };
/// assert_eq!(v.len(), 4);
/// assert_eq!(Values::Raw(vec![0.5; 3]).len(), 3);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// The stored values as `f32` (for example the non-zeros of a pruned layer).
    Raw(Vec<f32>),
    /// Weight sharing: each value is `codebook[index]`.
    Indexed {
        /// The shared values (cluster centroids).
        codebook: Vec<f32>,
        /// One codebook index per stored value.
        indices: SymbolStream,
    },
}

impl Values {
    /// Number of stored values.
    pub fn len(&self) -> usize {
        match self {
            Values::Raw(v) => v.len(),
            Values::Indexed { indices, .. } => indices.len(),
        }
    }

    /// True when no value is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How a record's tensor is stored.
///
/// ```
/// use deepcompress_prune::coding::{Encoding, Values};
/// let dense = Encoding::Raw(vec![1.0, 2.0]);
/// let sparse = Encoding::Encoded { positions: None, values: Values::Raw(vec![1.0, 2.0]) };
/// assert_ne!(dense, sparse);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Encoding {
    /// Every element as `f32`, row-major (biases, BatchNorm parameters, dense weights).
    Raw(Vec<f32>),
    /// Deep Compression storage: optional sparse positions and the stored values.
    Encoded {
        /// Relative-index gaps of the stored values (symbols below `2^bits`), as produced
        /// by the sparse module; `None` when every element is stored.
        positions: Option<SymbolStream>,
        /// The stored values.
        values: Values,
    },
}

/// One named tensor of a [`Container`].
///
/// ```
/// use deepcompress_prune::coding::{Encoding, Record};
/// let r = Record { path: "fc1.bias".into(), shape: vec![3], encoding: Encoding::Raw(vec![0.0; 3]) };
/// // 1 + 8 path, 1 + 1 shape, 1 kind, 1 + 12 values.
/// assert_eq!(r.encoded_bytes(), 25);
/// assert_eq!(r.size().raw_bits, 96);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Parameter path, PyTorch `state_dict` style (`features.0.weight`).
    pub path: String,
    /// Tensor shape.
    pub shape: Vec<usize>,
    /// The stored data.
    pub encoding: Encoding,
}

/// Exact size of a [`Record`] in the file, split the way Deep Compression's tables report
/// it (bits for the weights, bits for the indices).
///
/// All `*_bits` fields together with `overhead_bits` add up to `8 * total_bytes`.
///
/// ```
/// use deepcompress_prune::coding::{Coding, Encoding, Record, SymbolStream, Values};
/// let r = Record {
///     path: "fc2.weight".into(),
///     shape: vec![4, 4],
///     encoding: Encoding::Encoded {
///         positions: Some(SymbolStream::new(4, vec![3, 7, 0], Coding::Fixed).unwrap()),
///         values: Values::Raw(vec![1.0, -1.0, 0.5]),
///     },
/// };
/// let s = r.size();
/// assert_eq!((s.stored_values, s.value_bits, s.position_bits), (3, 96, 12));
/// assert_eq!(s.bits_per_value(), 32.0);
/// assert_eq!(s.bits_per_position(), 4.0);
/// let parts = s.raw_bits + s.value_bits + s.codebook_bits + s.value_table_bits
///     + s.position_bits + s.position_table_bits + s.overhead_bits;
/// assert_eq!(parts, 8 * s.total_bytes);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordSize {
    /// Bytes of the record in the file.
    pub total_bytes: u64,
    /// Number of values stored: every element of a raw record, the stored values of an
    /// encoded one.
    pub stored_values: u64,
    /// `f32` payload of an [`Encoding::Raw`] record.
    pub raw_bits: u64,
    /// Stored values of an encoded record: `f32`s, or the index codes with sharing.
    pub value_bits: u64,
    /// The shared-weight codebook.
    pub codebook_bits: u64,
    /// Huffman table of the value indices.
    pub value_table_bits: u64,
    /// Codes of the sparse position gaps.
    pub position_bits: u64,
    /// Huffman table of the position gaps.
    pub position_table_bits: u64,
    /// Path, shape, tags, lengths and byte padding.
    pub overhead_bits: u64,
}

impl RecordSize {
    /// Bits per stored value for the values themselves: codes or `f32`s, plus codebook
    /// and table (Deep Compression's "weight bits"). 0 when nothing is stored.
    pub fn bits_per_value(&self) -> f64 {
        let bits = self.raw_bits + self.value_bits + self.codebook_bits + self.value_table_bits;
        ratio(bits, self.stored_values)
    }

    /// Bits per stored value for the positions, table included (Deep Compression's
    /// "index bits"). 0 when nothing is stored.
    pub fn bits_per_position(&self) -> f64 {
        ratio(self.position_bits + self.position_table_bits, self.stored_values)
    }
}

fn ratio(bits: u64, n: u64) -> f64 {
    if n == 0 { 0.0 } else { bits as f64 / n as f64 }
}

impl std::ops::Add for RecordSize {
    type Output = RecordSize;
    fn add(self, o: RecordSize) -> RecordSize {
        RecordSize {
            total_bytes: self.total_bytes + o.total_bytes,
            stored_values: self.stored_values + o.stored_values,
            raw_bits: self.raw_bits + o.raw_bits,
            value_bits: self.value_bits + o.value_bits,
            codebook_bits: self.codebook_bits + o.codebook_bits,
            value_table_bits: self.value_table_bits + o.value_table_bits,
            position_bits: self.position_bits + o.position_bits,
            position_table_bits: self.position_table_bits + o.position_table_bits,
            overhead_bits: self.overhead_bits + o.overhead_bits,
        }
    }
}

impl std::iter::Sum for RecordSize {
    fn sum<I: Iterator<Item = RecordSize>>(iter: I) -> Self {
        iter.fold(RecordSize::default(), |a, b| a + b)
    }
}

const KIND_RAW: u8 = 0;
const KIND_ENCODED: u8 = 1;
const HAS_POSITIONS: u8 = 1;
const INDEXED: u8 = 2;

fn f32s_bytes(n: usize) -> u64 {
    varint::encoded_len(n as u64) + 4 * n as u64
}

impl Record {
    /// Exact bytes of this record in the file.
    pub fn encoded_bytes(&self) -> u64 {
        let mut n = varint::encoded_len(self.path.len() as u64) + self.path.len() as u64;
        n += varint::encoded_len(self.shape.len() as u64);
        n += self.shape.iter().map(|&d| varint::encoded_len(d as u64)).sum::<u64>();
        n += 1;
        match &self.encoding {
            Encoding::Raw(v) => n + f32s_bytes(v.len()),
            Encoding::Encoded { positions, values } => {
                n += 1 + positions.as_ref().map_or(0, SymbolStream::encoded_bytes);
                n + match values {
                    Values::Raw(v) => f32s_bytes(v.len()),
                    Values::Indexed { codebook, indices } => {
                        f32s_bytes(codebook.len()) + indices.encoded_bytes()
                    }
                }
            }
        }
    }

    /// Exact size split into values, codebook, positions, tables and overhead.
    pub fn size(&self) -> RecordSize {
        let mut s = RecordSize { total_bytes: self.encoded_bytes(), ..Default::default() };
        match &self.encoding {
            Encoding::Raw(v) => {
                s.stored_values = v.len() as u64;
                s.raw_bits = 32 * v.len() as u64;
            }
            Encoding::Encoded { positions, values } => {
                if let Some(p) = positions {
                    s.position_bits = p.payload_bits();
                    s.position_table_bits = p.table_bits();
                }
                s.stored_values = values.len() as u64;
                match values {
                    Values::Raw(v) => s.value_bits = 32 * v.len() as u64,
                    Values::Indexed { codebook, indices } => {
                        s.codebook_bits = 32 * codebook.len() as u64;
                        s.value_bits = indices.payload_bits();
                        s.value_table_bits = indices.table_bits();
                    }
                }
            }
        }
        let parts = s.raw_bits
            + s.value_bits
            + s.codebook_bits
            + s.value_table_bits
            + s.position_bits
            + s.position_table_bits;
        s.overhead_bits = 8 * s.total_bytes - parts;
        s
    }

    fn write(&self, out: &mut Vec<u8>) {
        varint::write_u64(out, self.path.len() as u64);
        out.extend_from_slice(self.path.as_bytes());
        varint::write_u64(out, self.shape.len() as u64);
        for &d in &self.shape {
            varint::write_u64(out, d as u64);
        }
        match &self.encoding {
            Encoding::Raw(v) => {
                out.push(KIND_RAW);
                write_f32s(out, v);
            }
            Encoding::Encoded { positions, values } => {
                out.push(KIND_ENCODED);
                let mut flags = 0;
                if positions.is_some() {
                    flags |= HAS_POSITIONS;
                }
                if matches!(values, Values::Indexed { .. }) {
                    flags |= INDEXED;
                }
                out.push(flags);
                if let Some(p) = positions {
                    p.write(out);
                }
                match values {
                    Values::Raw(v) => write_f32s(out, v),
                    Values::Indexed { codebook, indices } => {
                        write_f32s(out, codebook);
                        indices.write(out);
                    }
                }
            }
        }
    }

    fn read(c: &mut Cursor<'_>) -> Result<Self> {
        let at = c.pos;
        let len = c.len("record path", 1)?;
        let path = std::str::from_utf8(c.take(len, "record path")?)
            .map_err(|e| c.err(at, "record path", format!("not UTF-8: {e}")))?
            .to_string();
        // Error messages from here on name the record.
        let rank = c.len(&format!("shape of `{path}`"), 1)?;
        let mut shape = Vec::with_capacity(rank);
        for _ in 0..rank {
            let d_at = c.pos;
            let d = c.varint(&format!("shape of `{path}`"))?;
            let d = usize::try_from(d)
                .map_err(|_| c.err(d_at, "shape", format!("dimension {d} of `{path}`")))?;
            shape.push(d);
        }
        let kind_at = c.pos;
        let encoding = match c.u8(&format!("kind of `{path}`"))? {
            KIND_RAW => Encoding::Raw(c.f32s(&format!("values of `{path}`"))?),
            KIND_ENCODED => {
                let flags = c.u8(&format!("flags of `{path}`"))?;
                if flags & !(HAS_POSITIONS | INDEXED) != 0 {
                    return Err(c.err(
                        kind_at + 1,
                        "record flags",
                        format!("{flags:#x} in `{path}`"),
                    ));
                }
                let positions = if flags & HAS_POSITIONS != 0 {
                    Some(SymbolStream::read(c, &format!("positions of `{path}`"))?)
                } else {
                    None
                };
                let values = if flags & INDEXED != 0 {
                    let codebook = c.f32s(&format!("codebook of `{path}`"))?;
                    let indices = SymbolStream::read(c, &format!("indices of `{path}`"))?;
                    Values::Indexed { codebook, indices }
                } else {
                    Values::Raw(c.f32s(&format!("values of `{path}`"))?)
                };
                Encoding::Encoded { positions, values }
            }
            k => return Err(c.err(kind_at, "record kind", format!("{k} in `{path}`"))),
        };
        Ok(Record { path, shape, encoding })
    }
}

fn write_f32s(out: &mut Vec<u8>, v: &[f32]) {
    varint::write_u64(out, v.len() as u64);
    out.reserve(4 * v.len());
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
}

/// A whole compressed model: records in file order.
///
/// ```
/// use deepcompress_prune::coding::{Container, Encoding, Record};
/// let c = Container {
///     records: vec![Record { path: "w".into(), shape: vec![2], encoding: Encoding::Raw(vec![1.0, 2.0]) }],
/// };
/// let file = std::env::temp_dir().join("deepcompress-container-doctest.dcmp");
/// c.write(&file).unwrap();
/// assert_eq!(std::fs::metadata(&file).unwrap().len(), c.encoded_bytes());
/// assert_eq!(Container::read(&file).unwrap(), c);
/// assert_eq!(c.get("w").unwrap().shape, [2]);
/// std::fs::remove_file(&file).unwrap();
/// assert!(Container::read(&file).is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Container {
    /// The records, in file order.
    pub records: Vec<Record>,
}

impl Container {
    /// An empty container.
    pub fn new() -> Self {
        Self::default()
    }

    /// The first record at `path`.
    pub fn get(&self, path: &str) -> Option<&Record> {
        self.records.iter().find(|r| r.path == path)
    }

    /// Exact file size: header plus records.
    pub fn encoded_bytes(&self) -> u64 {
        HEADER_BYTES + self.records.iter().map(Record::encoded_bytes).sum::<u64>()
    }

    /// Serializes the container (layout in the [module docs](self)).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_bytes() as usize);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&(self.records.len() as u64).to_le_bytes());
        out.extend_from_slice(&[0; 12]); // body length and CRC, filled in below
        for r in &self.records {
            r.write(&mut out);
        }
        let body_len = out.len() as u64 - HEADER_BYTES;
        out[16..24].copy_from_slice(&body_len.to_le_bytes());
        let crc = crc32_update(crc32_update(!0, &out[..24]), &out[HEADER_BYTES as usize..]);
        out[24..28].copy_from_slice(&(!crc).to_le_bytes());
        out
    }

    /// Parses bytes written by [`Container::to_bytes`].
    ///
    /// Any defect is [`PruneError::Corrupt`] with the byte offset; see the module docs.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let corrupt = |reason: String| PruneError::corrupt("container", reason);
        if bytes.len() < HEADER_BYTES as usize {
            return Err(corrupt(format!(
                "header truncated: {} bytes, need {HEADER_BYTES}",
                bytes.len()
            )));
        }
        if bytes[..4] != MAGIC {
            return Err(corrupt(format!("bad magic {:02x?} at byte 0", &bytes[..4])));
        }
        let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let version = u16_at(4);
        if version != VERSION {
            return Err(corrupt(format!("unsupported version {version} at byte 4")));
        }
        let flags = u16_at(6);
        if flags != 0 {
            return Err(corrupt(format!("unknown flags {flags:#06x} at byte 6")));
        }
        let count = u64_at(8);
        let body_len = u64_at(16);
        let actual = bytes.len() as u64 - HEADER_BYTES;
        if body_len != actual {
            return Err(corrupt(format!(
                "body length at byte 16 says {body_len} bytes, the file has {actual}"
            )));
        }
        let stored = u32::from_le_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]);
        let body = &bytes[HEADER_BYTES as usize..];
        let crc = !crc32_update(crc32_update(!0, &bytes[..24]), body);
        if crc != stored {
            return Err(corrupt(format!(
                "checksum mismatch: stored {stored:#010x} at byte 24, computed {crc:#010x}"
            )));
        }
        let mut c = Cursor { bytes: body, pos: 0, base: HEADER_BYTES as usize };
        // A record takes at least 4 bytes, so the count cannot force a large allocation.
        let mut records = Vec::with_capacity(count.min(body_len / 4) as usize);
        for i in 0..count {
            if c.pos == body.len() {
                return Err(c.err(c.pos, "record list", format!("ends after {i} of {count}")));
            }
            records.push(Record::read(&mut c)?);
        }
        if c.pos != body.len() {
            return Err(c.err(
                c.pos,
                "record list",
                format!("{} bytes after the last of {count} records", body.len() - c.pos),
            ));
        }
        Ok(Container { records })
    }

    /// Writes the container to a file; I/O errors are [`CoreError::Io`].
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_bytes())
            .map_err(|source| CoreError::Io { path: path.into(), source }.into())
    }

    /// Reads a container file; I/O errors are [`CoreError::Io`], defects
    /// [`PruneError::Corrupt`] naming the file.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes =
            std::fs::read(path).map_err(|source| CoreError::Io { path: path.into(), source })?;
        Self::from_bytes(&bytes).map_err(|e| match e {
            PruneError::Corrupt { what, reason } => {
                PruneError::Corrupt { what, reason: format!("{}: {reason}", path.display()) }
            }
            other => other,
        })
    }
}

/// Bounds-checked reading of the body; offsets in errors are from the start of the file.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Cursor<'a> {
    fn err(&self, at: usize, what: &str, reason: String) -> PruneError {
        PruneError::corrupt("container", format!("{what} at byte {}: {reason}", self.base + at))
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.err(
                self.pos,
                what,
                format!("needs {n} bytes, {} left", self.remaining()),
            ));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn varint(&mut self, what: &str) -> Result<u64> {
        let at = self.pos;
        varint::read_u64(self.bytes, &mut self.pos).map_err(|e| self.err(at, what, e.to_string()))
    }

    /// A count of items of at least `min_bytes` each, checked against the bytes left.
    fn len(&mut self, what: &str, min_bytes: u64) -> Result<usize> {
        let at = self.pos;
        let n = self.varint(what)?;
        if n.saturating_mul(min_bytes) > self.remaining() as u64 {
            return Err(self.err(
                at,
                what,
                format!("length {n} exceeds the {} bytes left", self.remaining()),
            ));
        }
        Ok(n as usize)
    }

    fn f32s(&mut self, what: &str) -> Result<Vec<f32>> {
        let n = self.len(what, 4)?;
        let raw = self.take(4 * n, what)?;
        Ok(raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }
}

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320) lookup table.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// Continues a CRC-32 over `bytes`; start from `!0` and invert the result.
fn crc32_update(mut crc: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        crc = CRC_TABLE[((crc ^ b as u32) & 0xFF) as usize] ^ (crc >> 8);
    }
    crc
}

#[cfg(test)]
mod tests;
