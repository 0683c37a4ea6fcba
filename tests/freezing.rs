//! Freezing by Keras layer name (`layer.trainable = False`): a frozen layer's weights and its
//! BatchNorm moving statistics come out of training bit for bit as they went in, while the
//! layers left trainable do change; the parameter counts move from trainable to non-trainable.

mod common;

use std::sync::atomic::AtomicBool;

use common::repo_root;
use keras_tch::data::course::{default_dataset_paths, load_any_split};
use keras_tch::graph::Model;
use keras_tch::models::{Arch, ArchOptions};
use keras_tch::train::compile::CompileConfig;
use keras_tch::train::fit::{fit, FitOptions};
use keras_tch::train::freeze::{freeze, FreezeSpec};
use keras_tch::train::losses::CrossEntropyStyle;
use keras_tch::train::optimizer::{Optimizer, OptimizerConfig};
use tch::{Device, Tensor};

/// Every weight of the model (trainable or not), as copies: (layer, weight, value).
fn snapshot(model: &Model) -> Vec<(String, String, Tensor)> {
    model
        .layers()
        .iter()
        .flat_map(|node| node.layer.weights().into_iter().map(|w| (node.name.clone(), w.name.to_string(), w.tensor.copy())))
        .collect()
}

#[test]
fn frozen_stages_stay_bit_identical_while_the_rest_trains() {
    let (train_path, _, _) = default_dataset_paths(&repo_root()).expect("run scripts/setup.sh");
    let (mut train, classes) = load_any_split(&train_path, "train").unwrap();
    train.truncate(64);
    let options = ArchOptions { classes: Some(classes.len() as i64), ..Default::default() };
    let mut model = Arch::Resnet50Course.build(&options, Device::Cpu).unwrap();
    let (total_before, trainable_before, _) = model.param_counts();

    let frozen = freeze(&mut model, &FreezeSpec { stages: Some(4), ..Default::default() }).unwrap();
    assert!(frozen.contains(&"bn_conv1".to_string()) && frozen.contains(&"res4f_branch2c".to_string()));
    assert!(!frozen.iter().any(|n| n.starts_with("res5") || n == "fc6"));
    let (total, trainable, non_trainable) = model.param_counts();
    assert_eq!(total, total_before);
    assert!(trainable < trainable_before && non_trainable > 0);

    let before = snapshot(&model);
    let compile = CompileConfig::for_model(&model, None, CrossEntropyStyle::TfKeras).unwrap();
    let mut optimizer = Optimizer::new(OptimizerConfig::adam(1e-3));
    let x = train.normalized_images();
    let y = compile.targets(&train, classes.len());
    let fit_options = FitOptions { epochs: 1, batch_size: 32, verbose: 0, ..Default::default() };
    fit(&mut model, &compile, &mut optimizer, &x, &y, None, &fit_options, &AtomicBool::new(false)).unwrap();

    let after = snapshot(&model);
    let mut changed_trainable_layers = std::collections::BTreeSet::new();
    for ((layer, weight, old), (_, _, new)) in before.iter().zip(&after) {
        let same = old.equal(new);
        if frozen.contains(layer) {
            assert!(same, "frozen {layer}/{weight} changed");
        } else if !same {
            changed_trainable_layers.insert(layer.clone());
        }
    }
    // Every weighted layer left trainable moved (stage 5's convolutions and BatchNorms, fc6),
    // including the BatchNorm moving statistics, which frozen layers keep.
    let trainable_weighted: Vec<&String> =
        model.layers().iter().filter(|n| !frozen.contains(&n.name) && !n.layer.weights().is_empty()).map(|n| &n.name).collect();
    assert!(!trainable_weighted.is_empty());
    for name in trainable_weighted {
        assert!(changed_trainable_layers.contains(name), "trainable {name} did not change");
    }
}

#[test]
fn freezing_rules_reject_what_matches_nothing() {
    let mut model = Arch::Resnet50Course.build(&ArchOptions::default(), Device::Cpu).unwrap();
    let spec = FreezeSpec { patterns: vec!["conv9*".into()], ..Default::default() };
    let message = format!("{:#}", freeze(&mut model, &spec).unwrap_err());
    assert!(message.contains("freeze pattern 'conv9*' matches no layer"), "{message}");
    let spec = FreezeSpec { until: Some("res9z_branch2a".into()), ..Default::default() };
    let message = format!("{:#}", freeze(&mut model, &spec).unwrap_err());
    assert!(message.contains("no layer named 'res9z_branch2a'"), "{message}");
    // Nothing was frozen by the failed calls: only BatchNorm's moving statistics are non-trainable.
    let fresh = Arch::Resnet50Course.build(&ArchOptions::default(), Device::Cpu).unwrap();
    assert_eq!(model.param_counts(), fresh.param_counts());
}
