//! Every seed architecture against real Keras: parameter counts, the layer table (names, classes,
//! output shapes, parameters, connections), and — with Keras's weights loaded — Keras's outputs
//! and intermediate activations in inference mode. Fixtures: scripts/keras_fixtures.py.

mod common;

use common::parity::{assert_same_outputs, assert_same_table, keras_counts};
use common::{keras_fixture, repo_root};
use keras_tch::graph::{summary::summary, GraphBuilder};
use keras_tch::layers::conv::conv2d;
use keras_tch::layers::pooling::PoolKind;
use keras_tch::models::applications::{self, Naming, Pooling};
use keras_tch::models::{course, happy, Arch, ArchOptions};
use tch::Device;

/// The counts the architectures issue gives (checked there with Keras 2.21 on the seeds' code).
#[test]
fn parameter_counts_are_the_seeds() {
    let cases: [(Arch, Naming, [i64; 3]); 7] = [
        (Arch::Resnet50Course, Naming::Keras, [23_600_006, 23_546_886, 53_120]),
        (Arch::Resnet50Dropout, Naming::Keras, [42_020_712, 41_967_592, 53_120]),
        (Arch::Resnet50, Naming::Keras, [25_636_712, 25_583_592, 53_120]),
        (Arch::Resnet50, Naming::KerasApplications, [25_636_712, 25_583_592, 53_120]),
        (Arch::Resnet18, Naming::Keras, [12_053_608, 12_045_800, 7_808]),
        (Arch::Resnet34, Naming::Keras, [22_735_912, 22_720_680, 15_232]),
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
        let notop = applications::resnet50(&applications_config(naming, false, Some(PoolKind::Average)), Device::Cpu).unwrap();
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
