//! `keras-tch evaluate`: a Keras model on a course-layout dataset, printed as the notebook does
//! (`Loss = …`, `Test Accuracy = …`), with the loss and metrics of the model's own compile.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::model_source::ModelSource;
use keras_tch::data::course_file::course_dataset;
use keras_tch::data::folders::folder_dataset;
use keras_tch::imaging::PreprocessMode;
use keras_tch::train::compile::CompileConfig;
use keras_tch::train::evaluate::evaluate_dataset_learning_phase_1;

#[derive(Args, Debug)]
pub struct EvaluateArgs {
    #[command(flatten)]
    pub source: ModelSource,
    /// Course-layout HDF5 (test_set_x/test_set_y, or train_set_x/train_set_y), or a folder with
    /// one sub-folder per class (read at the model's input size)
    #[arg(long, value_name = "FILE.h5|DIR")]
    pub data: PathBuf,
    /// preprocess_input mode of the images (default: scale255, the course's X / 255.)
    #[arg(long, value_enum, default_value = "scale255")]
    pub preprocess: PreprocessMode,
    /// How folder images are read
    #[command(flatten)]
    pub folders: super::folder_args::FolderArgs,
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
    #[command(flatten)]
    pub report: super::report_args::ReportArgs,
}

pub fn run(args: &EvaluateArgs) -> Result<()> {
    let device = args.device.resolve()?;
    let (data, input_shape) = if args.data.is_dir() {
        (None, None)
    } else {
        let data = course_dataset(&args.data, "test")?;
        let shape = <[i64; 3]>::try_from(data.input_shape()).ok();
        (Some(data), shape)
    };
    let model = args.source.load(input_shape, device)?;
    let data = match data {
        Some(data) => data,
        None => {
            let size = match model.node(model.inputs()[0]).output_shape[..] {
                [h, w, _] => (h as u32, w as u32),
                ref other => bail!("model '{}' takes inputs of shape {other:?}, not images (H, W, C)", model.name),
            };
            folder_dataset(&args.data, args.folders.reading(size))?
        }
    };
    let training = model
        .training_config
        .as_ref()
        .with_context(|| format!("{} has no training configuration (compile) to evaluate with", args.source.model.display()))?;
    let compile = CompileConfig::from_keras(training)?;
    if data.is_empty() {
        bail!("{} holds no images to evaluate on", args.data.display());
    }
    compile.check_fits(&model, data.classes().len())?;
    let data = data.with_preprocessing(args.preprocess).with_label_mode(compile.label_mode());
    let loading = args.folders.loading(device);
    let (result, report) = if args.learning_phase == 1 {
        let result = evaluate_dataset_learning_phase_1(&model, &compile, &data, args.batch_size, &loading)?;
        // The report describes the model as it predicts (inference mode), in a pass of its own.
        let report = match args.report.request() {
            Some(_) => args.report.evaluate(&model, &compile, &data, args.batch_size, &loading, None)?.1,
            None => None,
        };
        (result, report)
    } else {
        args.report.evaluate(&model, &compile, &data, args.batch_size, &loading, None)?
    };
    if args.json {
        println!("{{\"loss\": {}, \"accuracy\": {}}}", result.loss, result.accuracy.map_or("null".into(), |a| a.to_string()));
    } else {
        result.print_notebook_lines();
    }
    report.map_or(Ok(()), |report| args.report.write(&report, args.json))
}
