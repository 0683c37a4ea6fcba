//! Keras's image resizing layers (`keras/src/layers/preprocessing/image_preprocessing/
//! resizing.py`, `center_crop.py`), the same at training and inference:
//! - `Resizing(height, width, interpolation)`: `tf.image.resize` to the target, after cropping
//!   (`crop_to_aspect_ratio`) or padding (`pad_to_aspect_ratio`, Keras 3) the image to the
//!   target's aspect ratio when asked;
//! - `CenterCrop(height, width)`: the centred window of that size, or, when the image is smaller
//!   than the target on either side, Keras's `smart_resize` (the largest centred window of the
//!   target's aspect ratio, resized bilinearly).

use anyhow::Result;
use serde_json::{json, Value};
use tch::Tensor;

use super::keras_config::{invalid, KerasConfig};
use super::registry::FromKerasConfig;
use super::{image_input, Layer, Shape};
use crate::imaging::tf_resize::{aspect_ratio_crop, resize_last_two_dims, TfInterpolation};

/// What `Resizing` does to the image's aspect ratio before resizing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AspectRatio {
    /// Stretch the whole image to the target (Keras's default).
    Stretch,
    /// Crop the largest centred window of the target's aspect ratio.
    Crop,
    /// Pad both sides of the short axis with `fill_value` to the target's aspect ratio.
    Pad { fill_value: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resizing {
    pub height: i64,
    pub width: i64,
    pub interpolation: TfInterpolation,
    pub aspect_ratio: AspectRatio,
}

/// The target `height` and `width` of a resizing layer's config.
fn target_size(config: &KerasConfig) -> Result<(i64, i64)> {
    Ok((config.size("height")?, config.size("width")?))
}

impl FromKerasConfig for Resizing {
    fn from_keras_config(config: &KerasConfig) -> Result<Self> {
        config.require_channels_last()?;
        let (height, width) = target_size(config)?;
        let interpolation = TfInterpolation::from_keras_name(config.get("interpolation").as_str().unwrap_or("bilinear"))
            .map_err(|e| invalid("interpolation", format!("Resizing: {e}")))?;
        if config.bool_or("antialias", false)? {
            return Err(invalid("antialias", "Resizing with antialias=True is not supported".to_string()));
        }
        let fill_mode = config.get("fill_mode").as_str().unwrap_or("constant");
        if fill_mode != "constant" {
            return Err(invalid("fill_mode", format!("Resizing's fill_mode must be 'constant' (as in Keras), got '{fill_mode}'")));
        }
        let aspect_ratio = match (config.bool_or("crop_to_aspect_ratio", false)?, config.bool_or("pad_to_aspect_ratio", false)?) {
            (false, false) => AspectRatio::Stretch,
            (true, false) => AspectRatio::Crop,
            (false, true) => AspectRatio::Pad { fill_value: config.f64_or("fill_value", 0.0)? },
            (true, true) => {
                return Err(invalid(
                    "pad_to_aspect_ratio",
                    "Resizing: only one of crop_to_aspect_ratio and pad_to_aspect_ratio can be true".to_string(),
                ))
            }
        };
        Ok(Self { height, width, interpolation, aspect_ratio })
    }
}

impl Resizing {
    /// Keras 3's padding: `pad` rows (or columns) of `fill_value` on both sides of the short
    /// axis, `pad` = half the difference to the target's aspect ratio (rounded down).
    fn pad_to_aspect_ratio(&self, xs: &Tensor, fill_value: f64) -> Tensor {
        let size = xs.size();
        let (height, width) = (size[2], size[3]);
        let padded_height = ((width * self.height) as f32 / self.width as f32) as i64;
        let padded_width = ((height * self.width) as f32 / self.height as f32) as i64;
        let pad_rows = ((padded_height.max(height) - height) as f32 / 2.0) as i64;
        let pad_columns = ((padded_width.max(width) - width) as f32 / 2.0) as i64;
        let padding = if pad_rows > 0 {
            [0, 0, pad_rows, pad_rows]
        } else if pad_columns > 0 {
            [pad_columns, pad_columns, 0, 0]
        } else {
            return xs.shallow_clone();
        };
        xs.pad(padding, "constant", fill_value)
    }
}

impl Layer for Resizing {
    fn class_name(&self) -> &'static str {
        "Resizing"
    }

    fn keras_config(&self) -> Value {
        json!({
            "height": self.height,
            "width": self.width,
            "interpolation": self.interpolation.keras_name(),
            "crop_to_aspect_ratio": self.aspect_ratio == AspectRatio::Crop,
        })
    }

    fn keras3_config(&self) -> Value {
        let mut config = self.keras_config();
        let fill_value = match self.aspect_ratio {
            AspectRatio::Pad { fill_value } => fill_value,
            _ => 0.0,
        };
        config["pad_to_aspect_ratio"] = json!(matches!(self.aspect_ratio, AspectRatio::Pad { .. }));
        config["fill_mode"] = json!("constant");
        config["fill_value"] = json!(fill_value);
        config["antialias"] = json!(false);
        config["data_format"] = json!("channels_last");
        config
    }

    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let [_, _, channels] = image_input(self.class_name(), inputs)?;
        Ok(vec![self.height, self.width, channels])
    }

    fn forward(&self, inputs: &[&Tensor], _train: bool) -> Tensor {
        let xs = inputs[0];
        let fitted = match self.aspect_ratio {
            AspectRatio::Stretch => xs.shallow_clone(),
            AspectRatio::Crop => crop_to_aspect_ratio(xs, self.height, self.width),
            AspectRatio::Pad { fill_value } => self.pad_to_aspect_ratio(xs, fill_value),
        };
        resize_last_two_dims(&fitted, self.height, self.width, self.interpolation)
    }
}

/// NCHW images cropped to Keras's `smart_resize` box for a (`height`, `width`) target.
fn crop_to_aspect_ratio(xs: &Tensor, height: i64, width: i64) -> Tensor {
    let size = xs.size();
    let (top, left, crop_height, crop_width) = aspect_ratio_crop(size[2], size[3], height, width);
    xs.narrow(2, top, crop_height).narrow(3, left, crop_width)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CenterCrop {
    pub height: i64,
    pub width: i64,
}

impl FromKerasConfig for CenterCrop {
    fn from_keras_config(config: &KerasConfig) -> Result<Self> {
        config.require_channels_last()?;
        let (height, width) = target_size(config)?;
        Ok(Self { height, width })
    }
}

impl Layer for CenterCrop {
    fn class_name(&self) -> &'static str {
        "CenterCrop"
    }

    fn keras_config(&self) -> Value {
        json!({ "height": self.height, "width": self.width })
    }

    fn keras3_config(&self) -> Value {
        json!({ "height": self.height, "width": self.width, "data_format": "channels_last" })
    }

    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let [_, _, channels] = image_input(self.class_name(), inputs)?;
        Ok(vec![self.height, self.width, channels])
    }

    fn forward(&self, inputs: &[&Tensor], _train: bool) -> Tensor {
        let xs = inputs[0];
        let size = xs.size();
        let (height, width) = (size[2], size[3]);
        if height >= self.height && width >= self.width {
            // Keras's h_diff // 2: the extra row or column goes to the bottom or right.
            return xs.narrow(2, (height - self.height) / 2, self.height).narrow(3, (width - self.width) / 2, self.width);
        }
        let cropped = crop_to_aspect_ratio(xs, self.height, self.width);
        resize_last_two_dims(&cropped, self.height, self.width, TfInterpolation::Bilinear)
    }
}
