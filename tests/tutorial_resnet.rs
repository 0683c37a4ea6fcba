//! The TF2 ResNet18/34 tutorial's own files: what its subclassed model's `save_weights` writes
//! in tf.keras (`.h5`, loaded by order) and Keras 3 (`.weights.h5`, by attribute path), made by
//! the tutorial's classes in scripts/keras_fixtures_tutorial.py, read onto `--arch resnet18|34`
//! with the model's own outputs; and what keras-tch writes for them, read back by the tutorial's
//! classes in real tf.keras and Keras 3 (scripts/keras_check.py --subclassed).

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;

use common::parity::{assert_close, keras_check, read_tensor};
use common::{keras_fixture, keras_python, scratch_dir};
use keras_tch::error::{Error, LayerProblem, LoadProblem};
use keras_tch::graph::Model;
use keras_tch::io::subclassed_resnet::{SubclassedLayout, TutorialResnet};
use keras_tch::io::{load_weights, save_weights_h5, save_weights_keras3, LoadOptions};
use keras_tch::models::{Arch, ArchOptions};
use keras_tch::train::compile::CompileConfig;
use keras_tch::train::fit::{fit, FitOptions};
use keras_tch::train::losses::{CrossEntropyStyle, Loss};
use keras_tch::train::optimizer::{Optimizer, OptimizerConfig};
use tch::{Device, Kind, Tensor};

fn built(arch: Arch) -> Model {
    arch.build(&ArchOptions { input_shape: Some([224, 224, 3]), ..Default::default() }, Device::Cpu).unwrap()
}

/// Each file the tutorial's classes saved gives, here, the subclassed model's own
/// `model(x, training=False)` on real photos.
#[test]
fn tutorial_files_give_the_tutorial_models_outputs() {
    let Some(fixture) = keras_fixture("tutorial_resnet") else { return };
    let io = fixture.join("io.h5");
    let x = read_tensor(&io, "x");
    for (arch, name) in [(Arch::Resnet18, "resnet18"), (Arch::Resnet34, "resnet34")] {
        for (keras, file, layout) in [
            ("tf_keras", format!("{name}_tf_keras.h5"), SubclassedLayout::TfKerasOrder),
            ("keras3", format!("{name}_keras3.weights.h5"), SubclassedLayout::Keras3Paths),
        ] {
            let mut model = built(arch);
            let report = load_weights(&mut model, &fixture.join(&file), &LoadOptions::default()).unwrap();
            assert_eq!(report.subclassed, Some(layout), "{file}: {report}");
            assert!(report.skipped.is_empty() && report.unused.is_empty(), "{file}: {report}");
            let expected_layers = if arch == Arch::Resnet18 { 43 } else { 83 };
            assert_eq!(report.loaded.len(), expected_layers, "{file}: every conv, BatchNorm and the Dense");
            assert_close(&file, &model.predict(&x).unwrap(), &read_tensor(&io, &format!("y/{name}_{keras}")));
        }
    }
}

/// `predict --arch resnet18` takes the tutorial's tf.keras file and says how it matched it.
#[test]
fn predict_command_reads_the_tutorial_file() {
    let Some(fixture) = keras_fixture("tutorial_resnet") else { return };
    let dir = scratch_dir("tutorial-predict");
    let io = fixture.join("io.h5");
    let input = dir.join("x.npy");
    keras_tch::io::npy::write_npy(&input, &read_tensor(&io, "x")).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_keras-tch"))
        .args(["predict", "--arch", "resnet18", "--device", "cpu", "--model"])
        .arg(fixture.join("resnet18_tf_keras.h5"))
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(dir.join("y.npy"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("loaded 43 layer(s) (the TF2 tutorial's subclassed model, tf.keras save_weights layout, matched by order)"),
        "{stderr}"
    );
    let y = keras_tch::io::npy::read_npy(&dir.join("y.npy")).unwrap();
    assert_close("predict --arch resnet18", &y, &read_tensor(&io, "y/resnet18_tf_keras"));
}

/// A file with one kernel of another shape is refused, naming our layer, the file's dataset
/// and both shapes, and nothing is loaded.
#[test]
fn a_changed_shape_is_refused_and_nothing_is_loaded() {
    let Some(fixture) = keras_fixture("tutorial_resnet") else { return };
    let mut model = built(Arch::Resnet18);
    let before = model.layer("stem_conv").unwrap().layer.weights()[0].tensor.copy();
    let error = load_weights(&mut model, &fixture.join("resnet18_tf_keras_bad.h5"), &LoadOptions::default()).unwrap_err();
    let Some(Error::Load { problems, .. }) = error.downcast_ref::<Error>() else { panic!("not a load error: {error:#}") };
    assert_eq!(
        problems,
        &[LoadProblem::Layer {
            layer: "layer2_block1_conv2".into(),
            class: "Conv2D",
            problem: LayerProblem::ShapeMismatch {
                weight: "kernel".into(),
                dataset: "/sequential_4/basic_block_2/conv2d_8/kernel:0".into(),
                expected: vec![3, 3, 128, 128],
                found: vec![3, 3, 128, 64],
            },
        }]
    );
    let message = format!("{error:#}");
    assert!(
        message.contains("layer2_block1_conv2") && message.contains("(3, 3, 128, 128)") && message.contains("(3, 3, 128, 64)"),
        "{message}"
    );
    let after = &model.layer("stem_conv").unwrap().layer.weights()[0].tensor;
    assert!(before.equal(after), "a refused file changed the model");
}

/// What keras-tch writes for the tutorial's model has exactly the structure tf.keras and Keras 3
/// write from the tutorial's classes in a fresh session: the same groups, names and shapes.
#[test]
fn written_files_have_keras_own_structure() {
    let Some(fixture) = keras_fixture("tutorial_resnet") else { return };
    let dir = scratch_dir("tutorial-structure");
    for (arch, name) in [(Arch::Resnet18, "resnet18"), (Arch::Resnet34, "resnet34")] {
        let model = built(arch);
        let ours_h5 = dir.join(format!("{name}.h5"));
        save_weights_h5(&model, &ours_h5).unwrap();
        assert_same_structure(&ours_h5, &fixture.join(format!("{name}_tf_keras.h5")));
        let ours_keras3 = dir.join(format!("{name}.weights.h5"));
        save_weights_keras3(&model, &ours_keras3).unwrap();
        assert_same_structure(&ours_keras3, &fixture.join(format!("{name}_keras3.weights.h5")));
    }
}

fn assert_same_structure(ours: &Path, keras: &Path) {
    let (ours_lines, keras_lines) = (structure(ours), structure(keras));
    let only_ours: Vec<&String> = ours_lines.iter().filter(|l| !keras_lines.contains(l)).collect();
    let only_keras: Vec<&String> = keras_lines.iter().filter(|l| !ours_lines.contains(l)).collect();
    assert!(
        only_ours.is_empty() && only_keras.is_empty(),
        "{} differs from {}:\nonly ours: {only_ours:#?}\nonly Keras's: {only_keras:#?}",
        ours.display(),
        keras.display()
    );
}

/// Every group and dataset of an HDF5 file, with each string attribute and each dataset's shape,
/// one line each, sorted.
fn structure(path: &Path) -> Vec<String> {
    fn walk(group: &hdf5::Group, lines: &mut Vec<String>) {
        for attribute in group.attr_names().unwrap() {
            let attr = group.attr(&attribute).unwrap();
            let text = attr
                .read_raw::<hdf5::types::VarLenUnicode>()
                .map(|values| values.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(","))
                .or_else(|_| attr.read_scalar::<hdf5::types::VarLenUnicode>().map(|v| v.to_string()))
                .unwrap_or_else(|_| format!("{} value(s)", attr.size()));
            lines.push(format!("{} @{attribute} = {text}", group.name()));
        }
        for member in group.member_names().unwrap() {
            if let Ok(child) = group.group(&member) {
                lines.push(format!("{}/{member}/", group.name().trim_end_matches('/')));
                walk(&child, lines);
            } else {
                let dataset = group.dataset(&member).unwrap();
                lines.push(format!("{}/{member} {:?}", group.name().trim_end_matches('/'), dataset.shape()));
            }
        }
    }
    let file = hdf5::File::open(path).unwrap();
    let mut lines = Vec::new();
    walk(&file, &mut lines);
    lines.sort();
    lines
}

/// A ResNet18 trained here for an epoch, saved in both layouts, loads into the tutorial's
/// classes in tf.keras and in Keras 3 with our outputs, and back into keras-tch.
#[test]
fn trained_here_loads_into_the_tutorial_classes() {
    let Some(fixture) = keras_fixture("tutorial_resnet") else { return };
    let Some(python) = keras_python() else { return };
    let dir = scratch_dir("tutorial-trained");
    let io = fixture.join("io.h5");
    let x = read_tensor(&io, "x");
    let mut model = built(Arch::Resnet18);
    // One epoch on the 4 photos (two batches of 2), so weights and BatchNorm statistics move.
    let y = Tensor::zeros([4, 1000], (Kind::Float, Device::Cpu)).index_fill(1, &Tensor::from_slice(&[0i64]), 1.0);
    let compile = CompileConfig::for_model(&model, Some(Loss::CategoricalCrossentropy), CrossEntropyStyle::TfKeras).unwrap();
    let mut optimizer = Optimizer::new(OptimizerConfig::adam(1e-3));
    let options = FitOptions { epochs: 1, batch_size: 2, verbose: 0, ..Default::default() };
    let moving_mean = |model: &Model| model.layer("layer1_block1_bn1").unwrap().layer.weights()[2].tensor.copy();
    let initial_mean = moving_mean(&model);
    fit(&mut model, &compile, &mut optimizer, &x, &y, None, &options, &AtomicBool::new(false)).unwrap();
    assert!(!moving_mean(&model).equal(&initial_mean), "training moved no BatchNorm statistic");
    let ours = model.predict(&x).unwrap();

    let tf_file = dir.join("trained.h5");
    let keras3_file = dir.join("trained.weights.h5");
    save_weights_h5(&model, &tf_file).unwrap();
    save_weights_keras3(&model, &keras3_file).unwrap();
    for (loader, file) in [("tf_keras", &tf_file), ("keras3", &keras3_file)] {
        let keras = subclassed_in_keras(&python, loader, file, &io, &dir);
        assert_close(&format!("{} in {loader}", file.display()), &ours, &keras);
        let mut reloaded = built(Arch::Resnet18);
        load_weights(&mut reloaded, file, &LoadOptions::default()).unwrap();
        assert!(reloaded.predict(&x).unwrap().equal(&ours), "{} read back here", file.display());
    }
}

/// The tutorial's subclassed ResNet18 in real Keras (`loader`) with `weights` loaded by its
/// `load_weights`: its `predict` of `input`'s `x`.
fn subclassed_in_keras(python: &Path, loader: &str, weights: &Path, input: &Path, scratch: &Path) -> Tensor {
    let args: [&std::ffi::OsStr; 5] =
        ["--loader".as_ref(), loader.as_ref(), "--subclassed".as_ref(), "resnet18".as_ref(), "--weights".as_ref()];
    let mut args = args.to_vec();
    args.push(weights.as_os_str());
    keras_check(python, &args, input, &scratch.join(format!("y_{loader}.h5"))).0
}

/// `summary --subclassed` prints the table tf.keras prints for the tutorial's model, character
/// for character (the fixtures hold Keras's own `model.summary()` output).
#[test]
fn subclassed_summary_is_the_tutorials_table() {
    for (arch, name) in [(Arch::Resnet18, "resnet18"), (Arch::Resnet34, "resnet34")] {
        let Some(fixture) = keras_fixture(name) else { return };
        let keras = std::fs::read_to_string(fixture.join("summary.txt")).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_keras-tch")).args(["summary", "--subclassed", "--arch", name]).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(String::from_utf8_lossy(&output.stdout), keras, "{name}");
        let model = built(arch);
        assert_eq!(TutorialResnet::of(&model).unwrap().summary(&model).unwrap(), keras, "{name}, library");
    }
}

/// The tutorial's ResNet34 file onto a ResNet18: Keras's order rule finds as many groups but
/// other weight counts in each stage, and says so per stage; nothing is loaded.
#[test]
fn another_depths_file_is_refused_per_stage() {
    let Some(fixture) = keras_fixture("tutorial_resnet") else { return };
    let mut model = built(Arch::Resnet18);
    let error = load_weights(&mut model, &fixture.join("resnet34_tf_keras.h5"), &LoadOptions::default()).unwrap_err();
    let Some(Error::Load { problems, .. }) = error.downcast_ref::<Error>() else { panic!("not a load error: {error:#}") };
    let stages: Vec<(&str, usize, usize)> = problems
        .iter()
        .map(|problem| match problem {
            LoadProblem::Layer { layer, problem: LayerProblem::WeightCount { expected, found, .. }, .. } => {
                (layer.as_str(), expected.len(), found.len())
            }
            other => panic!("unexpected problem: {other}"),
        })
        .collect();
    // A BasicBlock holds 14 weights: ResNet18 has 2 per stage; ResNet34 3, 4, 6 and 3.
    assert_eq!(stages, [("layer1", 28, 42), ("layer2", 28, 56), ("layer3", 28, 84), ("layer4", 28, 42)]);
}

/// `inspect` names the layers of the tutorial's Keras 3 file by their attribute paths.
#[test]
fn inspect_names_nested_layers_by_path() {
    let Some(fixture) = keras_fixture("tutorial_resnet") else { return };
    let output =
        Command::new(env!("CARGO_BIN_EXE_keras-tch")).arg("inspect").arg(fixture.join("resnet18_keras3.weights.h5")).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let row = |name: &str| {
        stdout.lines().find(|l| l.split_whitespace().next() == Some(name)).unwrap_or_else(|| panic!("no row {name}:\n{stdout}"))
    };
    assert!(row("layer1/layers/basic_block/bn1").ends_with("0 (64,), 1 (64,), 2 (64,), 3 (64,)"));
    assert!(row("layers/sequential/layers/conv2d").ends_with("0 (7, 7, 3, 64), 1 (64,)"));
    assert!(row("layer4/layers/basic_block_1/downsample/layers/conv2d").ends_with("0 (1, 1, 512, 512), 1 (512,)"));
    assert!(row("fc").ends_with("0 (512, 1000), 1 (1000,)"));
    assert!(stdout.contains("Total params: 12,053,608"), "{stdout}");
}
