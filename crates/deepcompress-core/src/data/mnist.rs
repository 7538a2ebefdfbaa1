//! MNIST handwritten digits: the original IDX files, or the 10,000-image subset embedded
//! in the crate.

use std::path::Path;

use ndarray::{ArrayD, IxDyn};

use super::Dataset;
use super::idx::{IdxArray, read_idx_bytes, read_idx_file};
use crate::error::{CoreError, Result};

/// File names of the original distribution; `.gz` is optional in [`Mnist::load_dir`].
const FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

macro_rules! embedded_file {
    ($name:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/mnist/", $name))
    };
}

/// Mean pixel value of the MNIST training set (images scaled to `[0, 1]`).
pub const MNIST_MEAN: f32 = 0.1307;

/// Standard deviation of the MNIST training pixels (images scaled to `[0, 1]`).
pub const MNIST_STD: f32 = 0.3081;

/// Number of digit classes.
pub const NUM_CLASSES: usize = 10;

/// The MNIST train and test splits. Images are `f32` in `[0, 1]` (byte / 255) with shape
/// `[n, 1, rows, cols]`; labels are digits 0 to 9.
///
/// ```
/// use deepcompress_core::data::Mnist;
/// let mnist = Mnist::embedded()?;
/// assert_eq!(mnist.train.inputs.shape(), &[8000, 1, 28, 28]);
/// # Ok::<(), deepcompress_core::CoreError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Mnist {
    /// Training split.
    pub train: Dataset,
    /// Test split.
    pub test: Dataset,
}

impl Mnist {
    /// Loads the four IDX files of the original distribution from `dir`
    /// (`train-images-idx3-ubyte.gz`, `train-labels-idx1-ubyte.gz`,
    /// `t10k-images-idx3-ubyte.gz`, `t10k-labels-idx1-ubyte.gz`, each with or without
    /// `.gz`; `test-` is accepted in place of `t10k-`).
    ///
    /// ```no_run
    /// use deepcompress_core::data::Mnist;
    /// let mnist = Mnist::load_dir("/datasets/mnist")?;
    /// println!("{} training images", mnist.train.len());
    /// # Ok::<(), deepcompress_core::CoreError>(())
    /// ```
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let [train_x, train_y, test_x, test_y] = FILES.map(|name| locate(dir, name));
        Ok(Self { train: load_split(&train_x, &train_y)?, test: load_split(&test_x, &test_y)? })
    }

    /// The 10,000-image subset stored in the repository's `data/mnist/` and compiled into
    /// the crate: 8,000 training and 2,000 test images, stratified by class. Needs no
    /// download; decoding takes a fraction of a second.
    ///
    /// ```
    /// use deepcompress_core::data::Mnist;
    /// let mnist = Mnist::embedded()?;
    /// assert_eq!((mnist.train.len(), mnist.test.len()), (8000, 2000));
    /// # Ok::<(), deepcompress_core::CoreError>(())
    /// ```
    pub fn embedded() -> Result<Self> {
        Ok(Self {
            train: Self::split_from_bytes(
                embedded_file!("train-images-idx3-ubyte.gz"),
                embedded_file!("train-labels-idx1-ubyte.gz"),
            )?,
            test: Self::split_from_bytes(
                embedded_file!("test-images-idx3-ubyte.gz"),
                embedded_file!("test-labels-idx1-ubyte.gz"),
            )?,
        })
    }

    /// Builds one split from an image file and a label file held in memory (IDX, raw or
    /// gzip). Images must be `[n, rows, cols]`, labels `[n]` with values below 10.
    ///
    /// ```
    /// use deepcompress_core::data::Mnist;
    /// // two 1x2 images and their labels, as raw IDX
    /// let images = [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 255, 51, 102];
    /// let labels = [0, 0, 8, 1, 0, 0, 0, 2, 3, 9];
    /// let split = Mnist::split_from_bytes(&images, &labels)?;
    /// assert_eq!(split.inputs.shape(), &[2, 1, 1, 2]);
    /// assert_eq!(split.inputs.as_slice().unwrap(), &[0.0, 1.0, 0.2, 0.4]);
    /// assert_eq!(split.labels, vec![3, 9]);
    /// # Ok::<(), deepcompress_core::CoreError>(())
    /// ```
    pub fn split_from_bytes(images: &[u8], labels: &[u8]) -> Result<Dataset> {
        let images = read_idx_bytes(images)?;
        let labels = read_idx_bytes(labels)?;
        to_dataset(images, labels)
    }
}

/// Prefers the `.gz` file, then the uncompressed one, then the `test-` spelling.
fn locate(dir: &Path, name: &str) -> std::path::PathBuf {
    let alt = name.replace("t10k-", "test-");
    let candidates = [format!("{name}.gz"), name.to_string(), format!("{alt}.gz"), alt];
    candidates
        .iter()
        .map(|c| dir.join(c))
        .find(|p| p.is_file())
        .unwrap_or_else(|| dir.join(&candidates[0]))
}

fn load_split(images: &Path, labels: &Path) -> Result<Dataset> {
    let x = read_idx_file(images)?;
    let y = read_idx_file(labels)?;
    // Checked here too so that a bad image shape names the image file, not the label file.
    check_images(&x).map_err(|e| e.in_file(images))?;
    to_dataset(x, y).map_err(|e| e.in_file(labels))
}

fn check_images(images: &IdxArray) -> Result<()> {
    match images.shape[..] {
        [_, _, _] => Ok(()),
        _ => Err(CoreError::format(
            "MNIST",
            format!("images must have 3 dimensions [n, rows, cols], got {:?}", images.shape),
        )),
    }
}

/// Checks the pair and scales pixels to `[0, 1]`.
fn to_dataset(images: IdxArray, labels: IdxArray) -> Result<Dataset> {
    check_images(&images)?;
    let (n, rows, cols) = (images.shape[0], images.shape[1], images.shape[2]);
    if labels.shape.len() != 1 || labels.shape[0] != n {
        return Err(CoreError::format(
            "MNIST",
            format!("labels have shape {:?} but there are {n} images", labels.shape),
        ));
    }
    if let Some(i) = labels.data.iter().position(|&l| usize::from(l) >= NUM_CLASSES) {
        return Err(CoreError::format(
            "MNIST",
            format!("label {} of sample {i} is not a digit 0-9", labels.data[i]),
        ));
    }
    let pixels = images.data.iter().map(|&b| f32::from(b) / 255.0).collect();
    let inputs = ArrayD::from_shape_vec(IxDyn(&[n, 1, rows, cols]), pixels)
        .map_err(|e| CoreError::format("MNIST", e.to_string()))?;
    Ok(Dataset { inputs, labels: labels.data.into_iter().map(usize::from).collect() })
}
