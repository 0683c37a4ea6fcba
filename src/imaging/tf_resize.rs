//! TensorFlow's `tf.image.resize` without antialiasing, as Keras's `Resizing`, `CenterCrop` and
//! `smart_resize` call it: `bilinear`, `nearest` and `bicubic`, all with half-pixel centres
//! (`tensorflow/core/kernels/image/resize_{bilinear,nearest_neighbor,bicubic}_op.cc`).
//!
//! Each is separable, so a resize is two small matrices, (out × in) per axis, applied to the
//! image's last two dimensions: `rows · image · columnsᵀ`. The matrices hold TensorFlow's own
//! sample positions and weights, computed in float32 as its kernels compute them (bicubic from
//! its 1024-step table of Keys' cubic, a = −0.5, with taps outside the image dropped and the
//! rest renormalised), so the result is TensorFlow's up to float32 rounding of the sums.

use std::sync::OnceLock;

use anyhow::{bail, Result};
use tch::Tensor;

/// The `interpolation` of Keras's resizing layers that keras-tch computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TfInterpolation {
    Bilinear,
    Nearest,
    Bicubic,
}

impl TfInterpolation {
    pub fn from_keras_name(name: &str) -> Result<Self> {
        Ok(match name {
            "bilinear" => Self::Bilinear,
            "nearest" => Self::Nearest,
            "bicubic" => Self::Bicubic,
            "area" | "lanczos3" | "lanczos5" | "gaussian" | "mitchellcubic" => {
                bail!("interpolation '{name}' is not supported (bilinear, nearest, bicubic)")
            }
            other => bail!("unknown interpolation '{other}' (Keras's are bilinear, nearest, bicubic, area, lanczos3, lanczos5, gaussian, mitchellcubic)"),
        })
    }

    pub fn keras_name(self) -> &'static str {
        match self {
            Self::Bilinear => "bilinear",
            Self::Nearest => "nearest",
            Self::Bicubic => "bicubic",
        }
    }

    /// The (`out_size` × `in_size`) matrix, row-major, taking one axis of an image to its
    /// resized samples.
    pub fn matrix(self, in_size: usize, out_size: usize) -> Vec<f32> {
        let mut matrix = vec![0.0f32; out_size * in_size];
        // TensorFlow's CalculateResizeScale without align_corners, in float32.
        let scale = in_size as f32 / out_size as f32;
        for out in 0..out_size {
            let row = &mut matrix[out * in_size..(out + 1) * in_size];
            match self {
                Self::Nearest => {
                    // HalfPixelScalerForNN, floored and kept inside the image.
                    let at = ((out as f32 + 0.5) * scale).floor() as i64;
                    row[at.clamp(0, in_size as i64 - 1) as usize] = 1.0;
                }
                Self::Bilinear => {
                    // HalfPixelScaler; the two neighbours clamped to the image.
                    let at = (out as f32 + 0.5) * scale - 0.5;
                    let below = at.floor();
                    let lerp = at - below;
                    let lower = (below as i64).max(0) as usize;
                    let upper = (at.ceil() as i64).min(in_size as i64 - 1) as usize;
                    row[lower] += 1.0 - lerp;
                    row[upper] += lerp;
                }
                Self::Bicubic => {
                    for (index, weight) in bicubic_taps((out as f32 + 0.5) * scale - 0.5, in_size) {
                        row[index] += weight;
                    }
                }
            }
        }
        matrix
    }
}

/// TensorFlow's bicubic table: Keys' cubic convolution kernel with a = −0.5, sampled at 1025
/// distances in [0, 1] (even entries) and [1, 2] (odd entries), stored as float32.
fn keys_cubic_table() -> &'static [f32] {
    static TABLE: OnceLock<Vec<f32>> = OnceLock::new();
    TABLE.get_or_init(|| {
        const A: f64 = -0.5;
        let mut table = vec![0.0f32; (TABLE_SIZE + 1) * 2];
        for i in 0..=TABLE_SIZE {
            let near = (i as f64 / TABLE_SIZE as f64) as f32;
            let x = near as f64;
            table[i * 2] = (((A + 2.0) * x - (A + 3.0)) * x * x + 1.0) as f32;
            let far = (near as f64 + 1.0) as f32;
            let x = far as f64;
            table[i * 2 + 1] = (((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A) as f32;
        }
        table
    })
}

const TABLE_SIZE: usize = 1 << 10;

/// The four taps around the sample position `at` (GetWeightsAndIndices with Keys' cubic): taps
/// outside the image get no weight and the others are renormalised to sum to one.
fn bicubic_taps(at: f32, in_size: usize) -> [(usize, f32); 4] {
    let table = keys_cubic_table();
    let floor = at.floor();
    let delta = at - floor;
    let offset = (delta * TABLE_SIZE as f32).round_ties_even() as usize;
    let coefficients = [table[offset * 2 + 1], table[offset * 2], table[(TABLE_SIZE - offset) * 2], table[(TABLE_SIZE - offset) * 2 + 1]];
    let first = floor as i64 - 1;
    let mut taps = [(0usize, 0.0f32); 4];
    for (k, coefficient) in coefficients.into_iter().enumerate() {
        let wanted = first + k as i64;
        let index = wanted.clamp(0, in_size as i64 - 1);
        taps[k] = (index as usize, if index == wanted { coefficient } else { 0.0 });
    }
    let sum = taps.iter().fold(0.0f32, |sum, (_, weight)| sum + weight);
    if sum.abs() >= 1000.0 * f32::MIN_POSITIVE {
        let inverse = 1.0 / sum;
        for tap in &mut taps {
            tap.1 *= inverse;
        }
    }
    taps
}

/// `images` (any leading dimensions, then height and width) resized to (`height`, `width`).
pub fn resize_last_two_dims(images: &Tensor, height: i64, width: i64, interpolation: TfInterpolation) -> Tensor {
    let size = images.size();
    let (in_height, in_width) = (size[size.len() - 2], size[size.len() - 1]);
    if (in_height, in_width) == (height, width) {
        return images.shallow_clone();
    }
    let axis = |in_size: i64, out_size: i64| {
        let matrix = interpolation.matrix(in_size as usize, out_size as usize);
        Tensor::from_slice(&matrix).view([out_size, in_size]).to_device(images.device()).to_kind(images.kind())
    };
    axis(in_height, height).matmul(images).matmul(&axis(in_width, width).tr())
}

/// Keras's `smart_resize` box: the largest centred window of the target's aspect ratio, as
/// (top, left, height, width), computed in float32 as Keras does.
pub fn aspect_ratio_crop(height: i64, width: i64, target_height: i64, target_width: i64) -> (i64, i64, i64, i64) {
    let crop_height = (((width * target_height) as f32 / target_width as f32) as i64).clamp(1, height);
    let crop_width = (((height * target_width) as f32 / target_height as f32) as i64).clamp(1, width);
    let top = ((height - crop_height) as f32 / 2.0) as i64;
    let left = ((width - crop_width) as f32 / 2.0) as i64;
    (top, left, crop_height, crop_width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_of_every_matrix_sums_to_one() {
        for interpolation in [TfInterpolation::Bilinear, TfInterpolation::Nearest, TfInterpolation::Bicubic] {
            for (from, to) in [(5, 9), (9, 5), (1, 4), (4, 1), (7, 7)] {
                let matrix = interpolation.matrix(from, to);
                for row in matrix.chunks(from) {
                    assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{interpolation:?} {from}->{to}: {row:?}");
                }
            }
        }
    }

    #[test]
    fn same_size_is_the_identity() {
        for interpolation in [TfInterpolation::Bilinear, TfInterpolation::Nearest, TfInterpolation::Bicubic] {
            let matrix = interpolation.matrix(6, 6);
            for (i, row) in matrix.chunks(6).enumerate() {
                for (j, &value) in row.iter().enumerate() {
                    assert!((value - if i == j { 1.0 } else { 0.0 }).abs() < 1e-7, "{interpolation:?}: {row:?}");
                }
            }
        }
    }

    #[test]
    fn doubling_bilinear_samples_at_quarter_pixels() {
        // Output pixel 1 of 4 from 2 sits at input position 0.25: 0.75 of pixel 0, 0.25 of pixel 1.
        let matrix = TfInterpolation::Bilinear.matrix(2, 4);
        assert_eq!(&matrix[2..4], &[0.75, 0.25]);
        assert_eq!(&matrix[0..2], &[1.0, 0.0]);
    }

    #[test]
    fn smart_resize_box_keeps_the_target_aspect() {
        assert_eq!(aspect_ratio_crop(6, 8, 4, 4), (0, 1, 6, 6));
        assert_eq!(aspect_ratio_crop(10, 4, 2, 4), (4, 0, 2, 4));
    }
}
