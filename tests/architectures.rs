//! Every seed architecture against real Keras: parameter counts, the layer table (names, classes,
//! output shapes, parameters, connections), and — with Keras's weights loaded — Keras's outputs
//! and intermediate activations in inference mode. Fixtures: scripts/keras_fixtures.py.

mod common;

use std::path::Path;

use common::{keras_fixture, read_f32, repo_root};
use keras_tch::graph::{keras_shape, summary::summary, GraphBuilder, Model};
use keras_tch::layers::activation::Activation;
use keras_tch::layers::conv::conv2d;
use keras_tch::layers::dense::dense;
use keras_tch::layers::pooling::{avg_pool, max_pool};
use keras_tch::layers::reshape::Flatten;
use keras_tch::models::applications::{self, Naming, Pooling};
use keras_tch::models::{course, happy, Arch, ArchOptions};
use tch::{Device, Tensor};

/// The counts the architectures issue gives (checked there with Keras 2.21 on the seeds' code).
#[test]
fn parameter_counts_are_the_seeds() {
    let cases: [(Arch, Naming, [i64; 3]); 8] = [
        (Arch::Resnet50Course, Naming::Keras, [23_600_006, 23_546_886, 53_120]),
        (Arch::Resnet50Dropout, Naming::Keras, [42_020_712, 41_967_592, 53_120]),
        (Arch::Resnet50, Naming::Keras, [25_636_712, 25_583_592, 53_120]),
        (Arch::Resnet50, Naming::KerasApplications, [25_636_712, 25_583_592, 53_120]),
        (Arch::Resnet18, Naming::Keras, [12_053_608, 12_045_800, 7_808]),
        (Arch::Resnet34, Naming::Keras, [22_735_912, 22_720_680, 15_232]),
        (Arch::Happy, Naming::Keras, [37_633, 37_569, 64]),
        (Arch::Happy, Naming::Keras, [37_633, 37_569, 64]),
    ];
    for (arch, naming, [total, trainable, frozen]) in cases {
        let options = ArchOptions { naming, ..Default::default() };
        let model = arch.build(&options, Device::Cpu).unwrap();
        assert_eq!(model.param_counts(), (total, trainable, frozen), "{arch:?} {naming:?}");
        let text = summary(&model);
        assert!(text.contains(&format!("Total params: {}", keras_tch::graph::summary::thousands(total))), "{text}");
    }
}

/// Variables are stored under Keras's names, and tch never renamed a duplicate (`name__1`).
#[test]
fn variables_are_named_layer_dot_weight() {
    let model = course::resnet50([64, 64, 3], 6, None, Device::Cpu).unwrap();
    let variables = model.vs.variables();
    assert!(variables.contains_key("res2a_branch2a.kernel"));
    assert!(variables.contains_key("bn_conv1.moving_variance"));
    assert!(variables.contains_key("fc6.bias"));
    assert!(variables.keys().all(|name| !name.contains("__")), "a variable was renamed");
    let weights: usize = model.layers().iter().map(|n| n.layer.weights().len()).sum();
    assert_eq!(variables.len(), weights);
}

#[test]
fn duplicate_layer_names_are_refused() {
    let mut g = GraphBuilder::new("dup", Device::Cpu);
    let x = g.input(None, &[8, 8, 3]).unwrap();
    let x = g.conv2d(Some("conv"), conv2d(4, 3), x).unwrap();
    let err = g.conv2d(Some("conv"), conv2d(4, 3), x).err().unwrap().to_string();
    assert!(err.contains("already has a layer named 'conv'"), "{err}");
}

#[test]
fn summary_cli_prints_the_course_totals() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_keras-tch"))
        .args(["summary", "--arch", "resnet50-course"])
        .current_dir(repo_root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.starts_with("Model: \"ResNet50\""), "{stdout}");
    assert!(stdout.contains("res2a_branch2a (Conv2D)"), "{stdout}");
    assert!(stdout.contains("Total params: 23,600,006\n"), "{stdout}");
    assert!(stdout.contains("Trainable params: 23,546,886\n"), "{stdout}");
    assert!(stdout.contains("Non-trainable params: 53,120\n"), "{stdout}");
}

// ---------------------------------------------------------------------------------------------
// Against the Keras fixtures.

/// One row of Keras's layers.tsv.
#[derive(Debug, PartialEq)]
struct Row {
    name: String,
    class: String,
    shape: String,
    params: i64,
    trainable: i64,
    inbound: String,
}

fn keras_rows(fixture: &Path) -> Vec<Row> {
    let text = std::fs::read_to_string(fixture.join("layers.tsv")).unwrap();
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            Row {
                name: f[0].into(),
                class: f[1].into(),
                shape: f[2].into(),
                params: f[3].parse().unwrap(),
                trainable: f[4].parse().unwrap(),
                inbound: f.get(5).copied().unwrap_or("").into(),
            }
        })
        .collect()
}

fn our_rows(model: &Model) -> Vec<Row> {
    model
        .layers()
        .iter()
        .map(|node| Row {
            name: node.name.clone(),
            class: node.layer.class_name().into(),
            shape: keras_shape(&node.output_shape),
            params: node.param_count(),
            trainable: node.trainable_param_count(),
            inbound: node.inbound.iter().map(|id| model.node(*id).name.clone()).collect::<Vec<_>>().join(","),
        })
        .collect()
}

fn keras_counts(fixture: &Path, file: &str) -> (i64, i64, i64) {
    let text = std::fs::read_to_string(fixture.join(file)).unwrap();
    let value = |key: &str| -> i64 {
        text.lines().find_map(|l| l.strip_prefix(key)).unwrap_or_else(|| panic!("{key} in {file}")).trim().parse().unwrap()
    };
    (value("total "), value("trainable "), value("non_trainable "))
}

fn assert_same_table(fixture_name: &str, model: &Model) {
    let Some(fixture) = keras_fixture(fixture_name) else { return };
    let keras = keras_rows(&fixture);
    let ours = our_rows(model);
    for (i, (k, o)) in keras.iter().zip(&ours).enumerate() {
        assert_eq!(o, k, "{fixture_name}: layer #{i} differs (ours, then Keras)");
    }
    assert_eq!(ours.len(), keras.len(), "{fixture_name}: number of layers");
    assert_eq!(model.param_counts(), keras_counts(&fixture, "counts.txt"), "{fixture_name}: counts");
}

#[test]
fn course_resnet50_is_keras_layer_for_layer() {
    assert_same_table("course_resnet50", &course::resnet50([64, 64, 3], 6, None, Device::Cpu).unwrap());
    assert_same_table("resnet50_dropout", &course::resnet50([224, 224, 3], 1000, Some(0.2), Device::Cpu).unwrap());
}

#[test]
fn happy_model_is_keras_layer_for_layer() {
    assert_same_table("happy_model", &happy::happy_model([64, 64, 3], Device::Cpu).unwrap());
}

fn applications_config(naming: Naming, include_top: bool, pooling: Pooling) -> applications::Config {
    applications::Config { naming, include_top, pooling, classes: 1000, input_shape: [64, 64, 3] }
}

#[test]
fn applications_resnet50_is_keras_layer_for_layer_in_both_schemes() {
    for (fixture, naming) in [("applications_resnet50_keras", Naming::Keras), ("applications_resnet50_legacy", Naming::KerasApplications)] {
        let model = applications::resnet50(&applications_config(naming, true, Pooling::None), Device::Cpu).unwrap();
        assert_same_table(fixture, &model);
        let notop = applications::resnet50(&applications_config(naming, false, Pooling::Avg), Device::Cpu).unwrap();
        if let Some(dir) = keras_fixture(fixture) {
            assert_eq!(notop.param_counts(), keras_counts(&dir, "counts_notop_avg.txt"), "{fixture} without top");
        }
    }
}

#[test]
fn resnet18_and_34_counts_match_keras() {
    for (fixture, arch) in [("resnet18", Arch::Resnet18), ("resnet34", Arch::Resnet34)] {
        let Some(dir) = keras_fixture(fixture) else { return };
        let model = arch.build(&ArchOptions::default(), Device::Cpu).unwrap();
        assert_eq!(model.param_counts(), keras_counts(&dir, "counts.txt"), "{fixture}");
    }
}

// ---------------------------------------------------------------------------------------------
// Outputs with Keras's weights.

/// Load every weight of the fixture's weights.h5 (Keras layout, one group per layer) into the
/// model, and check every weight of the model was given one.
fn load_keras_weights(model: &Model, file: &Path) {
    let h5 = hdf5::File::open(file).unwrap();
    let mut loaded = 0;
    for group in h5.groups().unwrap() {
        let layer = group.name().trim_start_matches('/').to_string();
        for ds in group.datasets().unwrap() {
            let weight = ds.name().rsplit('/').next().unwrap().to_string();
            let dims: Vec<i64> = ds.shape().iter().map(|&d| d as i64).collect();
            let value = Tensor::from_slice(&ds.read_raw::<f32>().unwrap()).reshape(&dims);
            model.set_keras_weight(&layer, &weight, &value).unwrap();
            loaded += 1;
        }
    }
    let expected: usize = model.layers().iter().map(|n| n.layer.weights().len()).sum();
    assert_eq!(loaded, expected, "weights in {} vs weights of the model", file.display());
}

fn tensor(values: Vec<f32>, shape: &[usize]) -> Tensor {
    let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    Tensor::from_slice(&values).reshape(&dims)
}

/// max |ours − keras| ≤ 1e-4 · max(1, max |keras|): 1e-4 absolute for bounded outputs
/// (probabilities), 1e-4 relative to the tensor's scale for unbounded activations (deep random
/// networks reach 1e4, where float32 rounding alone differs in the 1e-6 relative range).
fn assert_close(what: &str, ours: &Tensor, keras: &Tensor) {
    assert_eq!(ours.size(), keras.size(), "{what}: shape");
    let scale = keras.abs().max().double_value(&[]).max(1.0);
    let diff = (ours - keras).abs().max().double_value(&[]);
    assert!(diff <= 1e-4 * scale, "{what}: max |ours − keras| = {diff:e} exceeds 1e-4 × {scale}");
}

/// Load the fixture's weights, run its input, compare the output and each `act/<layer>`.
fn assert_same_outputs(fixture_name: &str, model: &Model) {
    let Some(fixture) = keras_fixture(fixture_name) else { return };
    load_keras_weights(model, &fixture.join("weights.h5"));
    let io = fixture.join("io.h5");
    let (x, x_shape) = read_f32(&io, "x");
    let x = tensor(x, &x_shape);
    let (y, y_shape) = read_f32(&io, "y");
    let ours = model.predict(&x).unwrap();
    let h5 = hdf5::File::open(&io).unwrap();
    if let Ok(group) = h5.group("act") {
        let mut names: Vec<String> = group.member_names().unwrap();
        // Compare in graph order so the first failure is the first layer that diverges.
        names.sort_by_key(|n| model.layer_id(n).map(|id| model.layers().iter().position(|l| l.name == model.node(id).name)).ok());
        for name in names {
            let (act, shape) = read_f32(&io, &format!("act/{name}"));
            let ours_act = model.activations(&[&x], &[&name]).unwrap().remove(0);
            assert_close(&format!("{fixture_name}: activation of '{name}'"), &ours_act, &tensor(act, &shape));
        }
    }
    assert_close(&format!("{fixture_name}: output"), &ours, &tensor(y, &y_shape));
}

#[test]
fn course_blocks_give_keras_outputs() {
    assert_same_outputs("course_identity_block", &course::block_model([4, 4, 6], false, Device::Cpu).unwrap());
    assert_same_outputs("course_convolutional_block", &course::block_model([4, 4, 6], true, Device::Cpu).unwrap());
}

#[test]
fn course_resnet50_gives_keras_outputs() {
    assert_same_outputs("course_resnet50", &course::resnet50([64, 64, 3], 6, None, Device::Cpu).unwrap());
}

#[test]
fn happy_model_gives_keras_outputs() {
    assert_same_outputs("happy_model", &happy::happy_model([64, 64, 3], Device::Cpu).unwrap());
}

#[test]
fn applications_resnet50_gives_keras_outputs_in_both_schemes() {
    for (fixture, naming) in [("applications_resnet50_keras", Naming::Keras), ("applications_resnet50_legacy", Naming::KerasApplications)] {
        let model = applications::resnet50(&applications_config(naming, true, Pooling::None), Device::Cpu).unwrap();
        assert_same_outputs(fixture, &model);
    }
}

/// Single layers where TensorFlow and torch differ: asymmetric `same` padding at stride 2,
/// dilation, `same` pooling, and the channels-last Flatten before a Dense.
#[test]
fn same_padding_pooling_and_flatten_give_keras_outputs() {
    type Build = fn(&mut GraphBuilder, keras_tch::graph::NodeId) -> keras_tch::graph::NodeId;
    let cases: [(&str, [i64; 3], Build); 5] = [
        ("conv_same_stride2", [7, 8, 3], |g, x| g.conv2d(Some("conv"), conv2d(4, 3).strides(2).same(), x).unwrap()),
        ("conv_same_dilated", [9, 9, 2], |g, x| g.conv2d(Some("conv"), conv2d(3, 3).dilation(2).same(), x).unwrap()),
        ("maxpool_same", [7, 8, 3], |g, x| g.add(Some("pool"), max_pool(3).strides(2).same(), &[x]).unwrap()),
        ("avgpool_same", [7, 8, 3], |g, x| g.add(Some("pool"), avg_pool(3).strides(2).same(), &[x]).unwrap()),
        ("flatten_dense", [3, 4, 5], |g, x| {
            let x = g.conv2d(Some("conv"), conv2d(2, 1), x).unwrap();
            let x = g.add(Some("flatten"), Flatten, &[x]).unwrap();
            g.dense(Some("fc"), dense(3).activation(Activation::Softmax), x).unwrap()
        }),
    ];
    for (fixture, shape, build) in cases {
        let mut g = GraphBuilder::new(fixture, Device::Cpu);
        let input = g.input(None, &shape).unwrap();
        let out = build(&mut g, input);
        let model = g.finish(&[out]).unwrap();
        if model.layers().iter().any(|n| !n.layer.weights().is_empty()) {
            assert_same_outputs(fixture, &model);
        } else {
            let Some(dir) = keras_fixture(fixture) else { return };
            let io = dir.join("io.h5");
            let (x, x_shape) = read_f32(&io, "x");
            let (y, y_shape) = read_f32(&io, "y");
            let ours = model.predict(&tensor(x, &x_shape)).unwrap();
            assert_close(fixture, &ours, &tensor(y, &y_shape));
        }
    }
}
