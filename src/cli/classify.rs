//! `keras-tch classify`: ImageNet top-k for photos, as `keras.applications.resnet50` gives them
//! (`load_img` → `img_to_array` → `preprocess_input` → `predict` → `decode_predictions`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;

use super::distributed_args::DistributedArgs;
use super::image_inputs::ImageInputArgs;
use super::precision_arg::PrecisionArg;
use super::pretrained_source::PretrainedSource;
use keras_tch::data::imagenet::{format_predictions, ClassIndex, Prediction};
use keras_tch::models::pretrained::Head;

#[derive(Args, Debug)]
pub struct ClassifyArgs {
    #[command(flatten)]
    pub source: PretrainedSource,
    /// How many classes to show per image (decode_predictions' top)
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// One JSON line per image: {"image": …, "predictions": [[wnid, label, p], …]} (or "error")
    #[arg(long)]
    pub json: bool,
    /// Keras's imagenet_class_index.json (default: weights/imagenet_class_index.json, made by setup)
    #[arg(long)]
    pub class_index: Option<PathBuf>,
    #[command(flatten)]
    pub precision: PrecisionArg,
    #[command(flatten)]
    pub images: ImageInputArgs,
    #[command(flatten)]
    pub distributed: DistributedArgs,
}

pub fn run(args: &ClassifyArgs) -> Result<()> {
    // Under torchrun the photos are shared out between the processes; rank 0 prints.
    let (parallel, device) = args.distributed.join(args.images.device.resolve()?)?;
    let classes = match &args.class_index {
        Some(path) => ClassIndex::load(path)?,
        None => ClassIndex::find()?,
    };
    let files = args.images.files()?;
    let loaded = args.source.load(Head::Classifier, args.images.input_size(), device)?.model;
    let model = args.precision.prepare(&loaded);
    // With a single file the output is exactly Keras's line; with several, each names its image.
    let name_each = files.len() > 1;
    let (mut failures, mut hint) = (0, None);
    let row_shape = loaded.node(loaded.outputs()[0]).output_shape.clone();
    // Results in the order the files were given, failures in their place.
    args.images.for_each_output(
        &files,
        device,
        parallel.as_ref(),
        &row_shape,
        |x| model.predict(x),
        |path, outcome, progress| {
            progress.clear();
            match outcome {
                Ok(probabilities) => {
                    let predictions = classes.decode_predictions(&probabilities.unsqueeze(0), args.top)?;
                    print_predictions(path, &predictions[0], args.json, name_each);
                }
                Err(error) => {
                    failures += 1;
                    hint = hint.or_else(|| super::flag_hints::flag_hint(&error));
                    report_failure(path, &error, args.json);
                }
            }
            Ok(())
        },
    )?;
    if failures > 0 {
        if let Some(hint) = hint {
            eprintln!("help: {hint}");
        }
        bail!("{failures} of {} image(s) could not be classified (see above)", files.len());
    }
    Ok(())
}

fn print_predictions(path: &Path, predictions: &[Prediction], json: bool, name_each: bool) {
    if json {
        let rows: Vec<_> = predictions.iter().map(|p| serde_json::json!([p.wnid, p.label, shortest_f64(p.probability)])).collect();
        println!("{}", serde_json::json!({"image": path.display().to_string(), "predictions": rows}));
    } else if name_each {
        println!("{}: Predicted: {}", path.display(), format_predictions(predictions));
    } else {
        println!("Predicted: {}", format_predictions(predictions));
    }
}

/// The f64 nearest to the f32's shortest decimal form, so JSON shows `0.81218076` (as Keras's
/// float32 prints) rather than the f32's exact binary value `0.8121807575225830`.
fn shortest_f64(value: f32) -> f64 {
    value.to_string().parse().unwrap_or(value as f64)
}

fn report_failure(path: &Path, error: &anyhow::Error, json: bool) {
    eprintln!("error: {error:#}");
    if json {
        println!("{}", serde_json::json!({"image": path.display().to_string(), "error": format!("{error:#}")}));
    }
}
