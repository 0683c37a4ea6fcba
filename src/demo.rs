//! The main job behind the README's first command: the course notebook's flow ("Residual
//! Networks"), on the course's SIGNS files when present, else on the default dataset — build the
//! ResNet50, print its summary, compile, fit, evaluate, save `ResNet50.h5`, load it back and
//! evaluate again — printing each step the way the notebook does.

use std::path::Path;

use anyhow::{bail, Result};
use tch::Device;

use crate::data::course::{default_dataset_paths, load_six_class_dataset, print_notebook_shapes};
use crate::device::cuda_status;
use crate::graph::summary::summary;
use crate::io::{load_model, save_model_h5};
use crate::layers::init;
use crate::libtorch_version::{libtorch_version, TCH_VERSION};
use crate::models::course;
use crate::train::compile::CompileConfig;
use crate::train::curves::save_curves;
use crate::train::evaluate::evaluate;
use crate::train::fit::{fit, FitOptions};
use crate::train::interrupt::ctrl_c_flag;
use crate::train::optimizer::Optimizer;

/// How much of the notebook's training to run (the notebook: 2 epochs, batch 32, all images).
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub epochs: usize,
    pub batch_size: i64,
    /// Train on the first N images only (a quick run).
    pub limit: Option<usize>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self { epochs: 2, batch_size: 32, limit: None }
    }
}

/// Run the notebook's flow and print each step the way the notebook prints it.
pub fn run(root: &Path, device: Device, options: &DemoOptions) -> Result<()> {
    println!("Device: {device:?} ({})", cuda_status());

    // model = ResNet50(input_shape = (64, 64, 3), classes = 6)
    init::seed(0);
    let mut model = course::resnet50([64, 64, 3], 6, None, device)?;
    // model.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])
    let (compile, optimizer_config) = CompileConfig::as_the_course_ran(&model)?;
    let mut optimizer = Optimizer::new(optimizer_config);
    println!("{}", CompileConfig::COURSE_LOSS_NOTE);

    // X_train_orig, Y_train_orig, X_test_orig, Y_test_orig, classes = load_dataset()
    let dataset = load_six_class_dataset(root, options.limit)?;
    let x_train = dataset.train.normalized_images();
    let y_train = compile.targets(&dataset.train, 6);
    let x_test = dataset.test.normalized_images();
    let y_test = compile.targets(&dataset.test, 6);
    print_notebook_shapes(&x_train, &y_train, &x_test, &y_test);

    // model.fit(X_train, Y_train, epochs = 2, batch_size = 32)
    let fit_options = FitOptions { epochs: options.epochs, batch_size: options.batch_size, ..Default::default() };
    let history = fit(&mut model, &compile, &mut optimizer, &x_train, &y_train, None, &fit_options, ctrl_c_flag())?;
    let run_dir = root.join("runs/demo");
    std::fs::create_dir_all(&run_dir)?;
    save_curves(&history, &run_dir.join("curves.png"))?;
    history.save_json(&run_dir.join("history.json"))?;

    // preds = model.evaluate(X_test, Y_test)
    let before = evaluate(&model, &compile, &x_test, &y_test, 32)?;
    before.print_notebook_lines();

    // model.summary()
    print!("{}", summary(&model));

    // model.save('ResNet50.h5'); model = load_model('ResNet50.h5'); model.evaluate(...)
    let saved = run_dir.join("ResNet50.h5");
    model.training_config = Some(compile.training_config(&optimizer.config));
    save_model_h5(&model, &saved)?;
    let reloaded = load_model(&saved, device)?;
    let after = evaluate(&reloaded, &compile, &x_test, &y_test, 32)?;
    println!("Training curves: {}", run_dir.join("curves.png").display());
    println!("Saved {} and loaded it back:", saved.display());
    after.print_notebook_lines();
    if after.loss != before.loss || after.accuracy != before.accuracy {
        bail!("the reloaded model evaluates differently ({} vs {})", after.loss, before.loss);
    }
    Ok(())
}

/// Environment report for `keras-tch info`.
pub fn info(root: &Path, device: Device) -> Result<()> {
    let libtorch = libtorch_version().unwrap_or_else(|| "(version not reported)".into());
    println!("libtorch: {libtorch} through tch {TCH_VERSION}, {}", cuda_status());
    println!("CUDA devices: {}", tch::Cuda::device_count());
    println!("selected device: {device:?}");
    println!("CPU threads: {}", tch::get_num_threads());
    match default_dataset_paths(root) {
        Ok((train, test, description)) => {
            println!("dataset: {description}\n  {}\n  {}", train.display(), test.display())
        }
        Err(err) => println!("dataset: {err}"),
    }
    Ok(())
}
