//! `keras-tch convert IN OUT`: between Keras HDF5 (full model or weights only), Keras 3 `.keras`
//! and `.weights.h5`, and safetensors, chosen by OUT's extension.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use super::model_source::ModelSource;
use keras_tch::io::safetensors::save_safetensors;
use keras_tch::io::{save_model_h5, save_model_keras, save_weights_h5, save_weights_keras3};

#[derive(Args, Debug)]
pub struct ConvertArgs {
    #[command(flatten)]
    pub source: ModelSource,
    /// Output: .h5 (Keras 2 full model, or weights only with --weights-only), .keras (Keras 3 model),
    /// .weights.h5 (Keras 3 weights, for Keras 3's model.load_weights), or .safetensors
    pub output: PathBuf,
    /// Write only the weights to the .h5, in tf.keras's save_weights layout (the ImageNet checkpoints';
    /// for resnet18/resnet34, the layout the TF2 tutorial's subclassed model saves and reads)
    #[arg(long)]
    pub weights_only: bool,
    /// Input shape H,W,C for --arch (default: the architecture's)
    #[arg(long, value_parser = crate::parse_input_shape)]
    pub input_shape: Option<[i64; 3]>,
}

pub fn run(args: &ConvertArgs) -> Result<()> {
    let model = args.source.load(args.input_shape, tch::Device::Cpu)?;
    let name = args.output.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".safetensors") {
        save_safetensors(&model, &args.output)?;
    } else if name.ends_with(".weights.h5") {
        // Keras 3 reads a file with this suffix as its own layout, whatever it holds.
        save_weights_keras3(&model, &args.output)?;
    } else if name.ends_with(".h5") && args.weights_only {
        save_weights_h5(&model, &args.output)?;
    } else if name.ends_with(".h5") || name.ends_with(".hdf5") {
        save_model_h5(&model, &args.output)?;
    } else if name.ends_with(".keras") {
        save_model_keras(&model, &args.output)?;
    } else {
        bail!("{}: unknown output format; use .h5, .weights.h5, .keras or .safetensors", args.output.display());
    }
    eprintln!("wrote {}", args.output.display());
    Ok(())
}
