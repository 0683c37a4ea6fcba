//! `keras-tch transfer`: a pretrained base from any Keras file, its top replaced by a new
//! classifier for the user's classes, trained with the base frozen (on cached bottleneck
//! features), optionally fine-tuned, and saved as a Keras HDF5 with its class names.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;

use super::freeze_args::FreezeArgs;
use keras_tch::data::dataset::{Dataset, LabelMode};
use keras_tch::graph::optimizer_state::SavedOptimizerState;
use keras_tch::graph::summary::summary;
use keras_tch::imaging::PreprocessMode;
use keras_tch::io::atomic::check_destination;
use keras_tch::layers::pooling::PoolKind;
use keras_tch::models::transfer::NewHead;
use keras_tch::train::augment::Augmentation;
use keras_tch::train::data_parallel::DataParallel;
use keras_tch::train::interrupt::ctrl_c_flag;
use keras_tch::train::job::DataSpec;
use keras_tch::train::transfer::{train_transfer, TransferData, TransferOptions};
use keras_tch::train::transfer_job::{open_transfer, save_transfer_model, transfer_compile, transfer_model, OpenedTransfer};

#[derive(Args, Debug)]
pub struct TransferArgs {
    /// The pretrained base: an ImageNet ResNet50 checkpoint (either naming), a model.save .h5
    /// (e.g. the course's ResNet50.h5) or a Keras 3 .keras; its top is replaced
    #[arg(long)]
    pub base: PathBuf,
    /// Training images: a folder with one sub-folder per class, or a course-layout .h5
    #[arg(long, value_name = "DIR|FILE.h5")]
    pub data: PathBuf,
    /// Validation images (same kinds); default: --validation-split of --data, or, for a course
    /// file, the test split of the file next to it when it exists
    #[arg(long, value_name = "DIR|FILE.h5")]
    pub validation_data: Option<PathBuf>,
    /// Hold out this fraction of a folder dataset for validation: the files Keras's
    /// image_dataset_from_directory(validation_split=F, seed=SEED) holds out
    #[arg(long, default_value_t = 0.2, value_parser = super::value_parsers::fraction)]
    pub validation_split: f64,
    /// Where the trained model goes (Keras HDF5; the class names go next to it, OUT.classes.txt)
    #[arg(long, value_name = "OUT.h5")]
    pub save: PathBuf,
    /// Layer whose output the new head reads (default: the base's last image-shaped output)
    #[arg(long, value_name = "LAYER")]
    pub base_output: Option<String>,
    /// Global pooling of the new head
    #[arg(long, value_enum, default_value = "avg")]
    pub pooling: PoolKind,
    /// Dropout rate before the new Dense layer (0 = no Dropout layer)
    #[arg(long, default_value_t = 0.0, value_parser = super::value_parsers::fraction)]
    pub dropout: f64,
    /// Which base layers stay frozen (default: all of them, which enables the feature cache)
    #[command(flatten)]
    pub freeze: FreezeArgs,
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    #[arg(long, default_value_t = 32, value_parser = super::value_parsers::at_least_one_i64)]
    pub batch_size: i64,
    /// Adam's learning rate for the head
    #[arg(long, default_value_t = 1e-3, value_parser = super::value_parsers::positive_finite)]
    pub lr: f64,
    /// Then fine-tune the top N ResNet stages (their BatchNorm stays frozen)...
    #[arg(long, default_value_t = 0)]
    pub fine_tune_stages: usize,
    /// ... for this many epochs ...
    #[arg(long, default_value_t = 0)]
    pub fine_tune_epochs: usize,
    /// ... at this learning rate
    #[arg(long, default_value_t = 1e-5, value_parser = super::value_parsers::positive_finite)]
    pub fine_tune_lr: f64,
    /// Input size H,W for folder images (default: the base's input size; 224,224 for checkpoints)
    #[arg(long, value_parser = super::image_inputs::parse_size, value_name = "H,W")]
    pub target_size: Option<[u32; 2]>,
    /// preprocess_input mode (default: caffe for ImageNet checkpoints; none for a model that starts
    /// with its own Rescaling layer, as Keras's transfer-learning guide builds it; scale255 for other
    /// model files)
    #[arg(long, value_enum)]
    pub preprocess: Option<PreprocessMode>,
    /// Where histories, curves and checkpoints go (default: runs/<model>)
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Feature cache folder (default: RUN_DIR/feature-cache)
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Train the head on the images every epoch instead of on cached features
    #[arg(long)]
    pub no_cache: bool,
    /// Augment: mirror left-right at random (turns the feature cache off)
    #[arg(long)]
    pub flip: bool,
    /// Augment: random crops of (1 - F) to 1 of each side, resized back (e.g. 0.1)
    #[arg(long, default_value_t = 0.0, value_name = "F")]
    pub crop: f64,
    /// Augment: random rotations of up to ± DEG degrees
    #[arg(long, default_value_t = 0.0, value_name = "DEG")]
    pub rotation: f64,
    /// Augment: random per-channel colour shifts of up to ± L pixel levels (Keras's channel_shift_range)
    #[arg(long, default_value_t = 0.0, value_name = "L")]
    pub channel_shift: f64,
    /// Print the new model's Keras summary table (after freezing: trainable / non-trainable)
    #[arg(long)]
    pub summary: bool,
    #[command(flatten)]
    pub run: super::training_run_args::TrainingRunArgs,
    #[command(flatten)]
    pub distributed: super::distributed_args::DistributedTrainingArgs,
}

pub fn run(args: &TransferArgs) -> Result<()> {
    if args.run.callbacks.lr_schedule.is_some() {
        bail!("--lr-schedule applies to train; transfer trains with --lr, then fine-tunes with --fine-tune-lr");
    }
    // Under torchrun, one process of a data-parallel job: rank 0 alone prints and writes.
    let (data_parallel, device) = args.distributed.join(args.run.device.resolve()?)?;
    let chief = data_parallel.as_ref().is_none_or(DataParallel::is_chief);
    // --seed promises a seeded initialisation: of the new head (and of the base before its
    // weights are loaded), as `train` seeds its architecture.
    keras_tch::layers::init::seed(args.run.seed);
    let spec = DataSpec {
        train: args.data.clone(),
        validation: args.validation_data.clone(),
        validation_split: args.validation_split,
        seed: args.run.seed,
        image_size: args.target_size,
        interpolation: args.run.folders.interpolation,
        crop_to_aspect_ratio: args.run.folders.crop_to_aspect_ratio,
        limit: args.run.limit.map(|n| n as usize),
    };
    let OpenedTransfer { base, train, validation } = open_transfer(&spec, &args.base, device)?;
    if let Some(report) = &base.report {
        println!("Base {}: {report}", args.base.display());
    }
    // Refused before the work: --save must not be the base or a data file.
    check_destination(&args.save)?;
    if args.run.report.report.is_some() && validation.is_none() {
        bail!("--report needs validation data (--validation-data, --validation-split, or a test_*.h5 beside a course file)");
    }
    let mode = args.preprocess.unwrap_or(match (base.imagenet_checkpoint, base.model.rescales_its_input()) {
        (true, _) => PreprocessMode::Caffe,
        (false, true) => PreprocessMode::None,
        (false, false) => PreprocessMode::Scale255,
    });
    println!(
        "Data: {} training image(s){}, classes {:?}; preprocess_input mode '{}'",
        train.len(),
        validation.as_ref().map_or(String::new(), |v| format!(", {} validation", v.len())),
        train.classes(),
        mode.name()
    );

    let head = NewHead { pooling: args.pooling, dropout: args.dropout, classes: train.classes().len() as i64 };
    let spec = args.freeze.spec();
    let built = transfer_model(base.model, args.base_output.as_deref(), &head, (!spec.is_empty()).then_some(&spec))?;
    if !built.dropped.is_empty() {
        println!("Replaced the top: dropped {}; new head {}", built.dropped.join(", "), built.head_names.join(", "));
    }
    let mut model = built.model;
    args.distributed.prepare(&mut model);
    super::freeze_args::print_frozen(&model, &built.frozen);
    if args.summary {
        print!("{}", summary(&model));
    }

    let as_the_model_takes = |data: Dataset| data.with_preprocessing(mode).with_label_mode(LabelMode::Categorical);
    let data = TransferData { train: as_the_model_takes(train.clone()), validation: validation.map(as_the_model_takes) };
    let run_dir = args.run_dir.clone().unwrap_or_else(|| Path::new("runs").join(&model.name));
    let options = TransferOptions {
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: args.lr,
        seed: args.run.seed,
        verbose: args.run.verbose,
        cache_dir: (!args.no_cache).then(|| args.cache_dir.clone().unwrap_or_else(|| run_dir.join("feature-cache"))),
        fine_tune_stages: args.fine_tune_stages,
        fine_tune_epochs: args.fine_tune_epochs,
        fine_tune_learning_rate: args.fine_tune_lr,
        augmentation: Augmentation {
            flip: args.flip,
            crop: args.crop,
            rotation_degrees: args.rotation,
            channel_shift: args.channel_shift * mode.pixel_scale(),
            seed: args.run.seed,
        },
        run_dir: Some(run_dir.clone()),
        precision: args.run.precision,
        loading: args.run.folders.loading(device),
        callbacks: args.run.callbacks.callbacks()?,
        class_weight: args.run.class_weight.table(&train)?,
        data_parallel,
    };
    let report = train_transfer(&mut model, &built.head, &data, &options, ctrl_c_flag())?;
    match &report.cache {
        Some((path, true)) => println!("Reused cached bottleneck features {}", path.display()),
        Some((path, false)) => println!("Computed bottleneck features once, cached in {}", path.display()),
        None => println!("Trained on the images (the base is not entirely frozen, augmentation is on, or --no-cache)"),
    }

    let compile = if chief {
        let learning_rate = if report.fine_tune_history.is_some() { args.fine_tune_lr } else { args.lr };
        // Saved with its optimizer's state, as Keras's model.save after fit: training goes on from it.
        model.optimizer_state = SavedOptimizerState::Restorable(report.optimizer_state);
        let (compile, classes_path) = save_transfer_model(&mut model, train.classes(), &args.save, learning_rate)?;
        println!("Saved {} (class names in {})", args.save.display(), classes_path.display());
        compile
    } else {
        transfer_compile(&model)?
    };
    if let Some(validation) = &data.validation {
        // Under torchrun every process evaluates its share; rank 0 prints and writes.
        let parallel = options.data_parallel.as_ref();
        let (evaluation, report) = args.run.report.evaluate(&model, &compile, validation, args.batch_size, &options.loading, parallel)?;
        if chief {
            evaluation.print_notebook_lines();
            if let Some(report) = report {
                args.run.report.write(&report, false)?;
            }
        }
    }
    Ok(())
}
