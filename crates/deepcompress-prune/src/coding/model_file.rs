//! A whole model in a [`Container`]: weights in Deep Compression's encoding, everything
//! else raw, and the way back into a model that gives the same outputs.
//!
//! A weight is stored sparse (relative-index positions plus the non-zeros) when that is
//! smaller than storing every element, and its values as indices into a codebook when it
//! has few distinct values (after weight sharing), as raw f32 otherwise. Each symbol
//! stream is Huffman-coded when that is smaller, table included (Han, Mao and Dally 2015,
//! arXiv 1510.00149, sec. 4). Loading needs the architecture, as PyTorch's
//! `load_state_dict` does: a model of the same structure, whose weight layers become
//! `CompressedLinear` / `CompressedConv2d` over the decoded encodings.

use super::{Container, Encoding, Record, RecordSize, SymbolStream, Values};
use crate::bits::PackedInts;
use crate::sharing::SharedTensor;
use crate::sparse::{CONV_INDEX_BITS, FC_INDEX_BITS, SparseTensor, SparseValues, encode_gaps};
use crate::{PruneError, Result};
use deepcompress_core::io::{StateDict, StateTensor};
use deepcompress_core::layer::{
    CompressedConv2d, CompressedLinear, Conv2d, Conv2dConfig, Layer, Linear,
};
use deepcompress_core::model::Model;
use deepcompress_core::tensor::{DenseTensor, Tensor};
use ndarray::{Array1, ArrayD, IxDyn};
use std::collections::{BTreeMap, BTreeSet};

/// Most distinct values a weight may have to be stored as codebook indices.
const MAX_CODEBOOK: usize = 1 << 16;

/// How [`encode_model`] stores weights.
///
/// ```
/// use deepcompress_prune::coding::EncodeOptions;
/// let o = EncodeOptions::default();
/// assert_eq!((o.fc_index_bits, o.conv_index_bits, o.huffman), (5, 4, true));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EncodeOptions {
    /// Relative-index width for fully connected weights (Deep Compression: 5).
    pub fc_index_bits: u32,
    /// Relative-index width for convolution weights (Deep Compression: 4).
    pub conv_index_bits: u32,
    /// Huffman-code the symbol streams where that is smaller.
    pub huffman: bool,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self { fc_index_bits: FC_INDEX_BITS, conv_index_bits: CONV_INDEX_BITS, huffman: true }
    }
}

/// A weight layer's matrix, bias and kind, read from any of the four weight layers.
struct WeightLayer {
    weight: ArrayD<f32>,
    bias: Option<Vec<f32>>,
    conv: Option<Conv2dConfig>,
}

fn weight_layer(layer: &dyn Layer) -> Option<WeightLayer> {
    let any = layer.as_any();
    let bias_of = |b: &Option<deepcompress_core::param::Param>| {
        b.as_ref().map(|p| p.value().iter().copied().collect())
    };
    if let Some(fc) = any.downcast_ref::<Linear>() {
        return Some(WeightLayer {
            weight: fc.weight.effective().into_owned(),
            bias: bias_of(&fc.bias),
            conv: None,
        });
    }
    if let Some(c) = any.downcast_ref::<Conv2d>() {
        return Some(WeightLayer {
            weight: c.weight.effective().into_owned(),
            bias: bias_of(&c.bias),
            conv: Some(c.config),
        });
    }
    if let Some(fc) = any.downcast_ref::<CompressedLinear>() {
        return Some(WeightLayer {
            weight: fc.weight().to_dense(),
            bias: fc.bias().map(|b| b.to_vec()),
            conv: None,
        });
    }
    if let Some(c) = any.downcast_ref::<CompressedConv2d>() {
        return Some(WeightLayer {
            weight: c.weight().to_dense(),
            bias: c.bias().map(|b| b.to_vec()),
            conv: Some(*c.config()),
        });
    }
    None
}

fn stream(bits: u32, symbols: Vec<u32>, huffman: bool) -> Result<SymbolStream> {
    if huffman {
        SymbolStream::smallest(bits, symbols)
    } else {
        SymbolStream::new(bits, symbols, super::Coding::Fixed)
    }
}

/// The values as codebook indices when there are few distinct ones, raw otherwise.
fn values(v: Vec<f32>, huffman: bool) -> Result<Values> {
    let distinct: BTreeSet<u32> = v.iter().map(|x| x.to_bits()).collect();
    if distinct.len() < 2 || distinct.len() > MAX_CODEBOOK {
        return Ok(Values::Raw(v));
    }
    let mut codebook: Vec<f32> = distinct.iter().map(|b| f32::from_bits(*b)).collect();
    codebook.sort_by(f32::total_cmp);
    let bits = PackedInts::bits_for(codebook.len() as u32 - 1);
    // indices only pay when they and the codebook are smaller than the raw values
    if bits as u64 * v.len() as u64 + 32 * codebook.len() as u64 >= 32 * v.len() as u64 {
        return Ok(Values::Raw(v));
    }
    let index: BTreeMap<u32, u32> =
        codebook.iter().enumerate().map(|(i, c)| (c.to_bits(), i as u32)).collect();
    let symbols = v.iter().map(|x| index[&x.to_bits()]).collect();
    Ok(Values::Indexed { codebook, indices: stream(bits, symbols, huffman)? })
}

/// The record of one weight: sparse when that is smaller, its values shared when they
/// take few distinct values.
fn weight_record(path: String, w: &ArrayD<f32>, index_bits: u32, huffman: bool) -> Result<Record> {
    crate::error::check_finite(&w.iter().copied().collect::<Vec<_>>(), &path)?;
    let flat: Vec<f32> = w.iter().copied().collect();
    let positions: Vec<usize> =
        flat.iter().enumerate().filter(|(_, v)| **v != 0.0).map(|(i, _)| i).collect();
    let gaps = encode_gaps(&positions, index_bits)?;
    let nonzeros: Vec<f32> = positions.iter().map(|&p| flat[p]).collect();
    let sparse = Encoding::Encoded {
        positions: Some(stream(index_bits, gaps, huffman)?),
        values: values(nonzeros, huffman)?,
    };
    let dense = Encoding::Encoded { positions: None, values: values(flat, huffman)? };
    let shape = w.shape().to_vec();
    let a = Record { path: path.clone(), shape: shape.clone(), encoding: sparse };
    let b = Record { path, shape, encoding: dense };
    let best = if a.encoded_bytes() <= b.encoded_bytes() { a } else { b };
    Ok(match best.encoding {
        Encoding::Encoded { positions: None, values: Values::Raw(v) } => {
            Record { encoding: Encoding::Raw(v), ..best }
        }
        _ => best,
    })
}

/// Stores every parameter and buffer of `model`: the weights of `Linear`, `Conv2d` and
/// their compressed forms encoded, the rest raw. The model must be finite.
///
/// ```
/// use deepcompress_core::model::Selector;
/// use deepcompress_core::pass::{Pass, PassContext};
/// use deepcompress_prune::coding::{decode_model, encode_model, EncodeOptions};
/// use deepcompress_prune::unstructured::{MagnitudePrune, Sparsity};
/// let mut model = deepcompress_core::models::lenet_300_100(0);
/// MagnitudePrune::new(Selector::all(), Sparsity::Uniform(0.9))
///     .apply(&mut model, &mut PassContext::new(0)).unwrap();
/// let file = encode_model(&model, &EncodeOptions::default()).unwrap();
/// assert!(file.encoded_bytes() < 1_066_440 / 5);
/// let bytes = file.to_bytes();
/// let container = deepcompress_prune::coding::Container::from_bytes(&bytes).unwrap();
/// let mut loaded = decode_model(&container, &deepcompress_core::models::lenet_300_100(7)).unwrap();
/// let x = ndarray::ArrayD::<f32>::ones(ndarray::IxDyn(&[1, 784]));
/// let d = model.predict(&x, 1).unwrap() - loaded.predict(&x, 1).unwrap();
/// assert!(d.iter().all(|v| v.abs() < 1e-4));
/// ```
pub fn encode_model(model: &Model, opts: &EncodeOptions) -> Result<Container> {
    for b in [opts.fc_index_bits, opts.conv_index_bits] {
        crate::sparse::check_index_bits(b)?;
    }
    let mut records = Vec::new();
    let mut done = BTreeSet::new();
    let mut layers = Vec::new();
    model.visit(|p, l| {
        if let Some(w) = weight_layer(l) {
            layers.push((p.to_string(), w));
        }
    });
    for (p, w) in layers {
        let bits = if w.conv.is_some() { opts.conv_index_bits } else { opts.fc_index_bits };
        records.push(weight_record(format!("{p}.weight"), &w.weight, bits, opts.huffman)?);
        done.insert(format!("{p}.weight"));
        if let Some(b) = w.bias {
            records.push(Record {
                path: format!("{p}.bias"),
                shape: vec![b.len()],
                encoding: Encoding::Raw(b),
            });
            done.insert(format!("{p}.bias"));
        }
    }
    for (name, t) in model.state_dict().iter() {
        if done.contains(name) {
            continue;
        }
        let Some(v) = t.as_f32() else { continue };
        records.push(Record {
            path: name.to_string(),
            shape: v.shape().to_vec(),
            encoding: Encoding::Raw(v.iter().copied().collect()),
        });
    }
    Ok(Container { records })
}

/// The values a record stores, decoded to f32, and the stored-value description.
fn decode_values(v: &Values, path: &str) -> Result<(Vec<f32>, SparseValues)> {
    match v {
        Values::Raw(x) => Ok((x.clone(), SparseValues::F32)),
        Values::Indexed { codebook, indices } => {
            let mut out = Vec::with_capacity(indices.len());
            for &i in indices.symbols() {
                out.push(*codebook.get(i as usize).ok_or_else(|| {
                    PruneError::corrupt(
                        "container",
                        format!(
                            "`{path}`: index {i} is past the {}-entry codebook",
                            codebook.len()
                        ),
                    )
                })?);
            }
            let packed = PackedInts::pack(indices.symbols(), indices.bits())?;
            Ok((out, SparseValues::Shared { codebook: codebook.clone(), indices: packed }))
        }
    }
}

/// The weight tensor a record describes, checked against `shape`.
fn weight_tensor(r: &Record, shape: &[usize]) -> Result<Box<dyn Tensor>> {
    if r.shape != shape {
        return Err(PruneError::corrupt(
            "container",
            format!("`{}` has shape {:?}, the model expects {shape:?}", r.path, r.shape),
        ));
    }
    let numel: usize = shape.iter().product();
    match &r.encoding {
        Encoding::Raw(v) => Ok(Box::new(DenseTensor::new(dense(v.clone(), shape, &r.path)?))),
        Encoding::Encoded { positions: Some(pos), values } => {
            let (vals, stored) = decode_values(values, &r.path)?;
            let t =
                SparseTensor::from_stored(shape.to_vec(), pos.bits(), pos.symbols(), vals, stored)?;
            Ok(Box::new(t.with_coded_bits(coded_bits(r))))
        }
        Encoding::Encoded { positions: None, values } => {
            if values.len() != numel {
                return Err(PruneError::corrupt(
                    "container",
                    format!("`{}`: {} values for {numel} elements", r.path, values.len()),
                ));
            }
            match values {
                Values::Raw(v) => Ok(Box::new(DenseTensor::new(dense(v.clone(), shape, &r.path)?))),
                Values::Indexed { codebook, indices } => {
                    let t = SharedTensor::from_parts(
                        shape,
                        codebook.clone(),
                        indices.symbols(),
                        indices.bits(),
                    )?;
                    Ok(Box::new(t.with_coded_bits(coded_bits(r))))
                }
            }
        }
    }
}

/// Bits of a record's payload: values, codebook, positions and Huffman tables.
fn coded_bits(r: &Record) -> u64 {
    let s = r.size();
    s.value_bits + s.codebook_bits + s.value_table_bits + s.position_bits + s.position_table_bits
}

fn dense(v: Vec<f32>, shape: &[usize], path: &str) -> Result<ArrayD<f32>> {
    ArrayD::from_shape_vec(IxDyn(shape), v).map_err(|_| {
        PruneError::corrupt("container", format!("`{path}`: value count does not match {shape:?}"))
    })
}

/// Loads `container` into a copy of `architecture` (the same structure; its weights are
/// ignored): encoded weights become `CompressedLinear` / `CompressedConv2d` layers, raw
/// tensors are loaded by name. Every record is checked against the architecture first;
/// on error nothing is returned and `architecture` is untouched.
pub fn decode_model(container: &Container, architecture: &Model) -> Result<Model> {
    let mut model = architecture.clone();
    let by_path: BTreeMap<&str, &Record> =
        container.records.iter().map(|r| (r.path.as_str(), r)).collect();
    let mut layers = Vec::new();
    model.visit(|p, l| {
        if let Some(w) = weight_layer(l) {
            layers.push((p.to_string(), w));
        }
    });
    let mut used = BTreeSet::new();
    for (p, w) in layers {
        let name = format!("{p}.weight");
        let Some(r) = by_path.get(name.as_str()) else { continue };
        let trainable =
            model.layer_as::<Linear>(&p).is_ok() || model.layer_as::<Conv2d>(&p).is_ok();
        if matches!(r.encoding, Encoding::Raw(_)) && trainable {
            continue; // a raw weight of a trainable layer is loaded by name below
        }
        let tensor = weight_tensor(r, w.weight.shape())?;
        let bias_name = format!("{p}.bias");
        let bias = match (by_path.get(bias_name.as_str()), &w.bias) {
            (Some(b), Some(_)) => match &b.encoding {
                Encoding::Raw(v) if v.len() == w.weight.shape()[0] => {
                    used.insert(bias_name.clone());
                    Some(Array1::from(v.clone()))
                }
                _ => {
                    return Err(PruneError::corrupt(
                        "container",
                        format!("`{bias_name}` is not a raw vector of {}", w.weight.shape()[0]),
                    ));
                }
            },
            (None, Some(_)) => {
                return Err(PruneError::corrupt("container", format!("`{bias_name}` is missing")));
            }
            (_, None) => None,
        };
        let layer: Box<dyn Layer> = match w.conv {
            Some(cfg) => Box::new(CompressedConv2d::new(cfg, tensor, bias).map_err(|e| e.at(&p))?),
            None => Box::new(CompressedLinear::new(tensor, bias).map_err(|e| e.at(&p))?),
        };
        used.insert(name);
        model.replace(&p, layer)?;
    }
    let mut sd = StateDict::new();
    for r in &container.records {
        if used.contains(&r.path) {
            continue;
        }
        match &r.encoding {
            Encoding::Raw(v) => {
                sd.insert(r.path.clone(), StateTensor::F32(dense(v.clone(), &r.shape, &r.path)?));
            }
            Encoding::Encoded { .. } => {
                return Err(PruneError::corrupt(
                    "container",
                    format!("`{}` is encoded but the model has no weight layer there", r.path),
                ));
            }
        }
    }
    let unused = model.load_state_dict(&sd)?;
    if let Some(u) = unused.first() {
        return Err(PruneError::corrupt(
            "container",
            format!("`{u}` does not exist in the model ({} unused records)", unused.len()),
        ));
    }
    Ok(model)
}

/// Size of every record of a container, in file order.
///
/// ```
/// use deepcompress_prune::coding::{encode_model, record_sizes, EncodeOptions};
/// let m = deepcompress_core::models::lenet_300_100(0);
/// let c = encode_model(&m, &EncodeOptions::default()).unwrap();
/// let sizes = record_sizes(&c);
/// assert_eq!(sizes[0].0, "fc1.weight");
/// assert_eq!(sizes[0].1.stored_values, 235_200);
/// ```
pub fn record_sizes(container: &Container) -> Vec<(String, RecordSize)> {
    container.records.iter().map(|r| (r.path.clone(), r.size())).collect()
}
