//! `keras-tch features`: ResNet50's convolutional features for photos (`include_top=False`,
//! `pooling=None|avg|max`), written as float32 .npy with the image names beside them.
//!
//! Today's Keras returns the last block's map without pooling: (N, 7, 7, 2048) at 224×224. The
//! Keras 2.0-era `ResNet50` (keras-applications ≤ 1.0.8) always applied `AveragePooling2D(7)`,
//! so its `include_top=False` output was (N, 1, 1, 2048); this port follows today's Keras —
//! `--pooling avg` gives those same numbers as (N, 2048).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use tch::Tensor;

use super::distributed_args::DistributedArgs;
use super::image_inputs::ImageInputArgs;
use super::precision_arg::PrecisionArg;
use super::pretrained_source::PretrainedSource;
use keras_tch::graph::tuple;
use keras_tch::io::atomic::{same_destination, write_bytes_atomically};
use keras_tch::io::npy::write_npy;
use keras_tch::layers::pooling::parse_pooling;
use keras_tch::models::applications::Pooling;
use keras_tch::models::pretrained::Head;

#[derive(Args, Debug)]
pub struct FeaturesArgs {
    #[command(flatten)]
    pub source: PretrainedSource,
    /// Keras's pooling: none keeps (N, 7, 7, 2048) at 224×224; avg or max give (N, 2048)
    #[arg(long, value_parser = parse_pooling, default_value = "none", value_name = "none|avg|max")]
    pub pooling: Pooling,
    /// Where to write the features (float32 .npy, one row per image that loaded)
    #[arg(long)]
    pub output: PathBuf,
    /// Where to write the image names, one per line in row order (default: OUTPUT with .txt)
    #[arg(long)]
    pub names: Option<PathBuf>,
    #[command(flatten)]
    pub precision: PrecisionArg,
    #[command(flatten)]
    pub images: ImageInputArgs,
    #[command(flatten)]
    pub distributed: DistributedArgs,
}

pub fn run(args: &FeaturesArgs) -> Result<()> {
    // Under torchrun the photos are shared out between the processes; rank 0 writes.
    let (parallel, device) = args.distributed.join(args.images.device.resolve()?)?;
    let pooling = args.pooling;
    let files = args.images.files()?;
    let names_path = args.names.clone().unwrap_or_else(|| args.output.with_extension("txt"));
    if same_destination(&names_path, &args.output) {
        bail!("--names and --output are the same file ({}); give them different paths", args.output.display());
    }
    if let Some(image) = files.iter().find(|f| same_destination(f, &args.output) || same_destination(f, &names_path)) {
        bail!("refusing to write over the input image {}; choose another --output/--names", image.display());
    }
    let loaded = args.source.load(Head::Features(pooling), args.images.input_size(), device)?.model;
    let model = args.precision.prepare(&loaded);
    let (mut rows, mut names, mut failures, mut hint) = (Vec::new(), Vec::new(), 0, None);
    let row_shape = loaded.node(loaded.outputs()[0]).output_shape.clone();
    args.images.for_each_output(
        &files,
        device,
        parallel.as_ref(),
        &row_shape,
        |x| model.predict(x),
        |path, outcome, progress| {
            match outcome {
                Ok(row) => {
                    rows.push(row.unsqueeze(0));
                    names.push(path.display().to_string());
                }
                Err(error) => {
                    progress.clear();
                    failures += 1;
                    hint = hint.or_else(|| super::flag_hints::flag_hint(&error));
                    eprintln!("error: {error:#}");
                }
            }
            Ok(())
        },
    )?;
    if parallel.as_ref().is_some_and(|parallel| !parallel.is_chief()) {
        return Ok(());
    }
    if rows.is_empty() {
        bail!("none of the {} image(s) could be loaded; nothing written", files.len());
    }
    let features = Tensor::cat(&rows, 0);
    write_npy(&args.output, &features)?;
    write_bytes_atomically(&names_path, (names.join("\n") + "\n").as_bytes())?;
    eprintln!("features {} -> {}; image names -> {}", tuple(&features.size()), args.output.display(), names_path.display());
    if failures > 0 {
        if let Some(hint) = hint {
            eprintln!("help: {hint}");
        }
        bail!("{failures} of {} image(s) could not be loaded and are not in the output (see above)", files.len());
    }
    Ok(())
}
