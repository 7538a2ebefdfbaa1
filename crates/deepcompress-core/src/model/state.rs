//! Model parameters and buffers as a PyTorch-style state dict, and safetensors files.

use super::Model;
use crate::io::{StateDict, read_safetensors, write_safetensors};
use crate::layer::Layer;
use crate::{CoreError, Result};
use ndarray::ArrayD;
use std::path::Path;

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") }
}

/// Every parameter and buffer with its full name, mutable, in model order.
fn for_each_tensor_mut(
    layer: &mut dyn Layer,
    prefix: &str,
    f: &mut dyn FnMut(String, &mut ArrayD<f32>),
) {
    for (name, p) in layer.params_mut() {
        f(join(prefix, name), p.value_mut());
    }
    for (name, b) in layer.buffers_mut() {
        f(join(prefix, name), b);
    }
    for (name, child) in layer.children_mut() {
        for_each_tensor_mut(child.as_mut(), &join(prefix, &name), f);
    }
}

impl Model {
    /// Parameters and buffers (`running_mean`, `running_var`) under their PyTorch names.
    ///
    /// ```
    /// let m = deepcompress_core::models::resnet_small(0);
    /// let sd = m.state_dict();
    /// assert!(sd.get("layer1.block.body.bn1.running_var").is_some());
    /// assert_eq!(sd.get_f32("conv1.weight").unwrap().shape(), &[16, 1, 3, 3]);
    /// ```
    pub fn state_dict(&self) -> StateDict {
        let mut sd = StateDict::new();
        let visit = |path: &str, l: &dyn Layer, sd: &mut StateDict| {
            for (n, p) in l.params() {
                sd.insert_f32(join(path, n), p.value().clone());
            }
            for (n, b) in l.buffers() {
                sd.insert_f32(join(path, n), b.clone());
            }
        };
        visit("", self.root(), &mut sd);
        self.visit(|path, l| visit(path, l, &mut sd));
        sd
    }

    /// Loads every parameter and buffer from `sd`. All names and shapes are checked
    /// before anything is written, so on error the model is unchanged. Returns the names
    /// in `sd` the model did not use (for example PyTorch's `num_batches_tracked`).
    ///
    /// ```
    /// use deepcompress_core::models::lenet_300_100;
    /// let source = lenet_300_100(1);
    /// let mut target = lenet_300_100(2);
    /// let unused = target.load_state_dict(&source.state_dict()).unwrap();
    /// assert!(unused.is_empty());
    /// assert_eq!(target.state_dict().get_f32("fc2.bias").unwrap(), source.state_dict().get_f32("fc2.bias").unwrap());
    /// ```
    pub fn load_state_dict(&mut self, sd: &StateDict) -> Result<Vec<String>> {
        let own = self.state_dict();
        for (name, t) in own.iter() {
            let want = t.shape();
            let given = sd.get_f32(name)?;
            if given.shape() != want {
                return Err(CoreError::shape(
                    format!("state dict tensor `{name}`"),
                    format!("{want:?}"),
                    given.shape(),
                ));
            }
        }
        for_each_tensor_mut(self.root_mut(), "", &mut |name, v| {
            let src = sd.get_f32(&name).expect("checked above");
            v.assign(&src);
        });
        // Re-apply constraints: a mask must hold for loaded weights too.
        self.for_each_param_mut(|_, p| p.project());
        Ok(sd.names().filter(|n| own.get(n).is_none()).map(str::to_string).collect())
    }

    /// Writes parameters and buffers to a safetensors file readable by PyTorch, candle and burn.
    pub fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        write_safetensors(&self.state_dict(), path)
    }

    /// Reads parameters and buffers from a safetensors file (f32, f16, bf16 and f64 are
    /// converted); returns the names in the file the model did not use.
    ///
    /// ```
    /// use deepcompress_core::models::lenet5;
    /// let path = std::env::temp_dir().join("deepcompress-doc-lenet5.safetensors");
    /// lenet5(3).save_safetensors(&path).unwrap();
    /// let mut m = lenet5(4);
    /// assert!(m.load_safetensors(&path).unwrap().is_empty());
    /// assert_eq!(m.state_dict().get_f32("conv1.weight").unwrap(), lenet5(3).state_dict().get_f32("conv1.weight").unwrap());
    /// # std::fs::remove_file(path).ok();
    /// ```
    pub fn load_safetensors(&mut self, path: impl AsRef<Path>) -> Result<Vec<String>> {
        let path = path.as_ref();
        let sd = read_safetensors(path)?;
        self.load_state_dict(&sd)
    }
}
