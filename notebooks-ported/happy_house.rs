//! "Keras tutorial — the Happy House" (fourth seed), cell by cell: load the dataset and print its
//! shapes, build `HappyModel`, compile with `Adam(lr=0.001, beta_1=0.9, beta_2=0.999,
//! epsilon=1e-08)` and `binary_crossentropy`, fit (batch 16), evaluate (`Loss =` / `Test
//! Accuracy =`), predict on your own image, `summary()` and `plot_model`.
//!
//!     cargo run --release --example happy_house -- [--epochs 40] [IMAGE]
//!
//! Data: `datasets/train_happy.h5` / `test_happy.h5` when present (the course's files); else the
//! embedded default dataset turned into a two-class task (digits 0-2 = 0, 3-5 = 1), said so.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::Result;
use clap::Parser;
use tch::{Device, Kind, Tensor};

use keras_tch::data::course::{load_dataset, print_notebook_shapes, Split};
use keras_tch::graph::plot::{plot_model, PlotOptions};
use keras_tch::graph::summary::summary;
use keras_tch::imaging::{img_to_array, load_img, preprocess_input, DecodeOptions, Interpolation, PreprocessMode};
use keras_tch::models::happy::happy_model;
use keras_tch::pyfmt::numpy_array_str;
use keras_tch::train::compile::{Accuracy, CompileConfig};
use keras_tch::train::evaluate::evaluate;
use keras_tch::train::fit::{fit, FitOptions};
use keras_tch::train::losses::{CrossEntropyStyle, Loss};
use keras_tch::train::optimizer::{Optimizer, OptimizerConfig};

/// "Keras tutorial — the Happy House", cell by cell.
#[derive(Parser)]
#[command(about)]
struct Options {
    /// Epochs of `happyModel.fit` (the tutorial's 40)
    #[arg(long, default_value_t = 40)]
    epochs: usize,
    /// Your own image for the "test with your own image" cell
    image: Option<PathBuf>,
}

fn main() -> Result<()> {
    keras_tch::runtime::keep_freed_memory();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Options { epochs, image } = Options::parse();
    let device = Device::cuda_if_available();
    keras_tch::layers::init::seed(1);

    // X_train_orig, Y_train_orig, X_test_orig, Y_test_orig, classes = load_dataset()
    let happy = (root.join("datasets/train_happy.h5"), root.join("datasets/test_happy.h5"));
    let (train, test, binary) = if happy.0.exists() && happy.1.exists() {
        println!("Data: the course's Happy House dataset (datasets/*_happy.h5)");
        let data = load_dataset(&happy.0, &happy.1)?;
        (data.train, data.test, (|y: i64| y as f32) as fn(i64) -> f32)
    } else {
        println!("Data: the default dataset as a two-class task: digits 0-2 -> 0, 3-5 -> 1 (datasets/*_happy.h5 not found)");
        let default = root.join("datasets/default");
        let data = load_dataset(&default.join("train_digits.h5"), &default.join("test_digits.h5"))?;
        (data.train, data.test, (|y: i64| if y >= 3 { 1.0 } else { 0.0 }) as fn(i64) -> f32)
    };
    // X_train = X_train_orig/255.; Y_train = Y_train_orig.T
    let labels = |split: &Split| {
        let y: Vec<f32> = split.y.iter().map(|&y| binary(y)).collect();
        Tensor::from_slice(&y).view([-1, 1])
    };
    let (x_train, y_train) = (train.normalized_images(), labels(&train));
    let (x_test, y_test) = (test.normalized_images(), labels(&test));
    print_notebook_shapes(&x_train, &y_train, &x_test, &y_test);

    // happyModel = HappyModel(X_train.shape[1:]); happyModel.compile(...); happyModel.fit(...)
    let size = x_train.size();
    let mut model = happy_model([size[1], size[2], size[3]], device)?;
    let compile = CompileConfig {
        loss: Loss::BinaryCrossentropy,
        accuracy: Some(Accuracy::for_loss(Loss::BinaryCrossentropy)),
        style: CrossEntropyStyle::TfKeras,
        from_logits: false,
    };
    let mut optimizer = Optimizer::new(OptimizerConfig::Adam { learning_rate: 0.001, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-8 });
    let options = FitOptions { epochs, batch_size: 16, ..Default::default() };
    fit(&mut model, &compile, &mut optimizer, &x_train, &y_train, None, &options, &AtomicBool::new(false))?;

    // preds = happyModel.evaluate(x = X_test, y = Y_test)
    evaluate(&model, &compile, &x_test, &y_test, 32)?.print_notebook_lines();

    // ## Test with your own image
    if let Some(path) = image {
        let img = load_img(&path, Some((size[1] as u32, size[2] as u32)), Interpolation::Nearest, &DecodeOptions::default())?;
        let x = img_to_array(&img).unsqueeze(0);
        println!("(The notebook applies ImageNet's preprocess_input here, though the model trained on /255 images; both shown.)");
        println!("{}", python_array(&model.predict(&preprocess_input(&x, PreprocessMode::Caffe))?));
        println!("with /255: {}", python_array(&model.predict(&preprocess_input(&x, PreprocessMode::Scale255))?));
    }

    // happyModel.summary(); plot_model(happyModel, to_file='HappyModel.png')
    print!("{}", summary(&model));
    let plot = root.join("runs/happy_house/HappyModel.png");
    match plot_model(&model, &plot, PlotOptions::default()) {
        Ok(()) => println!("plot_model: {}", plot.display()),
        Err(e) => println!("plot_model: {e:#}"),
    }
    Ok(())
}

/// numpy's printing of a (1, 1) float32 array: `[[0.12345678]]`, `[[1.]]`.
fn python_array(y: &Tensor) -> String {
    format!("[{}]", numpy_array_str(&[y.to_kind(Kind::Float).double_value(&[0, 0]) as f32]))
}
