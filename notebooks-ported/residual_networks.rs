//! The course's "Residual Networks" assignment, cell by cell: the identity and convolutional
//! block tests, ResNet50 built and compiled, `load_dataset` and its shapes, `fit(epochs=2,
//! batch_size=32)`, `evaluate` (`Loss =` / `Test Accuracy =`), the pretrained `ResNet50.h5`
//! loaded and evaluated, `summary()`, `plot_model`, and "test with your own image".
//!
//!     cargo run --release --example residual_networks -- [--epochs 2] [--limit N]
//!         [--pretrained ResNet50.h5] [--learning-phase 1] [--notebook-preprocess] [IMAGE]
//!
//! Data: `datasets/*_signs.h5` when present, else the embedded default dataset (said so).
//! Two traps of the notebook are reproduced on request and said in one line each:
//! - it calls `K.set_learning_phase(1)` before loading `ResNet50.h5`, so its evaluation (the
//!   published Test Accuracy 0.8667) ran BatchNorm on batch statistics: `--learning-phase 1`;
//!   inference mode by default.
//! - its own-image cell applies ImageNet's `preprocess_input` (caffe) to a model trained on /255
//!   images: `--notebook-preprocess`; /255 by default.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Parser;
use tch::{Device, Tensor};

use keras_tch::data::course::{load_six_class_dataset, print_notebook_shapes};
use keras_tch::graph::plot::{plot_model, PlotOptions};
use keras_tch::graph::summary::summary;
use keras_tch::graph::tuple;
use keras_tch::imaging::{img_to_array, load_img, preprocess_input, DecodeOptions, Interpolation, PreprocessMode};
use keras_tch::io::{load_model, save_model_h5};
use keras_tch::layers::init;
use keras_tch::models::course::{block_model, resnet50};
use keras_tch::pyfmt::numpy_array_str;
use keras_tch::rng::NumpyRandomState;
use keras_tch::train::compile::CompileConfig;
use keras_tch::train::evaluate::{evaluate, evaluate_learning_phase_1};
use keras_tch::train::fit::{fit, FitOptions};
use keras_tch::train::interrupt::ctrl_c_flag;
use keras_tch::train::optimizer::Optimizer;

/// The course's "Residual Networks" assignment, cell by cell.
#[derive(Parser)]
#[command(about)]
struct Options {
    /// Epochs of `model.fit` (the notebook's 2)
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    /// Use only the first N training and N test images
    #[arg(long)]
    limit: Option<usize>,
    /// The course's pretrained ResNet50.h5 to load and evaluate (default: the model trained above,
    /// saved and loaded back)
    #[arg(long)]
    pretrained: Option<PathBuf>,
    /// 1: evaluate the pretrained model as the notebook did after K.set_learning_phase(1)
    /// (BatchNorm on batch statistics, how its published 0.8667 came out); 0: inference mode
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    learning_phase: u8,
    /// Preprocess your own image as the notebook's cell did (ImageNet's caffe preprocess_input)
    /// instead of /255 as the model was trained
    #[arg(long)]
    notebook_preprocess: bool,
    /// Your own image for the last cell
    image: Option<PathBuf>,
}

fn main() -> Result<()> {
    keras_tch::runtime::keep_freed_memory();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let options = Options::parse();
    let device = Device::cuda_if_available();
    let run_dir = root.join("runs/residual_networks");
    std::fs::create_dir_all(&run_dir)?;
    init::seed(0);

    // ## 2.1 The identity block / 2.2 The convolutional block
    //   np.random.seed(1); X = np.random.randn(3, 4, 4, 6)
    //   A = identity_block(A_prev, f=2, filters=[2, 4, 6], stage=1, block='a')
    //   out = sess.run([A], feed_dict={A_prev: X, K.learning_phase(): 0}); print("out = " + str(out[0][1][1][0]))
    let x = Tensor::from_slice(&NumpyRandomState::new(1).randn(3 * 4 * 4 * 6)).view([3, 4, 4, 6]).to_kind(tch::Kind::Float);
    println!("(The block tests use the notebook's X exactly; their weights come from this port's initialiser, not TF1's, so the values differ from the notebook's.)");
    for convolutional in [false, true] {
        let block = block_model([4, 4, 6], convolutional, device)?;
        let out = block.predict(&x)?;
        let values: Vec<f32> = Vec::try_from(out.get(1).get(1).get(0).to_device(Device::Cpu))?;
        println!("out = {}", numpy_array_str(&values));
    }

    // ## 3 Building your first ResNet model (50 layers)
    //   model = ResNet50(input_shape=(64, 64, 3), classes=6)
    //   model.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])
    let mut model = resnet50([64, 64, 3], 6, None, device)?;
    let (compile, optimizer_config) = CompileConfig::as_the_course_ran(&model)?;
    let mut optimizer = Optimizer::new(optimizer_config);
    println!("{}", CompileConfig::COURSE_LOSS_NOTE);

    //   X_train_orig, Y_train_orig, X_test_orig, Y_test_orig, classes = load_dataset()
    let data = load_six_class_dataset(root, options.limit)?;
    let (x_train, y_train) = (data.train.normalized_images(), compile.targets(&data.train, 6));
    let (x_test, y_test) = (data.test.normalized_images(), compile.targets(&data.test, 6));
    print_notebook_shapes(&x_train, &y_train, &x_test, &y_test);

    //   model.fit(X_train, Y_train, epochs = 2, batch_size = 32)
    let fit_options = FitOptions { epochs: options.epochs, batch_size: 32, ..Default::default() };
    fit(&mut model, &compile, &mut optimizer, &x_train, &y_train, None, &fit_options, ctrl_c_flag())?;

    //   preds = model.evaluate(X_test, Y_test); print("Loss = ..."); print("Test Accuracy = ...")
    evaluate(&model, &compile, &x_test, &y_test, 32)?.print_notebook_lines();

    //   model = load_model('ResNet50.h5'); preds = model.evaluate(X_test, Y_test)
    let own = run_dir.join("ResNet50.h5");
    model.training_config = Some(compile.training_config(&optimizer.config));
    save_model_h5(&model, &own)?;
    let pretrained_path = options.pretrained.clone().unwrap_or_else(|| {
        println!(
            "(The course's pretrained ResNet50.h5 was not given (--pretrained FILE); loading the model trained above, saved as {}.)",
            own.display()
        );
        own.clone()
    });
    let pretrained = load_model(&pretrained_path, device)?;
    if options.learning_phase == 1 {
        println!("(Learning phase 1, as the notebook's K.set_learning_phase(1): BatchNorm uses each batch's statistics.)");
        evaluate_learning_phase_1(&pretrained, &compile, &x_test, &y_test, 32)?.print_notebook_lines();
    } else {
        println!("(Inference mode; the notebook ran this with K.set_learning_phase(1): --learning-phase 1 reproduces that.)");
        evaluate(&pretrained, &compile, &x_test, &y_test, 32)?.print_notebook_lines();
    }

    // ## 4 Test on your own image
    if let Some(path) = &options.image {
        let img = load_img(path, Some((64, 64)), Interpolation::Nearest, &DecodeOptions::default())?;
        let x = img_to_array(&img).unsqueeze(0);
        let mode = if options.notebook_preprocess { PreprocessMode::Caffe } else { PreprocessMode::Scale255 };
        println!(
            "(Preprocessing '{}': the notebook applies ImageNet's preprocess_input (caffe) to a model trained on /255 images; \
             /255 is the consistent choice and the default, --notebook-preprocess reproduces the notebook.)",
            mode.name()
        );
        let x = preprocess_input(&x, mode);
        println!("Input image shape: {}", tuple(&x.size()));
        println!("class prediction vector [p(0), p(1), p(2), p(3), p(4), p(5)] = ");
        let probabilities: Vec<f32> = Vec::try_from(pretrained.predict(&x)?.get(0).to_device(Device::Cpu))?;
        println!("[{}]", numpy_array_str(&probabilities));
    }

    //   model.summary()
    print!("{}", summary(&pretrained));
    //   plot_model(model, to_file='model.png')
    let plot = run_dir.join("model.png");
    match plot_model(&pretrained, &plot, PlotOptions::default()) {
        Ok(()) => println!("plot_model: {}", plot.display()),
        Err(e) => println!("plot_model: {e:#}"),
    }
    Ok(())
}
