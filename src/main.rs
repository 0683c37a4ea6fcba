//! `keras-tch`: the command line. Each subcommand is a thin wrapper over the library.

mod cli;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use keras_tch::graph::summary::{expanded_summary, summary};
use keras_tch::io::subclassed_resnet::TutorialResnet;
use keras_tch::models::applications::Naming;
use keras_tch::models::{Arch, ArchOptions};
use keras_tch::train::fit::Stopped;

#[derive(Parser)]
#[command(
    name = "keras-tch",
    version,
    about = "Keras's residual-network notebooks on libtorch: same graphs, same names, same numbers",
    long_about = "Keras's residual-network notebooks on libtorch: same graphs, same names, same numbers.\n\n\
                  Run `scripts/setup.sh` once first (it installs HDF5 and assembles libtorch)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The main job: the course notebook's flow on the course data (or the default dataset)
    Demo(DemoArgs),
    /// Print an architecture's Keras summary table (layers, output shapes, parameter counts)
    Summary(SummaryArgs),
    /// Train an architecture (or a Keras model) on a course-layout dataset, as Keras's fit
    Train(cli::train::TrainArgs),
    /// Transfer learning: a pretrained base, a new head for your classes, frozen base (cached features), optional fine-tuning
    Transfer(cli::transfer::TransferArgs),
    /// Run a Keras model (any supported file) on a float32 NHWC .npy and write its outputs
    Predict(cli::predict::PredictArgs),
    /// Classify photos with an ImageNet ResNet50 file: Keras's top-5 `Predicted: [...]` per image
    Classify(cli::classify::ClassifyArgs),
    /// ResNet50 features of photos (include_top=False, pooling none/avg/max) into a .npy
    Features(cli::features::FeaturesArgs),
    /// Evaluate a Keras model on a course-layout dataset: prints Loss = … / Test Accuracy = …
    Evaluate(cli::evaluate::EvaluateArgs),
    /// Convert between Keras HDF5 (full model / weights only), Keras 3 .keras and safetensors
    Convert(cli::convert::ConvertArgs),
    /// Draw a model's graph like Keras's plot_model: .svg/.png via Graphviz, or .dot
    Plot(cli::plot::PlotArgs),
    /// Describe a Keras file (format, version, layers, shapes, parameters) without building it
    Inspect(cli::inspect::InspectArgs),
    /// Benchmark: training step, predict, ImageNet inference, loading, classify; medians, GFLOP/s, peak memory
    Bench(cli::bench::BenchArgs),
    /// Show the libtorch build, the devices it sees and the datasets this checkout finds
    Info(CommonArgs),
}

impl Command {
    /// Whether the command only runs models forward (never a training step), so its memory is
    /// set up for inference.
    fn only_runs_models_forward(&self) -> bool {
        match self {
            Command::Predict(_) | Command::Classify(_) | Command::Features(_) | Command::Evaluate(_) => true,
            Command::Bench(args) => args.only.as_deref().is_some_and(|name| keras_tch::bench::INFERENCE_WORKLOADS.contains(&name)),
            _ => false,
        }
    }
}

#[derive(Args)]
struct SummaryArgs {
    /// Which architecture to build
    #[arg(long, value_enum, required_unless_present = "model")]
    arch: Option<Arch>,
    /// Or a Keras model file (.h5 from model.save, .keras) to summarise
    #[arg(long, conflicts_with_all = ["arch", "input_shape", "classes", "subclassed"])]
    model: Option<std::path::PathBuf>,
    /// Print the layers of each model nested as a layer (a transfer-learning base) inside a box
    /// under its row (Keras's expand_nested=True)
    #[arg(long)]
    expand_nested: bool,
    /// Input shape H,W,C (default: the seed's, e.g. 64,64,3 for resnet50-course)
    #[arg(long, value_parser = parse_input_shape)]
    input_shape: Option<[i64; 3]>,
    /// Number of classes of the top Dense layer (default: the seed's)
    #[arg(long)]
    classes: Option<i64>,
    /// Layer naming scheme of `--arch resnet50`
    #[arg(long, value_enum, default_value = "keras")]
    naming: Naming,
    /// For resnet18/resnet34: the table tf.keras prints for the TF2 tutorial's subclassed model
    /// (its nested Sequentials as rows, `multiple` shapes), to compare with the tutorial line by line
    #[arg(long)]
    subclassed: bool,
}

pub(crate) fn parse_input_shape(text: &str) -> Result<[i64; 3], String> {
    let dims: Vec<i64> =
        text.split(',').map(|d| d.trim().parse::<i64>().map_err(|_| format!("'{d}' is not a whole number"))).collect::<Result<_, _>>()?;
    match dims.as_slice() {
        &[h, w, c] if h > 0 && w > 0 && c > 0 => Ok([h, w, c]),
        _ => Err(format!("expected H,W,C with three positive numbers, e.g. 64,64,3; got '{text}'")),
    }
}

#[derive(Args)]
struct CommonArgs {
    #[command(flatten)]
    device: cli::device_arg::DeviceArg,
    /// Repository root holding datasets/ (defaults to the current directory)
    #[arg(long, default_value = ".")]
    root: PathBuf,
}

#[derive(Args)]
struct DemoArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Epochs of training (the notebook: 2)
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    /// Batch size (the notebook: 32)
    #[arg(long, default_value_t = 32, value_parser = cli::value_parsers::at_least_one_i64)]
    batch_size: i64,
    /// Train on the first N images only, for a quick run
    #[arg(long, value_parser = cli::value_parsers::at_least_one_usize)]
    limit: Option<usize>,
}

fn main() -> Result<()> {
    keras_tch::runtime::keep_freed_memory();
    let cli = Cli::parse();
    // Before any tensor and any thread (the signal watcher below): it sets libtorch's variable.
    if cli.command.only_runs_models_forward() {
        keras_tch::runtime::back_large_buffers_with_huge_pages();
    }
    keras_tch::io::isolated::turn_off_error_backtraces();
    // Rust ignores SIGPIPE, so printing into a closed pipe would panic; a CLI should just stop.
    // SAFETY: setting a signal's disposition to its default before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Ctrl-C and SIGTERM stop any command cleanly (training: after saving a checkpoint).
    keras_tch::signals::install();
    let result = run(cli);
    // Ctrl-C during training is a clean stop, not a failure to report with a backtrace.
    if let Some(stopped) = result.as_ref().err().and_then(|e| e.downcast_ref::<Stopped>()) {
        let Stopped::Interrupted { checkpoint } = stopped;
        eprintln!("{stopped}{}", if checkpoint.is_some() { " (continue with --resume)" } else { "" });
        std::process::exit(keras_tch::signals::exit_status().unwrap_or(130));
    }
    if let Some(hint) = result.as_ref().err().and_then(cli::flag_hints::flag_hint) {
        eprintln!("Error: {:?}\nhelp: {hint}", result.unwrap_err());
        std::process::exit(1);
    }
    result
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo(args) => {
            let options = keras_tch::demo::DemoOptions { epochs: args.epochs, batch_size: args.batch_size, limit: args.limit };
            keras_tch::demo::run(&args.common.root, args.common.device.resolve()?, &options)
        }
        Command::Summary(args) => {
            let model = match (&args.model, args.arch) {
                (Some(path), _) => keras_tch::io::load_model(path, tch::Device::Cpu)?,
                (None, Some(arch)) => {
                    let options =
                        ArchOptions { input_shape: args.input_shape, classes: args.classes, naming: args.naming, ..Default::default() };
                    arch.build(&options, tch::Device::Cpu)?
                }
                (None, None) => unreachable!("clap requires --arch or --model"),
            };
            if args.subclassed {
                let tutorial = TutorialResnet::of(&model).context("--subclassed applies to --arch resnet18 and resnet34")?;
                print!("{}", tutorial.summary(&model)?);
            } else if args.expand_nested {
                print!("{}", expanded_summary(&model));
            } else {
                print!("{}", summary(&model));
            }
            Ok(())
        }
        Command::Train(args) => cli::train::run(&args),
        Command::Transfer(args) => cli::transfer::run(&args),
        Command::Predict(args) => cli::predict::run(&args),
        Command::Classify(args) => cli::classify::run(&args),
        Command::Features(args) => cli::features::run(&args),
        Command::Evaluate(args) => cli::evaluate::run(&args),
        Command::Convert(args) => cli::convert::run(&args),
        Command::Inspect(args) => cli::inspect::run(&args),
        Command::Plot(args) => cli::plot::run(&args),
        Command::Bench(args) => cli::bench::run(&args),
        Command::Info(args) => keras_tch::demo::info(&args.root, args.device.resolve()?),
    }
}
