//! `keras-tch predict`: a Keras model's outputs for a float32 NHWC `.npy`, batch by batch.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use tch::Tensor;

use super::model_source::ModelSource;
use super::precision_arg::PrecisionArg;
use keras_tch::io::atomic::check_destination;
use keras_tch::io::npy::{read_npy, write_npy};

#[derive(Args, Debug)]
pub struct PredictArgs {
    #[command(flatten)]
    pub source: ModelSource,
    /// Input images: float32 .npy of shape (N, H, W, C), already preprocessed as the model expects
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write the outputs (float32 .npy)
    #[arg(long)]
    pub output: PathBuf,
    #[command(flatten)]
    pub device: super::device_arg::DeviceArg,
    /// Images per forward pass (Keras's predict default is 32)
    #[arg(long, default_value_t = 32, value_parser = super::value_parsers::at_least_one_i64)]
    pub batch_size: i64,
    #[command(flatten)]
    pub precision: PrecisionArg,
}

pub fn run(args: &PredictArgs) -> Result<()> {
    let device = args.device.resolve()?;
    let x = read_npy(&args.input)?;
    let size = x.size();
    let [n, h, w, c] = size[..] else {
        bail!("{}: expected images of shape (N, H, W, C), got {:?}", args.input.display(), size);
    };
    if n == 0 {
        bail!("{} holds no images (shape {:?}); nothing to predict", args.input.display(), size);
    }
    let loaded = args.source.load(Some([h, w, c]), device)?;
    // Refused before the work: the output must not be the model or the input.
    check_destination(&args.output)?;
    let model = args.precision.prepare(&loaded);
    let batch = args.batch_size;
    let outputs = (0..size[0])
        .step_by(batch as usize)
        .map(|start| model.predict(&x.narrow(0, start, batch.min(size[0] - start))).map(|y| y.to_device(tch::Device::Cpu)))
        .collect::<Result<Vec<_>>>()?;
    let y = Tensor::cat(&outputs, 0);
    write_npy(&args.output, &y)?;
    eprintln!("wrote {} of shape {:?}", args.output.display(), y.size());
    Ok(())
}
