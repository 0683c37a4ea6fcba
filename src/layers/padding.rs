//! Padding as TensorFlow does it, and Keras's `ZeroPadding2D`
//! (`keras/src/layers/reshaping/zero_padding2d.py`).
//!
//! TF `same` padding: total = max((ceil(in / stride) - 1) * stride + k_eff - in, 0), split with the
//! extra pixel on the bottom/right (`tensorflow/python/ops/nn_ops.py`, timm's `padding.py`).
//! For stride 2 it is often asymmetric, which torch's symmetric padding cannot express.

use anyhow::{bail, Result};
use serde_json::{json, Value};
use tch::Tensor;

use super::keras_config::{bounded, pair, KerasConfig};
use super::registry::FromKerasConfig;
use super::{image_input, Layer, Shape};

/// Keras's `padding` argument of convolutions and pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    Valid,
    Same,
}

impl Padding {
    pub fn keras_name(self) -> &'static str {
        match self {
            Padding::Valid => "valid",
            Padding::Same => "same",
        }
    }
}

/// (before, after) padding of one spatial axis for a window of effective size `k` (dilation
/// included) and `stride`.
pub fn axis_padding(padding: Padding, size: i64, k: i64, stride: i64) -> (i64, i64) {
    match padding {
        Padding::Valid => (0, 0),
        Padding::Same => {
            let out = (size + stride - 1) / stride;
            let total = ((out - 1) * stride + k - size).max(0);
            (total / 2, total - total / 2)
        }
    }
}

/// Output length of one spatial axis, as Keras's `conv_output_length`.
pub fn axis_output(padding: Padding, size: i64, k: i64, stride: i64) -> i64 {
    match padding {
        Padding::Same => (size + stride - 1) / stride,
        Padding::Valid => (size - k + stride) / stride,
    }
}

/// Output (H, W) of a 2-D window, or an error when the input is smaller than the window.
pub fn window_output(class: &str, padding: Padding, hw: [i64; 2], k: [i64; 2], stride: [i64; 2]) -> Result<[i64; 2]> {
    let out = [axis_output(padding, hw[0], k[0], stride[0]), axis_output(padding, hw[1], k[1], stride[1])];
    if out.iter().any(|&d| d <= 0) {
        bail!("{class}: input {}x{} is smaller than the {}x{} window ({} padding)", hw[0], hw[1], k[0], k[1], padding.keras_name());
    }
    Ok(out)
}

/// Pads of an NCHW tensor as torch's `constant_pad_nd` wants them: [left, right, top, bottom].
pub type Pads = [i64; 4];

/// `[left, right, top, bottom]` for a 2-D window over an (H, W) image.
pub fn same_pads(padding: Padding, hw: [i64; 2], k: [i64; 2], stride: [i64; 2]) -> Pads {
    let (top, bottom) = axis_padding(padding, hw[0], k[0], stride[0]);
    let (left, right) = axis_padding(padding, hw[1], k[1], stride[1]);
    [left, right, top, bottom]
}

/// Keras `ZeroPadding2D(padding=((top, bottom), (left, right)))`.
pub struct ZeroPadding2D {
    /// ((top, bottom), (left, right)), as Keras's config.
    pub padding: [[i64; 2]; 2],
}

impl ZeroPadding2D {
    /// `ZeroPadding2D(p)`: p pixels on every side.
    pub fn symmetric(p: i64) -> Self {
        Self { padding: [[p, p], [p, p]] }
    }
}

impl FromKerasConfig for ZeroPadding2D {
    /// `padding`: `p`, `(h, w)` or `((top, bottom), (left, right))`.
    fn from_keras_config(config: &KerasConfig) -> Result<Self> {
        config.require_channels_last()?;
        let padding = match config.get("padding") {
            Value::Array(items) if items.len() == 2 && items[0].is_array() => [pair(&items[0], "padding")?, pair(&items[1], "padding")?],
            Value::Null => [[1, 1], [1, 1]],
            value => {
                let [h, w] = pair(value, "padding")?;
                [[h, h], [w, w]]
            }
        };
        for &p in padding.iter().flatten() {
            bounded(p, 0, "padding")?;
        }
        Ok(Self { padding })
    }
}

impl Layer for ZeroPadding2D {
    fn class_name(&self) -> &'static str {
        "ZeroPadding2D"
    }

    fn keras_config(&self) -> Value {
        json!({ "padding": self.padding, "data_format": "channels_last" })
    }

    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let [h, w, c] = image_input(self.class_name(), inputs)?;
        let [[top, bottom], [left, right]] = self.padding;
        if self.padding.iter().flatten().any(|&p| p < 0) {
            bail!("ZeroPadding2D padding must not be negative, got {:?}", self.padding);
        }
        Ok(vec![h + top + bottom, w + left + right, c])
    }

    fn forward(&self, inputs: &[&Tensor], _train: bool) -> Tensor {
        let [[top, bottom], [left, right]] = self.padding;
        inputs[0].constant_pad_nd([left, right, top, bottom])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_matches_tensorflow_formula() {
        // 7 wide, k 3, stride 2: out 4, total (4-1)*2+3-7 = 2 -> (1, 1).
        assert_eq!(axis_padding(Padding::Same, 7, 3, 2), (1, 1));
        // 8 wide, k 3, stride 2: out 4, total 1 -> the extra pixel goes after: (0, 1).
        assert_eq!(axis_padding(Padding::Same, 8, 3, 2), (0, 1));
        // 224, k 7, stride 2: total 5 -> (2, 3), TF's famous asymmetric stem.
        assert_eq!(axis_padding(Padding::Same, 224, 7, 2), (2, 3));
        // stride 1, k 3: (1, 1); large stride never gives negative padding.
        assert_eq!(axis_padding(Padding::Same, 5, 3, 1), (1, 1));
        assert_eq!(axis_padding(Padding::Same, 5, 1, 4), (0, 0));
        assert_eq!(axis_padding(Padding::Valid, 8, 3, 2), (0, 0));
    }

    #[test]
    fn output_lengths_match_keras() {
        assert_eq!(axis_output(Padding::Same, 7, 3, 2), 4);
        assert_eq!(axis_output(Padding::Valid, 7, 3, 2), 3);
        assert_eq!(axis_output(Padding::Valid, 70, 7, 2), 32);
        assert_eq!(axis_output(Padding::Valid, 32, 3, 2), 15);
    }
}
