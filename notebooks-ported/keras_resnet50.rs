//! The Keras ResNet50 walkthrough (second seed), cell by cell: the blocks and
//! `ResNet50(input_shape=(224, 224, 3), classes=1000, use_dropout=True)` with its summary, then
//! `keras.applications` ResNet50 with ImageNet weights: `load_img` → `img_to_array` →
//! `preprocess_input` → `predict` → `decode_predictions(top=3)`, and feature extraction.
//!
//!     cargo run --release --example keras_resnet50 -- [--weights FILE] [--notop FILE] [IMAGE]
//!
//! Weights default to `weights/resnet50_weights_tf_dim_ordering_tf_kernels{,_notop}.h5`
//! (`scripts/fetch-imagenet-weights.sh`); without them the cells run on random weights and say
//! so. The image defaults to `../shared/data/my_image.jpg`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Parser;
use tch::Device;

use keras_tch::data::imagenet::{format_predictions, ClassIndex};
use keras_tch::graph::{summary::summary, tuple, Model};
use keras_tch::imaging::{img_to_array, load_img, preprocess_input, DecodeOptions, Interpolation, PreprocessMode};
use keras_tch::models::applications::{resnet50, Config, Naming, Pooling};
use keras_tch::models::pretrained::{imagenet_resnet50, Head};
use keras_tch::models::{Arch, ArchOptions};

/// The Keras ResNet50 walkthrough, cell by cell.
#[derive(Parser)]
#[command(about)]
struct Options {
    /// ImageNet ResNet50 weights with the top (default: weights/resnet50_weights_tf_dim_ordering_tf_kernels.h5)
    #[arg(long)]
    weights: Option<PathBuf>,
    /// ImageNet ResNet50 weights without the top, for the features cell (default: the _notop file in weights/)
    #[arg(long)]
    notop: Option<PathBuf>,
    /// The image to classify (default: ../shared/data/my_image.jpg)
    image: Option<PathBuf>,
}

fn main() -> Result<()> {
    keras_tch::runtime::keep_freed_memory();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let options = Options::parse();
    let image = options.image.unwrap_or_else(|| root.join("../shared/data/my_image.jpg"));
    let device = Device::cuda_if_available();

    // ## ResNet50 with the seed's identity_block / conv_block (stride) and use_dropout
    let model = Arch::Resnet50Dropout.build(&ArchOptions::default(), device)?;
    print!("{}", summary(&model));

    // ## keras.applications ResNet50 on your image
    if !image.exists() {
        bail!("no image at {} (give one: cargo run --example keras_resnet50 -- photo.jpg)", image.display());
    }
    let img = load_img(&image, Some((224, 224)), Interpolation::Nearest, &DecodeOptions::default())?;
    let x = preprocess_input(&img_to_array(&img).unsqueeze(0), PreprocessMode::Caffe);
    println!("Input image shape: {}", tuple(&x.size()));
    let top = options.weights.unwrap_or_else(|| root.join("weights/resnet50_weights_tf_dim_ordering_tf_kernels.h5"));
    let classifier = pretrained_or_random(&top, Head::Classifier, device)?;
    let preds = classifier.predict(&x)?;
    let classes = ClassIndex::find()?;
    println!("Predicted: {}", format_predictions(&classes.decode_predictions(&preds, 3)?[0]));

    // ## Feature extraction: include_top=False
    let notop = options.notop.unwrap_or_else(|| root.join("weights/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"));
    let extractor = pretrained_or_random(&notop, Head::Features(Pooling::None), device)?;
    let features = extractor.predict(&x)?;
    println!("{}", tuple(&features.size()));
    println!(
        "(The seed printed (1, 1, 1, 2048): Keras 2.0's ResNet50 ended in AveragePooling2D(7) even without its top. \
         Today's Keras, and this port, return the last block's map; pooling='avg' gives those numbers as (1, 2048).)"
    );
    Ok(())
}

/// The ImageNet model from `path`, or — when the file is not there — the same architecture with
/// random weights, announced.
fn pretrained_or_random(path: &Path, head: Head, device: Device) -> Result<Model> {
    if path.exists() {
        let pretrained = imagenet_resnet50(path, None, head, [224, 224], device)?;
        eprintln!("{}: {}", path.display(), pretrained.report);
        return Ok(pretrained.model);
    }
    println!("(No ImageNet weights at {}: scripts/fetch-imagenet-weights.sh gets them; random weights below.)", path.display());
    let (include_top, pooling) = match head {
        Head::Classifier => (true, Pooling::None),
        Head::Features(pooling) => (false, pooling),
    };
    resnet50(&Config { naming: Naming::Keras, include_top, pooling, classes: 1000, input_shape: [224, 224, 3] }, device)
}
