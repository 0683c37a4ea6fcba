//! How images are read for a model — Keras's `load_img` at a target size (Pillow's decoding and
//! resize filters), optionally centre-cropped to the target's aspect ratio first — one reader for
//! the folder datasets that training streams and for the photos `classify` and `features` take.

use std::path::{Path, PathBuf};

use anyhow::Result;
use image::RgbImage;
use tch::Tensor;

use super::{read_rgb, resize, DecodeOptions, Interpolation};

#[derive(Debug, Clone, Copy)]
pub struct ImageReading {
    /// (height, width).
    pub image_size: (u32, u32),
    pub interpolation: Interpolation,
    /// Crop the largest centred window of `image_size`'s aspect ratio before resizing (Keras's
    /// `crop_to_aspect_ratio`, `smart_resize`'s box), instead of squashing.
    pub crop_to_aspect_ratio: bool,
    pub decode: DecodeOptions,
}

/// A batch of images read from files: those that loaded, in order, as (N, H, W, 3) float32 0-255
/// (`img_to_array`'s values; `None` when none did), and those that did not, with why.
pub struct ImageBatch {
    pub loaded: Vec<PathBuf>,
    pub pixels: Option<Tensor>,
    pub failed: Vec<(PathBuf, anyhow::Error)>,
}

impl ImageReading {
    /// `load_img(target_size=(height, width), interpolation=…)`: no crop, default decoding limits.
    pub fn new(image_size: (u32, u32), interpolation: Interpolation) -> Self {
        Self { image_size, interpolation, crop_to_aspect_ratio: false, decode: DecodeOptions::default() }
    }

    pub fn with_crop_to_aspect_ratio(self, crop_to_aspect_ratio: bool) -> Self {
        Self { crop_to_aspect_ratio, ..self }
    }

    pub fn with_decode(self, decode: DecodeOptions) -> Self {
        Self { decode, ..self }
    }

    /// One image: decoded to RGB, cropped if asked, resized to `image_size`.
    pub fn read(&self, path: &Path) -> Result<RgbImage> {
        let (height, width) = self.image_size;
        let mut image = read_rgb(path, &self.decode)?;
        if self.crop_to_aspect_ratio {
            image = crop_to_aspect_ratio(&image, height, width);
        }
        Ok(if image.dimensions() == (width, height) { image } else { resize(&image, width, height, self.interpolation) })
    }

    /// `paths` as one batch; a file that does not load is reported in the batch, not an error.
    pub fn read_batch(&self, paths: &[PathBuf]) -> ImageBatch {
        let (height, width) = self.image_size;
        let mut pixels = Vec::with_capacity(paths.len() * (height * width * 3) as usize);
        let mut batch = ImageBatch { loaded: Vec::new(), pixels: None, failed: Vec::new() };
        for path in paths {
            match self.read(path) {
                Ok(image) => {
                    pixels.extend(image.as_raw().iter().map(|&v| f32::from(v)));
                    batch.loaded.push(path.clone());
                }
                Err(error) => batch.failed.push((path.clone(), error)),
            }
        }
        if !batch.loaded.is_empty() {
            batch.pixels = Some(Tensor::from_slice(&pixels).view([batch.loaded.len() as i64, height as i64, width as i64, 3]));
        }
        batch
    }
}

/// Keras's `smart_resize` crop box: the largest window of the target's aspect ratio, centred.
fn crop_to_aspect_ratio(image: &RgbImage, target_height: u32, target_width: u32) -> RgbImage {
    let (width, height) = (image.width() as f64, image.height() as f64);
    let crop_height = ((width * target_height as f64 / target_width as f64) as u32).min(image.height());
    let crop_width = ((height * target_width as f64 / target_height as f64) as u32).min(image.width());
    let top = (image.height() - crop_height) / 2;
    let left = (image.width() - crop_width) / 2;
    image::imageops::crop_imm(image, left, top, crop_width, crop_height).to_image()
}
