//! The course's transfer-learning lecture (fourth seed, "Transfer Learning"), as a program:
//!
//! > With little data, freeze the pretrained network and train only a new softmax layer — and
//! > precompute the frozen network's activations once and save them to disk. With more data,
//! > freeze fewer layers and train the later ones. With a lot of data, use the pretrained
//! > weights as the initialisation and train everything.
//!
//! ImageNet weights cannot be downloaded here, so the "pretrained network" is the course's
//! ResNet50 trained on a source task carved from the data this checkout has (the default
//! dataset: digits 0, 1, 2; or the SIGNS set when `datasets/*_signs.h5` exist), and the target
//! task is the other classes (3, 4, 5), which the base never saw. Give `--base FILE` to start from
//! your own Keras file instead (e.g. an ImageNet checkpoint; then use images of 224×224).
//!
//!     cargo run --release --example transfer_learning [-- --quick] [-- --base FILE]
//!
//! `--quick` (for the tests) pretrains for one epoch on 20 images per class and trains each
//! regime on 10 images per class for one epoch (two for the little-data regimes), in
//! runs/transfer_learning-quick.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Parser;
use tch::Device;

use keras_tch::data::course::default_dataset_paths;
use keras_tch::data::folders::{load_course_file, LabeledImages};
use keras_tch::graph::summary::thousands;
use keras_tch::imaging::{preprocess_input, PreprocessMode};
use keras_tch::io::save_model_h5;
use keras_tch::layers::{init, pooling::PoolKind};
use keras_tch::models::transfer::{load_base, NewHead};
use keras_tch::models::{Arch, ArchOptions};
use keras_tch::train::compile::CompileConfig;
use keras_tch::train::evaluate::evaluate;
use keras_tch::train::fit::{fit, FitOptions};
use keras_tch::train::freeze::FreezeSpec;
use keras_tch::train::losses::CrossEntropyStyle;
use keras_tch::train::optimizer::{Optimizer, OptimizerConfig};
use keras_tch::train::transfer::{train_transfer, TransferData, TransferOptions};
use keras_tch::train::transfer_job::transfer_model;

const SOURCE_CLASSES: [i64; 3] = [0, 1, 2];
const TARGET_CLASSES: [i64; 3] = [3, 4, 5];
const MODE: PreprocessMode = PreprocessMode::Scale255;
// Enough steps for BatchNorm's moving statistics (momentum 0.99) to catch up with the weights.
const PRETRAIN_EPOCHS: usize = 12;

/// The course's transfer-learning lecture, as a program.
#[derive(Parser)]
#[command(about)]
struct Options {
    /// Pretrain for one epoch on 20 images per class and train each regime on 10 images per
    /// class for one epoch (two for the little-data regimes), in runs/transfer_learning-quick
    #[arg(long)]
    quick: bool,
    /// Start from this Keras file instead of pretraining a base (e.g. an ImageNet checkpoint; then
    /// use images of 224×224)
    #[arg(long)]
    base: Option<PathBuf>,
}

fn main() -> Result<()> {
    keras_tch::runtime::keep_freed_memory();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Options { quick, base } = Options::parse();
    let run_dir = root.join(if quick { "runs/transfer_learning-quick" } else { "runs/transfer_learning" });
    std::fs::create_dir_all(&run_dir)?;
    init::seed(1);

    // ## The data: a source task for pretraining, and a target task the base never saw.
    let (train_path, test_path, description) = default_dataset_paths(root)?;
    println!("Data: {description}");
    let train = load_course_file(&train_path, "train")?;
    let test = load_course_file(&test_path, "test")?;
    let target_validation = test.select_classes(&TARGET_CLASSES, None);
    println!(
        "Source task: classes {:?} ({} images); target task: classes {:?} (validation: {} images)",
        SOURCE_CLASSES.map(|c| train.classes[c as usize].clone()),
        train.select_classes(&SOURCE_CLASSES, None).len(),
        TARGET_CLASSES.map(|c| train.classes[c as usize].clone()),
        target_validation.len()
    );

    // ## The pretrained network.
    let base_path = match base {
        Some(path) => path,
        None if quick => pretrain_base(&train.select_classes(&SOURCE_CLASSES, Some(20)), 1, &run_dir)?,
        None => pretrain_base(&train.select_classes(&SOURCE_CLASSES, None), PRETRAIN_EPOCHS, &run_dir)?,
    };

    // ## The three regimes, and training from scratch for comparison.
    let little = train.select_classes(&TARGET_CLASSES, Some(10));
    let all = train.select_classes(&TARGET_CLASSES, if quick { Some(10) } else { None });
    let (few, many) = if quick { (2, 1) } else { (60, 4) };
    let regimes = [
        Regime {
            name: "little data: frozen base, new softmax on cached features",
            data: &little,
            freeze: Freeze::All,
            epochs: few,
            lr: 1e-3,
        },
        Regime { name: "little data, from scratch (no transfer)", data: &little, freeze: Freeze::Scratch, epochs: few, lr: 1e-3 },
        Regime {
            name: "more data: stages 1-3 frozen, stages 4-5 + head trained (BN frozen)",
            data: &all,
            freeze: Freeze::Stages(3),
            epochs: many,
            lr: 1e-4,
        },
        Regime { name: "a lot of data: all convolutions fine-tuned (BN frozen)", data: &all, freeze: Freeze::None, epochs: many, lr: 1e-4 },
    ];
    let mut rows = Vec::new();
    for regime in &regimes {
        println!("\n### {}", regime.name);
        rows.push(run_regime(regime, &base_path, &target_validation, &run_dir)?);
    }

    println!("\n{:<66} {:>6} {:>12} {:>6} {:>9}", "regime", "images", "trainable", "epochs", "val acc");
    for (regime, (trainable, accuracy)) in regimes.iter().zip(&rows) {
        println!("{:<66} {:>6} {:>12} {:>6} {:>9.4}", regime.name, regime.data.len(), thousands(*trainable), regime.epochs, accuracy);
    }
    Ok(())
}

enum Freeze {
    All,
    Stages(usize),
    None,
    Scratch,
}

struct Regime<'a> {
    name: &'a str,
    data: &'a LabeledImages,
    freeze: Freeze,
    epochs: usize,
    lr: f64,
}

/// The course ResNet50 trained on the source classes (kept in runs/ and reused).
fn pretrain_base(source: &LabeledImages, epochs: usize, run_dir: &Path) -> Result<PathBuf> {
    let path = run_dir.join("base.h5");
    if path.exists() {
        println!("Reusing the pretrained base {}", path.display());
        return Ok(path);
    }
    println!("Pretraining the course ResNet50 on the source task ({epochs} epochs)...");
    let options = ArchOptions { input_shape: Some([64, 64, 3]), classes: Some(SOURCE_CLASSES.len() as i64), ..Default::default() };
    let mut model = Arch::Resnet50Course.build(&options, Device::cuda_if_available())?;
    let compile = CompileConfig::for_model(&model, None, CrossEntropyStyle::TfKeras)?;
    let mut optimizer = Optimizer::new(OptimizerConfig::adam(1e-3));
    let fit_options = FitOptions { epochs, batch_size: 32, verbose: 2, ..Default::default() };
    let x = preprocess_input(&source.x, MODE);
    fit(
        &mut model,
        &compile,
        &mut optimizer,
        &x,
        &source.one_hot_labels(),
        None,
        &fit_options,
        &std::sync::atomic::AtomicBool::new(false),
    )?;
    model.training_config = Some(compile.training_config(&optimizer.config));
    save_model_h5(&model, &path)?;
    Ok(path)
}

/// One regime: (trainable parameters, validation accuracy).
fn run_regime(regime: &Regime, base_path: &Path, validation: &LabeledImages, run_dir: &Path) -> Result<(i64, f64)> {
    let device = Device::cuda_if_available();
    let base = load_base(base_path, [64, 64], device)?;
    let head = NewHead { pooling: PoolKind::Average, dropout: 0.0, classes: TARGET_CLASSES.len() as i64 };
    let spec = match regime.freeze {
        Freeze::All => None, // the whole base: the head trains on cached features
        // Keras's fine-tuning advice: BatchNorm keeps its pretrained statistics (inference mode).
        Freeze::Stages(n) => Some(FreezeSpec { stages: Some(n), batch_norm: true, ..Default::default() }),
        Freeze::None => Some(FreezeSpec { batch_norm: true, ..Default::default() }),
        Freeze::Scratch => Some(FreezeSpec::default()),
    };
    let built = transfer_model(base.model, None, &head, spec.as_ref())?;
    let mut model = built.model;
    if let Freeze::Scratch = regime.freeze {
        reinitialise(&model);
    }
    let (_, trainable, _) = model.param_counts();
    let (vx, vy) = (preprocess_input(&validation.x, MODE), validation.one_hot_labels());
    let data = TransferData::from_tensors(
        &preprocess_input(&regime.data.x, MODE),
        &regime.data.one_hot_labels(),
        Some((&vx, &vy)),
        &regime.data.identity,
    )?;
    let options = TransferOptions {
        epochs: regime.epochs,
        learning_rate: regime.lr,
        verbose: 2,
        cache_dir: Some(run_dir.join("feature-cache")),
        ..Default::default()
    };
    let report = train_transfer(&mut model, &built.head, &data, &options, keras_tch::train::interrupt::ctrl_c_flag())?;
    if let Some((path, reused)) = &report.cache {
        println!("bottleneck features {} {}", if *reused { "reused from" } else { "cached in" }, path.display());
    }
    let compile = CompileConfig::for_model(&model, None, CrossEntropyStyle::TfKeras)?;
    let result = evaluate(&model, &compile, &vx, &vy, 32)?;
    result.print_notebook_lines();
    Ok((trainable, result.accuracy.unwrap_or(f64::NAN)))
}

/// Fresh Glorot/zero initialisation of every weight, as a model built from scratch has.
fn reinitialise(model: &keras_tch::graph::Model) {
    let options = ArchOptions { input_shape: Some([64, 64, 3]), classes: Some(TARGET_CLASSES.len() as i64), ..Default::default() };
    let fresh = Arch::Resnet50Course.build(&options, model.device()).expect("the course ResNet50 builds");
    for node in fresh.layers() {
        for weight in node.layer.weights() {
            // Same names in the base; the new head keeps its own fresh initialisation.
            if let Ok(value) = model.keras_weight(&node.name, weight.name) {
                let _ = model.set_keras_weight(&node.name, weight.name, &fresh.keras_weight(&node.name, weight.name).unwrap_or(value));
            }
        }
    }
}
