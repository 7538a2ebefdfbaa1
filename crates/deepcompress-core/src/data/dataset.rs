//! A small in-memory labelled dataset, used for training, evaluation and calibration.

use ndarray::{ArrayD, Axis, IxDyn, Slice};

use crate::error::{CoreError, Result, ensure_finite};

/// Inputs with one class label per sample; the first axis of `inputs` is the sample.
///
/// [`Dataset::new`] stores `inputs` in standard (row-major) layout so that
/// [`Dataset::batch`] can copy whole samples as contiguous slices.
///
/// ```
/// use deepcompress_core::data::Dataset;
/// use ndarray::{ArrayD, IxDyn};
/// let inputs = ArrayD::from_shape_fn(IxDyn(&[4, 2]), |ix| (ix[0] * 2 + ix[1]) as f32);
/// let ds = Dataset::new(inputs, vec![0, 1, 1, 2])?;
/// assert_eq!(ds.len(), 4);
/// assert_eq!(ds.num_classes(), 3);
/// # Ok::<(), deepcompress_core::CoreError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Inputs, shape `[samples, ...per-sample shape]`.
    pub inputs: ArrayD<f32>,
    /// Class index of each sample.
    pub labels: Vec<usize>,
}

impl Dataset {
    /// Builds a dataset, checking that there is one label per sample and that every
    /// input is finite.
    ///
    /// ```
    /// use deepcompress_core::data::Dataset;
    /// use ndarray::{ArrayD, IxDyn};
    /// let inputs = ArrayD::<f32>::zeros(IxDyn(&[3, 5]));
    /// assert!(Dataset::new(inputs.clone(), vec![0, 1, 2]).is_ok());
    /// assert!(Dataset::new(inputs, vec![0, 1]).is_err());
    /// ```
    pub fn new(inputs: ArrayD<f32>, labels: Vec<usize>) -> Result<Self> {
        if inputs.ndim() == 0 || inputs.shape()[0] != labels.len() {
            let expected = format!("[{}, ...] (one sample per label)", labels.len());
            return Err(CoreError::shape("Dataset::new", expected, inputs.shape()));
        }
        ensure_finite(inputs.iter(), "Dataset::new", "inputs")?;
        let inputs = if inputs.is_standard_layout() {
            inputs
        } else {
            inputs.as_standard_layout().into_owned()
        };
        Ok(Self { inputs, labels })
    }

    /// Number of samples.
    ///
    /// ```
    /// # use deepcompress_core::data::Dataset;
    /// # use ndarray::{ArrayD, IxDyn};
    /// let ds = Dataset::new(ArrayD::zeros(IxDyn(&[2, 3])), vec![0, 0])?;
    /// assert_eq!(ds.len(), 2);
    /// # Ok::<(), deepcompress_core::CoreError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the dataset holds no sample.
    ///
    /// ```
    /// # use deepcompress_core::data::Dataset;
    /// # use ndarray::{ArrayD, IxDyn};
    /// let ds = Dataset::new(ArrayD::zeros(IxDyn(&[0, 3])), vec![])?;
    /// assert!(ds.is_empty());
    /// # Ok::<(), deepcompress_core::CoreError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Shape of one sample (the input shape without its first axis).
    ///
    /// ```
    /// # use deepcompress_core::data::Dataset;
    /// # use ndarray::{ArrayD, IxDyn};
    /// let ds = Dataset::new(ArrayD::zeros(IxDyn(&[2, 1, 4, 4])), vec![0, 1])?;
    /// assert_eq!(ds.sample_shape(), &[1, 4, 4]);
    /// # Ok::<(), deepcompress_core::CoreError>(())
    /// ```
    pub fn sample_shape(&self) -> &[usize] {
        self.inputs.shape().get(1..).unwrap_or(&[])
    }

    /// Largest label plus one (0 for an empty dataset).
    ///
    /// ```
    /// # use deepcompress_core::data::Dataset;
    /// # use ndarray::{ArrayD, IxDyn};
    /// let ds = Dataset::new(ArrayD::zeros(IxDyn(&[2, 1])), vec![7, 3])?;
    /// assert_eq!(ds.num_classes(), 8);
    /// # Ok::<(), deepcompress_core::CoreError>(())
    /// ```
    pub fn num_classes(&self) -> usize {
        self.labels.iter().max().map_or(0, |m| m + 1)
    }

    /// Number of samples of each class, indexed by label (length [`Dataset::num_classes`]).
    ///
    /// ```
    /// # use deepcompress_core::data::Dataset;
    /// # use ndarray::{ArrayD, IxDyn};
    /// let ds = Dataset::new(ArrayD::zeros(IxDyn(&[4, 1])), vec![0, 2, 2, 0])?;
    /// assert_eq!(ds.class_counts(), vec![2, 0, 2]);
    /// # Ok::<(), deepcompress_core::CoreError>(())
    /// ```
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes()];
        for &l in &self.labels {
            counts[l] += 1;
        }
        counts
    }

    /// Gathers the samples at `indices` (in that order, repeats allowed) into a new input
    /// array and label vector. Meant for the training loop, so it does not validate.
    ///
    /// # Panics
    /// If an index is out of range, like slice indexing.
    ///
    /// ```
    /// # use deepcompress_core::data::Dataset;
    /// # use ndarray::{ArrayD, IxDyn};
    /// let inputs = ArrayD::from_shape_fn(IxDyn(&[3, 2]), |ix| ix[0] as f32);
    /// let ds = Dataset::new(inputs, vec![5, 6, 7])?;
    /// let (x, y) = ds.batch(&[2, 0]);
    /// assert_eq!(x.shape(), &[2, 2]);
    /// assert_eq!(x.as_slice().unwrap(), &[2.0, 2.0, 0.0, 0.0]);
    /// assert_eq!(y, vec![7, 5]);
    /// # Ok::<(), deepcompress_core::CoreError>(())
    /// ```
    pub fn batch(&self, indices: &[usize]) -> (ArrayD<f32>, Vec<usize>) {
        let labels: Vec<usize> = indices.iter().map(|&i| self.labels[i]).collect();
        // The fields are public, so the layout may have been changed after `new`.
        let Some(src) = self.inputs.as_slice() else {
            return (self.inputs.select(Axis(0), indices), labels);
        };
        let row: usize = self.sample_shape().iter().product();
        let mut data = Vec::with_capacity(indices.len() * row);
        for &i in indices {
            data.extend_from_slice(&src[i * row..(i + 1) * row]);
        }
        let mut shape = Vec::with_capacity(self.inputs.ndim());
        shape.push(indices.len());
        shape.extend_from_slice(self.sample_shape());
        let inputs = ArrayD::from_shape_vec(IxDyn(&shape), data).expect("length matches shape");
        (inputs, labels)
    }

    /// A new dataset with the samples at `indices`; errors on an out-of-range index.
    ///
    /// ```
    /// # use deepcompress_core::data::Dataset;
    /// # use ndarray::{ArrayD, IxDyn};
    /// let ds = Dataset::new(ArrayD::zeros(IxDyn(&[3, 2])), vec![0, 1, 2])?;
    /// assert_eq!(ds.subset(&[2, 1])?.labels, vec![2, 1]);
    /// assert!(ds.subset(&[3]).is_err());
    /// # Ok::<(), deepcompress_core::CoreError>(())
    /// ```
    pub fn subset(&self, indices: &[usize]) -> Result<Self> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            let reason = format!("out of range for a dataset of {} samples", self.len());
            return Err(CoreError::param("index", bad, reason));
        }
        let (inputs, labels) = self.batch(indices);
        Ok(Self { inputs, labels })
    }

    /// Standardises every input value as `(x - mean) / std` (for MNIST, the usual
    /// [`MNIST_MEAN`](super::MNIST_MEAN) and [`MNIST_STD`](super::MNIST_STD)).
    ///
    /// ```
    /// use deepcompress_core::data::Dataset;
    /// use ndarray::ArrayD;
    /// let ds = Dataset::new(ArrayD::ones(vec![2, 3]), vec![0, 1])?.normalize(0.5, 0.25)?;
    /// assert!(ds.inputs.iter().all(|&v| v == 2.0));
    /// assert!(Dataset::new(ArrayD::ones(vec![1, 1]), vec![0])?.normalize(0.0, 0.0).is_err());
    /// # Ok::<(), deepcompress_core::CoreError>(())
    /// ```
    pub fn normalize(mut self, mean: f32, std: f32) -> Result<Self> {
        if !(mean.is_finite() && std.is_finite() && std > 0.0) {
            return Err(CoreError::param(
                "normalize mean/std",
                format!("{mean}/{std}"),
                "need finite values and std > 0",
            ));
        }
        self.inputs.par_mapv_inplace(|v| (v - mean) / std);
        Ok(self)
    }

    /// The first `n` samples (all of them when `n >= len`).
    ///
    /// ```
    /// # use deepcompress_core::data::Dataset;
    /// # use ndarray::{ArrayD, IxDyn};
    /// let ds = Dataset::new(ArrayD::zeros(IxDyn(&[3, 2])), vec![0, 1, 2])?;
    /// assert_eq!(ds.take(2).labels, vec![0, 1]);
    /// assert_eq!(ds.take(10).len(), 3);
    /// # Ok::<(), deepcompress_core::CoreError>(())
    /// ```
    pub fn take(&self, n: usize) -> Self {
        let n = n.min(self.len());
        let inputs = self.inputs.slice_axis(Axis(0), Slice::from(..n)).to_owned();
        Self { inputs, labels: self.labels[..n].to_vec() }
    }

    /// Gives every sample the shape `sample_shape` (same number of elements), for example
    /// `[784]` to feed `[1, 28, 28]` images to a fully connected network. No data is copied
    /// when the inputs are in standard layout.
    ///
    /// ```
    /// # use deepcompress_core::data::Dataset;
    /// # use ndarray::{ArrayD, IxDyn};
    /// let ds = Dataset::new(ArrayD::zeros(IxDyn(&[2, 1, 4, 4])), vec![0, 1])?;
    /// let flat = ds.reshape_inputs(&[16])?;
    /// assert_eq!(flat.inputs.shape(), &[2, 16]);
    /// assert!(flat.reshape_inputs(&[5]).is_err());
    /// # Ok::<(), deepcompress_core::CoreError>(())
    /// ```
    pub fn reshape_inputs(self, sample_shape: &[usize]) -> Result<Self> {
        let row: usize = self.sample_shape().iter().product();
        let want = sample_shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if want != Some(row) {
            let expected = format!("a per-sample shape with {row} elements");
            return Err(CoreError::shape("Dataset::reshape_inputs", expected, sample_shape));
        }
        let mut shape = Vec::with_capacity(sample_shape.len() + 1);
        shape.push(self.len());
        shape.extend_from_slice(sample_shape);
        let inputs = if self.inputs.is_standard_layout() {
            self.inputs
        } else {
            self.inputs.as_standard_layout().into_owned()
        };
        let inputs = inputs.into_shape_with_order(IxDyn(&shape)).map_err(|_| {
            CoreError::shape("Dataset::reshape_inputs", format!("{shape:?}"), sample_shape)
        })?;
        Ok(Self { inputs, labels: self.labels })
    }
}
