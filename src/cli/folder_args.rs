//! How `train` and `transfer` read a class-per-folder dataset: the resize filter, cropping to
//! the aspect ratio, and the worker threads that decode batches ahead of training.

use clap::Args;
use tch::Device;

use keras_tch::data::loader::Loading;
use keras_tch::imaging::{ImageReading, Interpolation};

#[derive(Args, Debug)]
pub struct FolderArgs {
    /// Resize filter for folder images. Images are read as Keras's load_img and
    /// flow_from_directory read them (Pillow's filters), whose default is nearest;
    /// image_dataset_from_directory's default is bilinear through tf.image.resize, which this
    /// port does not reproduce pixel for pixel
    #[arg(long, value_enum, default_value = "nearest")]
    pub interpolation: Interpolation,
    /// Centre-crop each folder image to the target's aspect ratio before resizing, instead of
    /// squashing it (Keras's crop_to_aspect_ratio)
    #[arg(long)]
    pub crop_to_aspect_ratio: bool,
    /// Threads decoding folder images ahead of training, 0 = on the training thread (default:
    /// on a CPU device, the cores libtorch leaves free — none when it uses them all, as decoding
    /// beside it measured slower; with CUDA, up to 4)
    #[arg(long)]
    pub workers: Option<usize>,
    /// Batches decoded ahead at most: memory holds this many batches of images, whatever the
    /// dataset's size
    #[arg(long, default_value_t = Loading::default().prefetch, value_parser = super::value_parsers::at_least_one_usize)]
    pub prefetch: usize,
}

impl FolderArgs {
    pub fn reading(&self, image_size: (u32, u32)) -> ImageReading {
        ImageReading::new(image_size, self.interpolation).with_crop_to_aspect_ratio(self.crop_to_aspect_ratio)
    }

    /// How to read batches for a model on `device`.
    pub fn loading(&self, device: Device) -> Loading {
        Loading { workers: self.workers.unwrap_or(Loading::for_device(device).workers), prefetch: self.prefetch }
    }
}
