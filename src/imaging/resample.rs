//! Pillow's `Image.resize`, exactly: Keras's `load_img(target_size=…, interpolation=…)` calls it,
//! and the network sees its rounding.
//!
//! - `nearest` is Pillow's affine scaling: source column `floor(x0 + (x + 0.5)·in/out)`, with the
//!   position accumulated in double precision as Pillow does (`libImaging/Geometry.c`).
//! - The filters (`bilinear`, `bicubic`, `lanczos`, `box`, `hamming`) are Pillow's separable
//!   convolution (`libImaging/Resample.c`): support widened by the scale when shrinking,
//!   coefficients normalised, turned into 22-bit fixed point, horizontal pass first, each pass
//!   rounded and clipped to 8 bits.

use clap::ValueEnum;
use image::RgbImage;

/// A resampling filter's kernel (a function of the distance in source pixels).
type Kernel = fn(f64) -> f64;

/// Keras's `interpolation` names (`keras.utils.load_img`), mapped to Pillow's filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Interpolation {
    #[default]
    Nearest,
    Bilinear,
    Bicubic,
    Lanczos,
    Box,
    Hamming,
}

impl Interpolation {
    pub const ALL: [Self; 6] = [Self::Nearest, Self::Bilinear, Self::Bicubic, Self::Lanczos, Self::Box, Self::Hamming];

    pub fn name(self) -> &'static str {
        match self {
            Self::Nearest => "nearest",
            Self::Bilinear => "bilinear",
            Self::Bicubic => "bicubic",
            Self::Lanczos => "lanczos",
            Self::Box => "box",
            Self::Hamming => "hamming",
        }
    }

    /// (support radius, kernel) of Pillow's filter; None for nearest.
    fn filter(self) -> Option<(f64, Kernel)> {
        match self {
            Self::Nearest => None,
            Self::Box => Some((0.5, box_filter)),
            Self::Bilinear => Some((1.0, triangle_filter)),
            Self::Hamming => Some((1.0, hamming_filter)),
            Self::Bicubic => Some((2.0, bicubic_filter)),
            Self::Lanczos => Some((3.0, lanczos_filter)),
        }
    }
}

/// Resize to `width`×`height` as Pillow's `Image.resize((width, height), filter)` does.
pub fn resize(image: &RgbImage, width: u32, height: u32, interpolation: Interpolation) -> RgbImage {
    if image.dimensions() == (width, height) {
        return image.clone();
    }
    match interpolation.filter() {
        None => resize_nearest(image, width, height),
        Some((support, kernel)) => {
            let (in_w, in_h) = image.dimensions();
            // Pillow skips a pass whose size does not change.
            let horizontal = if in_w != width {
                let taps = Taps::new(in_w, width, support, kernel);
                resample_rows(image, &taps)
            } else {
                image.clone()
            };
            if in_h != height {
                let taps = Taps::new(in_h, height, support, kernel);
                resample_columns(&horizontal, &taps)
            } else {
                horizontal
            }
        }
    }
}

fn resize_nearest(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (in_w, in_h) = image.dimensions();
    let columns = nearest_sources(in_w, width);
    let rows = nearest_sources(in_h, height);
    let source = image.as_raw();
    let mut out = Vec::with_capacity(3 * width as usize * height as usize);
    for &y in &rows {
        let row = &source[3 * y * in_w as usize..];
        for &x in &columns {
            out.extend_from_slice(&row[3 * x..3 * x + 3]);
        }
    }
    RgbImage::from_raw(width, height, out).expect("sized above")
}

/// Source index of each output index, by Pillow's accumulated double-precision position.
fn nearest_sources(in_size: u32, out_size: u32) -> Vec<usize> {
    let scale = in_size as f64 / out_size as f64;
    let mut position = scale * 0.5;
    (0..out_size)
        .map(|_| {
            let source = (position as usize).min(in_size as usize - 1);
            position += scale;
            source
        })
        .collect()
}

/// Fixed-point bits of Pillow's 8-bit resampling (`PRECISION_BITS = 32 - 8 - 2`).
const PRECISION_BITS: u32 = 22;

/// Each output index's first source index and fixed-point weights (`precompute_coeffs` followed
/// by `normalize_coeffs_8bpc`).
struct Taps {
    first: Vec<usize>,
    weights: Vec<Vec<i32>>,
}

impl Taps {
    fn new(in_size: u32, out_size: u32, support: f64, kernel: fn(f64) -> f64) -> Self {
        let scale = in_size as f64 / out_size as f64;
        let filter_scale = scale.max(1.0);
        let support = support * filter_scale;
        // Pillow multiplies by the reciprocal (not a division: the last bit matters).
        let inverse_scale = 1.0 / filter_scale;
        let mut first = Vec::with_capacity(out_size as usize);
        let mut weights = Vec::with_capacity(out_size as usize);
        for xx in 0..out_size {
            let center = (xx as f64 + 0.5) * scale;
            // Pillow truncates toward zero after adding 0.5 ("round the value").
            let min = ((center - support + 0.5) as i64).max(0) as usize;
            let max = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let raw: Vec<f64> = (min..max).map(|x| kernel((x as f64 - center + 0.5) * inverse_scale)).collect();
            let total: f64 = raw.iter().sum();
            let fixed = raw
                .iter()
                .map(|w| {
                    let w = if total != 0.0 { w / total } else { *w };
                    let scaled = w * (1i64 << PRECISION_BITS) as f64;
                    (if w < 0.0 { scaled - 0.5 } else { scaled + 0.5 }) as i32
                })
                .collect();
            first.push(min);
            weights.push(fixed);
        }
        Self { first, weights }
    }

    /// One channel value: the weighted sum, rounded and clipped to 8 bits.
    fn apply(&self, out_index: usize, sample: impl Fn(usize) -> u8) -> u8 {
        let mut sum: i32 = 1 << (PRECISION_BITS - 1);
        for (k, &w) in self.weights[out_index].iter().enumerate() {
            sum += sample(self.first[out_index] + k) as i32 * w;
        }
        (sum >> PRECISION_BITS).clamp(0, 255) as u8
    }
}

fn resample_rows(image: &RgbImage, taps: &Taps) -> RgbImage {
    let (in_w, h) = image.dimensions();
    let width = taps.first.len();
    let source = image.as_raw();
    let mut out = Vec::with_capacity(3 * width * h as usize);
    for y in 0..h as usize {
        let row = &source[3 * y * in_w as usize..3 * (y + 1) * in_w as usize];
        for x in 0..width {
            for c in 0..3 {
                out.push(taps.apply(x, |sx| row[3 * sx + c]));
            }
        }
    }
    RgbImage::from_raw(width as u32, h, out).expect("sized above")
}

fn resample_columns(image: &RgbImage, taps: &Taps) -> RgbImage {
    let (w, _) = image.dimensions();
    let stride = 3 * w as usize;
    let height = taps.first.len();
    let source = image.as_raw();
    let mut out = Vec::with_capacity(stride * height);
    for y in 0..height {
        for i in 0..stride {
            out.push(taps.apply(y, |sy| source[sy * stride + i]));
        }
    }
    RgbImage::from_raw(w, height as u32, out).expect("sized above")
}

// Pillow's filter kernels (libImaging/Resample.c).

fn box_filter(x: f64) -> f64 {
    // Pillow's half-open window is (-0.5, 0.5], not [-0.5, 0.5).
    if x > -0.5 && x <= 0.5 {
        1.0
    } else {
        0.0
    }
}

fn triangle_filter(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

fn hamming_filter(x: f64) -> f64 {
    let x = x.abs();
    if x == 0.0 {
        1.0
    } else if x >= 1.0 {
        0.0
    } else {
        let x = x * std::f64::consts::PI;
        // Pillow writes the constants as C floats (0.54f, 0.46f), widened to double.
        x.sin() / x * (0.54f32 as f64 + 0.46f32 as f64 * x.cos())
    }
}

fn bicubic_filter(x: f64) -> f64 {
    // Pillow's a = -0.5 (Keys' cubic).
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

fn lanczos_filter(x: f64) -> f64 {
    if (-3.0..3.0).contains(&x) {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_picks_pillow_centres() {
        // 5 -> 2: positions 1.25 and 3.75.
        assert_eq!(nearest_sources(5, 2), vec![1, 3]);
        // Upscaling repeats: 2 -> 4 gives 0.25, 0.75, 1.25, 1.75.
        assert_eq!(nearest_sources(2, 4), vec![0, 0, 1, 1]);
    }

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for (support, kernel) in [(1.0, triangle_filter as fn(f64) -> f64), (2.0, bicubic_filter), (3.0, lanczos_filter)] {
            let taps = Taps::new(3024, 224, support, kernel);
            for w in &taps.weights {
                let sum: i32 = w.iter().sum();
                assert!((sum - (1 << PRECISION_BITS)).abs() <= w.len() as i32, "{sum}");
            }
        }
    }
}
