use super::*;
use proptest::prelude::*;

fn stream() -> impl Strategy<Value = SymbolStream> {
    (1u32..=16, proptest::collection::vec(any::<u32>(), 0..300), 0u8..3, 0u32..4).prop_map(
        |(bits, raw, how, skew)| {
            // `skew` shifts values down so that some streams are Huffman-friendly.
            let symbols: Vec<u32> =
                raw.iter().map(|r| (r >> (skew * 8)) & ((1 << bits) - 1)).collect();
            match how {
                0 => SymbolStream::new(bits, symbols, Coding::Fixed),
                1 => SymbolStream::new(bits, symbols, Coding::Huffman),
                _ => SymbolStream::smallest(bits, symbols),
            }
            .unwrap()
        },
    )
}

fn floats() -> impl Strategy<Value = Vec<f32>> {
    proptest::collection::vec(-1e6f32..1e6, 0..50)
}

fn record() -> impl Strategy<Value = Record> {
    let values = prop_oneof![
        floats().prop_map(Values::Raw),
        (floats(), stream()).prop_map(|(codebook, indices)| Values::Indexed { codebook, indices }),
    ];
    let encoding = prop_oneof![
        floats().prop_map(Encoding::Raw),
        (proptest::option::of(stream()), values)
            .prop_map(|(positions, values)| Encoding::Encoded { positions, values }),
    ];
    ("[a-z0-9_.]{0,12}|\\PC{0,4}", proptest::collection::vec(0usize..100_000, 0..5), encoding)
        .prop_map(|(path, shape, encoding)| Record { path, shape, encoding })
}

fn container() -> impl Strategy<Value = Container> {
    proptest::collection::vec(record(), 0..5).prop_map(|records| Container { records })
}

/// A small container with every kind of record, for the exhaustive corruption tests.
fn sample() -> Container {
    let gaps: Vec<u32> = (0..200).map(|i| if i % 7 == 0 { 9 } else { i % 3 }).collect();
    let idx: Vec<u32> = (0..200).map(|i| (i * i) % 5).collect();
    Container {
        records: vec![
            Record {
                path: "conv1.weight".into(),
                shape: vec![20, 1, 5, 5],
                encoding: Encoding::Encoded {
                    positions: Some(SymbolStream::new(4, gaps, Coding::Huffman).unwrap()),
                    values: Values::Indexed {
                        codebook: vec![-0.3, -0.1, 0.0, 0.1, 0.3],
                        indices: SymbolStream::new(3, idx.clone(), Coding::Huffman).unwrap(),
                    },
                },
            },
            Record {
                path: "conv1.bias".into(),
                shape: vec![20],
                encoding: Encoding::Raw(vec![0.5; 20]),
            },
            Record {
                path: "fc.weight".into(),
                shape: vec![10, 20],
                encoding: Encoding::Encoded {
                    positions: None,
                    values: Values::Indexed {
                        codebook: vec![1.0, 2.0, 3.0, 4.0, 5.0],
                        indices: SymbolStream::new(3, idx, Coding::Fixed).unwrap(),
                    },
                },
            },
            Record {
                path: "fc.w2".into(),
                shape: vec![3],
                encoding: Encoding::Encoded {
                    positions: None,
                    values: Values::Raw(vec![1.5, -2.0]),
                },
            },
        ],
    }
}

fn assert_corrupt(r: Result<Container>) {
    match r {
        Err(PruneError::Corrupt { what: "container", reason }) => {
            assert!(reason.contains("byte"), "no offset in {reason:?}")
        }
        other => panic!("expected a corrupt-container error, got {other:?}"),
    }
}

/// Recomputes the checksum so that the parser itself sees the damage.
fn reseal(bytes: &mut [u8]) {
    if bytes.len() >= HEADER_BYTES as usize {
        let crc = !crc32_update(crc32_update(!0, &bytes[..24]), &bytes[HEADER_BYTES as usize..]);
        bytes[24..28].copy_from_slice(&crc.to_le_bytes());
    }
}

#[test]
fn crc32_check_value() {
    assert_eq!(!crc32_update(!0, b"123456789"), 0xCBF4_3926);
}

#[test]
fn sample_round_trip_and_sizes() {
    let c = sample();
    let bytes = c.to_bytes();
    assert_eq!(&bytes[..4], b"DCMP");
    assert_eq!(bytes.len() as u64, c.encoded_bytes());
    assert_eq!(Container::from_bytes(&bytes).unwrap(), c);
    let total: RecordSize = c.records.iter().map(Record::size).sum();
    assert_eq!(total.total_bytes + HEADER_BYTES, bytes.len() as u64);
    let s = c.records[0].size();
    assert_eq!(s.stored_values, 200);
    assert_eq!(s.codebook_bits, 5 * 32);
    assert!(s.position_table_bits > 0 && s.value_table_bits > 0);
    // Huffman beats 3-bit indices on this skewed distribution.
    assert!(s.value_bits < 3 * 200);
    assert!(s.bits_per_value() > 0.0 && s.bits_per_position() > 0.0);
}

#[test]
fn truncation_at_every_offset_is_an_error() {
    let bytes = sample().to_bytes();
    for cut in 0..bytes.len() {
        assert_corrupt(Container::from_bytes(&bytes[..cut]));
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_corrupt(Container::from_bytes(&longer));
}

#[test]
fn every_single_bit_flip_is_an_error() {
    let bytes = sample().to_bytes();
    for bit in 0..bytes.len() * 8 {
        let mut bad = bytes.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert_corrupt(Container::from_bytes(&bad));
    }
}

#[test]
fn resealed_truncated_records_are_errors() {
    // Cut the body and fix the header, so that only the record parser can notice.
    let bytes = sample().to_bytes();
    for cut in HEADER_BYTES as usize..bytes.len() {
        let mut bad = bytes[..cut].to_vec();
        bad[16..24].copy_from_slice(&(cut as u64 - HEADER_BYTES).to_le_bytes());
        reseal(&mut bad);
        assert_corrupt(Container::from_bytes(&bad));
    }
}

#[test]
fn huge_lengths_do_not_allocate() {
    let mut body = Vec::new();
    varint::write_u64(&mut body, 1);
    body.push(b'w');
    varint::write_u64(&mut body, 0);
    body.push(KIND_RAW);
    varint::write_u64(&mut body, u64::MAX / 4); // claims 2^62 floats
    let mut bytes = Container::new().to_bytes();
    bytes[8..16].copy_from_slice(&1u64.to_le_bytes());
    bytes[16..24].copy_from_slice(&(body.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&body);
    reseal(&mut bytes);
    assert_corrupt(Container::from_bytes(&bytes));
    // And a record count far beyond the body.
    let mut bytes = Container::new().to_bytes();
    bytes[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    reseal(&mut bytes);
    assert_corrupt(Container::from_bytes(&bytes));
}

#[test]
fn bad_header_fields_name_their_offset() {
    let bytes = Container::new().to_bytes();
    assert_eq!(bytes.len() as u64, HEADER_BYTES);
    assert_eq!(Container::from_bytes(&bytes).unwrap(), Container::new());
    let mut v2 = bytes.clone();
    v2[4] = 2;
    reseal(&mut v2);
    let err = Container::from_bytes(&v2).unwrap_err().to_string();
    assert!(err.contains("version 2 at byte 4"), "{err}");
}

#[test]
fn lenet_sized_stream_round_trip() {
    // 430K 5-bit indices with a peaked distribution, as after weight sharing of LeNet-5.
    let symbols: Vec<u32> = (0..430_000u64)
        .map(|i| {
            let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
            (h.trailing_zeros().min(31) ^ (h as u32 & 1)) % 32
        })
        .collect();
    let s = SymbolStream::smallest(5, symbols).unwrap();
    assert_eq!(s.coding(), Coding::Huffman);
    let c = Container {
        records: vec![Record {
            path: "fc1.weight".into(),
            shape: vec![500, 800],
            encoding: Encoding::Encoded {
                positions: None,
                values: Values::Indexed { codebook: vec![0.0; 32], indices: s },
            },
        }],
    };
    let bytes = c.to_bytes();
    assert_eq!(Container::from_bytes(&bytes).unwrap(), c);
}

#[test]
fn file_io_errors_are_core_io() {
    let missing = std::env::temp_dir().join("deepcompress-no-such-dir").join("x.dcmp");
    assert!(matches!(Container::read(&missing), Err(PruneError::Core(CoreError::Io { .. }))));
    assert!(matches!(
        Container::new().write(&missing),
        Err(PruneError::Core(CoreError::Io { .. }))
    ));
}

proptest! {
    #[test]
    fn smallest_stream_is_never_larger(s in stream()) {
        let fixed = SymbolStream::new(s.bits(), s.symbols().to_vec(), Coding::Fixed).unwrap();
        let huff = SymbolStream::new(s.bits(), s.symbols().to_vec(), Coding::Huffman).unwrap();
        let best = SymbolStream::smallest(s.bits(), s.symbols().to_vec()).unwrap();
        prop_assert!(best.encoded_bytes() <= fixed.encoded_bytes());
        prop_assert!(best.encoded_bytes() <= huff.encoded_bytes());
    }

    #[test]
    fn container_round_trip(c in container()) {
        let bytes = c.to_bytes();
        prop_assert_eq!(bytes.len() as u64, c.encoded_bytes());
        for r in &c.records {
            let s = r.size();
            let parts = s.raw_bits + s.value_bits + s.codebook_bits + s.value_table_bits
                + s.position_bits + s.position_table_bits + s.overhead_bits;
            prop_assert_eq!(parts, 8 * s.total_bytes);
        }
        prop_assert_eq!(Container::from_bytes(&bytes).unwrap(), c);
    }

    #[test]
    fn container_truncation_and_flips_are_errors(c in container(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let bytes = c.to_bytes();
        let cut = at.index(bytes.len());
        prop_assert!(Container::from_bytes(&bytes[..cut]).is_err());
        let mut bad = bytes.clone();
        bad[cut] ^= 1 << bit;
        prop_assert!(Container::from_bytes(&bad).is_err());
    }

    #[test]
    fn resealed_corruption_never_panics(
        c in container(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = c.to_bytes();
        let body = bytes.len() - HEADER_BYTES as usize;
        if body > 0 {
            for (at, v) in edits {
                bytes[HEADER_BYTES as usize + at.index(body)] = v;
            }
        }
        reseal(&mut bytes);
        let _ = Container::from_bytes(&bytes);
    }

    #[test]
    fn random_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        prop_assert!(Container::from_bytes(&bytes).is_err());
        if bytes.len() >= HEADER_BYTES as usize {
            bytes[..8].copy_from_slice(&[b'D', b'C', b'M', b'P', 1, 0, 0, 0]);
            let body = bytes.len() as u64 - HEADER_BYTES;
            bytes[16..24].copy_from_slice(&body.to_le_bytes());
            reseal(&mut bytes);
            let _ = Container::from_bytes(&bytes);
        }
    }
}
