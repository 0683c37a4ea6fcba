//! Images in, tensors out, as Keras's image utilities make them: `load_img` (Pillow's decoding,
//! RGB conversion and resize), `img_to_array` and `preprocess_input`.

pub mod decode;
pub mod preprocess;
pub mod reading;
pub mod resample;
pub mod tf_resize;

use std::path::Path;

use anyhow::Result;
use image::RgbImage;

pub use decode::{decode_rgb, read_rgb, DecodeOptions, DEFAULT_MAX_PIXELS};
pub use preprocess::{img_to_array, preprocess_input, PreprocessMode};
pub use reading::{ImageBatch, ImageReading};
pub use resample::{resize, Interpolation};

/// Keras's `load_img(path, target_size=(height, width), interpolation=…)` in RGB mode: decode,
/// convert to RGB, then resize (when the size differs) with Pillow's filter.
pub fn load_img(path: &Path, target_size: Option<(u32, u32)>, interpolation: Interpolation, options: &DecodeOptions) -> Result<RgbImage> {
    let image = read_rgb(path, options)?;
    Ok(match target_size {
        Some((height, width)) => resize(&image, width, height, interpolation),
        None => image,
    })
}
