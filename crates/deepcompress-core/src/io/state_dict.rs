//! Named tensors as found in a PyTorch `state_dict`, independent of the file format.

use std::collections::BTreeMap;

use ndarray::{ArrayD, ArrayViewD};

use crate::error::{CoreError, Result};

/// One tensor of a [`StateDict`].
///
/// Floating-point tensors are held as `f32` whatever their precision in the file; any other
/// dtype (integers, booleans, 8-bit floats, ...) is kept as the original little-endian
/// bytes so that it can be written back bit for bit.
///
/// ```
/// use deepcompress_core::io::StateTensor;
/// use ndarray::{ArrayD, IxDyn};
/// let t = StateTensor::F32(ArrayD::zeros(IxDyn(&[2, 3])));
/// assert_eq!((t.dtype(), t.shape()), ("F32", &[2, 3][..]));
/// let ids = StateTensor::Raw { dtype: "I64".into(), shape: vec![1], data: 7i64.to_le_bytes().to_vec() };
/// assert_eq!(ids.dtype(), "I64");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum StateTensor {
    /// A floating-point tensor, converted to `f32`.
    F32(ArrayD<f32>),
    /// A tensor of any other dtype, left untouched.
    Raw {
        /// The dtype as spelled in safetensors headers (`I64`, `U8`, `BOOL`, ...).
        dtype: String,
        /// Shape, outermost first.
        shape: Vec<usize>,
        /// Row-major little-endian element bytes.
        data: Vec<u8>,
    },
}

impl StateTensor {
    /// The dtype name: `"F32"` for float tensors, the stored name for raw ones.
    ///
    /// ```
    /// use deepcompress_core::io::StateTensor;
    /// use ndarray::{ArrayD, IxDyn};
    /// assert_eq!(StateTensor::F32(ArrayD::zeros(IxDyn(&[1]))).dtype(), "F32");
    /// ```
    pub fn dtype(&self) -> &str {
        match self {
            StateTensor::F32(_) => "F32",
            StateTensor::Raw { dtype, .. } => dtype,
        }
    }

    /// The shape, outermost first.
    ///
    /// ```
    /// use deepcompress_core::io::StateTensor;
    /// let t = StateTensor::Raw { dtype: "U8".into(), shape: vec![2, 2], data: vec![0; 4] };
    /// assert_eq!(t.shape(), &[2, 2]);
    /// ```
    pub fn shape(&self) -> &[usize] {
        match self {
            StateTensor::F32(a) => a.shape(),
            StateTensor::Raw { shape, .. } => shape,
        }
    }

    /// The `f32` array, or `None` for a raw tensor.
    ///
    /// ```
    /// use deepcompress_core::io::StateTensor;
    /// let t = StateTensor::Raw { dtype: "BOOL".into(), shape: vec![1], data: vec![1] };
    /// assert!(t.as_f32().is_none());
    /// ```
    pub fn as_f32(&self) -> Option<&ArrayD<f32>> {
        match self {
            StateTensor::F32(a) => Some(a),
            StateTensor::Raw { .. } => None,
        }
    }
}

/// Tensors by name (for example `features.0.weight`), plus the free-form string metadata
/// of the file. Names are kept sorted, not in model order: safetensors files do not record
/// an order either.
///
/// ```
/// use deepcompress_core::io::StateDict;
/// use ndarray::{ArrayD, IxDyn};
/// let mut sd = StateDict::new();
/// sd.insert_f32("fc.weight", ArrayD::ones(IxDyn(&[2, 3])));
/// sd.metadata.insert("format".into(), "pt".into());
/// assert_eq!(sd.get_f32("fc.weight")?.sum(), 6.0);
/// # Ok::<(), deepcompress_core::CoreError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateDict {
    tensors: BTreeMap<String, StateTensor>,
    /// The `__metadata__` map of a safetensors file (empty when absent).
    pub metadata: BTreeMap<String, String>,
}

impl StateDict {
    /// An empty state dict.
    ///
    /// ```
    /// assert!(deepcompress_core::io::StateDict::new().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a tensor; returns the previous one of that name.
    ///
    /// ```
    /// use deepcompress_core::io::{StateDict, StateTensor};
    /// let mut sd = StateDict::new();
    /// let t = StateTensor::Raw { dtype: "I64".into(), shape: vec![], data: vec![0; 8] };
    /// assert!(sd.insert("bn.num_batches_tracked", t).is_none());
    /// ```
    pub fn insert(&mut self, name: impl Into<String>, tensor: StateTensor) -> Option<StateTensor> {
        self.tensors.insert(name.into(), tensor)
    }

    /// Adds or replaces an `f32` tensor; returns the previous one of that name.
    ///
    /// ```
    /// use deepcompress_core::io::StateDict;
    /// use ndarray::{ArrayD, IxDyn};
    /// let mut sd = StateDict::new();
    /// sd.insert_f32("fc.bias", ArrayD::zeros(IxDyn(&[10])));
    /// assert_eq!(sd.len(), 1);
    /// ```
    pub fn insert_f32(
        &mut self,
        name: impl Into<String>,
        array: ArrayD<f32>,
    ) -> Option<StateTensor> {
        self.insert(name, StateTensor::F32(array))
    }

    /// The tensor called `name`, if any.
    ///
    /// ```
    /// use deepcompress_core::io::StateDict;
    /// assert!(StateDict::new().get("fc.weight").is_none());
    /// ```
    pub fn get(&self, name: &str) -> Option<&StateTensor> {
        self.tensors.get(name)
    }

    /// A view of the `f32` tensor called `name`.
    ///
    /// Fails with [`CoreError::UnknownPath`] when there is no such tensor and with
    /// [`CoreError::Dtype`] when it is not a floating-point tensor.
    ///
    /// ```
    /// use deepcompress_core::{CoreError, io::{StateDict, StateTensor}};
    /// let mut sd = StateDict::new();
    /// sd.insert("ids", StateTensor::Raw { dtype: "I64".into(), shape: vec![1], data: vec![0; 8] });
    /// assert!(matches!(sd.get_f32("ids"), Err(CoreError::Dtype { .. })));
    /// assert!(matches!(sd.get_f32("idz"), Err(CoreError::UnknownPath { .. })));
    /// ```
    pub fn get_f32(&self, name: &str) -> Result<ArrayViewD<'_, f32>> {
        match self.tensors.get(name) {
            Some(StateTensor::F32(a)) => Ok(a.view()),
            Some(StateTensor::Raw { dtype, .. }) => Err(CoreError::Dtype {
                name: name.to_string(),
                dtype: dtype.clone(),
                reason: "is not a floating-point type and was kept as raw bytes".to_string(),
            }),
            None => Err(CoreError::UnknownPath { path: name.to_string(), hint: self.hint(name) }),
        }
    }

    /// Removes and returns the tensor called `name`.
    ///
    /// ```
    /// use deepcompress_core::io::StateDict;
    /// use ndarray::{ArrayD, IxDyn};
    /// let mut sd = StateDict::new();
    /// sd.insert_f32("w", ArrayD::zeros(IxDyn(&[1])));
    /// assert!(sd.remove("w").is_some());
    /// assert!(sd.is_empty());
    /// ```
    pub fn remove(&mut self, name: &str) -> Option<StateTensor> {
        self.tensors.remove(name)
    }

    /// Tensor names in sorted order.
    ///
    /// ```
    /// use deepcompress_core::io::StateDict;
    /// use ndarray::{ArrayD, IxDyn};
    /// let mut sd = StateDict::new();
    /// sd.insert_f32("b", ArrayD::zeros(IxDyn(&[1])));
    /// sd.insert_f32("a", ArrayD::zeros(IxDyn(&[1])));
    /// assert_eq!(sd.names().collect::<Vec<_>>(), ["a", "b"]);
    /// ```
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// `(name, tensor)` pairs in name order.
    ///
    /// ```
    /// use deepcompress_core::io::StateDict;
    /// use ndarray::{ArrayD, IxDyn};
    /// let mut sd = StateDict::new();
    /// sd.insert_f32("w", ArrayD::zeros(IxDyn(&[3])));
    /// let total: usize = sd.iter().map(|(_, t)| t.shape().iter().product::<usize>()).sum();
    /// assert_eq!(total, 3);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (&str, &StateTensor)> {
        self.tensors.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of tensors.
    ///
    /// ```
    /// assert_eq!(deepcompress_core::io::StateDict::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// True when there is no tensor (metadata is not counted).
    ///
    /// ```
    /// assert!(deepcompress_core::io::StateDict::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Suggests the existing names sharing the longest prefix with `name`.
    fn hint(&self, name: &str) -> String {
        let common = |k: &str| k.bytes().zip(name.bytes()).take_while(|(a, b)| a == b).count();
        let best = self.names().map(common).max().unwrap_or(0);
        if best == 0 {
            return String::new();
        }
        let near: Vec<String> =
            self.names().filter(|k| common(k) == best).take(3).map(|k| format!("`{k}`")).collect();
        format!(" (nearest: {})", near.join(", "))
    }
}
