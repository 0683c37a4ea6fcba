//! Keras files in and out, against real Keras (scripts/keras_fixtures.py wrote every file read
//! here; scripts/keras_check.py loads what we write back into tf.keras and Keras 3): every format
//! gives Keras's outputs, `evaluate` gives Keras's loss, written files reproduce the outputs in
//! Keras, and every bad input is refused with a message that names what is wrong, leaving the
//! model unchanged.

mod common;

use std::path::Path;
use std::process::Command;

use common::parity::{self, assert_close, read_tensor};
use common::{keras_fixture, keras_python, scratch_dir, shared_data};
use keras_tch::error::{Error, LayerProblem, LoadProblem};
use keras_tch::graph::{fused_conv, GraphBuilder, Model};
use keras_tch::io::safetensors::save_safetensors;
use keras_tch::io::{load_model, load_weights, save_model_h5, save_model_keras, save_weights_h5, LoadOptions};
use keras_tch::layers::autocast::Precision;
use keras_tch::layers::dense::dense;
use keras_tch::layers::pooling::PoolKind;
use keras_tch::models::applications::{self, Naming, Pooling};
use keras_tch::models::happy::happy_model;
use tch::{Device, Tensor};

fn io(fixture: &Path, name: &str) -> Tensor {
    read_tensor(&fixture.join("io.h5"), name)
}

fn resnet50(naming: Naming, include_top: bool, pooling: Pooling) -> Model {
    let config = applications::Config { naming, include_top, pooling, classes: 1000, input_shape: [64, 64, 3] };
    applications::resnet50(&config, Device::Cpu).unwrap()
}

fn assert_predicts(what: &str, model: &Model, fixture: &Path, output: &str) {
    let y = model.predict(&io(fixture, "x")).unwrap();
    assert_close(what, &y, &io(fixture, output));
}

#[test]
fn full_model_h5_files_rebuild_and_give_keras_outputs() {
    for (fixture_name, name, layers) in [("h5_course_resnet50", "ResNet50", 177), ("h5_happy", "HappyModel", 8)] {
        let Some(fixture) = keras_fixture(fixture_name) else { return };
        let model = load_model(&fixture.join("model.h5"), Device::Cpu).unwrap();
        assert_eq!(model.name, name);
        assert_eq!(model.layers().len(), layers, "{fixture_name}: layers");
        assert!(model.training_config.is_some(), "{fixture_name}: training_config restored");
        assert_predicts(fixture_name, &model, &fixture, "y");
    }
}

/// The course ResNet50 through the inference path `predict`, `classify` and `bench` run
/// (BatchNorm folded, fused oneDNN convolutions; on its 2×2 last stage, matrix products): Keras's
/// outputs, for the fixture's 2 images and for them 8 times over (a batch of 16, where the last
/// stage's 1×1 convolutions become matrix products too), each twice: the second call runs the
/// 3×3 convolutions with enough tiles by Winograd's algorithm (at 16 images, those of the first
/// three stages).
#[test]
fn the_course_resnet50_inference_path_gives_keras_outputs() {
    let Some(fixture) = keras_fixture("h5_course_resnet50") else { return };
    let model = load_model(&fixture.join("model.h5"), Device::Cpu).unwrap();
    let inference = model.for_inference(Precision::Fp32);
    let (x, y) = (io(&fixture, "x"), io(&fixture, "y"));
    for call in ["first", "second"] {
        assert_close(&format!("batch of 2, {call} call"), &inference.predict(&x).unwrap(), &y);
        let batch_of_16 = inference.predict(&x.repeat([8, 1, 1, 1])).unwrap();
        assert_close(&format!("batch of 16, {call} call"), &batch_of_16, &y.repeat([8, 1]));
    }
    // Second calls: at 2 images the first stage's 3 (32 tiles), at 16 the first three stages' 13.
    assert_eq!(inference.winograd_runs(), 3 + 13);
    assert_eq!(fused_conv::fallbacks(), 0, "no fused operator failed");
}

/// The ImageNet checkpoint layouts (tf.keras weights-only in both naming schemes, and the
/// Keras 1 layout with `_W:0` / `_running_std:0`) load onto either ResNet50 graph.
#[test]
fn imagenet_checkpoints_load_onto_either_naming_scheme() {
    for fixture_name in ["h5_weights_keras", "h5_weights_legacy", "h5_weights_keras1"] {
        let Some(fixture) = keras_fixture(fixture_name) else { return };
        for naming in [Naming::Keras, Naming::KerasApplications] {
            let mut model = resnet50(naming, true, Pooling::None);
            let report = load_weights(&mut model, &fixture.join("weights.h5"), &LoadOptions::default()).unwrap();
            assert_eq!(report.loaded.len(), 107, "{fixture_name} onto {naming:?}");
            let file_is_keras_scheme = fixture_name == "h5_weights_keras";
            assert_eq!(
                report.scheme_mapping.is_some(),
                file_is_keras_scheme != (naming == Naming::Keras),
                "{fixture_name} onto {naming:?}"
            );
            assert_predicts(&format!("{fixture_name} onto {naming:?}"), &model, &fixture, "y");
        }
    }
}

#[test]
fn notop_checkpoint_gives_keras_features() {
    let Some(fixture) = keras_fixture("h5_weights_keras") else { return };
    let mut model = resnet50(Naming::Keras, false, Some(PoolKind::Average));
    load_weights(&mut model, &fixture.join("weights_notop.h5"), &LoadOptions::default()).unwrap();
    assert_predicts("features", &model, &fixture, "features");
    // The full checkpoint onto the feature extractor: its classifier is reported, not loaded.
    let mut model = resnet50(Naming::Keras, false, Some(PoolKind::Average));
    let options = LoadOptions { ignore_extra_layers: true, ..Default::default() };
    let report = load_weights(&mut model, &fixture.join("weights.h5"), &options).unwrap();
    assert_eq!(report.unused, ["predictions"]);
    assert_predicts("features from the full checkpoint", &model, &fixture, "features");
}

#[test]
fn keras3_archives_and_weights_give_keras_outputs() {
    for fixture_name in ["keras3_resnet50", "keras3_happy"] {
        let Some(fixture) = keras_fixture(fixture_name) else { return };
        let model = load_model(&fixture.join("model.keras"), Device::Cpu).unwrap();
        assert_predicts(&format!("{fixture_name}/model.keras"), &model, &fixture, "y");
    }
    let Some(fixture) = keras_fixture("keras3_resnet50") else { return };
    let mut model = resnet50(Naming::Keras, true, Pooling::None);
    load_weights(&mut model, &fixture.join("model.weights.h5"), &LoadOptions::default()).unwrap();
    assert_predicts("keras3_resnet50/model.weights.h5", &model, &fixture, "y");
}

/// Keras < 3.6 wrote no `name` attribute in `.weights.h5`: layers are found through Keras 3's
/// class-and-counter group names (`conv2d`, `batch_normalization`, `dense`, …).
#[test]
fn keras3_weights_without_layer_names_are_matched_by_group() {
    let Some(fixture) = keras_fixture("keras3_resnet50") else { return };
    let dir = scratch_dir("keras3-no-names");
    let path = dir.join("old.weights.h5");
    std::fs::copy(fixture.join("model.weights.h5"), &path).unwrap();
    {
        let file = hdf5::File::open_rw(&path).unwrap();
        let layers = file.group("layers").unwrap();
        for group in layers.member_names().unwrap() {
            let vars = layers.group(&format!("{group}/vars")).unwrap();
            if vars.attr("name").is_ok() {
                vars.delete_attr("name").unwrap();
            }
        }
    }
    let mut model = resnet50(Naming::Keras, true, Pooling::None);
    let report = load_weights(&mut model, &path, &LoadOptions::default()).unwrap();
    assert_eq!(report.loaded.len(), 107);
    assert_predicts("Keras 3 weights without names", &model, &fixture, "y");
}

/// `keras-tch evaluate` prints what Keras's `model.evaluate` gave on the real SIGNS test set.
#[test]
fn evaluate_prints_keras_loss_and_accuracy() {
    let (Some(fixture), Some(data)) = (keras_fixture("h5_course_resnet50_evaluate"), shared_data("test_signs.h5")) else {
        return;
    };
    let expected = std::fs::read_to_string(fixture.join("evaluate.txt")).unwrap();
    let value = |key: &str| -> f64 { expected.lines().find_map(|l| l.strip_prefix(key)).unwrap().trim().parse().unwrap() };
    let model_file = fixture.parent().unwrap().join("h5_course_resnet50/model.h5");
    let output = run_cli(&["evaluate", "--device", "cpu", "--json", "--model"], &[&model_file, Path::new("--data"), &data]);
    let loss: f64 = json_field(&output, "loss");
    let accuracy: f64 = json_field(&output, "accuracy");
    assert!((loss - value("loss ")).abs() < 1e-4, "loss {loss} vs Keras {}", value("loss "));
    assert!((accuracy - value("accuracy ")).abs() < 1e-6, "accuracy {accuracy} vs Keras {}", value("accuracy "));

    let text = run_cli(&["evaluate", "--device", "cpu", "--model"], &[&model_file, Path::new("--data"), &data]);
    assert!(text.starts_with("Loss = ") && text.contains("\nTest Accuracy = "), "{text}");
}

#[test]
fn predict_command_writes_keras_outputs_as_npy() {
    let Some(fixture) = keras_fixture("h5_weights_legacy") else { return };
    let dir = scratch_dir("predict-cli");
    let (x_path, y_path) = (dir.join("x.npy"), dir.join("y.npy"));
    keras_tch::io::npy::write_npy(&x_path, &io(&fixture, "x")).unwrap();
    run_cli(
        &["predict", "--device", "cpu", "--arch", "resnet50", "--naming", "keras", "--model"],
        &[&fixture.join("weights.h5"), Path::new("--input"), &x_path, Path::new("--output"), &y_path],
    );
    let y = keras_tch::io::npy::read_npy(&y_path).unwrap();
    assert_close("predict --output", &y, &io(&fixture, "y"));
}

/// Files written here load in real Keras (tf.keras and Keras 3) and reproduce the outputs;
/// safetensors checkpoints round-trip.
#[test]
fn written_files_load_in_keras_with_the_same_outputs() {
    let Some(fixture) = keras_fixture("h5_course_resnet50") else { return };
    let Some(python) = keras_python() else { return };
    let model = load_model(&fixture.join("model.h5"), Device::Cpu).unwrap();
    let dir = scratch_dir("written-files");
    let written = dir.join("model.h5");
    save_model_h5(&model, &written).unwrap();
    let archive = dir.join("model.keras");
    save_model_keras(&model, &archive).unwrap();
    let reopened = load_model(&archive, Device::Cpu).unwrap();
    assert!(reopened.training_config.is_some(), "compile_config kept in the .keras");
    assert_predicts("our .keras read back here", &reopened, &fixture, "y");
    // Compile settings survive both ways across dialects: the .keras's compile_config written
    // as tf.keras's training_config, which tf.keras compiles from (load_model's default).
    let back_to_h5 = dir.join("from_keras.h5");
    save_model_h5(&reopened, &back_to_h5).unwrap();
    // (One load per file and Keras: a ResNet50 takes seconds to load.)
    let y = predict_in_keras(&python, "keras3", &written, None, &fixture.join("io.h5"), &dir);
    assert_close(&format!("our {} in keras3", written.display()), &y, &io(&fixture, "y"));
    for (loader, file) in [("tf_keras", &back_to_h5), ("keras3", &archive)] {
        let (y, optimizer) = compiled_in_keras(&python, loader, file, &fixture.join("io.h5"), &dir);
        assert_close(&format!("our {} in {loader}", file.display()), &y, &io(&fixture, "y"));
        assert_eq!(optimizer, "Adam", "{loader} compiling {}", file.display());
    }

    let weights = dir.join("weights.h5");
    save_weights_h5(&model, &weights).unwrap();
    let checkpoint = dir.join("model.safetensors");
    save_safetensors(&model, &checkpoint).unwrap();
    for file in [&weights, &checkpoint] {
        let mut fresh = keras_tch::models::course::resnet50([64, 64, 3], 6, None, Device::Cpu).unwrap();
        load_weights(&mut fresh, file, &LoadOptions::default()).unwrap();
        assert_predicts(&file.display().to_string(), &fresh, &fixture, "y");
    }
}

/// `model.predict(x)` of a file loaded by real Keras (`scripts/keras_check.py`, loader
/// `tf_keras` or `keras3`), for the dataset `x` of `input`; with `weights`, of a fresh clone of
/// the model holding that file's weights (Keras's `model.load_weights`).
fn predict_in_keras(python: &Path, loader: &str, model: &Path, weights: Option<&Path>, input: &Path, scratch: &Path) -> Tensor {
    let extra: Vec<&std::ffi::OsStr> = weights.map_or(vec![], |w| vec!["--weights".as_ref(), w.as_os_str()]);
    keras_check(python, loader, model, &extra, input, scratch).0
}

/// `model.predict(x)` of a file real Keras loaded and compiled (`load_model`'s default
/// `compile=True`), and the optimizer class it compiled it with.
fn compiled_in_keras(python: &Path, loader: &str, model: &Path, input: &Path, scratch: &Path) -> (Tensor, String) {
    let (y, line) = keras_check(python, loader, model, &["--compile".as_ref()], input, scratch);
    (y, line.split_whitespace().last().unwrap_or_default().to_string())
}

/// `scripts/keras_check.py` on `model` with `extra` flags: Keras's outputs for `input`'s `x`,
/// and its `ok …` line.
fn keras_check(python: &Path, loader: &str, model: &Path, extra: &[&std::ffi::OsStr], input: &Path, scratch: &Path) -> (Tensor, String) {
    let loaded = extra.last().map_or(model.as_os_str(), |last| *last);
    let out = scratch.join(format!("y_{loader}_{}.h5", Path::new(loaded).file_name().unwrap().to_string_lossy()));
    let mut args: Vec<&std::ffi::OsStr> = vec!["--loader".as_ref(), loader.as_ref(), "--model".as_ref(), model.as_os_str()];
    args.extend(extra);
    parity::keras_check(python, &args, input, &out)
}

/// `convert` writes weights in the layout Keras reads for the file's suffix: Keras 3's own for
/// `.weights.h5`, tf.keras's for `.h5 --weights-only` — both loaded by Keras 3's
/// `model.load_weights` into a fresh ResNet50, with Keras's outputs.
#[test]
fn converted_weights_load_in_keras_by_suffix() {
    let Some(fixture) = keras_fixture("keras3_resnet50") else { return };
    let Some(python) = keras_python() else { return };
    let dir = scratch_dir("converted-weights");
    let model = fixture.join("model.keras");
    for (output, flags) in [("resnet50.weights.h5", &[][..]), ("resnet50_weights.h5", &["--weights-only"][..])] {
        let written = dir.join(output);
        run_cli(&[&["convert"], flags, &["--model"]].concat(), &[&model, &written]);
        let y = predict_in_keras(&python, "keras3", &model, Some(&written), &fixture.join("io.h5"), &dir);
        assert_close(&format!("{output} loaded by Keras 3's load_weights"), &y, &io(&fixture, "y"));
    }
}

/// Keras's `ReLU` (capped, thresholded and leaky; and a plain one, auto-named `re_lu`) and
/// `Softmax` layer classes: a tf.keras `.h5` and a Keras 3 `.keras` file give Keras's outputs,
/// and what keras-tch writes of them loads in both Keras versions with the same outputs.
#[test]
fn relu_and_softmax_layers_match_keras_both_ways() {
    let Some(fixture) = keras_fixture("h5_activation_layers") else { return };
    let Some(python) = keras_python() else { return };
    let dir = scratch_dir("activation-layers");
    for (file, output) in [("model.h5", "y"), ("model.keras", "y_keras3")] {
        let model = load_model(&fixture.join(file), Device::Cpu).unwrap();
        let classes: Vec<&str> = ["capped_leaky_relu", "re_lu", "channel_softmax", "probs"]
            .iter()
            .map(|name| model.layer(name).unwrap().layer.class_name())
            .collect();
        assert_eq!(classes, ["ReLU", "ReLU", "Softmax", "Softmax"], "{file}");
        assert_predicts(file, &model, &fixture, output);
        let written = dir.join(format!("written_{file}"));
        if file.ends_with(".h5") {
            save_model_h5(&model, &written).unwrap();
        } else {
            save_model_keras(&model, &written).unwrap();
        }
        let loader = if file.ends_with(".h5") { "tf_keras" } else { "keras3" };
        let y = predict_in_keras(&python, loader, &written, None, &fixture.join("io.h5"), &dir);
        assert_close(&format!("our {file} in {loader}"), &y, &io(&fixture, output));
    }
}

/// Keras's preprocessing layers and LeakyReLU (scripts/keras_fixtures.py
/// `preprocessing_layers_model`): Normalization adapted, given, over everything and inverted;
/// Resizing bilinear, nearest and bicubic, up and down, cropped to the aspect ratio (and Keras
/// 3's padding); CenterCrop smaller and larger than the image; LeakyReLU. Each file gives
/// Keras's output within 1e-5, with Keras's parameter counts, and the files written back give it
/// in Keras.
#[test]
fn preprocessing_layers_match_keras_and_write_back() {
    let Some(fixture) = keras_fixture("preprocessing_layers") else { return };
    let x = io(&fixture, "x");
    let within_1e5 = |what: &str, ours: &Tensor, keras: &Tensor| {
        assert_eq!(ours.size(), keras.size(), "{what}: shape");
        let diff = (ours - keras).abs().max().double_value(&[]);
        assert!(diff <= 1e-5, "{what}: max |ours − keras| = {diff:e}");
    };
    let pad = load_model(&fixture.join("pad.keras"), Device::Cpu).unwrap();
    within_1e5("pad.keras", &pad.predict(&x).unwrap(), &io(&fixture, "y_pad"));

    let python = keras_python();
    let dir = scratch_dir("preprocessing-layers");
    for (file, output) in [("model.h5", "y"), ("model.keras", "y_keras3")] {
        let model = load_model(&fixture.join(file), Device::Cpu).unwrap();
        assert_eq!(model.param_counts(), parity::keras_counts(&fixture, "counts.txt"), "{file}: parameter counts");
        within_1e5(file, &model.predict(&x).unwrap(), &io(&fixture, output));
        let Some(python) = &python else { continue };
        let written = dir.join(format!("written_{file}"));
        let loader = if file.ends_with(".h5") { "tf_keras" } else { "keras3" };
        if file.ends_with(".h5") {
            save_model_h5(&model, &written).unwrap();
        } else {
            save_model_keras(&model, &written).unwrap();
        }
        let y = predict_in_keras(python, loader, &written, None, &fixture.join("io.h5"), &dir);
        within_1e5(&format!("our {file} in {loader}"), &y, &io(&fixture, output));
    }
}

/// A model's own layer called `probs` takes the weights of the file's `probs` (only a model
/// without one reads keras-applications' `probs` as `predictions`).
#[test]
fn a_layer_called_probs_loads_its_own_weights() {
    let build = || {
        let mut g = GraphBuilder::new("with_probs", Device::Cpu);
        let x = g.input(None, &[4]).unwrap();
        let y = g.dense(Some("probs"), dense(2), x).unwrap();
        g.finish(&[y]).unwrap()
    };
    let (model, dir) = (build(), scratch_dir("probs-layer"));
    for file in [dir.join("w.h5"), dir.join("w.safetensors")] {
        if file.extension().is_some_and(|e| e == "h5") {
            save_weights_h5(&model, &file).unwrap();
        } else {
            save_safetensors(&model, &file).unwrap();
        }
        let mut fresh = build();
        load_weights(&mut fresh, &file, &LoadOptions::default()).unwrap();
        assert!(
            fresh.keras_weight("probs", "kernel").unwrap().equal(&model.keras_weight("probs", "kernel").unwrap()),
            "{}",
            file.display()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input: clear errors, nothing loaded.

fn happy() -> Model {
    happy_model([64, 64, 3], Device::Cpu).unwrap()
}

fn load_error(model: &mut Model, path: &Path) -> String {
    let before = model.keras_weight("conv0", "kernel").ok();
    let err = format!("{:#}", load_weights(model, path, &LoadOptions::default()).unwrap_err());
    if let Some(before) = before {
        assert!(before.equal(&model.keras_weight("conv0", "kernel").unwrap()), "a failed load changed the model: {err}");
    }
    err
}

#[test]
fn mismatched_weights_are_refused_naming_file_layer_and_shapes() {
    let Some(fixture) = keras_fixture("h5_happy") else { return };
    let file = fixture.join("model.h5");
    let file_name = file.display().to_string();

    // Wrong shape: the same model at 32×32 has a smaller Dense kernel.
    let mut small = happy_model([32, 32, 3], Device::Cpu).unwrap();
    let err = load_error(&mut small, &file);
    assert!(err.contains(&file_name) && err.contains("layer 'fc'"), "{err}");
    assert!(err.contains("(8192, 1)") && err.contains("(32768, 1)"), "{err}");
    // The same as a typed error: the file, the layer, the weight and both shapes as fields.
    let error = load_weights(&mut small, &file, &LoadOptions::default()).unwrap_err();
    let Some(Error::Load { path, problems, .. }) = error.downcast_ref::<Error>() else { panic!("not a typed load error: {error:#}") };
    assert_eq!(path, &file);
    assert!(
        matches!(&problems[..], [LoadProblem::Layer { layer, problem: LayerProblem::ShapeMismatch { weight, expected, found, .. }, .. }]
            if layer == "fc" && weight == "kernel" && expected == &[8192, 1] && found == &[32768, 1]),
        "{problems:?}"
    );

    // Missing and extra layers: the course ResNet50 against the HappyModel file.
    let mut other = keras_tch::models::course::resnet50([64, 64, 3], 6, None, Device::Cpu).unwrap();
    let before = other.keras_weight("conv1", "kernel").unwrap();
    let err = format!("{:#}", load_weights(&mut other, &file, &LoadOptions::default()).unwrap_err());
    assert!(err.contains("the file has no layer 'conv1'; did you mean 'conv0'?"), "{err}");
    assert!(err.contains("the file's layer 'conv0' matches no layer"), "{err}");
    assert!(err.contains("nothing was loaded"), "{err}");
    assert!(before.equal(&other.keras_weight("conv1", "kernel").unwrap()));

    // skip_mismatch loads what matches and reports the rest.
    let options = LoadOptions { skip_mismatch: true, ..Default::default() };
    let report = load_weights(&mut small, &file, &options).unwrap();
    assert_eq!(report.loaded, ["conv0", "bn0"]);
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].0, "fc");
}

#[test]
fn broken_files_are_refused_with_what_they_are() {
    let Some(fixture) = keras_fixture("h5_happy") else { return };
    let dir = scratch_dir("broken-files");
    let original = std::fs::read(fixture.join("model.h5")).unwrap();

    let truncated = dir.join("truncated.h5");
    std::fs::write(&truncated, &original[..original.len() / 3]).unwrap();
    let err = load_error(&mut happy(), &truncated);
    assert!(err.contains("truncated.h5") && err.contains("not a readable HDF5 file"), "{err}");

    let text = dir.join("notes.h5");
    std::fs::write(&text, "these are not weights").unwrap();
    let err = load_error(&mut happy(), &text);
    assert!(err.contains("notes.h5") && err.contains("neither HDF5"), "{err}");

    let empty = dir.join("empty.h5");
    std::fs::write(&empty, "").unwrap();
    assert!(load_error(&mut happy(), &empty).contains("empty"));

    let err = format!("{:#}", load_model(&dir.join("absent.h5"), Device::Cpu).unwrap_err());
    assert!(err.contains("absent.h5"), "{err}");
}

/// Keras casts a stored value to its variable's dtype (`np.asarray(value, dtype)` in tf.keras's
/// `batch_set_value`): integers stored for a float weight load as their values. Normalization's
/// `count` is such an integer.
#[test]
fn integer_weights_load_as_keras_casts_them() {
    let dir = scratch_dir("int-weights");
    let path = dir.join("weights.h5");
    save_weights_h5(&happy(), &path).unwrap();
    {
        let file = hdf5::File::open_rw(&path).unwrap();
        let group = file.group("conv0").unwrap();
        group.unlink("conv0/bias:0").unwrap();
        group.new_dataset::<i32>().shape([32]).create("conv0/bias:0").unwrap().write_raw(&[1i32; 32]).unwrap();
    }
    let mut model = happy();
    load_weights(&mut model, &path, &LoadOptions::default()).unwrap();
    assert!(model.keras_weight("conv0", "bias").unwrap().equal(&Tensor::ones([32], (tch::Kind::Float, Device::Cpu))));

    // Strings are not numbers.
    {
        let file = hdf5::File::open_rw(&path).unwrap();
        let group = file.group("conv0").unwrap();
        group.unlink("conv0/bias:0").unwrap();
        let text: Vec<hdf5::types::FixedAscii<4>> = vec![hdf5::types::FixedAscii::from_ascii(b"one").unwrap(); 32];
        group.new_dataset::<hdf5::types::FixedAscii<4>>().shape([32]).create("conv0/bias:0").unwrap().write_raw(&text).unwrap();
    }
    let err = load_error(&mut happy(), &path);
    assert!(err.contains("weights.h5") && err.contains("'conv0/bias:0' of layer 'conv0'") && err.contains("expected numbers"), "{err}");
}

#[test]
fn layer_names_split_over_several_attributes_are_read() {
    let dir = scratch_dir("split-names");
    let path = dir.join("weights.h5");
    let source = happy();
    save_weights_h5(&source, &path).unwrap();
    {
        // What Keras writes when layer_names exceeds HDF5's 64 KB attribute limit.
        let file = hdf5::File::open_rw(&path).unwrap();
        let names: Vec<hdf5::types::VarLenUnicode> = file.attr("layer_names").unwrap().read_raw().unwrap();
        file.delete_attr("layer_names").unwrap();
        let (first, second) = names.split_at(3);
        for (index, chunk) in [first, second].iter().enumerate() {
            file.new_attr::<hdf5::types::VarLenUnicode>()
                .shape([chunk.len()])
                .create(format!("layer_names{index}").as_str())
                .unwrap()
                .write_raw(chunk)
                .unwrap();
        }
    }
    let mut target = happy();
    load_weights(&mut target, &path, &LoadOptions::default()).unwrap();
    assert!(target.keras_weight("fc", "kernel").unwrap().equal(&source.keras_weight("fc", "kernel").unwrap()));
}

#[test]
fn archives_with_escaping_paths_are_refused() {
    use std::io::Write;
    let dir = scratch_dir("zip-slip");
    let path = dir.join("evil.keras");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    zip.start_file("../../outside.txt", zip::write::FileOptions::default()).unwrap();
    zip.write_all(b"x").unwrap();
    zip.start_file("config.json", zip::write::FileOptions::default()).unwrap();
    zip.write_all(b"{}").unwrap();
    zip.finish().unwrap();
    let err = format!("{:#}", load_model(&path, Device::Cpu).unwrap_err());
    assert!(err.contains("evil.keras") && err.contains("'../../outside.txt' escapes the archive"), "{err}");
}

#[test]
fn unsupported_layer_classes_are_named() {
    let dir = scratch_dir("unsupported-layer");
    let path = dir.join("model.h5");
    save_model_h5(&happy(), &path).unwrap();
    {
        let file = hdf5::File::open_rw(&path).unwrap();
        let config: Vec<hdf5::types::VarLenUnicode> = file.attr("model_config").unwrap().read_raw().unwrap();
        let edited = config[0]
            .as_str()
            .replace("\"class_name\": \"MaxPooling2D\"", "\"class_name\": \"MaxPooling3D\"")
            .replace("\"class_name\":\"MaxPooling2D\"", "\"class_name\":\"MaxPooling3D\"");
        assert_ne!(edited, config[0].as_str(), "test setup: the class was not replaced");
        file.delete_attr("model_config").unwrap();
        let value: hdf5::types::VarLenUnicode = edited.parse().unwrap();
        file.new_attr::<hdf5::types::VarLenUnicode>().shape(()).create("model_config").unwrap().write_scalar(&value).unwrap();
    }
    let err = format!("{:#}", load_model(&path, Device::Cpu).unwrap_err());
    assert!(err.contains("'max_pool'") && err.contains("'MaxPooling3D' is not supported"), "{err}");
    let error = load_model(&path, Device::Cpu).unwrap_err();
    assert!(
        matches!(error.downcast_ref::<Error>(), Some(Error::UnsupportedLayerClass { class, .. }) if class == "MaxPooling3D"),
        "{error:#}"
    );
}

// ---------------------------------------------------------------------------------------------

fn run_cli(args: &[&str], paths: &[&Path]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_keras-tch")).args(args).args(paths).output().unwrap();
    assert!(output.status.success(), "keras-tch {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn json_field(line: &str, key: &str) -> f64 {
    let value: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    value[key].as_f64().unwrap_or_else(|| panic!("{key} in {line}"))
}
