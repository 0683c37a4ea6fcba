//! `keras-tch train`: build an architecture (or open a Keras model) and fit it on a course-layout
//! dataset with Keras's semantics, with the progress bar, History files, crash-safe checkpoints
//! (`--resume`), and the trained model saved as a Keras `.h5`.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use keras_tch::data::course::default_dataset_paths;
use keras_tch::imaging::PreprocessMode;
use keras_tch::io::atomic::check_destination;
use keras_tch::io::load_model;
use keras_tch::layers::init;
use keras_tch::models::{Arch, ArchOptions};
use keras_tch::train::data_parallel::DataParallel;
use keras_tch::train::fit::FitOptions;
use keras_tch::train::interrupt::ctrl_c_flag;
use keras_tch::train::job::{
    compile_for, continue_saved_optimizer, fit_and_save, image_input_size, open_training_data, optimizer_for, DataSpec,
};
use keras_tch::train::losses::{CrossEntropyStyle, Loss};
use keras_tch::train::optimizer::{Optimizer, OptimizerKind};

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Architecture to build and train from scratch
    #[arg(long, value_enum, conflicts_with = "model", required_unless_present = "model")]
    pub arch: Option<Arch>,
    /// A Keras model file (.h5 or .keras) to continue training (its compile settings are used)
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Training data: a course-layout .h5, or a folder with one sub-folder per class, streamed
    /// from disk (default: datasets/train_signs.h5, else the default dataset)
    #[arg(long, value_name = "FILE.h5|DIR")]
    pub data: Option<PathBuf>,
    /// Validation data, of the same kind (default: the test file next to the default training data)
    #[arg(long, value_name = "FILE.h5|DIR")]
    pub validation_data: Option<PathBuf>,
    /// Hold out this fraction for validation instead: of a course file, the last samples (Keras's
    /// fit(validation_split=F)); of a folder, the files image_dataset_from_directory(
    /// validation_split=F, seed=SEED) holds out
    #[arg(long, default_value_t = 0.0, value_parser = super::value_parsers::fraction)]
    pub validation_split: f64,
    /// Size H,W folder images are read at (default: the --model's input size, else Keras's 256,256)
    #[arg(long, value_parser = super::image_inputs::parse_size, value_name = "H,W")]
    pub image_size: Option<[u32; 2]>,
    /// preprocess_input mode of the images (default: scale255, the course's X / 255.)
    #[arg(long, value_enum, default_value = "scale255")]
    pub preprocess: PreprocessMode,
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    #[arg(long, default_value_t = 32, value_parser = super::value_parsers::at_least_one_i64)]
    pub batch_size: i64,
    /// Optimizer, with Keras's update rule and defaults (default: the model file's own compiled
    /// optimizer, else adam)
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerKind>,
    /// Learning rate (default: Keras's for the optimizer)
    #[arg(long, value_parser = super::value_parsers::positive_finite)]
    pub lr: Option<f64>,
    /// Adam's epsilon (Keras today: 1e-7; Keras <= 2.1.2 and the course's Adam(epsilon=1e-08): 1e-8)
    #[arg(long, value_parser = super::value_parsers::positive_finite)]
    pub epsilon: Option<f64>,
    /// Start the optimizer afresh instead of from the state a --model file saved (Keras's
    /// equivalent: compile the loaded model again). The saved state is used when training goes
    /// on with the file's own optimizer class; --lr and --epsilon change its settings, not its
    /// state
    #[arg(long)]
    pub reset_optimizer: bool,
    /// Loss (default: the model file's own compiled loss, else chosen from the model's output)
    #[arg(long, value_enum)]
    pub loss: Option<Loss>,
    /// Compute cross-entropy as Keras 2.0/2.1 did (clipped probabilities, as the course ran)
    /// instead of tf.keras 2.x's from-logits
    #[arg(long)]
    pub keras20_loss: bool,
    /// Keep the data in order (Keras's shuffle=False)
    #[arg(long)]
    pub no_shuffle: bool,
    /// Where to save the trained model (Keras HDF5); default runs/<name>/model.h5
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Checkpoint directory (default runs/<name>/checkpoints)
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue from the checkpoint directory's last checkpoint
    #[arg(long)]
    pub resume: bool,
    /// Repository root holding datasets/
    #[arg(long, default_value = ".")]
    pub root: PathBuf,
    #[command(flatten)]
    pub freeze: super::freeze_args::FreezeArgs,
    #[command(flatten)]
    pub run: super::training_run_args::TrainingRunArgs,
    #[command(flatten)]
    pub distributed: super::distributed_args::DistributedTrainingArgs,
}

pub fn run(args: &TrainArgs) -> Result<()> {
    // Under torchrun, one process of a data-parallel job: rank 0 alone prints (the others'
    // stdout goes to /dev/null) and writes.
    let (data_parallel, device) = args.distributed.join(args.run.device.resolve()?)?;
    let chief = data_parallel.as_ref().is_none_or(DataParallel::is_chief);
    let (train_path, validation_path) = data_paths(args)?;
    let model_file = args.model.as_ref().map(|path| load_model(path, device)).transpose()?;
    let spec = DataSpec {
        train: train_path,
        validation: validation_path,
        validation_split: args.validation_split,
        seed: args.run.seed,
        image_size: args.image_size,
        interpolation: args.run.folders.interpolation,
        crop_to_aspect_ratio: args.run.folders.crop_to_aspect_ratio,
        limit: args.run.limit.map(|n| n as usize),
    };
    let data = open_training_data(&spec, model_file.as_ref().and_then(image_input_size))?;
    if data.from_folders {
        let validation = data.validation.as_ref().map_or(0, |v| v.len());
        let training = data.found - validation;
        println!(
            "Found {} files belonging to {} classes; {training} for training, {validation} for validation.",
            data.found,
            data.train.classes().len()
        );
    }
    let classes = data.train.classes().len();
    if args.run.report.report.is_some() && data.validation.is_none() && (data.from_folders || args.validation_split == 0.0) {
        bail!("--report needs validation data (--validation-data or --validation-split)");
    }

    init::seed(args.run.seed);
    let mut model = match (model_file, args.arch) {
        (Some(model), _) => model,
        (None, Some(arch)) => {
            let options = ArchOptions {
                input_shape: <[i64; 3]>::try_from(data.train.input_shape()).ok(),
                classes: Some(output_units(arch, classes)),
                ..Default::default()
            };
            arch.build(&options, device)?
        }
        (None, None) => unreachable!("clap requires --arch or --model"),
    };
    let freeze = args.freeze.spec();
    if !freeze.is_empty() {
        super::freeze_args::apply(&mut model, &freeze)?;
    }
    args.distributed.prepare(&mut model);
    let style = if args.keras20_loss { CrossEntropyStyle::Keras20 } else { CrossEntropyStyle::TfKeras };
    let compile = compile_for(&model, args.loss, style)?;
    compile.check_fits(&model, classes)?;
    let save = args.save.clone().unwrap_or_else(|| args.root.join("runs").join(&model.name).join("model.h5"));
    // Refused now, not after the training: the output must not be an input (e.g. --model).
    check_destination(&save)?;
    let (optimizer_config, note) = optimizer_for(&model, args.optimizer, args.lr, args.epsilon);
    if let (Some(note), true) = (note, chief) {
        eprintln!("note: {note} (--optimizer chooses)");
    }
    let mut optimizer = match args.run.callbacks.schedule(optimizer_config.learning_rate())? {
        Some(schedule) => Optimizer::with_schedule(optimizer_config, schedule),
        None => Optimizer::new(optimizer_config),
    };
    if !args.reset_optimizer {
        if let (Some(said), true) = (continue_saved_optimizer(&model, &mut optimizer), chief) {
            eprintln!("{said}");
        }
    }

    let run_dir = args.root.join("runs").join(&model.name);
    let options = FitOptions {
        epochs: args.epochs,
        batch_size: args.batch_size,
        shuffle: !args.no_shuffle,
        seed: args.run.seed,
        // A folder's split is image_dataset_from_directory's, made when it was opened.
        validation_split: if data.from_folders { 0.0 } else { args.validation_split },
        verbose: args.run.verbose,
        checkpoint_dir: Some(args.checkpoint_dir.clone().unwrap_or_else(|| run_dir.join("checkpoints"))),
        resume: args.resume,
        augmentation: None,
        precision: args.run.precision,
        loading: args.run.folders.loading(device),
        callbacks: args.run.callbacks.callbacks()?,
        class_weight: args.run.class_weight.table(&data.train)?,
        data_parallel,
    };
    let request = args.run.report.request();
    let outcome = fit_and_save(
        &mut model,
        &compile,
        &mut optimizer,
        &data,
        args.preprocess,
        &options,
        &run_dir,
        &save,
        request.as_ref(),
        ctrl_c_flag(),
    )?;
    let report = match (outcome.report, &request) {
        (Some(report), _) => Some(report),
        // No validation data was opened: the report is on the last fraction fit held out.
        (None, Some(_)) => {
            let (train, _) = data.as_the_model_takes(args.preprocess, &compile);
            match train.split_last(options.validation_split).1 {
                Some(held_out) => {
                    let parallel = options.data_parallel.as_ref();
                    args.run.report.evaluate(&model, &compile, &held_out, args.batch_size, &options.loading, parallel)?.1
                }
                None => None,
            }
        }
        (None, None) => None,
    };
    if !chief {
        return Ok(());
    }
    println!("Saved {} (history in {})", save.display(), run_dir.display());
    if let Some(evaluation) = outcome.evaluation {
        evaluation.print_notebook_lines();
    }
    report.map_or(Ok(()), |report| args.run.report.write(&report, false))
}

/// One sigmoid unit for two-class data on the Happy model, else one unit per class.
fn output_units(arch: Arch, classes: usize) -> i64 {
    if arch == Arch::Happy {
        1
    } else {
        classes as i64
    }
}

fn data_paths(args: &TrainArgs) -> Result<(PathBuf, Option<PathBuf>)> {
    match &args.data {
        Some(path) => Ok((path.clone(), args.validation_data.clone())),
        None => {
            let (train, test, description) = default_dataset_paths(&args.root)?;
            println!("Data: {description}");
            let validation = args.validation_data.clone().or((args.validation_split == 0.0).then_some(test));
            Ok((train, validation))
        }
    }
}
