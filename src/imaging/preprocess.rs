//! `img_to_array` and `preprocess_input` (`keras/src/applications/imagenet_utils.py`), on
//! channels-last float32 tensors as Keras computes them.

use clap::ValueEnum;
use image::RgbImage;
use tch::{Kind, Tensor};

/// Keras's `preprocess_input` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PreprocessMode {
    /// RGB -> BGR, then subtract the ImageNet mean [103.939, 116.779, 123.68] (ResNet50, VGG).
    Caffe,
    /// Scale to [-1, 1]: x / 127.5 - 1 (Inception, MobileNet).
    Tf,
    /// Scale to [0, 1], then the ImageNet mean/std per RGB channel (DenseNet).
    Torch,
    /// x / 255, as the course notebooks feed their own networks.
    Scale255,
    /// The pixels as they are, 0-255.
    None,
}

impl PreprocessMode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Caffe => "caffe",
            Self::Tf => "tf",
            Self::Torch => "torch",
            Self::Scale255 => "scale255",
            Self::None => "none",
        }
    }
}

impl PreprocessMode {
    /// How much one pixel level (of 0-255) moves the preprocessed value (torch: the mean of its
    /// per-channel scales), to express augmentation shifts in pixel levels.
    pub fn pixel_scale(self) -> f64 {
        match self {
            Self::Caffe | Self::None => 1.0,
            Self::Tf => 1.0 / 127.5,
            Self::Torch => 1.0 / (255.0 * 0.226),
            Self::Scale255 => 1.0 / 255.0,
        }
    }
}

/// Keras's `img_to_array`: float32 (H, W, 3), values 0-255.
pub fn img_to_array(image: &RgbImage) -> Tensor {
    let (w, h) = image.dimensions();
    Tensor::from_slice(image.as_raw()).view([h as i64, w as i64, 3]).to_kind(Kind::Float)
}

/// Keras's `preprocess_input(x, mode=…)` on a float32 tensor whose last axis is RGB.
pub fn preprocess_input(x: &Tensor, mode: PreprocessMode) -> Tensor {
    let x = x.to_kind(Kind::Float);
    match mode {
        PreprocessMode::Caffe => {
            let mean = channel_constants(&[103.939, 116.779, 123.68], &x);
            x.flip([-1]) - mean
        }
        PreprocessMode::Tf => x / 127.5 - 1.0,
        PreprocessMode::Torch => {
            let (mean, std) = (channel_constants(&[0.485, 0.456, 0.406], &x), channel_constants(&[0.229, 0.224, 0.225], &x));
            (x / 255.0 - mean) / std
        }
        PreprocessMode::Scale255 => x / 255.0,
        PreprocessMode::None => x,
    }
}

/// Per-channel constants as float32 (Keras subtracts Python floats from float32 arrays, which
/// numpy does in float32), on the same device as `like`.
fn channel_constants(values: &[f64; 3], like: &Tensor) -> Tensor {
    Tensor::from_slice(&values.map(|v| v as f32)).to_device(like.device())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caffe_is_bgr_minus_mean() {
        let image = RgbImage::from_raw(1, 1, vec![10, 20, 30]).unwrap();
        let x = preprocess_input(&img_to_array(&image), PreprocessMode::Caffe);
        let values: Vec<f32> = Vec::try_from(x.flatten(0, -1)).unwrap();
        assert_eq!(values, vec![30.0 - 103.939, 20.0 - 116.779, 10.0 - 123.68]);
    }
}
