//! Models nested as layers, as Keras's transfer-learning guide builds them: a ResNet50 base
//! called with `training=False` between `Rescaling` and a new head, saved by tf.keras (`.h5`)
//! and by Keras 3 (`.keras`) in scripts/keras_fixtures.py (`nested_models`).

mod common;

use std::sync::atomic::AtomicBool;

use tch::Device;

use common::keras_fixture;
use common::parity::{assert_close, read_tensor};
use keras_tch::io::load_model;
use keras_tch::train::compile::TrainingConfig;
use keras_tch::train::fit::{fit, FitOptions};
use keras_tch::train::freeze::{freeze, FreezeSpec};
use keras_tch::train::optimizer::Optimizer;

/// Both files rebuild into the same graph, give Keras's outputs, and keep the base frozen.
#[test]
fn the_guide_model_gives_keras_outputs_in_both_formats() {
    let Some(fixture) = keras_fixture("nested_models") else { return };
    let io = fixture.join("io.h5");
    let x = read_tensor(&io, "x");
    for (file, y) in [("model.h5", "y"), ("model.keras", "y_keras3")] {
        let model = load_model(&fixture.join(file), Device::Cpu).unwrap();
        let nested: Vec<(&str, &str, Option<bool>)> =
            model.nested_models().iter().map(|n| (n.path.as_str(), n.class_name.as_str(), n.call_training)).collect();
        assert_eq!(nested, [("resnet50", "Functional", Some(false))], "{file}");
        assert_close(&format!("{file} predicted here"), &model.predict(&x).unwrap(), &read_tensor(&io, y));
        let conv = model.layer("resnet50/conv1_conv").unwrap();
        assert!(!conv.trainable && conv.call_training == Some(false), "{file}: the base is frozen and called in inference mode");
        assert!(model.layer("dense").unwrap().trainable, "{file}: the head trains");
        let (total, trainable, _) = model.param_counts();
        assert_eq!((total, trainable), (23_587_712 + 2048 * 3 + 3, 2048 * 3 + 3), "{file}: parameter counts");
    }
}

/// `training=False` at the base's call: a training-mode pass of the outer model leaves the
/// base's BatchNorm on its moving statistics (unchanged), as in Keras.
#[test]
fn a_base_called_with_training_false_keeps_its_batch_norm_statistics() {
    let Some(fixture) = keras_fixture("nested_models") else { return };
    let mut model = load_model(&fixture.join("model.h5"), Device::Cpu).unwrap();
    // Even unfrozen, the call's training=False rules the base.
    for name in model.layers().iter().map(|n| n.name.clone()).collect::<Vec<_>>() {
        model.set_trainable(&name, true).unwrap();
    }
    let before = model.keras_weight("resnet50/conv1_bn", "moving_mean").unwrap();
    let x = read_tensor(&fixture.join("io.h5"), "x");
    let _ = model.forward_t(&[&x], true).unwrap();
    let after = model.keras_weight("resnet50/conv1_bn", "moving_mean").unwrap();
    assert!(before.equal(&after), "the base's BatchNorm moved its statistics");
    let base_in_training = model.layers().iter().filter(|n| n.name.starts_with("resnet50/")).any(|n| n.runs_in_training_mode(true));
    assert!(!base_in_training);
}

/// `summary()` prints the nested model as one row, with its class and parameters, as Keras
/// does; the outer model is a chain, so the table is the 65-column one.
#[test]
fn summary_prints_the_nested_model_as_one_row() {
    let Some(fixture) = keras_fixture("nested_models") else { return };
    let model = load_model(&fixture.join("model.h5"), Device::Cpu).unwrap();
    let text = keras_tch::graph::summary::summary(&model);
    let rows: Vec<&str> = text.lines().filter(|line| line.contains(" (") && !line.starts_with("Layer")).collect();
    let names: Vec<&str> = rows.iter().map(|row| row.split_whitespace().next().unwrap()).collect();
    assert_eq!(names, ["input_2", "rescaling", "resnet50", "global_average_pooling2d", "dropout", "dense"], "{text}");
    assert!(rows[2].starts_with("resnet50 (Functional)") && rows[2].contains("(None, 2, 2, 2048)"), "{text}");
    assert!(rows[2].trim_end().ends_with("23587712"), "{text}");
    assert!(text.lines().all(|line| line.chars().count() <= 65), "a chain's table:\n{text}");
    assert!(text.contains("Non-trainable params: 23,587,712"), "{text}");
}

/// `summary --model FILE --expand-nested` (Keras's `expand_nested=True`) prints each nested
/// model's layers in a box under its row: the augmentation block's input and three layers, the
/// base's input and every layer of it, named as inside their model; the totals do not change.
#[test]
fn expanded_summary_boxes_each_nested_model() {
    let Some(fixture) = keras_fixture("nested_augmented") else { return };
    let model = load_model(&fixture.join("model.h5"), Device::Cpu).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_keras-tch"))
        .args(["summary", "--expand-nested", "--model"])
        .arg(fixture.join("model.h5"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(text, keras_tch::graph::summary::expanded_summary(&model), "the CLI prints the library's table");
    let inner: Vec<&str> = text.lines().filter(|line| line.starts_with("| ") && line.contains(" (")).collect();
    let base_layers = model.layers().iter().filter(|node| node.name.starts_with("resnet50/")).count();
    assert_eq!(inner.len(), 4 + 1 + base_layers, "{text}");
    assert!(inner[0].starts_with("| random_flip_input (InputLa") && inner[1].starts_with("| random_flip (RandomFlip)"), "{text}");
    assert!(inner[4].starts_with("| input_1 (InputLayer)") && inner[4].contains("(None, 64, 64, 3)"), "{text}");
    assert!(inner[5].starts_with("| conv1_pad (ZeroPadding2D)"), "{text}");
    assert!(inner.iter().all(|line| line.ends_with('|') && line.chars().count() == 65), "{text}");
    assert_eq!(text.lines().filter(|line| line.starts_with("|¯")).count(), 2, "{text}");
    let summary = keras_tch::graph::summary::summary(&model);
    let totals = |text: &str| text.lines().filter(|line| line.contains(" params: ")).map(String::from).collect::<Vec<_>>();
    assert_eq!(totals(&text), totals(&summary));
    assert!(!summary.contains('|'), "{summary}");
}

/// `convert` and every save write the nested model back as Keras writes it: tf.keras and
/// Keras 3 load what keras-tch wrote and give the original's outputs, and so does keras-tch.
#[test]
fn written_nested_models_load_in_keras_with_the_same_outputs() {
    let Some(fixture) = keras_fixture("nested_models") else { return };
    let Some(python) = common::keras_python() else { return };
    let dir = common::scratch_dir("nested-written");
    let io = fixture.join("io.h5");
    let (x, y) = (read_tensor(&io, "x"), read_tensor(&io, "y"));
    for source in ["model.h5", "model.keras"] {
        let model = load_model(&fixture.join(source), Device::Cpu).unwrap();
        let (h5, archive) = (dir.join(format!("{source}.h5")), dir.join(format!("{source}.keras")));
        keras_tch::io::save_model_h5(&model, &h5).unwrap();
        keras_tch::io::save_model_keras(&model, &archive).unwrap();
        // (Keras 3 reads no tf.keras .h5 with a nested model, tf.keras's own included: it cannot
        // resolve the call numbered 1.)
        for (loader, file) in [("tf_keras", &h5), ("keras3", &archive)] {
            let args = ["--loader".as_ref(), loader.as_ref(), "--model".as_ref(), file.as_os_str()];
            let out = dir.join(format!("y_{loader}_{}.h5", file.file_name().unwrap().to_string_lossy()));
            let (keras_y, line) = common::parity::keras_check(&python, &args, &io, &out);
            assert!(line.contains(" 6 23593859 "), "{loader} sees 6 layers and every weight of {}: {line}", file.display());
            assert_close(&format!("{} (from {source}) in {loader}", file.display()), &keras_y, &y);
            let reopened = load_model(file, Device::Cpu).unwrap();
            assert_eq!(reopened.nested_models(), model.nested_models(), "{} read back here", file.display());
            assert_close(&format!("{} read back here", file.display()), &reopened.predict(&x).unwrap(), &y);
        }
    }
}

/// Models nested two levels deep (a `Sequential` inside a `Functional` inside the model,
/// scripts/keras_fixtures.py `deep_nested_model`) load from both formats with Keras's outputs,
/// and are written back so that each Keras loads them with the same outputs — also with a layer
/// of the inner `Sequential` frozen, which moves its weights behind the trainable ones in the
/// order tf.keras reads them.
#[test]
fn models_nested_two_levels_deep_load_and_write_back() {
    let Some(fixture) = keras_fixture("nested_deep") else { return };
    let io = fixture.join("io.h5");
    let x = read_tensor(&io, "x");
    let python = common::keras_python();
    let dir = common::scratch_dir("nested-deep");
    for (source, output) in [("model.h5", "y"), ("model.keras", "y_keras3")] {
        let mut model = load_model(&fixture.join(source), Device::Cpu).unwrap();
        let paths: Vec<&str> = model.nested_models().iter().map(|nested| nested.path.as_str()).collect();
        assert_eq!(paths, ["block", "block/inner"], "{source}");
        let y = read_tensor(&io, output);
        assert_close(&format!("{source} predicted here"), &model.predict(&x).unwrap(), &y);
        let Some(python) = &python else { continue };
        for frozen in [false, true] {
            if frozen {
                model.set_trainable("block/inner/batch_normalization", false).unwrap();
            }
            let (h5, archive) = (dir.join(format!("{source}-{frozen}.h5")), dir.join(format!("{source}-{frozen}.keras")));
            keras_tch::io::save_model_h5(&model, &h5).unwrap();
            keras_tch::io::save_model_keras(&model, &archive).unwrap();
            for (loader, file) in [("tf_keras", &h5), ("keras3", &archive)] {
                let args = ["--loader".as_ref(), loader.as_ref(), "--model".as_ref(), file.as_os_str()];
                let out = dir.join(format!("y_{loader}_{}.h5", file.file_name().unwrap().to_string_lossy()));
                let (keras_y, line) = common::parity::keras_check(python, &args, &io, &out);
                assert!(line.contains(" 4 165 "), "{loader} sees 4 layers and every weight of {}: {line}", file.display());
                assert_close(&format!("{} in {loader}", file.display()), &keras_y, &y);
                let reopened = load_model(file, Device::Cpu).unwrap();
                assert_eq!(reopened.nested_models(), model.nested_models(), "{} read back here", file.display());
                assert_close(&format!("{} read back here", file.display()), &reopened.predict(&x).unwrap(), &y);
            }
        }
    }
}

/// What keras-tch cannot do yet with nesting is an error saying so: writing a nested model
/// whose call takes several tensors to a Keras format (safetensors keeps the weights); and a
/// layer it cannot rebuild inside a nested model is named with the nested model.
#[test]
fn unsupported_nesting_is_a_clear_error() {
    let input = |name: &str| {
        serde_json::json!({"class_name": "InputLayer", "name": name,
            "config": {"name": name, "batch_input_shape": [null, 4]}, "inbound_nodes": []})
    };
    let rebuild = |config: &serde_json::Value| {
        keras_tch::io::model_config::model_from_config(config, keras_tch::layers::init::InitialWeights::KerasDefaults, Device::Cpu)
    };
    // A nested model of two inputs: read, not written.
    let pair = serde_json::json!({"class_name": "Functional", "config": {"name": "outer",
        "layers": [input("a"), input("b"),
            {"class_name": "Functional", "name": "pair", "config": {"name": "pair",
                "layers": [input("x1"), input("x2"), {"class_name": "Dense", "name": "fc", "config": {"name": "fc", "units": 2},
                    "inbound_nodes": [[["x2", 0, 0, {}]]]},
                    {"class_name": "Concatenate", "name": "both", "config": {"name": "both"},
                     "inbound_nodes": [[["x1", 0, 0, {}], ["fc", 0, 0, {}]]]}],
                "input_layers": [["x1", 0, 0], ["x2", 0, 0]], "output_layers": [["both", 0, 0]]},
             "inbound_nodes": [[["a", 0, 0, {}], ["b", 0, 0, {}]]]}],
        "input_layers": [["a", 0, 0], ["b", 0, 0]], "output_layers": [["pair", 1, 0]]}});
    let model = rebuild(&pair).unwrap();
    assert_eq!(model.layer("pair/both").unwrap().output_shape, [6]);
    let dir = common::scratch_dir("nested-save");
    let err = format!("{:#}", keras_tch::io::save_model_h5(&model, &dir.join("model.h5")).unwrap_err());
    assert!(err.contains("holds the Functional model 'pair' as a layer") && err.contains(".safetensors"), "{err}");
    assert!(!dir.join("model.h5").exists(), "nothing written");
    let checkpoint = dir.join("model.safetensors");
    keras_tch::io::safetensors::save_safetensors(&model, &checkpoint).unwrap();
    let mut reopened = rebuild(&pair).unwrap();
    keras_tch::io::load_weights(&mut reopened, &checkpoint, &Default::default()).unwrap();
    assert!(reopened.keras_weight("pair/fc", "kernel").unwrap().equal(&model.keras_weight("pair/fc", "kernel").unwrap()));

    // A class keras-tch does not rebuild, inside a nested Sequential.
    let block = serde_json::json!({"class_name": "Functional", "config": {"name": "outer",
        "layers": [input("image"), {"class_name": "Sequential", "name": "block", "config": {"name": "block", "layers": [
                input("in"), {"class_name": "Discretization", "config": {"name": "discretization", "num_bins": 2}}]},
             "inbound_nodes": [[["image", 0, 0, {}]]]}],
        "input_layers": [["image", 0, 0]], "output_layers": [["block", 1, 0]]}});
    let err = format!("{:#}", rebuild(&block).unwrap_err());
    assert!(err.contains("'block' (Sequential) of model 'outer'") && err.contains("'discretization' (Discretization)"), "{err}");
    assert!(err.contains("layer class 'Discretization' is not supported"), "{err}");
}

/// Training the guide's model as the guide compiles it (Adam, sparse categorical cross-entropy
/// `from_logits=True`), base frozen, for an epoch: the losses fall inside Keras's own run-to-run
/// spread (Dropout draws differ run to run; scripts/keras_fixtures.py ran 5 seeds), and the
/// base's BatchNorm statistics do not move, as in Keras.
#[test]
fn training_the_guide_model_gives_keras_losses_and_keeps_the_base() {
    let Some(fixture) = keras_fixture("nested_models") else { return };
    let train = fixture.join("train.h5");
    let (x, y) = (read_tensor(&train, "x"), read_tensor(&train, "y").reshape([-1, 1]));
    let keras: Vec<f64> = Vec::try_from(read_tensor(&train, "loss")).unwrap();
    let (low, high) = keras.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &l| (lo.min(l), hi.max(l)));
    let mut ours = Vec::new();
    let mut trained = None;
    for seed in 0..keras.len() as u64 {
        let mut model = load_model(&fixture.join("train_initial.h5"), Device::Cpu).unwrap();
        let training = TrainingConfig::from_keras(model.training_config.as_ref().unwrap()).unwrap();
        assert!(training.compile.from_logits, "the guide's loss reads logits");
        let before = model.keras_weight("resnet50/conv5_block3_3_bn", "moving_mean").unwrap();
        keras_tch::layers::init::seed(seed);
        let mut optimizer = Optimizer::new(training.optimizer);
        let options = FitOptions { epochs: 1, batch_size: 32, shuffle: false, verbose: 0, ..Default::default() };
        let history = fit(&mut model, &training.compile, &mut optimizer, &x, &y, None, &options, &AtomicBool::new(false)).unwrap();
        ours.push(history.get("loss").unwrap()[0]);
        let after = model.keras_weight("resnet50/conv5_block3_3_bn", "moving_mean").unwrap();
        assert!(before.equal(&after), "seed {seed}: the frozen base's BatchNorm moved");
        trained = Some(model);
    }
    let spread = high - low;
    let mean = ours.iter().sum::<f64>() / ours.len() as f64;
    println!("losses here {ours:?} (mean {mean}); Keras {keras:?}");
    assert!(ours.iter().all(|l| (low - spread..=high + spread).contains(l)), "ours {ours:?}, Keras {keras:?}");
    assert!((low..=high).contains(&mean), "our mean {mean} outside Keras's {low}..{high}");

    // Saved after training, the model compiles in each Keras with its from_logits loss.
    let Some(python) = common::keras_python() else { return };
    let dir = common::scratch_dir("nested-trained");
    let trained = trained.unwrap();
    let (h5, archive) = (dir.join("trained.h5"), dir.join("trained.keras"));
    keras_tch::io::save_model_h5(&trained, &h5).unwrap();
    keras_tch::io::save_model_keras(&trained, &archive).unwrap();
    for (loader, file) in [("tf_keras", &h5), ("keras3", &archive)] {
        let args = ["--loader".as_ref(), loader.as_ref(), "--model".as_ref(), file.as_os_str(), "--compile".as_ref()];
        let (keras_y, line) = common::parity::keras_check(&python, &args, &train, &dir.join(format!("y_{loader}.h5")));
        assert!(line.trim_end().ends_with(" Adam"), "{loader} compiled {}: {line}", file.display());
        assert_close(&format!("{} in {loader}", file.display()), &keras_y, &trained.predict(&x).unwrap());
    }
}

/// Freezing reaches inside the nested model: by its name (a prefix), by an inner layer's own
/// name, and by ResNet stage.
#[test]
fn freezing_rules_reach_inside_the_nested_model() {
    let Some(fixture) = keras_fixture("nested_models") else { return };
    let unfrozen = || {
        let mut model = load_model(&fixture.join("model.h5"), Device::Cpu).unwrap();
        for name in model.layers().iter().map(|n| n.name.clone()).collect::<Vec<_>>() {
            model.set_trainable(&name, true).unwrap();
        }
        model
    };
    let frozen = |spec: FreezeSpec| freeze(&mut unfrozen(), &spec).unwrap();
    let whole = frozen(FreezeSpec { patterns: vec!["resnet50".into()], ..Default::default() });
    assert_eq!(whole.len(), 174, "every layer of the base, its input aside: {whole:?}");
    let until = frozen(FreezeSpec { until: Some("conv4_block6_out".into()), ..Default::default() });
    assert_eq!(until.last().map(String::as_str), Some("resnet50/conv4_block6_out"));
    let stages = frozen(FreezeSpec { stages: Some(4), ..Default::default() });
    assert_eq!(stages.last(), until.last(), "stages 1-4 end where conv4 ends");
}

/// `transfer --base` on the guide's file: the base keeps its nesting and its own Rescaling
/// (so images go in as 0-255 pixels), the head is replaced, and the saved model is nested too.
#[test]
fn transfer_takes_the_guide_model_as_its_base() {
    let Some(fixture) = keras_fixture("nested_models") else { return };
    let Some(data) = common::shared_data("train_catvnoncat.h5") else { return };
    let dir = common::scratch_dir("nested-transfer");
    let save = dir.join("cat.h5");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_keras-tch"))
        .args("transfer --epochs 1 --limit 32 --verbose 0 --device cpu".split(' '))
        .arg("--base")
        .arg(fixture.join("model.h5"))
        .arg("--data")
        .arg(&data)
        .arg("--run-dir")
        .arg(dir.join("run"))
        .arg("--save")
        .arg(&save)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("preprocess_input mode 'none'"), "{stdout}");
    assert!(stdout.contains("dropped global_average_pooling2d, dropout, dense"), "{stdout}");
    let saved = load_model(&save, Device::Cpu).unwrap();
    assert_eq!(saved.nested_models().iter().map(|n| n.path.as_str()).collect::<Vec<_>>(), ["resnet50"]);
    assert!(saved.layer("resnet50/conv1_conv").is_ok_and(|conv| !conv.trainable));
}
