//! The main job behind the README's first command: the course notebook's flow ("Residual
//! Networks"), on the course's SIGNS files when present, else on the default dataset.
//!
//! It runs what the library has so far and says plainly what it does not do yet.

use std::path::Path;

use anyhow::Result;

use crate::data::course::{default_dataset_paths, load_dataset};
use crate::device::{libtorch_flavour, parse_device};
use crate::graph::summary::summary;
use crate::graph::tuple;
use crate::layers::init;
use crate::models::course;

/// Run the notebook's flow and print each step the way the notebook prints it.
pub fn run(root: &Path, device: &str) -> Result<()> {
    let device = parse_device(device)?;
    println!("Device: {device:?} ({} libtorch)", libtorch_flavour());

    // model = ResNet50(input_shape = (64, 64, 3), classes = 6)
    init::seed(0);
    let (train_path, test_path, description) = default_dataset_paths(root)?;
    println!("Data: {description}");
    let dataset = load_dataset(&train_path, &test_path)?;
    let classes = dataset.classes.len();
    let x_train = dataset.train.normalized_images();
    let y_train = dataset.train.one_hot_labels(classes);
    let x_test = dataset.test.normalized_images();
    let y_test = dataset.test.one_hot_labels(classes);
    println!("number of training examples = {}", dataset.train.len());
    println!("number of test examples = {}", dataset.test.len());
    println!("X_train shape: {}", tuple(&x_train.size()));
    println!("Y_train shape: {}", tuple(&y_train.size()));
    println!("X_test shape: {}", tuple(&x_test.size()));
    println!("Y_test shape: {}", tuple(&y_test.size()));

    let model = course::resnet50([64, 64, 3], classes as i64, None, device)?;
    print!("{}", summary(&model));
    let probabilities = model.predict(&x_test.narrow(0, 0, 4))?;
    println!("Untrained predictions on 4 test images, shape {}", tuple(&probabilities.size()));
    println!(
        "Not in this build yet: compile/fit/evaluate with Keras's Adam and cross-entropy (issue 5); \
         this command will train and evaluate when it lands."
    );
    Ok(())
}

/// Environment report for `keras-tch info`.
pub fn info(root: &Path, device: &str) -> Result<()> {
    let device = parse_device(device)?;
    println!("libtorch: {} (tch 0.26, libtorch 2.13.0)", libtorch_flavour());
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
