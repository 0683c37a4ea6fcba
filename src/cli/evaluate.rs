//! `keras-tch evaluate`: a Keras model on a course-layout dataset, printed as the notebook does
//! (`Loss = …`, `Test Accuracy = …`), with the loss and metrics of the model's own compile.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::model_source::ModelSource;
use keras_tch::data::course::load_any_split;
use keras_tch::train::compile::CompileConfig;
use keras_tch::train::evaluate::{evaluate, evaluate_learning_phase_1};

#[derive(Args, Debug)]
pub struct EvaluateArgs {
    #[command(flatten)]
    pub source: ModelSource,
    /// Course-layout HDF5 (test_set_x/test_set_y, or train_set_x/train_set_y)
    #[arg(long)]
    pub data: PathBuf,
    /// Print one JSON line {"loss": …, "accuracy": …} instead of the notebook's lines
    #[arg(long)]
    pub json: bool,
    /// Batch size (Keras's evaluate default is 32)
    #[arg(long, default_value_t = 32, value_parser = super::value_parsers::at_least_one_i64)]
    pub batch_size: i64,
    #[command(flatten)]
    pub device: super::device_arg::DeviceArg,
    /// Keras's learning phase: 0 = inference (BatchNorm on its moving statistics); 1 = as the
    /// course notebook ran after K.set_learning_phase(1) (BatchNorm on each batch's statistics),
    /// which is how its published "Test Accuracy = 0.8667" for the pretrained ResNet50.h5 came out
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub learning_phase: u8,
}

pub fn run(args: &EvaluateArgs) -> Result<()> {
    let device = args.device.resolve()?;
    let (split, classes) = load_any_split(&args.data, "test")?;
    let [_, h, w, c] = split.x.shape()[..] else { unreachable!("load_split checks rank 4") };
    let model = args.source.load(Some([h as i64, w as i64, c as i64]), device)?;
    let training = model
        .training_config
        .as_ref()
        .with_context(|| format!("{} has no training configuration (compile) to evaluate with", args.source.model.display()))?;
    let compile = CompileConfig::from_keras(training)?;
    if split.is_empty() {
        bail!("{} holds no images to evaluate on", args.data.display());
    }
    compile.check_fits(&model, classes.len())?;
    let x = split.normalized_images();
    let y = compile.targets(&split, classes.len());
    let result = if args.learning_phase == 1 {
        evaluate_learning_phase_1(&model, &compile, &x, &y, args.batch_size)?
    } else {
        evaluate(&model, &compile, &x, &y, args.batch_size)?
    };
    if args.json {
        println!("{{\"loss\": {}, \"accuracy\": {}}}", result.loss, result.accuracy.map_or("null".into(), |a| a.to_string()));
    } else {
        result.print_notebook_lines();
    }
    Ok(())
}
