//! `keras-tch train`: build an architecture (or open a Keras model) and fit it on a course-layout
//! dataset with Keras's semantics, with the progress bar, History files, crash-safe checkpoints
//! (`--resume`), and the trained model saved as a Keras `.h5`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use keras_tch::data::course::{course_dataset, default_dataset_paths};
use keras_tch::data::dataset::Dataset;
use keras_tch::data::folders::{folder_dataset, folder_datasets};
use keras_tch::imaging::PreprocessMode;
use keras_tch::io::atomic::check_destination;
use keras_tch::io::{load_model, save_model_h5};
use keras_tch::layers::init;
use keras_tch::models::{Arch, ArchOptions};
use keras_tch::train::compile::{CompileConfig, TrainingConfig};
use keras_tch::train::evaluate::evaluate_dataset;
use keras_tch::train::fit::{balanced_class_weights, fit_dataset, FitOptions};
use keras_tch::train::interrupt::ctrl_c_flag;
use keras_tch::train::losses::{CrossEntropyStyle, Loss};
use keras_tch::train::optimizer::{Optimizer, OptimizerConfig, OptimizerKind};

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
    /// How folder images are read
    #[command(flatten)]
    pub folders: super::folder_args::FolderArgs,
    #[command(flatten)]
    pub callbacks: super::callback_args::CallbackArgs,
    /// Keras's class_weight: 'balanced' (scikit-learn's compute_class_weight: n_samples /
    /// (n_classes * count)) or CLASS:WEIGHT pairs, e.g. 0:1.0,1:3.5 (unlisted classes: 1.0).
    /// Weights the training loss, as Keras does; not the accuracy, not the validation
    #[arg(long, value_name = "balanced|C:W,...")]
    pub class_weight: Option<String>,
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
    /// Use only the first N training images
    #[arg(long, value_parser = super::value_parsers::at_least_one_i64)]
    pub limit: Option<i64>,
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
}

pub fn run(args: &TrainArgs) -> Result<()> {
    let device = args.run.device.resolve()?;
    let (train_path, validation_path) = data_paths(args)?;
    let model_file = args.model.as_ref().map(|path| load_model(path, device)).transpose()?;
    let from_folders = train_path.is_dir();
    let (train, validation) = if from_folders {
        let model_size = model_file.as_ref().and_then(|m| match m.node(m.inputs()[0]).output_shape[..] {
            [h, w, _] => Some([h as u32, w as u32]),
            _ => None,
        });
        let [h, w] = args.image_size.or(model_size).unwrap_or([256, 256]);
        let reading = args.folders.reading((h, w));
        match &validation_path {
            Some(path) => (folder_dataset(&train_path, reading)?, Some(folder_dataset(path, reading)?)),
            None => folder_datasets(&train_path, args.validation_split, args.run.seed, reading)?,
        }
    } else {
        let validation = validation_path.as_ref().map(|path| course_dataset(path, "test")).transpose()?;
        (course_dataset(&train_path, "train")?, validation)
    };
    if from_folders {
        let validation_count = validation.as_ref().map_or(0, |v| v.len());
        println!(
            "Found {} files belonging to {} classes; {} for training, {validation_count} for validation.",
            train.len() + validation_count,
            train.classes().len(),
            train.len()
        );
    }
    let train = match args.limit {
        Some(limit) => train.take(limit as usize),
        None => train,
    };
    if train.is_empty() {
        bail!("{} holds no training images", train_path.display());
    }
    let classes = train.classes().to_vec();

    init::seed(args.run.seed);
    let mut model = match (model_file, args.arch) {
        (Some(model), _) => model,
        (None, Some(arch)) => {
            let options = ArchOptions {
                input_shape: <[i64; 3]>::try_from(train.input_shape()).ok(),
                classes: Some(output_units(arch, classes.len())),
                ..Default::default()
            };
            arch.build(&options, device)?
        }
        (None, None) => unreachable!("clap requires --arch or --model"),
    };
    let spec = args.freeze.spec();
    if !spec.is_empty() {
        super::freeze_args::apply(&mut model, &spec)?;
    }
    let style = if args.keras20_loss { CrossEntropyStyle::Keras20 } else { CrossEntropyStyle::TfKeras };
    let compile = match (&model.training_config, args.loss) {
        (Some(config), None) => CompileConfig { style, ..CompileConfig::from_keras(config)? },
        (_, loss) => CompileConfig::for_model(&model, loss, style)?,
    };
    compile.check_fits(&model, classes.len())?;
    let save = args.save.clone().unwrap_or_else(|| args.root.join("runs").join(&model.name).join("model.h5"));
    // Refused now, not after the training: the output must not be an input (e.g. --model).
    check_destination(&save)?;
    let mut optimizer_config = match (&model.training_config, args.optimizer, args.lr) {
        (Some(config), None, None) => TrainingConfig::from_keras(config).map(|file| file.optimizer).unwrap_or_else(|why| {
            eprintln!("note: {why:#}; training with Keras's Adam() instead (--optimizer chooses)");
            OptimizerConfig::adam(1e-3)
        }),
        (_, kind, lr) => OptimizerConfig::with_defaults(kind.unwrap_or(OptimizerKind::Adam), lr),
    };
    if let (Some(eps), OptimizerConfig::Adam { epsilon, .. }) = (args.epsilon, &mut optimizer_config) {
        *epsilon = eps;
    }
    let mut optimizer = match args.callbacks.schedule(optimizer_config.learning_rate())? {
        Some(schedule) => Optimizer::with_schedule(optimizer_config, schedule),
        None => Optimizer::new(optimizer_config),
    };

    let run_dir = args.root.join("runs").join(&model.name);
    let options = FitOptions {
        epochs: args.epochs,
        batch_size: args.batch_size,
        shuffle: !args.no_shuffle,
        seed: args.run.seed,
        // A folder's split is image_dataset_from_directory's, made above.
        validation_split: if from_folders { 0.0 } else { args.validation_split },
        verbose: args.run.verbose,
        checkpoint_dir: Some(args.checkpoint_dir.clone().unwrap_or_else(|| run_dir.join("checkpoints"))),
        resume: args.resume,
        augmentation: None,
        precision: args.run.precision,
        loading: args.folders.loading(device),
        callbacks: args.callbacks.callbacks()?,
        class_weight: args.class_weight.as_deref().map(|text| class_weight(text, &train)).transpose()?,
    };
    let as_the_model_takes = |data: Dataset| data.with_preprocessing(args.preprocess).with_label_mode(compile.label_mode());
    let train = as_the_model_takes(train);
    let validation = validation.map(as_the_model_takes);
    let history = fit_dataset(&mut model, &compile, &mut optimizer, &train, validation.as_ref(), &options, ctrl_c_flag())?;

    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    history.save_json(&run_dir.join("history.json"))?;
    history.save_csv(&run_dir.join("history.csv"))?;
    keras_tch::train::curves::save_curves(&history, &run_dir.join("curves.png"))?;
    model.training_config = Some(compile.training_config(&optimizer.config));
    save_model_h5(&model, &save)?;
    println!("Saved {} (history in {})", save.display(), run_dir.display());
    if let Some(validation) = &validation {
        evaluate_dataset(&model, &compile, validation, 32, &options.loading)?.print_notebook_lines();
    }
    Ok(())
}

/// `--class-weight`: 'balanced' from the training labels, or explicit CLASS:WEIGHT pairs.
fn class_weight(text: &str, train: &Dataset) -> Result<Vec<f64>> {
    if text == "balanced" {
        let labels: Vec<i64> = Vec::try_from(train.labels()?.to_kind(tch::Kind::Int64).flatten(0, -1))?;
        let table = balanced_class_weights(&labels)?;
        println!(
            "Class weights (balanced): {}",
            table.iter().enumerate().map(|(c, w)| format!("{c}: {w:.4}")).collect::<Vec<_>>().join(", ")
        );
        return Ok(table);
    }
    let mut table = Vec::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let parsed = pair.split_once(':').and_then(|(c, w)| Some((c.trim().parse::<usize>().ok()?, w.trim().parse::<f64>().ok()?)));
        let Some((class, weight)) = parsed.filter(|(_, w)| w.is_finite() && *w >= 0.0) else {
            bail!("--class-weight: '{pair}' is not CLASS:WEIGHT (a class index and a weight of at least 0)");
        };
        if class >= table.len() {
            table.resize(class + 1, 1.0);
        }
        table[class] = weight;
    }
    Ok(table)
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
