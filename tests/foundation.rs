//! The foundation: libtorch runs here and agrees with Keras on a convolution, the binary runs
//! without LD_LIBRARY_PATH, and the default dataset built by setup is in the course's layout.

mod common;

use std::process::Command;

use common::{keras_fixture, max_abs_diff, read_f32, repo_root};
use keras_tch::data::course::{default_dataset_paths, load_dataset};
use keras_tch::io::hdf5_text::read_string_list;
use tch::{Kind, Tensor};

/// A Keras Conv2D saved by tf.keras, its kernel read from the .h5 by the layer's own
/// `weight_names`, run by libtorch: the output must be Keras's.
#[test]
fn libtorch_convolution_matches_keras_conv2d() {
    let Some(dir) = keras_fixture("conv2d_valid") else { return };
    let file = hdf5::File::open(dir.join("model.h5")).unwrap();
    let layer = file.group("model_weights/conv").unwrap();
    let names = read_string_list(&layer.attr("weight_names").unwrap()).unwrap();
    assert_eq!(names, ["conv/kernel:0", "conv/bias:0"]);
    let read = |name: &str| {
        let ds = layer.dataset(name).unwrap();
        let dims: Vec<i64> = ds.shape().iter().map(|&d| d as i64).collect();
        Tensor::from_slice(&ds.read_raw::<f32>().unwrap()).reshape(&dims)
    };
    // Keras stores HWIO; torch wants OIHW.
    let kernel = read(&names[0]).permute([3, 2, 0, 1]);
    let bias = read(&names[1]);

    let io = dir.join("io.h5");
    let (x, x_shape) = read_f32(&io, "x");
    let (expected, y_shape) = read_f32(&io, "y");
    let dims: Vec<i64> = x_shape.iter().map(|&d| d as i64).collect();
    let x_nchw = Tensor::from_slice(&x).reshape(&dims).permute([0, 3, 1, 2]);
    let y = x_nchw.conv2d(&kernel, Some(&bias), [1, 1], [0, 0], [1, 1], 1).permute([0, 2, 3, 1]);

    let got_shape: Vec<usize> = y.size().iter().map(|&d| d as usize).collect();
    assert_eq!(got_shape, y_shape, "output shape (N, H, W, C)");
    let got = Vec::<f32>::try_from(y.contiguous().to_kind(Kind::Float).flatten(0, -1)).unwrap();
    let diff = max_abs_diff(&got, &expected);
    assert!(diff <= 1e-4, "max |torch - keras| = {diff}");
}

/// build.rs embeds an rpath to libtorch: the binary must start with no LD_LIBRARY_PATH.
#[test]
fn binary_runs_without_ld_library_path() {
    let output = Command::new(env!("CARGO_BIN_EXE_keras-tch"))
        .args(["info", "--device", "cpu", "--root"])
        .arg(repo_root())
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    // The version the loaded libtorch reports, against the wheel setup.sh assembled it from.
    let assembled = std::fs::read_to_string(repo_root().join(".libtorch/build-version")).expect("run scripts/setup.sh");
    assert!(stdout.contains(&format!("libtorch: {} through tch 0.26.", assembled.trim())), "{stdout}");
    assert!(stdout.contains("selected device: Cpu"), "{stdout}");
}

/// The dataset scripts/setup.sh builds has the course's SIGNS layout: 64×64×3 uint8 images,
/// six classes, 20 test images per class.
#[test]
fn default_dataset_has_the_course_layout() {
    let (train, test, description) = default_dataset_paths(&repo_root()).expect("run scripts/setup.sh");
    if !description.starts_with("the default dataset") {
        common::skipped("datasets/*_signs.h5 are present and take precedence", "move them away to check the default dataset");
        return;
    }
    let data = load_dataset(&train, &test).unwrap();
    assert_eq!(data.classes, ["0", "1", "2", "3", "4", "5"]);
    assert_eq!(&data.train.x.shape()[1..], [64, 64, 3]);
    assert_eq!(data.test.len(), 120);
    for class in 0..6 {
        assert_eq!(data.test.y.iter().filter(|&&y| y == class).count(), 20, "test images of class {class}");
    }
    assert!(data.train.len() > 900, "{} training images", data.train.len());
    // Real digits, not blank images: ink covers a fair part of each image.
    let ink = data.train.x.iter().filter(|&&v| v > 128).count() as f64 / data.train.x.len() as f64;
    assert!((0.1..0.6).contains(&ink), "fraction of bright pixels {ink}");
}

/// The README's main command, end to end on this checkout.
#[test]
fn demo_runs_to_the_end() {
    // A quick run: one epoch on 64 images (the README's command trains 2 epochs on all).
    let root = common::scratch_dir("demo");
    std::os::unix::fs::symlink(repo_root().join("datasets"), root.join("datasets")).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_keras-tch"))
        .args(["demo", "--device", "cpu", "--epochs", "1", "--limit", "64", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("number of training examples = 64"), "{stdout}");
    assert!(stdout.contains("Epoch 1/1"), "{stdout}");
    assert!(stdout.contains("Total params: 23,600,006"), "{stdout}");
    assert_eq!(stdout.matches("\nLoss = ").count(), 2, "{stdout}");
    assert_eq!(stdout.matches("\nTest Accuracy = ").count(), 2, "{stdout}");
    assert!(stdout.contains("ResNet50.h5 and loaded it back"), "{stdout}");
    assert!(root.join("runs/demo/ResNet50.h5").exists());
    let curves = image::open(root.join("runs/demo/curves.png")).expect("the training curves are a PNG");
    assert_eq!((curves.width(), curves.height()), (1000, 400));
    assert!(stdout.contains("X_train shape: ("), "{stdout}");
    assert!(stdout.contains(", 64, 64, 3)"), "{stdout}");
    // Both the course's SIGNS and the default dataset hold 120 test images of 6 classes.
    assert!(stdout.contains("Y_test shape: (120, 6)"), "{stdout}");
}

/// numpy's `np.random.seed(1); np.random.randn(3, 4, 4, 6)` (the notebook's block-test input,
/// as Keras's fixture stored it in float32) comes out the same here.
#[test]
fn numpy_randn_matches_numpy() {
    let Some(fixture) = common::keras_fixture("course_identity_block") else { return };
    let (numpy, shape) = common::read_f32(&fixture.join("io.h5"), "x");
    assert_eq!(shape, vec![3, 4, 4, 6]);
    let ours: Vec<f32> = keras_tch::rng::NumpyRandomState::new(1).randn(3 * 4 * 4 * 6).iter().map(|&v| v as f32).collect();
    assert_eq!(ours, numpy);
}
