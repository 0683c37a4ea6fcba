//! Keras's callbacks and learning-rate schedules against real Keras: the same scripted epoch
//! logs drive tf.keras's and Keras 3's callbacks (scripts/keras_callbacks.py) and ours, and the
//! stopping epoch, the epoch whose weights the model ends with, the learning rate after every
//! epoch and the files ModelCheckpoint wrote must agree; every schedule must give Keras's
//! learning rate at every step.

mod common;

use std::path::Path;

use serde_json::Value;
use tch::{Device, Tensor};

use common::{keras_fixture, scratch_dir};
use keras_tch::graph::{GraphBuilder, Model};
use keras_tch::layers::dense::dense;
use keras_tch::train::callbacks::{
    CallbackConfig, CallbackContext, CallbackList, EarlyStoppingConfig, Logs, Mode, ModelCheckpointConfig, ReduceLROnPlateauConfig,
};
use keras_tch::train::compile::CompileConfig;
use keras_tch::train::losses::CrossEntropyStyle;
use keras_tch::train::optimizer::{Optimizer, OptimizerConfig};
use keras_tch::train::schedules::LearningRateSchedule;

/// What scripts/keras_callbacks.py printed, run by scripts/keras_fixtures.py.
fn keras_results() -> Option<Value> {
    let fixture = keras_fixture("callbacks")?;
    Some(serde_json::from_slice(&std::fs::read(fixture.join("results.json")).unwrap()).unwrap())
}

fn number(args: &Value, key: &str, default: f64) -> f64 {
    args[key].as_f64().unwrap_or(default)
}

fn count(args: &Value, key: &str, default: usize) -> usize {
    args[key].as_u64().map_or(default, |n| n as usize)
}

fn text(args: &Value, key: &str, default: &str) -> String {
    args[key].as_str().unwrap_or(default).to_string()
}

fn mode(args: &Value) -> Mode {
    Mode::parse(&text(args, "mode", "auto")).unwrap()
}

/// The scenario's Keras arguments as our config (ModelCheckpoint writes tf.keras `.h5` weights
/// into `folder`).
fn our_config(scenario: &Value, folder: &Path) -> CallbackConfig {
    let args = &scenario["args"];
    match scenario["class"].as_str().unwrap() {
        "EarlyStopping" => CallbackConfig::EarlyStopping(EarlyStoppingConfig {
            monitor: text(args, "monitor", "val_loss"),
            min_delta: number(args, "min_delta", 0.0),
            patience: count(args, "patience", 0),
            verbose: 0,
            mode: mode(args),
            baseline: args["baseline"].as_f64(),
            restore_best_weights: args["restore_best_weights"].as_bool().unwrap_or(false),
            start_from_epoch: count(args, "start_from_epoch", 0),
        }),
        "ReduceLROnPlateau" => CallbackConfig::ReduceLROnPlateau(ReduceLROnPlateauConfig {
            monitor: text(args, "monitor", "val_loss"),
            factor: number(args, "factor", 0.1),
            patience: count(args, "patience", 10),
            verbose: 0,
            mode: mode(args),
            min_delta: number(args, "min_delta", 1e-4),
            cooldown: count(args, "cooldown", 0),
            min_lr: number(args, "min_lr", 0.0),
        }),
        "ModelCheckpoint" => {
            let filepath = folder.join(format!("{}.h5", text(args, "filepath", "")));
            CallbackConfig::ModelCheckpoint(ModelCheckpointConfig {
                monitor: text(args, "monitor", "val_loss"),
                save_best_only: args["save_best_only"].as_bool().unwrap_or(false),
                save_weights_only: true,
                mode: mode(args),
                initial_value_threshold: args["initial_value_threshold"].as_f64(),
                ..ModelCheckpointConfig::new(filepath.to_str().unwrap())
            })
        }
        other => panic!("unknown scenario class {other}"),
    }
}

/// One weight to mark the epochs with: Input(1) -> Dense(1).
fn one_weight_model() -> Model {
    let mut g = GraphBuilder::new("marker", Device::Cpu);
    let x = g.input(Some("x"), &[1]).unwrap();
    let y = g.dense(Some("dense"), dense(1), x).unwrap();
    g.finish(&[y]).unwrap()
}

fn marker(model: &Model) -> f64 {
    model.keras_weight("dense", "kernel").unwrap().double_value(&[0, 0])
}

/// File names without the extension Keras's version put on them.
fn stems(names: &Value) -> Vec<String> {
    let stem = |name: &str| name.trim_end_matches(".weights.h5").trim_end_matches(".h5").to_string();
    names.as_array().unwrap().iter().map(|n| stem(n.as_str().unwrap())).collect()
}

#[test]
fn callbacks_do_what_keras_callbacks_do() {
    let Some(keras) = keras_results() else { return };
    let learning_rate = keras["learning_rate"].as_f64().unwrap();
    let epoch_logs: Vec<Logs> = keras["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| ["loss", "accuracy", "val_loss", "val_accuracy"].into_iter().map(|k| (k, l[k].as_f64().unwrap())).collect())
        .collect();
    for (index, scenario) in keras["scenarios"].as_array().unwrap().iter().enumerate() {
        let folder = scratch_dir(&format!("callbacks-{index}"));
        let mut model = one_weight_model();
        model.set_keras_weight("dense", "kernel", &Tensor::zeros([1, 1], (tch::Kind::Float, Device::Cpu))).unwrap();
        let compile =
            CompileConfig::for_model(&model, Some(keras_tch::train::losses::Loss::BinaryCrossentropy), CrossEntropyStyle::TfKeras).unwrap();
        let mut optimizer = Optimizer::new(OptimizerConfig::adam(learning_rate));
        let mut callbacks = CallbackList::from_configs(&[our_config(scenario, &folder)]).unwrap();
        callbacks.on_train_begin(&mut CallbackContext::new(&mut model, &mut optimizer, &compile)).unwrap();
        let (mut epochs_run, mut learning_rates, mut saved) = (0, Vec::new(), Vec::new());
        for (epoch, logs) in epoch_logs.iter().enumerate() {
            let mut ctx = CallbackContext::new(&mut model, &mut optimizer, &compile);
            callbacks.on_epoch_begin(epoch, &mut ctx).unwrap();
            ctx.model.set_keras_weight("dense", "kernel", &Tensor::from_slice(&[epoch as f32 + 1.0]).view([1, 1])).unwrap();
            callbacks.on_epoch_end(epoch, &mut logs.clone(), &mut ctx).unwrap();
            let stop = ctx.stop_training;
            epochs_run = epoch + 1;
            learning_rates.push(optimizer.config.learning_rate());
            let mut names: Vec<String> =
                std::fs::read_dir(&folder).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
            names.sort();
            saved.push(names);
            if stop {
                break;
            }
        }
        callbacks.on_train_end(&mut CallbackContext::new(&mut model, &mut optimizer, &compile)).unwrap();
        let weights_epoch = marker(&model).round() as i64 - 1;

        for version in ["keras", "tf_keras"] {
            let theirs = &scenario[version];
            let what = format!("{} {} vs {version}", scenario["class"], scenario["args"]);
            assert_eq!(epochs_run as u64, theirs["epochs_run"].as_u64().unwrap(), "{what}: epochs run");
            assert_eq!(weights_epoch, theirs["weights_epoch"].as_i64().unwrap(), "{what}: the epoch whose weights the model ends with");
            let their_rates: Vec<f64> = theirs["learning_rates"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            assert_eq!(learning_rates.len(), their_rates.len(), "{what}");
            for (epoch, (ours, theirs)) in learning_rates.iter().zip(&their_rates).enumerate() {
                assert!((ours - theirs).abs() <= 1e-6 * theirs.abs(), "{what}: learning rate after epoch {epoch}: {ours} vs {theirs}");
            }
            let their_saved: Vec<Vec<String>> = theirs["saved"].as_array().unwrap().iter().map(stems).collect();
            let our_saved: Vec<Vec<String>> = saved.iter().map(|names| stems(&serde_json::json!(names))).collect();
            assert_eq!(our_saved, their_saved, "{what}: files saved after each epoch");
        }
    }
}

#[test]
fn schedules_give_keras_learning_rates_at_every_step() {
    let Some(keras) = keras_results() else { return };
    for schedule in keras["schedules"].as_array().unwrap() {
        let args = &schedule["args"];
        let ours = match schedule["class"].as_str().unwrap() {
            "CosineDecay" => LearningRateSchedule::CosineDecay {
                initial_learning_rate: number(args, "initial_learning_rate", 0.0),
                decay_steps: number(args, "decay_steps", 0.0),
                alpha: number(args, "alpha", 0.0),
                warmup_target: args["warmup_target"].as_f64(),
                warmup_steps: number(args, "warmup_steps", 0.0),
            },
            "ExponentialDecay" => LearningRateSchedule::ExponentialDecay {
                initial_learning_rate: number(args, "initial_learning_rate", 0.0),
                decay_steps: number(args, "decay_steps", 0.0),
                decay_rate: number(args, "decay_rate", 0.0),
                staircase: args["staircase"].as_bool().unwrap_or(false),
            },
            "PiecewiseConstantDecay" => {
                let list = |key: &str| args[key].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
                LearningRateSchedule::PiecewiseConstantDecay { boundaries: list("boundaries"), values: list("values") }
            }
            other => panic!("unknown schedule {other}"),
        }
        .validated()
        .unwrap();
        for version in ["keras", "tf_keras"] {
            for (step, theirs) in schedule[version].as_array().unwrap().iter().enumerate() {
                let (ours, theirs) = (ours.at(step as i64), theirs.as_f64().unwrap());
                assert!((ours - theirs).abs() <= 1e-7, "{} {args} vs {version}: step {step}: {ours} vs {theirs}", schedule["class"]);
            }
        }
    }
}
